from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("provisioning", "0001_initial")]
    operations = []
