"""The local clusters' ExternalDNS pods have network namespaces and addresses of their own (devstack/podnet.py), so
the API server's proxy reaches their port 7979 as in any cluster; the machine's own interfaces get no address, a pod
opens no connection to the machine's addresses, and nothing is left behind when the devstack stops or dies."""

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack import podnet
from provisioning.clients import externaldns
from provisioning.clients.kube import KubeCluster
from provisioning.clients.retry import RetryPolicy
from tests.conftest import wait_until

NAMESPACE = "external-dns"
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


def deploy_externaldns(access, aws):
    """ExternalDNS as orgdns deploys it, applied with the cluster admin's token; its ready pod."""
    zone_id = aws.route53.create_hosted_zone(Name="acme.podnet.test", CallerReference=f"podnet-{time.time()}")[
        "HostedZone"
    ]["Id"]
    config = externaldns.ExternalDNSConfig(
        namespace=NAMESPACE,
        image="registry.k8s.io/external-dns/external-dns:v0.23.0",
        zone_name="acme.podnet.test",
        zone_id=zone_id.split("/")[-1],
        owner_id="podnet",
        policy="sync",
        region="us-east-1",
    )
    kube = admin(access)
    for obj in externaldns.manifests(config, "AKIAPODNET", "podnet-secret"):
        kube.apply(obj)
    kube.wait_for_rollout(externaldns.DEPLOYMENT_NAME, NAMESPACE, timeout=120)
    kube.close()
    (pod,) = [p for p in access.objects("pods", NAMESPACE) if not p["metadata"].get("deletionTimestamp")]
    return pod


def admin(access):
    """The cluster admin's client, through the fault proxy in front of the API server."""
    from provisioning.clients.kube import ClusterConnection

    connection = ClusterConnection(server=access.url, token=access.cluster.admin_token, ca_pem=access.ca_pem)
    return KubeCluster(connection, retry=RetryPolicy(attempts=1), permitted_networks=LOOPBACK)


def addresses_outside_pods():
    """Every IPv4 and IPv6 address on the machine's own interfaces (its network namespace), as (interface, address)."""
    shown = json.loads(subprocess.run(["ip", "-j", "address", "show"], capture_output=True, check=True).stdout)
    return {(link["ifname"], info["local"]) for link in shown for info in link.get("addr_info", [])}


def namespace_of(access, pod):
    (state,) = [s for s in access.runner.pods.values() if s.uid == pod["metadata"]["uid"]]
    return state.network


def test_the_api_servers_proxy_reaches_externaldns_at_the_pods_own_address(cluster_api, aws):
    before = addresses_outside_pods()
    pod = deploy_externaldns(cluster_api, aws)
    address = ipaddress.ip_address(pod["status"]["podIP"])
    assert address in podnet.POD_NETWORK and pod["status"]["podIPs"] == [{"ip": str(address)}]
    network = namespace_of(cluster_api, pod)
    assert network.name in podnet.namespaces(os.getpid())

    # No address was added to the machine's own interfaces: its end of the veth pair has none, not even IPv6's.
    assert addresses_outside_pods() == before
    shown = subprocess.run(["ip", "-j", "address", "show", "dev", network.host_link], capture_output=True, check=True)
    (link,) = json.loads(shown.stdout)
    assert link["operstate"] == "UP" and link["addr_info"] == []

    # Through the API server's pod proxy, then through the endpoints of ExternalDNS's Service (made by the real
    # EndpointSlice controller from the pod's address) and the service proxy: ExternalDNS's own metrics.
    kube = admin(cluster_api)
    name = pod["metadata"]["name"]

    def last_sync():
        return externaldns.sync_metrics(
            kube.pod_proxy_get(NAMESPACE, name, externaldns.HEALTH_PORT, "metrics")
        ).last_sync

    wait_until(lambda: last_sync() > 0, timeout=30)  # its first sync, soon after it started
    assert time.time() - 120 < last_sync() <= time.time()

    def endpoints():
        slices = cluster_api.cluster.api(
            "GET",
            f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices"
            f"?labelSelector=kubernetes.io/service-name={externaldns.SERVICE_NAME}",
        )["items"]
        return [a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"]]

    wait_until(lambda: endpoints() == [str(address)], timeout=30)
    text = kube.service_proxy_get(NAMESPACE, externaldns.METRICS_PROXY_NAME, "metrics")
    assert externaldns.LAST_SYNC in text
    path = f"/api/v1/namespaces/{NAMESPACE}/services/{externaldns.METRICS_PROXY_NAME}/proxy/metrics"
    assert ("GET", path) in cluster_api.proxy.requests  # it went through the API server (the fault proxy before it)
    kube.close()

    # The pod opens no connection through its veth, so never to the machine's addresses, even where one listens.
    machine = subprocess.run(["ip", "-j", "route", "get", str(address)], capture_output=True, check=True).stdout
    (route,) = json.loads(machine)
    with socket.create_server(("0.0.0.0", 0)) as listener:
        port = listener.getsockname()[1]
        socket.create_connection((route["prefsrc"], port), timeout=2).close()  # from the machine itself: it listens
        attempt = subprocess.run(
            [
                *network.exec_prefix(),
                sys.executable,
                "-c",
                f"import socket; socket.create_connection(({route['prefsrc']!r}, {port}), timeout=2)",
            ],
            capture_output=True,
            text=True,
        )
    assert attempt.returncode != 0 and "timed out" in attempt.stderr

    # The pod is deleted: its process, namespace, veth pair and route go.
    cluster_api.cluster.api("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}", {"gracePeriodSeconds": 0})
    wait_until(lambda: network.name not in podnet.namespaces(), timeout=30)
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout
    assert str(address) not in routes and network.host_link not in routes


GUARDED = """
import subprocess, sys
sys.path.insert(0, {root!r})
from devstack import podnet
directory, bridges = podnet.bridges([{port}])
network = podnet.PodNetwork(directory, [{port}])
inside = subprocess.Popen([*network.exec_prefix(), "sleep", "600"], stdout=subprocess.DEVNULL)
outside = subprocess.Popen(["sleep", "600"], stdout=subprocess.DEVNULL)
podnet.guard(pid=outside.pid)
print(network.name, directory, inside.pid, outside.pid, flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("end", ["SIGKILL", "exit"])
def test_what_a_devstack_made_is_removed_when_it_ends_even_killed(end, tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        owner = subprocess.Popen(
            [sys.executable, "-c", GUARDED.format(root=root, port=listener.getsockname()[1])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        name, directory, inside, outside = owner.stdout.readline().split()
    assert name in podnet.namespaces() and os.path.isdir(directory)
    if end == "SIGKILL":
        owner.send_signal(signal.SIGKILL)
    else:
        owner.stdin.close()  # it returns from main without stopping anything
    owner.wait()

    def alive(pid):
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return status != "Z"

    wait_until(lambda: name not in podnet.namespaces(), timeout=15)
    wait_until(lambda: not alive(inside) and not alive(outside), timeout=15)
    assert not os.path.exists(directory)
