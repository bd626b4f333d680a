"""ExternalDNS's health per cluster: read from a real cluster running the real ExternalDNS, kept on the cluster, shown
on its page and in "Needs attention", given by the API and exported to /metrics.

ExternalDNS's own metrics are read as in any cluster: through the API server's service proxy, which reaches the pod at
its own address (docs/local-clusters.md); the fault proxy in front of the API server sees every such request."""

import io
import os
import re
import signal
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from provisioning.clients import externaldns
from provisioning.models import Cluster
from provisioning.services.clusters import externaldns_health
from provisioning.services.clusters.jobs import RegisterCluster
from provisioning.services.metrics import export as metrics_export
from tests.conftest import run_jobs, wait_until
from tests.factories import register


def check_command():
    out = io.StringIO()
    call_command("check_externaldns", stdout=out)
    return out.getvalue()


def metrics_requests(access):
    """The requests for ExternalDNS's /metrics the API server was sent, through its service proxy."""
    path = f"/api/v1/namespaces/external-dns/services/{externaldns.METRICS_PROXY_NAME}/proxy/metrics"
    return [request for request in access.proxy.requests if request == ("GET", path)]


def metric(name, **labels):
    body, _ = metrics_export.exposition()
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


@pytest.mark.django_db(transaction=True)
def test_an_externaldns_that_loses_its_key_shows_as_failing_and_recovers_when_provisioned_again(
    personas, cluster_api, client
):
    cluster = register(personas.acme, "prod", cluster_api)
    summary = check_command()
    cluster.refresh_from_db()
    assert cluster.externaldns_health == Cluster.Health.OK, cluster.externaldns_problem
    assert "1 clusters checked: 1 ok, 0 failing, 0 unknown." in summary
    assert cluster.externaldns_restarts == 0 and cluster.externaldns_failing_since is None
    assert cluster.externaldns_metrics_error == "" and len(metrics_requests(cluster_api)) == 1
    assert timezone.now() - timedelta(minutes=2) < cluster.externaldns_last_sync_at <= timezone.now()
    client.force_login(personas.alice)
    page = client.get(reverse("cluster", args=["acme", cluster.pk])).content.decode()
    assert re.search(r"running, last sync \d+ s ago", page) and "its metrics could not be read" not in page

    # The cluster's admin deletes the Secret holding the AWS key; the pod is replaced (a node drained, say).
    admin = cluster_api.cluster
    admin.api("DELETE", "/api/v1/namespaces/external-dns/secrets/external-dns-aws")
    (pod,) = cluster_api.objects("pods", "external-dns")
    admin.api("DELETE", f"/api/v1/namespaces/external-dns/pods/{pod['metadata']['name']}", {"gracePeriodSeconds": 0})

    def failing():
        check_command()
        cluster.refresh_from_db()
        return (
            cluster.externaldns_health == Cluster.Health.FAILING
            and "CreateContainerConfigError" in cluster.externaldns_problem
        )

    wait_until(failing, timeout=180)
    assert 'secret "external-dns-aws" not found' in cluster.externaldns_problem
    first_failure = cluster.externaldns_failing_since
    check_command()
    cluster.refresh_from_db()
    assert cluster.externaldns_failing_since == first_failure  # failing since the first check that saw it

    page = client.get(reverse("cluster", args=["acme", cluster.pk])).content.decode()
    assert "failing for " in page and "CreateContainerConfigError" in page
    home = client.get(reverse("home")).content.decode()
    assert "ExternalDNS failing" in home and reverse("cluster", args=["acme", cluster.pk]) in home
    detail = client.get(f"/api/v1/organizations/acme/clusters/{cluster.pk}").json()
    assert (
        detail["externaldns"]["health"] == "failing"
        and "CreateContainerConfigError" in detail["externaldns"]["problem"]
    )
    assert metric("orgdns_externaldns_healthy", organization="acme", cluster="prod") == 0

    RegisterCluster.enqueue_again(cluster)  # provisioning puts the Secret back
    run_jobs()
    check_command()
    cluster.refresh_from_db()
    assert cluster.state == Cluster.State.READY
    assert cluster.externaldns_health == Cluster.Health.OK and cluster.externaldns_failing_since is None
    assert metric("orgdns_externaldns_healthy", organization="acme", cluster="prod") == 1
    assert "ExternalDNS failing" not in client.get(reverse("home")).content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_metrics_of_the_real_externaldns_are_read_through_the_api_server(personas, cluster_api):
    cluster = register(personas.acme, "prod", cluster_api)
    assert externaldns_health.check(cluster) == Cluster.Health.OK
    synced = cluster.externaldns_last_sync_at
    assert timezone.now() - timedelta(minutes=2) < synced <= timezone.now()  # its sync at start
    assert len(metrics_requests(cluster_api)) == 1

    # The metrics answer is the API server's: a fault injected in front of it is what the check sees.
    cluster_api.fail_next(1, 503, "injected at the API server", path="/proxy/metrics")
    assert externaldns_health.check(cluster) == Cluster.Health.OK  # the pods are fine; the metrics are not read
    assert "answered 503 (injected at the API server)" in cluster.externaldns_metrics_error
    assert cluster.externaldns_last_sync_at is None
    assert len(metrics_requests(cluster_api)) == 2

    with pytest.raises(ValueError, match="not ExternalDNS's metrics"):
        externaldns.sync_metrics("# TYPE up gauge\nup 1\n")


@pytest.mark.django_db(transaction=True)
def test_an_externaldns_whose_process_dies_is_failing_until_it_runs_again(personas, cluster_api, client):
    cluster = register(personas.acme, "prod", cluster_api)
    assert externaldns_health.check(cluster) == Cluster.Health.OK
    (pod,) = cluster_api.runner.pods.values()
    os.killpg(pod.process.pid, signal.SIGKILL)  # the container's process dies; the kubelet restarts it after a back-off

    def health():
        externaldns_health.check(cluster)
        return cluster.externaldns_health

    wait_until(lambda: health() == Cluster.Health.FAILING, timeout=30)
    assert "CrashLoopBackOff" in cluster.externaldns_problem and cluster.externaldns_restarts == 1
    client.force_login(personas.alice)
    assert "failing for " in client.get(reverse("cluster", args=["acme", cluster.pk])).content.decode()

    wait_until(lambda: health() == Cluster.Health.OK, timeout=90)  # started again, its metrics read anew
    assert cluster.externaldns_metrics_error == "" and cluster.externaldns_restarts == 1
    assert cluster.externaldns_last_sync_at > timezone.now() - timedelta(minutes=2)
    page = client.get(reverse("cluster", args=["acme", cluster.pk])).content.decode()
    assert re.search(r"running, last sync \d+ s ago", page) and "restarted 1 times" in page


@pytest.mark.django_db(transaction=True)
def test_a_cluster_that_refuses_our_token_is_unknown_and_needs_attention(personas, cluster_api, client):
    cluster = register(personas.acme, "prod", cluster_api)
    cluster_api.revoke_token()
    wait_until(lambda: externaldns_health.check(cluster) == Cluster.Health.UNKNOWN, timeout=30)
    cluster.refresh_from_db()
    assert (
        cluster.externaldns_problem.startswith("cannot check: the cluster at ") and "401" in cluster.externaldns_problem
    )
    assert cluster.state == Cluster.State.READY  # the check changes nothing but the health fields
    client.force_login(personas.alice)
    assert "ExternalDNS unknown" in client.get(reverse("home")).content.decode()


@pytest.mark.django_db
def test_only_the_users_own_failing_clusters_need_their_attention(personas, client):
    since = timezone.now() - timedelta(minutes=12)
    for org, name in ((personas.acme, "prod"), (personas.globex, "web")):
        Cluster.objects.create(
            organization=org,
            name=name,
            api_server=f"https://{name}.example:6443",
            owner_id=f"{org.name}-{name}",
            state=Cluster.State.READY,
            externaldns_health=Cluster.Health.FAILING,
            externaldns_problem=f"{name} broke",
            externaldns_failing_since=since,
            externaldns_checked_at=timezone.now(),
        )
    Cluster.objects.create(
        organization=personas.acme,
        name="gone",
        api_server="https://gone.example:6443",
        owner_id="acme-gone",
        state=Cluster.State.DEREGISTERED,
        externaldns_health=Cluster.Health.FAILING,
        externaldns_problem="gone broke",
    )
    client.force_login(personas.alice)
    home = client.get(reverse("home")).content.decode()
    assert "prod broke" in home and "for 12 min" in home
    assert "web broke" not in home and "gone broke" not in home
    client.force_login(personas.bob)
    home = client.get(reverse("home")).content.decode()
    assert "web broke" in home and "prod broke" not in home
    client.force_login(personas.charlie)
    assert "broke" not in client.get(reverse("home")).content.decode()
