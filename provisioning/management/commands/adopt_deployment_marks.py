from django.core.management.base import BaseCommand

from provisioning.models import AuditEvent
from provisioning.services import audit
from provisioning.services.backends import Backends
from provisioning.services.reconcile import deployment_marks


class Command(BaseCommand):
    help = (
        "Once, when upgrading to an orgdns whose marks name its deployment (ORGDNS_DEPLOYMENT_ID): move what this "
        "deployment's rows point at onto the new marks — Vault secrets to <VAULT_PREFIX>/<deployment>/, the "
        "orgdns:deployment tag onto its zones and IAM users, the orgdns.io/deployment label onto its certificate "
        "Secrets. Run it after `migrate`, with the workers and cron stopped; without --apply it only says what it "
        "would do. Nothing that no row of this deployment points at is touched. Running it again does nothing more."
    )

    def add_arguments(self, parser):
        parser.add_argument("--apply", action="store_true", help="make the changes (default: only list them)")

    def handle(self, *args, apply, **options):
        with audit.acting(AuditEvent.Source.CRON):
            lines = deployment_marks.adopt(Backends(), apply)
        for line in lines:
            self.stdout.write(line)
        if not lines:
            self.stdout.write("Everything of this deployment's already carries its marks.")
        elif not apply:
            self.stdout.write("Nothing was changed: run again with --apply.")
