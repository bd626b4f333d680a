"""Background operations: a database row per job, enqueued on commit, progress written while it runs."""

import logging

import django_rq
from django.conf import settings
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone
from rq import Callback, Retry, get_current_job
from rq.job import Job

from ..clients.errors import ProviderError
from ..models import AuditEvent, Operation
from . import audit, metrics
from .backends import Backends

log = logging.getLogger(__name__)


def start_operation(kind, organization, cluster=None, user=None, certificate=None):
    """Save the operation and queue its job once the surrounding transaction commits."""
    operation = Operation.objects.create(
        kind=kind,
        organization=organization,
        cluster=cluster,
        certificate=certificate,
        created_by=user,
        request_id=audit.current().request_id,
    )
    target = cluster or certificate or organization
    audit.record(f"{kind}.queued", target, organization=organization, actor=user, detail=f"operation {operation.pk}")
    transaction.on_commit(lambda: enqueue(operation))
    return operation


def enqueue(operation):
    intervals = settings.ORGDNS_JOB_RETRY_INTERVALS
    django_rq.get_queue("default", commit_mode="auto").enqueue_call(
        "provisioning.jobs.run_operation",
        args=(str(operation.pk),),
        job_id=str(operation.pk),
        retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
        on_failure=Callback("provisioning.jobs.job_abandoned"),
    )


def sweep_lost(now, older_than, handlers):
    """Operations whose RQ job is gone (Redis lost it, or queueing failed after the commit): queue again the ones
    that never started, fail the others so that they can be retried. Returns (requeued, failed)."""
    connection = django_rq.get_connection("default")
    requeued, failed = [], []
    for operation in Operation.objects.exclude(state__in=Operation.FINISHED).filter(created_at__lt=now - older_than):
        if Job.exists(str(operation.pk), connection=connection):
            continue
        if operation.state == Operation.State.QUEUED:
            enqueue(operation)
            requeued.append(operation)
        else:
            abandoned(operation.pk, will_retry=False, handlers=handlers)
            failed.append(operation)
    return requeued, failed


class Progress:
    """What a running job tells the operation's page, committed at once so polling pages see it live."""

    def __init__(self, operation):
        self.operation = operation

    def step(self, name, percent):
        Operation.objects.filter(pk=self.operation.pk).update(step=name, progress=percent)
        self.log(name)

    def log(self, line):
        stamped = f"{timezone.now():%H:%M:%S} {line}\n"
        Operation.objects.filter(pk=self.operation.pk).update(log=Concat(F("log"), Value(stamped)))


def run(operation_id, handlers):
    """Run the handler for this operation's kind and record how it ended.

    A transient ProviderError is re-raised so RQ retries the job while retries are left; a permanent
    one, or the last transient one, fails the operation with its message.
    """
    operation = Operation.objects.select_related("organization", "cluster", "certificate", "created_by").get(pk=operation_id)
    if operation.finished:
        return operation.state
    with audit.acting(AuditEvent.Source.JOB, actor=operation.created_by, request_id=operation.request_id):
        return _run(operation, handlers)


def _run(operation, handlers):
    with metrics.timed_job(operation.kind) as timing:
        Operation.objects.filter(pk=operation.pk).update(
            state=Operation.State.RUNNING, attempts=F("attempts") + 1, started_at=timezone.now(), error=""
        )
        handler, on_failure = handlers[operation.kind]
        progress = Progress(operation)
        backends = Backends()
        calls = lambda: dict(backends.stats.calls)  # noqa: E731
        try:
            handler(operation, progress, backends)
        except ProviderError as exc:
            job = get_current_job()
            if not exc.permanent and job is not None and job.retries_left:
                progress.log(f"temporary failure, will retry: {exc.message}")
                Operation.objects.filter(pk=operation.pk).update(
                    state=Operation.State.RETRYING, error=exc.message, remote_calls=calls()
                )
                timing.outcome = Operation.State.RETRYING
                raise
            _fail(operation, progress, exc.message, on_failure, calls())
            timing.outcome = Operation.State.FAILED
            return Operation.State.FAILED
        except Exception:
            log.exception("operation %s (%s) crashed", operation.pk, operation.kind)
            _fail(operation, progress, "internal error: the operators have the details in the worker log", on_failure, calls())
            raise
        Operation.objects.filter(pk=operation.pk).update(
            state=Operation.State.SUCCEEDED, progress=100, step="done", finished_at=timezone.now(), remote_calls=calls()
        )
        progress.log("done")
        _audit_outcome(operation, AuditEvent.Outcome.OK)
        timing.outcome = Operation.State.SUCCEEDED
        return Operation.State.SUCCEEDED


def abandoned(operation_id, will_retry, handlers):
    """The worker running the job died (RQ found it abandoned): the operation must not stay "running" forever."""
    operation = Operation.objects.select_related("organization", "cluster", "certificate", "created_by").get(pk=operation_id)
    if operation.finished:
        return
    if will_retry:
        message = "the worker running this job stopped before it finished; it runs again shortly"
        Operation.objects.filter(pk=operation.pk).update(state=Operation.State.RETRYING, error=message)
        Progress(operation).log(message)
        return
    with audit.acting(AuditEvent.Source.JOB, actor=operation.created_by, request_id=operation.request_id):
        message = "the worker running this job stopped before it finished: retry it (every step is safe to re-run)"
        _fail(operation, Progress(operation), message, handlers[operation.kind][1], operation.remote_calls)


def _fail(operation, progress, message, on_failure, remote_calls):
    progress.log(f"failed: {message}")
    Operation.objects.filter(pk=operation.pk).update(
        state=Operation.State.FAILED, error=message, finished_at=timezone.now(), remote_calls=remote_calls
    )
    on_failure(operation, message)
    _audit_outcome(operation, AuditEvent.Outcome.FAILED, message)


def _audit_outcome(operation, outcome, detail=""):
    target = operation.cluster or operation.certificate or operation.organization
    verb = "succeeded" if outcome == AuditEvent.Outcome.OK else "failed"
    audit.record(f"{operation.kind}.{verb}", target, organization=operation.organization, outcome=outcome, detail=detail)
