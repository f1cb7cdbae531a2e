"""Simplified Chinese formats: Django's zh_Hans groups digits by 4 with no separator; operations
teams read money and counts grouped by 3 with commas (¥121,755.59), as Chinese shop back-offices do.
"""

DATE_FORMAT = "Y年n月j日"  # 2026年11月24日
TIME_FORMAT = "H:i"  # 20:45
DATETIME_FORMAT = "Y年n月j日 H:i"  # 2026年11月24日 20:45
YEAR_MONTH_FORMAT = "Y年n月"  # 2026年11月
MONTH_DAY_FORMAT = "n月j日"  # 11月24日
SHORT_DATE_FORMAT = "Y-m-d"  # 2026-11-24
SHORT_DATETIME_FORMAT = "Y-m-d H:i"  # 2026-11-24 20:45

DECIMAL_SEPARATOR = "."
THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
