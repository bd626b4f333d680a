"""Moving what an orgdns from before deployment ids made onto this deployment's marks (issue 23): once, on upgrade.

orgdns recognizes its own things by marks that name its deployment (ORGDNS_DEPLOYMENT_ID): the Route53 zone and IAM
user tag orgdns:deployment, Vault paths under <VAULT_PREFIX>/<deployment>/, the label orgdns.io/deployment of the
certificate Secrets it installs. What an earlier version made carries the older marks only. Adopted here is only what
this deployment's rows point at — never something merely named like it, which may be another deployment's: a zone
or IAM user a live row names, tagged with the older tags for that organization, gets the deployment tag; a Vault
secret at a path a row points at is copied to its new path, then destroyed at the old one; a certificate Secret a row
installed, labelled with its certificate, gets the deployment label. Running it again does nothing more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from provisioning.clients import tls
from provisioning.clients.errors import ProviderError
from provisioning.models import CertificateInstallation, Cluster, HostedZone, Organization
from provisioning.services.aws_accounts import assignment as accounts
from provisioning.services.certificates.jobs import cluster_api
from provisioning.services.reconcile.orphans import expected_vault_paths
from provisioning.services.zones.setup import DEPLOYMENT_TAG, legacy_tags

if TYPE_CHECKING:
    from provisioning.clients.kube import KubeCluster
    from provisioning.services.backends import Backends

MERGE_PATCH = "application/merge-patch+json"


def adopt(backends: Backends, apply: bool) -> list[str]:
    """What is (with apply) or would be moved onto this deployment's marks, one line each, and what is left, saying
    why."""
    return [*_vault(backends, apply), *_aws(backends, apply), *_secrets(backends, apply)]


def _vault(backends: Backends, apply: bool) -> list[str]:
    legacy = backends.vault(prefix=settings.VAULT_PREFIX)
    current = backends.vault()
    if legacy.prefix == current.prefix:
        return []
    lines = []
    for old in sorted(expected_vault_paths(legacy, Organization.objects.all())):
        new = current.prefix + old.removeprefix(legacy.prefix)
        data = legacy.read(old)
        if data is None:
            continue
        if current.read(new) is not None:
            lines.append(f"vault {old}: left, {new} exists already (written since the upgrade); remove one by hand")
            continue
        if apply:
            current.write(new, data)
            legacy.destroy(old)
        lines.append(f"vault {old}: {'moved' if apply else 'would move'} to {new}")
    return lines


def _aws(backends: Backends, apply: bool) -> list[str]:
    lines = []
    zones = HostedZone.objects.live().select_related("organization").order_by("name")
    for zone in zones:
        org = zone.organization
        in_account = backends.for_account(accounts.of_zone(zone))
        if zone.zone_id:
            route53 = in_account.route53()
            found = route53.tags(zone.zone_id)
            verdict = _verdict(found, org)
            if verdict is None and apply:
                route53.tag_zone(zone.zone_id, {DEPLOYMENT_TAG: settings.ORGDNS_DEPLOYMENT_ID})
            lines.append(f"zone {zone.name} ({zone.zone_id}): {verdict or _tagged(apply)}")
        if zone.iam_user_name:
            iam = in_account.iam()
            found_tags = iam.user_tags(zone.iam_user_name)
            if found_tags is None:
                continue
            verdict = _verdict(found_tags, org)
            if verdict is None and apply:
                iam.tag_user(zone.iam_user_name, {DEPLOYMENT_TAG: settings.ORGDNS_DEPLOYMENT_ID})
            lines.append(f"IAM user {zone.iam_user_name}: {verdict or _tagged(apply)}")
    return [line for line in lines if not line.endswith(ALREADY)]


ALREADY = "already marked"


def _verdict(tags: dict[str, str], org: Organization) -> str | None:
    """None if the resource is to be tagged; else why not."""
    deployment = tags.get(DEPLOYMENT_TAG)
    if deployment == settings.ORGDNS_DEPLOYMENT_ID:
        return ALREADY
    if deployment is not None:
        return f"left, it is deployment {deployment}'s"
    if any(tags.get(k) != v for k, v in legacy_tags(org).items()):
        return "left, it lacks orgdns's tags for its organization"
    return None


def _tagged(apply: bool) -> str:
    return f"{'tagged' if apply else 'would tag'} {DEPLOYMENT_TAG}={settings.ORGDNS_DEPLOYMENT_ID}"


def _secrets(backends: Backends, apply: bool) -> list[str]:
    lines = []
    installations = CertificateInstallation.objects.filter(cluster__state=Cluster.State.READY).select_related(
        "cluster__organization"
    )
    by_cluster: dict[Cluster, list[CertificateInstallation]] = {}
    for installation in installations:
        by_cluster.setdefault(installation.cluster, []).append(installation)
    vault = backends.vault() if by_cluster else None
    for cluster, placed in by_cluster.items():
        try:
            with cluster_api(cluster, vault, backends) as kube:  # type: ignore[arg-type]  # made when there are some
                for installation in placed:
                    lines.extend(_label_secret(kube, cluster, installation, apply))
        except ProviderError as exc:
            lines.append(f"cluster {cluster}: not reached ({exc.message}); run again once it answers")
    return lines


def _label_secret(kube: KubeCluster, cluster: Cluster, installation: CertificateInstallation, apply: bool) -> list[str]:
    where = f"Secret {installation.namespace}/{installation.secret_name} in {cluster}"
    secret = kube.get("Secret", installation.secret_name, installation.namespace)
    labels = (secret or {}).get("metadata", {}).get("labels") or {}
    if secret is None or labels.get(tls.DEPLOYMENT_LABEL) == settings.ORGDNS_DEPLOYMENT_ID:
        return []
    if tls.DEPLOYMENT_LABEL in labels:
        return [f"{where}: left, it is deployment {labels[tls.DEPLOYMENT_LABEL]}'s"]
    ours = all(labels.get(k) == v for k, v in tls.MANAGED_BY.items())
    if not ours or not tls.holds_certificate(secret, str(installation.certificate_id)):
        return [f"{where}: left, it is not labelled as certificate {installation.certificate_id}'s"]
    if apply:
        body = {"metadata": {"labels": {tls.DEPLOYMENT_LABEL: settings.ORGDNS_DEPLOYMENT_ID}}}
        kube.request(
            "PATCH", kube.path("Secret", secret["metadata"]["name"], installation.namespace), body, MERGE_PATCH
        )
    return [f"{where}: {'labelled' if apply else 'would label'} {tls.DEPLOYMENT_LABEL}={settings.ORGDNS_DEPLOYMENT_ID}"]
