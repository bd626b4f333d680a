"""The hosted zone's teardown job (queued by the GC or by support): records, delegation, zone, IAM user, secret."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from provisioning.clients.errors import ProviderError
from provisioning.models import HostedZone, Organization, ZoneCharge
from provisioning.rules.validators import iam_user_name
from provisioning.services.aws_accounts import assignment as accounts
from provisioning.services.credentials.vault_paths import aws_secret_path
from provisioning.services.operations.kinds import OperationKind
from provisioning.services.operations.leases import organization_lock
from provisioning.services.zones import claims as zone_claims
from provisioning.services.zones.ledger import final_ledger
from provisioning.services.zones.setup import is_our_delegation, tagged_as_ours

if TYPE_CHECKING:
    from provisioning.clients.aws import IAM, RecordSet, Route53
    from provisioning.models import Operation
    from provisioning.services.backends import Backends
    from provisioning.services.operations.running import Progress


def delete_zone(operation: Operation, progress: Progress, backends: Backends) -> None:
    """Tear the organization's claimed zone down: the parent delegation, the records, the zone, the IAM user, the
    Vault secret (docs/gc-billing.md).

    Every step is idempotent and progress is recorded on the zone row, so a re-run after a crash
    resumes where the last run stopped.
    """
    org = operation.organization
    with organization_lock(org):
        zone = HostedZone.objects.filter(organization=org, state=HostedZone.State.DELETING).first()
        if zone is None:
            progress.log(f"{org.name} has no zone being deleted: nothing to do")
            return
        if zone.teardown_started_at is None and not _begin(zone, progress):
            return
        aws = backends.for_account(accounts.of_zone(zone))
        if zone.route53_deleted_at is None:
            _delete_from_route53(zone, aws.route53(), aws.parent_zone_route53(), progress)
        delete_iam_user(org, aws.iam(), progress)
        vault = backends.vault()
        progress.step("Deleting the zone's AWS credentials from Vault, with every version", 90)
        vault.destroy(aws_secret_path(vault, org))
        _mark_deleted(zone)
        progress.log(f"zone {zone.name} deleted; its row is kept for history and the cost ledger")


def _begin(zone: HostedZone, progress: Progress) -> bool:
    """Re-check usage inside the claim, then pass the point of no return. False if the zone is kept."""
    if zone_claims.clusters_using(zone.organization_id).exists():
        zone.release_unstarted()
        progress.log("a cluster was registered since the zone was queued for deletion: the zone is kept")
        return False
    if not zone.start_teardown(timezone.now()):
        progress.log("a cluster reclaimed the zone since it was queued for deletion: the zone is kept")
        return False
    return True


def _delete_from_route53(zone: HostedZone, route53: Route53, parent_route53: Route53, progress: Progress) -> None:
    progress.step("Removing the delegation from the parent zone", 10)
    _remove_delegation(zone, parent_route53, progress)
    progress.step(f"Deleting every record of {zone.name} but its SOA and NS", 25)
    records = records_to_delete(zone.zone_id, zone.name, route53)
    if records is None:
        progress.log(f"zone {zone.zone_id} is already gone from Route53")
    else:
        requests = route53.delete_record_sets(zone.zone_id, records)
        progress.log(f"deleted {len(records)} record sets in {requests} change requests")
        progress.step(f"Deleting zone {zone.zone_id}", 60)
        route53.delete_zone(zone.zone_id)
    zone.route53_deleted_at = timezone.now()
    HostedZone.objects.filter(pk=zone.pk).update(route53_deleted_at=zone.route53_deleted_at)


def _remove_delegation(zone: HostedZone, route53: Route53, progress: Progress) -> None:
    """First of all: a delegation left pointing at a deleted zone lets anyone take the subdomain over."""
    parent = settings.ORGDNS_PARENT_ZONE_ID
    if not parent:
        if zone.delegated:
            raise ProviderError(
                f"zone {zone.name} is delegated from a parent zone but ORGDNS_PARENT_ZONE_ID is not set: set it, so "
                "that the delegation is removed before the zone is deleted",
                service="route53",
                permanent=True,
            )
        return
    record = route53.delegation(parent, zone.name)
    if record is not None and is_our_delegation(record, zone.organization):
        route53.delete_record_set(parent, record)
        progress.log(f"removed the NS delegation of {zone.name} from parent zone {parent}")
    elif record is not None:
        progress.log(
            f"the NS record of {zone.name} in parent zone {parent} is not a delegation orgdns wrote: left alone"
        )
    HostedZone.objects.filter(pk=zone.pk).update(delegated=False)


def delete_iam_user(org: Organization, iam: IAM, progress: Progress) -> None:
    progress.step(f"Deleting IAM user {iam_user_name(org.name)}, its access keys and its policy", 75)
    progress.log(delete_our_iam_user(org, iam))


def delete_our_iam_user(org: Organization, iam: IAM) -> str:
    """Delete the organization's IAM user (access keys, inline policies, user) if it carries orgdns's tags for it.
    Returns what was done."""
    user = iam_user_name(org.name)
    tags = iam.user_tags(user)
    if tags is None:
        return f"IAM user {user} is already gone"
    if not tagged_as_ours(tags, org):
        return f"IAM user {user} was not created by orgdns: left alone"
    iam.delete_user(user)
    return f"deleted IAM user {user}, its access keys and its policies"


def records_to_delete(zone_id: str, zone_name: str, route53: Route53) -> list[RecordSet] | None:
    """Every record set but the apex SOA and NS (Route53 deletes those with the zone); None if the zone is gone."""
    apex = zone_name.rstrip(".") + "."
    try:
        return [r for r in route53.record_sets(zone_id) if not (r["Name"] == apex and r["Type"] in ("SOA", "NS"))]
    except ProviderError as exc:
        if exc.code == "NoSuchHostedZone":
            return None
        raise


def _mark_deleted(zone: HostedZone) -> None:
    with transaction.atomic():
        zone.mark_deleted(timezone.now())
        ZoneCharge.objects.bulk_create(final_ledger(zone), ignore_conflicts=True)


def mark_teardown_failed(operation: Operation, message: str) -> None:
    """A teardown that failed before deleting anything gives its claim back, so the zone is planned afresh.

    One that failed later leaves the zone DELETING: shown on the pages, resumed by the GC.
    """
    zone = HostedZone.objects.filter(organization=operation.organization, state=HostedZone.State.DELETING).first()
    if zone is not None:
        zone.release_unstarted()


class DeleteZone(OperationKind):
    """Queued by the GC (zones.gc) or by support, for the organization whose zone it tears down."""

    name = "delete_zone"
    label = "Delete hosted zone"
    target = Organization

    def run(self, operation: Operation, progress: Progress, backends: Backends) -> None:
        delete_zone(operation, progress, backends)

    def on_failure(self, operation: Operation, message: str) -> None:
        mark_teardown_failed(operation, message)
