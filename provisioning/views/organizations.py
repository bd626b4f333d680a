"""Organization pages: home, an organization, its members and its zone."""

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from provisioning import scoping
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
from ..models import (
    CHANGE,
    MANAGE_MEMBERS,
    OFFBOARD,
    Certificate,
    Cluster,
    Membership,
    Operation,
    can_create_organizations,
    past_renewal_point,
)

HOME_ORGANIZATIONS = 25


def home(request):
    """Health at a glance of the first organizations (the list page has them all), what needs attention, and
    recent operations."""
    now = timezone.now()
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
        "clusters": Cluster.objects.for_user(request.user)
        .filter(Q(state=Cluster.State.ERROR) | externaldns_health.FAILING)
        .select_related("organization")[:10],
        "operations": Operation.objects.for_user(request.user)
        .filter(state=Operation.State.FAILED, finished_at__gte=now - timedelta(days=1))
        .select_related("organization", "cluster", "certificate")[:10],
        "certificates": Certificate.objects.for_user(request.user)
        .filter(expiring | Q(state=Certificate.State.ERROR))
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
        "operations": Operation.objects.for_user(request.user).select_related("organization", "cluster")[:10],
        "can_create_organizations": can_create_organizations(request.user),
    }
    return render(request, "provisioning/home.html", context)


def organization_create(request):
    scoping.require_organization_creation(request)
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
    org = scoping.organization(request, org)
    zone = zones.live_zone(org)
    context = {
        "org": org,
        "zone": zone,
        "gc": zone_gc.zone_status(org, timezone.now()) if zone else None,
        "clusters": org.clusters.live(),
        "operations": org.operations.select_related("cluster")[:10],
        "can_write": org.allows(request.user, CHANGE),
        "key_age_limit": settings.ORGDNS_MAX_KEY_AGE_DAYS,
        "can_offboard": org.allows(request.user, OFFBOARD),
    }
    return render(request, "provisioning/organization_detail.html", context)


def organization_offboard(request, org):
    """Delete the organization: typed confirmation, then the offboarding operation's page."""
    org = scoping.organization(request, org, OFFBOARD)
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
    org = scoping.organization(request, org)
    can_manage = org.allows(request.user, MANAGE_MEMBERS)
    form = MemberForm(request.POST or None)
    if request.method == "POST":
        scoping.require(request, org, MANAGE_MEMBERS)
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
    org = scoping.organization(request, org, MANAGE_MEMBERS)
    try:
        membership = organizations.remove_member(org, pk)
    except Membership.DoesNotExist:
        raise Http404("No membership matches the given query.") from None
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, f"{membership.user.username} no longer belongs to {org.name}.")
    return redirect("members", org.name)


@require_POST
def rotate_key(request, org):
    org = scoping.organization(request, org, CHANGE)
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
    org = scoping.organization(request, org)
    zone = zones.live_zone(org)
    return render(request, "provisioning/zone_detail.html", {"org": org, "zone": zone})


def zone_records(request, org):
    """One page of the zone's records read from Route53 (loaded into the zone page by htmx): the first, or the one
    starting at ?name=&type=(&identifier=) that the previous page links to; ?from= is its first row's number."""
    org = scoping.organization(request, org)
    zone = zones.active_zone(org)
    if zone is None:
        raise Http404(f"{org.name} has no zone in Route53 (yet).")
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
