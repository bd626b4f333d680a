import pkgutil
from importlib import import_module

from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_delete


class ProvisioningConfig(AppConfig):
    name = "provisioning"
    verbose_name = "orgdns provisioning"

    def ready(self):
        from provisioning import services
        from provisioning.services.credentials import actions as key_rotation
        from provisioning.services.people import sign_in

        from .models import Membership

        # Every job module (jobs.py, *_jobs.py) of every feature declares its operation kinds: this process knows
        # them all before it serves a page or runs a job.
        for module in pkgutil.walk_packages(services.__path__, f"{services.__name__}."):
            if module.name.rsplit(".", 1)[-1].endswith("jobs"):
                import_module(module.name)

        post_delete.connect(
            key_rotation.rotate_after_member_left, sender=Membership, dispatch_uid="rotate_after_member_left"
        )
        user_logged_in.connect(sign_in.audit_login, dispatch_uid="audit_login")
        user_logged_in.connect(sign_in.stamp_session, dispatch_uid="stamp_session")
        user_login_failed.connect(sign_in.audit_failed_login, dispatch_uid="audit_failed_login")
        user_logged_out.connect(sign_in.audit_logout, dispatch_uid="audit_logout")
