"""What is ours but has no row (issue 16): found by orgdns's marks, and removed.

A write whose outcome was unknown (a Vault write that timed out and landed after all, a job killed between creating
something and recording it) can leave behind things orgdns made that no row points at. They are found by orgdns's
marks — Vault paths under its prefix, IAM users and hosted zones with its tags, certificate Secrets with its labels in
registered clusters — and removed; a zone whose organization has none is adopted instead, so that the billing-aware GC
decides when it goes (a zone already paid for this month is not deleted earlier than the GC would).

Nothing is decided about an organization with an unfinished operation, nor about anything younger than the grace (an
in-flight registration); each removal decides again under the organization lock, so it never races a job creating
what it removes.
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings

from provisioning.clients import tls
from provisioning.clients.errors import ProviderError
from provisioning.models import Certificate, CertificateInstallation, Cluster, HostedZone, Operation, Organization
from provisioning.rules.validators import iam_user_name
from provisioning.services.aws_accounts import assignment as accounts
from provisioning.services.certificates.jobs import cluster_api
from provisioning.services.credentials.vault_paths import aws_secret_path, ca_path, cluster_secret_path, material_path
from provisioning.services.operations.leases import organization_lock
from provisioning.services.zones.jobs import delete_our_iam_user, records_to_delete
from provisioning.services.zones.setup import (
    CREATED_AT_TAG,
    ORGANIZATION_TAG,
    NoProgress,
    adopt_zone,
    name_server_set,
    tagged_as_ours,
)

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from django.db.models import QuerySet

    from provisioning.clients.aws import IAM, Route53
    from provisioning.clients.vault import Vault
    from provisioning.services.backends import Backends

DEFAULT_GRACE = timedelta(minutes=10)

VAULT = "vault"
IAM_USER = "iam-user"
ZONE = "zone"
SECRET = "secret"

DELETE = "delete"
ADOPT = "adopt"

# The paths orgdns writes under <prefix>/orgs/<organization>/; anything else there is left alone (a newer version of
# orgdns, during a rolling deployment, may write paths this one does not know).
VAULT_PATH = re.compile(r"orgs/(?P<org>[^/]+)/(aws|clusters/[^/]+|tls/ca|tls/certs/[^/]+)")


@dataclass
class Orphan:
    kind: str  # VAULT, IAM_USER, ZONE or SECRET
    name: str  # a Vault path, a user name, a zone's name, <cluster>/<namespace>/<secret>
    organization: str  # the organization it names (which may not exist any more)
    why: str
    action: str = DELETE  # or ADOPT (a zone)
    born: datetime | None = None  # when it was made (None: unknown, taken as old)
    held: str = ""  # why it is left for a later run
    ref: dict[str, Any] = field(
        default_factory=dict
    )  # what removing it needs: a zone id, a cluster id, a certificate id

    def describe(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass
class Scan:
    orphans: list[Orphan]
    problems: list[str]  # what could not be checked, and why

    @property
    def actionable(self) -> list[Orphan]:
        return [orphan for orphan in self.orphans if not orphan.held]


def find_orphans(backends: Backends, now: datetime, grace: timedelta = DEFAULT_GRACE) -> Scan:
    """Every orphan (those to leave for later marked `held`), and what could not be checked."""
    organizations = {org.name: org for org in Organization.objects.all()}
    scan = Scan([], [])
    _find_vault_orphans(backends.vault(), organizations, scan)
    for account in accounts.every():
        in_account = backends.for_account(account)
        _find_iam_orphans(in_account.iam(), account, organizations, scan)
        _find_zone_orphans(in_account.route53(), account, organizations, scan)
    _find_secret_orphans(backends, scan)
    busy = set(
        Operation.objects.exclude(state__in=Operation.FINISHED).values_list("organization__name", flat=True).distinct()
    )
    for orphan in scan.orphans:
        if orphan.organization in busy:
            orphan.held = "its organization has an unfinished operation"
        elif orphan.born is not None and now - orphan.born < grace:
            orphan.held = f"made {_minutes(now - orphan.born)} ago, within the grace of {_minutes(grace)}"
    return scan


def remove(orphan: Orphan, backends: Backends) -> str:
    """Remove (or adopt) one orphan, deciding again under its organization's lock. Returns what was done."""
    org = Organization.objects.filter(name=orphan.organization).first()
    with organization_lock(org) if org else nullcontext():
        if org and _busy(org):
            return "left: its organization has an unfinished operation now"
        return _REMOVERS[orphan.kind](orphan, org, backends)


def _busy(org: Organization) -> bool:
    return Operation.objects.filter(organization=org).exclude(state__in=Operation.FINISHED).exists()


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:.0f} min"


# --- Vault -------------------------------------------------------------------------------------------------------


def expected_vault_paths(vault: Vault, organizations: Iterable[Organization]) -> set[str]:
    """The paths the rows of these organizations point at: each one's CA, its AWS key while a live zone has one, the
    credentials of each cluster not deregistered, the key and certificate of each certificate not deleted."""
    live_zones = HostedZone.objects.live().exclude(access_key_id="")
    certificates = Certificate.objects.live()
    paths = {ca_path(vault, org) for org in organizations}
    paths.update(aws_secret_path(vault, z.organization) for z in _of(live_zones, organizations))
    paths.update(cluster_secret_path(vault, c) for c in _of(Cluster.objects.live(), organizations))
    paths.update(material_path(vault, c) for c in _of(certificates, organizations))
    return paths


def _of(rows: QuerySet[Any], organizations: Iterable[Organization]) -> QuerySet[Any]:
    return rows.filter(organization__in=organizations).select_related("organization")


def _find_vault_orphans(vault: Vault, organizations: dict[str, Organization], scan: Scan) -> None:
    root = f"{vault.prefix}/"
    expected = expected_vault_paths(vault, list(organizations.values()))
    for path in vault.paths_under(f"{vault.prefix}/orgs"):
        shape = VAULT_PATH.fullmatch(path.removeprefix(root))
        if shape is None or path in expected:
            continue
        org_name = shape["org"]
        why = "no row points at it" if org_name in organizations else f"organization {org_name} does not exist"
        scan.orphans.append(Orphan(VAULT, path, org_name, why, born=vault.last_written(path)))


def _remove_vault_path(orphan: Orphan, org: Organization | None, backends: Backends) -> str:
    vault = backends.vault()
    if org is not None and orphan.name in expected_vault_paths(vault, [org]):
        return "left: a row points at it now"
    vault.destroy(orphan.name)
    return "destroyed, with every version"


# --- IAM ---------------------------------------------------------------------------------------------------------


def _iam_user_expected(user: str, org: Organization | None, account: accounts.Account) -> bool:
    live = HostedZone.objects.live().filter(aws_account__in=accounts.stored_names(account))
    return org is not None and live.filter(organization=org, iam_user_name=user).exists()


def _find_iam_orphans(iam: IAM, account: accounts.Account, organizations: dict[str, Organization], scan: Scan) -> None:
    live = HostedZone.objects.live().filter(aws_account__in=accounts.stored_names(account))
    named = set(live.values_list("iam_user_name", flat=True))
    for user in iam.users(f"{settings.ORGDNS_RESOURCE_PREFIX}-"):
        if user["name"] in named:
            continue
        tags = iam.user_tags(user["name"]) or {}
        org_name = tags.get(ORGANIZATION_TAG, "")
        org = organizations.get(org_name)
        if not org_name or user["name"] != iam_user_name(org_name) or not tagged_as_ours(tags, _named(org_name)):
            continue  # not ours
        why = f"organization {org_name} does not exist" if org is None else "no live zone names it"
        why += _in(account)
        scan.orphans.append(
            Orphan(IAM_USER, user["name"], org_name, why, born=user["created_at"], ref={"account": account.name})
        )


def _remove_iam_user(orphan: Orphan, org: Organization | None, backends: Backends) -> str:
    account = accounts.named(orphan.ref["account"])
    if _iam_user_expected(orphan.name, org, account):
        return "left: a live zone names it now"
    return delete_our_iam_user(org or _named(orphan.organization), backends.for_account(account).iam())


def _in(account: accounts.Account) -> str:
    """Where an orphan of AWS is, when orgdns uses more than its own account."""
    return f" (in AWS account {account.name})" if len(accounts.every()) > 1 else ""


def _named(org_name: str) -> Organization:
    """An organization as far as its name goes: for what orgdns made for one that no longer exists."""
    return Organization(name=org_name)


# --- Route53 -----------------------------------------------------------------------------------------------------


def _find_zone_orphans(
    route53: Route53, account: accounts.Account, organizations: dict[str, Organization], scan: Scan
) -> None:
    suffix = f".{settings.ORGDNS_BASE_DOMAIN}."
    known = set(HostedZone.objects.live().exclude(zone_id="").values_list("zone_id", flat=True))
    for zone in route53.zones():
        if zone["private"] or zone["id"] in known or not zone["name"].endswith(suffix):
            continue
        tags = route53.tags(zone["id"])
        org_name = tags.get(ORGANIZATION_TAG, "")
        if not org_name or zone["name"] != f"{org_name}{suffix}" or not tagged_as_ours(tags, _named(org_name)):
            continue  # not ours
        action, why = _zone_decision(org_name, organizations.get(org_name), zone["id"], account)
        why += _in(account)
        born = _tag_time(tags)
        if born is None:
            why += " (its creation time is unknown: taken as old)"
        ref = {"zone_id": zone["id"], "caller_reference": zone["caller_reference"], "account": account.name}
        orphan = Orphan(ZONE, zone["name"].rstrip("."), org_name, why, action or DELETE, born, ref=ref)
        orphan.held = "" if action else why
        scan.orphans.append(orphan)


def _tag_time(tags: dict[str, str]) -> datetime | None:
    try:
        return datetime.fromisoformat(tags[CREATED_AT_TAG])
    except (KeyError, ValueError):
        return None


def _zone_decision(
    org_name: str, org: Organization | None, zone_id: str, account: accounts.Account
) -> tuple[str | None, str]:
    """(action, why) for a zone of ours in `account` with no live row; (None, why) if it is to be left alone (now)."""
    live = HostedZone.objects.live().filter(organization=org).first() if org else None
    if live is not None and live.zone_id == zone_id:
        return None, "a live zone row names it now"
    if org is None:
        return DELETE, f"organization {org_name} does not exist: deleted, records then zone"
    placed = org.aws_account or accounts.main().name
    if placed != account.name:  # never adopted: the organization would move
        return DELETE, f"organization {org_name} is in AWS account {placed}: deleted, records then zone"
    if live is None:
        return ADOPT, "no live zone row: adopted as the organization's zone (the GC decides when it goes)"
    if not live.zone_id:
        return None, "its organization's zone row is being created: the sweep settles it"
    return DELETE, f"its organization's zone is {live.zone_id}: deleted, records then zone"


def _remove_zone(orphan: Orphan, org: Organization | None, backends: Backends) -> str:
    zone_id = orphan.ref["zone_id"]
    account = accounts.named(orphan.ref["account"])
    action, why = _zone_decision(orphan.organization, org, zone_id, account)
    route53 = backends.for_account(account).route53()
    if action is None:
        return f"left: {why}"
    if action == ADOPT:
        found = {"id": zone_id, "caller_reference": orphan.ref["caller_reference"], "tags": route53.tags(zone_id)}
        zone = HostedZone(
            organization=org,
            name=org.zone_name,  # type: ignore[union-attr]  # ADOPT is decided for an existing organization
            caller_reference=orphan.ref["caller_reference"],
            aws_account=org.aws_account,  # type: ignore[union-attr]
        )
        adopt_zone(zone, found, route53, NoProgress())
        zone.confirm_in_route53()
        return f"adopted as {org.name}'s zone (created {zone.aws_created_at:%Y-%m-%d %H:%M} UTC); the GC decides when it goes"  # type: ignore[union-attr]
    records = records_to_delete(zone_id, orphan.name, route53)
    if records is None:
        return "already gone from Route53"
    _remove_delegation_to(zone_id, orphan.name, route53, backends.parent_zone_route53())
    route53.delete_record_sets(zone_id, records)
    route53.delete_zone(zone_id)
    return f"deleted {len(records)} record sets, then zone {zone_id}"


def _remove_delegation_to(zone_id: str, name: str, route53: Route53, parent_route53: Route53) -> None:
    """A delegation in the parent zone (in the main account) to exactly this zone would dangle once it is deleted (a
    takeover hole)."""
    parent = settings.ORGDNS_PARENT_ZONE_ID
    record = parent_route53.delegation(parent, name) if parent else None
    if record is not None and name_server_set(r["Value"] for r in record["ResourceRecords"]) == name_server_set(
        route53.name_servers(zone_id)
    ):
        parent_route53.delete_record_set(parent, record)


# --- Certificate Secrets in clusters -----------------------------------------------------------------------------


def _certificate_live(certificate_id: int | str, org: Organization | None) -> bool:
    return Certificate.objects.filter(pk=certificate_id, organization=org).live().exists()


def _find_secret_orphans(backends: Backends, scan: Scan) -> None:
    """orgdns's token may not list Secrets (that would let it read every Secret of the cluster), so the Secrets looked
    at are those where the database has put a certificate: every installation's place in a ready cluster."""
    places: dict[Cluster, set[tuple[str, str]]] = {}
    installations = CertificateInstallation.objects.filter(cluster__state=Cluster.State.READY).select_related(
        "cluster__organization"
    )
    for installation in installations:
        places.setdefault(installation.cluster, set()).add((installation.namespace, installation.secret_name))
    vault = backends.vault() if places else None
    for cluster, where in places.items():
        try:
            with cluster_api(cluster, vault, backends) as kube:  # type: ignore[arg-type]  # made when places exist
                secrets = [kube.get("Secret", name, namespace) for namespace, name in sorted(where)]
        except ProviderError as exc:
            scan.problems.append(f"cluster {cluster}: {exc.message}")
            continue
        for secret in filter(None, secrets):
            labels = secret["metadata"].get("labels") or {}
            certificate_id = labels.get(tls.CERTIFICATE_LABEL, "")
            if not _labelled_ours(labels) or _certificate_live(certificate_id, cluster.organization):
                continue
            meta = secret["metadata"]
            scan.orphans.append(
                Orphan(
                    SECRET,
                    f"{cluster}/{meta['namespace']}/{meta['name']}",
                    cluster.organization.name,
                    f"holds certificate {certificate_id}, which is deleted (or not {cluster.organization.name}'s)",
                    born=datetime.fromisoformat(meta["creationTimestamp"]),
                    ref={
                        "cluster": cluster.pk,
                        "namespace": meta["namespace"],
                        "secret": meta["name"],
                        "certificate": certificate_id,
                    },
                )
            )


def _labelled_ours(labels: dict[str, str]) -> bool:
    """Labelled as this deployment of orgdns labels a certificate's Secret (with a certificate's id)."""
    return (
        all(labels.get(k) == v for k, v in tls.MANAGED_BY.items())
        and labels.get(tls.DEPLOYMENT_LABEL) == settings.ORGDNS_DEPLOYMENT_ID
        and labels.get(tls.CERTIFICATE_LABEL, "").isdigit()
    )


def _remove_secret(orphan: Orphan, org: Organization | None, backends: Backends) -> str:
    ref = orphan.ref
    cluster = Cluster.objects.select_related("organization").get(pk=ref["cluster"])
    if cluster.state != Cluster.State.READY:
        return f"left: cluster {cluster} is {cluster.state} now"
    if _certificate_live(ref["certificate"], org):
        return f"left: certificate {ref['certificate']} is not deleted"
    with cluster_api(cluster, backends.vault(), backends) as kube:
        current = kube.get("Secret", ref["secret"], ref["namespace"])
        if current is None:
            return "already gone"
        if not _labelled_ours(current["metadata"].get("labels") or {}) or not tls.holds_certificate(
            current, ref["certificate"]
        ):
            return "left: the Secret there now is not this certificate's"
        kube.delete("Secret", ref["secret"], ref["namespace"])
    return "deleted"


_REMOVERS = {VAULT: _remove_vault_path, IAM_USER: _remove_iam_user, ZONE: _remove_zone, SECRET: _remove_secret}
