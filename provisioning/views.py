from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from . import list_views
from .forms import MemberForm, OrganizationForm, RegisterClusterForm
from .clients.errors import ProviderError
from .models import Certificate, Cluster, HostedZone, Operation
from .services import clusters, organizations, zone_gc, zones

HTMX_STOP_POLLING = 286
HOME_ORGANIZATIONS = 25
EXPIRING_SOON = timedelta(days=30)
RECORDS_PER_PAGE = 100


@login_required
def home(request):
    """Health at a glance of the first organizations (the list page has them all), what needs attention, and
    recent operations."""
    now = timezone.now()
    visible = organizations.organizations_for(request.user)
    expiring = Q(not_after__lte=now + EXPIRING_SOON) & ~Q(state__in=[Certificate.State.DELETED, Certificate.State.DELETING])
    rows = list_views.organization_rows(request.user).annotate(
        expiring=list_views.count_per_organization(Certificate, expiring)
    )
    shown = list(rows[:HOME_ORGANIZATIONS])
    gc = {entry.zone.organization_id: entry for entry in zone_gc.plan(now, organizations=shown)}
    for org in shown:
        org.zone = org.live_zones[0] if org.live_zones else None
        org.gc = gc.get(org.pk)
    attention = {
        "clusters": Cluster.objects.filter(organization__in=visible, state=Cluster.State.ERROR).select_related("organization")[:10],
        "operations": Operation.objects.filter(
            organization__in=visible, state=Operation.State.FAILED, finished_at__gte=now - timedelta(days=1)
        ).select_related("organization", "cluster", "certificate")[:10],
        "certificates": Certificate.objects.filter(expiring | Q(state=Certificate.State.ERROR), organization__in=visible)
        .select_related("organization")
        .order_by("not_after")[:10],
    }
    context = {
        "organizations": shown,
        "organization_count": rows.count(),
        "attention": attention,
        "needs_attention": any(attention.values()),
        "operations": Operation.objects.filter(organization__in=visible).select_related("organization", "cluster")[:10],
    }
    return render(request, "provisioning/home.html", context)


@login_required
def organization_create(request):
    if not request.user.is_staff:
        raise PermissionDenied
    form = OrganizationForm(request.POST or None)
    if form.is_valid():
        try:
            org = organizations.create_organization(form.cleaned_data["name"], owner=request.user)
        except ValidationError as exc:
            form.add_error("name", exc)
        else:
            messages.success(request, f"Organization {org.name} created.")
            return redirect("organization", org.name)
    return render(request, "provisioning/organization_form.html", {"form": form})


@login_required
def organization_detail(request, org):
    org = organizations.get_org_for_user(request.user, org)
    zone = org.zones.exclude(state=HostedZone.State.DELETED).first()
    context = {
        "org": org,
        "zone": zone,
        "gc": zone_gc.zone_status(org, timezone.now()) if zone else None,
        "clusters": org.clusters.exclude(state=Cluster.State.DEREGISTERED),
        "operations": org.operations.select_related("cluster")[:10],
        "can_write": organizations.can_write(request.user, org),
    }
    return render(request, "provisioning/organization_detail.html", context)


@login_required
def cluster_register(request, org):
    org = organizations.get_org_for_user(request.user, org)
    if not organizations.can_write(request.user, org):
        raise PermissionDenied
    form = RegisterClusterForm(request.POST or None, request.FILES or None)
    if form.is_valid():
        try:
            cluster, _ = clusters.register_cluster(org, form.cleaned_data["name"], form.cleaned_data["connection"], request.user)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect("cluster", org.name, cluster.pk)
    return render(request, "provisioning/cluster_form.html", {"org": org, "form": form})


@login_required
def cluster_detail(request, org, pk):
    cluster = organizations.get_cluster_for_user(request.user, org, pk)
    context = {
        "org": cluster.organization,
        "cluster": cluster,
        "operation": cluster.operations.first(),
        "operations": cluster.operations.select_related("organization")[:10],
        "can_write": organizations.can_write(request.user, cluster.organization),
    }
    return render(request, "provisioning/cluster_detail.html", context)


@login_required
@require_POST
def cluster_deregister(request, org, pk):
    return _cluster_action(
        request, org, pk, clusters.deregister_cluster, "Deregistering {}: ExternalDNS and its records are being removed."
    )


@login_required
@require_POST
def cluster_reprovision(request, org, pk):
    return _cluster_action(request, org, pk, clusters.retry_registration, "Provisioning {} again.")


def _cluster_action(request, org, pk, action, success):
    cluster = organizations.get_cluster_for_user(request.user, org, pk)
    if not organizations.can_write(request.user, cluster.organization):
        raise PermissionDenied
    try:
        action(cluster, request.user)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, success.format(cluster.name))
    return redirect("cluster", cluster.organization.name, cluster.pk)


@login_required
def operation_detail(request, pk):
    operation = organizations.get_operation_for_user(request.user, pk)
    context = {
        "operation": operation,
        "can_retry": operation.state == Operation.State.FAILED
        and operation.kind in clusters.RETRIES
        and organizations.can_write(request.user, operation.organization),
    }
    return render(request, "provisioning/operation_detail.html", context)


@login_required
def operation_status(request, pk):
    """The live status fragment. When the operation has finished: 286 stops htmx polling, and the page
    reloads so that everything on it (states, actions) shows the outcome."""
    operation = organizations.get_operation_for_user(request.user, pk)
    response = render(request, "provisioning/operation_detail.html#status", {"operation": operation})
    if operation.finished:
        response.status_code = HTMX_STOP_POLLING
        response["HX-Refresh"] = "true"
    return response


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


@login_required
def members(request, org):
    org = organizations.get_org_for_user(request.user, org)
    can_manage = organizations.can_manage_members(request.user, org)
    form = MemberForm(request.POST or None)
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied
        if form.is_valid():
            try:
                membership = organizations.set_member(org, form.cleaned_data["username"], form.cleaned_data["role"])
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, f"{membership.user.username} is now {membership.role} of {org.name}.")
                return redirect("members", org.name)
    context = {
        "org": org,
        "memberships": org.memberships.select_related("user").order_by("user__username"),
        "form": form,
        "can_manage": can_manage,
    }
    return render(request, "provisioning/members.html", context)


@login_required
@require_POST
def member_remove(request, org, pk):
    org = organizations.get_org_for_user(request.user, org)
    if not organizations.can_manage_members(request.user, org):
        raise PermissionDenied
    try:
        membership = organizations.remove_member(org, pk)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, f"{membership.user.username} no longer belongs to {org.name}.")
    return redirect("members", org.name)


@login_required
def zone_detail(request, org):
    org = organizations.get_org_for_user(request.user, org)
    zone = org.zones.exclude(state=HostedZone.State.DELETED).first()
    return render(request, "provisioning/zone_detail.html", {"org": org, "zone": zone})


@login_required
def zone_records(request, org):
    """The zone's records read from Route53, a page at a time (loaded into the zone page by htmx)."""
    org = organizations.get_org_for_user(request.user, org)
    zone = get_object_or_404(org.zones, state=HostedZone.State.ACTIVE)
    try:
        records = zones.zone_records(zone)
    except ProviderError as exc:
        return render(request, "provisioning/zone_detail.html#records", {"org": org, "error": exc.message})
    page = Paginator(records, RECORDS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "provisioning/zone_detail.html#records", {"org": org, "page": page})


@login_required
@require_POST
def operation_retry(request, pk):
    operation = organizations.get_operation_for_user(request.user, pk)
    if not organizations.can_write(request.user, operation.organization):
        raise PermissionDenied
    try:
        retried = clusters.retry_operation(operation, request.user)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
        return redirect("operation", operation.pk)
    return redirect("operation", retried.pk)
