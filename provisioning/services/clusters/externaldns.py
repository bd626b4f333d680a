"""ExternalDNS in a cluster: its configuration for the fleet in its AWS account, deploying and removing it."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from django.conf import settings

from provisioning.clients import externaldns
from provisioning.clients.errors import ProviderError
from provisioning.models import Cluster, HostedZone
from provisioning.rules import budget
from provisioning.services.aws_accounts import assignment as accounts
from provisioning.services.clusters import least_privilege

if TYPE_CHECKING:
    from provisioning.clients.kube import ClusterConnection, KubeCluster
    from provisioning.services.backends import Backends
    from provisioning.services.operations.running import Progress


def fleet_size(account: accounts.Account) -> tuple[int, int]:
    """(clusters, hosted zones) in the account, as far as orgdns knows: its clusters not deregistered (each may run
    ExternalDNS), and account_zones."""
    names = accounts.stored_names(account)
    clusters = Cluster.objects.live().filter(organization__aws_account__in=names).count()
    zones = HostedZone.objects.live().filter(aws_account__in=names).count()
    return max(1, clusters), account_zones(zones, account)


def account_zones(live_zones: int, account: accounts.Account) -> int:
    """The hosted zones every ExternalDNS in the account pages through: orgdns's zones there not deleted (live_zones)
    and, in the main account, the parent zone."""
    return max(1, live_zones + (bool(settings.ORGDNS_PARENT_ZONE_ID) and account.is_main))


def fleet_interval(account: accounts.Account) -> int:
    """The resync interval the fleet in the account as it is now calls for, before each cluster's jitter."""
    clusters, zones = fleet_size(account)
    return budget.resync_interval(clusters, zones, accounts.budget_of(account))


def externaldns_flags(cluster: Cluster) -> budget.Flags:
    """The flags of this cluster's ExternalDNS, for the fleet in its account as it is now (this cluster included)."""
    account = accounts.of_organization(cluster.organization)
    return budget.cluster_flags(fleet_interval(account), cluster.owner_id, accounts.budget_of(account))


def externaldns_config(cluster: Cluster, zone: HostedZone) -> externaldns.ExternalDNSConfig:
    return externaldns.ExternalDNSConfig(
        namespace=settings.EXTERNALDNS_NAMESPACE,
        image=settings.EXTERNALDNS_IMAGE,
        zone_name=zone.name,
        zone_id=zone.zone_id,
        owner_id=cluster.owner_id,
        policy=settings.EXTERNALDNS_POLICY,
        region=settings.AWS_REGION,
        memory_limit=settings.EXTERNALDNS_MEMORY_LIMIT,
        flags=externaldns_flags(cluster),
    )


def deploy_externaldns(
    cluster: Cluster,
    zone: HostedZone,
    credentials: dict[str, str],
    connection: ClusterConnection,
    backends: Backends,
    progress: Progress,
) -> list[str]:
    """Apply the ExternalDNS objects (its Secret, Service and Deployment, in the namespace the tenant's bootstrap
    made) and wait until it runs. Returns the objects found changed by hand (repaired)."""
    kube = backends.cluster(connection)
    repaired = []
    config = externaldns_config(cluster, zone)
    try:
        drift = least_privilege.record_drift(cluster, kube)
        if any(line.startswith(f"Namespace {config.namespace} ") for line in drift):
            raise ProviderError(
                f"ExternalDNS's namespace {config.namespace} is not in cluster {cluster.name}: apply orgdns's "
                "bootstrap manifest (shown on the cluster's page), then provision again",
                service="kubernetes",
                permanent=True,
            )
        for line in drift:
            progress.log(f"the cluster's setup has drifted: {line}")
        objects = externaldns.manifests(config, credentials["access_key_id"], credentials["secret_access_key"])
        for obj in objects:
            if cluster.legacy_rbac and obj["kind"] == "Service":
                progress.log("Service external-dns: skipped (the token predates the bootstrap and may not create it)")
                continue
            outcome = kube.apply(obj)
            progress.log(f"{obj['kind']} {obj['metadata']['name']}: {outcome}")
            if outcome == "repaired":
                repaired.append(f"{obj['kind']} {obj['metadata']['name']}")
        progress.log(f"waiting for ExternalDNS to be available in cluster {cluster.name}")
        kube.wait_for_rollout("external-dns", settings.EXTERNALDNS_NAMESPACE, settings.EXTERNALDNS_ROLLOUT_TIMEOUT)
    finally:
        kube.close()
    Cluster.objects.filter(pk=cluster.pk).update(externaldns_flags=dataclasses.asdict(config.flags))  # type: ignore[call-overload]  # budget.Flags
    progress.log(f"ExternalDNS resyncs every {config.flags.interval} s")  # type: ignore[union-attr]  # budget.Flags
    return repaired


def remove_externaldns(kube: KubeCluster, progress: Progress) -> None:
    """Stop ExternalDNS and wait until its pods are gone (a pod still running would publish the records again),
    then remove the rest of what orgdns created. The namespace, ServiceAccounts and RBAC are the tenant's (its
    bootstrap, removed with `kubectl delete -f`)."""
    namespace = settings.EXTERNALDNS_NAMESPACE
    timeout = settings.EXTERNALDNS_STOP_TIMEOUT
    try:
        for kind, name, ns in externaldns.removal_order(namespace):
            deleted = kube.delete(kind, name, ns, managed_by=externaldns.OWNER)
            if deleted:
                progress.log(f"deleted {kind} {name}")
            if kind == "Deployment":
                kube.wait_until_gone("Pod", namespace=namespace, selector=externaldns.POD_SELECTOR, timeout=timeout)
                progress.log("ExternalDNS has stopped")
    finally:
        kube.close()
