import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login

from .models import AuditEvent
from .services import audit, sign_in


class AuditContextMiddleware:
    """Every request gets a fresh request id, under which its actions are audited and which the response carries
    (X-Request-ID); an X-Request-ID the caller sent is recorded beside it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        source = AuditEvent.Source.UI
        if request.path.startswith("/admin/"):
            source = AuditEvent.Source.ADMIN
        elif request.path.startswith("/api/"):
            source = AuditEvent.Source.API
        client_id = audit.client_request_id(request.headers.get("X-Request-ID"))
        with audit.acting(source, actor=request.user, client_request_id=client_id) as context:
            request.request_id = context.request_id
            response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


def login_attempt_username(request, credentials):
    """The name a login attempt is counted under: what was typed, cut to the longest user name (axes stores it)."""
    username = (credentials or {}).get("username") or request.POST.get("username") or ""
    return username[:150]


class SessionMaxAgeMiddleware:
    """A session ends ORGDNS_SESSION_MAX_AGE after its sign-in, however active it is, so that what the directory
    took away (a group, the person) is gone by then at the latest. A session from before this rule gets its clock
    now."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            signed_in_at = request.session.setdefault(sign_in.SIGNED_IN_AT_KEY, time.time())
            if time.time() - signed_in_at > settings.ORGDNS_SESSION_MAX_AGE:
                username = request.user.get_username()
                logout(request)
                detail = f"{username}: signed in more than {settings.ORGDNS_SESSION_MAX_AGE} s ago"
                audit.record("session.expired", None, detail=detail)
                messages.info(request, "Your session reached its maximum age: sign in again.")
                if request.path.startswith("/api/"):
                    return self.get_response(request)  # the API answers 401 itself
                return redirect_to_login(request.get_full_path())
        return self.get_response(request)
