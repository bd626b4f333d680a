"""Settings for the test suite: the real settings, with a database and a Redis database of this run's own."""

import atexit
import os
import shutil
import tempfile

import redis


def claim_redis_database(host="127.0.0.1", port=6379, candidates=range(2, 13)):
    """A Redis database no other test run is using (runs flush theirs), released when this run ends."""
    registry = redis.Redis(host=host, port=port, db=0)
    for db in candidates:
        key = f"orgdns:test-run:redis-db:{db}"
        if registry.set(key, os.getpid(), nx=True, ex=6 * 3600):
            atexit.register(
                lambda key=key: registry.delete(key) if registry.get(key) == str(os.getpid()).encode() else None
            )
            return f"redis://{host}:{port}/{db}"
    raise RuntimeError("every Redis test database is claimed by another run: wait, or clear orgdns:test-run:* keys")


# `make check` runs the fast tier (tests/unit/) with ORGDNS_TEST_TIER=fast: no server is needed, none is reachable.
# (.invalid names never resolve: a fast test that reaches for Redis, AWS or Vault fails at once.)
if os.environ.get("ORGDNS_TEST_TIER") == "fast":
    os.environ["REDIS_URL"] = "redis://redis.invalid:6379/0"
    os.environ["AWS_ENDPOINT_URL"] = "http://aws.invalid"
    os.environ["VAULT_ADDR"] = "http://vault.invalid:8200"
    os.environ["DATABASE_URL"] = "postgres://postgres@postgres.invalid:5432/postgres"
# The throwaway PostgreSQL cluster devstack/require-services.sh starts, unless DATABASE_URL names another server.
os.environ.setdefault(
    "DATABASE_URL", f"postgres://postgres@127.0.0.1:{os.environ.get('ORGDNS_PG_PORT', '54329')}/postgres"
)
if "REDIS_URL" not in os.environ:  # worker processes of a run get the run's REDIS_URL
    os.environ["REDIS_URL"] = claim_redis_database()
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")
os.environ.setdefault("ORGDNS_BASE_DOMAIN", "orgdns.test")
# The suite's clusters listen on loopback, which orgdns refuses unless allowed (tests of the refusal clear this).
os.environ.setdefault("ORGDNS_CLUSTER_PERMITTED_NETWORKS", "127.0.0.0/8,::1/128")
# prometheus_client's multiprocess mode, as in production: this run and its worker processes count into one directory.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:  # worker processes of a run get the run's directory
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="orgdns-test-metrics-")
    atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
os.environ.setdefault("ORGDNS_RETRY_BASE_DELAY", "0.01")
os.environ.setdefault("ORGDNS_JOB_RETRY_INTERVALS", "")
# Heartbeats and leases at a pace that keeps tests of dead workers short.
os.environ.setdefault("ORGDNS_HEARTBEAT_INTERVAL", "1")
os.environ.setdefault("ORGDNS_HEARTBEAT_TTL", "5")
os.environ.setdefault("ORGDNS_ORG_LOCK_LEASE", "10")
os.environ.setdefault("EXTERNALDNS_ROLLOUT_TIMEOUT", "60")
os.environ.setdefault("EXTERNALDNS_STOP_TIMEOUT", "60")
# boto3 reads these for our own (moto) account.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from orgdns_site.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# One test database per run, so that concurrent runs (a developer's and CI's) never share one.
DATABASES["default"]["TEST"] = {"NAME": f"test_orgdns_{os.getpid()}"}  # noqa: F405
