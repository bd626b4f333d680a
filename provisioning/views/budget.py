from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from ..services import organizations, route53_budget


@login_required
def route53_budget_page(request):
    """Staff: per AWS account, its Route53 rate as the ExternalDNS fleet (modelled) and orgdns (measured) spend it, and
    its quotas."""
    organizations.require_staff(request.user, "the Route53 budget")
    context = {"accounts": route53_budget.account_budgets(), "threshold": settings.ORGDNS_BUDGET_ATTENTION}
    return render(request, "provisioning/route53_budget.html", context)
