from decimal import Decimal

from django.db import migrations

TIERS = [
    # code, 中文, English, rank, min spend (yuan in the growth window), % off, free-shipping
    # coupons a month, birthday coupon, priority service, colour
    ("normal", "普通会员", "Normal", 0, "0", "0", 0, False, False, "#8d99a6"),
    ("silver", "银卡", "Silver", 1, "1000", "2", 1, True, False, "#a7b4c2"),
    ("gold", "金卡", "Gold", 2, "5000", "5", 3, True, True, "#d4a017"),
    ("diamond", "钻石", "Diamond", 3, "20000", "10", 5, True, True, "#4f7cff"),
]
RULES = [("order", 1, None), ("review", 5, None), ("share", 10, None), ("sign_in", 1, 1)]


def create_defaults(apps, schema_editor):
    settings_model = apps.get_model("loyalty", "LoyaltySettings")
    tier_model = apps.get_model("loyalty", "Tier")
    rule_model = apps.get_model("loyalty", "PointsRule")
    settings_model.objects.get_or_create(pk=1)
    for code, name_zh, name_en, rank, spend, discount, coupons, birthday, priority, colour in TIERS:
        tier_model.objects.get_or_create(
            code=code,
            defaults={
                "name_zh": name_zh,
                "name_en": name_en,
                "rank": rank,
                "min_spend": Decimal(spend),
                "discount_percent": Decimal(discount),
                "free_shipping_coupons_per_month": coupons,
                "has_birthday_coupon": birthday,
                "has_priority_service": priority,
                "colour": colour,
            },
        )
    for event_name, points, daily_cap in RULES:
        rule_model.objects.get_or_create(
            event_name=event_name, defaults={"points": points, "daily_cap": daily_cap}
        )


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0001_initial")]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
