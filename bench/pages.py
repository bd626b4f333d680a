"""Server time and SQL queries per page and API endpoint with 10,000 organizations and 50,000 clusters, next to the
Django admin.

    .venv/bin/python bench/pages.py [--orgs 10000] [--clusters 5] [--requests 40]

Creates the PostgreSQL database orgdns_bench_pages (BENCH_DATABASE_URL names another), seeds it with bulk inserts
(per organization: an owner, a zone, its clusters each with a register operation, a certificate installed in its
first cluster), then requests every list and detail page, and every list and detail endpoint of the REST API (with
a personal API token), with Django's test Client (the whole server stack, no network) as a staff superuser and as
the owner of one organization. Prints p50/p95 server time and the number of SQL queries per page; each list is
followed by the Django admin change list of the same model. Drops the database at the end.
"""

import argparse
import os
import secrets
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL",
    f"postgres://postgres@127.0.0.1:{os.environ.get('ORGDNS_PG_PORT', '54329')}/orgdns_bench_pages",
)
BATCH = 5000


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def recreate_database(url, drop_only=False):
    """Drop the benchmark database, and create it again unless drop_only (connecting to the server's `postgres`)."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    server = parts._replace(path="/postgres").geturl()
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def seed(orgs, clusters_per_org):
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from provisioning.models import (
        Certificate,
        CertificateInstallation,
        Cluster,
        HostedZone,
        Membership,
        Operation,
        Organization,
    )

    User = get_user_model()
    now = timezone.now()
    started = time.monotonic()
    organizations = Organization.objects.bulk_create(
        [Organization(name=f"org{i:05}") for i in range(orgs)], batch_size=BATCH
    )
    owners = User.objects.bulk_create(
        [User(username=f"owner{i:05}", password="!") for i in range(orgs)], batch_size=BATCH
    )
    Membership.objects.bulk_create(
        [
            Membership(user=u, organization=o, role=Membership.Role.OWNER)
            for u, o in zip(owners, organizations, strict=True)
        ],
        batch_size=BATCH,
    )
    HostedZone.objects.bulk_create(
        [
            HostedZone(
                organization=o,
                name=o.zone_name,
                state=HostedZone.State.ACTIVE,
                zone_id=f"Z{o.pk:012}",
                delegated=i % 10 != 0,
                iam_user_name=f"orgdns-{o.name}",
                access_key_id=f"AKIA{o.pk:016}",
                access_key_created_at=now,
                aws_created_at=now,
            )
            for i, o in enumerate(organizations)
        ],
        batch_size=BATCH,
    )
    states = [Cluster.State.READY] * 8 + [Cluster.State.ERROR, Cluster.State.DEREGISTERED]
    clusters = Cluster.objects.bulk_create(
        [
            Cluster(
                organization=o,
                name=f"c{c}",
                api_server=f"https://c{c}.{o.name}.k8s.example:6443",
                owner_id=f"{o.name}-c{c}",
                state=states[(o.pk + c) % len(states)],
            )
            for o in organizations
            for c in range(clusters_per_org)
        ],
        batch_size=BATCH,
    )
    certificates = Certificate.objects.bulk_create(
        [
            Certificate(
                organization=o,
                dns_names=[f"app.{o.zone_name}", f"*.{o.zone_name}"],
                state=Certificate.State.ACTIVE,
                not_before=now - timedelta(days=i % 90),
                not_after=now + timedelta(days=90 - i % 90),
            )
            for i, o in enumerate(organizations)
        ],
        batch_size=BATCH,
    )
    first_cluster = {}
    for cluster in clusters:
        first_cluster.setdefault(cluster.organization_id, cluster)
    CertificateInstallation.objects.bulk_create(
        [
            CertificateInstallation(
                certificate=c,
                cluster=first_cluster[c.organization_id],
                namespace="web",
                secret_name="app-tls",
                state="installed",
            )
            for c in certificates
        ],
        batch_size=BATCH,
    )
    Operation.objects.bulk_create(
        [
            Operation(
                kind="register",
                organization_id=c.organization_id,
                cluster=c,
                progress=100,
                step="Done",
                state=Operation.State.FAILED if c.state == Cluster.State.ERROR else Operation.State.SUCCEEDED,
            )
            for c in clusters
        ]
        + [
            Operation(
                kind="issue_certificate",
                organization_id=c.organization_id,
                certificate=c,
                state="succeeded",
            )
            for c in certificates
        ],
        batch_size=BATCH,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"seeded {orgs} organizations, {len(clusters)} clusters, {Operation.objects.count()} operations, "
        f"{len(certificates)} certificates in {time.monotonic() - started:.1f}s"
    )
    return organizations[orgs // 2]


def pages(org):
    """(label, url, staff only) for every page, each list followed by the admin change list of the same model."""
    from django.urls import reverse

    cluster = org.clusters.first()
    return [
        ("home", reverse("home"), False),
        ("organizations", reverse("organization-list"), False),
        ("  admin", reverse("admin:provisioning_organization_changelist"), True),
        ("clusters", reverse("cluster-list"), False),
        ("  admin", reverse("admin:provisioning_cluster_changelist"), True),
        ("clusters ?q=c3&state=error", reverse("cluster-list") + "?q=c3&state=error", False),
        (
            "  admin ?q=c3&state=error",
            reverse("admin:provisioning_cluster_changelist") + "?q=c3&state__exact=error",
            True,
        ),
        ("clusters, last page", reverse("cluster-list") + "?page=last", False),
        ("hosted zones", reverse("zone-list"), False),
        ("  admin", reverse("admin:provisioning_hostedzone_changelist"), True),
        ("operations", reverse("operation-list"), False),
        ("  admin", reverse("admin:provisioning_operation_changelist"), True),
        ("certificates", reverse("certificate-list"), False),
        ("  admin", reverse("admin:provisioning_certificate_changelist"), True),
        ("organization", reverse("organization", args=[org.name]), False),
        ("hosted zone", reverse("zone", args=[org.name]), False),
        ("members", reverse("members", args=[org.name]), False),
        ("cluster", reverse("cluster", args=[org.name, cluster.pk]), False),
        ("operation", reverse("operation", args=[cluster.operations.first().pk]), False),
        ("certificates of the org", reverse("certificates", args=[org.name]), False),
        ("certificate", reverse("certificate", args=[org.name, org.certificates.first().pk]), False),
        ("Route53 budget", reverse("route53-budget"), True),
    ]


def api_endpoints(org):
    """(label, url) for every list and detail endpoint of the API (not the zone's records: those are Route53's)."""
    cluster = org.clusters.first()
    base = f"/api/v1/organizations/{org.name}"
    return [
        ("api organizations", "/api/v1/organizations"),
        ("api organizations ?name_contains=org0", "/api/v1/organizations?name_contains=org0"),
        ("api organization", base),
        ("api members", f"{base}/members"),
        ("api clusters", f"{base}/clusters"),
        ("api cluster", f"{base}/clusters/{cluster.pk}"),
        ("api zone", f"{base}/zone"),
        ("api certificates", f"{base}/certificates"),
        ("api certificate", f"{base}/certificates/{org.certificates.first().pk}"),
        ("api operations", "/api/v1/operations"),
        ("api operations, last page", "/api/v1/operations?page=600&page_size=100"),
        ("api operations ?organization=", f"/api/v1/operations?organization={org.name}"),
        ("api operation", f"/api/v1/operations/{cluster.operations.first().pk}"),
        ("api audit events", "/api/v1/audit-events"),
    ]


def measure(client, url, requests, headers=None):
    """(p50 ms, p95 ms, queries) of GET url."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    headers = headers or {}
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, headers=headers)
    if response.status_code not in (200, 286):
        raise SystemExit(f"{url}: HTTP {response.status_code}")
    count = len(queries)  # before the next requests reset the connection's query log
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        client.get(url, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 50), percentile(times, 95), count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, default=10_000)
    parser.add_argument("--clusters", type=int, default=5, help="per organization")
    parser.add_argument("--requests", type=int, default=40, help="timed requests per page and user")
    args = parser.parse_args()

    os.environ.update(
        DJANGO_SETTINGS_MODULE="orgdns_site.settings",
        DATABASE_URL=DATABASE_URL,
        LOG_LEVEL="WARNING",
        DEBUG="false",
        ORGDNS_API_RATE="1000000",
        ORGDNS_API_BURST="1000000",  # measure the API, not its rate limit
        SECRET_KEY=secrets.token_urlsafe(32),
    )
    recreate_database(DATABASE_URL)
    try:
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.db import connections
        from django.test import Client

        from provisioning.services.people import api_tokens

        call_command("migrate", verbosity=0)
        org = seed(args.orgs, args.clusters)
        staff = get_user_model().objects.create_superuser("sam", password="!")
        owner = org.memberships.get().user
        clients, tokens = {}, {}
        for name, user in (("staff", staff), ("owner", owner)):
            clients[name] = Client()
            clients[name].force_login(user)
            tokens[name] = {"Authorization": f"Bearer {api_tokens.create_token(user, 'bench', 1)[1]}"}
            clients[name].get("/api/v1/me", headers=tokens[name])  # a token's first use records it: not measured

        print(
            f"\n{args.requests} requests per page; server time in ms; 'owner' owns {org.name} (sees 1 organization)\n"
        )
        print(f"{'page':30} {'staff p50':>9} {'p95':>7} {'queries':>7}   {'owner p50':>9} {'p95':>7} {'queries':>7}")
        for label, url, staff_only in pages(org):
            staff_row = "{:9.1f} {:7.1f} {:7d}".format(*measure(clients["staff"], url, args.requests))
            owner_row = (
                "" if staff_only else "{:9.1f} {:7.1f} {:7d}".format(*measure(clients["owner"], url, args.requests))
            )
            print(f"{label:30} {staff_row}   {owner_row}")
        print(
            f"\nREST API, with a personal API token\n\n{'endpoint':38} {'staff p50':>9} {'p95':>7} {'queries':>7}   {'owner p50':>9} {'p95':>7} {'queries':>7}"
        )
        for label, url in api_endpoints(org):
            rows = [
                "{:9.1f} {:7.1f} {:7d}".format(*measure(clients[who], url, args.requests, tokens[who]))
                for who in ("staff", "owner")
            ]
            print(f"{label:38} {rows[0]}   {rows[1]}")
        connections.close_all()
    finally:
        recreate_database(DATABASE_URL, drop_only=True)


if __name__ == "__main__":
    main()
