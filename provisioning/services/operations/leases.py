"""Liveness of running jobs, kept in Redis with short expiries that the running job renews, so that whatever
kills a job (SIGKILL, OOM, a lost machine, a frozen process) also ends what it held within a lease:

- a heartbeat per running operation, which the sweep reads to tell a running job from a dead one;
- the organization lock, held as a lease: a killed job's lock frees by itself.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from redis.exceptions import RedisError

from provisioning.clients.errors import ProviderError
from provisioning.models import Operation
from provisioning.services.backends import redis

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from provisioning.models import Organization
    from provisioning.services.operations.running import Progress

_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
)
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def heartbeat_key(operation_id: int | str) -> str:
    return f"orgdns:heartbeat:operation:{operation_id}"


def is_alive(operation_id: int | str) -> bool:
    """Whether a job is running this operation now (its heartbeat has not expired)."""
    return bool(redis().exists(heartbeat_key(operation_id)))


class Lease:
    """A key in Redis that one holder owns until it stops renewing it for `ttl` seconds."""

    def __init__(self, key: str, holder: object, ttl: float, connection: Any) -> None:
        self.redis = connection
        self.key = key
        self.token = f"{holder}/{uuid.uuid4().hex}"
        self.ttl = ttl
        self.renewed_at: float | None = None
        self.lost = False

    def try_acquire(self) -> bool:
        if self.redis.set(self.key, self.token, nx=True, px=int(self.ttl * 1000)):
            self.renewed_at = time.monotonic()
            return True
        return False

    def holder(self) -> str | None:
        """Who holds it now (what was given as holder), or None."""
        value = self.redis.get(self.key)
        return value.decode().rsplit("/", 1)[0] if value else None

    def renew(self) -> None:
        try:
            renewed = self.redis.eval(_RENEW, 1, self.key, self.token, int(self.ttl * 1000))
        except RedisError:  # unknown: lost only once it has certainly expired
            renewed = None
        if renewed:
            self.renewed_at = time.monotonic()
        elif renewed == 0 or time.monotonic() - self.renewed_at >= self.ttl:  # type: ignore[operator]  # set: renewing follows acquiring
            self.lost = True

    def release(self) -> None:
        with contextlib.suppress(RedisError):  # it expires by itself
            self.redis.eval(_RELEASE, 1, self.key, self.token)


class Keepalive:
    """A thread renewing, every ORGDNS_HEARTBEAT_INTERVAL, the heartbeat of a running operation (if given) and the
    leases held meanwhile."""

    def __init__(self, operation_id: int | None = None) -> None:
        self.redis = redis()
        self.key = heartbeat_key(operation_id) if operation_id else None
        self.leases: list[Lease] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="orgdns-keepalive")

    def __enter__(self) -> Keepalive:
        self._beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.key:
            with contextlib.suppress(RedisError):  # it expires by itself
                self.redis.delete(self.key)

    def _run(self) -> None:
        while not self._stop.wait(settings.ORGDNS_HEARTBEAT_INTERVAL):
            self._beat()

    def _beat(self) -> None:
        if self.key:
            with contextlib.suppress(RedisError):  # the sweep waits out a short Redis outage before it calls a job dead
                self.redis.set(self.key, "1", px=int(settings.ORGDNS_HEARTBEAT_TTL * 1000))
        for lease in list(self.leases):
            lease.renew()

    def check(self) -> None:
        """ProviderError (transient) if a lease held was lost: another job may hold it now, so stop here."""
        if any(lease.lost for lease in self.leases):
            raise ProviderError(
                "this job lost its organization lock (it was stopped or cut off from Redis for too long); will retry",
                service="orgdns",
                permanent=False,
            )


@dataclass
class RunningJob:
    operation: Operation
    progress: Progress
    keepalive: Keepalive


running_job: ContextVar[RunningJob | None] = ContextVar("running_job", default=None)


@contextmanager
def organization_lock(org: Organization) -> Iterator[None]:
    """Serialize zone, credential and CA changes of one organization across every worker process. A job that has
    to wait says so on its operation's page, naming the operation it waits for."""
    job = running_job.get()
    connection = job.keepalive.redis if job else redis()
    lease = Lease(
        f"orgdns:lock:org:{org.pk}", job.operation.pk if job else "", settings.ORGDNS_ORG_LOCK_LEASE, connection
    )
    deadline = time.monotonic() + settings.ORGDNS_ORG_LOCK_WAIT
    told = None
    while not lease.try_acquire():
        holder = describe_holder(lease.holder(), job)
        if time.monotonic() >= deadline:
            raise ProviderError(
                f"organization {org.name} is busy with another operation ({holder}); will retry",
                service="orgdns",
                permanent=False,
            )
        if job and holder != told:
            job.progress.waiting(f"waiting for another operation of this organization: {holder}")
            told = holder
        time.sleep(0.2)
    if job:
        job.keepalive.leases.append(lease)
        if told:
            job.progress.resume()
        try:
            yield
        finally:
            job.keepalive.leases.remove(lease)
            lease.release()
    else:
        with Keepalive() as keepalive:
            keepalive.leases.append(lease)
            try:
                yield
            finally:
                lease.release()


def describe_holder(holder: str | None, job: RunningJob | None) -> str:
    if job and holder == str(job.operation.pk):
        return (
            f"this operation's earlier run, which stopped (its lease ends within {settings.ORGDNS_ORG_LOCK_LEASE:g} s)"
        )
    operation = Operation.objects.filter(pk=holder).first() if holder else None
    return f"{operation} started {operation.created_at:%Y-%m-%d %H:%M:%S %Z}" if operation else "a request being served"
