"""What orgdns's ExternalDNS health checks (check_externaldns) cost each cluster's API: requests and bytes per check
and per cluster-hour, counted by the proxy in front of a real local cluster running the real ExternalDNS.

    .venv/bin/python bench/externaldns_health.py [--checks 10] [--every 120 300]

A check is what services/externaldns_health.py does per cluster: a new connection (a TLS handshake, not counted
here: the proxy counts HTTP requests and answers, headers included), then clients/externaldns.observe(): the
Deployment, the pods, and a ready pod's /metrics through the API server's pod proxy. It also reads the cluster's
credentials from Vault once (not counted here).

Here the pod proxy answers 400 "address not allowed" (the local ExternalDNS's pod reports 127.0.0.1, which the API
server does not proxy to), so the metrics answer of a real cluster is estimated from the size of the same ExternalDNS's
/metrics read directly from its process.
"""

import argparse
import ipaddress
import statistics
import sys
import time
import urllib.request
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
    """(requests, bytes sent to the cluster, bytes received from it) per check, medians over checks, and the last
    observation."""
    proxy = access.proxy
    rows = []
    for _ in range(checks):
        before = (proxy.request_count, proxy.bytes_received, proxy.bytes_sent)
        kube = connect(access)
        observation = externaldns.observe(kube, NAMESPACE)
        kube.close()
        after = (proxy.request_count, proxy.bytes_received, proxy.bytes_sent)
        rows.append([b - a for a, b in zip(before, after, strict=True)])
    return [statistics.median(column) for column in zip(*rows, strict=True)], observation


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
        (process,) = access.runner.pods.values()
        metrics_body = len(urllib.request.urlopen(f"http://127.0.0.1:{process.port}/metrics", timeout=5).read())

        healthy, seen = measure(access, args.checks)
        print(
            f"One ExternalDNS v0.23.0 in a local cluster; medians of {args.checks} checks; health seen: "
            f"{externaldns.health_problem(seen, time.time()) or 'ok'}; metrics: {seen.metrics_error or 'read'}"
        )
        admin = access.cluster  # make it fail: no pod ready, so no metrics request
        admin.api("DELETE", f"/api/v1/namespaces/{NAMESPACE}/secrets/{externaldns.SECRET_NAME}")
        (pod,) = access.objects("pods", NAMESPACE)
        admin.api("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}", {"gracePeriodSeconds": 0})
        deadline = time.monotonic() + 60
        while "CreateContainerConfigError" not in externaldns.pods_problem(access.objects("pods", NAMESPACE)):
            assert time.monotonic() < deadline, "the replacement pod did not report its missing Secret"
            time.sleep(0.5)
        failing, seen = measure(access, args.checks)

        proxied_error = healthy[2] - failing[2]  # the 400 answer of the proxy request here
        real = [healthy[0], healthy[1], healthy[2] - proxied_error + metrics_body + 200]  # ~200 B of answer headers
        cases = [
            ("ready, metrics refused here (measured)", healthy),
            ("ready, metrics answered (estimated)", real),
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
        print(
            f"(ExternalDNS's /metrics body: {metrics_body} bytes; plus one Vault read and one TLS handshake per check)"
        )
    finally:
        farm.stop()
        stop(moto)


if __name__ == "__main__":
    main()
