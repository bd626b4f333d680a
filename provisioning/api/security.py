"""Who is calling: a personal API token (Authorization: Bearer) or the browser session; and how often they may."""

import threading

from django.conf import settings
from django.core.exceptions import PermissionDenied
from ninja.errors import AuthenticationError, HttpError
from ninja.security.base import AuthBase
from ninja.throttling import BaseThrottle
from ninja.utils import check_csrf

from provisioning.services import audit
from provisioning.services.people import api_tokens

from ..models import ApiToken


class TokenAuth(AuthBase):
    """A personal API token. A bearer token that cannot be used is refused, saying why; it never falls back to the
    session."""

    openapi_type = "http"
    openapi_scheme = "bearer"

    def __call__(self, request):
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            token = api_tokens.authenticate(credentials.strip())
        except api_tokens.InvalidToken as exc:
            request.authentication_problem = str(exc)
            raise AuthenticationError() from None
        request.user = token.user
        audit.act_as(token.user)
        if not api_tokens.may_serve(token, request.method):
            raise PermissionDenied(f"The API token {token.prefix}… is read-only: it cannot change anything.")
        api_tokens.scope_request(token)
        return token


class SessionAuth(AuthBase):
    """The logged-in browser session; state-changing requests need the CSRF token, as on the pages."""

    openapi_type = "apiKey"
    openapi_in = "cookie"
    openapi_name = settings.SESSION_COOKIE_NAME

    def __call__(self, request):
        if not request.user.is_authenticated:
            return None
        if not getattr(request, "_ninja_csrf_exempt", False) and check_csrf(request):
            raise HttpError(403, "CSRF check failed: send the X-CSRFToken header with the csrftoken cookie's value.")
        return request.user


def caller_identity(request):
    """What the rate limit counts requests of: the token, or the session's user."""
    if isinstance(request.auth, ApiToken):
        return f"token:{request.auth.pk}"
    return f"user:{request.user.pk}"


class PerCallerRate(BaseThrottle):
    """ORGDNS_API_RATE requests a second per token (bursts of ORGDNS_API_BURST), counted in Redis so that every web
    process shares the budget. The instance is shared by concurrent requests: the wait is kept per thread."""

    def __init__(self):
        self._last = threading.local()

    def allow_request(self, request):
        self._last.wait = api_tokens.rate_limit_wait(caller_identity(request))
        return self._last.wait == 0

    def wait(self):
        return getattr(self._last, "wait", None)
