"""TLS certificates: validate a request, claim the certificate, queue its job; who may see them; when to renew."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from provisioning.clients import tls
from provisioning.models import (
    Certificate,
    CertificateInstallation,
    CertificateQuerySet,
    Cluster,
    Organization,
    past_renewal_point,
)
from provisioning.rules.validators import certificate_dns_names, validate_certificate_namespace, validate_secret_name
from provisioning.services import audit
from provisioning.services.backends import Backends
from provisioning.services.certificates import jobs as certificate_jobs
from provisioning.services.certificates.jobs import ca_path, make_ca, material_path
from provisioning.services.clusters import least_privilege
from provisioning.services.operations.leases import organization_lock
from provisioning.services.organizations import rules as offboarding_rules

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from datetime import datetime

    from django.contrib.auth.models import User
    from django.db.models import QuerySet

    from provisioning.models import Operation

UNREACHABLE_CLUSTER_STATES = (Cluster.State.DEREGISTERING, Cluster.State.DEREGISTERED)


def with_installations(certificates: CertificateQuerySet) -> CertificateQuerySet:
    return certificates.select_related("organization").prefetch_related("installations__cluster")


def current(certificate: Certificate) -> Certificate:
    """The certificate as it is now, with where it is installed."""
    return with_installations(Certificate.objects.all()).get(pk=certificate.pk)


def certificates_of(organization: Organization, state: str | None = None) -> QuerySet[Certificate]:
    """The organization's certificates in state, or (no state) those not deleted, newest first, with where they are."""
    rows = with_installations(organization.certificates.all())
    rows = rows.filter(state=state) if state else rows.live()
    return rows.order_by("-created_at", "-pk")


def get_installable_cluster(organization: Organization, pk: int) -> Cluster:
    """The organization's registered cluster with this id; ValidationError otherwise."""
    cluster = installable_clusters(organization).filter(pk=pk).first()
    if cluster is None:
        raise ValidationError(f"{organization.name} has no registered cluster with id {pk}.")
    return cluster


def installable_clusters(organization: Organization) -> QuerySet[Cluster]:
    return organization.clusters.exclude(state__in=UNREACHABLE_CLUSTER_STATES)


def issue_certificate(
    organization: Organization,
    names: Iterable[str],
    targets: Iterable[tuple[Cluster, str, str]] = (),
    user: User | None = None,
) -> tuple[Certificate, Operation]:
    """Save a certificate for names and queue the job that issues it and installs it into targets.

    targets: (cluster, namespace, secret name) triples. Raises ValidationError naming what is wrong; then nothing
    is saved or queued. Returns (certificate, operation).
    """
    names = certificate_dns_names(names, organization.zone_name, settings.ORGDNS_TLS_MAX_NAMES)
    targets = [clean_target(organization, *target) for target in dict.fromkeys(targets)]
    with transaction.atomic():
        offboarding_rules.require_active(organization)
        certificate = Certificate.objects.create(organization=organization, dns_names=names, created_by=user)
        for target in targets:
            add_installation(certificate, *target)
        operation = certificate_jobs.IssueCertificate.enqueue(certificate, user)
    return certificate, operation


def install_certificate(
    certificate: Certificate, cluster: Cluster, namespace: str, secret_name: str, user: User | None = None
) -> Operation:
    """Queue installing the certificate as Secret namespace/secret_name in cluster (again, if it is there already)."""
    target = clean_target(certificate.organization, cluster, namespace, secret_name)
    with transaction.atomic():
        claim(certificate, certificate.start_installation, [Certificate.State.ACTIVE])  # Certificate.can_install
        add_installation(certificate, *target)
        return certificate_jobs.InstallCertificate.enqueue(certificate, user, cluster=cluster)


def renew_certificate(certificate: Certificate, user: User | None = None) -> Operation:
    """Queue a new key and certificate, installed everywhere the old one is. Also retries a failed issue."""
    with transaction.atomic():
        claim(certificate, certificate.start_renewal, Certificate.SETTLED)  # Certificate.can_renew
        return certificate_jobs.RenewCertificate.enqueue(certificate, user)


def delete_certificate(certificate: Certificate, user: User | None = None) -> Operation:
    """Queue removing the certificate's Secrets from the clusters and its key and certificate from Vault."""
    with transaction.atomic():
        claim(certificate, certificate.start_deletion, Certificate.SETTLED)  # Certificate.can_delete
        return certificate_jobs.DeleteCertificate.enqueue(certificate, user)


def clean_target(
    organization: Organization, cluster: Cluster, namespace: str, secret_name: str
) -> tuple[Cluster, str, str]:
    if cluster.organization_id != organization.pk:
        raise ValidationError(f"Cluster {cluster.name} does not belong to {organization.name}.")
    if cluster.state in UNREACHABLE_CLUSTER_STATES:
        raise ValidationError(f"Cluster {cluster.name} is {cluster.state}: choose a registered cluster.")
    validate_certificate_namespace(namespace)
    validate_secret_name(secret_name)
    least_privilege.check_certificate_target(cluster, namespace, secret_name)
    return cluster, namespace, secret_name


def add_installation(
    certificate: Certificate, cluster: Cluster, namespace: str, secret_name: str
) -> CertificateInstallation:
    """A pending installation; refused if another certificate already goes into that Secret."""
    where: dict[str, Any] = {"cluster": cluster, "namespace": namespace, "secret_name": secret_name}
    try:
        with transaction.atomic():
            installation = CertificateInstallation.request(certificate, **where)
    except IntegrityError:
        holder = CertificateInstallation.objects.filter(**where).select_related("certificate").first()
        raise ValidationError(
            f"Secret {namespace}/{secret_name} in cluster {cluster.name} already holds certificate "
            f"{holder.certificate if holder else 'another certificate'}: choose another Secret name."
        ) from None
    return installation


def claim(certificate: Certificate, start: Callable[[], bool], from_states: Iterable[str]) -> None:
    """Start (a transition of the certificate that leaves from_states), so one job at a time works on it;
    ValidationError if it is in none of them."""
    offboarding_rules.require_active(certificate.organization)
    if not start():
        current = Certificate.objects.values_list("state", flat=True).get(pk=certificate.pk)
        raise ValidationError(
            f"Certificate {certificate} is {current}; this needs it to be {' or '.join(from_states)}."
        )


def certificates_due_for_renewal(now: datetime) -> list[Certificate]:
    """Issued certificates past ORGDNS_TLS_RENEW_AT of their lifetime that are neither failed nor being deleted."""
    candidates = (
        Certificate.objects.exclude(
            state__in=[Certificate.State.ERROR, Certificate.State.DELETING, Certificate.State.DELETED]
        )
        .filter(organization__state=Organization.State.ACTIVE)
        .exclude(not_after=None)
        .select_related("organization")
        .order_by("not_after", "pk")
    )
    return list(candidates.filter(past_renewal_point(now)))


def ca_certificate_pem(organization: Organization) -> str | None:
    """The organization CA's certificate (never its key), or None before the first certificate is issued."""
    vault = Backends().vault()
    stored = vault.read(ca_path(vault, organization))
    return stored["certificate"] if stored else None


def certificate_pem(certificate: Certificate) -> str | None:
    """The certificate (never its key), or None if it is not issued or was deleted."""
    vault = Backends().vault()
    stored = vault.read(material_path(vault, certificate))
    return stored["certificate"] if stored else None


def ca_needs_reissue(organization: Organization) -> bool:
    """Whether the organization has a CA made before CAs excluded every IP address."""
    vault = Backends().vault()
    stored = vault.read(ca_path(vault, organization))
    return stored is not None and not tls.excludes_ip_addresses(stored["certificate"])


def reissue_ca(
    organization: Organization, user: User | None = None
) -> tuple[list[Operation], list[tuple[Certificate, str]]]:
    """A new CA for the organization in place of its current one, and a renewal queued for each of its certificates
    (so each is signed by the new CA and installed with it). Returns (renewals, certificates skipped with the reason)."""
    offboarding_rules.require_active(organization)
    vault = Backends().vault()
    with organization_lock(organization):
        ca = make_ca(organization, vault)
    audit.record(
        "ca.reissue",
        organization,
        actor=user,
        detail=f"new CA, SHA-256 {tls.describe(ca.certificate).fingerprint_sha256}",
    )
    renewals, skipped = [], []
    for certificate in organization.certificates.live().order_by("pk"):
        try:
            renewals.append(renew_certificate(certificate, user))
        except ValidationError as exc:
            skipped.append((certificate, exc.messages[0]))
    return renewals, skipped
