"""Readiness (`/readyz`): can this process serve? One `SELECT 1` on the database and one PING to Redis, each with a
short timeout, so that a probe every few seconds costs next to nothing and a dead server fails it quickly."""

from functools import cache

import redis as redis_py
from django.conf import settings
from django.db import connections
from redis import Redis


def check_database() -> None:
    """Raises if the default database does not answer `SELECT 1`."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


@cache
def _probe_redis() -> Redis:
    # Its own small pool: the probe's timeouts, not the jobs' (REDIS_TIMEOUT).
    seconds = settings.ORGDNS_READY_TIMEOUT
    return redis_py.Redis.from_url(
        settings.REDIS_URL, socket_timeout=seconds, socket_connect_timeout=seconds, max_connections=4
    )


def check_redis() -> None:
    """Raises if Redis does not answer PING."""
    _probe_redis().ping()


CHECKS = {"database": check_database, "redis": check_redis}


def readiness() -> dict[str, str]:
    """{"database": "ok", "redis": "failed: ConnectionError"}: each check's outcome, the exception's type only (its
    message may name hosts and users)."""
    outcome = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:
            outcome[name] = f"failed: {type(exc).__name__}"
        else:
            outcome[name] = "ok"
    return outcome
