import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0002_zone_gc"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Certificate",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("dns_names", models.JSONField(default=list)),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("issuing", "Issuing"),
                            ("active", "Active"),
                            ("renewing", "Renewing"),
                            ("installing", "Installing"),
                            ("deleting", "Deleting"),
                            ("deleted", "Deleted"),
                            ("error", "Error"),
                        ],
                        default="issuing",
                        max_length=10,
                    ),
                ),
                ("message", models.TextField(blank=True)),
                ("serial", models.CharField(blank=True, help_text="Hexadecimal.", max_length=40)),
                ("fingerprint_sha256", models.CharField(blank=True, max_length=95, verbose_name="SHA-256 fingerprint")),
                ("not_before", models.DateTimeField(blank=True, null=True)),
                ("not_after", models.DateTimeField(blank=True, null=True)),
                (
                    "issued_at",
                    models.DateTimeField(blank=True, help_text="When the current key and certificate were made.", null=True),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("deleted_at", models.DateTimeField(blank=True, null=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL
                    ),
                ),
                (
                    "organization",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="certificates", to="provisioning.organization"
                    ),
                ),
            ],
            options={"ordering": ["-created_at"]},
        ),
        migrations.CreateModel(
            name="CertificateInstallation",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("namespace", models.CharField(max_length=63)),
                ("secret_name", models.CharField(max_length=253)),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("installed", "Installed"),
                            ("failed", "Failed"),
                            ("removing", "Removing"),
                        ],
                        default="pending",
                        max_length=10,
                    ),
                ),
                ("message", models.TextField(blank=True)),
                ("installed_serial", models.CharField(blank=True, max_length=40)),
                ("installed_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "certificate",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="installations", to="provisioning.certificate"
                    ),
                ),
                (
                    "cluster",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="certificate_installations",
                        to="provisioning.cluster",
                    ),
                ),
            ],
            options={
                "ordering": ["cluster__name", "namespace", "secret_name"],
                "constraints": [
                    models.UniqueConstraint(fields=("cluster", "namespace", "secret_name"), name="one_certificate_per_secret")
                ],
            },
        ),
        migrations.AddField(
            model_name="operation",
            name="certificate",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="operations",
                to="provisioning.certificate",
            ),
        ),
    ]
