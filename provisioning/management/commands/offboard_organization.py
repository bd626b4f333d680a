from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from provisioning.models import AuditEvent, Organization
from provisioning.services import audit
from provisioning.services.organizations import offboarding


class Command(BaseCommand):
    help = (
        "Delete an organization, as its Delete page does (for support staff): a background job cancels its queued "
        "operations, waits for its running ones, deregisters its clusters, deletes its certificates, CA and AWS "
        "credentials and removes its members; gc_hosted_zones deletes its zone when that costs least. Its audit log "
        "and cost ledger remain. Run it again to resume an offboarding that failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("organization", help="the organization's name")

    def handle(self, *args, organization, **options):
        org = Organization.objects.filter(name=organization).first()
        if org is None:
            raise CommandError(f"There is no organization named {organization!r}.")
        with audit.acting(AuditEvent.Source.ADMIN):
            try:
                operation = offboarding.offboard_organization(org, organization)
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"Offboarding {org.name}: operation {operation.pk} queued.")
