"""What orgdns's ExternalDNS health checks (check_externaldns) cost each cluster's API, and how long one takes:
requests and bytes per check and per cluster-hour, counted by the proxy in front of a real local cluster running the
real ExternalDNS, and the time of a check.

    .venv/bin/python bench/externaldns_health.py [--checks 10] [--every 120 300]

A check is what services/clusters/externaldns_health.py does per cluster: a new connection (a TLS handshake, not counted
here: the proxy counts HTTP requests and answers, headers included), then clients/externaldns.observe(): the
Deployment, the pods, and ExternalDNS's /metrics through the API server's proxy, which reaches the pod at its own
address (each local pod has a network namespace of its own, docs/local-clusters.md). It also reads the cluster's
credentials from Vault once (not counted here). Times include the connection; the /metrics read is the difference
between a check of a ready ExternalDNS and one of an ExternalDNS with no ready pod (which skips it). Needs root.
"""

import argparse
import ipaddress
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from devstack.cluster import ClusterFarm  # noqa: E402
from devstack.processes import free_port, start_moto, stop  # noqa: E402
from provisioning.clients import externaldns  # noqa: E402
from provisioning.clients.kube import ClusterConnection, KubeCluster  # noqa: E402
from provisioning.clients.retry import RetryPolicy  # noqa: E402

NAMESPACE = "external-dns"
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


def deploy(access, moto_url):
    route53 = boto3.client(
        "route53", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    zone_id = route53.create_hosted_zone(Name="acme.bench.test", CallerReference=f"bench-{time.time()}")["HostedZone"][
        "Id"
    ]
    config = externaldns.ExternalDNSConfig(
        namespace=NAMESPACE,
        image="registry.k8s.io/external-dns/external-dns:v0.23.0",
        zone_name="acme.bench.test",
        zone_id=zone_id.split("/")[-1],
        owner_id="bench",
        policy="sync",
        region="us-east-1",
    )
    kube = connect(access)
    for obj in externaldns.manifests(config, "AKIABENCH", "bench-secret"):
        kube.apply(obj)
    kube.wait_for_rollout("external-dns", NAMESPACE, timeout=120)
    kube.close()


def connect(access):
    return KubeCluster(
        ClusterConnection(access.url, access.token, access.ca_pem),
        retry=RetryPolicy(attempts=1),
        permitted_networks=LOOPBACK,
    )


def measure(access, checks):
    """(requests, bytes sent to the cluster, bytes received from it) per check, medians over checks; the check's
    seconds, each; and the last observation."""
    proxy = access.proxy
    rows, seconds = [], []
    for _ in range(checks):
        before = (proxy.request_count, proxy.bytes_received, proxy.bytes_sent)
        started = time.perf_counter()
        kube = connect(access)
        observation = externaldns.observe(kube, NAMESPACE)
        kube.close()
        seconds.append(time.perf_counter() - started)
        after = (proxy.request_count, proxy.bytes_received, proxy.bytes_sent)
        rows.append([b - a for a, b in zip(before, after, strict=True)])
    return [statistics.median(column) for column in zip(*rows, strict=True)], seconds, observation


def timing(seconds):
    ordered = sorted(seconds)
    return f"median {statistics.median(ordered) * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=10)
    parser.add_argument(
        "--every", type=int, nargs="+", default=[120, 300], help="seconds between checks (the cron period)"
    )
    args = parser.parse_args()

    moto, moto_url = start_moto(free_port())
    farm = ClusterFarm(moto_url)
    try:
        access = farm.acquire()
        deploy(access, moto_url)
        time.sleep(5)  # its first sync

        healthy, healthy_seconds, seen = measure(access, args.checks)
        assert seen.metrics is not None, f"the metrics were not read through the API server: {seen.metrics_error}"
        print(
            f"One ExternalDNS v0.23.0 in a local cluster; medians of {args.checks} checks; health seen: "
            f"{externaldns.health_problem(seen, time.time()) or 'ok'}; metrics read through the API server, "
            f"last sync {time.time() - seen.metrics.last_sync:.0f} s ago"
        )
        admin = access.cluster  # make it fail: no pod ready, so no metrics request
        admin.api("DELETE", f"/api/v1/namespaces/{NAMESPACE}/secrets/{externaldns.SECRET_NAME}")
        (pod,) = access.objects("pods", NAMESPACE)
        admin.api("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}", {"gracePeriodSeconds": 0})
        deadline = time.monotonic() + 60
        while "CreateContainerConfigError" not in externaldns.pods_problem(access.objects("pods", NAMESPACE)):
            assert time.monotonic() < deadline, "the replacement pod did not report its missing Secret"
            time.sleep(0.5)
        failing, failing_seconds, seen = measure(access, args.checks)

        cases = [
            ("ready, metrics read through the API server", healthy),
            (f"not ready: {seen.problem[:40]}…", failing),
        ]
        print(
            f"{'case':<48} {'requests':>8} {'sent B':>8} {'recv B':>8}   per cluster-hour at a check every "
            + ", ".join(f"{s} s" for s in args.every)
            + " (requests / KiB)"
        )
        for label, (requests, sent, received) in cases:
            hourly = "   ".join(
                f"{requests * 3600 / every:.0f} / {(sent + received) * 3600 / every / 1024:.0f}" for every in args.every
            )
            print(f"{label:<48} {requests:>8.0f} {sent:>8.0f} {received:>8.0f}   {hourly}")
        print("(plus one Vault read and one TLS handshake per check)")
        print(f"time of a check, ready (3 requests, /metrics through the proxy): {timing(healthy_seconds)}")
        print(f"time of a check, no pod ready (2 requests): {timing(failing_seconds)}")
        extra = statistics.median(healthy_seconds) - statistics.median(failing_seconds)
        print(f"the /metrics read through the API server's proxy (difference of medians): {extra * 1000:.1f} ms")
    finally:
        farm.stop()
        stop(moto)


if __name__ == "__main__":
    main()
