import uuid

from django.conf import settings
from django.db import models
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, F, Q
from django.db.models.lookups import LessThanOrEqual
from django.utils import timezone

from provisioning.rules.validators import validate_cluster_name, validate_org_name

from . import operation_kinds


def transition(instance, from_states, to_state, **fields):
    """Move instance's row to to_state (with fields) if it is in one of from_states, in one conditional UPDATE: of
    two racing transitions, one wins. The instance follows (but for expressions, such as F() + 1). Whether it
    happened: False, nothing changed."""
    moved = type(instance).objects.filter(pk=instance.pk, state__in=from_states).update(state=to_state, **fields)
    if moved:
        instance.state = to_state
        for name, value in fields.items():
            if not hasattr(value, "resolve_expression"):
                setattr(instance, name, value)
    return bool(moved)


# Who may see or change what: the only rules, as queryset methods (`Cluster.objects.for_user(user, CHANGE)`) and
# Organization.allows. The pages, the API and the admin look objects up through them and answer 404 (not visible) or
# 403 (visible, not allowed); see provisioning/scoping.py.
VIEW = "view"  # see it: staff see every organization, others those they belong to
CHANGE = "change"  # change its clusters, certificates, zone: owners and members of an active organization
MANAGE_MEMBERS = "manage_members"  # owners of an active organization
OFFBOARD = "offboard"  # delete it (again, if that failed): owners, until it is offboarded
ACTIONS = (VIEW, CHANGE, MANAGE_MEMBERS, OFFBOARD)

ACT_IN_ANY_ORGANIZATION = "provisioning.act_in_any_organization"
TOKEN_ORGANIZATIONS = "_orgdns_token_organizations"


def token_organizations(user):
    """The organizations the API token the user authenticated with is limited to; None: not limited (or a session)."""
    return getattr(user, TOKEN_ORGANIZATIONS, None)


def limit_to_token(user, organization_ids):
    """For this request, the user acts through a token limited to these organizations (None: not limited)."""
    setattr(user, TOKEN_ORGANIZATIONS, organization_ids)


def acts_in_any_organization(user):
    """Support staff who may change what they see: staff with the permission (superusers have every permission).
    Other staff only look."""
    return user.is_staff and user.has_perm(ACT_IN_ANY_ORGANIZATION)


def can_create_organizations(user):
    """Staff with the permission; not through a token limited to some organizations."""
    return user.is_staff and user.has_perm("provisioning.add_organization") and token_organizations(user) is None


class OrganizationQuerySet(models.QuerySet):
    def for_user(self, user, action=VIEW):
        """The organizations in which the user may do action (VIEW, CHANGE, MANAGE_MEMBERS, OFFBOARD). Through an API
        token limited to named organizations, only those of them."""
        if action not in ACTIONS:
            raise ValueError(f"Unknown action {action!r}: one of {', '.join(ACTIONS)}.")
        visible = (
            self if user.is_staff else self.filter(pk__in=Membership.objects.filter(user=user).values("organization"))
        )
        limited_to = token_organizations(user)
        if limited_to is not None:
            visible = visible.filter(pk__in=limited_to)
        if action == VIEW:
            return visible
        if action == OFFBOARD:
            allowed = visible.exclude(state=Organization.State.OFFBOARDED)
        else:
            allowed = visible.filter(state=Organization.State.ACTIVE)
        if acts_in_any_organization(user):
            return allowed
        roles = (Membership.Role.OWNER, Membership.Role.MEMBER) if action == CHANGE else (Membership.Role.OWNER,)
        return allowed.filter(pk__in=Membership.objects.filter(user=user, role__in=roles).values("organization"))


class OrganizationScopedQuerySet(models.QuerySet):
    """Rows that belong to an organization: the user sees (changes) those of the organizations they see (change)."""

    def for_user(self, user, action=VIEW):
        return self.filter(organization__in=Organization.objects.for_user(user, action))


class Organization(models.Model):
    """Offboarded organizations stay as a tombstone that holds their audit trail and cost ledger, and their name."""

    class State(models.TextChoices):
        ACTIVE = "active"
        OFFBOARDING = "offboarding"
        OFFBOARDED = "offboarded"

    name = models.CharField(max_length=63, unique=True, validators=[validate_org_name])
    state = models.CharField(max_length=11, choices=State.choices, default=State.ACTIVE)
    aws_account = models.CharField(
        "AWS account",
        max_length=32,
        blank=True,
        help_text="The configured AWS account its zone and IAM user are in (ORGDNS_AWS_ACCOUNTS); empty: not placed yet, "
        "or the main account. Set once, when its first zone is created.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    offboarded_at = models.DateTimeField(null=True, blank=True)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        permissions = [("act_in_any_organization", "Can act in every organization (support; other staff only look)")]

    def __str__(self):
        return self.name

    @property
    def active(self):
        return self.state == self.State.ACTIVE

    @property
    def zone_name(self):
        return f"{self.name}.{settings.ORGDNS_BASE_DOMAIN}"

    def start_offboarding(self):
        """ACTIVE (or OFFBOARDING, again after a failure) → OFFBOARDING: nothing new starts in it."""
        return transition(self, (self.State.ACTIVE, self.State.OFFBOARDING), self.State.OFFBOARDING)

    def finish_offboarding(self):
        """OFFBOARDING → OFFBOARDED: only its audit trail and cost ledger remain."""
        return transition(self, (self.State.OFFBOARDING,), self.State.OFFBOARDED, offboarded_at=timezone.now())

    def allows(self, user, action):
        """Whether the user may do action (VIEW, CHANGE, MANAGE_MEMBERS, OFFBOARD) in this organization."""
        return Organization.objects.for_user(user, action).filter(pk=self.pk).exists()


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        MEMBER = "member"
        VIEWER = "viewer"

    class Source(models.TextChoices):
        HAND = "hand"
        DIRECTORY = "directory"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    source = models.CharField(
        max_length=9,
        choices=Source.choices,
        default=Source.HAND,
        help_text="directory: made from the identity provider's groups at sign-in, and changed only there.",
    )

    objects = OrganizationScopedQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="one_membership_per_user_and_org")]

    def __str__(self):
        return f"{self.user} in {self.organization} ({self.role})"


class ExternalIdentity(models.Model):
    """Who a person is at the identity provider: its issuer and subject (`sub`), never an e-mail address."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)
    groups = models.JSONField(default=list, blank=True, help_text="The groups the provider gave at the last sign-in.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="one_user_per_external_identity")]

    def __str__(self):
        return f"{self.subject} at {self.issuer}"


# A zone counts (one per organization, billed, holding its name) until it is deleted.
LIVE_ZONE = ~Q(state="deleted")


class HostedZoneQuerySet(OrganizationScopedQuerySet):
    def live(self):
        return self.filter(LIVE_ZONE)

    def with_credentials(self):
        """Active zones that have an access key (HostedZone.has_credentials)."""
        return self.filter(state=HostedZone.State.ACTIVE).exclude(access_key_id="")


class HostedZone(models.Model):
    """An organization's Route53 zone and the IAM user scoped to it. Rows are kept after deletion."""

    class State(models.TextChoices):
        CREATING = "creating"
        ACTIVE = "active"
        DELETING = "deleting"
        DELETED = "deleted"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="zones")
    name = models.CharField(max_length=253)
    state = models.CharField(max_length=10, choices=State.choices, default=State.CREATING)
    caller_reference = models.CharField(max_length=128, blank=True)
    zone_id = models.CharField(max_length=32, blank=True, db_index=True)
    name_servers = models.JSONField(default=list, blank=True)
    delegated = models.BooleanField(default=False)
    aws_account = models.CharField(
        "AWS account",
        max_length=32,
        blank=True,
        help_text="The account the zone was created in; empty: the main account.",
    )
    aws_created_at = models.DateTimeField(null=True, blank=True, help_text="When Route53 confirmed the zone.")
    iam_user_name = models.CharField(max_length=64, blank=True)
    access_key_id = models.CharField(max_length=128, blank=True)
    access_key_created_at = models.DateTimeField(null=True, blank=True)
    previous_access_key_id = models.CharField(
        max_length=128,
        blank=True,
        help_text="The key being retired while a rotation is under way (deleted once every cluster runs the new one).",
    )
    rotations_requested = models.PositiveIntegerField(
        default=0,
        help_text="How many key rotations were asked for (the cron, the page, a member removed, a cluster forgotten).",
    )
    rotations_answered = models.PositiveIntegerField(
        default=0,
        help_text="rotations_requested when the current key was made: it answers every request counted until then.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    teardown_started_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the teardown began deleting: from then on no cluster can reclaim the zone.",
    )
    route53_deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="When Route53 deleted the zone: its billing ends."
    )

    objects = HostedZoneQuerySet.as_manager()

    class Meta:
        ordering = ["name", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["organization"], condition=LIVE_ZONE, name="one_live_zone_per_org")
        ]

    def __str__(self):
        return self.name

    @property
    def has_credentials(self):
        """Whether its access key is in use, so that it can be rotated."""
        return self.state == self.State.ACTIVE and bool(self.access_key_id)

    # Its deletion, each step conditional and atomic (the GC, the teardown job and register jobs race for it):
    # ACTIVE --claim--> DELETING (unstarted) --start_teardown--> DELETING (started) --mark_deleted--> DELETED.
    # An unstarted claim is released back to ACTIVE when a cluster turns up: by the claim's own re-check, by the
    # teardown before it starts, or by a register job that finds the zone claimed (it reclaims it). Once started, a
    # register job waits for the teardown to finish and then creates a fresh zone.

    def confirm_in_route53(self):
        """Route53 has the zone (created or adopted: zone_id, name_servers and aws_created_at are set on the
        instance): CREATING (or ACTIVE) → ACTIVE, so that the GC sees every zone that may cost money. A zone not saved
        yet (adopted by the reconciler) is saved so."""
        if self.pk is None:
            self.state = self.State.ACTIVE
            self.save()
            return True
        return transition(
            self,
            (self.State.CREATING, self.State.ACTIVE),
            self.State.ACTIVE,
            zone_id=self.zone_id,
            name_servers=self.name_servers,
            aws_created_at=self.aws_created_at,
        )

    def claim_for_deletion(self):
        """ACTIVE → DELETING (unstarted). False if it is not active (another GC run or worker got there first)."""
        return transition(self, (self.State.ACTIVE,), self.State.DELETING)

    def release_unstarted(self):
        """Give an unstarted claim back (DELETING → ACTIVE). False if the teardown has started (or it is no claim)."""
        moved = HostedZone.objects.filter(pk=self.pk, state=self.State.DELETING, teardown_started_at=None).update(
            state=self.State.ACTIVE
        )
        if moved:
            self.state = self.State.ACTIVE
        return bool(moved)

    def start_teardown(self, now):
        """Pass the point of no return (DELETING stays, started). False if a cluster reclaimed the zone first."""
        moved = HostedZone.objects.filter(pk=self.pk, state=self.State.DELETING, teardown_started_at=None).update(
            teardown_started_at=now
        )
        if moved:
            self.teardown_started_at = now
        return bool(moved)

    def mark_deleted(self, now):
        """DELETING → DELETED: Route53, IAM and Vault have nothing of it any more; the row stays."""
        return transition(self, (self.State.DELETING,), self.State.DELETED, deleted_at=now)


class ZoneCharge(models.Model):
    """The cost ledger: one row per zone and month, charged by Route53 or saved by deleting the zone in time."""

    class Kind(models.TextChoices):
        CHARGED = "charged"
        AVOIDED_YOUNG = "avoided_young", "Avoided: deleted within 12 h of creation"
        AVOIDED_RENEWAL = "avoided_renewal", "Avoided: deleted before the month began"

    zone = models.ForeignKey(HostedZone, on_delete=models.PROTECT, related_name="charges")
    month = models.DateField(help_text="The first day (UTC) of the billed month.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-month", "recorded_at", "pk"]
        constraints = [models.UniqueConstraint(fields=["zone", "month"], name="one_charge_per_zone_and_month")]

    def __str__(self):
        return f"{self.zone} {self.month:%Y-%m}: {self.get_kind_display()}"


# A cluster counts (holds its name, keeps its organization's zone in use) until it is deregistered; one in error
# may still run ExternalDNS.
LIVE_CLUSTER = ~Q(state="deregistered")


class ClusterQuerySet(OrganizationScopedQuerySet):
    def live(self):
        return self.filter(LIVE_CLUSTER)


class Cluster(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"
        PROVISIONING = "provisioning"
        READY = "ready"
        ERROR = "error"
        DEREGISTERING = "deregistering"
        DEREGISTERED = "deregistered"

    # The states from which it may be provisioned again, or deregistered: no job works on it.
    SETTLED = (State.READY, State.ERROR)
    # The states a register job may find it in and provision it from.
    PROVISIONABLE = (State.PENDING, State.PROVISIONING, State.ERROR, State.READY)
    LIVE = (State.PENDING, State.PROVISIONING, State.READY, State.ERROR, State.DEREGISTERING)

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="clusters")
    name = models.CharField(max_length=40, validators=[validate_cluster_name])
    api_server = models.URLField(max_length=255)
    owner_id = models.CharField(
        max_length=128, unique=True, help_text="ExternalDNS --txt-owner-id; also names the Vault secret."
    )
    kube_system_uid = models.CharField(
        max_length=64, blank=True, help_text="UID of the cluster's kube-system namespace: which cluster this is."
    )
    state = models.CharField(max_length=14, choices=State.choices, default=State.PENDING)
    message = models.TextField(blank=True)
    registered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    externaldns_flags = models.JSONField(
        null=True,
        blank=True,
        help_text="The budget flags (budget.Flags) its ExternalDNS was last deployed with; empty: not known.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # ExternalDNS's health, as the last check_externaldns run read it from the cluster (services/clusters/externaldns_health.py).
    class Health(models.TextChoices):
        OK = "ok"
        FAILING = "failing"
        UNKNOWN = "unknown", "unknown (cannot check)"

    externaldns_health = models.CharField(
        max_length=7, choices=Health.choices, blank=True, help_text="Empty: never checked."
    )
    externaldns_problem = models.TextField(
        blank=True, help_text="Why ExternalDNS is failing, or why it cannot be checked."
    )
    externaldns_failing_since = models.DateTimeField(null=True, blank=True)
    externaldns_checked_at = models.DateTimeField(null=True, blank=True)
    externaldns_last_sync_at = models.DateTimeField(
        null=True, blank=True, help_text="Its last successful sync with Route53, from its own metrics."
    )
    externaldns_restarts = models.PositiveIntegerField(null=True, blank=True)
    externaldns_metrics_error = models.CharField(
        max_length=300, blank=True, help_text="Why its metrics could not be read at the last check."
    )

    # Least privilege (docs/least-privilege-clusters.md): the tenant applies orgdns's bootstrap manifest; orgdns's token
    # may then write only its own objects in ExternalDNS's namespace.
    legacy_rbac = models.BooleanField(
        default=False,
        help_text="Registered before the bootstrap manifest: orgdns's token holds the old cluster-wide ClusterRole, "
        "and orgdns still reaches ExternalDNS's metrics through pods/proxy.",
    )
    token_excess = models.TextField(
        blank=True, help_text="What the token orgdns holds may do beyond what it needs, as registration found."
    )
    setup_drift = models.TextField(
        blank=True, help_text="How the tenant's part (the bootstrap) differs from what ExternalDNS needs, last check."
    )
    setup_checked_at = models.DateTimeField(null=True, blank=True)
    certificate_namespaces = models.JSONField(
        default=list,
        blank=True,
        help_text="Namespaces where orgdns's token was last found allowed to write certificate Secrets.",
    )

    objects = ClusterQuerySet.as_manager()

    class Meta:
        ordering = ["organization__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"], condition=LIVE_CLUSTER, name="unique_live_cluster_name"
            ),
            models.UniqueConstraint(
                fields=["kube_system_uid"],
                condition=LIVE_CLUSTER & ~models.Q(kube_system_uid=""),
                name="one_live_registration_per_cluster",
            ),
        ]

    def __str__(self):
        return f"{self.organization.name}/{self.name}"

    @property
    def uses_zone(self):
        return self.state != self.State.DEREGISTERED

    @property
    def can_retry_registration(self):
        return self.state in self.SETTLED

    def registration_unfinished(self):
        """Whether a register job is queued or running: it could deploy ExternalDNS again after a deregistration."""
        return self.operations.filter(kind="register").exclude(state__in=Operation.FINISHED).exists()

    @property
    def can_deregister(self):
        return self.state in self.SETTLED and not self.registration_unfinished()

    # Its lifecycle. The request side claims a settled cluster for a job (queue_*), so that one job at a time works
    # on it; the jobs move it on. Each returns whether it happened.

    def queue_provisioning(self):
        """READY or ERROR → PENDING, for a register job."""
        return transition(self, self.SETTLED, self.State.PENDING, message="queued for provisioning")

    def queue_deregistration(self):
        """READY or ERROR → DEREGISTERING, for a deregister job."""
        return transition(self, self.SETTLED, self.State.DEREGISTERING, message="queued for deregistration")

    def start_provisioning(self):
        """→ PROVISIONING, from any state a register job may find it in (not being deregistered, nor deregistered)."""
        return transition(self, self.PROVISIONABLE, self.State.PROVISIONING, message="")

    def finish_provisioning(self, message):
        """PROVISIONING → READY (not if it was deregistered meanwhile)."""
        return transition(self, (self.State.PROVISIONING,), self.State.READY, message=message)

    def fail_provisioning(self, message):
        """→ ERROR after a failed register job (one being deregistered meanwhile is left to that)."""
        return transition(self, self.PROVISIONABLE, self.State.ERROR, message=message)

    def start_deregistration(self):
        """→ DEREGISTERING, from any live state: the deregister job (or the offboarding) takes it over."""
        return transition(self, self.LIVE, self.State.DEREGISTERING, message="")

    def finish_deregistration(self):
        """DEREGISTERING → DEREGISTERED: its name and its use of the zone are free."""
        return transition(self, (self.State.DEREGISTERING,), self.State.DEREGISTERED, message="deregistered")

    def fail_deregistration(self, message):
        """→ ERROR after a failed deregistration (a deregistered cluster stays deregistered)."""
        return transition(self, self.LIVE, self.State.ERROR, message=f"deregistration failed: {message}")


class Operation(models.Model):
    """One background job. Its id is the RQ job id; the row, not RQ, is what pages show."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        RETRYING = "retrying"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    FINISHED = (State.SUCCEEDED, State.FAILED)
    UNFINISHED = (State.QUEUED, State.RUNNING, State.RETRYING)
    WAITING = (State.QUEUED, State.RETRYING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20, choices=operation_kinds.choices)  # the kinds: operation_kinds
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="operations")
    cluster = models.ForeignKey(Cluster, null=True, blank=True, on_delete=models.PROTECT, related_name="operations")
    certificate = models.ForeignKey(
        "Certificate", null=True, blank=True, on_delete=models.PROTECT, related_name="operations"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    step = models.CharField(max_length=200, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    remote_calls = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    request_id = models.CharField(max_length=64, blank=True, help_text="The request (or cron run) that started it.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = OrganizationScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]  # pk: one order for operations made in the same instant

    def __str__(self):
        return f"{self.get_kind_display()} {self.cluster or self.organization} ({self.state})"

    @property
    def finished(self):
        return self.state in self.FINISHED

    # Its lifecycle: QUEUED → RUNNING (→ RETRYING → RUNNING ...) → SUCCEEDED or FAILED. A finished row stays finished:
    # each transition is conditional, so a job that runs after its operation was cancelled or failed does nothing.

    def start(self):
        """A job starts (again) on it: → RUNNING, one attempt more."""
        return transition(
            self, self.UNFINISHED, self.State.RUNNING, attempts=F("attempts") + 1, started_at=timezone.now(), error=""
        )

    def will_retry(self, message, **fields):
        """→ RETRYING: its job runs again (RQ's retry, or the sweep's)."""
        return transition(self, self.UNFINISHED, self.State.RETRYING, error=message, **fields)

    def succeed(self, remote_calls):
        return transition(
            self,
            self.UNFINISHED,
            self.State.SUCCEEDED,
            progress=100,
            step="done",
            finished_at=timezone.now(),
            remote_calls=remote_calls,
        )

    def fail(self, message, remote_calls):
        return transition(
            self,
            self.UNFINISHED,
            self.State.FAILED,
            error=message,
            finished_at=timezone.now(),
            remote_calls=remote_calls,
        )

    @property
    def target_cluster(self) -> Cluster:
        """The cluster of an operation of a cluster's kind (which always has one)."""
        if self.cluster is None:
            raise ValueError(f"operation {self.pk} ({self.kind}) has no cluster")
        return self.cluster

    @property
    def target_certificate(self) -> "Certificate":
        """The certificate of an operation of a certificate's kind (which always has one)."""
        if self.certificate is None:
            raise ValueError(f"operation {self.pk} ({self.kind}) has no certificate")
        return self.certificate

    def cancel(self, message):
        """QUEUED or RETRYING → FAILED, saying why (a running one is not cancelled)."""
        return transition(self, self.WAITING, self.State.FAILED, error=message, finished_at=timezone.now())

    @property
    def target(self):
        """What the operation acts on: its cluster, else its certificate, else its organization."""
        return self.cluster or self.certificate or self.organization

    @property
    def followed(self):
        """Whether another operation on its cluster started after it: what to retry is then that one's business."""
        return (
            self.cluster_id is not None
            and Operation.objects.filter(cluster_id=self.cluster_id, created_at__gt=self.created_at).exists()
        )

    @property
    def can_retry(self):
        """Failed, of a kind that declares how it is retried, and not followed by another."""
        return self.state == self.State.FAILED and operation_kinds.get(self.kind).retryable and not self.followed


def renewal_point():
    """When a certificate is renewed (by the cron; before, the pages call it expiring): after ORGDNS_TLS_RENEW_AT of
    its lifetime. NULL before it is issued."""
    lifetime = ExpressionWrapper(F("not_after") - F("not_before"), output_field=DurationField())
    return ExpressionWrapper(F("not_before") + lifetime * settings.ORGDNS_TLS_RENEW_AT, output_field=DateTimeField())


def past_renewal_point(now):
    """The certificates issued and past their renewal point at now (expired ones too): Certificate.renewal_due."""
    return Q(LessThanOrEqual(renewal_point(), now))


class CertificateQuerySet(OrganizationScopedQuerySet):
    def live(self):
        """Not deleted (rows are kept after deletion)."""
        return self.exclude(state="deleted")


class Certificate(models.Model):
    """A server certificate signed by its organization's CA. Its key and PEMs live in Vault only; rows are kept after deletion."""

    class State(models.TextChoices):
        ISSUING = "issuing"
        ACTIVE = "active"
        RENEWING = "renewing"
        INSTALLING = "installing"
        DELETING = "deleting"
        DELETED = "deleted"
        ERROR = "error"

    BUSY = (State.ISSUING, State.RENEWING, State.INSTALLING, State.DELETING)
    # The states a job that issues or installs it may leave it in: all but its deletion's.
    NOT_DELETING = (State.ISSUING, State.ACTIVE, State.RENEWING, State.INSTALLING, State.ERROR)
    LIVE = (*NOT_DELETING, State.DELETING)
    # The states from which it may be renewed (a failed issue: issued again) or deleted.
    SETTLED = (State.ACTIVE, State.ERROR)

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="certificates")
    dns_names = models.JSONField(default=list)
    state = models.CharField(max_length=10, choices=State.choices, default=State.ISSUING)
    message = models.TextField(blank=True)
    serial = models.CharField(max_length=40, blank=True, help_text="Hexadecimal.")
    fingerprint_sha256 = models.CharField("SHA-256 fingerprint", max_length=95, blank=True)
    not_before = models.DateTimeField(null=True, blank=True)
    not_after = models.DateTimeField(null=True, blank=True)
    issued_at = models.DateTimeField(null=True, blank=True, help_text="When the current key and certificate were made.")
    issued_by = models.ForeignKey(
        "Operation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The operation that made the current key and certificate (a retried job reuses them).",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = CertificateQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        more = f" (+{len(self.dns_names) - 1})" if len(self.dns_names) > 1 else ""
        return f"{self.dns_names[0] if self.dns_names else '?'}{more}"

    @property
    def busy(self):
        return self.state in self.BUSY

    # Its lifecycle: the request side claims it for a job (start_*: one job at a time), the job settles it.

    def start_installation(self):
        """ACTIVE → INSTALLING (Certificate.can_install)."""
        return transition(self, (self.State.ACTIVE,), self.State.INSTALLING, message="")

    def start_renewal(self):
        """ACTIVE or ERROR → RENEWING (Certificate.can_renew; a failed issue is issued again)."""
        return transition(self, self.SETTLED, self.State.RENEWING, message="")

    def start_deletion(self):
        """ACTIVE or ERROR → DELETING (Certificate.can_delete)."""
        return transition(self, self.SETTLED, self.State.DELETING, message="")

    def settle_installed(self):
        """→ ACTIVE: issued and installed everywhere it should be (not if it is being deleted, or deleted)."""
        return transition(self, self.NOT_DELETING, self.State.ACTIVE, message="")

    def settle_failed(self, message):
        """After a failed issue, renewal or installation: still usable (ACTIVE) if it was issued once, else ERROR
        (not if it is being deleted, or deleted)."""
        issued = Certificate.objects.filter(pk=self.pk).exclude(serial="").exists()
        return transition(self, self.NOT_DELETING, self.State.ACTIVE if issued else self.State.ERROR, message=message)

    def mark_deleted(self):
        """→ DELETED, from any live state (its deletion, or its organization's offboarding): out of the clusters and
        out of Vault; the row stays."""
        return transition(self, self.LIVE, self.State.DELETED, deleted_at=timezone.now(), message="")

    def fail_deletion(self, message):
        """→ ERROR after a failed deletion (a deleted certificate stays deleted)."""
        return transition(self, self.LIVE, self.State.ERROR, message=f"deletion failed: {message}")

    @property
    def can_renew(self):
        return self.state in self.SETTLED

    @property
    def can_delete(self):
        return self.state in self.SETTLED

    @property
    def can_install(self):
        return self.state == self.State.ACTIVE

    @property
    def renewal_at(self):
        """When the cron renews it: after ORGDNS_TLS_RENEW_AT of its lifetime. None before it is issued."""
        if self.not_before is None or self.not_after is None:
            return None
        return self.not_before + (self.not_after - self.not_before) * settings.ORGDNS_TLS_RENEW_AT

    def renewal_due(self, now):
        return self.renewal_at is not None and now >= self.renewal_at

    def expiry_at(self, now):
        """expired, expiring (past its renewal point) or valid; empty before it is issued."""
        if self.not_after is None:
            return ""
        if now >= self.not_after:
            return "expired"
        return "expiring" if self.renewal_due(now) else "valid"

    @property
    def expiry(self):
        return self.expiry_at(timezone.now())

    @property
    def is_expiring(self):
        """Past its renewal point, or expired."""
        return self.expiry in ("expiring", "expired")

    @property
    def needs_attention(self):
        return self.is_expiring or self.state == self.State.ERROR


class CertificateInstallation(models.Model):
    """A kubernetes.io/tls Secret holding a certificate in one cluster. The row goes when the Secret is removed."""

    class State(models.TextChoices):
        PENDING = "pending"
        INSTALLED = "installed"
        FAILED = "failed"
        REMOVING = "removing"

    certificate = models.ForeignKey(Certificate, on_delete=models.CASCADE, related_name="installations")
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="certificate_installations")
    namespace = models.CharField(max_length=63)
    secret_name = models.CharField(max_length=253)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    message = models.TextField(blank=True)
    installed_serial = models.CharField(max_length=40, blank=True)
    installed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cluster__name", "namespace", "secret_name"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "namespace", "secret_name"], name="one_certificate_per_secret")
        ]

    def __str__(self):
        return f"{self.cluster.name}/{self.namespace}/{self.secret_name}"

    @classmethod
    def request(cls, certificate, cluster, namespace, secret_name):
        """The installation of certificate as Secret namespace/secret_name in cluster, PENDING (again, if it is
        there already)."""
        installation, _ = cls.objects.update_or_create(
            certificate=certificate,
            cluster=cluster,
            namespace=namespace,
            secret_name=secret_name,
            defaults={"state": cls.State.PENDING, "message": ""},
        )
        return installation

    # From any state: one job at a time works on its certificate, which holds the claim.

    def mark_installed(self, serial, now):
        """The Secret holds the certificate of this serial."""
        return transition(
            self,
            tuple(self.State),
            self.State.INSTALLED,
            installed_serial=serial,
            installed_at=now,
            message="",
        )

    def mark_failed(self, message):
        return transition(self, tuple(self.State), self.State.FAILED, message=message)

    def start_removal(self):
        return transition(self, tuple(self.State), self.State.REMOVING)


class AuditEventQuerySet(OrganizationScopedQuerySet):
    def for_user(self, user, action=VIEW):
        """The events of the user's organizations; staff also see those of no organization (system, deleted ones,
        refusals across organizations), unless through a token limited to some organizations. Nobody changes them."""
        if action != VIEW:
            return self.none()
        if user.is_staff and token_organizations(user) is None:
            return self
        return super().for_user(user, action)


class AuditEvent(models.Model):
    """Who did what to which object, when, from which request, and how it ended. Never holds a secret."""

    class Source(models.TextChoices):
        UI = "ui"
        API = "api"
        ADMIN = "admin"
        JOB = "job"
        CRON = "cron"

    class Outcome(models.TextChoices):
        OK = "ok"
        FAILED = "failed"
        REFUSED = "refused"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_name = models.CharField(max_length=150, help_text="The user's name then, or the system part that acted.")
    source = models.CharField(max_length=5, choices=Source.choices)
    action = models.CharField(max_length=60, db_index=True)
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    object_type = models.CharField(max_length=40, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    client_request_id = models.CharField(
        max_length=64, blank=True, help_text="The X-Request-ID the client sent, if any (the request id is always ours)."
    )
    outcome = models.CharField(max_length=7, choices=Outcome.choices, default=Outcome.OK)
    detail = models.TextField(blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object")]

    def __str__(self):
        return (
            f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.object_repr} ({self.outcome})"
        )


class ApiTokenQuerySet(models.QuerySet):
    def for_user(self, user, action=VIEW):
        """A person's own tokens, to see and to revoke (support revoke anyone's in the admin)."""
        if action not in (VIEW, CHANGE):
            raise ValueError(f"Unknown action {action!r} for API tokens: view or change.")
        return self.filter(user=user)


class ApiToken(models.Model):
    """A personal API token. It acts as its user, with the user's organizations and roles as they are at each
    request, within its scope (read-only, named organizations). Only a SHA-256 hash of the token is kept: the token
    itself is shown once, when it is made."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What it is for, e.g. the CI job that uses it.")
    prefix = models.CharField(
        max_length=12, help_text="The token's first characters, to recognize it (not enough to use it)."
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    form_key = models.CharField(
        max_length=32,
        blank=True,
        help_text="The key of the form that made it, so that sending that form again makes no second token.",
    )
    read_only = models.BooleanField(
        default=False, help_text="It may only read (GET): every request that would change something is refused."
    )
    organizations = models.ManyToManyField(
        Organization,
        blank=True,
        related_name="+",
        help_text="The only organizations it may reach (among its user's); none named: all of its user's.",
    )

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "form_key"], condition=~Q(form_key=""), name="one_token_per_form")
        ]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"


class PendingVaultWrite(models.Model):
    """A Vault write made while a request waits (a cluster's credentials, at registration), recorded before it is made:
    if the request gives up (Vault too slow) the write may still land later, and the sweep destroys what no
    registration owns (services/credentials/pending_writes.py). Removed once the registration is saved, or once settled."""

    path = models.CharField(max_length=500, help_text="The Vault path (under VAULT_PREFIX) about to be written.")
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.SET_NULL, related_name="pending_vault_writes"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    destroyed_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the sweep last destroyed the path (it may still land again: kept a while).",
    )

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return self.path
