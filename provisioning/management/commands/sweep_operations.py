import time
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db import close_old_connections
from django.utils import timezone

from provisioning.models import AuditEvent
from provisioning.services import audit
from provisioning.services.backends import Backends
from provisioning.services.clusters import jobs as cluster_jobs
from provisioning.services.credentials import pending_writes
from provisioning.services.operations import running as operations


class Command(BaseCommand):
    help = (
        "Find operations that no job is going to finish — their job was lost (Redis restarted without its data, or "
        "queueing failed after the database commit) or the worker running it died (its heartbeat stopped) — and queue "
        "each again while its retry budget lasts, or fail it with a message saying to retry it. Run it every minute "
        "(cron), or with --every under a supervisor; safe from several hosts. Also settles the hosted zones whose "
        "creation was never confirmed and that no job is finishing: adopted if Route53 has them (the GC then decides), "
        "the row removed if not; and destroys what Vault writes that a request gave up on left there (a registration "
        "refused while Vault was slow), unless a registration owns it."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--grace", type=int, default=30, metavar="SECONDS", help="leave younger operations alone (default 30)"
        )
        parser.add_argument("--every", type=int, metavar="SECONDS", help="sweep again every SECONDS, until stopped")

    def handle(self, *args, grace, every, **options):
        while True:
            try:
                self.sweep(timedelta(seconds=grace))
            except Exception as exc:  # under a supervisor the next round tries again; from cron, fail loudly
                if not every:
                    raise
                self.stderr.write(f"sweep failed, next one in {every} s: {type(exc).__name__}: {exc}")
            if not every:
                return
            time.sleep(every)
            close_old_connections()

    def sweep(self, grace):
        now = timezone.now()
        with audit.acting(AuditEvent.Source.CRON):
            requeued, failed = operations.sweep(now, grace)
            settled = cluster_jobs.settle_unconfirmed_zones(Backends(), now, grace)
            writes = pending_writes.settle(Backends(), now, grace)
        for zone, outcome in settled:
            self.stdout.write(f"zone {zone.name}: {outcome}")
        for write, outcome in writes:
            self.stdout.write(f"Vault {write.path}: {outcome}")
        for operation in requeued:
            self.stdout.write(f"queued again  {operation.pk}  {operation}")
        for operation in failed:
            self.stdout.write(f"failed        {operation.pk}  {operation}")
        self.stdout.write(f"{len(requeued)} queued again, {len(failed)} failed (operations no job was finishing).")
        self.stdout.flush()
