import json
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from provisioning.clients.errors import ProviderError
from provisioning.models import AuditEvent, Organization
from provisioning.services import audit
from provisioning.services.backends import Backends
from provisioning.services.reconcile import orphans as reconcile


class Command(BaseCommand):
    help = (
        "List what orgdns made but no row points at — Vault paths under its prefix, IAM users and hosted zones with "
        "its tags, certificate Secrets with its labels in ready clusters (where the database has installed "
        "certificates) — and, with --apply, remove each: a Vault path with every version; an IAM user with its keys "
        "and policies; a zone with its records (and a delegation to it), unless its organization exists and has no "
        "zone, then it is adopted as the organization's zone and the GC decides when it goes; a Secret. Nothing "
        "without orgdns's marks is touched. Left for a later run: anything of an organization with an unfinished "
        "operation, and anything younger than --grace. A dry run by default. Safe from several hosts at once; run "
        "it from cron, e.g. hourly."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--apply", action="store_true", help="remove (or adopt) what is found; without it, change nothing"
        )
        parser.add_argument(
            "--grace",
            type=int,
            default=10,
            metavar="MINUTES",
            help="leave alone what was made less than MINUTES ago (default 10)",
        )
        parser.add_argument("--json", action="store_true", dest="as_json", help="print one JSON document")

    def handle(self, *args, apply, grace, as_json, **options):
        if grace < 0:
            raise CommandError(f"--grace {grace}: give a number of minutes, 0 or more")
        backends = Backends()
        scan = reconcile.find_orphans(backends, timezone.now(), timedelta(minutes=grace))
        outcomes = {}
        if apply:
            with audit.acting(AuditEvent.Source.CRON):
                for orphan in scan.actionable:
                    outcomes[id(orphan)] = self.remove(orphan, backends)
        failed = sum(1 for outcome in outcomes.values() if outcome.startswith("failed"))
        left = sum(1 for outcome in outcomes.values() if outcome.startswith("left"))
        summary = {
            "orphans": len(scan.actionable),
            "held": len(scan.orphans) - len(scan.actionable),
            "problems": len(scan.problems),
            "removed": len(outcomes) - failed - left,
            "left": left,
            "failed": failed,
        }
        if as_json:
            rows = [
                {
                    "kind": o.kind,
                    "name": o.name,
                    "organization": o.organization,
                    "action": o.action,
                    "why": o.why,
                    "held": o.held or None,
                    "outcome": outcomes.get(id(o)),
                }
                for o in scan.orphans
            ]
            self.stdout.write(
                json.dumps({"apply": apply, "orphans": rows, "problems": scan.problems, "summary": summary}, indent=2)
            )
        else:
            for orphan in scan.orphans:
                self.stdout.write(as_line(orphan, outcomes.get(id(orphan))))
            for problem in scan.problems:
                self.stdout.write(f"not checked  {problem}")
            self.stdout.write(summary_line(summary, apply))
        if failed:
            raise CommandError(f"{failed} removals failed: see above")

    def remove(self, orphan, backends):
        org = Organization.objects.filter(name=orphan.organization).first()
        try:
            outcome = reconcile.remove(orphan, backends)
        except ProviderError as exc:
            outcome = f"failed: {exc.message}"
        audit.record(
            f"reconcile.{orphan.action}",
            organization=org,
            outcome=AuditEvent.Outcome.FAILED if outcome.startswith("failed") else AuditEvent.Outcome.OK,
            detail=f"{orphan.describe()} ({orphan.why}): {outcome}",
        )
        return outcome


def as_line(orphan, outcome):
    line = f"{orphan.action if not orphan.held else 'later':<6}  {orphan.kind:<8}  {orphan.name}  org {orphan.organization}  {orphan.why}"
    if orphan.held:
        line += f"  [left for a later run: {orphan.held}]"
    if outcome:
        line += f"  → {outcome}"
    return line


def summary_line(summary, apply):
    line = f"{summary['orphans']} orphans, {summary['held']} left for a later run"
    if summary["problems"]:
        line += f", {summary['problems']} clusters not checked"
    if not apply:
        return f"{line}; dry run: nothing changed (--apply removes them)."
    return (
        f"{line}; {summary['removed']} removed or adopted, {summary['left']} left (changed meanwhile), "
        f"{summary['failed']} failed."
    )
