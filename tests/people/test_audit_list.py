"""The audit log page: scoped to the user's organizations, filterable, per object."""

import pytest
from django.urls import reverse

from provisioning.models import AuditEvent

pytestmark = pytest.mark.django_db


def event(org, action, **fields):
    return AuditEvent.objects.create(actor_name="someone", source="ui", action=action, organization=org, **fields)


def test_users_see_their_organizations_events_and_staff_see_all(client, personas):
    event(personas.acme, "register.queued", object_type="cluster", object_id="1", object_repr="acme-prod")
    event(personas.globex, "member.set", object_repr="globex-secret-plans")
    event(None, "admin.change", object_repr="a user account")
    client.force_login(personas.alice)
    body = client.get(reverse("audit-list")).content.decode()
    assert "acme-prod" in body and "globex-secret-plans" not in body and "a user account" not in body
    client.force_login(personas.sam)
    body = client.get(reverse("audit-list")).content.decode()
    assert "acme-prod" in body and "globex-secret-plans" in body and "a user account" in body


def test_filters_by_outcome_action_and_object(client, personas):
    event(personas.acme, "register.queued", object_type="cluster", object_id="1", object_repr="first-cluster")
    event(
        personas.acme,
        "register.failed",
        object_type="cluster",
        object_id="2",
        object_repr="second-cluster",
        outcome="failed",
    )
    client.force_login(personas.alice)
    failed = client.get(reverse("audit-list") + "?outcome=failed").content.decode()
    assert "second-cluster" in failed and "first-cluster" not in failed
    by_object = client.get(reverse("audit-list") + "?object=cluster:1").content.decode()
    assert "first-cluster" in by_object and "second-cluster" not in by_object
    by_action = client.get(reverse("audit-list") + "?action=register.q").content.decode()
    assert "first-cluster" in by_action and "second-cluster" not in by_action
    assert client.get(reverse("audit-list") + "?outcome=bogus").status_code == 400


def test_the_admin_shows_events_read_only(client, personas):
    event(personas.acme, "register.queued", object_repr="acme-prod")
    personas.sam.is_superuser = True
    personas.sam.save()
    client.force_login(personas.sam)
    assert "acme-prod" in client.get(reverse("admin:provisioning_auditevent_changelist")).content.decode()
    assert client.get(reverse("admin:provisioning_auditevent_add")).status_code == 403
