import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


@dataclass
class RetryPolicy:
    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 20.0
    sleep: Callable[[float], None] = time.sleep
    on_retry: Callable[[str, int, int, Exception], None] | None = (
        None  # on_retry(what, attempt, attempts, exc): before the given attempt is made
    )

    def delays(self) -> Iterator[float]:
        """Exponential backoff with full jitter, one delay before each retry."""
        for attempt in range(self.attempts - 1):
            yield random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


@dataclass
class CallStats:
    """Remote calls made, by service, and throttled answers: what a job reports about itself and what bench/ prints."""

    calls: Counter[str] = field(default_factory=Counter)
    throttles: Counter[str] = field(default_factory=Counter)

    def count(self, service: str, operation: str | None = None) -> None:
        self.calls[service] += 1
        if operation:
            self.calls[f"{service}.{operation}"] += 1

    def throttled(self, service: str, operation: str) -> None:
        """The remote side answered "slow down" (the call is retried, or fails as transient)."""
        self.throttles[f"{service}.{operation}"] += 1


def call_with_retry[T](
    fn: Callable[[], T], *, policy: RetryPolicy, is_transient: Callable[[Exception], bool], what: str
) -> T:
    """Call fn(); when it raises an exception that is_transient() accepts, back off and try again.
    `what` names the remote side for policy.on_retry ("AWS route53", "Vault")."""
    delays = policy.delays()
    attempt = 1
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            delay = next(delays, None)
            if delay is None:
                raise
            attempt += 1
            if policy.on_retry:
                policy.on_retry(what, attempt, policy.attempts, exc)
            policy.sleep(delay)
