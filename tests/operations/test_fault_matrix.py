"""The fault matrix: registration, certificate issue, deregistration and zone deletion, each with its work horse
SIGKILLed at each of its steps, and with Redis, Vault and AWS frozen for longer than one call's retries, and Redis
restarted empty. A worker and the sweep run as in production, under a supervisor. Once the fault is gone every
operation must end `succeeded`, and AWS, Vault and the clusters must hold exactly what the database says.

Each case's outcome, time to converge and leftovers go to the report bench/faults.py prints
(ORGDNS_FAULT_REPORT names the file)."""

import json
import os
import signal
import time

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone

from devstack.processes import Supervisor
from provisioning.models import Certificate, Cluster, HostedZone, Operation
from provisioning.services.backends import vault_root
from provisioning.services.certificates import actions as certificates
from provisioning.services.clusters import actions as clusters
from provisioning.services.clusters.jobs import DeregisterCluster
from provisioning.services.zones import gc as zone_gc
from tests.conftest import manage_command, manage_env, run_jobs, vault_tree, wait_until
from tests.factories import register
from tests.operations.test_faults import children_of, frozen

pytestmark = pytest.mark.django_db(transaction=True)

CONVERGE_WITHIN = 120  # seconds, once the fault is gone
FAST = {  # heartbeats, leases and retries at a pace that keeps the matrix short; the same code paths as production
    "ORGDNS_JOB_RETRY_INTERVALS": "1,2,4,8",
    "ORGDNS_HEARTBEAT_INTERVAL": "0.5",
    "ORGDNS_HEARTBEAT_TTL": "2",
    "ORGDNS_ORG_LOCK_LEASE": "3",
    "ORGDNS_RETRY_ATTEMPTS": "2",
    "VAULT_TIMEOUT": "2",
}


@pytest.fixture
def fleet(settings, tmp_path):
    """A worker and the sweep, supervised (started again when they exit), with FAST's settings."""
    settings.ORGDNS_JOB_RETRY_INTERVALS = [int(s) for s in FAST["ORGDNS_JOB_RETRY_INTERVALS"].split(",")]
    supervisor = Supervisor(settings.BASE_DIR)

    def start():
        env = manage_env(**FAST)
        supervisor.start(
            "worker", manage_command("rqworker", "--with-scheduler", "default"), tmp_path / "worker.log", env
        )
        supervisor.start(
            "sweep", manage_command("sweep_operations", "--every", "1", "--grace", "0"), tmp_path / "sweep.log", env
        )
        return supervisor

    yield start
    supervisor.stop()


@pytest.fixture(scope="module")
def report():
    rows = []
    yield rows
    path = os.environ.get("ORGDNS_FAULT_REPORT")
    if path:
        with open(path, "a") as out:
            for row in rows:
                out.write(json.dumps(row) + "\n")


def kill_horse_at(supervisor, operation, line, timeout=60):
    """SIGKILL the work horse as soon as the operation's log shows line. Returns (the step it was at, when)."""
    deadline = time.monotonic() + timeout
    while line not in Operation.objects.get(pk=operation.pk).log:
        assert time.monotonic() < deadline, f"the job never logged {line!r}"
        time.sleep(0.01)
    killed = []
    for horse in children_of(supervisor.pid("worker"), group_leaders=True):
        try:
            os.kill(horse, signal.SIGKILL)
            killed.append(horse)
        except ProcessLookupError:
            pass
    killed_at = timezone.now()
    assert killed, "no work horse to kill (the job had ended)"
    return Operation.objects.get(pk=operation.pk).step, killed_at


def converge(operation):
    """Seconds until the operation finished (None if it did not within CONVERGE_WITHIN)."""
    started = time.monotonic()
    while Operation.objects.get(pk=operation.pk).state not in Operation.FINISHED:
        if time.monotonic() - started > CONVERGE_WITHIN:
            operation.refresh_from_db()
            return None
        time.sleep(0.1)
    operation.refresh_from_db()
    return round(time.monotonic() - started, 1)


def described(operation, tmp_path):
    logs = "".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in tmp_path.glob("*.log"))
    return f"{operation.state}: {operation.error}\n{operation.log}\n{logs}"


def leftovers(aws, vault, cluster_apis):
    """What AWS, Vault and the clusters hold that the database does not say they should, and what they lack."""
    found = []
    live = HostedZone.objects.exclude(state__in=[HostedZone.State.DELETED, HostedZone.State.CREATING])
    zones = {z["Id"].split("/")[-1] for z in aws.route53.list_hosted_zones()["HostedZones"]}
    found += [f"zone {z}" for z in zones ^ {z.zone_id for z in live}]
    users = {u["UserName"] for u in aws.iam.list_users()["Users"]}
    found += [f"IAM user {u}" for u in users ^ {z.iam_user_name for z in live if z.iam_user_name}]
    for zone in live.exclude(iam_user_name=""):
        keys = [k["AccessKeyId"] for k in aws.iam.list_access_keys(UserName=zone.iam_user_name)["AccessKeyMetadata"]]
        if keys != [zone.access_key_id]:
            found.append(f"access keys {keys} of {zone.iam_user_name} (expected [{zone.access_key_id}])")
    prefix = vault_root()
    expected = {f"{prefix}/orgs/{z.organization.name}/aws" for z in live if z.access_key_id}
    expected |= {f"{prefix}/orgs/{c.organization.name}/clusters/{c.owner_id}" for c in Cluster.objects.live()}
    for certificate in Certificate.objects.select_related("organization"):
        expected.add(f"{prefix}/orgs/{certificate.organization.name}/tls/ca")
        if certificate.state != Certificate.State.DELETED:
            expected.add(f"{prefix}/orgs/{certificate.organization.name}/tls/certs/{certificate.pk}")
    found += [f"Vault {p}" for p in set(vault_tree(vault, prefix)) ^ expected]
    for cluster in Cluster.objects.all():
        api = cluster_apis[cluster.name]
        deployed = bool(api.objects("deployments", "external-dns"))
        if deployed != (cluster.state == Cluster.State.READY):
            found.append(f"ExternalDNS {'left in' if deployed else 'missing from'} {cluster.name} ({cluster.state})")
        for installation in cluster.certificate_installations.select_related("certificate"):
            present = any(
                s["metadata"]["name"] == installation.secret_name
                for s in api.objects("secrets", installation.namespace)
            )
            wanted = (
                cluster.state == Cluster.State.READY and installation.certificate.state != Certificate.State.DELETED
            )
            if present != wanted:
                found.append(
                    f"certificate Secret {installation.namespace}/{installation.secret_name} {'left' if present else 'missing'} in {cluster.name}"
                )
    return found


# --- the flows, each with the log lines at which its work horse is killed (each followed by a remote call, so that
# the horse is still at work when the kill lands) -------------------------------------------------------------------

REGISTER = [
    "Reading the cluster's credentials from Vault",
    "no IAM user or parent-zone record",
    "created zone",
    "created IAM user",
    "created access key",
    "Deployment external-dns: created",
]
ISSUE = ["Ensuring the acme CA", "created the acme CA", "issued serial", "Installing the certificate into its clusters"]
DEREGISTER = [
    "Removing ExternalDNS from the cluster",
    "deleted Deployment",
    "ExternalDNS has stopped",
    "Deleting the records",
]
DELETE_ZONE = ["Deleting every record", "Deleting zone", "Deleting IAM user"]


def start_register(personas, api):
    return clusters.register_cluster(personas.acme, "prod", api.connection)[1]


def start_issue(personas, api):
    api.allow_certificates("web")
    cluster = register(personas.acme, "prod", api)
    return certificates.issue_certificate(personas.acme, ["www.acme.orgdns.test"], [(cluster, "web", "www-tls")])[1]


def start_deregister(personas, api):
    cluster = register(personas.acme, "prod", api)
    return DeregisterCluster.enqueue(cluster)


def start_delete_zone(personas, api):
    cluster = register(personas.acme, "prod", api)
    DeregisterCluster.enqueue(cluster)
    run_jobs()
    now = timezone.now()
    zone_gc.apply(zone_gc.plan(now), now)  # a young unused zone: deleted at once
    (operation,) = Operation.objects.filter(kind="delete_zone")
    return operation


FLOWS = {
    "register": start_register,
    "issue certificate": start_issue,
    "deregister": start_deregister,
    "delete zone": start_delete_zone,
}
KILLS = [("register", line) for line in REGISTER] + [("issue certificate", line) for line in ISSUE]
KILLS += [("deregister", line) for line in DEREGISTER] + [("delete zone", line) for line in DELETE_ZONE]


@pytest.mark.parametrize("flow, line", KILLS, ids=[f"{flow}: {line}" for flow, line in KILLS])
def test_a_work_horse_killed_at_any_step(flow, line, personas, cluster_api, aws, vault, fleet, report, tmp_path):
    operation = FLOWS[flow](personas, cluster_api)
    supervisor = fleet()
    step, killed_at = kill_horse_at(supervisor, operation, line)
    seconds = converge(operation)
    left = leftovers(aws, vault, {"prod": cluster_api})
    rerun_after = (operation.started_at - killed_at).total_seconds()
    report.append(
        {
            "fault": "work horse SIGKILL",
            "flow": flow,
            "at": line,
            "step": step,
            "outcome": operation.state,
            "attempts": operation.attempts,
            "seconds": seconds,
            "rerun_after": round(rerun_after, 1),
            "leftovers": left,
        }
    )
    assert operation.state == Operation.State.SUCCEEDED, described(operation, tmp_path)
    assert operation.attempts >= 2
    assert left == []


FREEZE_SECONDS = 12  # longer than one call's retries with FAST's settings (2 tries of at most 2 s for Vault)


@pytest.mark.parametrize("server", ["moto", "bao", "redis"])
def test_a_server_frozen_mid_registration(
    server, personas, cluster_api, aws, vault, servers, private_redis, fleet, report, tmp_path
):
    processes = {"moto": servers.moto, "bao": servers.bao, "redis": private_redis.process}
    operation = start_register(personas, cluster_api)
    supervisor = fleet()
    wait_until(lambda: "Reading the cluster's credentials" in Operation.objects.get(pk=operation.pk).log)
    with frozen(processes[server]):
        time.sleep(FREEZE_SECONDS)
    seconds = converge(operation)
    left = leftovers(aws, vault, {"prod": cluster_api})
    report.append(
        {
            "fault": f"{server} frozen {FREEZE_SECONDS} s",
            "flow": "register",
            "at": "after the first step",
            "outcome": operation.state,
            "attempts": operation.attempts,
            "seconds": seconds,
            "leftovers": left,
            "restarts": supervisor.restarts,
        }
    )
    assert operation.state == Operation.State.SUCCEEDED, described(operation, tmp_path)
    assert left == []


def test_redis_restarted_empty_with_jobs_queued_and_running(
    personas, make_cluster_api, aws, vault, servers, private_redis, fleet, report, tmp_path
):
    apis = {"prod": make_cluster_api(), "edge": make_cluster_api()}
    running = clusters.register_cluster(personas.acme, "prod", apis["prod"].connection)[1]
    queued = clusters.register_cluster(personas.globex, "edge", apis["edge"].connection)[1]
    supervisor = fleet()
    with frozen(servers.moto):  # holds the first job mid-way while Redis goes
        wait_until(lambda: Operation.objects.filter(state=Operation.State.RUNNING).exists())
        private_redis.restart_empty()
    seconds = [converge(running), converge(queued)]
    left = leftovers(aws, vault, apis)
    report.append(
        {
            "fault": "Redis restarted empty",
            "flow": "register ×2",
            "at": "one running, one queued",
            "outcome": f"{running.state}, {queued.state}",
            "seconds": seconds,
            "leftovers": left,
            "restarts": supervisor.restarts,
        }
    )
    assert running.state == Operation.State.SUCCEEDED, described(running, tmp_path)
    assert queued.state == Operation.State.SUCCEEDED, described(queued, tmp_path)
    assert left == []


def post_registration(client, user, api):
    """Post the registration form; (response, seconds it took)."""
    client.force_login(user)
    started = time.monotonic()
    response = client.post(
        reverse("cluster-register", args=["acme"]),
        {
            "name": "prod",
            "api_server": api.connection.server,
            "ca_pem": api.connection.ca_pem,
            "token": api.connection.token,
        },
    )
    return response, round(time.monotonic() - started, 1)


def test_a_registration_while_redis_hangs_is_refused_clearly_and_saves_nothing(
    personas, cluster_api, private_redis, vault, client, report
):
    with frozen(private_redis.process):
        response, seconds = post_registration(client, personas.alice, cluster_api)
    report.append(
        {
            "fault": "Redis frozen",
            "flow": "registration form",
            "at": "the request",
            "outcome": response.status_code,
            "seconds": seconds,
            "leftovers": [str(c) for c in Cluster.objects.all()] + vault_tree(vault, django_settings.VAULT_PREFIX),
        }
    )
    assert response.status_code == 200
    assert "job queue (Redis) is not answering. Nothing was saved" in response.content.decode()
    assert not Cluster.objects.exists()
    assert vault_tree(vault, django_settings.VAULT_PREFIX) == []


def test_a_registration_while_vault_hangs_is_refused_clearly_and_saves_nothing(
    personas, cluster_api, servers, client, report
):
    with frozen(servers.bao):
        response, seconds = post_registration(client, personas.alice, cluster_api)
    report.append(
        {
            "fault": "Vault frozen",
            "flow": "registration form",
            "at": "the request",
            "outcome": response.status_code,
            "seconds": seconds,
            "leftovers": [str(c) for c in Cluster.objects.all()],
        }
    )
    assert response.status_code == 200
    assert "Vault, where orgdns keeps the cluster&#x27;s credentials, is not answering" in response.content.decode()
    assert not Cluster.objects.exists() and not Operation.objects.exists()
