"""The cluster kinds (docs/clusters.md): RegisterCluster (zone, credentials, ExternalDNS), RerenderExternalDNS,
DeregisterCluster. Every step converges when re-run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction

from provisioning.clients import externaldns
from provisioning.clients.errors import ProviderError
from provisioning.models import Cluster, HostedZone, Operation
from provisioning.rules.validators import iam_user_name
from provisioning.services.aws_accounts import assignment as accounts
from provisioning.services.certificates import jobs as certificate_jobs
from provisioning.services.clusters.externaldns import deploy_externaldns, remove_externaldns
from provisioning.services.credentials.vault_paths import cluster_secret_path, read_connection, usable_connection
from provisioning.services.operations.kinds import OperationKind
from provisioning.services.operations.leases import organization_lock
from provisioning.services.operations.running import wait_for
from provisioning.services.organizations import rules as offboarding_rules
from provisioning.services.zones.setup import NoProgress, adopt_zone, check_ownership, ensure_credentials, ensure_zone

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from django.contrib.auth.models import User

    from provisioning.services.backends import Backends
    from provisioning.services.operations.running import Progress


def register(operation: Operation, progress: Progress, backends: Backends) -> None:
    cluster = operation.target_cluster
    org = cluster.organization
    offboarding_rules.refuse_in_job(org)
    if not cluster.start_provisioning():
        raise ProviderError(
            f"cluster {cluster.name} is {Cluster.objects.get(pk=cluster.pk).state}: nothing to provision",
            service="orgdns",
            permanent=True,
        )
    vault = backends.vault()

    progress.step("Reading the cluster's credentials from Vault", 5)
    connection = read_connection(vault, cluster)

    with organization_lock(org):
        backends = backends.for_account(accounts.place(org))
        progress.step("Checking that what orgdns would create or change is absent or ours", 10)
        check_ownership(org, backends, progress)
        progress.step(f"Ensuring hosted zone {org.zone_name}", 15)
        zone = ensure_zone(org, backends, progress)
        progress.step(f"Ensuring IAM user {iam_user_name(org.name)} scoped to zone {zone.zone_id}", 40)
        credentials = ensure_credentials(zone, vault, backends, progress)

    progress.step("Deploying ExternalDNS into the cluster", 70)
    repaired = deploy_externaldns(cluster, zone, credentials, connection, backends, progress)
    message = f"ExternalDNS publishes *.{zone.name} from this cluster"
    if repaired:
        message += f"; repaired what had been changed by hand: {', '.join(repaired)}"
    cluster.finish_provisioning(message)


def rerender_externaldns(operation: Operation, progress: Progress, backends: Backends) -> None:
    """The register job again, which deploys ExternalDNS with the flags the fleet calls for now. For a provisioned
    cluster it sends Route53 nothing and changes only what differs: the Deployment's args, which restarts ExternalDNS.
    A cluster that is no longer ready (being deregistered, say) is left alone."""
    state = Cluster.objects.values_list("state", flat=True).get(pk=operation.target_cluster.pk)
    if state != Cluster.State.READY:
        progress.log(f"the cluster is {state} now: nothing to re-render")
        return
    register(operation, progress, backends)


def tear_down_cluster(cluster: Cluster, progress: Progress, backends: Backends) -> None:
    """Certificates first (while the cluster's credentials are still in Vault), then ExternalDNS and the records it
    owns, then the cluster's credentials.

    From DEREGISTERING on, no certificate job starts installing into the cluster; one already running may, so it is
    waited for before our Secrets are removed."""
    cluster.start_deregistration()
    wait_for(
        lambda: Operation.objects.filter(
            organization=cluster.organization_id, state=Operation.State.RUNNING, certificate__isnull=False
        ),
        progress,
    )
    vault = backends.vault()
    progress.step(f"Removing the certificates orgdns installed in cluster {cluster.name}", 5)
    certificate_jobs.remove_from_cluster(cluster, vault, backends, progress)

    progress.step("Removing ExternalDNS from the cluster", 10)
    connection = vault.read(cluster_secret_path(vault, cluster))
    if connection:
        remove_externaldns(backends.cluster(usable_connection(connection)), progress)
    else:
        progress.log(
            "no cluster credentials in Vault (the cluster was forgotten, or an earlier attempt got this far): "
            "ExternalDNS is not removed from the cluster"
        )

    zone = HostedZone.objects.filter(organization=cluster.organization, state=HostedZone.State.ACTIVE).first()
    if zone and zone.zone_id:
        progress.step(f"Deleting the records this cluster owns in {zone.name}", 50)
        route53 = backends.for_account(accounts.of_zone(zone)).route53()
        owned = externaldns.owned_record_sets(route53.record_sets(zone.zone_id), cluster.owner_id)
        requests = route53.delete_record_sets(zone.zone_id, owned)
        progress.log(f"deleted {len(owned)} record sets in {requests} change requests")

    progress.step("Deleting the cluster's credentials from Vault", 90)
    vault.destroy(cluster_secret_path(vault, cluster))
    cluster.finish_deregistration()


def settle_unconfirmed_zones(backends: Backends, now: datetime, grace: timedelta) -> list[tuple[HostedZone, str]]:
    """Zones whose creation was asked of Route53 but never confirmed (the job stopped, or the answer was lost) and
    that no job is finishing: adopted if Route53 has them, so that the GC sees every zone that may cost money, and
    the row removed if it has not. Returns [(zone, what was done)]."""
    settled = []
    unconfirmed = HostedZone.objects.filter(state=HostedZone.State.CREATING, created_at__lt=now - grace)
    for zone in unconfirmed.select_related("organization"):
        registering = Operation.objects.filter(organization=zone.organization, kind=RegisterCluster.name)
        if registering.exclude(state__in=Operation.FINISHED).exists():
            continue
        with organization_lock(zone.organization):
            zone.refresh_from_db()
            if zone.state != HostedZone.State.CREATING:
                continue
            route53 = backends.for_account(accounts.of_zone(zone)).route53()
            found = route53.find_zone(zone.name)
            if found is None:
                zone.delete()
                settled.append((zone, "row removed: Route53 has no such zone"))
                continue
            adopt_zone(zone, found, route53, NoProgress())
            zone.confirm_in_route53()
            settled.append((zone, f"adopted {zone.zone_id}; the GC decides when it goes"))
    return settled


class RegisterCluster(OperationKind):
    """Queued with the cluster's row (clusters.actions.register_cluster); enqueue_again provisions it again."""

    name = "register"
    label = "Register cluster"
    target = Cluster

    def run(self, operation: Operation, progress: Progress, backends: Backends) -> None:
        register(operation, progress, backends)

    def on_failure(self, operation: Operation, message: str) -> None:
        operation.target_cluster.fail_provisioning(message)

    def retry(self, operation: Operation, user: User | None) -> Operation:
        return RegisterCluster.enqueue_again(operation.target_cluster, user)

    @classmethod
    def enqueue_again(cls, cluster: Cluster, user: User | None = None) -> Operation:
        """Run the register job again: it converges from wherever the last attempt stopped."""
        with transaction.atomic():
            offboarding_rules.require_active(cluster.organization)
            # The states Cluster.can_retry_registration allows (the page asks it).
            if not cluster.queue_provisioning():
                raise ValidationError(
                    f"Cluster {cluster.name} is {cluster.state}: only a ready or failed cluster can be provisioned "
                    "again."
                )
            return cls.enqueue(cluster, user)


class RerenderExternalDNS(RegisterCluster):
    """Queued by the Route53 budget when the fleet's ExternalDNS flags change; retried as a registration."""

    name = "rerender_externaldns"
    label = "Re-render ExternalDNS"

    def run(self, operation: Operation, progress: Progress, backends: Backends) -> None:
        rerender_externaldns(operation, progress, backends)


class DeregisterCluster(OperationKind):
    """Queued from the cluster page, the API, the admin and forget_cluster, through enqueue (with its checks); the
    work is tear_down_cluster, which offboarding also runs for each cluster."""

    name = "deregister"
    label = "Deregister cluster"
    target = Cluster

    @classmethod
    def enqueue(  # type: ignore[override]  # a cluster's kind: its target is a cluster
        cls, cluster: Cluster, user: User | None = None, *, reason: str = ""
    ) -> Operation:
        """Queue the deregistration; refused while the cluster is still being provisioned (that job could deploy
        ExternalDNS again after the deregistration removed it)."""
        if cluster.registration_unfinished():
            raise ValidationError(
                f"Cluster {cluster.name} is still being provisioned: deregister it once that has finished."
            )
        with transaction.atomic():
            offboarding_rules.require_active(cluster.organization)
            # With registration_unfinished above, what Cluster.can_deregister allows (the page asks it).
            if not cluster.queue_deregistration():
                state = Cluster.objects.get(pk=cluster.pk).state
                if state in (Cluster.State.DEREGISTERING, Cluster.State.DEREGISTERED):
                    raise ValidationError(f"Cluster {cluster.name} is already being deregistered.")
                raise ValidationError(
                    f"Cluster {cluster.name} is {state}: deregister it once provisioning has finished."
                )
            return super().enqueue(cluster, user, reason=reason)

    def run(self, operation: Operation, progress: Progress, backends: Backends) -> None:
        tear_down_cluster(operation.target_cluster, progress, backends)

    def on_failure(self, operation: Operation, message: str) -> None:
        operation.target_cluster.fail_deregistration(message)

    def retry(self, operation: Operation, user: User | None) -> Operation:
        return DeregisterCluster.enqueue(operation.target_cluster, user)
