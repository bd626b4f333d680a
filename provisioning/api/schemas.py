"""What the API takes and gives. Outputs hold public facts only: no secret is a field of any of them."""

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from ninja import Field, Schema
from pydantic import StringConstraints

from provisioning import models, operation_kinds
from provisioning.rules import validators

# Text that PostgreSQL can store (no NUL) and that fits the columns it is compared with.
Text = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$", max_length=253)]
Name = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$", max_length=150)]
LongText = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$", max_length=256 * 1024)]


def named_enum(name: str, values: Iterable[str]) -> type[StrEnum]:
    """An enum the OpenAPI schema holds once, as the component `name`, that every field and parameter of it refers
    to (an inline enum makes generated clients name it after its field, which collides with other schemas)."""
    return StrEnum(name, [(value.upper() or "NONE", value) for value in values])  # type: ignore[return-value]


# Every enum of the API, each a component of the schema (tests/api/test_api_schema.py checks that no other is inline).
Role = named_enum("Role", models.Membership.Role.values)
MembershipSource = named_enum("MembershipSource", models.Membership.Source.values)
OrganizationState = named_enum("OrganizationState", models.Organization.State.values)
ZoneState = named_enum("ZoneState", models.HostedZone.State.values)
ClusterState = named_enum("ClusterState", models.Cluster.State.values)
ClusterHealth = named_enum("ClusterHealth", models.Cluster.Health.values)
OperationKind = named_enum("OperationKind", operation_kinds.values())
OperationState = named_enum("OperationState", models.Operation.State.values)
CertificateState = named_enum("CertificateState", models.Certificate.State.values)
CertificateExpiry = named_enum("CertificateExpiry", ["", "valid", "expiring", "expired"])
AuditSource = named_enum("AuditSource", models.AuditEvent.Source.values)
AuditOutcome = named_enum("AuditOutcome", models.AuditEvent.Outcome.values)
AuthenticatedBy = named_enum("AuthenticatedBy", ["token", "session"])


class Link(Schema):
    id: int
    name: str


class Me(Schema):
    username: str
    is_staff: bool
    authenticated_by: AuthenticatedBy
    token_name: str | None = None
    token_expires_at: datetime | None = None


class ZoneSummary(Schema):
    name: str
    state: ZoneState
    zone_id: str


class Organization(Schema):
    name: str
    state: OrganizationState = Field(
        description="active, offboarding (being deleted: nothing can be changed) or offboarded."
    )
    created_at: datetime
    role: Role | None = Field(None, description="Your role in it (none: you see it as staff).")
    zone: ZoneSummary | None = Field(None, description="Its hosted zone, unless it has none or it was deleted.")
    live_clusters: int = Field(description="Clusters that are not deregistered.")
    ready_clusters: int
    failing_clusters: int = Field(description="Clusters in error.")

    @staticmethod
    def resolve_zone(organization):
        return organization.live_zones[0] if organization.live_zones else None

    @staticmethod
    def resolve_live_clusters(organization):
        return organization.live

    @staticmethod
    def resolve_ready_clusters(organization):
        return organization.ready

    @staticmethod
    def resolve_failing_clusters(organization):
        return organization.failing


class OrganizationDetail(Organization):
    can_write: bool = Field(description="Whether you may register clusters and issue certificates in it.")
    can_manage_members: bool


DNS_LABEL = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"


class Offboarding(Schema):
    confirmation: str = Field(description="The organization's name, typed again.")


class NewOrganization(Schema):
    name: Annotated[str, StringConstraints(pattern=DNS_LABEL, max_length=validators.max_org_name_length())] = Field(
        description="A DNS label: it names the zone <name>.<base domain> and the IAM user."
    )


class Member(Schema):
    username: str
    role: Role
    source: MembershipSource = Field(
        description="directory: given by the identity provider's groups at sign-in, changed only there (the API "
        "refuses to); hand: added by an owner."
    )

    @staticmethod
    def resolve_username(membership):
        return membership.user.get_username()


class MemberRole(Schema):
    role: Role


class GarbageCollection(Schema):
    action: str = Field(description="What the zone GC does with the zone: keep, delete, resume or deleting.")
    reason: str
    not_before: datetime | None = Field(None, description="When it deletes the zone if it is still unused then.")


class Zone(Schema):
    name: str
    state: ZoneState
    zone_id: str
    name_servers: list[str]
    delegated: bool
    created_at: datetime | None = Field(description="When Route53 created it (billing starts then).")
    iam_user_name: str
    access_key_id: str = Field(description="The id of the zone-scoped access key; its secret is in Vault only.")
    access_key_created_at: datetime | None
    previous_access_key_id: str = Field(
        description="While a key rotation is under way: the key kept until every cluster runs the new one."
    )
    garbage_collection: GarbageCollection | None = None

    @staticmethod
    def resolve_created_at(zone):
        return zone.aws_created_at


class ZoneRecord(Schema):
    name: str
    type: str
    ttl: int | None
    values: list[str]
    owner_id: str | None = Field(description="The ExternalDNS owner (--txt-owner-id) that manages it, if any.")
    cluster: Link | None = Field(description="Our cluster that owner is.")


class ZoneRecordPage(Schema):
    items: list[ZoneRecord]
    next: str | None = Field(description="The URL of the next page (it starts where this one ends); null on the last.")


class OperationSummary(Schema):
    id: UUID
    kind: OperationKind
    state: OperationState


class ExternalDNSHealth(Schema):
    health: ClusterHealth = Field(
        description="ok; failing (problem says why); unknown: the check could not read the cluster (problem says why)."
    )
    problem: str
    failing_since: datetime | None = Field(description="Since when it has not been ok.")
    checked_at: datetime
    last_sync_at: datetime | None = Field(description="Its last successful sync with Route53, from its own metrics.")
    restarts: int | None
    metrics_error: str = Field(description="Why its metrics could not be read at the last check.")


class Cluster(Schema):
    id: int
    name: str
    organization: str
    api_server: str
    owner_id: str = Field(description="ExternalDNS --txt-owner-id of this cluster.")
    state: ClusterState
    message: str
    registered_by: str | None
    created_at: datetime
    updated_at: datetime
    externaldns: ExternalDNSHealth | None = Field(
        description="ExternalDNS's health at its last check; null before one."
    )

    @staticmethod
    def resolve_organization(cluster):
        return cluster.organization.name

    @staticmethod
    def resolve_externaldns(cluster):
        if not cluster.externaldns_health:
            return None
        return {field: getattr(cluster, f"externaldns_{field}") for field in ExternalDNSHealth.model_fields}

    @staticmethod
    def resolve_registered_by(cluster):
        return cluster.registered_by.get_username() if cluster.registered_by else None


class ClusterSetup(Schema):
    """What orgdns's token may do in the cluster and how the tenant's part (the bootstrap) stands."""

    legacy_rbac: bool = Field(
        description="Registered before the bootstrap manifest: apply it and give orgdns the new token "
        "(docs/least-privilege-clusters.md)."
    )
    token_excess: list[str] = Field(description="What the token may do beyond orgdns's needs, as registration found.")
    drift: list[str] = Field(
        description="How the tenant's part differs from what ExternalDNS needs, at the last check."
    )
    checked_at: datetime | None
    certificate_namespaces: list[str] = Field(
        description="Namespaces where orgdns was last found allowed to install certificate Secrets."
    )


class ClusterDetail(Cluster):
    latest_operation: OperationSummary | None
    setup: ClusterSetup

    @staticmethod
    def resolve_setup(cluster):
        return {
            "legacy_rbac": cluster.legacy_rbac,
            "token_excess": [part for part in cluster.token_excess.split("; ") if part],
            "drift": cluster.setup_drift.splitlines(),
            "checked_at": cluster.setup_checked_at,
            "certificate_namespaces": list(cluster.certificate_namespaces),
        }


class Bootstrap(Schema):
    """The manifest a cluster's admin applies (kubectl apply -f) before registering it, and how to get the token."""

    manifest: str = Field(description="YAML, several documents.")
    namespace: str
    service_account: str
    token_command: str
    kubeconfig_commands: str
    delete_command: str
    certificates_cluster_role: str


class NewCluster(Schema):
    """Either `kubeconfig` (its current or named `context`, with an embedded CA and a token) or `api_server`, `token`
    and `ca_pem`."""

    name: Annotated[str, StringConstraints(pattern=DNS_LABEL, max_length=40)]
    api_server: Text = ""
    token: LongText = Field("", description="A ServiceAccount bearer token; kept in Vault only.")
    ca_pem: LongText = ""
    kubeconfig: LongText = Field("", description="Kubeconfig YAML, instead of api_server/token/ca_pem.")
    context: Text = ""


class Operation(Schema):
    id: UUID
    kind: OperationKind
    organization: str
    cluster: Link | None
    certificate_id: int | None
    state: OperationState
    finished: bool
    step: str
    progress: int = Field(description="Percent done.")
    error: str
    attempts: int
    created_by: str | None
    request_id: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @staticmethod
    def resolve_organization(operation):
        return operation.organization.name

    @staticmethod
    def resolve_cluster(operation):
        return operation.cluster and {"id": operation.cluster.pk, "name": operation.cluster.name}

    @staticmethod
    def resolve_created_by(operation):
        return operation.created_by.get_username() if operation.created_by else None


class OperationDetail(Operation):
    log: str = Field(description="What the job did, a line per step, as it runs.")
    remote_calls: dict[str, int] = Field(description="Calls the job made, by service and by service.operation.")


class Accepted(Schema):
    """A job was queued: follow it at /operations/{operation.id}."""

    operation: Operation


class ClusterAccepted(Accepted):
    cluster: ClusterDetail


class Installation(Schema):
    cluster: Link
    namespace: str
    secret_name: str
    state: str
    message: str
    installed_serial: str
    installed_at: datetime | None

    @staticmethod
    def resolve_cluster(installation):
        return {"id": installation.cluster.pk, "name": installation.cluster.name}


class Certificate(Schema):
    id: int
    organization: str
    dns_names: list[str]
    state: CertificateState
    message: str
    expiry: CertificateExpiry = Field(description="expiring: past its renewal time; empty before it is issued.")
    serial: str
    fingerprint_sha256: str
    not_before: datetime | None
    not_after: datetime | None
    renewal_at: datetime | None
    issued_at: datetime | None
    created_at: datetime
    installations: list[Installation]

    @staticmethod
    def resolve_organization(certificate):
        return certificate.organization.name

    @staticmethod
    def resolve_installations(certificate):
        return list(certificate.installations.all())


class Target(Schema):
    cluster: int = Field(ge=1, le=2**63 - 1, description="The id of a registered cluster of the organization.")
    namespace: Annotated[str, StringConstraints(pattern=r"^[^\x00]*$", max_length=63)]
    secret_name: Text


class NewCertificate(Schema):
    dns_names: list[Text] = Field(min_length=1, max_length=100, description="Names in the organization's zone.")
    install: list[Target] = Field([], max_length=100, description="Where to install it once issued.")


class CertificateAccepted(Accepted):
    certificate: Certificate


class AuditEvent(Schema):
    id: int
    created_at: datetime
    actor: str
    source: AuditSource
    action: str
    organization: str | None
    object_type: str
    object_id: str
    object_repr: str
    request_id: str = Field(description="orgdns's id of the request that acted (the X-Request-ID of its answer).")
    client_request_id: str = Field(description="The X-Request-ID that request came with, if it was a sane token.")
    outcome: AuditOutcome
    detail: str

    @staticmethod
    def resolve_actor(event):
        return event.actor_name

    @staticmethod
    def resolve_organization(event):
        return event.organization.name if event.organization else None
