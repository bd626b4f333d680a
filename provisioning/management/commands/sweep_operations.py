from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from provisioning.jobs import HANDLERS
from provisioning.models import AuditEvent
from provisioning.services import audit, operations


class Command(BaseCommand):
    help = (
        "Find operations whose background job was lost (Redis restarted without its data, or queueing failed after "
        "the database commit) and that are older than --older-than minutes: one that never started is queued again, "
        "one that had started is failed with a message saying to retry it. Jobs whose worker died are handled by RQ "
        "itself. Run it from cron every few minutes; safe from several hosts."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, default=10, metavar="MINUTES", help="default 10")

    def handle(self, *args, older_than, **options):
        with audit.acting(AuditEvent.Source.CRON):
            requeued, failed = operations.sweep_lost(timezone.now(), timedelta(minutes=older_than), HANDLERS)
        for operation in requeued:
            self.stdout.write(f"queued again  {operation.pk}  {operation}")
        for operation in failed:
            self.stdout.write(f"failed        {operation.pk}  {operation}")
        self.stdout.write(f"{len(requeued)} queued again, {len(failed)} failed (lost jobs older than {older_than} min).")
