from django.core.management.base import BaseCommand, CommandError

from provisioning.models import AuditEvent
from provisioning.services import audit
from provisioning.services.aws_accounts import route53_budget


class Command(BaseCommand):
    help = (
        "Deploy ExternalDNS again, as background jobs, in the ready clusters whose resync interval is off by more than "
        "EXTERNALDNS_RERENDER_THRESHOLD from the one the fleet's size now calls for (clusters were added or removed), "
        "or whose flags orgdns has not recorded: first those whose flags are unknown, then those resyncing most often "
        "for what is wanted of them. At most EXTERNALDNS_RERENDERS_AT_ONCE (or --limit) re-renders are queued or "
        "running at once, since each restarts an ExternalDNS, which reads the account's zones and its zone's records "
        "again; the rest wait for a later run. Clusters with a job of theirs under way are left for later. Safe to run "
        "from several hosts; run it from cron every few minutes."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="print what would be queued; change nothing")
        parser.add_argument("--limit", type=int, metavar="N", help="re-renders queued or running at once")

    def handle(self, *args, dry_run, limit, **options):
        if limit is not None and limit < 0:
            raise CommandError(f"--limit must be 0 or more, not {limit}")
        with audit.acting(AuditEvent.Source.CRON):
            chosen, left = route53_budget.rerender_stale(limit, dry_run=dry_run)
        for rerender in chosen:
            was = f"{rerender.running.interval} s" if rerender.running else "flags unknown"
            self.stdout.write(
                f"{'would queue' if dry_run else 'queued'}  {rerender.cluster}  {was} -> {rerender.wanted.interval} s"
            )
        verb = "would be queued" if dry_run else "queued"
        self.stdout.write(
            f"{len(chosen)} re-render{'s' if len(chosen) != 1 else ''} {verb}, {left} left for a later run."
        )
