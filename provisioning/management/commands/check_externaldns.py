import json

from django.core.management.base import BaseCommand

from provisioning.services.clusters import externaldns_health


class Command(BaseCommand):
    help = (
        "Read the health of ExternalDNS in every ready cluster through its API (its Deployment, its pods' restarts "
        "and waiting reasons, and its own metrics through the API server's service proxy: last successful sync, failed "
        "syncs) and keep it on the cluster for the pages, the API and /metrics. Clusters in other states are left "
        "alone. Two or three cluster API requests and one Vault read per cluster. Run it from cron, e.g. every 2 "
        "minutes."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", dest="as_json", help="print one JSON document")

    def handle(self, *args, as_json, **options):
        results = externaldns_health.check_all()
        counts = {health: sum(h == health for h in results.values()) for health in externaldns_health.Health.values}
        if as_json:
            rows = [
                {
                    "organization": c.organization.name,
                    "cluster": c.name,
                    "id": c.pk,
                    "health": h,
                    "problem": c.externaldns_problem,
                    "metrics_error": c.externaldns_metrics_error,
                }
                for c, h in results.items()
            ]
            self.stdout.write(json.dumps({"checked": len(results), **counts, "clusters": rows}, indent=2))
            return
        for cluster, health in results.items():
            detail = cluster.externaldns_problem or (
                f"metrics unavailable: {cluster.externaldns_metrics_error}" if cluster.externaldns_metrics_error else ""
            )
            self.stdout.write(
                f"{health:>8}  {cluster.organization.name}/{cluster.name}{'  ' + detail if detail else ''}"
            )
        self.stdout.write(f"{len(results)} clusters checked: " + ", ".join(f"{n} {h}" for h, n in counts.items()) + ".")
