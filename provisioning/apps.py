from django.apps import AppConfig
from django.db.models.signals import post_delete


class ProvisioningConfig(AppConfig):
    name = "provisioning"
    verbose_name = "orgdns provisioning"

    def ready(self):
        from .models import Membership
        from .services import key_rotation

        post_delete.connect(
            key_rotation.rotate_after_member_left, sender=Membership, dispatch_uid="rotate_after_member_left"
        )
