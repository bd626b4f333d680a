from django.core.management.base import BaseCommand, CommandError

from provisioning.clients.errors import ProviderError
from provisioning.models import AuditEvent, Organization
from provisioning.services import audit
from provisioning.services.certificates import actions as certificates


class Command(BaseCommand):
    help = (
        "Give organizations a new CA and renew every certificate of theirs with it (a background job each). Without "
        "names: every organization whose CA was made before CAs excluded all IP addresses. Clients that trust an old "
        "CA need the new ca.crt (the organization's certificates page, and the ca.crt of every installed Secret)."
    )

    def add_arguments(self, parser):
        parser.add_argument("organizations", nargs="*", help="reissue these organizations' CAs, whatever they are")
        parser.add_argument("--dry-run", action="store_true", help="list the organizations; change nothing")

    def handle(self, *args, organizations, dry_run, **options):
        if organizations:
            selected = list(Organization.objects.filter(name__in=organizations))
            missing = sorted(set(organizations) - {org.name for org in selected})
            if missing:
                raise CommandError(f"no organization named {', '.join(missing)}")
        else:
            active = Organization.objects.filter(state=Organization.State.ACTIVE)
            selected = [org for org in active if certificates.ca_needs_reissue(org)]
        with audit.acting(AuditEvent.Source.CRON):
            for org in selected:
                self.reissue(org, dry_run)
        verb = "would get" if dry_run else "got"
        self.stdout.write(
            f"{len(selected)} organizations {verb} a new CA{' (dry run: nothing changed)' if dry_run else ''}."
        )

    def reissue(self, org, dry_run):
        if dry_run:
            self.stdout.write(f"would reissue  {org.name}  ({org.certificates.live().count()} certificates)")
            return
        try:
            renewals, skipped = certificates.reissue_ca(org)
        except ProviderError as exc:
            self.stdout.write(f"     failed  {org.name}: {exc.message}")
            return
        self.stdout.write(f"  reissued  {org.name}: {len(renewals)} certificates renewing")
        for certificate, reason in skipped:
            self.stdout.write(
                f"   skipped  {org.name}/{certificate.pk} {certificate}: {reason} (renew it once that is done)"
            )
