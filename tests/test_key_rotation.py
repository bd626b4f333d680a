"""Key rotation without downtime: the new key runs in every cluster before the old one is deleted; a crash at any
step converges when the rotation runs again; IAM never holds a third key."""

import base64
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.urls import reverse

from provisioning.clients import externaldns
from provisioning.models import Cluster, HostedZone, Membership, Operation, Organization
from provisioning.services.backends import vault_root
from provisioning.services.clusters import actions as clusters
from provisioning.services.credentials import actions as key_rotation
from provisioning.services.operations import leases
from provisioning.services.operations import running as operations
from provisioning.services.organizations import actions as organizations
from tests.conftest import run_jobs, start_worker_process, wait_until
from tests.instants import INSTANTS
from tests.test_faults import kill_worker

USER = "orgdns-acme"
transactional = pytest.mark.django_db(transaction=True)


def iam_keys(aws):
    return sorted(k["AccessKeyId"] for k in aws.iam.list_access_keys(UserName=USER)["AccessKeyMetadata"])


def vault_key(vault, org="acme"):
    return vault.secrets.kv.v2.read_secret_version(
        path=f"{vault_root()}/orgs/{org}/aws", mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]


def secret_key_id(cluster_api):
    (secret,) = cluster_api.objects("secrets", "external-dns", "app.kubernetes.io/managed-by=orgdns")
    return base64.b64decode(secret["data"]["AWS_ACCESS_KEY_ID"]).decode()


def running_key_ids(cluster_api):
    """The AWS_ACCESS_KEY_ID of every external-dns process the cluster runs, read from the processes themselves."""
    found = []
    for state in list(cluster_api.runner.pods.values()):
        if state.process is not None and state.process.poll() is None:
            environ = Path(f"/proc/{state.process.pid}/environ").read_bytes().split(b"\0")
            found += [line.split(b"=", 1)[1].decode() for line in environ if line.startswith(b"AWS_ACCESS_KEY_ID=")]
    return found


@pytest.fixture
def key_count(aws, aws_faults):
    """The most access keys the user had after any CreateAccessKey orgdns made (IAM allows two)."""
    seen = [0]

    def count(**_):
        seen[0] = max(seen[0], len(iam_keys(aws)))

    aws_faults.events.register("after-call.iam.CreateAccessKey", count)
    return seen


@pytest.fixture
def two_clusters(personas, make_cluster_api):
    apis = {"one": make_cluster_api(), "two": make_cluster_api()}
    for name, api in apis.items():
        clusters.register_cluster(personas.acme, name, api.connection)
    run_jobs()
    assert set(Cluster.objects.values_list("state", flat=True)) == {Cluster.State.READY}
    return apis


def rotate(org, reason="test"):
    operation = key_rotation.request_rotation(org, reason)
    run_jobs()
    operation.refresh_from_db()
    return operation


def resume_from_cron():
    out = StringIO()
    call_command("rotate_credentials", stdout=out)
    run_jobs()
    return out.getvalue()


def assert_rotated(aws, vault, apis, old):
    """One key, not the old one, in Vault and the row, in every cluster's Secret and in every ExternalDNS process."""
    zone = HostedZone.objects.get(organization__name="acme")
    (new,) = iam_keys(aws)
    stored = vault_key(vault)
    assert new != old
    assert stored["access_key_id"] == zone.access_key_id == new
    assert "previous_access_key_id" not in stored and zone.previous_access_key_id == ""
    assert zone.rotations_answered == zone.rotations_requested
    checksum = externaldns.credentials_checksum(new, stored["secret_access_key"])
    for api in apis.values():
        assert secret_key_id(api) == new
        (deployment,) = api.objects("deployments", "external-dns")
        assert externaldns.pod_checksum(deployment) == checksum
        assert running_key_ids(api) == [new]
    return zone


@transactional
def test_rotation_runs_the_new_key_everywhere_before_deleting_the_old_one(
    personas, two_clusters, aws, vault, key_count
):
    old = HostedZone.objects.get().access_key_id
    assert [running_key_ids(api) for api in two_clusters.values()] == [[old], [old]]

    operation = rotate(personas.acme)

    assert operation.state == Operation.State.SUCCEEDED, operation.error
    zone = assert_rotated(aws, vault, two_clusters, old)
    assert key_count[0] == 2
    log = operation.log
    assert log.index("cluster one runs ExternalDNS with access key") < log.index(f"deleted access key {old}")
    assert log.index("cluster two runs ExternalDNS with access key") < log.index(f"deleted access key {old}")
    assert vault_key(vault)["secret_access_key"] not in log + operation.error + operation.step
    assert zone.rotations_requested == 1

    # Asked again: a key of its own. Once done, a job with nothing asked for changes nothing.
    assert rotate(personas.acme).state == Operation.State.SUCCEEDED
    assert_rotated(aws, vault, two_clusters, zone.access_key_id)
    latest = HostedZone.objects.get().access_key_id
    key_rotation.request_rotation(personas.acme, "resume only", new_key=False)
    run_jobs()
    assert iam_keys(aws) == [latest]


# Where the worker dies: after IAM made the new key (its secret is lost), after the new key was kept in Vault (before
# the row mirrors it), after IAM deleted the old key (before Vault forgets it).
CRASH_POINTS = [("iam", "CreateAccessKey"), ("sts", "GetCallerIdentity"), ("iam", "DeleteAccessKey")]


@transactional
@pytest.mark.parametrize("service,call", CRASH_POINTS)
def test_a_rotation_dying_at_any_step_converges_when_resumed(
    service, call, personas, two_clusters, aws, vault, aws_faults
):
    old = HostedZone.objects.get().access_key_id
    aws_faults.die_after(service, call)
    assert rotate(personas.acme).state == Operation.State.FAILED
    # Every cluster runs a key IAM still has, and there are at most two.
    assert len(iam_keys(aws)) <= 2
    for api in two_clusters.values():
        assert set(running_key_ids(api)) <= set(iam_keys(aws))

    aws_faults.heal()
    assert "rotating  acme" in resume_from_cron()
    assert Operation.objects.filter(kind="rotate_credentials").latest("created_at").state == Operation.State.SUCCEEDED
    assert_rotated(aws, vault, two_clusters, old)  # had a third key been asked for, IAM (moto) would have refused it
    assert "0 key rotations queued" in resume_from_cron()


@transactional
def test_a_registration_during_a_rotation_keeps_the_previous_key(personas, two_clusters, aws, vault, aws_faults):
    """The row still names the old key while Vault holds both: provisioning must not take the old one for unusable."""
    old = HostedZone.objects.get().access_key_id
    aws_faults.die_after("sts", "GetCallerIdentity")
    rotate(personas.acme)
    aws_faults.heal()
    new = vault_key(vault)["access_key_id"]
    assert HostedZone.objects.get().access_key_id == old

    clusters.retry_registration(Cluster.objects.get(name="one"))
    run_jobs()
    assert iam_keys(aws) == sorted([old, new])
    assert running_key_ids(two_clusters["one"]) == [new]
    assert running_key_ids(two_clusters["two"]) == [old]
    assert HostedZone.objects.get().previous_access_key_id == old

    resume_from_cron()
    assert_rotated(aws, vault, two_clusters, old)


@transactional
def test_an_unreachable_cluster_holds_the_old_key_until_it_runs_the_new_one(client, personas, two_clusters, aws, vault):
    old = HostedZone.objects.get().access_key_id
    two_clusters["two"].proxy.down = True
    operation = rotate(personas.acme)

    assert operation.state == Operation.State.FAILED
    assert operation.error.startswith(f"cluster two holds up the key rotation, so access key {old} is kept: ")
    new = vault_key(vault)["access_key_id"]
    assert iam_keys(aws) == sorted([old, new])
    assert running_key_ids(two_clusters["one"]) == [new]
    assert running_key_ids(two_clusters["two"]) == [old]
    client.force_login(personas.alice)
    page = client.get(reverse("organization", args=["acme"])).content.decode()
    assert "under way" in page and old in page

    two_clusters["two"].proxy.down = False
    assert "finishing the rotation under way" in resume_from_cron()
    assert_rotated(aws, vault, two_clusters, old)


@transactional
def test_clusters_in_error_are_rolled_when_they_run_our_externaldns(personas, two_clusters, aws, vault):
    """A cluster in error may still run ExternalDNS with the key (a failed re-provisioning): it gets the new one.
    One whose ExternalDNS is not there (the cluster's admin removed it) is left alone and holds nothing up."""
    old = HostedZone.objects.get().access_key_id
    Cluster.objects.update(state=Cluster.State.ERROR, message="a failed re-provisioning")
    two_clusters["two"].cluster.api("DELETE", "/apis/apps/v1/namespaces/external-dns/deployments/external-dns")
    operation = rotate(personas.acme)

    assert operation.state == Operation.State.SUCCEEDED, operation.error
    assert "cluster two is in error and runs no ExternalDNS of ours: nothing to roll" in operation.log
    (new,) = iam_keys(aws)
    assert new != old and running_key_ids(two_clusters["one"]) == [new]
    assert two_clusters["two"].objects("deployments", "external-dns") == []
    assert set(Cluster.objects.values_list("state", flat=True)) == {
        Cluster.State.ERROR
    }  # the rotation repairs nothing else


@transactional
def test_a_cluster_being_provisioned_holds_the_old_key(personas, two_clusters, aws, vault):
    old = HostedZone.objects.get().access_key_id
    registering = Operation.objects.create(
        kind="register",
        organization=personas.acme,
        cluster=Cluster.objects.get(name="one"),
        state=Operation.State.RUNNING,
    )
    operation = rotate(personas.acme)
    assert operation.state == Operation.State.FAILED
    assert "cluster one is being provisioned and may deploy access key" in operation.error
    assert len(iam_keys(aws)) == 2 and old in iam_keys(aws)

    Operation.objects.filter(pk=registering.pk).update(state=Operation.State.SUCCEEDED)
    retried = operations.retry_operation(operation)  # the failed operation's Retry button
    run_jobs()
    retried.refresh_from_db()
    assert retried.state == Operation.State.SUCCEEDED, retried.error
    assert_rotated(aws, vault, two_clusters, old)


@transactional
def test_a_worker_killed_while_rolling_leaves_both_keys_and_the_rotation_converges(
    personas, two_clusters, aws, vault, settings
):
    settings.ORGDNS_JOB_RETRY_INTERVALS = [1]  # one more run for the job whose worker dies
    old = HostedZone.objects.get().access_key_id
    two_clusters["two"].proxy.delay = 0.5  # rolling cluster two takes a while: the worker is killed meanwhile
    operation = key_rotation.request_rotation(personas.acme, "test")
    worker = start_worker_process()
    try:
        wait_until(lambda: "in cluster two" in Operation.objects.get(pk=operation.pk).step, timeout=120)
    finally:
        kill_worker(worker)
    two_clusters["two"].proxy.delay = 0
    new = vault_key(vault)["access_key_id"]
    assert iam_keys(aws) == sorted([old, new])
    assert running_key_ids(two_clusters["one"]) == [new]
    assert set(running_key_ids(two_clusters["two"])) <= {old, new}

    # Its heartbeat stops: the sweep runs the job again, which resumes the rotation where it stood.
    wait_until(lambda: not leases.is_alive(operation.pk), timeout=30)
    call_command("sweep_operations", "--grace", "0", stdout=StringIO())
    run_jobs()
    operation.refresh_from_db()
    assert operation.state == Operation.State.SUCCEEDED, operation.error
    assert operation.attempts == 2 and f"resuming the rotation from access key {old} to {new}" in operation.log
    assert_rotated(aws, vault, two_clusters, old)


# --- what queues a rotation ----------------------------------------------------------------------


def keyed_zone(org, created_at, **fields):
    """A zone row whose IAM user has a key made at created_at (no job reaches AWS in these tests)."""
    fields = {"state": HostedZone.State.ACTIVE, **fields}
    return HostedZone.objects.create(
        organization=org,
        name=org.zone_name,
        zone_id=f"Z{org.pk}",
        access_key_id=f"AKIA{org.name.upper()}",
        access_key_created_at=created_at,
        **fields,
    )


@pytest.mark.django_db
def test_the_cron_picks_keys_past_the_maximum_age_and_rotations_to_finish(instant):
    max_age = timedelta(days=settings.ORGDNS_MAX_KEY_AGE_DAYS)
    at = instant.at
    due = {
        "old": keyed_zone(Organization.objects.create(name="old"), at - max_age - timedelta(seconds=1)),
        "midway": keyed_zone(
            Organization.objects.create(name="midway"), at - timedelta(days=1), previous_access_key_id="AKIAPREV"
        ),
        "asked": keyed_zone(Organization.objects.create(name="asked"), at - timedelta(days=1), rotations_requested=1),
    }
    keyed_zone(Organization.objects.create(name="young"), at - max_age + timedelta(minutes=1))
    HostedZone.objects.create(
        organization=Organization.objects.create(name="keyless"), name="keyless.orgdns.test", state="active"
    )
    keyed_zone(Organization.objects.create(name="gone"), at - max_age * 3, state=HostedZone.State.DELETED)
    busy = Organization.objects.create(name="busy")
    keyed_zone(busy, at - max_age * 2)
    Operation.objects.create(kind="rotate_credentials", organization=busy, state=Operation.State.RETRYING)

    with instant.travel():
        dry = StringIO()
        call_command("rotate_credentials", "--dry-run", stdout=dry)
        assert [line.split()[2] for line in dry.getvalue().splitlines() if line.startswith("would rotate")] == sorted(
            due
        )
        assert not Operation.objects.exclude(organization=busy).exists()
        out = StringIO()
        call_command("rotate_credentials", stdout=out)

    queued = Operation.objects.filter(kind="rotate_credentials").exclude(organization=busy)
    assert sorted(queued.values_list("organization__name", flat=True)) == sorted(due)
    assert f"access key AKIAOLD is {settings.ORGDNS_MAX_KEY_AGE_DAYS} days old" in out.getvalue()
    # Only the old key's rotation asks for a new key; the others finish what was asked before.
    requested = dict(
        HostedZone.objects.filter(organization__name__in=due).values_list("organization__name", "rotations_requested")
    )
    assert requested == {"old": 1, "midway": 0, "asked": 1}
    assert "3 key rotations queued" in out.getvalue()
    with pytest.raises(CommandError, match="the maximum key age must be at least 1 day, not 0"):
        call_command("rotate_credentials", "--max-age-days", "0")


@pytest.mark.django_db
def test_removing_a_member_queues_a_rotation_at_once(personas, django_capture_on_commit_callbacks):
    zone = keyed_zone(personas.acme, None)
    keyed_zone(personas.globex, None)
    with django_capture_on_commit_callbacks() as queued:
        organizations.remove_member(personas.acme, Membership.objects.get(user=personas.vera).pk)
    operation = Operation.objects.get(kind="rotate_credentials")
    assert operation.organization == personas.acme and len(queued) == 1
    assert "vera was removed from acme" in operation.log
    zone.refresh_from_db()
    assert zone.rotations_requested == 1

    # Whichever way the membership goes: here with the user.
    personas.bob.delete()
    (globex,) = Operation.objects.filter(organization=personas.globex, kind="rotate_credentials")
    assert "bob was removed from globex" in globex.log

    # Not for an organization that has no key yet.
    noname = Organization.objects.create(name="initech")
    Membership.objects.create(user=personas.charlie, organization=noname)
    organizations.remove_member(noname, Membership.objects.get(user=personas.charlie).pk)
    assert not Operation.objects.filter(organization=noname).exists()


@pytest.mark.django_db
def test_forgetting_a_cluster_queues_a_rotation_at_once(personas):
    keyed_zone(personas.acme, None)
    gone = Cluster.objects.create(
        organization=personas.acme, name="gone", api_server="https://192.0.2.1", owner_id="acme-gone", state="error"
    )
    clusters.forget_cluster(gone)
    kinds = sorted(Operation.objects.filter(organization=personas.acme).values_list("kind", flat=True))
    assert kinds == ["deregister", "rotate_credentials"]
    assert "cluster gone was forgotten" in Operation.objects.get(kind="rotate_credentials").log


# --- the organization page -----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_shows_the_key_age_and_lets_writers_rotate_it(client, personas):
    instant = INSTANTS[0]
    with instant.travel():
        keyed_zone(personas.acme, instant.at - timedelta(days=40))
        client.force_login(personas.alice)
        page = client.get(reverse("organization", args=["acme"])).content.decode()
        assert "1\xa0month" in page and "Rotate the access key" in page
        response = client.post(reverse("rotate-key", args=["acme"]))
    operation = Operation.objects.get(kind="rotate_credentials")
    assert response.status_code == 302 and response.url == reverse("operation", args=[operation.pk])
    assert operation.created_by == personas.alice

    client.force_login(personas.vera)  # a viewer
    assert "Rotate the access key" not in client.get(reverse("organization", args=["acme"])).content.decode()
    assert client.post(reverse("rotate-key", args=["acme"])).status_code == 403
    client.force_login(personas.bob)  # another organization's member
    assert client.post(reverse("rotate-key", args=["acme"])).status_code == 404
    assert Operation.objects.count() == 1

    client.force_login(personas.bob)
    response = client.post(reverse("rotate-key", args=["globex"]), follow=True)
    assert "has no access key yet" in response.content.decode()
    response = client.post("/api/v1/organizations/globex/zone/rotate-key")
    assert response.status_code == 409 and "globex has no access key yet" in response.json()["detail"]
    assert not Operation.objects.filter(organization=personas.globex).exists()
