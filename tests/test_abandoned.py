"""A worker that dies mid-job (SIGKILL, OOM, a lost machine) must not leave its operation "running" forever."""

import time

import django_rq
import pytest
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from provisioning.models import Cluster, Operation
from provisioning.services import clusters

pytestmark = pytest.mark.django_db(transaction=True)


def worker_died_running(operation):
    """What RQ's registry holds after a worker died running the job: STARTED, with an expired heartbeat."""
    queue = django_rq.get_queue("default")
    job = Job.fetch(str(operation.pk), connection=queue.connection)
    queue.remove(job)
    job.set_status(JobStatus.STARTED)
    Operation.objects.filter(pk=operation.pk).update(state=Operation.State.RUNNING, step="Deploying ExternalDNS", progress=70)
    registry = StartedJobRegistry(queue=queue)
    queue.connection.zadd(registry.key, {job.id: time.time() - 60})
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
    assert clusters.retry_operation(operation).kind == Operation.Kind.REGISTER  # and it can be retried
