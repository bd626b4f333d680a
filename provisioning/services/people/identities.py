"""Who a person signing in through the identity provider is, and what the directory's groups make them.

A person is their issuer and subject (`sub`), never their e-mail address: an e-mail change keeps the user, and two
providers' identical addresses stay two users. Their user is made at their first sign-in (with no password); their
name and e-mail are updated at each.

Groups (the ORGDNS_OIDC_GROUPS_CLAIM claim) map to roles in organizations and to staff or superuser, through
ORGDNS_OIDC_GROUP_PATTERN and ORGDNS_OIDC_GROUP_MAP. With either set, the memberships the groups give are
synchronized at every sign-in: added, changed, removed (a removal queues a rotation of the organization's key, as a
removal on the members page does). Such memberships are marked as the directory's (Membership.Source.DIRECTORY) and
cannot be changed by hand; memberships made by hand in organizations the groups do not name are left alone. A group
naming an organization that does not exist creates nothing: it is logged and audited (`sign_in.unknown_organization`).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from provisioning.models import AuditEvent, ExternalIdentity, Membership, Organization
from provisioning.services import audit
from provisioning.services.organizations.actions import put_membership, remove_membership
from provisioning.services.people.sign_in import SignInFailed, provider_name

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)

ROLE_RANK = {Membership.Role.VIEWER: 0, Membership.Role.MEMBER: 1, Membership.Role.OWNER: 2}
USERNAME_LENGTH = 150


def mapping_on() -> bool:
    return bool(settings.ORGDNS_OIDC_GROUP_PATTERN or settings.ORGDNS_OIDC_GROUP_MAP)


def grants(groups: list[str]) -> tuple[dict[str, str], set[str]]:
    """What the groups give: ({organization name: highest role}, {"staff", "superuser"} or part of it)."""
    roles: dict[str, str] = {}
    site: set[str] = set()

    def give(organization: str, role: str) -> None:
        if (
            organization not in roles
            or ROLE_RANK[Membership.Role(role)] > ROLE_RANK[Membership.Role(roles[organization])]
        ):
            roles[organization] = role

    for group in groups:
        pattern = settings.ORGDNS_OIDC_GROUP_PATTERN
        matched = re.fullmatch(pattern, group) if pattern else None
        if matched:
            give(matched["org"], matched["role"])
        for grant in settings.ORGDNS_OIDC_GROUP_MAP.get(group, []):
            if grant in ("staff", "superuser"):
                site.add(grant)
            else:
                organization, _, role = grant.rpartition(":")
                give(organization, role)
    return roles, site


def claim(claims: dict[str, Any], name: str, required: bool = False) -> str:
    value = claims.get(name) if name else None
    if value is None or value == "":
        if required:
            raise SignInFailed(
                f"{provider_name()} did not say who you are (its token lacks the claim {name!r}): tell the platform "
                "team.",
                f"claim {name!r} missing from the ID token of subject {claims.get('sub')!r}",
                status=502,
            )
        return ""
    return str(value)


def groups_of(claims: dict[str, Any]) -> list[str]:
    """The groups claim as a list (a provider omits it for a person in no group: no groups)."""
    value = claims.get(settings.ORGDNS_OIDC_GROUPS_CLAIM)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(group, str) for group in value):
        raise SignInFailed(
            f"{provider_name()} sent groups orgdns cannot read: tell the platform team.",
            f"claim {settings.ORGDNS_OIDC_GROUPS_CLAIM!r} is not a list of strings",
            status=502,
        )
    return value


@transaction.atomic
def signed_in_user(claims: dict[str, Any]) -> User:
    """The user the verified claims name (made at the first sign-in), with name, e-mail, memberships and staff
    flags brought up to date. SignInFailed if a needed claim is missing or the user is deactivated."""
    issuer = settings.ORGDNS_OIDC_ISSUER
    subject = claim(claims, "sub", required=True)
    username = claim(claims, settings.ORGDNS_OIDC_USERNAME_CLAIM, required=True)
    email = claim(claims, settings.ORGDNS_OIDC_EMAIL_CLAIM)
    first_name, _, last_name = claim(claims, settings.ORGDNS_OIDC_NAME_CLAIM).partition(" ")
    groups = groups_of(claims)
    identity = (
        ExternalIdentity.objects.select_for_update()
        .select_related("user")
        .filter(issuer=issuer, subject=subject)
        .first()
    )
    if identity is None:
        user = get_user_model().objects.create_user(free_username(username), email=email)  # no usable password
        identity = ExternalIdentity.objects.create(user=user, issuer=issuer, subject=subject)
        audit.record("user.create", user, actor=user, detail=f"first sign-in with {provider_name()} as {subject}")
    user = identity.user
    if not user.is_active:
        raise SignInFailed(
            "Your orgdns account is deactivated: ask the platform team.",
            f"{user.get_username()} (subject {subject}) is deactivated",
            status=403,
        )
    audit.act_as(user)
    user.email, user.first_name, user.last_name = email, first_name[:150], last_name[:150]
    if mapping_on():
        sync_site_roles(user, groups)
    user.save()
    identity.last_login_at = timezone.now()
    identity.groups = groups
    identity.save(update_fields=["last_login_at", "groups"])
    if mapping_on():
        sync_memberships(user, groups)
    return user


def free_username(wanted: str) -> str:
    """wanted, or wanted-2, wanted-3… if a user (a local one, or another provider's) has it: a name is never a way
    into someone else's account."""
    users = get_user_model().objects
    base = wanted[:USERNAME_LENGTH]
    name, n = base, 1
    while users.filter(username=name).exists():
        n += 1
        name = f"{base[: USERNAME_LENGTH - len(str(n)) - 1]}-{n}"
    if name != base:
        log.info("user name %r is taken: the new user from %s is %r", wanted, provider_name(), name)
    return name


def sync_site_roles(user: Any, groups: list[str]) -> None:
    _, site = grants(groups)
    staff, superuser = bool(site), "superuser" in site
    if (user.is_staff, user.is_superuser) != (staff, superuser):
        was = "superuser" if user.is_superuser else "staff" if user.is_staff else "neither staff nor superuser"
        now = "superuser" if superuser else "staff" if staff else "neither staff nor superuser"
        user.is_staff, user.is_superuser = staff, superuser
        audit.record("user.site_roles", user, detail=f"{user.get_username()}: {was} → {now} (directory groups)")


def sync_memberships(user: User, groups: list[str]) -> None:
    """Make the user's directory memberships what the groups give: added, changed, removed."""
    roles, _ = grants(groups)
    current = {
        m.organization.name: m
        for m in Membership.objects.select_for_update().filter(user=user).select_related("organization")
    }
    found = {o.name: o for o in Organization.objects.filter(name__in=roles)}
    for name in sorted(roles.keys() - found.keys()):
        log.warning("group of %s names organization %r, which does not exist: not created", user.get_username(), name)
        audit.record(
            "sign_in.unknown_organization",
            user,
            outcome=AuditEvent.Outcome.REFUSED,
            detail=f"{user.get_username()}'s groups give {roles[name]} of {name!r}, which does not exist: not created",
        )
    why = " (directory groups)"
    for name, organization in sorted(found.items()):
        membership = current.get(name)
        if not organization.active:
            continue
        if membership is None or (membership.role, membership.source) != (roles[name], Membership.Source.DIRECTORY):
            put_membership(organization, user, roles[name], Membership.Source.DIRECTORY, membership, why)
    for name, membership in sorted(current.items()):
        if membership.source == Membership.Source.DIRECTORY and name not in found:
            remove_membership(membership, f" (no longer in a directory group for {name})")
