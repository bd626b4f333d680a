"""Settings for the test suite: the real settings, pointed at a throwaway Redis database."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orgdns")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")
os.environ.setdefault("ORGDNS_BASE_DOMAIN", "orgdns.test")
os.environ.setdefault("ORGDNS_RETRY_BASE_DELAY", "0.01")
os.environ.setdefault("ORGDNS_JOB_RETRY_INTERVALS", "")
# boto3 reads these for our own (moto) account.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from orgdns_site.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# One test database per run, so that concurrent runs (a developer's and CI's) never share one.
DATABASES["default"]["TEST"] = {"NAME": f"test_orgdns_{os.getpid()}"}  # noqa: F405
