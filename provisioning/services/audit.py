"""The audit trail: every state-changing action from pages, the admin, jobs and cron commands.

Whoever acts sets the context once (the middleware for requests, the job runner, a command); the
places that change state call record(), which takes the actor, source and request id from it.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..models import AuditEvent, Organization

if TYPE_CHECKING:
    from collections.abc import Iterator

    from django.contrib.auth.models import User
    from django.db.models import Model

_context: contextvars.ContextVar[Context | None] = contextvars.ContextVar("orgdns_audit", default=None)
CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclass(frozen=True)
class Context:
    source: str
    request_id: str  # always ours: a client cannot make its actions pass for another request's
    actor: User | None = None  # a user (possibly lazy), or None for the system
    client_request_id: str = ""  # the id the client (or its proxy) gave the request, if it is a sane token


def new_request_id() -> str:
    return uuid.uuid4().hex


def client_request_id(proposed: str | None) -> str:
    """The X-Request-ID a client sent, if it is a sane token (kept beside ours, for finding its requests), else ""."""
    return proposed if proposed and CLIENT_REQUEST_ID.fullmatch(proposed) else ""


@contextmanager
def acting(
    source: str, actor: User | None = None, request_id: str | None = None, client_request_id: str = ""
) -> Iterator[Context]:
    context = Context(source, request_id or new_request_id(), actor, client_request_id)
    token = _context.set(context)
    try:
        yield context
    finally:
        _context.reset(token)


def act_as(actor: User) -> None:
    """The request was authenticated by other means than the session (an API token): later records name actor."""
    _context.set(replace(current(), actor=actor))


def current() -> Context:
    return _context.get() or Context(AuditEvent.Source.JOB, "")


def record(
    action: str,
    obj: Model | None = None,
    *,
    organization: Organization | None = None,
    outcome: str = AuditEvent.Outcome.OK,
    detail: str = "",
    actor: User | None = None,
    staff_only: bool = False,
) -> AuditEvent:
    """staff_only: recorded as an event of no organization (only staff see those), whatever obj's organization."""
    context = current()
    actor = actor if actor is not None else context.actor
    if actor is not None and not actor.is_authenticated:
        actor = None
    return AuditEvent.objects.create(
        actor=actor,
        actor_name=actor.get_username() if actor else f"system ({context.source})",
        source=context.source,
        action=action,
        organization=None if staff_only else organization or _organization_of(obj),
        object_type=(obj._meta.model_name or "") if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        request_id=context.request_id,
        client_request_id=context.client_request_id,
        outcome=outcome,
        detail=detail[:2000],
    )


def _organization_of(obj: Model | None) -> Organization | None:
    if isinstance(obj, Organization):
        return obj
    return getattr(obj, "organization", None)
