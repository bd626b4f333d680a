from django.shortcuts import render
from django.utils import timezone

from ..services import access, zone_gc


def billing(request):
    """This month's zone charges, savings and scheduled deletions, for the user's organizations (staff: all)."""
    overview = zone_gc.billing_overview(access.organizations_for(request.user), timezone.now())
    return render(request, "provisioning/billing.html", {"overview": overview})
