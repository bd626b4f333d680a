"""`reconcile` over many organizations: remote calls and SQL queries of a dry run, time of a dry run and of --apply.

    .venv/bin/python bench/reconcile.py [--orgs 200] [--orphaned 0.1]

Starts moto and OpenBao, creates the PostgreSQL database orgdns_bench_reconcile (BENCH_DATABASE_URL names another)
and makes --orgs organizations as a register job and a certificate leave them: a zone in Route53 and its row, an IAM
user with orgdns's tags, key and policy, and in Vault the AWS key, the CA, two clusters' credentials and a
certificate. A share --orphaned of them also get one orphan of each kind: the credentials of a cluster that has no
row, and an IAM user and a zone of an organization that does not exist. No Kubernetes cluster is involved (a ready
cluster costs one request per certificate installation in it). Uses Redis database 15 (BENCH_REDIS_URL names
another). Drops the database at the end.
"""

import argparse
import os
import secrets
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pages import recreate_database  # noqa: E402
from bench.stack import local_servers  # noqa: E402

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL",
    f"postgres://postgres@127.0.0.1:{os.environ.get('ORGDNS_PG_PORT', '54329')}/orgdns_bench_reconcile",
)


def seed(count, orphaned):
    import boto3
    from django.conf import settings
    from django.utils import timezone

    from provisioning.models import Certificate, Cluster, HostedZone, Organization
    from provisioning.services.backends import Backends
    from provisioning.services.credentials.vault_paths import (
        aws_secret_path,
        ca_path,
        cluster_secret_path,
        material_path,
    )
    from provisioning.services.zones.setup import CREATED_AT_TAG, zone_tags

    route53 = boto3.client("route53", endpoint_url=settings.AWS_ENDPOINT_URL)
    iam = boto3.client("iam", endpoint_url=settings.AWS_ENDPOINT_URL)
    vault = Backends().vault()
    created = timezone.now() - timedelta(days=3)
    every = round(1 / orphaned) if orphaned else 0

    def aws_things(org):
        tags = {**zone_tags(org), CREATED_AT_TAG: created.isoformat()}
        zone_id = route53.create_hosted_zone(Name=org.zone_name, CallerReference=f"bench-{org.name}")["HostedZone"][
            "Id"
        ].split("/")[-1]
        route53.change_tags_for_resource(
            ResourceType="hostedzone", ResourceId=zone_id, AddTags=[{"Key": k, "Value": v} for k, v in tags.items()]
        )
        user = f"orgdns-{org.name}"
        iam.create_user(UserName=user, Tags=[{"Key": k, "Value": v} for k, v in zone_tags(org).items()])
        return zone_id, user, iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]

    for i in range(count):
        org = Organization.objects.create(name=f"org{i:05}")
        zone_id, user, key_id = aws_things(org)
        HostedZone.objects.create(
            organization=org,
            name=org.zone_name,
            state=HostedZone.State.ACTIVE,
            zone_id=zone_id,
            aws_created_at=created,
            iam_user_name=user,
            access_key_id=key_id,
        )
        vault.write(aws_secret_path(vault, org), {"access_key_id": key_id, "secret_access_key": "x"})
        vault.write(ca_path(vault, org), {"certificate": "x", "private_key": "x"})
        for name in ("prod", "staging"):
            cluster = Cluster.objects.create(
                organization=org,
                name=name,
                api_server=f"https://{org.name}-{name}.example",
                owner_id=f"{org.name}-{name}",
                state=Cluster.State.ERROR,  # not ready: no cluster to reach
            )
            vault.write(cluster_secret_path(vault, cluster), {"server": cluster.api_server, "token": "x"})
        certificate = Certificate.objects.create(
            organization=org, dns_names=[f"www.{org.zone_name}"], state=Certificate.State.ACTIVE
        )
        vault.write(material_path(vault, certificate), {"certificate": "x", "private_key": "x"})
        if every and i % every == 0:
            vault.write(
                vault.org_path(org.name, "clusters", f"{org.name}-ghost"), {"server": "https://x", "token": "x"}
            )
            aws_things(Organization(name=f"gone{i:05}"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, default=200)
    parser.add_argument("--orphaned", type=float, default=0.1, help="share of organizations with orphans")
    args = parser.parse_args()

    with local_servers(15, DATABASE_URL, VAULT_PREFIX=f"orgdns-bench-{secrets.token_hex(4)}"):
        recreate_database(DATABASE_URL)
        try:
            import django

            django.setup()
            from django.core.management import call_command
            from django.db import connection, connections
            from django.test.utils import CaptureQueriesContext
            from django.utils import timezone

            from provisioning.clients.retry import CallStats
            from provisioning.services.backends import Backends
            from provisioning.services.reconcile import orphans as reconcile

            call_command("migrate", verbosity=0)
            started = time.perf_counter()
            seed(args.orgs, args.orphaned)
            print(f"seeded {args.orgs} organizations in {time.perf_counter() - started:.0f} s")

            stats = CallStats()
            started = time.perf_counter()
            with CaptureQueriesContext(connection) as queries:
                scan = reconcile.find_orphans(Backends(stats=stats), timezone.now(), timedelta(0))
            elapsed = time.perf_counter() - started
            kinds = {}
            for orphan in scan.actionable:
                kinds[orphan.kind] = kinds.get(orphan.kind, 0) + 1
            print(f"\ndry run: {len(scan.actionable)} orphans {kinds} in {elapsed:.1f} s, {len(queries)} SQL queries")
            for service in ("vault", "iam", "route53"):
                operations = {k.split(".", 1)[1]: n for k, n in stats.calls.items() if k.startswith(f"{service}.")}
                print(
                    f"  {service}: {stats.calls[service]} calls ({stats.calls[service] / args.orgs:.1f} per organization) {operations}"
                )

            stats = CallStats()
            started = time.perf_counter()
            outcomes = [reconcile.remove(orphan, Backends(stats=stats)) for orphan in scan.actionable]
            elapsed = time.perf_counter() - started
            failed = [o for o in outcomes if o.startswith(("failed", "left"))]
            print(
                f"\n--apply: {len(outcomes)} removed in {elapsed:.1f} s ({elapsed / max(1, len(outcomes)) * 1000:.0f} ms each), "
                f"{len(failed)} not; calls {dict(stats.calls)}"
            )
            again = reconcile.find_orphans(Backends(), timezone.now(), timedelta(0))
            print(f"second dry run: {len(again.actionable)} orphans")
            connections.close_all()
        finally:
            recreate_database(DATABASE_URL, drop_only=True)


if __name__ == "__main__":
    main()
