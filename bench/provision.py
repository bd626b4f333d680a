"""Provision N organizations × M clusters through the real job path against the local stack.

    .venv/bin/python bench/provision.py [--orgs 3] [--clusters 2]

Each cluster is a real local control plane (devstack/cluster.py, about 550 MB each) whose ExternalDNS really runs,
so a job includes waiting for it to become available. Prints p50/p95 job time and the remote calls per job by
service, for the first cluster of an organization and for the later ones, and the clusters' start time.
Uses a throwaway SQLite database and Redis database 13.
"""

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import local_servers  # noqa: E402
from devstack.cluster import ClusterFarm  # noqa: E402

CREATES = [
    "route53.CreateHostedZone",
    "route53.ChangeResourceRecordSets",
    "route53.ChangeTagsForResource",
    "iam.CreateUser",
    "iam.PutUserPolicy",
    "iam.CreateAccessKey",
]


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, default=3)
    parser.add_argument("--clusters", type=int, default=2)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="orgdns-bench-")
    with local_servers(13, f"sqlite:///{workdir}/bench.sqlite3") as moto_url:
        farm = ClusterFarm(moto_url, logs=workdir)
        try:
            import boto3
            import django

            django.setup()
            import django_rq
            from django.conf import settings
            from django.core.management import call_command

            from orgdns_site.workers import SimpleWorker
            from provisioning.clients.kube import ClusterConnection
            from provisioning.models import Operation
            from provisioning.services.clusters import actions as clusters
            from provisioning.services.organizations import actions as organizations

            parent = boto3.client("route53", endpoint_url=moto_url).create_hosted_zone(
                Name="bench.example.com", CallerReference="bench"
            )
            settings.ORGDNS_PARENT_ZONE_ID = parent["HostedZone"]["Id"].split("/")[-1]
            call_command("migrate", verbosity=0)
            queue = django_rq.get_queue("default")
            queue.connection.flushdb()

            first, later = [], []
            started = time.monotonic()
            for o in range(args.orgs):
                org = organizations.create_organization(f"org{o}")
                for c in range(args.clusters):
                    access = farm.start_cluster()
                    connection = ClusterConnection(access.cluster.url, access.token, access.ca_pem)
                    _, operation = clusters.register_cluster(org, f"c{c}", connection)
                    SimpleWorker([queue], connection=queue.connection).work(burst=True, logging_level="WARNING")
                    operation.refresh_from_db()
                    if operation.state != Operation.State.SUCCEEDED:
                        raise SystemExit(f"{org.name}/c{c} failed: {operation.error}")
                    (first if c == 0 else later).append(operation)
            total = time.monotonic() - started
            starts = [access.cluster.start_seconds for access in farm.clusters]

            print(
                f"{args.orgs} organizations x {args.clusters} clusters = {len(first) + len(later)} jobs in {total:.1f}s "
                f"(Route53 limited to {settings.ORGDNS_ROUTE53_RATE}/s); a local cluster starts in "
                f"{statistics.median(starts):.1f}s (median)"
            )
            for label, ops in (("first cluster of an org", first), ("later clusters", later)):
                if not ops:
                    continue
                seconds = [(op.finished_at - op.started_at).total_seconds() for op in ops]
                calls = Counter()
                for op in ops:
                    calls.update(op.remote_calls)
                per_job = {k: v / len(ops) for k, v in sorted(calls.items())}
                services = {k: v for k, v in per_job.items() if "." not in k}
                print(
                    f"\n{label}: {len(ops)} jobs, p50 {percentile(seconds, 50):.2f}s, p95 {percentile(seconds, 95):.2f}s"
                )
                print("  remote calls per job: " + ", ".join(f"{k} {v:g}" for k, v in services.items()))
                print("  creates per job:      " + ", ".join(f"{k} {per_job.get(k, 0):g}" for k in CREATES))
        finally:
            farm.stop()


if __name__ == "__main__":
    main()
