"""Organization pages: home, an organization, its members and its zone."""

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from provisioning.services import access
from provisioning.services.aws_accounts import route53_budget
from provisioning.services.clusters import externaldns_health
from provisioning.services.credentials import actions as key_rotation
from provisioning.services.metrics import readiness
from provisioning.services.organizations import actions as organizations
from provisioning.services.organizations import offboarding
from provisioning.services.zones import gc as zone_gc
from provisioning.services.zones import records as zones

from ..clients.errors import ProviderError
from ..forms import MemberForm, OffboardForm, OrganizationForm
from ..models import Certificate, Cluster, Operation, past_renewal_point

HOME_ORGANIZATIONS = 25


def home(request):
    """Health at a glance of the first organizations (the list page has them all), what needs attention, and
    recent operations."""
    now = timezone.now()
    visible = access.organizations_for(request.user)
    expiring = past_renewal_point(now) & ~Q(state__in=[Certificate.State.DELETED, Certificate.State.DELETING])
    rows = organizations.organization_rows(request.user).annotate(
        expiring=organizations.count_per_organization(Certificate, expiring)
    )
    shown: list[Any] = list(rows[:HOME_ORGANIZATIONS])  # each gets its zone and GC plan below, for the template
    gc = {entry.zone.organization_id: entry for entry in zone_gc.plan(now, organizations=shown)}
    for org in shown:
        org.zone = org.live_zones[0] if org.live_zones else None
        org.gc = gc.get(org.pk)
    attention: dict[str, Any] = {
        "clusters": Cluster.objects.filter(
            Q(state=Cluster.State.ERROR) | externaldns_health.FAILING, organization__in=visible
        ).select_related("organization")[:10],
        "operations": Operation.objects.filter(
            organization__in=visible, state=Operation.State.FAILED, finished_at__gte=now - timedelta(days=1)
        ).select_related("organization", "cluster", "certificate")[:10],
        "certificates": Certificate.objects.filter(
            expiring | Q(state=Certificate.State.ERROR), organization__in=visible
        )
        .select_related("organization")
        .order_by("not_after", "pk")[:10],
    }
    if request.user.is_staff:
        attention["route53"] = route53_budget.accounts_needing_attention()
    context = {
        "organizations": shown,
        "organization_count": rows.count(),
        "attention": attention,
        "needs_attention": any(attention.values()),
        "attention_threshold": settings.ORGDNS_BUDGET_ATTENTION,
        "operations": Operation.objects.filter(organization__in=visible).select_related("organization", "cluster")[:10],
        "can_create_organizations": access.can_create_organizations(request.user),
    }
    return render(request, "provisioning/home.html", context)


def organization_create(request):
    access.require_organization_creation(request.user)
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


def organization_detail(request, org):
    org = access.get_org_for_user(request.user, org)
    zone = zones.live_zone(org)
    context = {
        "org": org,
        "zone": zone,
        "gc": zone_gc.zone_status(org, timezone.now()) if zone else None,
        "clusters": org.clusters.live(),
        "operations": org.operations.select_related("cluster")[:10],
        "can_write": access.can_write(request.user, org),
        "key_age_limit": settings.ORGDNS_MAX_KEY_AGE_DAYS,
        "can_offboard": access.can_offboard(request.user, org),
    }
    return render(request, "provisioning/organization_detail.html", context)


def organization_offboard(request, org):
    """Delete the organization: typed confirmation, then the offboarding operation's page."""
    org = access.get_org_to_offboard(request.user, org, f"{request.method} {request.path}")
    form = OffboardForm(request.POST or None)
    if form.is_valid():
        try:
            operation = offboarding.offboard_organization(org, form.cleaned_data["confirmation"], request.user)
        except ValidationError as exc:
            form.add_error("confirmation", exc)
        else:
            messages.success(request, f"Offboarding {org.name}: everything of it is being removed.")
            return redirect("operation", operation.pk)
    context = {
        "org": org,
        "form": form,
        "running": offboarding.running_offboarding(org),
        "clusters": org.clusters.live().count(),
        "certificates": org.certificates.live().count(),
    }
    return render(request, "provisioning/organization_offboard.html", context)


def members(request, org):
    org = access.get_org_for_user(request.user, org)
    can_manage = access.can_manage_members(request.user, org)
    form = MemberForm(request.POST or None)
    if request.method == "POST":
        access.require_member_management(request.user, org)
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
        "memberships": organizations.memberships_of(org),
        "form": form,
        "can_manage": can_manage,
    }
    return render(request, "provisioning/members.html", context)


@require_POST
def member_remove(request, org, pk):
    org = access.get_org_for_member_management(request.user, org)
    try:
        membership = organizations.remove_member(org, pk)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, f"{membership.user.username} no longer belongs to {org.name}.")
    return redirect("members", org.name)


@require_POST
def rotate_key(request, org):
    org = access.get_writable_org_for_user(request.user, org, "rotate the access key")
    try:
        operation = key_rotation.rotate_now(org, request.user)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
        return redirect("organization", org.name)
    messages.success(
        request, "Key rotation queued: the new key replaces the current one in every cluster before it is deleted."
    )
    return redirect("operation", operation.pk)


def zone_detail(request, org):
    org = access.get_org_for_user(request.user, org)
    zone = zones.live_zone(org)
    return render(request, "provisioning/zone_detail.html", {"org": org, "zone": zone})


def zone_records(request, org):
    """One page of the zone's records read from Route53 (loaded into the zone page by htmx): the first, or the one
    starting at ?name=&type=(&identifier=) that the previous page links to; ?from= is its first row's number."""
    org = access.get_org_for_user(request.user, org)
    zone = zones.get_active_zone(org)
    try:
        start = zones.position(zone, request.GET.get("name"), request.GET.get("type"), request.GET.get("identifier"))
    except ValidationError as exc:
        return render(
            request, "provisioning/zone_detail.html#records", {"org": org, "error": exc.messages[0]}, status=400
        )
    shown_from = request.GET.get("from", "")
    first_row = int(shown_from) if start and shown_from.isdigit() and 0 < len(shown_from) < 10 else 1
    try:
        page = zones.record_page(zone, start)
    except ProviderError as exc:
        return render(request, "provisioning/zone_detail.html#records", {"org": org, "error": exc.message})
    following = page.following and {
        "name": page.following.name,
        "type": page.following.type,
        **({"identifier": page.following.identifier} if page.following.identifier else {}),
        "from": first_row + len(page.records),
    }
    context = {
        "org": org,
        "page": page,
        "first_row": first_row,
        "last_row": first_row + len(page.records) - 1,
        "next_query": following and urlencode(following),
    }
    return render(request, "provisioning/zone_detail.html#records", context)


@login_not_required
def healthz(request):
    """Liveness: the process answers. Nothing else is checked (a load balancer asks /readyz)."""
    return HttpResponse("ok", content_type="text/plain")


@login_not_required
def readyz(request):
    """Readiness: the database and Redis answer; 503 naming what failed otherwise."""
    outcome = readiness.readiness()
    ready = all(result == "ok" for result in outcome.values())
    return JsonResponse({"ready": ready, **outcome}, status=200 if ready else 503)
