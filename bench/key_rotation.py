"""Rotate one organization's access key R times with M clusters, through the real job path against the local stack.

    .venv/bin/python bench/key_rotation.py [--clusters 2] [--rotations 3]

Each cluster is a real local control plane (devstack/cluster.py, about 550 MB each) whose ExternalDNS really runs, so
a rotation includes each cluster's rollout. Prints p50/max rotation time, how long the user held two keys (from
the new key's creation in IAM to the end of the job), and the remote calls per rotation by service.
Uses a throwaway SQLite database and Redis database 14 (BENCH_REDIS_URL).
"""

import argparse
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import local_servers  # noqa: E402
from devstack.cluster import ClusterFarm  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=2)
    parser.add_argument("--rotations", type=int, default=3)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="orgdns-bench-")
    with local_servers(14, f"sqlite:///{workdir}/bench.sqlite3") as moto_url:
        farm = ClusterFarm(moto_url, logs=workdir)
        try:
            import boto3
            import django

            django.setup()
            import django_rq
            from django.core.management import call_command

            from orgdns_site.workers import SimpleWorker
            from provisioning.clients.kube import ClusterConnection
            from provisioning.models import Operation
            from provisioning.services.clusters import actions as clusters
            from provisioning.services.credentials import actions as key_rotation
            from provisioning.services.organizations import actions as organizations

            call_command("migrate", verbosity=0)
            queue = django_rq.get_queue("default")
            queue.connection.flushdb()
            iam = boto3.client("iam", endpoint_url=moto_url, region_name="us-east-1")

            def run(operation):
                SimpleWorker([queue], connection=queue.connection).work(burst=True, logging_level="WARNING")
                operation.refresh_from_db()
                if operation.state != Operation.State.SUCCEEDED:
                    raise SystemExit(f"{operation.get_kind_display()} failed: {operation.error}")
                return operation

            org = organizations.create_organization("bench")
            for c in range(args.clusters):
                access = farm.start_cluster()
                run(
                    clusters.register_cluster(
                        org, f"c{c}", ClusterConnection(access.cluster.url, access.token, access.ca_pem)
                    )[1]
                )

            rotations, two_keys = [], []
            for _ in range(args.rotations):
                operation = run(key_rotation.request_rotation(org, "bench"))
                (key,) = iam.list_access_keys(UserName="orgdns-bench")["AccessKeyMetadata"]
                rotations.append(operation)
                two_keys.append((operation.finished_at - key["CreateDate"]).total_seconds())

            seconds = [(op.finished_at - op.started_at).total_seconds() for op in rotations]
            calls = Counter()
            for op in rotations:
                calls.update(op.remote_calls)
            services = {k: v / len(rotations) for k, v in sorted(calls.items()) if "." not in k}
            print(
                f"{args.rotations} rotations of one organization's key with {args.clusters} clusters (real ExternalDNS)"
            )
            print(
                f"  rotation time: p50 {statistics.median(seconds):.1f}s, max {max(seconds):.1f}s "
                f"({statistics.median(seconds) / args.clusters:.1f}s per cluster)"
            )
            print(f"  two keys held for: p50 {statistics.median(two_keys):.1f}s, max {max(two_keys):.1f}s")
            print("  remote calls per rotation: " + ", ".join(f"{k} {v:g}" for k, v in services.items()))
        finally:
            farm.stop()


if __name__ == "__main__":
    main()
