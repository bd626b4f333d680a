"""The zone page of a 10,000-record zone: Route53 calls and server time per request, each page read from moto.

    .venv/bin/python bench/zone_page.py [--records 10000] [--page-size 300]

Creates the PostgreSQL database orgdns_bench_zone_page (BENCH_DATABASE_URL names another) and a zone in moto of
--records record sets: 40 % owned by an ExternalDNS of the organization's cluster (orgdns's marker style,
`_extdns-a.<name>`), 10 % by a foreign ExternalDNS (the default `a-<name>` style, whose markers Route53 lists far from
their records), the rest made by hand. Then walks the whole zone the way a reader does, one request per page, each a
cache miss: the zone page's records (Django's test Client, the whole server stack) and the REST API's records
endpoint (?page_size= --page-size). Prints per request the ListResourceRecordSets calls (counted by orgdns's remote
call counter) and the server time, next to reading the whole zone once, which is what the page did before on every
cache miss. Checks that the pages together say who owns each record set as the whole zone does. Drops the database
at the end.
"""

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pages import percentile, recreate_database  # noqa: E402
from bench.stack import local_servers  # noqa: E402

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL",
    f"postgres://postgres@127.0.0.1:{os.environ.get('ORGDNS_PG_PORT', '54329')}/orgdns_bench_zone_page",
)
OWNER = "bench-prod"


def marker(name, owner):
    value = f'"heritage=external-dns,external-dns/owner={owner},external-dns/resource=service/default/{name[:20]}"'
    return name, "TXT", value


def zone_contents(zone_name, records):
    """`records` - 2 record sets (moto adds the SOA and NS): names, types and values."""
    wanted = records - 2
    ours, foreign = int(wanted * 0.4) // 2, int(wanted * 0.1) // 2
    contents = []
    for i in range(ours):
        contents += [(f"app{i}.{zone_name}", "A", f"10.0.{i // 250}.{i % 250 + 1}")]
        contents += [marker(f"_extdns-a.app{i}.{zone_name}", OWNER)]
    for i in range(foreign):
        contents += [(f"edge{i}.{zone_name}", "A", "198.51.100.7"), marker(f"a-edge{i}.{zone_name}", "other-team")]
    contents += [(f"host{i}.{zone_name}", "A", "203.0.113.9") for i in range(wanted - len(contents))]
    return contents


def fill(route53, zone_id, contents):
    for start in range(0, len(contents), 500):
        changes = [
            {
                "Action": "CREATE",
                "ResourceRecordSet": {"Name": n, "Type": t, "TTL": 300, "ResourceRecords": [{"Value": v}]},
            }
            for n, t, v in contents[start : start + 500]
        ]
        route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})


def listed():
    from provisioning.services.metrics.counters import REMOTE_CALLS

    wanted = {"service": "route53", "operation": "ListResourceRecordSets"}
    samples = [s for metric in REMOTE_CALLS.collect() for s in metric.samples if s.name.endswith("_total")]
    return sum(s.value for s in samples if s.labels == wanted)


def walk(fetch):
    """Request every page, following each page's link to the next: [(calls, seconds)], {(name, type): owner}."""
    from django.core.cache import cache

    measured, owners, following = [], {}, None
    while True:
        cache.clear()
        before, started = listed(), time.perf_counter()
        rows, following = fetch(following)
        measured.append((listed() - before, time.perf_counter() - started))
        owners |= rows
        if following is None:
            return measured, owners


def report(label, measured):
    calls = [c for c, _ in measured]
    ms = [s * 1000 for _, s in measured]
    print(
        f"{label:34} {len(measured):6d} {statistics.mean(calls):6.2f} {max(calls):5.0f} "
        f"{percentile(ms, 50):8.1f} {percentile(ms, 95):8.1f}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=300, help="the API's ?page_size=")
    args = parser.parse_args()

    with local_servers(14, DATABASE_URL, DEBUG="false") as moto_url:
        recreate_database(DATABASE_URL)
        try:
            import boto3
            import django

            django.setup()
            import re
            from html import unescape

            from django.contrib.auth import get_user_model
            from django.core.cache import cache
            from django.core.management import call_command
            from django.db import connections
            from django.test import Client

            from provisioning.clients import externaldns
            from provisioning.models import Cluster, HostedZone, Membership, Organization
            from provisioning.services.aws_accounts import assignment as accounts
            from provisioning.services.backends import Backends
            from provisioning.services.people import api_tokens

            call_command("migrate", verbosity=0)
            route53 = boto3.client("route53", endpoint_url=moto_url, region_name="us-east-1")
            org = Organization.objects.create(name="acme")
            created = route53.create_hosted_zone(Name=org.zone_name, CallerReference=secrets.token_hex(8))
            zone_id = created["HostedZone"]["Id"].split("/")[-1]
            zone = HostedZone.objects.create(
                organization=org, name=org.zone_name, state=HostedZone.State.ACTIVE, zone_id=zone_id
            )
            Cluster.objects.create(organization=org, name="prod", api_server="https://prod.example", owner_id=OWNER)
            owner = get_user_model().objects.create_user("olga", password="!")
            Membership.objects.create(organization=org, user=owner, role=Membership.Role.OWNER)
            client = Client()
            client.force_login(owner)
            token = {"Authorization": f"Bearer {api_tokens.create_token(owner, 'bench', 1)[1]}"}
            client.get("/api/v1/me", headers=token)  # a token's first use records it: not measured

            started = time.perf_counter()
            fill(route53, zone_id, zone_contents(org.zone_name, args.records))
            print(
                f"zone {org.zone_name}: {args.records} record sets written to moto in {time.perf_counter() - started:.0f}s"
            )

            before, started = listed(), time.perf_counter()
            whole = list(Backends().for_account(accounts.of_zone(zone)).route53().record_sets(zone_id))
            whole_calls, whole_seconds = listed() - before, time.perf_counter() - started
            truth = externaldns.record_owners(whole)
            expected = {(rs["Name"], rs["Type"]): truth.get((rs["Name"], rs["Type"])) for rs in whole}

            row = re.compile(
                r"<tr>\s*<td><code>([^<]+)</code></td>\s*<td>([A-Z]+)</td>.*?<td>(?:<a [^>]*>prod</a>|"
                r"<span class=\"badge[^\"]*\">owner ([^<]+)</span>|(<span class=\"muted\">unmanaged))",
                re.S,
            )
            following_link = re.compile(r'hx-get="/orgs/acme/zone/records\?([^"]+)"[^>]*>next')

            def page(following):
                html = client.get("/orgs/acme/zone/records" + (f"?{following}" if following else "")).content.decode()
                rows = {
                    (unescape(m[1]), m[2]): (None if m[4] else unescape(m[3]) if m[3] else OWNER)
                    for m in row.finditer(html)
                }
                link = following_link.search(html)
                return rows, link and unescape(link[1])

            def api_page(following):
                url = following or f"/api/v1/organizations/acme/zone/records?page_size={args.page_size}"
                body = client.get(url, headers=token).json()
                rows = {(r["name"], r["type"]): r["owner_id"] for r in body["items"]}
                return rows, body["next"]

            print(
                f"\n{'':34} {'pages':>6} {'calls per request':>12} {'ms p50':>8} {'p95':>8}\n"
                f"{'':34} {'':6} {'mean':>6} {'max':>5}"
            )
            print(
                f"{'whole zone, once (before)':34} {1:6d} {whole_calls:6.0f} {whole_calls:5.0f} "
                f"{whole_seconds * 1000:8.1f} {whole_seconds * 1000:8.1f}"
            )
            for label, fetch in (
                ("zone page, 100 per page", page),
                (f"API records, page_size={args.page_size}", api_page),
            ):
                measured, shown = walk(fetch)
                report(label, measured)
                wrong = [key for key, owner in expected.items() if shown.get(key, "missing") != owner]
                print(f"{'':34} owners as the whole zone says: {len(expected) - len(wrong)}/{len(expected)}")
            cache.clear()
            client.get("/orgs/acme/zone/records")
            before = listed()
            client.get("/orgs/acme/zone/records")
            print(f"the first page again within 30 s (cached): {listed() - before:.0f} calls")
            connections.close_all()
        finally:
            recreate_database(DATABASE_URL, drop_only=True)


if __name__ == "__main__":
    main()
