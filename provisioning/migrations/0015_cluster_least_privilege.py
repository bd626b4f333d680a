from django.db import migrations, models


def clusters_registered_so_far_are_legacy(apps, schema_editor):
    apps.get_model("provisioning", "Cluster").objects.update(legacy_rbac=True)


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0014_operation_kinds_declared_by_jobs"),
    ]

    operations = [
        migrations.AddField(
            model_name="cluster",
            name="legacy_rbac",
            field=models.BooleanField(
                default=False,
                help_text="Registered before the bootstrap manifest: orgdns's token holds the old cluster-wide "
                "ClusterRole, and orgdns still reaches ExternalDNS's metrics through pods/proxy.",
            ),
        ),
        migrations.RunPython(clusters_registered_so_far_are_legacy, migrations.RunPython.noop),
        migrations.AddField(
            model_name="cluster",
            name="token_excess",
            field=models.TextField(
                blank=True,
                help_text="What the token orgdns holds may do beyond what it needs, as registration found.",
            ),
        ),
        migrations.AddField(
            model_name="cluster",
            name="setup_drift",
            field=models.TextField(
                blank=True,
                help_text="How the tenant's part (the bootstrap) differs from what ExternalDNS needs, last check.",
            ),
        ),
        migrations.AddField(
            model_name="cluster",
            name="setup_checked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="cluster",
            name="certificate_namespaces",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Namespaces where orgdns's token was last found allowed to write certificate Secrets.",
            ),
        ),
    ]
