"""Garbage collection of hosted zones at scale: planning time and SQL queries, teardown throughput.

    .venv/bin/python bench/gc.py [--zones 10000] [--teardowns 40] [--records 20] [--workers 4]

Creates the PostgreSQL database orgdns_bench_gc (BENCH_DATABASE_URL names another) and seeds it with
bulk inserts: zones of 1 to 60 days, half of them used by a cluster, with their register operations and a
past teardown for one organization in ten. Plans the GC at 1,000 and at --zones zones (median of 5 runs, and
the SQL queries of one). Then tears down --teardowns real young zones (each with --records record sets, an IAM
user with key and policy, a Vault secret) in moto and OpenBao with --workers RQ worker processes sharing the
Route53 rate limiter (ORGDNS_ROUTE53_RATE, default 5/s), and prints the throughput. Uses Redis database 15
(BENCH_REDIS_URL names another). Drops the database at the end.
"""

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pages import recreate_database  # noqa: E402
from bench.stack import local_servers  # noqa: E402

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:{os.environ.get('ORGDNS_PG_PORT', '54329')}/orgdns_bench_gc"
)
BATCH = 5000


def seed(first, count):
    """Organizations first..first+count-1, each with a zone; the odd ones with a cluster using it."""
    from django.db import connection
    from django.utils import timezone

    from provisioning.models import Cluster, HostedZone, Operation, Organization

    now = timezone.now()
    orgs = Organization.objects.bulk_create(
        [Organization(name=f"org{i:05}") for i in range(first, first + count)], batch_size=BATCH
    )
    HostedZone.objects.bulk_create(
        [
            HostedZone(
                organization=o,
                name=o.zone_name,
                state=HostedZone.State.ACTIVE,
                zone_id=f"Z{o.pk:012}",
                aws_created_at=now - timedelta(days=1 + o.pk % 60),
                iam_user_name=f"orgdns-{o.name}",
            )
            for o in orgs
        ],
        batch_size=BATCH,
    )
    clusters = Cluster.objects.bulk_create(
        [
            Cluster(organization=o, name="prod", api_server=f"https://{o.name}.k8s.example", owner_id=f"{o.name}-prod")
            for o in orgs
            if o.pk % 2
        ],
        batch_size=BATCH,
    )
    Operation.objects.bulk_create(
        [Operation(kind="register", organization_id=c.organization_id, cluster=c, state="succeeded") for c in clusters]
        + [Operation(kind="delete_zone", organization=o, state="succeeded") for o in orgs if o.pk % 10 == 0],
        batch_size=BATCH,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def measure_plan(runs=5):
    """(median seconds, SQL queries, zones planned) of zone_gc.plan over every zone."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from provisioning.services.zones import gc as zone_gc

    with CaptureQueriesContext(connection) as queries:
        planned = zone_gc.plan(timezone.now())
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        zone_gc.plan(timezone.now())
        times.append(time.perf_counter() - started)
    return statistics.median(times), len(queries), len(planned)


def real_zones(count, records):
    """`count` young unused zones that exist in moto, IAM and Vault, as a register job leaves them."""
    import boto3
    from django.conf import settings
    from django.utils import timezone

    from provisioning.clients.aws import zone_scoped_policy
    from provisioning.models import HostedZone, Organization
    from provisioning.services.backends import Backends
    from provisioning.services.credentials.vault_paths import aws_secret_path
    from provisioning.services.zones.setup import POLICY_NAME

    route53 = boto3.client("route53", endpoint_url=settings.AWS_ENDPOINT_URL)
    iam = boto3.client("iam", endpoint_url=settings.AWS_ENDPOINT_URL)
    vault = Backends().vault()
    orgs = []
    for i in range(count):
        org = Organization.objects.create(name=f"live{i:03}")
        created = route53.create_hosted_zone(Name=org.zone_name, CallerReference=f"bench-{org.name}")["HostedZone"]
        zone_id = created["Id"].split("/")[-1]
        route53.change_resource_record_sets(
            HostedZoneId=zone_id,
            ChangeBatch={
                "Changes": [
                    {
                        "Action": "CREATE",
                        "ResourceRecordSet": {
                            "Name": f"app{r}.{org.zone_name}",
                            "Type": "A",
                            "TTL": 300,
                            "ResourceRecords": [{"Value": f"10.0.0.{r + 1}"}],
                        },
                    }
                    for r in range(records)
                ]
            },
        )
        user = f"orgdns-{org.name}"
        iam.create_user(UserName=user)
        iam.put_user_policy(
            UserName=user, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(zone_scoped_policy(zone_id))
        )
        key = iam.create_access_key(UserName=user)["AccessKey"]
        vault.write(
            aws_secret_path(vault, org),
            {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]},
        )
        HostedZone.objects.create(
            organization=org,
            name=org.zone_name,
            state=HostedZone.State.ACTIVE,
            zone_id=zone_id,
            aws_created_at=timezone.now(),
            iam_user_name=user,
            access_key_id=key["AccessKeyId"],
        )
        orgs.append(org)
    return Organization.objects.filter(pk__in=[o.pk for o in orgs])


def tear_down(orgs, workers):
    """Queue the teardowns the GC plans for these organizations, run them with worker processes; print figures."""
    from django.conf import settings
    from django.utils import timezone

    from provisioning.models import HostedZone, Operation
    from provisioning.services.zones import gc as zone_gc

    now = timezone.now()
    planned = zone_gc.plan(now, orgs)
    zone_gc.apply(planned, now)
    queued = [entry.operation.pk for entry in planned if entry.operation]
    started = time.monotonic()
    processes = [
        subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", "--burst", "default"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    for process in processes:
        process.wait()
    elapsed = time.monotonic() - started
    operations = Operation.objects.filter(pk__in=queued)
    succeeded = operations.filter(state=Operation.State.SUCCEEDED).count()
    route53 = sum(op.remote_calls.get("route53", 0) for op in operations)
    deleted = HostedZone.objects.filter(organization__in=orgs, state=HostedZone.State.DELETED).count()
    per_zone = route53 / max(1, len(queued))
    print(
        f"\nteardown: {len(queued)} zones queued, {succeeded} succeeded, {deleted} marked deleted, {workers} worker processes"
    )
    print(f"  wall time {elapsed:.1f}s (including worker start-up): {len(queued) / elapsed:.2f} zones/s")
    print(
        f"  Route53 calls: {route53} ({per_zone:.1f} per zone), {route53 / elapsed:.2f}/s against a limit of {settings.ORGDNS_ROUTE53_RATE}/s"
    )
    window = settings.ORGDNS_GC_FINAL_WINDOW.total_seconds()
    print(
        f"  at that rate a {window / 60:.0f}-minute final window deletes about {int(window * settings.ORGDNS_ROUTE53_RATE / per_zone)} zones"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zones", type=int, default=10_000)
    parser.add_argument("--teardowns", type=int, default=40)
    parser.add_argument("--records", type=int, default=20, help="record sets per torn-down zone")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    with local_servers(
        15, DATABASE_URL, VAULT_PREFIX=f"orgdns-bench-{secrets.token_hex(4)}", ORGDNS_JOB_RETRY_INTERVALS=""
    ):
        recreate_database(DATABASE_URL)
        try:
            import django

            django.setup()
            from django.core.management import call_command
            from django.db import connections

            call_command("migrate", verbosity=0)
            print("GC planning: every zone active or being deleted, usage and last teardown from the database")
            print(f"{'zones':>7} {'median ms':>10} {'SQL queries':>12}")
            small = min(1_000, args.zones)
            for first, count in ((0, small), (small, args.zones - small)):
                seed(first, count)
                seconds, queries, planned = measure_plan()
                print(f"{planned:7d} {seconds * 1000:10.1f} {queries:12d}")
            tear_down(real_zones(args.teardowns, args.records), args.workers)
            connections.close_all()
        finally:
            recreate_database(DATABASE_URL, drop_only=True)


if __name__ == "__main__":
    main()
