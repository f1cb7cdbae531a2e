"""English formats: 24-hour times and ISO short dates, as the console's tables show them."""

DATE_FORMAT = "N j, Y"  # Nov. 24, 2026
TIME_FORMAT = "H:i"  # 20:45
DATETIME_FORMAT = "N j, Y, H:i"  # Nov. 24, 2026, 20:45
YEAR_MONTH_FORMAT = "F Y"  # November 2026
MONTH_DAY_FORMAT = "F j"  # November 24
SHORT_DATE_FORMAT = "Y-m-d"  # 2026-11-24
SHORT_DATETIME_FORMAT = "Y-m-d H:i"  # 2026-11-24 20:45

DECIMAL_SEPARATOR = "."
THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
