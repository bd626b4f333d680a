"""The remote systems, configured from settings: the one place that turns settings into clients."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import boto3
import django_rq
from django.conf import settings

from provisioning.services.aws_accounts import assignment as accounts
from provisioning.services.aws_accounts import route53_usage
from provisioning.services.metrics.counters import MeteredCallStats

from ..clients.aws import IAM, STS, RoleCredentials, Route53
from ..clients.kube import KubeCluster
from ..clients.ratelimit import RedisRateLimiter
from ..clients.retry import RetryPolicy
from ..clients.vault import Vault

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from typing import Any

    from redis import Redis

    from ..clients.aws import AwsService, Credentials
    from ..clients.kube import ClusterConnection
    from ..clients.retry import CallStats


@cache
def aws_session() -> boto3.Session:
    """One boto3 session per process (credentials from the environment, as boto3 reads them): orgdns's own identity,
    in the main account, which assumes the role of each other account."""
    return boto3.Session()


@cache
def role_credentials() -> RoleCredentials:
    """The credentials of the roles orgdns assumes in the other accounts, one cache per process."""
    return RoleCredentials()


def redis() -> Redis:
    return django_rq.get_connection("default")


def probe_rate_limiter(user: Any) -> RedisRateLimiter:
    """The budget of cluster probes of one user, shared by every web process."""
    return RedisRateLimiter(
        redis(),
        f"orgdns:ratelimit:probe:{user.pk}",
        settings.ORGDNS_PROBES_PER_MINUTE / 60,
        burst=settings.ORGDNS_PROBE_BURST,
    )


def retry_policy(on_retry: Callable[[str, int, int, Exception], None] | None = None) -> RetryPolicy:
    return RetryPolicy(
        attempts=settings.ORGDNS_RETRY_ATTEMPTS, base_delay=settings.ORGDNS_RETRY_BASE_DELAY, on_retry=on_retry
    )


def api_rate_limiter(identity: str) -> RedisRateLimiter:
    """The request budget of one API token (or session user), shared by every web process."""
    return RedisRateLimiter(
        redis(), f"orgdns:ratelimit:api:{identity}", settings.ORGDNS_API_RATE, burst=settings.ORGDNS_API_BURST
    )


class Backends:
    """The clients one job uses, sharing one tally of remote calls and one way of telling about retries. Route53 and
    IAM are those of one AWS account (the main account unless made with for_account)."""

    def __init__(
        self,
        stats: CallStats | None = None,
        on_retry: Callable[[str, int, int, Exception], None] | None = None,
        retry: RetryPolicy | None = None,
        account: accounts.Account | None = None,
    ) -> None:
        self.stats = stats or MeteredCallStats()
        self.retry = retry or retry_policy(on_retry)
        self.account = account or accounts.main()

    def for_account(self, account: accounts.Account) -> Backends:
        """These backends (one tally, one retry policy) with Route53 and IAM in `account` (an accounts.Account)."""
        return Backends(self.stats, retry=self.retry, account=account)

    def _aws(
        self,
        cls: type[AwsService],
        limiter: RedisRateLimiter | None = None,
        credentials: Credentials | None = None,
        account: accounts.Account | None = None,
    ) -> Any:
        if account is not None and account.role_arn:
            credentials = role_credentials().get(account.role_arn, self._assume_role)
        return cls(
            aws_session(),
            endpoint_url=settings.AWS_ENDPOINT_URL,
            region=settings.AWS_REGION,
            retry=self.retry,
            stats=self.stats,
            limiter=limiter,
            credentials=credentials,
        )

    def _assume_role(self, role_arn: str) -> tuple[Credentials, datetime]:
        return self._aws(STS).assume_role(
            role_arn, settings.ORGDNS_RESOURCE_PREFIX, settings.ORGDNS_AWS_ROLE_SESSION_SECONDS
        )

    def route53(self) -> Route53:
        """Route53 in this account, within orgdns's share of the account's rate (the rest is the ExternalDNS fleet's
        and the console's); every request counted for the budget page."""
        return self._route53(self.account)

    def parent_zone_route53(self) -> Route53:
        """Route53 in the main account, where the parent zone and every delegation are."""
        return self._route53(accounts.main())

    def _route53(self, account: accounts.Account) -> Route53:
        limiter = RedisRateLimiter(
            redis(), f"orgdns:ratelimit:route53:{account.name}", account.orgdns_rate, burst=account.orgdns_burst
        )
        route53 = self._aws(Route53, limiter=limiter, account=account)
        route53.client.meta.events.register(
            "before-send.route53", lambda **_: route53_usage.count_request(account.name)
        )
        return route53

    def iam(self) -> IAM:
        return self._aws(IAM, account=self.account)

    def sts_for(self, access_key_id: str, secret_access_key: str) -> STS:
        credentials = {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}
        return self._aws(STS, credentials=credentials)

    def vault(self, timeout: float | None = None, prefix: str | None = None) -> Vault:
        """Vault, its paths under this deployment's part of VAULT_PREFIX (vault_root()); given a prefix, under that."""
        return Vault(
            settings.VAULT_ADDR,
            settings.VAULT_TOKEN,
            mount=settings.VAULT_KV_MOUNT,
            prefix=prefix or vault_root(),
            retry=self.retry,
            stats=self.stats,
            timeout=timeout or settings.VAULT_TIMEOUT,
        )

    def cluster(
        self,
        connection: ClusterConnection,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
    ) -> KubeCluster:
        return KubeCluster(
            connection,
            retry=retry or self.retry,
            stats=self.stats,
            timeout=timeout or settings.KUBE_REQUEST_TIMEOUT,
            deadline=deadline,
            permitted_networks=settings.ORGDNS_CLUSTER_PERMITTED_NETWORKS,
            max_response_bytes=settings.ORGDNS_CLUSTER_MAX_RESPONSE_BYTES,
        )


def vault_root() -> str:
    """Where this deployment keeps its secrets: <VAULT_PREFIX>/<ORGDNS_DEPLOYMENT_ID>, so that deployments sharing a
    Vault and a prefix never see each other's."""
    return f"{settings.VAULT_PREFIX.strip('/')}/{settings.ORGDNS_DEPLOYMENT_ID}"
