from django.db import migrations


def sync(apps, schema_editor):
    from console.roles import sync_roles

    sync_roles(apps)


class Migration(migrations.Migration):
    # 0001 ran before loyalty's models existed, so no role could read tiers or points yet.
    dependencies = [
        ("console", "0001_roles"),
        ("customers", "0002_import_run_counts"),
        ("loyalty", "0002_defaults"),
    ]

    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
