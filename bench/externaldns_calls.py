"""Route53 calls made by one real ExternalDNS, deployed with orgdns's manifests into a local cluster, counted by a
proxy in front of moto: idle, and with one Service change per sync, for zones of 10 and 1,000 records.

    .venv/bin/python bench/externaldns_calls.py [--records 10 1000] [--zones 1] [--syncs 3] [--interval 15]
        [--flag=--aws-zones-cache-duration=1h --flag=--txt-cache-interval=1h --flag=--events ...]

ExternalDNS runs with orgdns's flags except --interval, shortened to --interval seconds so that a few syncs take
minutes, not hours; a sync's calls do not depend on the interval, so calls per hour are given for a 1m interval.
--flag adds an ExternalDNS flag or replaces orgdns's flag of that name (e.g. the caches, to measure the cached
configuration).
"""

import argparse
import ipaddress
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from devstack.awsproxy import CountingProxy  # noqa: E402
from devstack.cluster import ClusterFarm  # noqa: E402
from devstack.processes import free_port, start_moto, stop  # noqa: E402
from provisioning.clients import externaldns  # noqa: E402
from provisioning.clients.kube import ClusterConnection, KubeCluster  # noqa: E402

ORGDNS_INTERVAL_SECONDS = 60


def fill_zone(route53, zone_id, zone_name, records):
    for start in range(0, records, 500):
        changes = [
            {
                "Action": "CREATE",
                "ResourceRecordSet": {
                    "Name": f"host{i}.{zone_name}",
                    "Type": "A",
                    "TTL": 300,
                    "ResourceRecords": [{"Value": "198.51.100.1"}],
                },
            }
            for i in range(start, min(records, start + 500))
        ]
        route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})


def with_flags(args, interval, flags=()):
    """orgdns's args with --interval=<interval>s and each of `flags` added or replacing the flag of its name."""
    flags = [f"--interval={interval}s", *flags]
    names = {flag.split("=", 1)[0] for flag in flags}
    return [arg for arg in args if arg.split("=", 1)[0] not in names] + flags


def measure(farm, moto_url, proxy, records, zones, syncs, interval, flags=()):
    route53 = boto3.client(
        "route53", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    for zone in route53.list_hosted_zones()["HostedZones"]:
        _empty_and_delete(route53, zone)
    zone_name = "acme.bench.test"
    zone_id = route53.create_hosted_zone(Name=zone_name, CallerReference=f"bench-{time.time()}")["HostedZone"][
        "Id"
    ].split("/")[-1]
    for i in range(zones - 1):
        route53.create_hosted_zone(Name=f"other{i}.bench.test", CallerReference=f"bench-{i}-{time.time()}")
    fill_zone(route53, zone_id, zone_name, records)

    access = farm.acquire()
    config = externaldns.ExternalDNSConfig(
        namespace="external-dns",
        image="registry.k8s.io/external-dns/external-dns:v0.23.0",
        zone_name=zone_name,
        zone_id=zone_id,
        owner_id="bench",
        policy="sync",
        region="us-east-1",
    )
    kube = KubeCluster(
        ClusterConnection(access.cluster.url, access.token, access.ca_pem),
        permitted_networks=[ipaddress.ip_network("127.0.0.0/8")],
    )
    for obj in externaldns.manifests(config, "AKIABENCH", "bench-secret"):
        if obj["kind"] == "Deployment":
            args = obj["spec"]["template"]["spec"]["containers"][0]["args"]
            args[:] = with_flags(args, interval, flags)
        kube.apply(obj)
    kube.wait_for_rollout("external-dns", "external-dns", timeout=120)
    time.sleep(interval / 2)  # its first sync, at start
    start = proxy.snapshot()
    time.sleep(interval * syncs)
    idle = proxy.snapshot() - start

    start = proxy.snapshot()
    for i in range(syncs):
        access.cluster.create_load_balancer_service(f"svc{i}", f"svc{i}.{zone_name}", f"203.0.113.{i + 1}")
        time.sleep(interval)
    changing = proxy.snapshot() - start
    kube.close()
    farm.release(access)
    return {
        label: {op: count / syncs for op, count in calls.items()}
        for label, calls in (("idle", idle), ("one change per sync", changing))
    }


def _empty_and_delete(route53, zone):
    zone_id = zone["Id"].split("/")[-1]
    pages = route53.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone_id)
    changes = [
        {"Action": "DELETE", "ResourceRecordSet": rs}
        for page in pages
        for rs in page["ResourceRecordSets"]
        if rs["Type"] not in ("SOA", "NS")
    ]
    for start in range(0, len(changes), 500):
        route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes[start : start + 500]})
    route53.delete_hosted_zone(Id=zone_id)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--zones", type=int, default=1, help="hosted zones in the account (ListHostedZones pages 100)")
    parser.add_argument("--syncs", type=int, default=3)
    parser.add_argument("--interval", type=int, default=15)
    parser.add_argument("--flag", action="append", default=[], help="an ExternalDNS flag to add or replace")
    args = parser.parse_args()

    moto, moto_url = start_moto(free_port())
    proxy = CountingProxy(moto_url)
    farm = ClusterFarm(proxy.url)
    try:
        print(
            f"Route53 calls of one ExternalDNS v0.23.0 with orgdns's flags{''.join(' ' + f for f in args.flag)}, "
            f"{args.zones} zone(s) in the account, per sync (averaged over {args.syncs}) and per hour at --interval=1m:"
        )
        for records in args.records:
            for label, per_sync in measure(
                farm, moto_url, proxy, records, args.zones, args.syncs, args.interval, args.flag
            ).items():
                total = sum(per_sync.values())
                detail = ", ".join(f"{op} {n:g}" for op, n in sorted(per_sync.items()))
                hourly = total * 3600 / ORGDNS_INTERVAL_SECONDS
                print(
                    f"  {records:>5} records, {label:<20} {total:6.2f} calls/sync  {hourly:7.0f} calls/hour   ({detail})"
                )
    finally:
        farm.stop()
        proxy.stop()
        stop(moto)


if __name__ == "__main__":
    main()
