from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from provisioning.models import AuditEvent
from provisioning.services import audit
from provisioning.services.credentials import actions as key_rotation


class Command(BaseCommand):
    help = (
        "Queue a key rotation (a background job each) for every organization whose access key is older than "
        "ORGDNS_MAX_KEY_AGE_DAYS (default 90), and resume every rotation that stopped before it finished (a cluster "
        "that could not be reached keeps the previous key alive until it runs the new one). An organization whose "
        "rotation is queued or running is left to it. Run it from cron, e.g. hourly, so that a rotation held up by a "
        "cluster is resumed soon after the cluster is back."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="list what is due; queue nothing")
        parser.add_argument(
            "--max-age-days",
            type=int,
            default=None,
            help="rotate keys older than this (default ORGDNS_MAX_KEY_AGE_DAYS)",
        )

    def handle(self, *args, dry_run, max_age_days, **options):
        now = timezone.now()
        days = settings.ORGDNS_MAX_KEY_AGE_DAYS if max_age_days is None else max_age_days
        if days < 1:
            raise CommandError(f"the maximum key age must be at least 1 day, not {days}")
        queued = 0
        with audit.acting(AuditEvent.Source.CRON):
            for zone in key_rotation.zones_due(now, timedelta(days=days)):
                reason, new_key = key_rotation.why_due(zone, now)
                if not dry_run:
                    key_rotation.request_rotation(zone.organization, f"rotate_credentials: {reason}", new_key=new_key)
                    queued += 1
                self.stdout.write(f"{'would rotate' if dry_run else 'rotating'}  {zone.organization.name}  {reason}")
        if dry_run:
            self.stdout.write("dry run: nothing queued.")
        else:
            self.stdout.write(f"{queued} key rotations queued (keys older than {days} days, and rotations to finish).")
