import json

from django.core.management.base import BaseCommand
from django.utils import timezone

from provisioning.models import AuditEvent
from provisioning.services import audit
from provisioning.services.operations import retention


class Command(BaseCommand):
    help = (
        "Delete what is past its retention: finished operations and their logs after ORGDNS_RETAIN_OPERATIONS_DAYS "
        "(default 90; the latest of each cluster and certificate is kept), audit entries and login records after "
        "ORGDNS_RETAIN_AUDIT_DAYS (default 400), expired sessions, and API tokens expired or revoked for "
        "ORGDNS_RETAIN_TOKENS_DAYS (default 30). Zones and the zone charges ledger are never deleted. On the schedule "
        "daily (orgdns scheduler); safe from several hosts."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")
        parser.add_argument("--json", action="store_true", dest="as_json", help="print one JSON document")

    def handle(self, *args, dry_run, as_json, **options):
        with audit.acting(AuditEvent.Source.CRON):
            counts = retention.prune(timezone.now(), dry_run=dry_run)
            if not dry_run and any(counts.values()):
                audit.record("prune", detail=", ".join(f"{kind}: {n}" for kind, n in counts.items()))
        if as_json:
            self.stdout.write(json.dumps({"dry_run": dry_run, "deleted": counts}))
            return
        verb = "would delete" if dry_run else "deleted"
        for kind, count in counts.items():
            self.stdout.write(f"{verb} {count:>8}  {kind}")
        self.stdout.write(f"{sum(counts.values())} rows {verb} (past their retention).")
