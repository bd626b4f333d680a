"""Personal API tokens: made and revoked by their user, shown once, kept only as a hash, refused once expired or revoked.

A token acts as its user: what it may see and do is decided at each request by the user's organizations and roles
(services.organizations), so removing someone from an organization also takes that organization from their tokens.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from provisioning.models import CHANGE, ApiToken, Organization, limit_to_token
from provisioning.services import audit
from provisioning.services.backends import api_rate_limiter

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from django.contrib.auth.models import User
    from django.db.models import QuerySet


log = logging.getLogger(__name__)

TOKEN_PREFIX = "odt_"
SHOWN_PREFIX = 12  # characters of the token kept to recognize it in lists: the scheme and 8 of its 43 random ones
LIFETIMES = (7, 30, 90, 365)  # days offered on the tokens page
LAST_USED_RESOLUTION = timedelta(minutes=5)  # last_used_at is written at most this often, not on every request


class InvalidToken(Exception):
    """A bearer token that cannot be used, with the reason to tell its presenter."""


def token_hash(raw: str) -> str:
    """Tokens carry 256 random bits, so a plain SHA-256 (no salt, no slow hash) cannot be reversed, and it can be
    looked up by equality."""
    return hashlib.sha256(raw.encode()).hexdigest()


def tokens_of(user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.for_user(user)


def live_tokens_of(user: User, now: datetime | None = None) -> QuerySet[ApiToken]:
    """The user's tokens that still work (neither revoked nor expired): those ORGDNS_API_TOKENS_PER_USER counts."""
    return user.api_tokens.filter(revoked_at=None, expires_at__gt=now or timezone.now())


def create_token(
    user: User,
    name: str,
    days: int,
    form_key: str = "",
    *,
    read_only: bool = False,
    organizations: Iterable[Organization] = (),
) -> tuple[ApiToken, str]:
    """Make a token for user, valid for `days`. Returns (row, token): the token is not kept anywhere, only its hash.

    form_key: the key of the form it comes from; sending that form again (a page reload) makes no second token.
    read_only: it may only read. organizations: the only ones (of the user's) it may reach; none: all of the user's.
    Refused once the user has ORGDNS_API_TOKENS_PER_USER tokens that still work.
    """
    name = (name or "").strip()
    if not name:
        raise ValidationError("Give the token a name that says what uses it.")
    if not 1 <= days <= settings.ORGDNS_API_TOKEN_MAX_DAYS:
        raise ValidationError(f"A token is valid for 1 to {settings.ORGDNS_API_TOKEN_MAX_DAYS} days.")
    organizations = list(organizations)
    reachable = set(
        Organization.objects.for_user(user).filter(pk__in=[o.pk for o in organizations]).values_list("pk", flat=True)
    )
    if foreign := sorted(o.name for o in organizations if o.pk not in reachable):
        raise ValidationError(f"A token can only be limited to your own organizations, not {', '.join(foreign)}.")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            # The user's row, locked: two forms sent at once cannot both take the last place.
            get_user_model().objects.select_for_update().filter(pk=user.pk).first()
            cap = settings.ORGDNS_API_TOKENS_PER_USER
            if live_tokens_of(user).count() >= cap:
                raise ValidationError(
                    f"You already have {cap} API tokens that still work, as many as one user may: revoke one you no "
                    "longer use, then make this one."
                )
            token = ApiToken.objects.create(
                user=user,
                name=name[:100],
                prefix=raw[:SHOWN_PREFIX],
                token_hash=token_hash(raw),
                expires_at=timezone.now() + timedelta(days=days),
                form_key=form_key,
                read_only=read_only,
            )
            token.organizations.set(organizations)
            audit.record(
                "api_token.create",
                token,
                actor=user,
                detail=f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC; {describe_scope(token)}",
            )
    except IntegrityError:
        made = ApiToken.objects.filter(user=user, form_key=form_key).first()
        raise ValidationError(f"This form already made token {made}: a token is shown once only.") from None
    return token, raw


def describe_scope(token: ApiToken) -> str:
    """ "read-only, in acme and globex", "read and write, in all of its user's organizations"."""
    names = sorted(token.organizations.values_list("name", flat=True))
    where = f"in {', '.join(names)}" if names else "in all of its user's organizations"
    return f"{'read-only' if token.read_only else 'read and write'}, {where}"


def may_serve(token: ApiToken, method: str) -> bool:
    """Whether the token may make a request of this method: a read-only token only reads."""
    return not token.read_only or method in SAFE_METHODS


def scope_request(token: ApiToken) -> None:
    """Apply the token's scope to the request it authenticates: a token limited to named organizations sees only
    those (Organization.objects.for_user)."""
    limited = frozenset(token.organizations.values_list("pk", flat=True))
    limit_to_token(token.user, limited or None)


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def revoke_token(user: User, pk: int) -> ApiToken:
    """Revoke one of the user's own tokens (another user's is not found: ApiToken.DoesNotExist)."""
    with transaction.atomic():
        token = ApiToken.objects.for_user(user, CHANGE).select_for_update().get(pk=pk)
        if token.revoked_at is not None:
            raise ValidationError(f"Token {token} is already revoked.")
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit.record("api_token.revoke", token, actor=user)
    return token


def revoke_by_staff(token: ApiToken, user: User) -> None:
    """Support's revocation of anyone's token (a leaked one, say)."""
    if token.revoked_at is None:
        ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=timezone.now())
        audit.record("api_token.revoke", token, actor=user, detail=f"token of {token.user.get_username()}")


def authenticate(raw: str, now: datetime | None = None) -> ApiToken:
    """The token that raw is, if it may be used now; InvalidToken saying why not otherwise."""
    now = now or timezone.now()
    if not raw.startswith(TOKEN_PREFIX):
        raise InvalidToken("This is not an orgdns API token.")
    token = ApiToken.objects.select_related("user").filter(token_hash=token_hash(raw)).first()
    if token is None:
        raise InvalidToken("Unknown API token.")
    if token.revoked_at is not None:
        raise InvalidToken(f"The API token {token.prefix}… was revoked.")
    if token.expires_at <= now:
        raise InvalidToken(f"The API token {token.prefix}… expired on {token.expires_at:%Y-%m-%d %H:%M} UTC.")
    if not token.user.is_active:
        raise InvalidToken("The API token's user is deactivated.")
    if token.last_used_at is None or token.last_used_at < now - LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def rate_limit_wait(identity: str) -> float:
    """0 if the token (or session user) named by identity may make a request now, else the seconds to wait.
    Without Redis the API still answers: the limit is there to protect it, not to stop it."""
    try:
        return api_rate_limiter(identity).try_acquire()
    except RedisError as exc:
        log.warning("API rate limit not applied (%s: %s)", type(exc).__name__, exc)
        return 0.0
