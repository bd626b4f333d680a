"""The Route53 rate limit is one budget shared by every worker process (Redis token bucket)."""

import itertools
import json
import subprocess
import sys
import time

import django_rq
import pytest

from provisioning.clients.ratelimit import RedisRateLimiter

GRANTS = """
import json, sys, redis
from provisioning.clients.ratelimit import RedisRateLimiter
connection = redis.Redis.from_url(sys.argv[1])
limiter = RedisRateLimiter(connection, sys.argv[2], rate=float(sys.argv[3]))
granted = []
for _ in range(int(sys.argv[4])):
    limiter.acquire()
    seconds, micros = connection.time()
    granted.append(seconds + micros / 1e6)
print(json.dumps(granted))
"""


def test_two_processes_share_one_budget():
    url = django_rq.get_connection("default").connection_pool.connection_kwargs
    redis_url = f"redis://{url.get('host', '127.0.0.1')}:{url.get('port', 6379)}/{url.get('db', 0)}"
    rate, per_process = 10.0, 6
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", GRANTS, redis_url, "test:bucket", str(rate), str(per_process)],
            stdout=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    grants = sorted(t for p in processes for t in json.loads(p.communicate(timeout=60)[0]))
    assert len(grants) == 2 * per_process
    gaps = [b - a for a, b in itertools.pairwise(grants)]
    # Never more than one request per 1/rate seconds, whichever process asks (a little slack for clock reads).
    assert min(gaps) >= 1 / rate - 0.02, gaps


def test_rate_must_be_positive():
    with pytest.raises(ValueError, match="rate must be positive"):
        RedisRateLimiter(django_rq.get_connection("default"), "k", rate=0)


def test_orgdns_route53_calls_take_only_its_share_a_burst_then_the_rate(settings):
    from provisioning.services.backends import Backends

    settings.ORGDNS_ROUTE53_RATE, settings.ORGDNS_ROUTE53_BURST = 2.0, 4
    route53 = Backends().route53()
    started = time.monotonic()
    for _ in range(4):
        route53.call("list_hosted_zones")
    burst = time.monotonic() - started
    for _ in range(3):
        route53.call("list_hosted_zones")
    assert burst < 0.4  # the burst is granted at once
    assert time.monotonic() - started >= 3 / 2.0 - 0.1  # then one call per 1/rate seconds
