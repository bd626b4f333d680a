from typing import TYPE_CHECKING, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from django_rq.admin import QueueAdmin
from django_rq.models import Dashboard

from provisioning.services import audit
from provisioning.services.aws_accounts import assignment as accounts
from provisioning.services.certificates import actions as certificates
from provisioning.services.clusters import actions as clusters
from provisioning.services.clusters.jobs import DeregisterCluster, RegisterCluster
from provisioning.services.credentials import actions as key_rotation
from provisioning.services.operations import running as operations
from provisioning.services.organizations import actions as organizations
from provisioning.services.people import api_tokens
from provisioning.services.zones import gc as zone_gc
from provisioning.services.zones.claims import Outcome

from .models import (
    ApiToken,
    AuditEvent,
    Certificate,
    CertificateInstallation,
    Cluster,
    ExternalIdentity,
    HostedZone,
    Membership,
    Operation,
    Organization,
    ZoneCharge,
    acts_in_any_organization,
)

# Fields whose values no audit entry shows (it says they changed).
SECRET_FIELDS = {"token_hash", "password"}


def audited_values(obj):
    """obj's fields as an audit entry shows them: text, cut short; secrets as "(secret)"; not the timestamps that
    change by themselves."""
    values = {}
    for field in obj._meta.concrete_fields:
        if getattr(field, "auto_now", False):
            continue
        value = getattr(obj, field.name)
        shown = "—" if value in (None, "") else str(value)
        values[field.name] = "(secret)" if field.name in SECRET_FIELDS else shown[:200]
    return values


def described_changes(before, after):
    """field: old → new, for each field whose shown value differs (a secret's never does)."""
    return "; ".join(f"{name}: {before[name]} → {value}" for name, value in after.items() if before.get(name) != value)


class AuditedAdmin(admin.ModelAdmin):
    """Every change made in the admin also goes to the audit trail, with old → new values (actions through services
    audit themselves)."""

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:  # as it was before this request changes it
            request.audit_before = {(type(obj), obj.pk): audited_values(obj)}
        return obj

    def log_addition(self, request, obj, message):
        values = audited_values(obj)
        audit.record("admin.add", obj, detail="; ".join(f"{name}: {value}" for name, value in values.items()))
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        before = getattr(request, "audit_before", {}).get((type(obj), obj.pk))
        detail = described_changes(before, audited_values(obj)) if before else ""
        audit.record("admin.change", obj, detail=detail or str(message))
        return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        for obj in queryset:
            audit.record("admin.delete", obj)
        return super().log_deletions(request, queryset)

    def has_delete_permission(self, request, obj=None):
        """Rows stand for things in AWS, Vault and clusters: they go through jobs (deregister, GC), never a delete."""
        return False

    def has_act_permission(self, request):
        """Actions that change remote things (the job path): support staff only, whatever their model permissions."""
        return acts_in_any_organization(request.user)

    def run_action(self, request, queryset, action, done):
        """Call a service action on each selected object; report each outcome."""
        for obj in queryset:
            try:
                action(obj, request.user)
            except ValidationError as exc:
                self.message_user(request, f"{obj}: {exc.messages[0]}", messages.WARNING)
            else:
                self.message_user(request, f"{obj}: {done}")


class MembershipForm(forms.ModelForm):
    """A membership's user and organization are what it is: only its role changes (a new one is added instead)."""

    class Meta:
        model = Membership
        fields = ["user", "organization", "role"]

    checked_by_formset = False  # in an inline, the formset checks all its rows' changes together

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("user", "organization"):
            if self.instance.pk and name in self.fields:
                self.fields[name].disabled = True

    def clean(self):
        super().clean()
        data = self.cleaned_data
        organization, user, role = data.get("organization"), data.get("user"), data.get("role")
        if not self.checked_by_formset and organization and user and role:
            check_members_may_change(organization)
            organizations.check_owners_after(organization, {user.pk: role})
        return data


class MembershipInlineForm(MembershipForm):
    checked_by_formset = True


class MembershipFormSet(forms.BaseInlineFormSet):
    """An organization's members, changed together: it keeps an owner once all the changes are made."""

    def clean(self):
        super().clean()
        if any(self.errors) or self.instance.pk is None:
            return
        roles = {}
        for form in self.forms:
            removed = form in self.deleted_forms
            user = form.instance.user if form.instance.pk else form.cleaned_data.get("user")
            if user is not None and (removed or form.has_changed()):
                roles[user.pk] = None if removed else form.cleaned_data["role"]
        if roles:
            check_members_may_change(self.instance)
            organizations.check_owners_after(self.instance, roles)


def check_members_may_change(organization):
    if not organization.active:
        raise ValidationError(f"{organization} is {organization.state}: its members stay as they are.")


if TYPE_CHECKING:  # what the mixin below reaches through super(): a ModelAdmin's or an InlineModelAdmin's permissions
    PermissionsBase = admin.ModelAdmin
else:
    PermissionsBase = object


class MembershipWrites(PermissionsBase):
    """Adding, changing and removing members in the admin: support staff only (the permission act_in_any_organization
    besides the model's), through the members page's services (the last-owner rule, the audit trail)."""

    def may_write(self, request):
        return acts_in_any_organization(request.user)

    def has_add_permission(self, request, *args):
        return super().has_add_permission(request, *args) and self.may_write(request)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self.may_write(request)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self.may_write(request)


def save_member(membership):
    check_members_may_change(membership.organization)
    return organizations.set_member(membership.organization, membership.user.get_username(), membership.role)


def remove_member(membership):
    check_members_may_change(membership.organization)
    organizations.remove_member(membership.organization, membership.pk)


class MembershipInline(MembershipWrites, admin.TabularInline):
    model = Membership
    form = MembershipInlineForm
    formset = MembershipFormSet
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["source"]  # a directory membership is set again at its person's next sign-in


class OrganizationAdminForm(forms.ModelForm):
    class Meta:
        model = Organization
        fields = ["name", "aws_account"]

    aws_account = forms.ChoiceField(
        label="AWS account",
        required=False,
        help_text="Where its next zone and IAM user are created. Empty: placed by orgdns, in the account with the most "
        "headroom. It can change only while the organization has no zone (docs/aws-accounts.md).",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["aws_account"]).choices = [
            ("", "—"),
            *((a.name, a.name) for a in accounts.configured()),
        ]

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if self.instance.pk is None and data.get("name") and not self.errors:
            organizations.check_zone_name_is_free(Organization(name=data["name"]))
        if self.instance.pk is not None and "aws_account" in self.changed_data:
            accounts.check_movable(self.instance)
        return data


@admin.register(Organization)
class OrganizationAdmin(AuditedAdmin):
    """Deleting one is offboarding it: its page's *Delete organization* (or `manage.py offboard_organization`)."""

    list_display = ["name", "state", "aws_account", "created_at", "offboarded_at"]
    list_filter = ["state", "aws_account"]
    search_fields = ["name"]
    inlines = [MembershipInline]
    form = OrganizationAdminForm

    def get_readonly_fields(self, request, obj=None):
        # The zone and IAM user are named after it; its state changes by offboarding only.
        return ["name", "state", "created_at", "offboarded_at"] if obj else ["created_at"]

    def save_formset(self, request, form, formset, change):
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        # New owners first, removals last: the organization keeps an owner at every step.
        memberships = formset.save(commit=False)
        for membership in sorted(memberships, key=lambda m: m.role != Membership.Role.OWNER):
            membership.organization = form.instance
            save_member(membership)
        for membership in formset.deleted_objects:
            remove_member(membership)
        return None


@admin.register(Membership)
class MembershipAdmin(MembershipWrites, AuditedAdmin):
    list_display = ["user", "organization", "role", "source"]
    list_filter = ["role", "source"]
    readonly_fields = ["source"]  # a directory membership is set again at its person's next sign-in
    search_fields = ["user__username", "organization__name"]
    list_select_related = ["user", "organization"]
    form = MembershipForm

    def has_delete_permission(self, request, obj=None):
        # Memberships are only rows: the model's delete permission, as for any model (AuditedAdmin refuses it).
        return admin.ModelAdmin.has_delete_permission(self, request, obj) and self.may_write(request)

    def save_model(self, request, obj, form, change):
        obj.pk = save_member(obj).pk

    def get_deleted_objects(self, objs, request):
        """Removing an organization's last owner is refused as Django refuses deleting a protected row: listed."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        removed: dict[Organization, dict[int, str | None]] = {}
        for membership in objs:
            removed.setdefault(membership.organization, {})[membership.user_id] = None
        for organization, roles in removed.items():
            try:
                check_members_may_change(organization)
                organizations.check_owners_after(organization, roles)
            except ValidationError as exc:
                protected = [*protected, exc.messages[0]]
        return deleted, model_count, perms_needed, protected

    def delete_model(self, request, obj):
        remove_member(obj)

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("organization", "user"):
            remove_member(membership)


@admin.register(ExternalIdentity)
class ExternalIdentityAdmin(AuditedAdmin):
    """Who each user is at the identity provider. Deleting one makes the person's next sign-in a new user."""

    list_display = ["user", "issuer", "subject", "last_login_at"]
    search_fields = ["user__username", "subject", "issuer"]
    list_select_related = ["user"]
    readonly_fields = ["user", "issuer", "subject", "created_at", "last_login_at", "groups"]

    def has_add_permission(self, request):
        return False


@admin.register(HostedZone)
class HostedZoneAdmin(AuditedAdmin):
    list_display = [
        "name",
        "organization",
        "state",
        "aws_account",
        "zone_id",
        "delegated",
        "iam_user_name",
        "access_key_id",
        "aws_created_at",
    ]
    list_filter = ["state", "delegated", "aws_account"]
    search_fields = ["name", "zone_id", "organization__name", "iam_user_name", "access_key_id"]
    list_select_related = ["organization"]
    readonly_fields = [
        "organization",
        "name",
        "state",
        "aws_account",
        "delegated",
        "caller_reference",
        "zone_id",
        "name_servers",
        "aws_created_at",
        "iam_user_name",
        "access_key_id",
        "access_key_created_at",
        "previous_access_key_id",
        "rotations_requested",
        "rotations_answered",
        "created_at",
        "deleted_at",
        "teardown_started_at",
        "route53_deleted_at",
    ]
    actions = ["gc_dry_run", "delete_if_unused", "rotate_access_key"]

    @admin.action(description="GC dry-run: what the garbage collector would do now", permissions=["view"])
    def gc_dry_run(self, request, queryset):
        selected = set(queryset.values_list("pk", flat=True))
        organizations = queryset.values("organization")
        for entry in zone_gc.plan(timezone.now(), organizations=organizations):
            if entry.zone.pk in selected:
                when = f" (from {entry.not_before:%Y-%m-%d %H:%M} UTC)" if entry.not_before else ""
                self.message_user(request, f"{entry.zone}: {entry.action}{when}: {entry.reason}")

    @admin.action(description="Delete now if unused (or resume a stopped teardown)", permissions=["act"])
    def delete_if_unused(self, request, queryset):
        for zone in queryset.select_related("organization"):
            outcome, _ = zone_gc.delete_now(zone, request.user)
            if outcome == Outcome.QUEUED:
                self.message_user(request, f"Zone {zone}: teardown queued.")
            elif outcome == Outcome.IN_USE:
                self.message_user(
                    request, f"Zone {zone} is in use by a cluster of {zone.organization}: kept.", messages.WARNING
                )
            else:
                self.message_user(
                    request,
                    f"Zone {zone} is not active, or its teardown is already queued or running.",
                    messages.WARNING,
                )

    @admin.action(
        description="Rotate the access key (the new key runs in every cluster before the old one goes)",
        permissions=["act"],
    )
    def rotate_access_key(self, request, queryset):
        self.run_action(
            request,
            queryset.select_related("organization"),
            lambda zone, user: key_rotation.rotate_now(zone.organization, user),
            "key rotation queued",
        )


@admin.register(ZoneCharge)
class ZoneChargeAdmin(AuditedAdmin):
    """The cost ledger, written by the GC and the teardown job."""

    list_display = ["zone", "organization", "month", "kind", "recorded_at"]
    list_filter = ["kind", "month"]
    search_fields = ["zone__name", "zone__organization__name"]
    list_select_related = ["zone__organization"]
    date_hierarchy = "month"
    readonly_fields = [f.name for f in ZoneCharge._meta.fields]

    def has_add_permission(self, request):
        return False

    @admin.display(ordering="zone__organization__name")
    def organization(self, charge):
        return charge.zone.organization


@admin.register(Cluster)
class ClusterAdmin(AuditedAdmin):
    list_display = ["name", "organization", "state", "externaldns_health", "api_server", "owner_id", "updated_at"]
    list_filter = ["state", "externaldns_health"]
    search_fields = ["name", "organization__name", "api_server", "owner_id"]
    list_select_related = ["organization"]
    # Every field: who owns it, where it is, which cluster it is (kube_system_uid: blanking it would let another
    # organization register the same cluster), the flags ExternalDNS runs with, the state its jobs keep.
    readonly_fields = [f.name for f in Cluster._meta.fields]
    actions = ["reprovision", "deregister", "forget"]

    def has_add_permission(self, request):
        return False  # clusters are registered from the organization page, which checks and stores the credentials

    @admin.action(description="Re-run provisioning (zone, credentials, ExternalDNS)", permissions=["act"])
    def reprovision(self, request, queryset):
        self.run_action(
            request, queryset.select_related("organization"), RegisterCluster.enqueue_again, "provisioning queued"
        )

    @admin.action(description="Deregister (remove ExternalDNS and the cluster's records)", permissions=["act"])
    def deregister(self, request, queryset):
        self.run_action(
            request, queryset.select_related("organization"), DeregisterCluster.enqueue, "deregistration queued"
        )

    @admin.action(
        description="Forget (the cluster is gone for good: deregister without reaching it)", permissions=["act"]
    )
    def forget(self, request, queryset):
        self.run_action(
            request,
            queryset.select_related("organization"),
            clusters.forget_cluster,
            "forgotten; deregistration queued",
        )


@admin.register(Operation)
class OperationAdmin(AuditedAdmin):
    list_display = ["id", "kind", "organization", "cluster", "state", "step", "progress", "created_at", "finished_at"]
    list_filter = ["kind", "state"]
    search_fields = ["id", "organization__name", "cluster__name", "error"]
    list_select_related = ["organization", "cluster__organization"]
    readonly_fields = [f.name for f in Operation._meta.fields]
    actions = ["retry"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Retry (failed cluster operations)", permissions=["act"])
    def retry(self, request, queryset):
        self.run_action(
            request, queryset.select_related("organization", "cluster"), operations.retry_operation, "retry queued"
        )


class CertificateInstallationInline(admin.TabularInline):
    model = CertificateInstallation
    extra = 0
    can_delete = False
    readonly_fields = ["cluster", "namespace", "secret_name", "state", "message", "installed_serial", "installed_at"]
    fields = tuple(readonly_fields)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Certificate)
class CertificateAdmin(AuditedAdmin):
    """Metadata only: the key and the PEMs are in Vault. Changes go through jobs (the renew action)."""

    list_display = ["__str__", "organization", "state", "serial", "not_after", "updated_at"]
    list_filter = ["state"]
    search_fields = ["dns_names", "serial", "fingerprint_sha256", "organization__name"]
    list_select_related = ["organization"]
    readonly_fields = [f.name for f in Certificate._meta.fields]
    inlines = [CertificateInstallationInline]
    actions = ["renew"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Renew now (new key and certificate, re-installed everywhere)", permissions=["act"])
    def renew(self, request, queryset):
        self.run_action(
            request, queryset.select_related("organization"), certificates.renew_certificate, "renewal queued"
        )


@admin.register(CertificateInstallation)
class CertificateInstallationAdmin(AuditedAdmin):
    list_display = ["__str__", "certificate", "state", "installed_serial", "installed_at"]
    list_filter = ["state"]
    search_fields = ["cluster__name", "namespace", "secret_name", "certificate__serial"]
    list_select_related = ["cluster", "certificate"]
    readonly_fields = [f.name for f in CertificateInstallation._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdmin):
    """Users make their tokens on their API tokens page (the token is shown to them only); support can revoke one."""

    list_display = ["__str__", "user", "read_only", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at", "read_only"]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user"]
    readonly_fields = [
        "user",
        "name",
        "prefix",
        "read_only",
        "organizations",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    exclude = ["token_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke (the token stops working at once)", permissions=["act"])
    def revoke(self, request, queryset):
        self.run_action(request, queryset.select_related("user"), api_tokens.revoke_by_staff, "revoked")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "actor_name",
        "source",
        "action",
        "object_type",
        "object_repr",
        "organization",
        "outcome",
        "request_id",
    ]
    list_filter = ["source", "outcome", "object_type"]
    search_fields = [
        "actor_name",
        "action",
        "object_repr",
        "request_id",
        "client_request_id",
        "organization__name",
        "detail",
    ]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class SuperuserQueueAdmin(QueueAdmin):
    """The django-rq dashboard (queues, jobs, workers): superusers only, as job records are not tenant-scoped."""

    def has_module_permission(self, request):
        return request.user.is_superuser

    def get_urls(self):
        urls = super().get_urls()
        for url in urls:
            url.callback = superuser_only(url.callback)
        return urls


def superuser_only(view):
    def gated(request, *args, **kwargs):
        if not request.user.is_superuser:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return gated


admin.site.register(Dashboard, SuperuserQueueAdmin)
