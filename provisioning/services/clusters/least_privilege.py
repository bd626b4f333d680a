"""What orgdns may do in a tenant's cluster: the bootstrap manifest the tenant applies, the checks of the token
orgdns is given (exactly the grants it needs; a warning naming anything more), the drift of the tenant's part, and the
namespaces where it may install certificates. docs/least-privilege-clusters.md tells tenants about it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from provisioning.clients import externaldns
from provisioning.clients.errors import ProviderError
from provisioning.clients.kube import Access
from provisioning.clients.retry import RetryPolicy
from provisioning.models import Cluster
from provisioning.services.backends import Backends
from provisioning.services.credentials.vault_paths import read_connection

if TYPE_CHECKING:
    from provisioning.clients.kube import KubeCluster
    from provisioning.models import Organization


def namespace() -> str:
    return settings.EXTERNALDNS_NAMESPACE


def bootstrap_yaml(organization: Organization, cluster: Cluster | None = None) -> str:
    """The bootstrap manifest, as the registration page, the download and the API give it."""
    header = f"organization {organization.name}" + (f", cluster {cluster.name}" if cluster else "")
    return externaldns.bootstrap_yaml(namespace(), header)


def token_command() -> str:
    return externaldns.token_command(namespace())


def kubeconfig_commands() -> str:
    return externaldns.kubeconfig_commands(namespace())


def delete_command() -> str:
    return "kubectl delete -f orgdns-bootstrap.yaml"


@dataclass(frozen=True)
class TokenCheck:
    missing: list[Access]
    excess: list[str]  # what the token may do beyond its needs, one sentence each

    def excess_text(self) -> str:
        return "; ".join(self.excess)


def check_token(kube: KubeCluster) -> TokenCheck:
    """Ask the API server (SelfSubjectAccessReviews, as this token) for each request orgdns makes, and for each of a
    few dangerous ones it must not be able to make."""
    missing = [access for access in externaldns.required_access(namespace()) if not kube.may(access)]
    excess = [told for access, told in externaldns.DANGEROUS_ACCESS if kube.may(access)]
    return TokenCheck(missing, excess)


def missing_message(missing: list[Access]) -> str:
    listed = "; ".join(str(access) for access in missing[:12])
    more = f" and {len(missing) - 12} more" if len(missing) > 12 else ""
    return (
        f"The token lacks permissions orgdns needs in this cluster: {listed}{more}. Apply the bootstrap manifest shown "
        f"on this page (kubectl apply -f orgdns-bootstrap.yaml) and use the token of ServiceAccount "
        f"{namespace()}/{externaldns.ORGDNS_SERVICE_ACCOUNT}."
    )


def record_drift(cluster: Cluster, kube: KubeCluster) -> list[str]:
    """Read the tenant's part of the cluster and keep how it drifted on the cluster's row; a transient failure leaves
    the last finding as it was. Returns the drift found."""
    try:
        drift = externaldns.setup_drift(kube, namespace())
    except ProviderError as exc:
        if exc.permanent:  # e.g. a token the cluster refuses: what the caller must hear
            raise
        return cluster.setup_drift.splitlines()
    text = "\n".join(drift)
    Cluster.objects.filter(pk=cluster.pk).update(setup_drift=text, setup_checked_at=timezone.now())
    cluster.setup_drift = text
    return drift


# --- certificates: where the tenant let orgdns write -----------------------------------------------------------------


def certificate_access(namespace_name: str, secret_name: str) -> list[Access]:
    return [
        Access(verb, "", "secrets", namespace=namespace_name, name=secret_name)
        for verb in ("get", "create", "patch", "delete")
    ]


def rolebinding_command(namespace_name: str) -> str:
    """The line the tenant runs so that orgdns may install certificates in this namespace."""
    return (
        f"kubectl -n {namespace_name} create rolebinding {externaldns.CERTIFICATES_CLUSTER_ROLE} "
        f"--clusterrole={externaldns.CERTIFICATES_CLUSTER_ROLE} "
        f"--serviceaccount={namespace()}:{externaldns.ORGDNS_SERVICE_ACCOUNT}"
    )


def certificate_refusal(cluster: Cluster, namespace_name: str) -> str:
    return (
        f"orgdns may not write Secrets in namespace {namespace_name} of cluster {cluster.name}: the cluster's admin must "
        f"bind ClusterRole {externaldns.CERTIFICATES_CLUSTER_ROLE} to orgdns there with a RoleBinding — "
        f"{rolebinding_command(namespace_name)}"
    )


def may_install_certificate(cluster: Cluster, kube: KubeCluster, namespace_name: str, secret_name: str) -> bool:
    """Whether the token may write this Secret (asked of the API server), remembering the answer on the cluster."""
    allowed = all(kube.may(access) for access in certificate_access(namespace_name, secret_name))
    known = [ns for ns in cluster.certificate_namespaces if ns != namespace_name]
    if allowed:
        known = sorted([*known, namespace_name])
    if known != cluster.certificate_namespaces:
        Cluster.objects.filter(pk=cluster.pk).update(certificate_namespaces=known)
        cluster.certificate_namespaces = known
    return allowed


def check_certificate_target(cluster: Cluster, namespace_name: str, secret_name: str) -> None:
    """ValidationError, naming the RoleBinding to add, unless orgdns's token may write this Secret in the cluster."""
    backends = Backends(retry=RetryPolicy(attempts=2))
    try:
        connection = read_connection(backends.vault(timeout=settings.ORGDNS_REQUEST_VAULT_TIMEOUT), cluster)
        kube = backends.cluster(connection, retry=RetryPolicy(attempts=1), timeout=settings.ORGDNS_PROBE_TIMEOUT)
        try:
            allowed = may_install_certificate(cluster, kube, namespace_name, secret_name)
        finally:
            kube.close()
    except ProviderError as exc:
        raise ValidationError(
            f"orgdns cannot check where it may install certificates in cluster {cluster.name}: {exc.message}"
        ) from None
    if not allowed:
        raise ValidationError(certificate_refusal(cluster, namespace_name))
