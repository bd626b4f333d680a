"""A kind declared in one place, a class in this file (as docs/architecture.md's checklist says), is queued through the
class and run, failed, retried (by RQ and by a person), swept, shown, counted and audited by the same machinery as the
product's own kinds: Redis, a real RQ worker process, the Operation row, the audit trail. No migration, no list of
kinds to extend."""

import subprocess
import sys
from datetime import timedelta
from types import SimpleNamespace

import django_rq
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rq.job import Job

from provisioning import operation_kinds
from provisioning.clients.errors import ProviderError
from provisioning.models import AuditEvent, Operation, Organization
from provisioning.services.backends import redis
from provisioning.services.operations import running as operations
from provisioning.services.operations.kinds import OperationKind
from provisioning.services.operations.leases import organization_lock
from tests.conftest import manage_env, run_jobs

pytestmark = pytest.mark.django_db(transaction=True)


def declare_frobnicate(seen):
    """The whole kind. seen: what the test wants it to do (fail, fail once) and what it saw."""

    class Frobnicate(OperationKind):
        name = "test_frobnicate"
        label = "Frobnicate things"
        target = Organization

        def run(self, operation, progress, backends):
            progress.step("Frobnicating", 50)
            with organization_lock(operation.organization):
                holder = redis().get(f"orgdns:lock:org:{operation.organization_id}").decode()
                progress.log(f"organization lock held by {holder}")
            if seen.broken:
                raise ProviderError("the frobnicator is broken: fix it, then retry", service="orgdns", permanent=True)
            if seen.flaky:
                seen.flaky -= 1
                raise ProviderError("the frobnicator is busy", service="orgdns", permanent=False)
            seen.ran.append(operation.pk)

        def on_failure(self, operation, message):
            seen.failed.append((operation.pk, message))

        def retry(self, operation, user):
            return self.enqueue(operation.organization, user, reason=f"retry of operation {operation.pk}")

        @classmethod
        def retry_intervals(cls):
            return seen.retry_intervals

    return Frobnicate


@pytest.fixture
def frobnicate():
    seen = SimpleNamespace(ran=[], failed=[], broken=False, flaky=0, retry_intervals=[])
    seen.kind = declare_frobnicate(seen)
    yield seen
    operation_kinds._KINDS.pop("test_frobnicate")


def run_in_a_worker_process():
    """A real RQ worker (forking a work horse per job) in a process of its own, which knows the kind declared here as
    the product's processes know theirs (declared when the app starts), until the queue is empty."""
    start = (
        "import django; django.setup()\n"
        "from types import SimpleNamespace\n"
        "import django_rq\n"
        "from rq import Worker\n"
        "from tests.operations.test_operation_kinds import declare_frobnicate\n"
        "declare_frobnicate(SimpleNamespace(ran=[], failed=[], broken=False, flaky=0, retry_intervals=[]))\n"
        "queue = django_rq.get_queue('default')\n"
        "Worker([queue], connection=queue.connection).work(burst=True)\n"
    )
    subprocess.run([sys.executable, "-c", start], cwd=settings.BASE_DIR, env=manage_env(), check=True, timeout=120)


def scrape(client, settings):
    settings.ORGDNS_METRICS_TOKEN = "metrics-scrape-token"
    response = client.get("/metrics", headers={"Authorization": "Bearer metrics-scrape-token"})
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


@pytest.mark.integration
def test_a_declared_kind_is_queued_through_its_class_and_run_by_a_worker_process(
    frobnicate, personas, client, settings
):
    operation = frobnicate.kind.enqueue(personas.acme, personas.alice, reason="the test asked")
    assert Job.fetch(str(operation.pk), connection=django_rq.get_connection("default")).func_name == (
        "provisioning.services.operations.running.run"  # a function object given to RQ: no dotted path by hand
    )
    run_in_a_worker_process()

    operation.refresh_from_db()
    assert operation.state == Operation.State.SUCCEEDED and operation.progress == 100 and operation.attempts == 1
    assert "asked for: the test asked" in operation.log and "Frobnicating" in operation.log
    assert f"organization lock held by {operation.pk}/" in operation.log  # the lock's holder is this operation
    assert not redis().exists(f"orgdns:lock:org:{personas.acme.pk}")  # and gave it back
    assert operation.get_kind_display() == "Frobnicate things"
    assert set(AuditEvent.objects.filter(action__startswith="test_frobnicate.").values_list("action", flat=True)) == {
        "test_frobnicate.queued",
        "test_frobnicate.succeeded",
    }
    client.force_login(personas.alice)
    assert "Frobnicate things" in client.get(f"/operations/{operation.pk}/").content.decode()
    samples = scrape(client, settings)
    counted = ("orgdns_job_duration_seconds_count", (("kind", "test_frobnicate"), ("outcome", "succeeded")))
    assert samples[counted] == 1  # counted by the work horse, by kind
    assert samples[("orgdns_operations", (("kind", "test_frobnicate"), ("state", "succeeded")))] == 1


@pytest.mark.integration
def test_a_declared_kind_fails_calls_its_on_failure_and_is_retried(frobnicate, personas, client):
    frobnicate.broken = True
    failed = frobnicate.kind.enqueue(personas.acme, personas.alice)
    run_jobs()

    failed.refresh_from_db()
    assert failed.state == Operation.State.FAILED and "frobnicator is broken" in failed.error
    assert frobnicate.failed == [(failed.pk, failed.error)]
    assert AuditEvent.objects.filter(action="test_frobnicate.failed", outcome=AuditEvent.Outcome.FAILED).exists()
    client.force_login(personas.alice)
    assert ">Retry</button>" in client.get(f"/operations/{failed.pk}/").content.decode()

    frobnicate.broken = False
    retried = operations.retry_operation(failed, personas.alice)
    run_jobs()
    retried.refresh_from_db()
    assert retried.kind == "test_frobnicate" and retried.state == Operation.State.SUCCEEDED
    assert f"asked for: retry of operation {failed.pk}" in retried.log


@pytest.mark.integration
def test_a_transient_failure_is_retried_within_the_kinds_budget(frobnicate, personas):
    frobnicate.flaky, frobnicate.retry_intervals = 1, [0]
    operation = frobnicate.kind.enqueue(personas.acme, personas.alice)
    run_jobs()

    operation.refresh_from_db()
    assert operation.state == Operation.State.SUCCEEDED and operation.attempts == 2
    assert "temporary failure, will retry: the frobnicator is busy" in operation.log

    frobnicate.flaky, frobnicate.retry_intervals = 1, []  # no retries in its budget: the first failure is the last
    spent = frobnicate.kind.enqueue(personas.acme, personas.alice)
    run_jobs()
    spent.refresh_from_db()
    assert (
        spent.state == Operation.State.FAILED and spent.attempts == 1 and frobnicate.failed == [(spent.pk, spent.error)]
    )


@pytest.mark.integration
def test_a_lost_job_of_a_declared_kind_is_swept_and_run(frobnicate, personas):
    operation = frobnicate.kind.enqueue(personas.acme, personas.alice)
    Job.fetch(str(operation.pk), connection=django_rq.get_connection("default")).delete()  # Redis lost it

    requeued, failed = operations.sweep(timezone.now() + timedelta(seconds=1), timedelta(0))
    assert [swept.pk for swept in requeued] == [operation.pk] and failed == []
    run_jobs()
    operation.refresh_from_db()
    assert operation.state == Operation.State.SUCCEEDED and frobnicate.ran == [operation.pk]


def test_a_kind_is_queued_for_its_target_only(frobnicate, personas):
    with pytest.raises(TypeError, match="acts on a Organization"):
        frobnicate.kind.enqueue(personas.alice)
    assert not Operation.objects.exists()


def test_a_kind_without_retry_offers_none(personas, client):
    class DoItOnce(OperationKind):
        name = "test_once"
        label = "Do it once"

    try:
        assert not DoItOnce.retryable
        operation = Operation.objects.create(kind=DoItOnce.name, organization=personas.acme, state="failed")
        with pytest.raises(ValidationError, match="can be retried"):
            operations.retry_operation(operation, personas.alice)
        client.force_login(personas.alice)
        assert ">Retry</button>" not in client.get(f"/operations/{operation.pk}/").content.decode()
    finally:
        operation_kinds._KINDS.pop("test_once")


@pytest.mark.integration
def test_jobs_queued_by_the_version_before_still_run(frobnicate, personas):
    """Jobs in Redis name their function by its dotted path: those queued before kinds were classes name
    provisioning.jobs.run_operation, which an upgraded worker still runs."""
    operation = frobnicate.kind.enqueue(personas.acme, personas.alice)
    queue = django_rq.get_queue("default")
    Job.fetch(str(operation.pk), connection=queue.connection).delete()
    queue.enqueue_call("provisioning.jobs.run_operation", args=(str(operation.pk),), job_id=str(operation.pk))
    run_jobs()
    operation.refresh_from_db()
    assert operation.state == Operation.State.SUCCEEDED and frobnicate.ran == [operation.pk]
