"""Faults of the real processes orgdns depends on — a worker killed mid-job, Redis, Vault and AWS frozen — and what
a user sees meanwhile: every operation converges once the fault is gone, nothing is left behind or duplicated."""

import contextlib
import os
import signal
import subprocess
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from provisioning.models import Cluster, HostedZone, Operation
from provisioning.services.clusters import actions as clusters
from provisioning.services.clusters.jobs import DeregisterCluster, RegisterCluster
from provisioning.services.operations import leases
from provisioning.services.operations.leases import organization_lock
from provisioning.services.zones import gc as zone_gc
from provisioning.services.zones.setup import CREATED_AT_TAG
from tests.conftest import run_jobs, start_manage_process, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def frozen(process):
    """The process stops answering (SIGSTOP) — a hung server, not a refused connection — until the block ends."""
    process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.send_signal(signal.SIGCONT)


def start_worker(**env):
    return start_manage_process("rqworker", "default", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_worker(process):
    """SIGKILL the worker and its work horse (which RQ puts in a process group of its own)."""
    for horse in children_of(process.pid):
        with contextlib.suppress(ProcessLookupError):  # it has just ended
            os.kill(horse, signal.SIGKILL)
    process.kill()
    process.wait()


def children_of(pid, group_leaders=False):
    """The child processes of pid (only those that lead a process group of their own: RQ's work horses)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        child = int(stat.parent.name)
        if int(fields[1]) == pid and (not group_leaders or int(fields[2]) == child):
            found.append(child)
    return found


def operation_state(operation):
    operation.refresh_from_db()
    return operation.state


def test_retries_inside_a_call_show_on_the_operation(personas, cluster_api, aws_faults):
    aws_faults.error("route53", "CreateHostedZone", "Throttling", times=2)
    _, operation = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    run_jobs()
    operation.refresh_from_db()
    assert operation.state == Operation.State.SUCCEEDED, operation.error
    assert "AWS route53 is slow or unreachable (ClientError): attempt 2 of 6" in operation.log
    assert "attempt 3 of 6" in operation.log and "attempt 4 of 6" not in operation.log


def test_a_job_waiting_for_its_organization_says_so_then_runs(personas, cluster_api):
    _, operation = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    worker = start_worker()
    try:
        with organization_lock(personas.acme):
            wait_until(lambda: Operation.objects.get(pk=operation.pk).step.startswith("waiting for another operation"))
            assert Operation.objects.get(pk=operation.pk).state == Operation.State.RUNNING
        wait_until(lambda: operation_state(operation) in Operation.FINISHED, timeout=120)
    finally:
        kill_worker(worker)
    assert operation.state == Operation.State.SUCCEEDED, operation.error
    assert "waiting for another operation of this organization: a request being served" in operation.log


def test_a_job_whose_worker_is_killed_runs_again_after_its_lock_frees(personas, cluster_api, servers, aws, settings):
    settings.ORGDNS_JOB_RETRY_INTERVALS = [1]
    _, operation = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    # A lock lease long enough that the next worker (seconds to start) surely finds the dead run's lock still held.
    worker = start_worker(ORGDNS_ORG_LOCK_LEASE="30")
    try:
        with frozen(servers.moto):  # the job hangs in Route53, inside the organization lock
            wait_until(lambda: Operation.objects.get(pk=operation.pk).step.startswith("Checking that what orgdns"))
            kill_worker(worker)
        wait_until(lambda: not leases.is_alive(operation.pk), timeout=30)
        call_command("sweep_operations", "--grace", "0")
        assert operation_state(operation) == Operation.State.RETRYING
        worker = start_worker(ORGDNS_ORG_LOCK_LEASE="30")
        # The dead job's lease has not expired yet: the new run says what it waits for.
        wait_until(lambda: "waiting for another operation" in Operation.objects.get(pk=operation.pk).log, timeout=30)
        wait_until(lambda: operation_state(operation) in Operation.FINISHED, timeout=180)
    finally:
        kill_worker(worker)
    assert operation.state == Operation.State.SUCCEEDED, operation.error
    assert operation.attempts == 2
    assert (
        "waiting for another operation of this organization: this operation's earlier run, which stopped"
        in operation.log
    )
    zones = aws.route53.list_hosted_zones()["HostedZones"]
    assert [z["Name"] for z in zones] == ["acme.orgdns.test."]
    assert len(aws.iam.list_access_keys(UserName="orgdns-acme")["AccessKeyMetadata"]) == 1


def test_an_operation_saved_while_redis_hangs_is_queued_by_the_sweep(personas, cluster_api, private_redis):
    with frozen(private_redis.process):
        cluster, operation = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    assert operation_state(operation) == Operation.State.QUEUED  # saved; its job is not in Redis
    Operation.objects.filter(pk=operation.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    call_command("sweep_operations")
    run_jobs()
    assert operation_state(operation) == Operation.State.SUCCEEDED, operation.error
    cluster.refresh_from_db()
    assert cluster.state == Cluster.State.READY


def test_a_zone_whose_tagging_failed_keeps_its_creation_time(personas, cluster_api, aws, aws_faults):
    aws_faults.error("route53", "ChangeTagsForResource", "ServiceUnavailable", times=100, status=503)
    cluster, operation = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    asked_at = timezone.now()
    run_jobs()
    assert operation_state(operation) == Operation.State.FAILED
    zone = HostedZone.objects.get(organization=personas.acme)
    assert (zone.state, zone.zone_id) == (HostedZone.State.CREATING, "")  # the answer was lost
    assert abs(zone.aws_created_at - asked_at) < timedelta(seconds=30)  # but what billing needs was recorded first

    aws_faults.heal()
    RegisterCluster.enqueue_again(cluster)
    run_jobs()
    zone.refresh_from_db()
    assert operation_state(cluster.operations.first()) == Operation.State.SUCCEEDED
    assert abs(zone.aws_created_at - asked_at) < timedelta(seconds=30)  # not "unknown, already charged"
    tags = {
        t["Key"]: t["Value"]
        for t in aws.route53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=zone.zone_id)[
            "ResourceTagSet"
        ]["Tags"]
    }
    assert tags[CREATED_AT_TAG] == zone.aws_created_at.isoformat()


def test_a_zone_left_unconfirmed_by_a_dead_job_is_adopted_and_collected(personas, cluster_api, aws, aws_faults):
    aws_faults.die_after("route53", "CreateHostedZone")
    cluster, _ = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    run_jobs()
    aws_faults.heal()
    DeregisterCluster.enqueue(Cluster.objects.get(pk=cluster.pk))  # the user gives up instead of retrying
    run_jobs()
    zone = HostedZone.objects.get(organization=personas.acme)
    assert zone.state == HostedZone.State.CREATING

    HostedZone.objects.filter(pk=zone.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    call_command("sweep_operations")
    zone.refresh_from_db()
    assert zone.state == HostedZone.State.ACTIVE and zone.zone_id
    (planned,) = zone_gc.plan(timezone.now())
    assert planned.zone == zone and planned.scheduled  # the GC sees it, and it has no cluster any more


def test_a_zone_whose_creation_never_happened_loses_its_row(personas, cluster_api, aws_faults, aws):
    aws_faults.error("route53", "CreateHostedZone", "ServiceUnavailable", times=100, status=503)
    clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    run_jobs()
    aws_faults.heal()
    HostedZone.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    call_command("sweep_operations")
    assert not HostedZone.objects.exists()
    assert aws.route53.list_hosted_zones()["HostedZones"] == []
