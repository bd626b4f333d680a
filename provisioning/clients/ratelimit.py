import time
from collections.abc import Callable

from redis import Redis

# A token bucket kept in Redis, so that every worker process shares one budget.
# KEYS[1] bucket key; ARGV: rate (tokens/s), capacity. Returns seconds to wait (0 = granted).
# The clock is the Redis server's, so the workers' clocks need not agree.
_TAKE = """
local rate, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = capacity, now end
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
return tostring(wait)
"""


class RedisRateLimiter:
    """At most `rate` acquisitions per second across all processes sharing `key` in Redis."""

    def __init__(
        self,
        redis: Redis,
        key: str,
        rate: float,
        burst: int = 1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.key = key
        self.rate = rate
        self.capacity = max(1, burst)
        self.sleep = sleep
        self._take = redis.register_script(_TAKE)

    def acquire(self) -> None:
        while (wait := self.try_acquire()) != 0:
            self.sleep(wait)

    def try_acquire(self) -> float:
        """Take one token if there is one: 0. Otherwise take none and return the seconds until there is one."""
        return float(self._take(keys=[self.key], args=[self.rate, self.capacity]))
