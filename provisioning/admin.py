from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from .models import (
    AuditEvent, Certificate, CertificateInstallation, Cluster, HostedZone, Membership, Operation, Organization, ZoneCharge,
)
from .services import certificates, zone_gc
from .services.zone_claims import Outcome


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role"]
    list_filter = ["role"]
    search_fields = ["user__username", "organization__name"]
    list_select_related = ["user", "organization"]


@admin.register(HostedZone)
class HostedZoneAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "state", "zone_id", "delegated", "iam_user_name", "access_key_id", "aws_created_at"]
    list_filter = ["state", "delegated"]
    search_fields = ["name", "zone_id", "organization__name", "iam_user_name", "access_key_id"]
    list_select_related = ["organization"]
    readonly_fields = [
        "caller_reference", "zone_id", "name_servers", "aws_created_at", "iam_user_name", "access_key_id",
        "access_key_created_at", "created_at", "deleted_at", "teardown_started_at", "route53_deleted_at",
    ]
    actions = ["delete_if_unused"]

    @admin.action(description="Delete now if unused (or resume a stopped teardown)")
    def delete_if_unused(self, request, queryset):
        for zone in queryset.select_related("organization"):
            outcome, _ = zone_gc.delete_now(zone, request.user)
            if outcome == Outcome.QUEUED:
                self.message_user(request, f"Zone {zone}: teardown queued.")
            elif outcome == Outcome.IN_USE:
                self.message_user(request, f"Zone {zone} is in use by a cluster of {zone.organization}: kept.", messages.WARNING)
            else:
                self.message_user(
                    request, f"Zone {zone} is not active, or its teardown is already queued or running.", messages.WARNING
                )


@admin.register(ZoneCharge)
class ZoneChargeAdmin(admin.ModelAdmin):
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
class ClusterAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "state", "api_server", "owner_id", "updated_at"]
    list_filter = ["state"]
    search_fields = ["name", "organization__name", "api_server", "owner_id"]
    list_select_related = ["organization"]
    readonly_fields = ["owner_id", "created_at", "updated_at", "registered_by"]


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "organization", "cluster", "state", "step", "progress", "created_at", "finished_at"]
    list_filter = ["kind", "state"]
    search_fields = ["id", "organization__name", "cluster__name", "error"]
    list_select_related = ["organization", "cluster__organization"]
    readonly_fields = [f.name for f in Operation._meta.fields]


class CertificateInstallationInline(admin.TabularInline):
    model = CertificateInstallation
    extra = 0
    can_delete = False
    readonly_fields = ["cluster", "namespace", "secret_name", "state", "message", "installed_serial", "installed_at"]
    fields = readonly_fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Certificate)
class CertificateAdmin(admin.ModelAdmin):
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

    @admin.action(description="Renew now (new key and certificate, re-installed everywhere)")
    def renew(self, request, queryset):
        for certificate in queryset:
            try:
                certificates.renew_certificate(certificate, request.user)
            except ValidationError as exc:
                self.message_user(request, exc.messages[0], messages.WARNING)
            else:
                self.message_user(request, f"Renewing {certificate}.")


@admin.register(CertificateInstallation)
class CertificateInstallationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "certificate", "state", "installed_serial", "installed_at"]
    list_filter = ["state"]
    search_fields = ["cluster__name", "namespace", "secret_name", "certificate__serial"]
    list_select_related = ["cluster", "certificate"]
    readonly_fields = [f.name for f in CertificateInstallation._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor_name", "source", "action", "object_type", "object_repr", "organization", "outcome", "request_id"]
    list_filter = ["source", "outcome", "object_type"]
    search_fields = ["actor_name", "action", "object_repr", "request_id", "organization__name", "detail"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
