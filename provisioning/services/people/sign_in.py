"""Signing in: with the company's identity provider (OpenID Connect, through Authlib), or with a local password where
that is allowed (everyone, or only the break-glass accounts). docs/sign-in.md tells operators how to set it up.

The provider's part, through Authlib's Django client: discovery from <issuer>/.well-known/openid-configuration
(fetched with a short timeout, kept for ORGDNS_OIDC_DISCOVERY_TTL, an unreachable provider not asked again for
ORGDNS_OIDC_DOWN_RETRY seconds); the authorization code flow with PKCE (S256); state and nonce kept in the session
and checked; the ID token's signature checked with the provider's JWKS (fetched again when a token names a key not
in it, so rotated keys are picked up), its issuer, audience and expiry checked, allowing ORGDNS_OIDC_CLOCK_SKEW.
Every failure is a SignInFailed: what to tell the person, and what to write in the audit trail.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client.errors import MismatchingStateError
from authlib.integrations.django_client import OAuth
from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_login_failed
from django.utils.http import url_has_allowed_host_and_scheme
from joserfc.errors import JoseError

from provisioning.models import AuditEvent
from provisioning.services import audit

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.http import HttpRequest

log = logging.getLogger(__name__)

NEXT_KEY = "orgdns_sign_in_next"  # where to go after the provider's sign-in (checked to be on this site)
SIGNED_IN_AT_KEY = "orgdns_signed_in_at"  # when the session's sign-in was (seconds since the epoch)
CLIENT_NAME = "orgdns"


class SignInFailed(Exception):
    """A sign-in that did not work. message: for the person (says what to do); detail: for the audit trail. Neither
    holds a secret (no token, code or client secret)."""

    def __init__(self, message: str, detail: str, status: int = 400, throttled: bool = True):
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.status = status
        self.throttled = throttled  # counts towards the client address's limit (not when the provider is down)


def provider_enabled() -> bool:
    return bool(settings.ORGDNS_OIDC_ISSUER)


def provider_name() -> str:
    return str(settings.ORGDNS_OIDC_PROVIDER_NAME)


def local_password_allowed(username: str) -> bool:
    """Whether this user name may sign in with a password: everyone while local passwords are on, else only the
    break-glass accounts."""
    return bool(settings.ORGDNS_LOCAL_LOGIN) or username in settings.ORGDNS_BREAK_GLASS_USERS


class LocalPasswordBackend(ModelBackend):
    """Django's password check, for the break-glass accounts only when local passwords are off (their sessions too:
    switching passwords off ends the others' password sessions)."""

    def user_can_authenticate(self, user: Any) -> bool:
        return super().user_can_authenticate(user) and local_password_allowed(user.get_username())


class IdentityProviderBackend(ModelBackend):
    """The backend of sessions begun at the identity provider: it checks no password (authenticate() finds nobody);
    sign_in.finish() has verified the person and names this backend when it logs them in."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **credentials: Any
    ) -> None:
        return None


IDENTITY_PROVIDER_BACKEND = f"{IdentityProviderBackend.__module__}.{IdentityProviderBackend.__qualname__}"


# The provider's client (Authlib), one per configuration, and when an unreachable provider may be asked again.
_clients: dict[tuple[Any, ...], Any] = {}
_down_until: dict[str, float] = {}


def _client() -> Any:
    key = (
        settings.ORGDNS_OIDC_ISSUER,
        settings.ORGDNS_OIDC_CLIENT_ID,
        settings.ORGDNS_OIDC_CLIENT_SECRET,
        tuple(settings.ORGDNS_OIDC_SCOPES),
        settings.ORGDNS_OIDC_TIMEOUT,
    )
    client = _clients.get(key)
    if client is None:
        registry = OAuth()
        registry.register(
            CLIENT_NAME,
            client_id=settings.ORGDNS_OIDC_CLIENT_ID,
            client_secret=settings.ORGDNS_OIDC_CLIENT_SECRET,
            server_metadata_url=discovery_url(),
            client_kwargs={
                "scope": " ".join(settings.ORGDNS_OIDC_SCOPES),
                "code_challenge_method": "S256",
                "default_timeout": settings.ORGDNS_OIDC_TIMEOUT,
            },
        )
        client = _clients[key] = registry.create_client(CLIENT_NAME)
    return client


def discovery_url() -> str:
    return f"{settings.ORGDNS_OIDC_ISSUER.rstrip('/')}/.well-known/openid-configuration"


def forget_provider() -> None:
    """Forget the discovery and keys fetched and that the provider was down (tests; a changed configuration)."""
    _clients.clear()
    _down_until.clear()


def _unreachable(what: str, exc: Exception, remember: bool = True) -> SignInFailed:
    """The failure of a provider that did not answer; remember: not asked again for ORGDNS_OIDC_DOWN_RETRY s."""
    if remember:
        _down_until[settings.ORGDNS_OIDC_ISSUER] = time.monotonic() + settings.ORGDNS_OIDC_DOWN_RETRY
    log.warning("identity provider %s unreachable (%s): %s", settings.ORGDNS_OIDC_ISSUER, what, type(exc).__name__)
    return SignInFailed(
        f"{provider_name()} cannot be reached right now, so signing in with it does not work. Try again in a few "
        "minutes; if it lasts, tell the platform team (break-glass accounts still sign in with a password).",
        f"{what} failed: {type(exc).__name__}: {_short(exc)}",
        status=503,
        throttled=False,
    )


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else ""


def discovered(client: Any) -> dict[str, Any]:
    """The provider's discovery document, fetched at most once per ORGDNS_OIDC_DISCOVERY_TTL; SignInFailed at once
    while the provider is known to be unreachable."""
    issuer = settings.ORGDNS_OIDC_ISSUER
    if time.monotonic() < _down_until.get(issuer, 0):
        raise _unreachable(
            "discovery (the provider was unreachable moments ago)", ConnectionError("not retried yet"), remember=False
        )
    loaded_at = client.server_metadata.get("_loaded_at")
    if loaded_at is not None and time.time() - loaded_at > settings.ORGDNS_OIDC_DISCOVERY_TTL:
        client.server_metadata.clear()
    try:
        metadata: dict[str, Any] = client.load_server_metadata()
    except (requests.RequestException, ValueError) as exc:
        raise _unreachable(f"discovery at {discovery_url()}", exc) from None
    if metadata.get("issuer") != issuer:
        client.server_metadata.clear()
        raise SignInFailed(
            f"{provider_name()} is not set up as orgdns expects: tell the platform team.",
            f"discovery says issuer {metadata.get('issuer')!r}, ORGDNS_OIDC_ISSUER is {issuer!r}",
            status=502,
        )
    return metadata


def safe_next(request: HttpRequest, target: str | None) -> str:
    """target if it is a path on this site (never another host or scheme), else ""."""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return ""


def start(request: HttpRequest, redirect_uri: str, next_url: str | None) -> str:
    """Begin a sign-in at the provider: the URL to send the browser to. State, nonce and the PKCE verifier are kept
    in the session; so is where to go afterwards, if it is on this site."""
    client = _client()
    discovered(client)
    authorization = client.create_authorization_url(redirect_uri)
    client.save_authorize_data(request, redirect_uri=redirect_uri, **authorization)
    request.session[NEXT_KEY] = safe_next(request, next_url)
    return str(authorization["url"])


def finish(request: HttpRequest) -> dict[str, Any]:
    """The provider's answer (the callback request) checked: state, then the code exchanged (with the PKCE verifier)
    for tokens, the ID token's signature, issuer, audience, expiry and nonce verified. Returns its claims (with the
    userinfo endpoint's for those it lacks)."""
    client = _client()
    metadata = discovered(client)
    options = {
        "iss": {"essential": True, "value": settings.ORGDNS_OIDC_ISSUER},
        "aud": {"essential": True, "value": settings.ORGDNS_OIDC_CLIENT_ID},
        "sub": {"essential": True},
        "exp": {"essential": True},
    }
    try:
        token = client.authorize_access_token(request, claims_options=options, leeway=settings.ORGDNS_OIDC_CLOCK_SKEW)
    except MismatchingStateError:
        raise SignInFailed(
            "This sign-in could not be matched to one begun in this browser (it was begun elsewhere, already used, "
            "or altered on the way). Start again from the sign-in page.",
            "state did not match any sign-in begun in this session",
        ) from None
    except JoseError as exc:
        raise SignInFailed(
            f"The identity token from {provider_name()} did not verify, so orgdns cannot trust it. Start again; if it "
            "happens again, tell the platform team.",
            f"ID token refused: {exc.error}: {exc.description or ''}".strip(),
        ) from None
    except AuthlibBaseError as exc:
        raise SignInFailed(
            f"{provider_name()} did not sign you in ({exc.error or 'error'}). Start again from the sign-in page.",
            f"provider answered {exc.error}: {exc.description or ''}".strip(),
        ) from None
    except requests.RequestException as exc:
        raise _unreachable("the token request", exc) from None
    except (ValueError, KeyError, TypeError) as exc:  # an answer that is not the JSON it should be
        raise SignInFailed(
            f"{provider_name()} answered something orgdns cannot read: try again; if it lasts, tell the platform team.",
            f"unreadable answer from the provider: {type(exc).__name__}: {_short(exc)}",
            status=502,
        ) from None
    if not token.get("userinfo"):
        raise SignInFailed(
            f"{provider_name()} sent no identity token: tell the platform team.",
            "the token response held no id_token",
            status=502,
        )
    claims = dict(token["userinfo"])
    wanted = [settings.ORGDNS_OIDC_USERNAME_CLAIM, settings.ORGDNS_OIDC_EMAIL_CLAIM, settings.ORGDNS_OIDC_NAME_CLAIM]
    if metadata.get("userinfo_endpoint") and any(name not in claims for name in wanted):
        try:
            extra = client.userinfo(token=token)
        except (requests.RequestException, AuthlibBaseError) as exc:
            log.warning("userinfo endpoint not read (%s)", type(exc).__name__)
        else:
            if extra.get("sub") == claims["sub"]:
                claims = {**extra, **claims}
    return claims


def logout_url(after: str) -> str:
    """Where to send the browser to end the provider's session too (RP-initiated logout, naming orgdns by its client
    id: the ID token is not kept, so it is no id_token_hint), or "" where the provider advertises no
    end_session_endpoint (or cannot be reached: orgdns's session is ended all the same)."""
    if not provider_enabled():
        return ""
    try:
        metadata = discovered(_client())
    except SignInFailed:
        return ""
    endpoint = metadata.get("end_session_endpoint")
    if not endpoint:
        return ""
    query = {"client_id": settings.ORGDNS_OIDC_CLIENT_ID, "post_logout_redirect_uri": after}
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"


# Throttling: failed sign-ins through the provider count, per client address, like wrong passwords (django-axes),
# under one name that is no user's.
def throttle_name() -> str:
    return f"(sign-in with {provider_name()})"[:150]


def provider_sign_in_locked(request: HttpRequest) -> bool:
    credentials = {"username": throttle_name()}
    if AxesProxyHandler.is_locked(request, credentials):
        # AxesMiddleware answers with the lockout page (attributes of axes's own, which HttpRequest does not declare)
        request.axes_locked_out = True  # type: ignore[attr-defined]
        request.axes_credentials = credentials  # type: ignore[attr-defined]
        return True
    return False


def record_failure(request: HttpRequest, failure: SignInFailed) -> None:
    """Audit a failed sign-in through the provider and, unless the provider was unreachable (nobody's doing), count
    it against the client address."""
    log.info("sign-in with the identity provider failed: %s", failure.detail)
    audit.record("login.provider_failed", None, outcome=AuditEvent.Outcome.FAILED, detail=failure.detail)
    if failure.throttled:
        user_login_failed.send(sender=__name__, credentials={"username": throttle_name()}, request=request)


# The audit trail of sign-ins, both paths (connected to Django's signals in apps.py).
def audit_login(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    if not audit.current().request_id:
        return  # not a sign-in through a page (a script's or a test's force_login): nobody signed in
    backend = request.session.get(BACKEND_SESSION_KEY) if request is not None else None
    how = provider_name() if backend == IDENTITY_PROVIDER_BACKEND else "a password"
    audit.record("login", user, actor=user, detail=f"signed in with {how}")


def audit_failed_login(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    username = str(credentials.get("username", ""))[:150]
    if username != throttle_name():  # record_failure audited those
        detail = f"wrong password (or no such user) for {username!r}"
        audit.record("login.failed", None, outcome=AuditEvent.Outcome.FAILED, detail=detail)


def stamp_session(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    """When the session's sign-in was: SessionMaxAgeMiddleware ends it ORGDNS_SESSION_MAX_AGE later."""
    if request is not None and hasattr(request, "session"):
        request.session[SIGNED_IN_AT_KEY] = time.time()


def audit_logout(sender: Any, request: HttpRequest, user: User | None, **kwargs: Any) -> None:
    if user is not None:
        audit.record("logout", user, actor=user)
