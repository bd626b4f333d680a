"""/metrics for Prometheus: a bearer token (ORGDNS_METRICS_TOKEN) or an allowed network, never a user's session."""

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from provisioning.services.metrics import export as metrics_export


@login_not_required
@require_GET
@never_cache
def metrics(request):
    if not metrics_export.scrape_allowed(request.headers.get("Authorization", ""), request.META.get("REMOTE_ADDR", "")):
        if settings.ORGDNS_METRICS_TOKEN:
            response = HttpResponse("A bearer token is needed to scrape.\n", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = 'Bearer realm="orgdns metrics"'
            return response
        return HttpResponse("Scraping is not allowed from here.\n", status=403, content_type="text/plain")
    body, content_type = metrics_export.exposition(request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)
