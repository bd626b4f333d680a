"""The AWS accounts orgdns provisions into (issue #9, "accounts as shards"), and which one each organization is in.

The main account is orgdns's own (its identity, no role to assume): it holds the parent zone and every delegation,
and, when ORGDNS_AWS_ACCOUNTS lists it, organizations too. An organization is placed in the account with the most
headroom when its first zone is about to be created, and orgdns never moves it afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Count, Q

from provisioning.clients.errors import ProviderError
from provisioning.models import Cluster, HostedZone, Organization
from provisioning.rules import budget

MAIN = "main"  # the main account's name when ORGDNS_AWS_ACCOUNTS does not name it


@dataclass(frozen=True)
class Account:
    """An AWS account orgdns provisions into: the role it assumes there, its Route53 rate and the shares of it, and
    its quotas."""

    name: str
    role_arn: str  # empty: orgdns's own account (the main account)
    rate: float  # calls/s of the account's Route53 bucket
    fleet_share: float  # of it, every tenant's ExternalDNS together
    orgdns_rate: float  # calls/s orgdns's own limiter allows in this account
    orgdns_burst: int
    zone_quota: int
    iam_user_quota: int
    iam_permissions_boundary: str  # the ARN of the boundary of every IAM user orgdns creates there; empty: none

    @property
    def is_main(self) -> bool:
        return not self.role_arn


def configured() -> list[Account]:
    """Every configured account, in ORGDNS_AWS_ACCOUNTS's order (placement prefers the first of equals)."""
    if not settings.ORGDNS_AWS_ACCOUNTS:
        return [
            Account(
                name=MAIN,
                role_arn="",
                rate=settings.ORGDNS_ROUTE53_ACCOUNT_RATE,
                fleet_share=settings.ORGDNS_ROUTE53_FLEET_SHARE,
                orgdns_rate=settings.ORGDNS_ROUTE53_RATE,
                orgdns_burst=settings.ORGDNS_ROUTE53_BURST,
                zone_quota=settings.ORGDNS_ROUTE53_ZONE_QUOTA,
                iam_user_quota=settings.ORGDNS_IAM_USER_QUOTA,
                iam_permissions_boundary=settings.ORGDNS_IAM_PERMISSIONS_BOUNDARY,
            )
        ]
    share = settings.ORGDNS_ROUTE53_SHARE
    return [
        Account(
            name=entry["name"],
            role_arn=entry["role_arn"],
            rate=entry["rate"],
            fleet_share=settings.ORGDNS_ROUTE53_FLEET_SHARE,
            orgdns_rate=entry["rate"] * share,
            orgdns_burst=max(1, int(50 * share)),
            zone_quota=entry["zone_quota"],
            iam_user_quota=entry["iam_user_quota"],
            iam_permissions_boundary=entry["iam_permissions_boundary"] or boundary_in(entry["role_arn"]),
        )
        for entry in settings.ORGDNS_AWS_ACCOUNTS
    ]


def boundary_in(role_arn: str) -> str:
    """ORGDNS_IAM_PERMISSIONS_BOUNDARY's policy in the role's account (a boundary must be a policy of the user's own
    account: docs/policies/tenant-boundary.json is created in each account under the same name)."""
    boundary = settings.ORGDNS_IAM_PERMISSIONS_BOUNDARY
    if not (role_arn and boundary):
        return boundary
    return re.sub(r"^(arn:[^:]+:iam::)[0-9]{12}:", lambda m: f"{m[1]}{role_arn.split(':')[4]}:", boundary)


def main() -> Account:
    """orgdns's own account: the parent zone's, and that of organizations placed before accounts were configured."""
    found = next((account for account in configured() if account.is_main), None)
    if found is None:  # not listed: it holds the parent zone only
        return Account(
            MAIN,
            "",
            settings.ORGDNS_ROUTE53_ACCOUNT_RATE,
            0.0,
            settings.ORGDNS_ROUTE53_RATE,
            settings.ORGDNS_ROUTE53_BURST,
            0,
            0,
            settings.ORGDNS_IAM_PERMISSIONS_BOUNDARY,
        )
    return found


def every() -> list[Account]:
    """Every account orgdns may have something in: the configured ones, and the main account if it is not listed."""
    listed = configured()
    return listed if any(account.is_main for account in listed) else [main(), *listed]


def named(name: str) -> Account:
    """The account called `name` ("" is the main account); ProviderError if no account has that name."""
    if not name:
        return main()
    found = next((account for account in configured() if account.name == name), None)
    if found is None:
        raise ProviderError(
            f"AWS account {name!r} is not configured (ORGDNS_AWS_ACCOUNTS names "
            f"{', '.join(a.name for a in configured())}): add it back, or move its organizations in the admin",
            service="orgdns",
            permanent=True,
        )
    return found


def stored_names(account: Account) -> list[str]:
    """The values of `aws_account` that rows in this account carry ("" too, for the main account's)."""
    return [account.name, ""] if account.is_main else [account.name]


def of_zone(zone: HostedZone) -> Account:
    """The account a zone is in: the one recorded when its row was made (the main account for older rows)."""
    return named(zone.aws_account)


def of_organization(organization: Organization) -> Account:
    """The account the organization is placed in; the main account if it is not placed yet (it has nothing in AWS
    then, or was provisioned before accounts were configured)."""
    return named(organization.aws_account)


def budget_of(account: Account) -> budget.Budget:
    """The budget model of the account's Route53 rate."""
    return budget.Budget(
        account_rate=account.rate,
        fleet_share=account.fleet_share,
        records=settings.EXTERNALDNS_PLAN_RECORDS,
        changes_per_hour=settings.EXTERNALDNS_PLAN_CHANGES_PER_HOUR,
        min_interval=settings.EXTERNALDNS_MIN_INTERVAL,
        max_interval=settings.EXTERNALDNS_MAX_INTERVAL,
        min_event_sync=settings.EXTERNALDNS_MIN_EVENT_SYNC_INTERVAL,
    )


# --- placement ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """What an account holds, as orgdns knows it."""

    account: Account
    zones: int  # not deleted
    iam_users: int
    clusters: int  # not deregistered

    @property
    def cluster_capacity(self) -> int:
        """The clusters the account's Route53 rate holds at ORGDNS_BUDGET_ATTENTION of the fleet's share."""
        zones = self.zones + 1 + (bool(settings.ORGDNS_PARENT_ZONE_ID) and self.account.is_main)
        return budget.max_clusters_per_account(zones, budget_of(self.account), settings.ORGDNS_BUDGET_ATTENTION)

    @property
    def headroom(self) -> float | None:
        return budget.placement_headroom(
            self.zones,
            self.account.zone_quota,
            self.iam_users,
            self.account.iam_user_quota,
            self.clusters,
            self.cluster_capacity,
        )


def usage() -> list[Usage]:
    """Every configured account's usage, in three grouped queries."""
    live_zones = HostedZone.objects.live().order_by().values("aws_account")
    zones = {
        row["aws_account"]: row
        for row in live_zones.annotate(zones=Count("pk"), users=Count("pk", filter=~Q(iam_user_name="")))
    }
    clusters = dict(Cluster.objects.live().order_by().values_list("organization__aws_account").annotate(n=Count("pk")))
    empty = {"zones": 0, "users": 0}
    return [
        Usage(
            account,
            zones=sum(zones.get(n, empty)["zones"] for n in stored_names(account)),
            iam_users=sum(zones.get(n, empty)["users"] for n in stored_names(account)),
            clusters=sum(clusters.get(n, 0) for n in stored_names(account)),
        )
        for account in configured()
    ]


def check_movable(organization: Organization) -> None:
    """ValidationError unless the organization can be given another account: only while it has no zone (a zone, its
    IAM user and its key stay in the account they were created in; orgdns never copies them over)."""
    live = HostedZone.objects.live().filter(organization=organization).first()
    if live is not None:
        raise ValidationError(
            f"{organization.name} cannot change AWS account while its zone {live.name} exists (it is "
            f"{live.get_state_display().lower()}): deregister its clusters and let the zone be deleted first"
        )


def place(organization: Organization) -> Account:
    """The organization's account, placing it first if it is not placed: in the main account if it already has a
    zone there (provisioned before accounts were configured), else in the account with the most headroom. Placement
    is a conditional update: a concurrent placement of the same organization wins, and is returned."""
    if organization.aws_account:
        return named(organization.aws_account)
    if HostedZone.objects.live().filter(organization=organization).exists():
        chosen = main()
    else:
        usages = usage()
        best = budget.most_headroom([u.headroom for u in usages])
        if best is None:
            raise ProviderError(
                f"no AWS account has room for {organization.name}'s zone and IAM user (every configured account is at "
                "its hosted-zone or IAM-user quota): add an account to ORGDNS_AWS_ACCOUNTS or raise a quota",
                service="orgdns",
                permanent=True,
            )
        chosen = usages[best].account
    Organization.objects.filter(pk=organization.pk, aws_account="").update(aws_account=chosen.name)
    organization.aws_account = Organization.objects.values_list("aws_account", flat=True).get(pk=organization.pk)
    return named(organization.aws_account)
