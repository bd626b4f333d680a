"""orgdns's own Route53 requests, counted per account and minute in Redis by every process that sends them (web processes and
workers' work horses alike): what the Route53 budget page shows as orgdns's measured rate. Each request sent counts,
a retried one each time, as AWS's bucket counts them; ExternalDNS's requests are not orgdns's and are not counted."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

import django_rq
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from redis import Redis


def redis() -> Redis:  # backends.redis, which imports this module
    return django_rq.get_connection("default")


KEY = "orgdns:route53:requests:{account}:{minute}"
KEPT = 3 * 3600  # seconds a minute's count is kept


def count_request(account: str, now: float | None = None) -> None:
    """Count a request sent to Route53 in the AWS account named `account`."""
    key = KEY.format(account=account, minute=int((time.time() if now is None else now) // 60))
    pipeline = redis().pipeline()
    pipeline.incr(key)
    pipeline.expire(key, KEPT)
    with contextlib.suppress(RedisError):  # a count missed, not a call failed
        pipeline.execute()


def recent_requests(account: str, minutes: int, now: float | None = None) -> tuple[int, float]:
    """(requests, seconds): orgdns's Route53 requests in the account named `account` in the current minute and the
    `minutes` - 1 before it, and how many seconds that is (the current minute so far included)."""
    now = time.time() if now is None else now
    current = int(now // 60)
    counts = redis().mget(
        [KEY.format(account=account, minute=minute) for minute in range(current - minutes + 1, current + 1)]
    )
    return sum(int(count) for count in counts if count), max(1.0, (minutes - 1) * 60 + now % 60)
