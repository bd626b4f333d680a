"""A worker that dies mid-job (SIGKILL, OOM, a lost machine) must not leave its operation "running" forever."""

import time
from datetime import timedelta
from io import StringIO

import django_rq
import pytest
from django.core.management import call_command
from django.utils import timezone
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from provisioning.models import Cluster, Operation
from provisioning.services.clusters import actions as clusters
from provisioning.services.operations import running as operations
from tests.conftest import run_jobs

pytestmark = pytest.mark.django_db(transaction=True)


def worker_died_running(operation):
    """What RQ's registry holds after a worker died running the job: STARTED, with an expired heartbeat."""
    queue = django_rq.get_queue("default")
    job = Job.fetch(str(operation.pk), connection=queue.connection)
    queue.remove(job)
    job.set_status(JobStatus.STARTED)
    Operation.objects.filter(pk=operation.pk).update(
        state=Operation.State.RUNNING, step="Deploying ExternalDNS", progress=70
    )
    registry = StartedJobRegistry(queue=queue)
    with queue.connection.pipeline() as pipeline:
        execution = Execution.create(job, ttl=60, pipeline=pipeline)
        pipeline.execute()
    queue.connection.zadd(registry.key, {execution.composite_key: time.time() - 60})  # its heartbeat stopped
    return registry


def test_an_abandoned_job_fails_its_operation_with_what_to_do(personas, cluster_api):
    cluster, operation = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    registry = worker_died_running(operation)

    registry.cleanup()  # what every worker does from time to time

    operation.refresh_from_db()
    cluster.refresh_from_db()
    assert operation.state == Operation.State.FAILED
    assert "worker running this job stopped" in operation.error and "retry it" in operation.error
    assert cluster.state == Cluster.State.ERROR
    assert operations.retry_operation(operation).kind == "register"  # and it can be retried


def test_lost_jobs_are_queued_again_or_failed_by_the_sweep(personas, make_cluster_api, settings):
    cluster, never_queued = clusters.register_cluster(personas.acme, "prod", make_cluster_api().connection)
    other, was_running = clusters.register_cluster(personas.acme, "edge", make_cluster_api().connection)
    _, budget_spent = clusters.register_cluster(personas.globex, "prod", make_cluster_api().connection)
    django_rq.get_connection("default").flushdb()  # Redis restarted without its data
    Operation.objects.filter(pk=was_running.pk).update(state=Operation.State.RUNNING, attempts=1)
    Operation.objects.filter(pk=budget_spent.pk).update(state=Operation.State.RUNNING, attempts=2)
    recent = Operation.objects.create(kind="register", organization=personas.acme, cluster=cluster)
    Operation.objects.exclude(pk=recent.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    settings.ORGDNS_JOB_RETRY_INTERVALS = [1]  # two runs in all

    out = StringIO()
    call_command("sweep_operations", stdout=out)
    assert "2 queued again, 1 failed" in out.getvalue()
    was_running.refresh_from_db()
    assert was_running.state == Operation.State.RETRYING and "runs again now" in was_running.error
    run_jobs()
    for operation in (never_queued, was_running, budget_spent, recent):
        operation.refresh_from_db()
    assert never_queued.state == Operation.State.SUCCEEDED
    assert was_running.state == Operation.State.SUCCEEDED and was_running.attempts == 2
    assert budget_spent.state == Operation.State.FAILED and "retry it" in budget_spent.error
    assert recent.state == Operation.State.QUEUED  # too young to call lost


def test_a_job_rq_retries_after_its_work_horse_died_says_so(personas, cluster_api):
    cluster, operation = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    queue = django_rq.get_queue("default")
    Job.fetch(str(operation.pk), connection=queue.connection).delete()
    queue.enqueue_in(timedelta(seconds=30), operations.run, str(operation.pk), job_id=str(operation.pk))
    Operation.objects.filter(pk=operation.pk).update(state=Operation.State.RUNNING, attempts=1)  # no heartbeat: dead

    call_command("sweep_operations", "--grace", "0", stdout=StringIO())

    operation.refresh_from_db()
    assert operation.state == Operation.State.RETRYING and "runs again shortly" in operation.error
    assert (
        Job.fetch(str(operation.pk), connection=queue.connection).get_status() == JobStatus.SCHEDULED
    )  # RQ's retry stays
