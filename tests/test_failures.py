"""Transient failures are retried with backoff; permanent ones fail at once with a message a person can act on."""

import socket
import threading

import pytest
from django.conf import settings

from devstack.podnet import relay
from provisioning.models import Cluster, HostedZone, Operation
from provisioning.services.clusters import actions as clusters
from tests.conftest import run_jobs
from tests.factories import attempt_registration

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "service,operation,code",
    [
        ("route53", "CreateHostedZone", "Throttling"),
        ("route53", "ListHostedZonesByName", "Throttling"),
        ("route53", "ChangeTagsForResource", "PriorRequestNotComplete"),
        ("iam", "CreateUser", "Throttling"),
        ("sts", "GetCallerIdentity", "InvalidClientTokenId"),
    ],
)
def test_transient_aws_errors_are_retried(service, operation, code, personas, cluster_api, aws, aws_faults):
    aws_faults.error(service, operation, code, times=3, status=403 if code == "InvalidClientTokenId" else 400)
    cluster, op = attempt_registration(personas.acme, "prod", cluster_api)
    assert op.state == Operation.State.SUCCEEDED, op.error
    assert aws_faults.sent[operation] == 4  # three refusals, then success
    assert len(aws.route53.list_hosted_zones()["HostedZones"]) == 1
    assert cluster.state == Cluster.State.READY


def test_route53_throttling_that_never_ends_fails_the_job_with_a_clear_message(personas, cluster_api, aws_faults):
    aws_faults.error("route53", "CreateHostedZone", "Throttling", times=1000)
    cluster, op = attempt_registration(personas.acme, "prod", cluster_api)
    assert op.state == Operation.State.FAILED
    assert op.error == "route53 CreateHostedZone failed: Throttling: injected Throttling"
    assert aws_faults.sent["CreateHostedZone"] == settings.ORGDNS_RETRY_ATTEMPTS
    assert cluster.state == Cluster.State.ERROR


def test_permanent_aws_error_fails_at_once(personas, cluster_api, aws_faults):
    aws_faults.error("iam", "CreateUser", "LimitExceeded", times=1000, status=409)
    cluster, op = attempt_registration(personas.acme, "prod", cluster_api)
    assert op.state == Operation.State.FAILED
    assert "LimitExceeded" in op.error
    assert aws_faults.sent["CreateUser"] == 1


def test_cluster_api_briefly_unavailable_is_retried(personas, cluster_api):
    cluster, _ = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    cluster_api.fail_next(3)
    run_jobs()
    cluster.refresh_from_db()
    assert cluster.state == Cluster.State.READY
    assert len(cluster_api.objects("deployments", "external-dns")) == 1


@pytest.mark.parametrize(
    "status, message, method, path",
    [
        (409, "Operation cannot be fulfilled: the object has been modified", "PATCH", "/deployments/"),
        (
            403,
            'secrets "external-dns-aws" is forbidden: unable to create new content in namespace external-dns because it is being terminated',
            "PATCH",
            "/secrets/",
        ),
    ],
    ids=["conflict", "namespace-terminating"],
)
def test_conflicts_and_a_terminating_namespace_are_retried(personas, cluster_api, status, message, method, path):
    cluster, _ = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    cluster_api.fail_next(2, status, message, method, path)
    run_jobs()
    cluster.refresh_from_db()
    assert cluster.state == Cluster.State.READY, cluster.message
    assert cluster_api.proxy._take_fault(method, path) is None  # both injected answers were consumed


def test_a_cluster_that_is_down_fails_the_job_as_transient(personas, cluster_api):
    cluster, _ = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    cluster_api.proxy.down = True
    run_jobs()
    op = cluster.operations.get()
    assert op.state == Operation.State.FAILED
    assert f"cannot reach the cluster API at {cluster_api.url}" in op.error


def test_cluster_refusing_our_token_fails_at_once(personas, cluster_api):
    cluster, _ = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    cluster_api.revoke_token()
    before = cluster_api.request_count
    run_jobs()
    cluster.refresh_from_db()
    op = cluster.operations.get()
    assert op.state == Operation.State.FAILED
    assert "refused our token (401 Unauthorized)" in op.error
    assert cluster.state == Cluster.State.ERROR and "refused our token" in cluster.message
    assert cluster_api.request_count - before == 1


class FlakyProxy:
    """A TCP proxy in front of a real server that drops the first `drops` connections."""

    def __init__(self, target_url, drops):
        host, port = target_url.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.drops = drops
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.drops > 0:
                self.drops -= 1
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    @staticmethod
    def _relay(client, upstream):
        with client, upstream:
            relay(client, upstream)

    def close(self):
        self.listener.close()


def test_vault_briefly_down_is_retried(personas, cluster_api, stack):
    cluster, _ = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    proxy = FlakyProxy(stack.vault_url, drops=2)
    settings.VAULT_ADDR = proxy.url
    try:
        run_jobs()
    finally:
        proxy.close()
    cluster.refresh_from_db()
    assert proxy.drops == 0
    assert cluster.state == Cluster.State.READY, cluster.message


def test_vault_down_for_good_fails_with_a_clear_message(personas, cluster_api):
    cluster, _ = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        settings.VAULT_ADDR = f"http://127.0.0.1:{closed.getsockname()[1]}"
        run_jobs()
    op = cluster.operations.get()
    assert op.state == Operation.State.FAILED
    assert op.error == "Vault is unavailable (ConnectionError); will retry"
    assert not HostedZone.objects.exists()


def test_transient_failure_is_retried_by_rq_when_retries_remain(personas, cluster_api, aws_faults, settings):
    settings.ORGDNS_JOB_RETRY_INTERVALS = [0]
    aws_faults.error("route53", "CreateHostedZone", "Throttling", times=settings.ORGDNS_RETRY_ATTEMPTS)
    cluster, op = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    run_jobs()
    op.refresh_from_db()
    cluster.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED, op.error
    assert op.attempts == 2
    assert "temporary failure, will retry" in op.log
    assert cluster.state == Cluster.State.READY
