"""The register and deregister jobs (DESIGN.md §2). Every step converges when re-run."""

import dataclasses
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from .. import budget
from ..clients import externaldns
from ..clients.aws import zone_scoped_policy
from ..clients.errors import ProviderError
from ..clients.kube import ClusterConnection, InvalidConnection
from ..models import Cluster, HostedZone, Operation
from ..validators import iam_user_name
from . import accounts, offboarding
from .leases import organization_lock
from .zone_claims import release_unstarted

POLICY_NAME = "orgdns-zone-records"
CREATED_AT_TAG = "orgdns:created-at"
PROVISIONABLE = (Cluster.State.PENDING, Cluster.State.PROVISIONING, Cluster.State.ERROR, Cluster.State.READY)


def zone_tags(org):
    return {"orgdns:managed-by": settings.ORGDNS_RESOURCE_PREFIX, "orgdns:organization": org.name}


def aws_secret_path(vault, org):
    return vault.org_path(org.name, "aws")


def cluster_secret_path(vault, cluster):
    return vault.org_path(cluster.organization.name, "clusters", cluster.owner_id)


def register_cluster(operation, progress, backends):
    cluster = operation.cluster
    org = cluster.organization
    offboarding.refuse_in_job(org)
    if not Cluster.objects.filter(pk=cluster.pk, state__in=PROVISIONABLE).update(
        state=Cluster.State.PROVISIONING, message=""
    ):
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
    Cluster.objects.filter(pk=cluster.pk, state=Cluster.State.PROVISIONING).update(
        state=Cluster.State.READY, message=message
    )


def read_connection(vault, cluster):
    return usable_connection(vault.read(cluster_secret_path(vault, cluster)))


def usable_connection(stored):
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


def ensure_zone(org, backends, progress):
    zone = HostedZone.objects.filter(organization=org).exclude(state=HostedZone.State.DELETED).first()
    if zone and zone.state == HostedZone.State.DELETING:
        if not release_unstarted(zone):
            raise ProviderError(
                f"zone {zone.name} is being deleted; a new one is created once that finishes (will retry)",
                service="route53",
                permanent=False,
            )
        zone.state = HostedZone.State.ACTIVE
        progress.log(f"zone {zone.name} was queued for deletion as unused: kept for this cluster instead")
    delegate = bool(settings.ORGDNS_PARENT_ZONE_ID) and not (zone and zone.delegated)
    if zone and zone.state == HostedZone.State.ACTIVE and zone.zone_id and not delegate:
        progress.log(f"reusing zone {zone.zone_id}")
        return zone
    if zone is None:
        reference = f"{settings.ORGDNS_RESOURCE_PREFIX}:{org.name}:{uuid.uuid4().hex}"
        zone = HostedZone.objects.create(
            organization=org, name=org.zone_name, caller_reference=reference, aws_account=org.aws_account
        )

    route53 = backends.route53()
    if not zone.zone_id:
        found = route53.find_zone(zone.name)
        if found is None:
            # Recorded before the call: if its answer is lost, the zone may exist all the same, and billing counts
            # from here (see settle_unconfirmed_zones).
            zone.aws_created_at = timezone.now()
            zone.save(update_fields=["aws_created_at"])
            zone.zone_id, zone.name_servers = route53.create_zone(
                zone.name, zone.caller_reference, {**zone_tags(org), CREATED_AT_TAG: zone.aws_created_at.isoformat()}
            )
            progress.log(f"created zone {zone.zone_id}")
        else:
            adopt_zone(zone, found, route53, progress)
        # Active from here on, whatever happens next: the GC sees (and can collect) every zone that exists in Route53.
        zone.state = HostedZone.State.ACTIVE
        zone.save(update_fields=["zone_id", "name_servers", "aws_created_at", "state"])

    if delegate:
        delegate_zone(zone, backends.parent_zone_route53(), progress)
    return zone


def settle_unconfirmed_zones(backends, now, grace):
    """Zones whose creation was asked of Route53 but never confirmed (the job stopped, or the answer was lost) and
    that no job is finishing: adopted if Route53 has them, so that the GC sees every zone that may cost money, and
    the row removed if it has not. Returns [(zone, what was done)]."""
    settled = []
    unconfirmed = HostedZone.objects.filter(state=HostedZone.State.CREATING, created_at__lt=now - grace)
    for zone in unconfirmed.select_related("organization"):
        registering = Operation.objects.filter(organization=zone.organization, kind=Operation.Kind.REGISTER)
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
            zone.state = HostedZone.State.ACTIVE
            zone.save(update_fields=["zone_id", "name_servers", "aws_created_at", "state"])
            settled.append((zone, f"adopted {zone.zone_id}; the GC decides when it goes"))
    return settled


class NoProgress:
    """For steps run outside a job: what they would tell an operation's page is not kept."""

    def log(self, line):
        pass


def check_ownership(org, backends, progress):
    """Before changing anything: fail, naming it, if the IAM user or a parent-zone record that the organization's
    first registration would create already exists and is not ours (the zone itself is checked by ensure_zone)."""
    zone = HostedZone.objects.filter(organization=org).exclude(state=HostedZone.State.DELETED).first()
    if zone is None or not zone.access_key_id:
        check_iam_user(org, backends.iam())
    if settings.ORGDNS_PARENT_ZONE_ID and not (zone and zone.delegated):
        refuse_foreign_parent_records(org, parent_records(org, backends.parent_zone_route53()))
    progress.log("no IAM user or parent-zone record of someone else's is in the way")


def check_iam_user(org, iam):
    """The tags of the organization's IAM user (None if there is none); ProviderError if it is not ours."""
    user = iam_user_name(org.name)
    tags = iam.user_tags(user)
    if tags is not None and not tagged_as_ours(tags, org):
        wanted = ", ".join(f"{k}={v}" for k, v in zone_tags(org).items())
        raise ProviderError(
            f"IAM user {user} exists in the AWS account but was not created by orgdns for {org.name} (it lacks the "
            f"tags {wanted}): orgdns leaves it alone; delete or rename it, then retry",
            service="iam",
            permanent=True,
        )
    return tags


def tagged_as_ours(tags, org):
    """Whether an AWS resource carries the tags orgdns gives what it creates for this organization."""
    return _is_ours(tags, zone_tags(org))


def name_server_set(values):
    return frozenset(value.rstrip(".").lower() for value in values)


def our_delegations(org):
    """The name server sets of every zone this organization has had: an NS record in the parent zone with one of them
    is a delegation we wrote."""
    if org.pk is None:
        return set()
    return {
        name_server_set(ns)
        for ns in HostedZone.objects.filter(organization=org).values_list("name_servers", flat=True)
        if ns
    }


def is_our_delegation(record, org):
    values = [r["Value"] for r in record.get("ResourceRecords", [])]
    return record["Type"] == "NS" and name_server_set(values) in our_delegations(org)


def parent_records(org, route53):
    """The record sets named like the organization's zone in the parent zone (ORGDNS_PARENT_ZONE_ID must be set)."""
    return route53.record_sets_named(settings.ORGDNS_PARENT_ZONE_ID, org.zone_name)


def foreign_records(org, records):
    """Those of records that are not a delegation we wrote for the organization."""
    return [record for record in records if not is_our_delegation(record, org)]


def refuse_foreign_parent_records(org, records):
    """ProviderError naming them if the parent zone has records named like the organization's zone that we did not write."""
    foreign = foreign_records(org, records)
    if foreign:
        raise ProviderError(
            f"the parent zone {settings.ORGDNS_PARENT_ZONE_ID} already has {describe_record_sets(foreign)} named "
            f"{org.zone_name} that orgdns did not write: orgdns leaves it alone; remove it, then retry",
            service="route53",
            permanent=True,
        )


def describe_record_sets(records):
    """`an NS record (ns1.example.net, ns2.example.net)`, `a CNAME record (lb.example.net) and an A record (…)`."""
    parts = []
    for record in records:
        values = [r["Value"] for r in record.get("ResourceRecords", [])] or [
            record.get("AliasTarget", {}).get("DNSName", "alias")
        ]
        shown = ", ".join(values[:4]) + (", …" if len(values) > 4 else "")
        article = "an" if record["Type"][0] in "AEFHILMNORSX" else "a"
        parts.append(f"{article} {record['Type']} record ({shown})")
    return " and ".join(parts)


def delegate_zone(zone, route53, progress):
    """Delegate the zone from the parent zone: create its NS record, or replace a delegation of ours to an earlier zone;
    anything else of that name is someone else's, and refused."""
    parent = settings.ORGDNS_PARENT_ZONE_ID
    records = route53.record_sets_named(parent, zone.name)
    refuse_foreign_parent_records(zone.organization, records)
    existing = next((r for r in records if r["Type"] == "NS"), None)
    if existing is not None and name_server_set(r["Value"] for r in existing["ResourceRecords"]) == name_server_set(
        zone.name_servers
    ):
        progress.log(f"{zone.name} is already delegated from parent zone {parent}")
    else:
        route53.create_delegation(parent, zone.name, zone.name_servers, replacing=existing)
        replaced = " (replacing our delegation to an earlier zone)" if existing else ""
        progress.log(f"delegated {zone.name} from parent zone {parent}{replaced}")
    zone.delegated = True
    zone.save(update_fields=["delegated"])


def adopt_zone(zone, found, route53, progress):
    """Take the Route53 zone `found` (named like the row) as the row's if we created it (its CallerReference is the
    row's, or it carries our tags), tagging what is missing; ProviderError naming it otherwise."""
    org = zone.organization
    tags = zone_tags(org)
    if found["caller_reference"] != zone.caller_reference and not _is_ours(found["tags"], tags):
        raise ProviderError(
            f"a hosted zone named {zone.name} ({found['id']}) exists in the AWS account but was not created by "
            "orgdns: delete or tag it before registering clusters for this organization",
            service="route53",
            permanent=True,
        )
    zone.zone_id = found["id"]
    zone.name_servers = route53.name_servers(zone.zone_id)
    zone.aws_created_at = _created_at(found["tags"], zone.aws_created_at, progress)
    wanted = tags if CREATED_AT_TAG in found["tags"] else {**tags, CREATED_AT_TAG: zone.aws_created_at.isoformat()}
    missing = {k: v for k, v in wanted.items() if found["tags"].get(k) != v}
    if missing:
        route53.tag_zone(zone.zone_id, missing)
    progress.log(f"adopted existing zone {zone.zone_id}")


def _created_at(tags, recorded, progress):
    """A zone's creation time: our tag, else the time recorded just before we asked Route53 to create it (Route53
    does not report it). Unknown: taken as already charged."""
    try:
        return datetime.fromisoformat(tags[CREATED_AT_TAG])
    except (KeyError, ValueError):
        if recorded:
            return recorded
        progress.log("the zone's creation time is unknown: it is treated as older than 12 hours (already charged)")
        return timezone.now() - timedelta(hours=12, minutes=1)


def _is_ours(found_tags, our_tags):
    return all(found_tags.get(k) == v for k, v in our_tags.items())


def ensure_credentials(zone, vault, backends, progress):
    """One IAM user limited to this zone, its access key, the secret in Vault only. Returns the key pair kept in
    Vault: during a key rotation (key_rotation.py) its current key, the previous one being kept until the rotation
    retires it."""
    path = aws_secret_path(vault, zone.organization)
    stored = vault.read(path)
    if stored and stored.get("access_key_id") == zone.access_key_id and stored.get("zone_id") == zone.zone_id:
        progress.log(f"reusing access key {zone.access_key_id}")
        return stored

    iam = backends.iam()
    user = iam_user_name(zone.organization.name)
    if check_iam_user(zone.organization, iam) is None:
        boundary = backends.account.iam_permissions_boundary
        iam.create_user(user, zone_tags(zone.organization), boundary)
        bounded = f" with permissions boundary {boundary}" if boundary else ""
        progress.log(f"created IAM user {user}{bounded}")
    iam.put_user_policy(user, POLICY_NAME, zone_scoped_policy(zone.zone_id))
    keys = iam.access_key_ids(user)
    stored = stored or {}
    current = stored.get("access_key_id") if stored.get("access_key_id") in keys else None
    previous = (
        stored.get("previous_access_key_id") if stored.get("previous_access_key_id") in keys else None
    )  # still in use
    for stale in keys:
        if stale not in (current, previous):  # a key whose secret we never stored can never be used: delete it
            iam.delete_access_key(user, stale)
            progress.log(f"deleted unusable access key {stale}")
    if current:
        credentials = {**stored, "zone_id": zone.zone_id}
    else:
        key_id, secret = iam.create_access_key(user)
        progress.log(f"created access key {key_id}")
        credentials = new_key_record(zone, key_id, secret)
    credentials.pop("previous_access_key_id", None)
    if previous:
        credentials["previous_access_key_id"] = previous
    vault.write(path, credentials)
    backends.sts_for(credentials["access_key_id"], credentials["secret_access_key"]).wait_until_valid()
    zone.iam_user_name = user
    mirror_key(zone, credentials)
    return credentials


def new_key_record(zone, key_id, secret):
    """What Vault keeps of a key just made. It answers every rotation asked for until now."""
    return {
        "access_key_id": key_id,
        "secret_access_key": secret,
        "zone_id": zone.zone_id,
        "created_at": timezone.now().isoformat(),
        "rotation": HostedZone.objects.get(pk=zone.pk).rotations_requested,
    }


def mirror_key(zone, stored):
    """Show in the zone's row what Vault holds (key ids, age and rotation state; never a secret)."""
    created = stored.get("created_at")
    zone.access_key_created_at = (
        datetime.fromisoformat(created) if created else zone.access_key_created_at or timezone.now()
    )
    zone.access_key_id = stored["access_key_id"]
    zone.previous_access_key_id = stored.get("previous_access_key_id", "")
    zone.rotations_answered = stored.get("rotation", zone.rotations_answered)
    zone.save(
        update_fields=[
            "iam_user_name",
            "access_key_id",
            "access_key_created_at",
            "previous_access_key_id",
            "rotations_answered",
        ]
    )


def route53_budget(account=None):
    """The budget model of the account's Route53 rate (the main account's by default)."""
    return accounts.budget_of(account or accounts.main())


def fleet_size(account):
    """(clusters, hosted zones) in the account, as far as orgdns knows: its clusters not deregistered (each may run
    ExternalDNS), and account_zones."""
    names = accounts.stored_names(account)
    clusters = Cluster.objects.live().filter(organization__aws_account__in=names).count()
    zones = HostedZone.objects.exclude(state=HostedZone.State.DELETED).filter(aws_account__in=names).count()
    return max(1, clusters), account_zones(zones, account)


def account_zones(live_zones, account):
    """The hosted zones every ExternalDNS in the account pages through: orgdns's zones there not deleted (live_zones)
    and, in the main account, the parent zone."""
    return max(1, live_zones + (bool(settings.ORGDNS_PARENT_ZONE_ID) and account.is_main))


def fleet_interval(account):
    """The resync interval the fleet in the account as it is now calls for, before each cluster's jitter."""
    clusters, zones = fleet_size(account)
    return budget.resync_interval(clusters, zones, route53_budget(account))


def externaldns_flags(cluster):
    """The flags of this cluster's ExternalDNS, for the fleet in its account as it is now (this cluster included)."""
    account = accounts.of_organization(cluster.organization)
    return budget.cluster_flags(fleet_interval(account), cluster.owner_id, route53_budget(account))


def externaldns_config(cluster, zone):
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


def deploy_externaldns(cluster, zone, credentials, connection, backends, progress):
    """Apply the ExternalDNS objects and wait until it runs. Returns the objects found changed by hand (repaired)."""
    kube = backends.cluster(connection)
    repaired = []
    config = externaldns_config(cluster, zone)
    try:
        objects = externaldns.manifests(config, credentials["access_key_id"], credentials["secret_access_key"])
        for obj in objects:
            outcome = kube.apply(obj)
            progress.log(f"{obj['kind']} {obj['metadata']['name']}: {outcome}")
            if outcome == "repaired":
                repaired.append(f"{obj['kind']} {obj['metadata']['name']}")
        progress.log(f"waiting for ExternalDNS to be available in cluster {cluster.name}")
        kube.wait_for_rollout("external-dns", settings.EXTERNALDNS_NAMESPACE, settings.EXTERNALDNS_ROLLOUT_TIMEOUT)
    finally:
        kube.close()
    Cluster.objects.filter(pk=cluster.pk).update(externaldns_flags=dataclasses.asdict(config.flags))
    progress.log(f"ExternalDNS resyncs every {config.flags.interval} s")
    return repaired


def mark_register_failed(operation, message):
    Cluster.objects.filter(pk=operation.cluster_id, state__in=PROVISIONABLE).update(
        state=Cluster.State.ERROR, message=message
    )


def deregister(cluster, progress, backends):
    """Remove ExternalDNS and the records it owns (teardown.deregister removes our certificates first)."""
    vault = backends.vault()
    Cluster.objects.filter(pk=cluster.pk).update(state=Cluster.State.DEREGISTERING, message="")

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
    Cluster.objects.filter(pk=cluster.pk).update(state=Cluster.State.DEREGISTERED, message="deregistered")


def remove_externaldns(kube, progress):
    """Stop ExternalDNS and wait until its pods are gone (a pod still running would publish the records again),
    then remove the rest and wait until its namespace is gone (so that a new registration can create it)."""
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
            if kind == "Namespace" and deleted:
                kube.wait_until_gone("Namespace", namespace, timeout=timeout)
    finally:
        kube.close()


def mark_deregister_failed(operation, message):
    Cluster.objects.filter(pk=operation.cluster_id).update(
        state=Cluster.State.ERROR, message=f"deregistration failed: {message}"
    )
