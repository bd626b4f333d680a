"""The organization's hosted zone and its zone-scoped AWS credentials, made or adopted by the register job. Every step
converges when re-run."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from provisioning.clients.aws import zone_scoped_policy
from provisioning.clients.errors import ProviderError
from provisioning.models import HostedZone
from provisioning.rules.validators import iam_user_name
from provisioning.services.credentials.vault_paths import aws_secret_path

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from provisioning.clients.aws import IAM, RecordSet, Route53
    from provisioning.clients.vault import Vault
    from provisioning.models import Organization
    from provisioning.services.backends import Backends
    from provisioning.services.operations.running import Progress

POLICY_NAME = "orgdns-zone-records"
CREATED_AT_TAG = "orgdns:created-at"
MANAGED_BY_TAG = "orgdns:managed-by"
ORGANIZATION_TAG = "orgdns:organization"
DEPLOYMENT_TAG = "orgdns:deployment"


def zone_tags(org: Organization) -> dict[str, str]:
    """The tags of what orgdns creates in AWS for the organization (its zone, its IAM user): all of them mark it ours,
    the deployment's among them (ORGDNS_DEPLOYMENT_ID)."""
    return {
        MANAGED_BY_TAG: settings.ORGDNS_RESOURCE_PREFIX,
        ORGANIZATION_TAG: org.name,
        DEPLOYMENT_TAG: settings.ORGDNS_DEPLOYMENT_ID,
    }


def legacy_tags(org: Organization) -> dict[str, str]:
    """The tags orgdns gave before deployments were named: what `adopt_deployment_marks` adds the deployment's to."""
    return {MANAGED_BY_TAG: settings.ORGDNS_RESOURCE_PREFIX, ORGANIZATION_TAG: org.name}


def ensure_zone(org: Organization, backends: Backends, progress: Progress | NoProgress) -> HostedZone:
    zone = HostedZone.objects.live().filter(organization=org).first()
    if zone and zone.state == HostedZone.State.DELETING:
        if not zone.release_unstarted():
            raise ProviderError(
                f"zone {zone.name} is being deleted; a new one is created once that finishes (will retry)",
                service="route53",
                permanent=False,
            )
        progress.log(f"zone {zone.name} was queued for deletion as unused: kept for this cluster instead")
    delegate = bool(settings.ORGDNS_PARENT_ZONE_ID) and not (zone and zone.delegated)
    if zone and zone.state == HostedZone.State.ACTIVE and zone.zone_id and not delegate:
        progress.log(f"reusing zone {zone.zone_id}")
        return zone
    if zone is None:
        reference = f"{settings.ORGDNS_RESOURCE_PREFIX}:{org.name}:{uuid.uuid4().hex}"
        zone = HostedZone.objects.create(
            organization=org, name=org.zone_name, caller_reference=reference, aws_account=org.aws_account
        )

    route53 = backends.route53()
    if not zone.zone_id:
        found = route53.find_zone(zone.name)
        if found is None:
            # Recorded before the call: if its answer is lost, the zone may exist all the same, and billing counts
            # from here (see settle_unconfirmed_zones).
            zone.aws_created_at = timezone.now()
            zone.save(update_fields=["aws_created_at"])
            zone.zone_id, zone.name_servers = route53.create_zone(
                zone.name, zone.caller_reference, {**zone_tags(org), CREATED_AT_TAG: zone.aws_created_at.isoformat()}
            )
            progress.log(f"created zone {zone.zone_id}")
        else:
            adopt_zone(zone, found, route53, progress)
        # Active from here on, whatever happens next: the GC sees (and can collect) every zone that exists in Route53.
        zone.confirm_in_route53()

    if delegate:
        delegate_zone(zone, backends.parent_zone_route53(), progress)
    return zone


class NoProgress:
    """For steps run outside a job: what they would tell an operation's page is not kept."""

    def step(self, name: str, percent: int) -> None:
        pass

    def log(self, line: str) -> None:
        pass


def check_ownership(org: Organization, backends: Backends, progress: Progress | NoProgress) -> None:
    """Before changing anything: fail, naming it, if the IAM user or a parent-zone record that the organization's
    first registration would create already exists and is not ours (the zone itself is checked by ensure_zone)."""
    zone = HostedZone.objects.live().filter(organization=org).first()
    if zone is None or not zone.access_key_id:
        check_iam_user(org, backends.iam())
    if settings.ORGDNS_PARENT_ZONE_ID and not (zone and zone.delegated):
        refuse_foreign_parent_records(org, parent_records(org, backends.parent_zone_route53()))
    progress.log("no IAM user or parent-zone record of someone else's is in the way")


def check_iam_user(org: Organization, iam: IAM) -> dict[str, str] | None:
    """The tags of the organization's IAM user (None if there is none); ProviderError if it is not ours."""
    user = iam_user_name(org.name)
    tags = iam.user_tags(user)
    if tags is not None and not tagged_as_ours(tags, org):
        wanted = ", ".join(f"{k}={v}" for k, v in zone_tags(org).items())
        raise ProviderError(
            f"IAM user {user} exists in the AWS account but was not created by orgdns for {org.name} (it lacks the "
            f"tags {wanted}): orgdns leaves it alone; delete or rename it, then retry",
            service="iam",
            permanent=True,
        )
    return tags


def tagged_as_ours(tags: dict[str, str], org: Organization) -> bool:
    """Whether an AWS resource carries the tags orgdns gives what it creates for this organization."""
    return _is_ours(tags, zone_tags(org))


def name_server_set(values: Iterable[str]) -> frozenset[str]:
    return frozenset(value.rstrip(".").lower() for value in values)


def our_delegations(org: Organization) -> set[frozenset[str]]:
    """The name server sets of every zone this organization has had: an NS record in the parent zone with one of them
    is a delegation we wrote."""
    if org.pk is None:
        return set()
    return {
        name_server_set(ns)
        for ns in HostedZone.objects.filter(organization=org).values_list("name_servers", flat=True)
        if ns
    }


def is_our_delegation(record: RecordSet, org: Organization) -> bool:
    values = [r["Value"] for r in record.get("ResourceRecords", [])]
    return record["Type"] == "NS" and name_server_set(values) in our_delegations(org)


def parent_records(org: Organization, route53: Route53) -> list[RecordSet]:
    """The record sets named like the organization's zone in the parent zone (ORGDNS_PARENT_ZONE_ID must be set)."""
    return route53.record_sets_named(settings.ORGDNS_PARENT_ZONE_ID, org.zone_name)


def foreign_records(org: Organization, records: Iterable[RecordSet]) -> list[RecordSet]:
    """Those of records that are not a delegation we wrote for the organization."""
    return [record for record in records if not is_our_delegation(record, org)]


def refuse_foreign_parent_records(org: Organization, records: Iterable[RecordSet]) -> None:
    """ProviderError naming them if the parent zone has records named like the organization's zone that we did not write."""
    foreign = foreign_records(org, records)
    if foreign:
        raise ProviderError(
            f"the parent zone {settings.ORGDNS_PARENT_ZONE_ID} already has {describe_record_sets(foreign)} named "
            f"{org.zone_name} that orgdns did not write: orgdns leaves it alone; remove it, then retry",
            service="route53",
            permanent=True,
        )


def describe_record_sets(records: Iterable[RecordSet]) -> str:
    """`an NS record (ns1.example.net, ns2.example.net)`, `a CNAME record (lb.example.net) and an A record (…)`."""
    parts = []
    for record in records:
        values = [r["Value"] for r in record.get("ResourceRecords", [])] or [
            record.get("AliasTarget", {}).get("DNSName", "alias")
        ]
        shown = ", ".join(values[:4]) + (", …" if len(values) > 4 else "")
        article = "an" if record["Type"][0] in "AEFHILMNORSX" else "a"
        parts.append(f"{article} {record['Type']} record ({shown})")
    return " and ".join(parts)


def delegate_zone(zone: HostedZone, route53: Route53, progress: Progress | NoProgress) -> None:
    """Delegate the zone from the parent zone: create its NS record, or replace a delegation of ours to an earlier zone;
    anything else of that name is someone else's, and refused."""
    parent = settings.ORGDNS_PARENT_ZONE_ID
    records = route53.record_sets_named(parent, zone.name)
    refuse_foreign_parent_records(zone.organization, records)
    existing = next((r for r in records if r["Type"] == "NS"), None)
    if existing is not None and name_server_set(r["Value"] for r in existing["ResourceRecords"]) == name_server_set(
        zone.name_servers
    ):
        progress.log(f"{zone.name} is already delegated from parent zone {parent}")
    else:
        route53.create_delegation(parent, zone.name, zone.name_servers, replacing=existing)
        replaced = " (replacing our delegation to an earlier zone)" if existing else ""
        progress.log(f"delegated {zone.name} from parent zone {parent}{replaced}")
    zone.delegated = True
    zone.save(update_fields=["delegated"])


def adopt_zone(zone: HostedZone, found: dict[str, Any], route53: Route53, progress: Progress | NoProgress) -> None:
    """Take the Route53 zone `found` (named like the row) as the row's if we created it (its CallerReference is the
    row's, or it carries our tags), tagging what is missing; ProviderError naming it otherwise."""
    org = zone.organization
    tags = zone_tags(org)
    if found["caller_reference"] != zone.caller_reference and not _is_ours(found["tags"], tags):
        raise ProviderError(
            f"a hosted zone named {zone.name} ({found['id']}) exists in the AWS account but was not created by "
            "orgdns: delete or tag it before registering clusters for this organization",
            service="route53",
            permanent=True,
        )
    zone.zone_id = found["id"]
    zone.name_servers = route53.name_servers(zone.zone_id)
    zone.aws_created_at = _created_at(found["tags"], zone.aws_created_at, progress)
    wanted = tags if CREATED_AT_TAG in found["tags"] else {**tags, CREATED_AT_TAG: zone.aws_created_at.isoformat()}
    missing = {k: v for k, v in wanted.items() if found["tags"].get(k) != v}
    if missing:
        route53.tag_zone(zone.zone_id, missing)
    progress.log(f"adopted existing zone {zone.zone_id}")


def _created_at(tags: dict[str, str], recorded: datetime | None, progress: Progress | NoProgress) -> datetime:
    """A zone's creation time: our tag, else the time recorded just before we asked Route53 to create it (Route53
    does not report it). Unknown: taken as already charged."""
    try:
        return datetime.fromisoformat(tags[CREATED_AT_TAG])
    except (KeyError, ValueError):
        if recorded:
            return recorded
        progress.log("the zone's creation time is unknown: it is treated as older than 12 hours (already charged)")
        return timezone.now() - timedelta(hours=12, minutes=1)


def _is_ours(found_tags: dict[str, str], our_tags: dict[str, str]) -> bool:
    return all(found_tags.get(k) == v for k, v in our_tags.items())


def ensure_credentials(
    zone: HostedZone, vault: Vault, backends: Backends, progress: Progress | NoProgress
) -> dict[str, Any]:
    """One IAM user limited to this zone, its access key, the secret in Vault only. Returns the key pair kept in
    Vault: during a key rotation (key_rotation.py) its current key, the previous one being kept until the rotation
    retires it."""
    path = aws_secret_path(vault, zone.organization)
    stored = vault.read(path)
    if stored and stored.get("access_key_id") == zone.access_key_id and stored.get("zone_id") == zone.zone_id:
        progress.log(f"reusing access key {zone.access_key_id}")
        return stored

    iam = backends.iam()
    user = iam_user_name(zone.organization.name)
    if check_iam_user(zone.organization, iam) is None:
        boundary = backends.account.iam_permissions_boundary
        iam.create_user(user, zone_tags(zone.organization), boundary)
        bounded = f" with permissions boundary {boundary}" if boundary else ""
        progress.log(f"created IAM user {user}{bounded}")
    iam.put_user_policy(user, POLICY_NAME, zone_scoped_policy(zone.zone_id))
    keys = iam.access_key_ids(user)
    stored = stored or {}
    current = stored.get("access_key_id") if stored.get("access_key_id") in keys else None
    previous = (
        stored.get("previous_access_key_id") if stored.get("previous_access_key_id") in keys else None
    )  # still in use
    for stale in keys:
        if stale not in (current, previous):  # a key whose secret we never stored can never be used: delete it
            iam.delete_access_key(user, stale)
            progress.log(f"deleted unusable access key {stale}")
    if current:
        credentials = {**stored, "zone_id": zone.zone_id}
    else:
        key_id, secret = iam.create_access_key(user)
        progress.log(f"created access key {key_id}")
        credentials = new_key_record(zone, key_id, secret)
    credentials.pop("previous_access_key_id", None)
    if previous:
        credentials["previous_access_key_id"] = previous
    vault.write(path, credentials)
    backends.sts_for(credentials["access_key_id"], credentials["secret_access_key"]).wait_until_valid()
    zone.iam_user_name = user
    mirror_key(zone, credentials)
    return credentials


def new_key_record(zone: HostedZone, key_id: str, secret: str) -> dict[str, Any]:
    """What Vault keeps of a key just made. It answers every rotation asked for until now."""
    return {
        "access_key_id": key_id,
        "secret_access_key": secret,
        "zone_id": zone.zone_id,
        "created_at": timezone.now().isoformat(),
        "rotation": HostedZone.objects.get(pk=zone.pk).rotations_requested,
    }


def mirror_key(zone: HostedZone, stored: dict[str, Any]) -> None:
    """Show in the zone's row what Vault holds (key ids, age and rotation state; never a secret)."""
    created = stored.get("created_at")
    zone.access_key_created_at = (
        datetime.fromisoformat(created) if created else zone.access_key_created_at or timezone.now()
    )
    zone.access_key_id = stored["access_key_id"]
    zone.previous_access_key_id = stored.get("previous_access_key_id", "")
    zone.rotations_answered = stored.get("rotation", zone.rotations_answered)
    zone.save(
        update_fields=[
            "iam_user_name",
            "access_key_id",
            "access_key_created_at",
            "previous_access_key_id",
            "rotations_answered",
        ]
    )
