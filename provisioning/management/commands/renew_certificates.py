import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand
from django.utils import timezone

from provisioning.models import AuditEvent
from provisioning.services import audit
from provisioning.services.certificates import actions as certificates


class Command(BaseCommand):
    help = (
        "Renew every issued certificate past ORGDNS_TLS_RENEW_AT (default 2/3) of its lifetime: a new key and "
        "certificate, re-installed everywhere the old one is (a background job each). Certificates in error or being "
        "deleted are left alone; one that another job is working on is skipped and picked up by the next run. "
        "Run it from cron, e.g. hourly."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="list what is due; queue nothing")
        parser.add_argument("--json", action="store_true", dest="as_json", help="print one JSON document")

    def handle(self, *args, dry_run, as_json, **options):
        now = timezone.now()
        with audit.acting(AuditEvent.Source.CRON):
            results = [
                self.renew(certificate, dry_run) for certificate in certificates.certificates_due_for_renewal(now)
            ]
        summary = {
            "dry_run": dry_run,
            "due": len(results),
            "renewing": sum(r["action"] == "renewing" for r in results),
            "skipped": sum(r["action"] == "skipped" for r in results),
            "certificates": results,
        }
        if as_json:
            self.stdout.write(json.dumps(summary, indent=2))
            return
        for r in results:
            self.stdout.write(
                f"{r['action']:>11}  {r['organization']}/{r['id']}  {', '.join(r['dns_names'])}  "
                f"expires {r['not_after']}{'  ' + r['reason'] if r['reason'] else ''}"
            )
        if dry_run:
            self.stdout.write(f"{summary['due']} certificates due for renewal (dry run: nothing queued).")
        else:
            self.stdout.write(f"{summary['due']} due: {summary['renewing']} renewing, {summary['skipped']} skipped.")

    def renew(self, certificate, dry_run):
        result = {
            "id": certificate.pk,
            "organization": certificate.organization.name,
            "dns_names": certificate.dns_names,
            "serial": certificate.serial,
            "not_after": certificate.not_after.isoformat(),
            "action": "would renew" if dry_run else "renewing",
            "operation": None,
            "reason": "",
        }
        if not dry_run:
            try:
                result["operation"] = str(certificates.renew_certificate(certificate).pk)
            except ValidationError as exc:
                result.update(action="skipped", reason=exc.messages[0])
        return result
