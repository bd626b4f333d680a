import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("provisioning", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="hostedzone",
            name="teardown_started_at",
            field=models.DateTimeField(
                blank=True,
                help_text="When the teardown began deleting: from then on no cluster can reclaim the zone.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="hostedzone",
            name="route53_deleted_at",
            field=models.DateTimeField(blank=True, help_text="When Route53 deleted the zone: its billing ends.", null=True),
        ),
        migrations.CreateModel(
            name="ZoneCharge",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("month", models.DateField(help_text="The first day (UTC) of the billed month.")),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("charged", "Charged"),
                            ("avoided_young", "Avoided: deleted within 12 h of creation"),
                            ("avoided_renewal", "Avoided: deleted before the month began"),
                        ],
                        max_length=16,
                    ),
                ),
                ("recorded_at", models.DateTimeField(auto_now_add=True)),
                (
                    "zone",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="charges", to="provisioning.hostedzone"
                    ),
                ),
            ],
            options={
                "ordering": ["-month", "recorded_at", "pk"],
                "constraints": [models.UniqueConstraint(fields=("zone", "month"), name="one_charge_per_zone_and_month")],
            },
        ),
    ]
