"""Background operations: a database row per job, enqueued on commit, progress written while it runs, run by the
function its kind names (provisioning.operation_kinds), found again by the sweep when its job was lost."""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING

import django_rq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone
from redis.exceptions import RedisError
from rq import Callback, Queue, Retry, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from provisioning import operation_kinds
from provisioning.clients.errors import ProviderError
from provisioning.models import AuditEvent, Operation, Organization
from provisioning.services import audit
from provisioning.services.backends import Backends
from provisioning.services.metrics import counters as metrics
from provisioning.services.operations import leases

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from django.contrib.auth.models import AbstractBaseUser
    from django.db.models import QuerySet
    from redis import Redis

    from provisioning.models import Certificate, Cluster
    from provisioning.operation_kinds import OperationKind

log = logging.getLogger(__name__)


def start_operation(
    kind: OperationKind,
    organization: Organization,
    cluster: Cluster | None = None,
    user: AbstractBaseUser | None = None,
    certificate: Certificate | None = None,
) -> Operation:
    """Save the operation and queue its job once the surrounding transaction commits. A user's is refused
    (TooManyOperations) while the organization has ORGDNS_ORG_OPERATION_LIMIT operations queued or running; what orgdns
    starts itself (the GC, the sweep) is not."""
    with transaction.atomic():
        if user is not None:
            require_room_for_operation(organization)
        operation = Operation.objects.create(
            kind=kind,
            organization=organization,
            cluster=cluster,
            certificate=certificate,
            created_by=user,
            request_id=audit.current().request_id,
        )
    audit.record(
        f"{kind}.queued", operation.target, organization=organization, actor=user, detail=f"operation {operation.pk}"
    )
    transaction.on_commit(lambda: enqueue_after_commit(operation))
    return operation


class TooManyOperations(ValidationError):
    """The organization has as many operations queued or running as one organization may (the API answers 429)."""

    retry_after = 30  # seconds: about what one operation takes


def require_room_for_operation(organization: Organization) -> None:
    """TooManyOperations if the organization already has ORGDNS_ORG_OPERATION_LIMIT operations queued or running. In
    a transaction: the organization's row is locked, so that concurrent requests cannot both take the last place."""
    Organization.objects.select_for_update().filter(pk=organization.pk).first()
    unfinished = Operation.objects.filter(organization=organization).exclude(state__in=Operation.FINISHED).count()
    limit = settings.ORGDNS_ORG_OPERATION_LIMIT
    if unfinished >= limit:
        raise TooManyOperations(
            f"{organization.name} already has {unfinished} operations queued or running, as many as an organization "
            f"may have at once ({limit}): wait for some to finish, then try again."
        )


def enqueue_after_commit(operation: Operation) -> None:
    """The row is the truth: a Redis that does not answer now does not fail the request that saved it; the sweep
    queues the operation within a minute."""
    try:
        enqueue(operation)
    except RedisError as exc:
        log.warning("operation %s is saved but not queued (Redis: %s): the sweep queues it", operation.pk, exc)


def enqueue(operation: Operation) -> None:
    """Queue the job that runs the operation, with the retries left of its budget (ORGDNS_JOB_RETRY_INTERVALS)."""
    intervals = settings.ORGDNS_JOB_RETRY_INTERVALS[operation.attempts :]
    django_rq.get_queue("default", commit_mode="auto").enqueue_call(
        "provisioning.jobs.run_operation",
        args=(str(operation.pk),),
        job_id=str(operation.pk),
        retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
        on_failure=Callback("provisioning.jobs.job_abandoned"),
    )


def max_runs() -> int:
    return 1 + len(settings.ORGDNS_JOB_RETRY_INTERVALS)


WAITING = (JobStatus.QUEUED, JobStatus.DEFERRED)
SCHEDULER_SLACK = timedelta(seconds=60)


def sweep(now: datetime, grace: timedelta) -> tuple[list[Operation], list[Operation]]:
    """Operations that no job is going to finish — their job was lost (Redis restarted empty, or queueing failed after
    the commit) or its worker died — older than grace: each is queued again while its retry budget lasts, and
    failed, saying to retry it, after that. A running job proves it is alive by its heartbeat. Returns (requeued,
    failed)."""
    connection = django_rq.get_connection("default")
    unfinished = Operation.objects.exclude(state__in=Operation.FINISHED).filter(created_at__lt=now - grace)
    suspects = []
    for operation in unfinished:
        if leases.is_alive(operation.pk):
            continue
        pending = _job_pending(operation, connection, grace)
        if pending is None:
            suspects.append(operation)
        elif pending == JobStatus.SCHEDULED and operation.state == Operation.State.RUNNING:
            # RQ retries a dead horse's job
            _retrying(operation, "the worker running this job stopped before it finished; it runs again shortly")
    if suspects:  # a heartbeat may be late after a Redis hiccup: give each one more beat before calling it dead
        time.sleep(settings.ORGDNS_HEARTBEAT_INTERVAL + 1)
    requeued, failed = [], []
    for operation in suspects:
        operation.refresh_from_db()
        if operation.finished or leases.is_alive(operation.pk) or _job_pending(operation, connection, grace):
            continue
        if operation.attempts < max_runs():
            if operation.attempts:
                _retrying(operation, "the worker running this job stopped before it finished; it runs again now")
            _forget_job(operation, connection)
            enqueue(operation)
            requeued.append(operation)
        else:
            abandoned(operation.pk, will_retry=False)
            failed.append(operation)
    return requeued, failed


def _forget_job(operation: Operation, connection: Redis) -> None:
    """Remove what RQ still keeps of the operation's earlier job (its registries), so a new one can take its id."""
    with contextlib.suppress(NoSuchJobError):
        Job.fetch(str(operation.pk), connection=connection).delete()


def _retrying(operation: Operation, message: str) -> None:
    Operation.objects.filter(pk=operation.pk).update(state=Operation.State.RETRYING, error=message)
    Progress(operation).log(message)


def _job_pending(operation: Operation, connection: Redis, grace: timedelta) -> JobStatus | None:
    """The status of the operation's RQ job if it is waiting to run, or has only just started (its heartbeat may not
    be up yet); None if no job is going to run it."""
    try:
        job = Job.fetch(str(operation.pk), connection=connection)
    except NoSuchJobError:
        return None
    status = job.get_status()
    if status == JobStatus.STARTED:
        recent = job.started_at is not None and job.started_at > timezone.now() - grace
        return status if recent else None
    if status == JobStatus.SCHEDULED:  # due, but no scheduler has queued it for long: none is running
        try:
            due = Queue("default", connection=connection).scheduled_job_registry.get_scheduled_time(job)
        except NoSuchJobError:
            return None
        return status if due > timezone.now() - grace - SCHEDULER_SLACK else None
    return status if status in WAITING else None


class Progress:
    """What a running job tells the operation's page, committed at once so polling pages see it live."""

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        self.current = ""
        self.keepalive: leases.Keepalive | None = None

    def step(self, name: str, percent: int) -> None:
        if self.keepalive:
            self.keepalive.check()
        self.current = name
        Operation.objects.filter(pk=self.operation.pk).update(step=name, progress=percent)
        self.log(name)

    def waiting(self, why: str) -> None:
        Operation.objects.filter(pk=self.operation.pk).update(step=why)
        self.log(why)

    def resume(self) -> None:
        Operation.objects.filter(pk=self.operation.pk).update(step=self.current)

    def retrying(self, what: str, attempt: int, attempts: int, exc: Exception) -> None:
        """A remote call failed and is tried again (RetryPolicy.on_retry)."""
        note = f"{what} is slow or unreachable ({type(exc).__name__}): attempt {attempt} of {attempts}"
        Operation.objects.filter(pk=self.operation.pk).update(step=f"{self.current} — {note}"[:200])
        self.log(note)

    def log(self, line: str) -> None:
        stamped = f"{timezone.now():%H:%M:%S} {line}\n"
        Operation.objects.filter(pk=self.operation.pk).update(log=Concat(F("log"), Value(stamped)))


INTERNAL_ERROR = "internal error: the operators have the details in the worker log"


def classify(exc: BaseException) -> tuple[bool, str]:
    """(transient, message fit for the operation's page) for whatever a job raised. Failures of orgdns's own
    infrastructure, and calls whose outcome is unknown, are transient: every step is safe to run again."""
    if isinstance(exc, ProviderError):
        return not exc.permanent, exc.message
    if isinstance(exc, RedisError):
        return True, f"Redis (the job queue) did not answer ({type(exc).__name__}); will retry"
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True, f"the database did not answer ({type(exc).__name__}); will retry"
    if isinstance(exc, TimeoutError):
        return True, "a call timed out and its outcome is unknown; will retry"
    return False, INTERNAL_ERROR


def run(operation_id: int | str) -> str:
    """Run the handler for this operation's kind and record how it ended.

    A transient failure is re-raised so RQ retries the job while retries are left; a permanent one, or the last
    transient one, fails the operation with its message (and RQ does not retry it: a finished row stays finished).
    """
    operation = Operation.objects.select_related("organization", "cluster", "certificate", "created_by").get(
        pk=operation_id
    )
    if operation.finished:
        return operation.state
    with audit.acting(AuditEvent.Source.JOB, actor=operation.created_by, request_id=operation.request_id):
        return _run(operation)


def _run(operation: Operation) -> str:
    with metrics.timed_job(operation.kind) as timing, leases.Keepalive(operation.pk) as keepalive:
        Operation.objects.filter(pk=operation.pk).update(
            state=Operation.State.RUNNING, attempts=F("attempts") + 1, started_at=timezone.now(), error=""
        )
        kind = operation_kinds.get(operation.kind)
        progress = Progress(operation)
        progress.keepalive = keepalive
        backends = Backends(on_retry=progress.retrying)
        calls = lambda: dict(backends.stats.calls)  # noqa: E731
        running = leases.running_job.set(leases.RunningJob(operation, progress, keepalive))
        try:
            kind.run(operation, progress, backends)
        except Exception as exc:
            transient, message = classify(exc)
            if message == INTERNAL_ERROR:
                log.exception("operation %s (%s) crashed", operation.pk, operation.kind)
            elif not isinstance(exc, ProviderError):
                log.warning("operation %s (%s): %s", operation.pk, operation.kind, message, exc_info=True)
            job = get_current_job()
            if transient and job is not None and job.retries_left:
                progress.log(f"temporary failure, will retry: {message}")
                Operation.objects.filter(pk=operation.pk).update(
                    state=Operation.State.RETRYING, error=message, remote_calls=calls()
                )
                timing.outcome = Operation.State.RETRYING
                raise
            _fail(operation, progress, message, calls())
            timing.outcome = Operation.State.FAILED
            return Operation.State.FAILED
        finally:
            leases.running_job.reset(running)
        Operation.objects.filter(pk=operation.pk).update(
            state=Operation.State.SUCCEEDED, progress=100, step="done", finished_at=timezone.now(), remote_calls=calls()
        )
        progress.log("done")
        _audit_outcome(operation, AuditEvent.Outcome.OK)
        timing.outcome = Operation.State.SUCCEEDED
        return Operation.State.SUCCEEDED


def abandoned(operation_id: int | str, will_retry: bool) -> None:
    """The worker running the job died (RQ found it abandoned, or the sweep did): the operation must not stay
    "running" forever."""
    operation = Operation.objects.select_related("organization", "cluster", "certificate", "created_by").get(
        pk=operation_id
    )
    if operation.finished:
        return
    if will_retry:
        message = "the worker running this job stopped before it finished; it runs again shortly"
        Operation.objects.filter(pk=operation.pk).update(state=Operation.State.RETRYING, error=message)
        Progress(operation).log(message)
        return
    with audit.acting(AuditEvent.Source.JOB, actor=operation.created_by, request_id=operation.request_id):
        message = "the worker running this job stopped before it finished: retry it (every step is safe to re-run)"
        _fail(operation, Progress(operation), message, operation.remote_calls)


def _fail(operation: Operation, progress: Progress, message: str, remote_calls: dict[str, int]) -> None:
    progress.log(f"failed: {message}")
    Operation.objects.filter(pk=operation.pk).update(
        state=Operation.State.FAILED, error=message, finished_at=timezone.now(), remote_calls=remote_calls
    )
    operation_kinds.get(operation.kind).on_failure(operation, message)
    _audit_outcome(operation, AuditEvent.Outcome.FAILED, message)


def _audit_outcome(operation: Operation, outcome: str, detail: str = "") -> None:
    verb = "succeeded" if outcome == AuditEvent.Outcome.OK else "failed"
    audit.record(
        f"{operation.kind}.{verb}",
        operation.target,
        organization=operation.organization,
        outcome=outcome,
        detail=detail,
    )


def wait_for(operations: Callable[[], QuerySet[Operation]], progress: Progress) -> None:
    """Until operations() (a queryset) is empty, saying on the operation's page which one it waits for."""
    deadline = time.monotonic() + settings.ORGDNS_WAIT_FOR_JOBS_TIMEOUT
    shown = None
    while (running := operations().select_related("cluster", "certificate", "organization").first()) is not None:
        if time.monotonic() >= deadline:
            raise ProviderError(
                f"{describe(running)} is still running after {settings.ORGDNS_WAIT_FOR_JOBS_TIMEOUT} s; will retry",
                service="orgdns",
                permanent=False,
            )
        if running.pk != shown:
            progress.waiting(f"Waiting for {describe(running)} to finish")
            shown = running.pk
        time.sleep(0.5)
    if shown:
        progress.resume()


def describe(operation: Operation) -> str:
    return f"{operation.get_kind_display().lower()} {operation.target} (operation {operation.pk})"


def retry_operation(operation: Operation, user: AbstractBaseUser | None = None) -> Operation:
    """Start a failed operation again, through the action that started it (and its state checks)."""
    retry = operation_kinds.get(operation.kind).retry
    if operation.state != Operation.State.FAILED or retry is None:
        raise ValidationError("Only a failed cluster operation or key rotation can be retried.")
    if operation.followed:
        raise ValidationError("This operation was already followed by another one: see the cluster's latest operation.")
    return retry(operation, user)
