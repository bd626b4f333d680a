"""The offboarding job: everything of the organization goes but its rows."""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

import django_rq
import redis
from django.db import transaction
from django.utils import timezone
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job

from provisioning.models import Membership, Operation, Organization
from provisioning.services import audit
from provisioning.services.aws_accounts import assignment as accounts
from provisioning.services.certificates import jobs as certificate_jobs
from provisioning.services.clusters.jobs import tear_down_cluster
from provisioning.services.credentials.vault_paths import aws_secret_path, ca_path
from provisioning.services.operations.kinds import OperationKind
from provisioning.services.operations.leases import organization_lock
from provisioning.services.operations.running import describe, wait_for
from provisioning.services.zones import gc as zone_gc
from provisioning.services.zones import jobs as zone_jobs
from provisioning.services.zones.jobs import DeleteZone

if TYPE_CHECKING:
    from provisioning.services.backends import Backends
    from provisioning.services.operations.running import Progress

log = logging.getLogger(__name__)

CANCELLED = "cancelled: organization offboarded"


def offboard(operation: Operation, progress: Progress, backends: Backends) -> None:
    """Everything of the organization goes but its rows (kept for the audit trail and the ledger): its clusters are
    deregistered, its certificates and CA deleted, its zone's AWS credentials revoked, its members removed; the zone,
    now unused, is left to the billing-aware GC (gc_hosted_zones), which deletes it when that costs least."""
    org = operation.organization
    progress.step("Cancelling the organization's queued operations", 2)
    for cancelled in cancel_waiting_operations(org):
        progress.log(f"cancelled {describe(cancelled)}")
    wait_for(lambda: org.operations.filter(state=Operation.State.RUNNING).exclude(pk=operation.pk), progress)

    clusters = list(org.clusters.live().order_by("name"))
    for number, cluster in enumerate(clusters):
        progress.step(f"Deregistering cluster {cluster.name}", 10 + 50 * number // len(clusters))
        tear_down_cluster(cluster, progress, backends)

    vault = backends.vault()
    for certificate in org.certificates.live().select_related("organization"):
        certificate_jobs.remove_certificate(certificate, vault, backends, progress)
    progress.step("Deleting the organization's CA from Vault, with every version", 70)
    vault.destroy(ca_path(vault, org))

    # The zone may be kept for a while (its month is paid): nobody may write into it meanwhile.
    with organization_lock(org):
        zone_jobs.delete_iam_user(org, backends.for_account(accounts.of_organization(org)).iam(), progress)
        vault.destroy(aws_secret_path(vault, org))

    progress.step("Handing the zone to the garbage collector", 90)
    planned = zone_gc.zone_status(org, timezone.now())
    progress.log(f"zone {planned.zone.name}: {planned.reason}" if planned else "no zone to delete")

    with transaction.atomic():
        for membership in Membership.objects.filter(organization=org).select_related("user"):
            audit.record(
                "member.remove", membership, organization=org, detail=f"{membership.user.get_username()}: offboarded"
            )
            membership.delete()
        org.finish_offboarding()
        audit.record("organization.offboarded", org, detail="only its audit trail and cost ledger remain")


class OffboardOrganization(OperationKind):
    """Queued by offboarding.offboard_organization. A failure leaves the organization `offboarding` (nothing new starts
    in it); offboarding it again resumes the job."""

    name = "offboard"
    label = "Offboard organization"
    target = Organization

    def run(self, operation: Operation, progress: Progress, backends: Backends) -> None:
        offboard(operation, progress, backends)


def cancel_waiting_operations(organization: Organization) -> list[Operation]:
    """Fail the organization's operations that are queued or waiting to be retried (not the running ones: the
    offboarding waits for those). Returns them."""
    waiting = list(
        organization.operations.filter(state__in=[Operation.State.QUEUED, Operation.State.RETRYING]).exclude(
            kind__in=(
                OffboardOrganization.name,
                DeleteZone.name,
            )  # the GC's teardown of the zone is what offboarding hands it to
        )
    )
    cancelled = []
    for operation in waiting:
        if operation.cancel(CANCELLED):
            cancelled.append(operation)
            audit.record(f"{operation.kind}.cancelled", operation, organization=organization, detail=CANCELLED)
            transaction.on_commit(functools.partial(cancel_job, str(operation.pk)))
    return cancelled


def cancel_job(job_id: str) -> None:
    """Take the RQ job off its queue (the row, already failed, is what counts: a job that runs anyway does nothing)."""
    try:
        Job.fetch(job_id, connection=django_rq.get_connection("default")).cancel()
    except (NoSuchJobError, InvalidJobOperation):
        pass
    except redis.RedisError as exc:
        log.warning("could not cancel RQ job %s (its operation is failed already): %s", job_id, exc)
