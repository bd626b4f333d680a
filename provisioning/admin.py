from django.contrib import admin

from .models import Cluster, HostedZone, Membership, Operation, Organization


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
        "access_key_created_at", "created_at", "deleted_at",
    ]


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
    list_select_related = ["organization", "cluster"]
    readonly_fields = [f.name for f in Operation._meta.fields]
