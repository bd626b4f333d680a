"""The jobs that take an organization's things out of its clusters: deregistering a cluster, offboarding the
organization. Both wait for the running jobs that could put something back."""

import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..clients.errors import ProviderError
from ..models import Certificate, Cluster, Membership, Operation, Organization
from . import accounts, audit, certificate_jobs, offboarding, provisioning, zone_gc
from .leases import organization_lock


def deregister_cluster(operation, progress, backends):
    deregister(operation.cluster, progress, backends)


def deregister(cluster, progress, backends):
    """Certificates first (while the cluster's credentials are still in Vault), then ExternalDNS and its records.

    From DEREGISTERING on, no certificate job starts installing into the cluster; one already running may, so it is
    waited for before our Secrets are removed."""
    Cluster.objects.filter(pk=cluster.pk).update(state=Cluster.State.DEREGISTERING, message="")
    wait_for(
        lambda: Operation.objects.filter(
            organization=cluster.organization_id, state=Operation.State.RUNNING, certificate__isnull=False
        ),
        progress,
    )
    progress.step(f"Removing the certificates orgdns installed in cluster {cluster.name}", 5)
    certificate_jobs.remove_from_cluster(cluster, backends.vault(), backends, progress)
    provisioning.deregister(cluster, progress, backends)


def offboard(operation, progress, backends):
    """Everything of the organization goes but its rows (kept for the audit trail and the ledger): its clusters are
    deregistered, its certificates and CA deleted, its zone's AWS credentials revoked, its members removed; the zone,
    now unused, is left to the billing-aware GC (gc_hosted_zones), which deletes it when that costs least."""
    org = operation.organization
    progress.step("Cancelling the organization's queued operations", 2)
    for cancelled in offboarding.cancel_waiting_operations(org):
        progress.log(f"cancelled {describe(cancelled)}")
    wait_for(lambda: org.operations.filter(state=Operation.State.RUNNING).exclude(pk=operation.pk), progress)

    clusters = list(org.clusters.live().order_by("name"))
    for number, cluster in enumerate(clusters):
        progress.step(f"Deregistering cluster {cluster.name}", 10 + 50 * number // len(clusters))
        deregister(cluster, progress, backends)

    vault = backends.vault()
    for certificate in org.certificates.exclude(state=Certificate.State.DELETED).select_related("organization"):
        certificate_jobs.remove_certificate(certificate, vault, backends, progress)
    progress.step("Deleting the organization's CA from Vault, with every version", 70)
    vault.destroy(certificate_jobs.ca_path(vault, org))

    # The zone may be kept for a while (its month is paid): nobody may write into it meanwhile.
    with organization_lock(org):
        zone_gc.delete_iam_user(org, backends.for_account(accounts.of_organization(org)).iam(), progress)
        vault.destroy(provisioning.aws_secret_path(vault, org))

    progress.step("Handing the zone to the garbage collector", 90)
    planned = zone_gc.zone_status(org, timezone.now())
    progress.log(f"zone {planned.zone.name}: {planned.reason}" if planned else "no zone to delete")

    with transaction.atomic():
        for membership in Membership.objects.filter(organization=org).select_related("user"):
            audit.record(
                "member.remove", membership, organization=org, detail=f"{membership.user.get_username()}: offboarded"
            )
            membership.delete()
        Organization.objects.filter(pk=org.pk).update(state=Organization.State.OFFBOARDED, offboarded_at=timezone.now())
        audit.record("organization.offboarded", org, detail="only its audit trail and cost ledger remain")


def offboard_failed(operation, message):
    """The organization stays `offboarding` (nothing new starts in it); offboarding it again resumes the job."""


def wait_for(operations, progress):
    """Until operations() (a queryset) is empty, saying on the operation's page which one it waits for."""
    deadline = time.monotonic() + settings.ORGDNS_WAIT_FOR_JOBS_TIMEOUT
    shown = None
    while (running := operations().select_related("cluster", "certificate", "organization").first()) is not None:
        if time.monotonic() >= deadline:
            raise ProviderError(
                f"{describe(running)} is still running after {settings.ORGDNS_WAIT_FOR_JOBS_TIMEOUT} s; will retry",
                service="orgdns",
                permanent=False,
            )
        if running.pk != shown:
            progress.waiting(f"Waiting for {describe(running)} to finish")
            shown = running.pk
        time.sleep(0.5)
    if shown:
        progress.resume()


def describe(operation):
    return f"{operation.get_kind_display().lower()} {operation.cluster or operation.certificate or operation.organization} (operation {operation.pk})"
