"""The remote systems, configured from settings: the one place that turns settings into clients."""

from functools import cache

import boto3
import django_rq
from django.conf import settings

from ..clients.aws import IAM, STS, Route53
from ..clients.kube import KubeCluster
from ..clients.ratelimit import RedisRateLimiter
from ..clients.retry import RetryPolicy
from ..clients.vault import Vault
from .metrics import MeteredCallStats


@cache
def aws_session():
    """One boto3 session per process (credentials from the environment, as boto3 reads them)."""
    return boto3.Session()


def redis():
    return django_rq.get_connection("default")


def probe_rate_limiter(user):
    """The budget of cluster probes of one user, shared by every web process."""
    return RedisRateLimiter(
        redis(), f"orgdns:ratelimit:probe:{user.pk}", settings.ORGDNS_PROBES_PER_MINUTE / 60, burst=settings.ORGDNS_PROBE_BURST
    )


def retry_policy(on_retry=None):
    return RetryPolicy(
        attempts=settings.ORGDNS_RETRY_ATTEMPTS, base_delay=settings.ORGDNS_RETRY_BASE_DELAY, on_retry=on_retry
    )


def api_rate_limiter(identity):
    """The request budget of one API token (or session user), shared by every web process."""
    return RedisRateLimiter(
        redis(), f"orgdns:ratelimit:api:{identity}", settings.ORGDNS_API_RATE, burst=settings.ORGDNS_API_BURST
    )


class Backends:
    """The clients one job uses, sharing one tally of remote calls and one way of telling about retries."""

    def __init__(self, stats=None, on_retry=None, retry=None):
        self.stats = stats or MeteredCallStats()
        self.retry = retry or retry_policy(on_retry)

    def _aws(self, cls, limiter=None, credentials=None):
        return cls(
            aws_session(),
            endpoint_url=settings.AWS_ENDPOINT_URL,
            region=settings.AWS_REGION,
            retry=self.retry,
            stats=self.stats,
            limiter=limiter,
            credentials=credentials,
        )

    def route53(self):
        # orgdns's share of the account's Route53 rate only: the rest is the ExternalDNS fleet's and the console's.
        limiter = RedisRateLimiter(
            redis(), "orgdns:ratelimit:route53", settings.ORGDNS_ROUTE53_RATE, burst=settings.ORGDNS_ROUTE53_BURST
        )
        return self._aws(Route53, limiter=limiter)

    def iam(self):
        return self._aws(IAM)

    def sts_for(self, access_key_id, secret_access_key):
        credentials = {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}
        return self._aws(STS, credentials=credentials)

    def vault(self, timeout=None):
        return Vault(
            settings.VAULT_ADDR,
            settings.VAULT_TOKEN,
            mount=settings.VAULT_KV_MOUNT,
            prefix=settings.VAULT_PREFIX,
            retry=self.retry,
            stats=self.stats,
            timeout=timeout or settings.VAULT_TIMEOUT,
        )

    def cluster(self, connection, retry=None, timeout=None):
        return KubeCluster(
            connection,
            retry=retry or self.retry,
            stats=self.stats,
            timeout=timeout or settings.KUBE_REQUEST_TIMEOUT,
            permitted_networks=settings.ORGDNS_CLUSTER_PERMITTED_NETWORKS,
        )
