from django.db import migrations


def sync(apps, schema_editor):
    from console.roles import sync_roles

    sync_roles(apps)


class Migration(migrations.Migration):
    # Operators edit segments and tag rules; every role reads them and the customer metrics
    # (0002 ran before these models existed).
    dependencies = [
        ("console", "0002_roles_after_loyalty"),
        ("customers", "0004_customer_metrics"),
        ("segments", "0001_initial"),
    ]

    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
