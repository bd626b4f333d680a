from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.urls import URLResolver, include, path

from provisioning.api import api
from provisioning.views import sign_in


def public(urls):
    """URLs that LoginRequiredMiddleware lets through because they authenticate on their own: the admin (which sends
    to its own login page) and the API (401 without a token or session)."""
    patterns, app_name, namespace = urls
    _mark_public(patterns)
    return patterns, app_name, namespace


def _mark_public(patterns):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            _mark_public(pattern.url_patterns)
        elif getattr(pattern.callback, "login_required", True):
            login_not_required(pattern.callback)


urlpatterns = [
    path("login/", sign_in.SignInView.as_view(), name="login"),
    path("login/provider/", sign_in.provider_start, name="oidc-login"),
    path("oidc/callback/", sign_in.provider_callback, name="oidc-callback"),
    path("logout/", sign_in.logout_view, name="logout"),
    path("admin/", public(admin.site.urls)),
    path("api/v1/", public(api.urls)),
    path("", include("provisioning.urls")),
]
