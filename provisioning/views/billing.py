from django.shortcuts import render
from django.utils import timezone

from provisioning.services.zones import billing_overview

from ..models import Organization


def billing(request):
    """This month's zone charges, savings and scheduled deletions, for the user's organizations (staff: all)."""
    overview = billing_overview.billing_overview(Organization.objects.for_user(request.user), timezone.now())
    return render(request, "provisioning/billing.html", {"overview": overview})
