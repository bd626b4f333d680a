from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("provisioning", "0002_zone_gc")]
    operations = []
