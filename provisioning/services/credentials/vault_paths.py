"""Where orgdns keeps each secret in Vault (under the organization's path), and reading a cluster's connection back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from provisioning.clients.errors import ProviderError
from provisioning.clients.kube import ClusterConnection, InvalidConnection

if TYPE_CHECKING:
    from typing import Any

    from provisioning.clients.vault import Vault
    from provisioning.models import Certificate, Cluster, Organization


def aws_secret_path(vault: Vault, org: Organization) -> str:
    return vault.org_path(org.name, "aws")


def cluster_secret_path(vault: Vault, cluster: Cluster) -> str:
    return vault.org_path(cluster.organization.name, "clusters", cluster.owner_id)


def ca_path(vault: Vault, org: Organization) -> str:
    return vault.org_path(org.name, "tls", "ca")


def material_path(vault: Vault, certificate: Certificate) -> str:
    return vault.org_path(certificate.organization.name, "tls", "certs", str(certificate.pk))


def read_connection(vault: Vault, cluster: Cluster) -> ClusterConnection:
    return usable_connection(vault.read(cluster_secret_path(vault, cluster)))


def usable_connection(stored: dict[str, Any] | None) -> ClusterConnection:
    """The ClusterConnection kept in Vault; ProviderError if it is missing or no longer passes our checks."""
    if not stored:
        raise ProviderError(
            "the cluster's credentials are missing from Vault: register the cluster again",
            service="vault",
            permanent=True,
        )
    try:
        return ClusterConnection(**stored)
    except (InvalidConnection, TypeError) as exc:
        raise ProviderError(
            f"the cluster's stored credentials are not usable ({exc}): register the cluster again",
            service="vault",
            permanent=True,
        ) from None
