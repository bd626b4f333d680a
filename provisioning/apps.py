from django.apps import AppConfig
from django.db.models.signals import post_delete


class ProvisioningConfig(AppConfig):
    name = "provisioning"
    verbose_name = "orgdns provisioning"

    def ready(self):
        from . import jobs  # noqa: F401  (declares every operation kind)
        from .models import Membership
        from .services import clusters, key_rotation  # noqa: F401  (clusters declares how its operations are retried)

        post_delete.connect(
            key_rotation.rotate_after_member_left, sender=Membership, dispatch_uid="rotate_after_member_left"
        )
