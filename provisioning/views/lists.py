"""The list pages: each one a ListSpec over rows scoped to the user's organizations (staff see all)."""

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from provisioning.services import access
from provisioning.services.organizations import actions as organizations
from provisioning.views.list_spec import Column, Filter, ListSpec, render_list

from .. import operation_kinds
from ..models import AuditEvent, Certificate, Cluster, HostedZone, Operation


def organization_filter():
    return Filter.exact("org", "Organization", "organization__name__iexact")


def live_state_filter(choices, ended):
    """A state filter that leaves out ended rows (history) unless their state is chosen."""
    return Filter.exact("state", "State", "state", choices, blank=f"Any but {ended}", otherwise=~Q(state=ended))


ORGANIZATION_HEALTH = {"error": Q(failing__gt=0), "none": Q(live=0)}  # on organization_rows' counts

ORGANIZATIONS = ListSpec(
    name="organization",
    title="Organizations",
    queryset=organizations.organization_rows,
    columns=(
        Column("Organization", "name"),
        Column("Hosted zone"),
        Column("Clusters", "clusters", "live"),
        Column("Created", "created", "created_at"),
    ),
    search=("name",),
    default_sort="name",
    filters=(
        Filter("health", "Health", ORGANIZATION_HEALTH.get, (("error", "Clusters in error"), ("none", "No clusters"))),
    ),
)

CLUSTERS = ListSpec(
    name="cluster",
    title="Clusters",
    queryset=lambda user: access.visible(Cluster, user).select_related("organization"),
    columns=(
        Column("Cluster", "name"),
        Column("Organization", "organization", "organization__name"),
        Column("State", "state"),
        Column("API server"),
        Column("Updated", "updated", "updated_at"),
    ),
    search=("name", "organization__name", "api_server", "owner_id"),
    default_sort="organization",
    filters=(live_state_filter(Cluster.State.choices, Cluster.State.DEREGISTERED), organization_filter()),
)

ZONES = ListSpec(
    name="zone",
    title="Hosted zones",
    queryset=lambda user: access.visible(HostedZone, user).select_related("organization"),
    columns=(
        Column("Zone", "name"),
        Column("Organization", "organization", "organization__name"),
        Column("State", "state"),
        Column("Delegation"),
        Column("Zone id"),
        Column("Access key age", "key", "access_key_created_at"),
        Column("Created", "created", "created_at"),
    ),
    search=("name", "zone_id", "organization__name"),
    default_sort="name",
    filters=(
        live_state_filter(HostedZone.State.choices, HostedZone.State.DELETED),
        Filter(
            "delegated",
            "Delegation",
            lambda value: Q(delegated=value == "yes"),
            (("yes", "Delegated"), ("no", "Not delegated")),
        ),
        organization_filter(),
    ),
)

OPERATIONS = ListSpec(
    name="operation",
    title="Operations",
    queryset=lambda user: access.visible(Operation, user).select_related("organization", "cluster", "certificate"),
    columns=(
        Column("Operation", "kind"),
        Column("Organization", "organization", "organization__name"),
        Column("Subject"),
        Column("State", "state"),
        Column("Started", "created", "created_at"),
    ),
    search=("organization__name", "cluster__name", "certificate__dns_names", "step", "error"),
    default_sort="-created",
    filters=(
        Filter.exact("state", "State", "state", Operation.State.choices),
        Filter.exact("kind", "Kind", "kind", operation_kinds.choices()),
        organization_filter(),
    ),
)


def expiry_condition(value):
    now = timezone.now()
    if value == "expired":
        return Q(not_after__lte=now)
    return Q(not_after__gt=now, not_after__lte=now + timedelta(days=int(value)))


CERTIFICATES = ListSpec(
    name="certificate",
    title="Certificates",
    queryset=lambda user: (
        access.visible(Certificate, user).select_related("organization").prefetch_related("installations__cluster")
    ),
    columns=(
        Column("Names"),
        Column("Organization", "organization", "organization__name"),
        Column("State", "state"),
        Column("Expires", "expires", "not_after"),
        Column("Installed in"),
    ),
    search=("dns_names", "serial", "organization__name"),
    default_sort="expires",
    filters=(
        live_state_filter(Certificate.State.choices, Certificate.State.DELETED),
        Filter(
            "expires",
            "Expires",
            expiry_condition,
            (("expired", "Expired"), ("7", "Within 7 days"), ("30", "Within 30 days")),
        ),
        organization_filter(),
    ),
)


def object_condition(value):
    """`cluster:12` → the events of that object."""
    object_type, _, object_id = value.partition(":")
    return Q(object_type=object_type, object_id=object_id)


AUDIT = ListSpec(
    name="audit",
    title="Audit log",
    queryset=lambda user: access.audit_events_for(user).select_related("organization"),
    columns=(
        Column("When", "when", "created_at"),
        Column("Who", "actor", "actor_name"),
        Column("Action", "action"),
        Column("Object"),
        Column("Outcome", "outcome"),
        Column("Request"),
    ),
    search=("actor_name", "action", "object_repr", "request_id", "client_request_id", "detail", "organization__name"),
    default_sort="-when",
    filters=(
        Filter.exact("outcome", "Outcome", "outcome", AuditEvent.Outcome.choices),
        Filter.exact("source", "Source", "source", AuditEvent.Source.choices),
        Filter("action", "Action", lambda value: Q(action__startswith=value)),
        organization_filter(),
        Filter("object", "Object", object_condition),
    ),
)


def list_page(spec):
    """The view of one list."""

    def view(request):
        return render_list(request, spec)

    view.__name__ = f"{spec.name}_list"
    return view


organization_list = list_page(ORGANIZATIONS)
cluster_list = list_page(CLUSTERS)
zone_list = list_page(ZONES)
operation_list = list_page(OPERATIONS)
certificate_list = list_page(CERTIFICATES)
audit_list = list_page(AUDIT)
