"""Rotating an organization's access key without downtime.

A state machine whose state is what Vault holds for the organization (its current key and, while a rotation is under
way, the id of the previous one), mirrored in the zone's row for the pages and the cron. Every step converges when
re-run; IAM never holds more than two keys of the user (its limit), and the previous key is deleted only once every
cluster of the organization runs ExternalDNS with the current one:

1. begin (organization lock): delete a key whose secret was never stored (a crash right after creating it), create
   the new key, keep it in Vault as current with the previous key's id beside it, wait until AWS accepts it;
2. roll: in every cluster, apply the Secret and the Deployment (whose pod template carries the key's checksum), wait
   for the rollout and check that its pods run with the new key. A cluster that cannot be reached holds the rotation
   up, named in the operation's message, and the previous key stays;
3. finish (organization lock): once no registration that may have read the previous key is still deploying and
   every cluster's Deployment has the new key, delete the previous key in IAM, then drop it from Vault.

Rotations are counted when asked for (a member removed, a cluster forgotten, the page, the cron's maximum age) and
each key records the count when it was made: a job makes a new key only if one was asked for after the current key
was made, so that several requests make one rotation and a request made during a rotation gets a key of its own.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError

from provisioning.clients import externaldns
from provisioning.clients.errors import ProviderError
from provisioning.models import Cluster, HostedZone, Operation, Organization
from provisioning.rules.validators import iam_user_name
from provisioning.services.aws_accounts import assignment as accounts
from provisioning.services.clusters import jobs as cluster_jobs
from provisioning.services.clusters.externaldns import deploy_externaldns
from provisioning.services.credentials.vault_paths import aws_secret_path, cluster_secret_path, usable_connection
from provisioning.services.operations.kinds import OperationKind
from provisioning.services.operations.leases import organization_lock
from provisioning.services.zones.setup import check_iam_user, mirror_key, new_key_record

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from django.contrib.auth.models import User

    from provisioning.clients.kube import ClusterConnection
    from provisioning.clients.vault import Vault
    from provisioning.services.backends import Backends
    from provisioning.services.operations.running import Progress

# The clusters whose ExternalDNS may run with the organization's key (one in error may still run it). Those being
# provisioned are waited for; those being deregistered are losing theirs anyway.
ROLLED_STATES = (Cluster.State.READY, Cluster.State.ERROR)


def credentials_zone(organization: Organization) -> HostedZone | None:
    """The organization's active zone if it has an access key, else None."""
    return HostedZone.objects.with_credentials().filter(organization=organization).first()


def rotate_credentials(operation: Operation, progress: Progress, backends: Backends) -> None:
    organization = operation.organization
    zone = credentials_zone(organization)
    if zone is None:
        progress.log(f"{organization.name} has no access key to rotate")
        return
    vault = backends.vault()
    backends = backends.for_account(accounts.of_zone(zone))
    # At most a rotation under way (begun by an earlier job) and then one of this job's own.
    for _ in range(2):
        with organization_lock(organization):
            progress.step("Creating the new access key", 10)
            stored = begin(zone, vault, backends, progress)
        if not stored.get("previous_access_key_id"):
            progress.log(f"access key {stored['access_key_id']} answers every rotation asked for")
            return
        roll(zone, stored, backends, progress)
        with organization_lock(organization):
            progress.step(f"Deleting the previous access key {stored['previous_access_key_id']}", 90)
            finish(zone, stored, vault, backends, progress)


def begin(zone: HostedZone, vault: Vault, backends: Backends, progress: Progress) -> dict[str, Any]:
    """Vault's record of the key, with a new key made if one was asked for and no rotation is under way."""
    path = aws_secret_path(vault, zone.organization)
    stored = vault.read(path)
    if not stored:
        raise ProviderError(
            f"the access key of {zone.organization.name} is missing from Vault: retry provisioning one of its clusters",
            service="vault",
            permanent=True,
        )
    zone.refresh_from_db()  # Vault is the truth: the row is mirrored from it below
    if stored.get("previous_access_key_id"):
        progress.log(
            f"resuming the rotation from access key {stored['previous_access_key_id']} to {stored['access_key_id']}"
        )
        mirror_key(zone, stored)
        return stored
    if stored.get("rotation", zone.rotations_answered) >= zone.rotations_requested:
        mirror_key(zone, stored)
        return stored

    iam = backends.iam()
    user = iam_user_name(zone.organization.name)
    check_iam_user(zone.organization, iam)
    for stale in iam.access_key_ids(user):
        if stale != stored["access_key_id"]:  # made by a job that stopped before keeping its secret: unusable
            iam.delete_access_key(user, stale)
            progress.log(f"deleted unusable access key {stale}")
    key_id, secret = iam.create_access_key(user)
    progress.log(
        f"created access key {key_id}; access key {stored['access_key_id']} stays until every cluster runs the new one"
    )
    stored = {**new_key_record(zone, key_id, secret), "previous_access_key_id": stored["access_key_id"]}
    vault.write(path, stored)
    backends.sts_for(key_id, secret).wait_until_valid()
    mirror_key(zone, stored)
    return stored


def roll(zone: HostedZone, stored: dict[str, Any], backends: Backends, progress: Progress) -> None:
    """Run ExternalDNS with the current key in every cluster of the organization; ProviderError naming the cluster
    that holds the rotation up."""
    clusters = list(zone.organization.clusters.filter(state__in=ROLLED_STATES).order_by("name", "pk"))
    checksum = externaldns.credentials_checksum(stored["access_key_id"], stored["secret_access_key"])
    for done, cluster in enumerate(clusters):
        progress.step(
            f"Rolling ExternalDNS in cluster {cluster.name} onto access key {stored['access_key_id']}",
            20 + 60 * done // len(clusters),
        )
        with holding_up(cluster, stored):
            connection = cluster_connection(cluster, backends, progress)
            if connection is None:
                continue
            if cluster.state == Cluster.State.ERROR and deployed_checksum(cluster, connection, backends) is None:
                progress.log(f"cluster {cluster.name} is in error and runs no ExternalDNS of ours: nothing to roll")
                continue
            deploy_externaldns(cluster, zone, stored, connection, backends, progress)
            confirm_pods(cluster, connection, checksum, backends)
            progress.log(f"cluster {cluster.name} runs ExternalDNS with access key {stored['access_key_id']}")


def finish(zone: HostedZone, stored: dict[str, Any], vault: Vault, backends: Backends, progress: Progress) -> None:
    """Delete the previous key, once nothing can still be running with it."""
    path = aws_secret_path(vault, zone.organization)
    current = vault.read(path) or {}
    if current.get("access_key_id") != stored["access_key_id"] or not current.get("previous_access_key_id"):
        progress.log("another job has finished this rotation")
        if current:
            mirror_key(zone, current)
        return
    previous = current["previous_access_key_id"]
    registering = (
        Operation.objects.filter(organization=zone.organization, kind=cluster_jobs.RegisterCluster.name)
        .exclude(state__in=Operation.FINISHED)
        .select_related("cluster")
        .first()
    )
    if registering is not None:
        raise ProviderError(
            f"cluster {registering.target_cluster.name} is being provisioned and may deploy access key {previous}: the "
            f"rotation keeps that key until it has finished (will retry)",
            service="orgdns",
            permanent=False,
        )
    checksum = externaldns.credentials_checksum(stored["access_key_id"], stored["secret_access_key"])
    for cluster in zone.organization.clusters.filter(state__in=ROLLED_STATES).order_by("name", "pk"):
        with holding_up(cluster, stored):
            connection = cluster_connection(cluster, backends, progress)
            found = deployed_checksum(cluster, connection, backends) if connection else None
            if found not in (None, checksum):
                raise ProviderError(
                    "ExternalDNS was deployed again with an earlier key (provisioned meanwhile); the rotation rolls it "
                    "again (will retry)",
                    service="orgdns",
                    permanent=False,
                )
    iam = backends.iam()
    user = iam_user_name(zone.organization.name)
    if previous in iam.access_key_ids(user):
        iam.delete_access_key(user, previous)
        progress.log(f"deleted access key {previous}")
    current.pop("previous_access_key_id")
    vault.write(path, current)
    mirror_key(zone, current)


@contextmanager
def holding_up(cluster: Cluster, stored: dict[str, Any]) -> Iterator[None]:
    """A cluster's failure, told as holding the rotation up (the previous key stays)."""
    try:
        yield
    except ProviderError as exc:
        raise ProviderError(
            f"cluster {cluster.name} holds up the key rotation, so access key {stored['previous_access_key_id']} is "
            f"kept: {exc.message}",
            service=exc.service,
            permanent=exc.permanent,
            code=exc.code,
        ) from None


def cluster_connection(cluster: Cluster, backends: Backends, progress: Progress) -> ClusterConnection | None:
    vault = backends.vault()
    stored = vault.read(cluster_secret_path(vault, cluster))
    if not stored:
        progress.log(f"cluster {cluster.name}: no credentials in Vault (forgotten or being deregistered): not rolled")
        return None
    return usable_connection(stored)


def deployed_checksum(cluster: Cluster, connection: ClusterConnection, backends: Backends) -> str | None:
    """The credentials checksum of our ExternalDNS Deployment in the cluster; None if it has none of ours."""
    kube = backends.cluster(connection)
    try:
        deployment = kube.get("Deployment", externaldns.DEPLOYMENT_NAME, settings.EXTERNALDNS_NAMESPACE)
    finally:
        kube.close()
    if (
        deployment is None
        or (deployment["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") != externaldns.OWNER
    ):
        return None
    return externaldns.pod_checksum(deployment)


def confirm_pods(cluster: Cluster, connection: ClusterConnection, checksum: str, backends: Backends) -> None:
    """ProviderError unless every ExternalDNS pod that is not being deleted runs with the key, and one is ready."""
    kube = backends.cluster(connection)
    try:
        pods = kube.list("Pod", settings.EXTERNALDNS_NAMESPACE, externaldns.POD_SELECTOR)
    finally:
        kube.close()
    problem = externaldns.key_rollout_problem(pods, checksum)
    if problem:
        raise ProviderError(f"{problem} (will retry)", service="kubernetes", permanent=False)


class RotateCredentials(OperationKind):
    """Queued by credentials.actions.request_rotation. A failure leaves nothing to undo: the previous key stays until a
    later run finishes the rotation (the cron resumes it)."""

    name = "rotate_credentials"
    label = "Rotate access key"
    target = Organization

    def run(self, operation: Operation, progress: Progress, backends: Backends) -> None:
        rotate_credentials(operation, progress, backends)

    def retry(self, operation: Operation, user: User | None) -> Operation:
        """Finish what the failed one's request asked for (no new key of its own)."""
        organization = Organization.objects.get(pk=operation.organization_id)
        if credentials_zone(organization) is None or not organization.active:  # offboarding deletes the key
            raise ValidationError(f"{organization.name} has no access key any more: nothing to rotate.")
        return self.enqueue(organization, user, reason=f"retry of operation {operation.pk}")
