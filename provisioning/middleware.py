import time

from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.db.models import Sum
from django.http import HttpResponse, JsonResponse

from provisioning.services import audit
from provisioning.services.people import sign_in

from .models import AuditEvent


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


class RequestSizeLimitMiddleware:
    """A request whose Content-Length is past ORGDNS_MAX_REQUEST_BYTES is answered 413 before any of its body is read
    (Django itself would read a file upload whole, to disk, before a form could look at its size)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # what Django reads of such a request: nothing
        limit = settings.ORGDNS_MAX_REQUEST_BYTES
        if length <= limit:
            return self.get_response(request)
        detail = f"The request body is {length} bytes; orgdns accepts at most {limit}."
        if request.path.startswith("/api/"):
            body = {"type": "about:blank", "title": "Content Too Large", "status": 413, "detail": detail}
            body |= {"instance": request.path, "errors": []}
            response: HttpResponse = JsonResponse(body, status=413, content_type="application/problem+json")
        else:
            response = HttpResponse(detail, status=413, content_type="text/plain; charset=utf-8")
        response["Content-Length"] = len(response.content)
        return response


class LoginAttempts(AxesDatabaseHandler):
    """axes's count of failed logins, with a limit of its own for each of AXES_LOCKOUT_PARAMETERS: one username from one
    address is locked after AXES_FAILURE_LIMIT failures, one username from all addresses together after the larger
    LOGIN_USERNAME_FAILURE_LIMIT (so that spreading guesses over many addresses does not help, while a stranger needs
    many more tries to lock a user out everywhere).

    axes compares one number with AXES_FAILURE_LIMIT: that number is the count closest to its own limit, shifted so
    that reaching its limit is reaching AXES_FAILURE_LIMIT."""

    def get_failures(self, request, credentials=None):
        by_address, by_username = (
            attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        )
        headroom = settings.LOGIN_USERNAME_FAILURE_LIMIT - settings.AXES_FAILURE_LIMIT
        return max(by_address, by_username - headroom)


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
