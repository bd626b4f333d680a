"""Registering and deregistering clusters: validate, keep credentials in Vault, queue the job."""

from __future__ import annotations

import contextlib
import math
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from redis.exceptions import RedisError

from provisioning.clients import kube
from provisioning.clients.errors import ProviderError
from provisioning.clients.kube import ClusterConnection, InvalidConnection, connection_from_kubeconfig
from provisioning.clients.retry import RetryPolicy
from provisioning.models import AuditEvent, Cluster
from provisioning.services import audit
from provisioning.services.backends import Backends, probe_rate_limiter
from provisioning.services.clusters import least_privilege
from provisioning.services.clusters.jobs import DEREGISTER, REGISTER, RERENDER_EXTERNALDNS
from provisioning.services.credentials import actions as key_rotation
from provisioning.services.credentials import pending_writes
from provisioning.services.credentials.vault_paths import cluster_secret_path
from provisioning.services.operations.running import require_room_for_operation, start_operation
from provisioning.services.organizations import rules as offboarding_rules

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.db.models import QuerySet

    from provisioning.models import Operation, Organization

MAX_KUBECONFIG_BYTES = 256 * 1024


def cluster_connection(
    api_server: str = "", token: str = "", ca_pem: str = "", kubeconfig: str | None = None, context: str = ""
) -> ClusterConnection:
    """The connection given either as a kubeconfig (text) or as server URL, CA and token; ValidationError saying
    what is wrong otherwise. The message never contains the token."""
    try:
        if kubeconfig:
            if len(kubeconfig.encode()) > MAX_KUBECONFIG_BYTES:
                raise ValidationError(f"The kubeconfig is larger than {MAX_KUBECONFIG_BYTES // 1024} KiB.")
            return connection_from_kubeconfig(kubeconfig, context or None)
        if api_server or token:
            return ClusterConnection(server=api_server.strip(), token=token.strip(), ca_pem=ca_pem.strip())
        raise ValidationError("Give the API server URL and a token, or a kubeconfig.")
    except InvalidConnection as exc:
        raise ValidationError(f"Cluster connection: {exc}") from None


def clusters_of(organization: Organization, state: str | None = None) -> QuerySet[Cluster]:
    """The organization's clusters in state, or (no state) those that are not deregistered, by name."""
    rows = organization.clusters.filter(state=state) if state else organization.clusters.live()
    return rows.select_related("organization", "registered_by").order_by("name", "pk")


def latest_operation(cluster: Cluster) -> Operation | None:
    return cluster.operations.first()


def register_cluster(
    organization: Organization, name: str, connection: ClusterConnection, user: AbstractBaseUser | None = None
) -> tuple[Cluster, Operation]:
    """Check that we can reach the cluster, store its credentials in Vault and queue the register job.

    Raises ValidationError with a message fit for the form when anything is wrong; nothing is left behind
    but the audit record of the refusal.
    """
    try:
        return _register_cluster(organization, name, connection, user)
    except ValidationError as exc:
        audit.record(
            "register.refused",
            organization,
            actor=user,
            outcome=AuditEvent.Outcome.REFUSED,
            detail=f"cluster {name!r} at {connection.server}: {' '.join(exc.messages)}",
        )
        raise


def _register_cluster(
    organization: Organization, name: str, connection: ClusterConnection, user: AbstractBaseUser | None
) -> tuple[Cluster, Operation]:
    offboarding_rules.require_active(organization)
    Cluster(organization=organization, name=name).clean_fields(exclude=["api_server", "owner_id"])
    longest = Cluster._meta.get_field("api_server").max_length
    if len(connection.server) > longest:
        raise ValidationError(
            f"The API server URL is {len(connection.server)} characters; at most {longest} are allowed."
        )
    if Cluster.objects.live().filter(organization=organization, name=name).exists():
        raise ValidationError(f"{organization.name} already has a cluster named {name!r}.")
    if user is not None:
        with transaction.atomic():  # before reaching the cluster; start_operation checks again
            require_room_for_operation(organization)
        try:
            wait = probe_rate_limiter(user).try_acquire()
        except RedisError:  # the limit guards what orgdns's network may be made to reach: no limit, no probe
            raise ValidationError(
                "orgdns cannot register clusters right now: its job queue (Redis) is not answering. Nothing was saved; "
                "try again in a minute."
            ) from None
        if wait:
            raise ValidationError(f"Too many cluster registrations in a short time: try again in {math.ceil(wait)} s.")
    probe = probe_cluster(connection)
    kube_system_uid = probe.kube_system_uid
    if Cluster.objects.live().filter(kube_system_uid=kube_system_uid).exists():
        raise ValidationError(ALREADY_REGISTERED)

    cluster = Cluster(
        organization=organization,
        name=name,
        api_server=connection.server,
        owner_id=f"{organization.name}-{name}-{secrets.token_hex(4)}",
        kube_system_uid=kube_system_uid,
        registered_by=user,
        token_excess=probe.token_excess,
    )
    vault = Backends(retry=RetryPolicy(attempts=2)).vault(timeout=settings.ORGDNS_REQUEST_VAULT_TIMEOUT)
    path = cluster_secret_path(vault, cluster)
    pending = pending_writes.record(path, organization)
    with transaction.atomic():
        pending_writes.hold(pending)  # until this request ends: the sweep leaves a write under way alone
        try:
            vault.write(path, connection.as_secret())
        except ProviderError:
            with contextlib.suppress(
                ProviderError
            ):  # the write may have landed although it timed out, or land later: the sweep destroys it
                vault.destroy(path)
            raise ValidationError(
                "Vault, where orgdns keeps the cluster's credentials, is not answering: the cluster was not "
                "registered and nothing was saved. Try again in a minute."
            ) from None
        try:
            with transaction.atomic():
                offboarding_rules.require_active(organization)
                cluster.save()
                operation = start_operation(REGISTER, organization, cluster, user)
                pending_writes.forget(pending)
        except ValidationError:
            vault.destroy(path)
            raise
        except IntegrityError:
            vault.destroy(path)
            if Cluster.objects.live().filter(kube_system_uid=kube_system_uid).exists():
                raise ValidationError(ALREADY_REGISTERED) from None
            raise ValidationError(f"{organization.name} already has a cluster named {name!r}.") from None
    return cluster, operation


# Whose it is stays unsaid: the organization that registered it may not be the user's.
ALREADY_REGISTERED = (
    "This cluster (the same kube-system namespace) is already registered with orgdns, by this or another organization: "
    "a cluster belongs to one organization. Deregister it there first."
)


# What the probe tells about a cluster that does not answer, whatever the reason, so that registering clusters
# cannot be used to map what orgdns's network reaches.
PROBE_FAILED = (
    "no Kubernetes API server answered at {server} with this CA (unreachable from orgdns, too slow, or its certificate "
    "does not match the CA)"
)


@dataclass(frozen=True)
class Probe:
    kube_system_uid: str  # tells one cluster from another whatever its URL
    token_excess: str  # what the token may do beyond orgdns's needs ("" if nothing of what is asked)


def probe_cluster(connection: ClusterConnection) -> Probe:
    """Reach the cluster with the token and check, asking the API server, that it may make every request orgdns makes
    there (least_privilege), so that a wrong URL, CA or token, or a token that could not deploy ExternalDNS, is refused
    before anything is saved; and find whether it may do dangerous things beyond that."""
    timeout = settings.ORGDNS_PROBE_TIMEOUT
    try:  # one deadline for the probe's few calls: the form answers within it whatever the server does
        cluster = Backends().cluster(
            connection, retry=RetryPolicy(attempts=1), timeout=timeout, deadline=time.monotonic() + timeout
        )
        try:
            cluster.version()
            check = least_privilege.check_token(cluster)
            kube_system = cluster.get("Namespace", "kube-system") if not check.missing else None
        finally:
            cluster.close()
    except ProviderError as exc:
        told = exc.code in (kube.REFUSED_ADDRESS, kube.UNAUTHORIZED, kube.NOT_KUBERNETES, kube.TOO_LARGE)
        raise ValidationError(
            f"Cannot use this cluster: {exc.message if told else PROBE_FAILED.format(server=connection.server)}"
        ) from None
    if check.missing:
        raise ValidationError(least_privilege.missing_message(check.missing))
    uid = ((kube_system or {}).get("metadata") or {}).get("uid")
    if not uid:
        raise ValidationError("Cannot use this cluster: it has no kube-system namespace.")
    return Probe(uid, check.excess_text())


def replace_token(cluster: Cluster, connection: ClusterConnection, user: AbstractBaseUser | None = None) -> Operation:
    """Give orgdns a new connection to a registered cluster (the same one: its kube-system UID), checked like a
    registration; then provision it again with it. For a cluster registered before the bootstrap manifest, this moves
    it to least privilege once its admin applied the bootstrap."""
    offboarding_rules.require_active(cluster.organization)
    if cluster.state not in Cluster.SETTLED:
        raise ValidationError(f"Cluster {cluster.name} is {cluster.state}: replace its token once that has finished.")
    if connection.server != cluster.api_server:
        raise ValidationError(
            f"The new connection is to {connection.server}; this cluster is registered at {cluster.api_server}."
        )
    probe = probe_cluster(connection)
    if probe.kube_system_uid != cluster.kube_system_uid:
        raise ValidationError("The new token reaches another cluster (a different kube-system namespace).")
    vault = Backends(retry=RetryPolicy(attempts=2)).vault(timeout=settings.ORGDNS_REQUEST_VAULT_TIMEOUT)
    try:
        vault.write(cluster_secret_path(vault, cluster), connection.as_secret())
    except ProviderError:
        raise ValidationError(
            "Vault, where orgdns keeps the cluster's credentials, is not answering: the token was not replaced. Try "
            "again in a minute."
        ) from None
    Cluster.objects.filter(pk=cluster.pk).update(legacy_rbac=False, token_excess=probe.token_excess)
    cluster.legacy_rbac, cluster.token_excess = False, probe.token_excess
    audit.record(
        "cluster.token_replaced",
        cluster,
        actor=user,
        detail="with excess: " + probe.token_excess if probe.token_excess else "least privilege",
    )
    return retry_registration(cluster, user)


def retry_registration(cluster: Cluster, user: AbstractBaseUser | None = None) -> Operation:
    """Run the register job again: it converges from wherever the last attempt stopped."""
    with transaction.atomic():
        offboarding_rules.require_active(cluster.organization)
        # The states Cluster.can_retry_registration allows (the page asks it).
        claimed = Cluster.objects.filter(pk=cluster.pk, state__in=Cluster.SETTLED).update(
            state=Cluster.State.PENDING, message="queued for provisioning"
        )
        if not claimed:
            raise ValidationError(
                f"Cluster {cluster.name} is {cluster.state}: only a ready or failed cluster can be provisioned again."
            )
        return start_operation(REGISTER, cluster.organization, cluster, user)


def deregister_cluster(cluster: Cluster, user: AbstractBaseUser | None = None) -> Operation:
    """Queue the deregister job; refused while the cluster is still being provisioned (that job could deploy
    ExternalDNS again after the deregistration removed it)."""
    if cluster.registration_unfinished():
        raise ValidationError(
            f"Cluster {cluster.name} is still being provisioned: deregister it once that has finished."
        )
    with transaction.atomic():
        offboarding_rules.require_active(cluster.organization)
        # With registration_unfinished above, what Cluster.can_deregister allows (the page asks it).
        claimed = Cluster.objects.filter(pk=cluster.pk, state__in=Cluster.SETTLED).update(
            state=Cluster.State.DEREGISTERING, message="queued for deregistration"
        )
        if not claimed:
            state = Cluster.objects.get(pk=cluster.pk).state
            if state in (Cluster.State.DEREGISTERING, Cluster.State.DEREGISTERED):
                raise ValidationError(f"Cluster {cluster.name} is already being deregistered.")
            raise ValidationError(f"Cluster {cluster.name} is {state}: deregister it once provisioning has finished.")
        return start_operation(DEREGISTER, cluster.organization, cluster, user)


def forget_cluster(cluster: Cluster, user: AbstractBaseUser | None = None) -> Operation:
    """For a cluster that is gone for good (unreachable, or our token revoked), so that deregistering it failed:
    drop its credentials and deregister without reaching it. Its records are still deleted from the zone, and the
    organization's access key is rotated at once, so that an ExternalDNS left running there stops working."""
    if cluster.state != Cluster.State.ERROR:
        raise ValidationError(f"Cluster {cluster.name} is {cluster.state}: only a cluster in error can be forgotten.")
    offboarding_rules.require_active(cluster.organization)
    vault = Backends().vault()
    vault.destroy(cluster_secret_path(vault, cluster))
    audit.record(
        "cluster.forget", cluster, actor=user, detail="credentials dropped; ExternalDNS is not removed from it"
    )
    operation = deregister_cluster(cluster, user)
    key_rotation.request_rotation(cluster.organization, f"cluster {cluster.name} was forgotten", user)
    return operation


@REGISTER.retried_by
@RERENDER_EXTERNALDNS.retried_by
def _retry_registration(operation: Operation, user: AbstractBaseUser | None) -> Operation:
    return retry_registration(operation.cluster, user)


@DEREGISTER.retried_by
def _retry_deregistration(operation: Operation, user: AbstractBaseUser | None) -> Operation:
    return deregister_cluster(operation.cluster, user)
