import json
from collections import Counter
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from provisioning.models import AuditEvent
from provisioning.rules import billing
from provisioning.services import audit
from provisioning.services.zones import gc as zone_gc


class Command(BaseCommand):
    help = (
        "Delete the hosted zones nobody uses, when it costs least (docs/gc-billing.md). A zone is unused when its "
        "organization has no cluster that is not deregistered. An unused zone younger than 12 h minus "
        "ORGDNS_GC_YOUNG_MARGIN is deleted at once (free); an older one is already paid for this month, so it is "
        "kept for reuse until ORGDNS_GC_FINAL_WINDOW before the next month starts (UTC), then deleted. A teardown "
        "that stopped is queued again ORGDNS_GC_RETRY_AFTER after it ended. Deletions are background jobs. Safe to "
        "run from several hosts at once; run it from cron every few minutes."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
        parser.add_argument(
            "--now",
            metavar="ISO8601",
            help="plan as if it were this time (UTC unless it says otherwise), e.g. 2026-11-30T23:30Z; needs --dry-run",
        )
        parser.add_argument("--json", action="store_true", dest="as_json", help="print one JSON document")

    def handle(self, *args, dry_run, now, as_json, **options):
        if now is not None and not dry_run:
            raise CommandError("--now needs --dry-run: zones are only ever deleted by the real clock")
        now = parse_now(now) if now is not None else timezone.now()
        try:
            planned = zone_gc.plan(now)
        except ValueError as exc:  # settings out of range
            raise CommandError(f"{exc}: check ORGDNS_GC_YOUNG_MARGIN and ORGDNS_GC_FINAL_WINDOW") from None
        if not dry_run:
            with audit.acting(AuditEvent.Source.CRON):
                zone_gc.apply(planned, now)
        summary = summarize(planned, dry_run)
        if as_json:
            document = {
                "now": now.astimezone(UTC).isoformat(),
                "dry_run": dry_run,
                "zones": [as_dict(e) for e in planned],
            }
            self.stdout.write(json.dumps({**document, "summary": summary}, indent=2))
            return
        for entry in planned:
            self.stdout.write(as_line(entry))
        self.stdout.write(summary_line(summary, dry_run))


def parse_now(value):
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--now {value!r} is not an ISO 8601 date and time, e.g. 2026-11-30T23:30:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def summarize(planned, dry_run):
    actions = Counter(entry.action for entry in planned)
    return {
        "zones": len(planned),
        "in_use": sum(1 for e in planned if e.action == billing.KEEP and e.not_before is None),
        "kept_unused": sum(1 for e in planned if e.action == billing.KEEP and e.not_before is not None),
        "to_delete": actions[billing.DELETE],
        "to_resume": actions[zone_gc.RESUME],
        "deleting": actions[zone_gc.DELETING],
        "queued": 0 if dry_run else sum(1 for e in planned if e.operation is not None),
    }


def as_dict(entry):
    return {
        "zone": entry.zone.name,
        "zone_id": entry.zone.zone_id,
        "organization": entry.zone.organization.name,
        "state": entry.zone.state,
        "age_seconds": int(entry.age.total_seconds()),
        "action": entry.action,
        "reason": entry.reason,
        "not_before": entry.not_before.isoformat() if entry.not_before else None,
        "outcome": entry.outcome or None,
        "operation": str(entry.operation.pk) if entry.operation else None,
    }


def as_line(entry):
    line = (
        f"{entry.action:<8}  {entry.zone.name}  org {entry.zone.organization.name}  "
        f"age {billing.format_duration(entry.age)}  {entry.reason}"
    )
    if entry.not_before:
        line += f"  [not before {entry.not_before:%Y-%m-%d %H:%M} UTC]"
    if entry.outcome:
        line += f"  → {entry.outcome}"
    return line


def summary_line(summary, dry_run):
    line = (
        f"{summary['zones']} zones: {summary['in_use']} in use, {summary['kept_unused']} unused but paid for "
        f"(kept until their deletion time), {summary['to_delete']} to delete, {summary['to_resume']} teardowns to "
        f"resume, {summary['deleting']} being deleted"
    )
    if dry_run:
        return f"{line}; dry run: nothing changed."
    skipped = summary["to_delete"] + summary["to_resume"] - summary["queued"]
    return f"{line}; queued {summary['queued']} teardowns, {skipped} skipped (in use again or taken by another run)."
