from django.conf import settings
from django.shortcuts import render

from provisioning import scoping
from provisioning.services.aws_accounts import route53_budget


def route53_budget_page(request):
    """Staff: per AWS account, its Route53 rate as the ExternalDNS fleet (modelled) and orgdns (measured) spend it, and
    its quotas."""
    scoping.require_staff(request, "the Route53 budget")
    context = {"accounts": route53_budget.account_budgets(), "threshold": settings.ORGDNS_BUDGET_ATTENTION}
    return render(request, "provisioning/route53_budget.html", context)
