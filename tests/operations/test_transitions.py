"""The models own their lifecycle: each transition says which states it leaves from, does nothing (and says so) from
any other, and is one conditional UPDATE, so that of two racing transitions one wins."""

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from provisioning.models import Certificate, CertificateInstallation, Cluster, HostedZone, Operation, Organization

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster(personas):
    return Cluster.objects.create(
        organization=personas.acme, name="prod", api_server="https://prod.example", owner_id="acme-prod", state="ready"
    )


def state_of(row):
    return type(row).objects.values_list("state", flat=True).get(pk=row.pk)


def test_a_cluster_goes_through_its_lifecycle(cluster):
    assert cluster.queue_provisioning() and (cluster.state, cluster.message) == ("pending", "queued for provisioning")
    assert cluster.start_provisioning() and state_of(cluster) == "provisioning"
    assert cluster.finish_provisioning("ExternalDNS publishes") and state_of(cluster) == "ready"
    assert cluster.queue_deregistration() and state_of(cluster) == "deregistering"
    assert cluster.start_deregistration() and cluster.message == ""
    assert cluster.finish_deregistration()
    cluster.refresh_from_db()
    assert (cluster.state, cluster.message) == ("deregistered", "deregistered")


@pytest.mark.parametrize(
    "state, transition",
    [
        ("pending", "queue_provisioning"),  # only a settled cluster (ready or error) is claimed for a job
        ("provisioning", "queue_deregistration"),
        ("deregistering", "start_provisioning"),  # a register job does not undo a deregistration
        ("deregistered", "start_provisioning"),
        ("ready", "finish_provisioning"),  # only from provisioning
        ("deregistering", "fail_provisioning"),
        ("deregistered", "start_deregistration"),
        ("ready", "finish_deregistration"),  # only from deregistering
        ("deregistered", "fail_deregistration"),  # a deregistered cluster is not brought back as "error"
    ],
)
def test_a_cluster_transition_from_a_wrong_state_does_nothing_and_says_so(cluster, state, transition):
    Cluster.objects.filter(pk=cluster.pk).update(state=state, message="as it was")
    cluster.refresh_from_db()
    method = getattr(cluster, transition)
    args = ("why",) if transition in ("finish_provisioning", "fail_provisioning", "fail_deregistration") else ()
    assert method(*args) is False
    cluster.refresh_from_db()
    assert (cluster.state, cluster.message) == (state, "as it was")


def test_of_two_claims_on_the_same_cluster_one_wins(cluster):
    """Two requests loaded the same ready cluster: one deregisters it, the other's re-provisioning finds it taken."""
    first, second = Cluster.objects.get(pk=cluster.pk), Cluster.objects.get(pk=cluster.pk)
    assert first.queue_deregistration() is True
    assert second.state == "ready"  # what it read, now stale
    assert second.queue_provisioning() is False
    assert state_of(cluster) == "deregistering"


@pytest.mark.django_db(transaction=True)
def test_a_transition_that_waits_for_a_racing_one_loses_when_that_commits(cluster):
    """The loser's UPDATE blocks on the winner's row lock, then finds the row no longer in a state it leaves from."""
    outcome = {}

    def racer():
        try:
            outcome["second"] = Cluster.objects.get(pk=cluster.pk).queue_provisioning()
        finally:
            connections.close_all()

    with transaction.atomic():
        assert Cluster.objects.get(pk=cluster.pk).queue_deregistration() is True
        thread = threading.Thread(target=racer)
        thread.start()
        deadline = time.monotonic() + 10
        while not _waiting_on_a_lock():  # the racer's UPDATE is blocked by our uncommitted one
            assert time.monotonic() < deadline, "the racing update never waited for the row lock"
            time.sleep(0.05)
    thread.join(10)
    assert outcome == {"second": False}
    assert state_of(cluster) == "deregistering"


def _waiting_on_a_lock():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else the activity stays as first read in the transaction
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def test_a_zone_claim_release_and_teardown(personas):
    zone = HostedZone.objects.create(organization=personas.acme, name=personas.acme.zone_name)
    assert zone.claim_for_deletion() is False  # still creating
    zone.zone_id, zone.name_servers, zone.aws_created_at = "Z1", ["ns1."], timezone.now()
    assert zone.confirm_in_route53() and state_of(zone) == "active"
    assert HostedZone.objects.get(pk=zone.pk).zone_id == "Z1"

    stale = HostedZone.objects.get(pk=zone.pk)
    assert zone.claim_for_deletion() is True
    assert stale.claim_for_deletion() is False  # another GC run got there first
    assert zone.release_unstarted() is True and state_of(zone) == "active"
    assert zone.release_unstarted() is False  # no claim to give back

    assert zone.claim_for_deletion() and zone.start_teardown(timezone.now())
    assert zone.release_unstarted() is False  # past the point of no return: no cluster takes it back
    assert zone.start_teardown(timezone.now()) is False
    assert zone.confirm_in_route53() is False  # a zone being deleted is not made active again
    assert zone.mark_deleted(timezone.now()) and state_of(zone) == "deleted"
    assert zone.mark_deleted(timezone.now()) is False


def test_an_operation_finished_stays_finished(personas):
    operation = Operation.objects.create(kind="register", organization=personas.acme)
    assert operation.start() and operation.start()  # RQ runs a dead worker's job again
    operation.refresh_from_db()
    assert (operation.state, operation.attempts) == ("running", 2)
    assert operation.cancel("cancelled") is False  # a running one is waited for, not cancelled
    assert operation.will_retry("throttled") and state_of(operation) == "retrying"
    assert operation.succeed({"route53": 3})
    for late in (operation.start, lambda: operation.fail("late", {}), lambda: operation.will_retry("late")):
        assert late() is False
    operation.refresh_from_db()
    assert (operation.state, operation.error, operation.remote_calls) == ("succeeded", "throttled", {"route53": 3})


def test_a_cancelled_operation_is_not_started_by_a_job_that_runs_anyway(personas):
    operation = Operation.objects.create(kind="register", organization=personas.acme)
    late_job = Operation.objects.get(pk=operation.pk)
    assert operation.cancel("cancelled: organization offboarded") is True
    assert late_job.start() is False
    operation.refresh_from_db()
    assert (operation.state, operation.attempts, operation.error) == ("failed", 0, "cancelled: organization offboarded")


def test_a_certificate_claim_settle_and_deletion(personas):
    certificate = Certificate.objects.create(organization=personas.acme, dns_names=["www.acme.orgdns.test"])
    assert certificate.start_renewal() is False  # issuing: not settled
    assert certificate.settle_failed("issue failed: no CA") and state_of(certificate) == "error"  # never issued
    assert certificate.start_renewal() and certificate.start_deletion() is False  # one job at a time
    Certificate.objects.filter(pk=certificate.pk).update(serial="0a")
    assert certificate.settle_failed("renewal failed") and state_of(certificate) == "active"  # issued once: usable
    assert certificate.start_installation() and certificate.settle_installed()
    assert certificate.start_deletion() and certificate.fail_deletion("cluster gone")
    certificate.refresh_from_db()
    assert (certificate.state, certificate.message) == ("error", "deletion failed: cluster gone")
    assert certificate.start_deletion() and certificate.mark_deleted()
    for late in (certificate.settle_installed, lambda: certificate.settle_failed("late"), certificate.start_renewal):
        assert late() is False  # a deleted certificate is not brought back
    assert certificate.fail_deletion("late") is False
    assert state_of(certificate) == "deleted"


def test_an_installation_is_requested_again_as_pending(personas, cluster):
    certificate = Certificate.objects.create(organization=personas.acme, dns_names=["www.acme.orgdns.test"])
    installation = CertificateInstallation.request(certificate, cluster, "web", "tls")
    assert installation.mark_installed("0a", timezone.now()) and state_of(installation) == "installed"
    again = CertificateInstallation.request(certificate, cluster, "web", "tls")
    assert again.pk == installation.pk and state_of(installation) == "pending"


def test_an_organization_is_offboarded_once(personas):
    acme = personas.acme
    assert acme.finish_offboarding() is False  # not being offboarded
    assert acme.start_offboarding() and acme.start_offboarding()  # again after a failure: resumed
    assert acme.finish_offboarding()
    acme.refresh_from_db()
    assert acme.state == Organization.State.OFFBOARDED and acme.offboarded_at is not None
    assert acme.start_offboarding() is False
