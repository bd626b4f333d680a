"""The certificate jobs (docs/certificates.md): issue or renew, install, delete. Every step converges when re-run."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from provisioning.clients import kube as kube_client
from provisioning.clients import tls
from provisioning.clients.errors import ProviderError
from provisioning.models import Certificate, CertificateInstallation, Cluster
from provisioning.services.clusters import least_privilege
from provisioning.services.credentials.vault_paths import (
    ca_path,
    cluster_secret_path,
    material_path,
    read_connection,
    usable_connection,
)
from provisioning.services.operations.kinds import OperationKind
from provisioning.services.operations.leases import organization_lock
from provisioning.services.organizations import rules as offboarding_rules

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from provisioning.clients.kube import KubeCluster
    from provisioning.clients.vault import Vault
    from provisioning.models import Operation, Organization
    from provisioning.services.backends import Backends
    from provisioning.services.operations.running import Progress


def fresh_certificate(operation: Operation) -> Certificate:
    """The operation's certificate as the database has it now."""
    return Certificate.objects.select_related("organization").get(pk=operation.target_certificate.pk)


def issue_and_install(operation: Operation, progress: Progress, backends: Backends) -> None:
    """ISSUE and RENEW: a new key and certificate (once per operation, so a retried job reuses them), then install."""
    certificate = fresh_certificate(operation)
    offboarding_rules.refuse_in_job(certificate.organization)
    vault = backends.vault()
    # Which operation issued it is a stored fact; comparing issued_at (the worker's clock) with the operation's
    # created_at (the web's) is not one.
    if certificate.issued_by_id == operation.pk:
        progress.log(f"serial {certificate.serial} was already issued by this operation")
    else:
        progress.step(f"Ensuring the {certificate.organization.name} CA", 10)
        ca = ensure_ca(certificate.organization, vault, progress)
        progress.step(f"Issuing a certificate for {', '.join(certificate.dns_names)}", 30)
        issue(certificate, ca, vault, progress, operation)
    install_everywhere(certificate, vault, backends, progress)


def install(operation: Operation, progress: Progress, backends: Backends) -> None:
    certificate = fresh_certificate(operation)
    offboarding_rules.refuse_in_job(certificate.organization)
    install_everywhere(certificate, backends.vault(), backends, progress)


def ensure_ca(org: Organization, vault: Vault, progress: Progress) -> tls.KeyPair:
    """The organization's CA as a tls.KeyPair, made on first need (under the organization lock, so only once)."""
    path = ca_path(vault, org)
    stored = vault.read(path)
    if stored is None:
        with organization_lock(org):
            stored = vault.read(path)
            if stored is None:
                ca = make_ca(org, vault)
                progress.log(f"created the {org.name} CA, SHA-256 {tls.describe(ca.certificate).fingerprint_sha256}")
                return ca
    return tls.KeyPair(**stored)


def make_ca(org: Organization, vault: Vault) -> tls.KeyPair:
    """A new CA for the organization, stored in Vault in place of any earlier one (whose versions Vault keeps)."""
    ca = tls.make_ca(org.zone_name, org.name, settings.ORGDNS_TLS_CA_DAYS)
    vault.write(ca_path(vault, org), {"certificate": ca.certificate, "private_key": ca.private_key})
    return ca


def issue(certificate: Certificate, ca: tls.KeyPair, vault: Vault, progress: Progress, operation: Operation) -> None:
    pair = tls.issue_server_certificate(
        ca, certificate.dns_names, certificate.organization.name, settings.ORGDNS_TLS_CERT_DAYS
    )
    vault.write(
        material_path(vault, certificate),
        {"certificate": pair.certificate, "private_key": pair.private_key, "ca_certificate": ca.certificate},
    )
    info = tls.describe(pair.certificate)
    Certificate.objects.filter(pk=certificate.pk).update(
        serial=info.serial,
        fingerprint_sha256=info.fingerprint_sha256,
        not_before=info.not_before,
        not_after=info.not_after,
        issued_at=timezone.now(),
        issued_by=operation,
    )
    progress.log(f"issued serial {info.serial}, valid until {info.not_after:%Y-%m-%d %H:%M} UTC")


def read_material(vault: Vault, certificate: Certificate) -> dict[str, Any]:
    stored = vault.read(material_path(vault, certificate))
    if stored is None:
        raise ProviderError(
            f"the key and certificate of {certificate} are missing from Vault: renew the certificate to make new ones",
            service="vault",
            permanent=True,
        )
    return stored


def install_everywhere(certificate: Certificate, vault: Vault, backends: Backends, progress: Progress) -> None:
    progress.step("Installing the certificate into its clusters", 60)
    material = read_material(vault, certificate)
    serial = tls.describe(material["certificate"]).serial

    def install_one(installation: CertificateInstallation) -> None:
        secret = tls.secret_manifest(
            installation.secret_name,
            installation.namespace,
            certificate_id=str(certificate.pk),
            labels={
                "orgdns.io/organization": certificate.organization.name,
                tls.DEPLOYMENT_LABEL: settings.ORGDNS_DEPLOYMENT_ID,
            },
            certificate_pem=material["certificate"],
            private_key_pem=material["private_key"],
            ca_pem=material["ca_certificate"],
        )
        with cluster_api(installation.cluster, vault, backends) as kube:
            outcome = put_secret(kube, installation, secret, str(certificate.pk), progress)
        installation.mark_installed(serial, timezone.now())
        progress.log(f"{installation}: Secret {outcome}, serial {serial}")

    for_each_installation(certificate, install_one, progress)
    certificate.settle_installed()


def put_secret(
    kube: KubeCluster,
    installation: CertificateInstallation,
    secret: dict[str, Any],
    certificate_id: str,
    progress: Progress,
) -> str:
    """Create or update the Secret; never overwrite a Secret that is not ours. The namespace is the tenant's: orgdns
    writes only where the tenant bound it the certificates' ClusterRole (least_privilege), and creates none."""
    namespace, name = installation.namespace, installation.secret_name
    try:
        current = kube.get("Secret", name, namespace)
        if current is not None and not tls.holds_certificate(current, certificate_id):
            raise ProviderError(
                f"Secret {namespace}/{name} in cluster {installation.cluster.name} already exists and does not hold "
                "this certificate: delete it, or install under another Secret name",
                service="kubernetes",
                permanent=True,
            )
        return kube.apply(secret)
    except ProviderError as exc:
        if exc.code == kube_client.FORBIDDEN:
            raise ProviderError(
                least_privilege.certificate_refusal(installation.cluster, namespace),
                service="kubernetes",
                permanent=True,
            ) from None
        if exc.code == kube_client.NO_NAMESPACE:
            raise ProviderError(
                f"namespace {namespace} does not exist in cluster {installation.cluster.name}: orgdns creates no "
                "namespace; create it and bind orgdns there",
                service="kubernetes",
                permanent=True,
            ) from None
        raise


def delete(operation: Operation, progress: Progress, backends: Backends) -> None:
    certificate = fresh_certificate(operation)
    remove_certificate(certificate, backends.vault(), backends, progress)


def remove_certificate(certificate: Certificate, vault: Vault, backends: Backends, progress: Progress) -> None:
    """Its Secrets out of the clusters, its key and certificate out of Vault; the row stays, `deleted`."""
    progress.step(f"Removing the Secrets of certificate {certificate} from the clusters", 10)

    def remove_one(installation: CertificateInstallation) -> None:
        with cluster_api(installation.cluster, vault, backends) as kube:
            remove_secret(kube, installation, progress)

    for_each_installation(certificate, remove_one, progress)
    # What is left is in deregistered clusters, which we cannot reach, or in clusters being deregistered, whose
    # deregistration removes it.
    certificate.installations.filter(cluster__state=Cluster.State.DEREGISTERED).delete()
    progress.step(f"Deleting the key and certificate of {certificate} from Vault", 80)
    vault.destroy(material_path(vault, certificate))
    certificate.mark_deleted()


def remove_secret(kube: KubeCluster, installation: CertificateInstallation, progress: Progress) -> None:
    """Delete the installation's Secret if it still holds its certificate, then the installation."""
    installation.start_removal()
    current = kube.get("Secret", installation.secret_name, installation.namespace)
    if current is None:
        progress.log(f"{installation}: Secret already gone")
    elif tls.holds_certificate(current, str(installation.certificate_id)):
        kube.delete("Secret", installation.secret_name, installation.namespace)
        progress.log(f"{installation}: Secret deleted")
    else:
        progress.log(f"{installation}: the Secret there now is not this certificate's: left alone")
    installation.delete()


def remove_from_cluster(cluster: Cluster, vault: Vault, backends: Backends, progress: Progress) -> None:
    """Every certificate Secret we installed in the cluster (for its deregistration)."""
    installations = list(cluster.certificate_installations.select_related("cluster", "certificate"))
    if not installations:
        return
    connection = vault.read(cluster_secret_path(vault, cluster))
    if not connection:
        progress.log(
            f"no cluster credentials in Vault: the Secrets of {len(installations)} certificate installations "
            "are not removed from the cluster"
        )
        cluster.certificate_installations.all().delete()
        return
    kube = backends.cluster(usable_connection(connection))
    try:
        for installation in installations:
            remove_secret(kube, installation, progress)
    finally:
        kube.close()


def for_each_installation(
    certificate: Certificate, action: Callable[[CertificateInstallation], None], progress: Progress
) -> None:
    """Run action on every installation in a live cluster. One that fails is marked failed, the others still run,
    and then the job fails naming it (transient only if every failure was)."""
    installations = list(certificate.installations.select_related("cluster"))
    failures = []
    for installation in installations:
        if installation.cluster.state in (Cluster.State.DEREGISTERING, Cluster.State.DEREGISTERED):
            progress.log(f"{installation}: the cluster is {installation.cluster.state}: skipped")
            continue
        try:
            action(installation)
        except ProviderError as exc:
            installation.mark_failed(exc.message)
            progress.log(f"{installation}: failed: {exc.message}")
            failures.append((installation, exc))
    if failures:
        first, first_error = failures[0]
        raise ProviderError(
            f"{len(failures)} of {len(installations)} installations failed; {first}: {first_error.message}",
            service=first_error.service,
            permanent=any(e.permanent for _, e in failures),
        )


@contextmanager
def cluster_api(cluster: Cluster, vault: Vault, backends: Backends) -> Iterator[KubeCluster]:
    kube = backends.cluster(read_connection(vault, cluster))
    try:
        yield kube
    finally:
        kube.close()


def mark_failed(operation: Operation, message: str) -> None:
    """After a failed issue, renewal or installation: still usable if it was issued once."""
    operation.target_certificate.settle_failed(f"{operation.get_kind_display()} failed: {message}")


class IssueCertificate(OperationKind):
    name = "issue_certificate"
    label = "Issue certificate"
    target = Certificate

    def run(self, operation: Operation, progress: Progress, backends: Backends) -> None:
        issue_and_install(operation, progress, backends)

    def on_failure(self, operation: Operation, message: str) -> None:
        mark_failed(operation, message)


class RenewCertificate(IssueCertificate):
    name = "renew_certificate"
    label = "Renew certificate"


class InstallCertificate(OperationKind):
    """Queued with the cluster it installs into: InstallCertificate.enqueue(certificate, user, cluster=cluster)."""

    name = "install_certificate"
    label = "Install certificate"
    target = Certificate

    def run(self, operation: Operation, progress: Progress, backends: Backends) -> None:
        install(operation, progress, backends)

    def on_failure(self, operation: Operation, message: str) -> None:
        mark_failed(operation, message)


class DeleteCertificate(OperationKind):
    name = "delete_certificate"
    label = "Delete certificate"
    target = Certificate

    def run(self, operation: Operation, progress: Progress, backends: Backends) -> None:
        delete(operation, progress, backends)

    def on_failure(self, operation: Operation, message: str) -> None:
        operation.target_certificate.fail_deletion(message)
