from django.db import migrations


def create_templates(apps, schema_editor):
    from segments.services.templates import sync_segment_templates

    sync_segment_templates(apps=apps)


def delete_templates(apps, schema_editor):
    apps.get_model("segments", "Segment").objects.filter(is_template=True).delete()


class Migration(migrations.Migration):
    # The segments every shop starts with; they fill on the first scheduled refresh.
    dependencies = [("segments", "0001_initial")]

    operations = [migrations.RunPython(create_templates, delete_templates)]
