"""Who may see or change what, as queryset methods (`Model.objects.for_user(user, action)`, Organization.allows), and
the answers the pages, the API and the admin make of them (provisioning/scoping.py): 404 when not visible, 403 when
visible but not allowed, each refusal recorded. Both sides of each boundary: alice owns acme, vera views acme, bob is a
member of globex, charlie belongs nowhere, sam is staff who only looks, support is staff who may act anywhere."""

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.test import RequestFactory

from provisioning import scoping
from provisioning.models import (
    CHANGE,
    MANAGE_MEMBERS,
    OFFBOARD,
    VIEW,
    ApiToken,
    AuditEvent,
    Certificate,
    Cluster,
    HostedZone,
    Membership,
    Operation,
    Organization,
    limit_to_token,
)
from provisioning.services.people import api_tokens

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(personas, django_user_model):
    support = django_user_model.objects.create_user("support", password="pw-support", is_staff=True)
    support.user_permissions.add(Permission.objects.get(codename="act_in_any_organization"))
    support = django_user_model.objects.get(pk=support.pk)  # permissions are cached per instance
    rows = {}
    for org in (personas.acme, personas.globex):
        rows[org.name] = {
            "cluster": Cluster.objects.create(
                organization=org, name="prod", api_server="https://prod.example", owner_id=f"{org.name}-prod"
            ),
            "zone": HostedZone.objects.create(organization=org, name=org.zone_name),
            "certificate": Certificate.objects.create(organization=org, dns_names=[f"www.{org.zone_name}"]),
            "operation": Operation.objects.create(kind="register", organization=org),
            "event": AuditEvent.objects.create(actor_name="alice", source="ui", action="x", organization=org),
        }
    AuditEvent.objects.create(actor_name="orgdns", source="cron", action="system")  # of no organization
    personas.support = support
    personas.rows = rows
    return personas


def names(queryset):
    return sorted({row.organization.name if hasattr(row, "organization") else row.name for row in queryset})


EXPECTED = {  # persona: {action: the organizations}
    "alice": {VIEW: ["acme"], CHANGE: ["acme"], MANAGE_MEMBERS: ["acme"], OFFBOARD: ["acme"]},
    "vera": {VIEW: ["acme"], CHANGE: [], MANAGE_MEMBERS: [], OFFBOARD: []},
    "bob": {VIEW: ["globex"], CHANGE: ["globex"], MANAGE_MEMBERS: [], OFFBOARD: []},
    "charlie": {VIEW: [], CHANGE: [], MANAGE_MEMBERS: [], OFFBOARD: []},
    "sam": {VIEW: ["acme", "globex"], CHANGE: [], MANAGE_MEMBERS: [], OFFBOARD: []},
    "support": {VIEW: ["acme", "globex"], CHANGE: ["acme", "globex"], MANAGE_MEMBERS: ["acme", "globex"]}
    | {OFFBOARD: ["acme", "globex"]},
}


@pytest.mark.parametrize("persona", sorted(EXPECTED))
def test_each_scoped_model_answers_the_same_organizations_for_each_action(world, persona):
    user = getattr(world, persona)
    for action, expected in EXPECTED[persona].items():
        assert names(Organization.objects.for_user(user, action)) == expected, action
        for model in (Cluster, HostedZone, Certificate, Operation):
            assert names(model.objects.for_user(user, action)) == expected, (model, action)
        for org in (world.acme, world.globex):
            assert org.allows(user, action) is (org.name in expected), (org, action)
    assert names(Membership.objects.for_user(user)) == EXPECTED[persona][VIEW]


def test_view_is_the_default_action(world):
    assert list(Cluster.objects.for_user(world.vera)) == list(Cluster.objects.for_user(world.vera, VIEW))
    with pytest.raises(ValueError, match="Unknown action 'delete'"):
        Cluster.objects.for_user(world.alice, "delete")


def test_an_organization_being_offboarded_is_seen_but_not_changed_and_its_offboarding_resumed(world):
    Organization.objects.filter(pk=world.acme.pk).update(state=Organization.State.OFFBOARDING)
    for persona in ("alice", "support"):
        user = getattr(world, persona)
        assert "acme" in names(Cluster.objects.for_user(user))
        assert "acme" not in names(Cluster.objects.for_user(user, CHANGE))
        assert "acme" not in names(Organization.objects.for_user(user, MANAGE_MEMBERS))
        assert "acme" in names(Organization.objects.for_user(user, OFFBOARD))
    Organization.objects.filter(pk=world.acme.pk).update(state=Organization.State.OFFBOARDED)
    assert not world.acme.allows(world.alice, OFFBOARD)
    assert world.acme.allows(world.alice, VIEW)  # its audit trail stays readable


def test_a_token_limited_to_some_organizations_reaches_only_those(world):
    limit_to_token(world.support, frozenset({world.globex.pk}))
    assert names(Cluster.objects.for_user(world.support)) == ["globex"]
    assert names(Cluster.objects.for_user(world.support, CHANGE)) == ["globex"]
    limit_to_token(world.alice, frozenset({world.globex.pk}))  # not hers: the limit adds nothing
    assert names(Cluster.objects.for_user(world.alice)) == []


def test_api_tokens_are_their_owners_alone(world):
    token, _ = api_tokens.create_token(world.alice, "ci", 30)
    for persona, sees in (("alice", True), ("bob", False), ("sam", False), ("support", False)):
        for action in (VIEW, CHANGE):
            assert (token in ApiToken.objects.for_user(getattr(world, persona), action)) is sees, (persona, action)
    with pytest.raises(ApiToken.DoesNotExist):
        api_tokens.revoke_token(world.bob, token.pk)
    assert api_tokens.revoke_token(world.alice, token.pk).revoked_at is not None


def test_audit_events_of_no_organization_are_staff_only_and_nobody_changes_events(world):
    system = AuditEvent.objects.get(action="system")
    for persona, sees in (("sam", True), ("support", True), ("alice", False), ("bob", False), ("charlie", False)):
        user = getattr(world, persona)
        assert (system in AuditEvent.objects.for_user(user)) is sees, persona
        assert not AuditEvent.objects.for_user(user, CHANGE).exists(), persona
    assert sorted(e.organization.name for e in AuditEvent.objects.for_user(world.alice)) == ["acme"]
    limit_to_token(world.sam, frozenset({world.acme.pk}))
    assert system not in AuditEvent.objects.for_user(world.sam)


# --- the HTTP answers ------------------------------------------------------------------------------------------------


def request_of(user, method="post", path="/orgs/acme/clusters/1/deregister"):
    request = getattr(RequestFactory(), method)(path)
    request.user = user
    return request


def refusals():
    return AuditEvent.objects.filter(action="access.refused").order_by("id")


def test_what_the_user_may_change_is_answered_with_the_object(world):
    cluster = world.rows["acme"]["cluster"]
    for persona in ("alice", "support"):
        found = scoping.cluster(request_of(getattr(world, persona)), "acme", cluster.pk, CHANGE)
        assert found == cluster and found.organization == world.acme
    assert scoping.cluster(request_of(world.vera, "get"), "acme", cluster.pk) == cluster
    assert not refusals().exists()


def test_another_organizations_object_is_404_and_recorded_for_staff_only(world):
    cluster = world.rows["acme"]["cluster"]
    for persona in ("bob", "charlie"):
        with pytest.raises(Http404):
            scoping.cluster(request_of(getattr(world, persona)), "acme", cluster.pk, CHANGE)
        event = refusals().last()
        assert (event.organization, event.object_type, event.object_id) == (None, "cluster", str(cluster.pk))
        assert event.detail == f"cluster {cluster.pk} of organization acme: not visible to {persona}"
    with pytest.raises(Http404):  # not an object of another organization: no refusal
        scoping.cluster(request_of(world.alice), "acme", 999999)
    with pytest.raises(Http404):
        scoping.organization(request_of(world.alice), "initech")
    assert refusals().count() == 2


def test_what_the_user_sees_but_may_not_change_is_403_and_recorded_with_the_request(world):
    cluster = world.rows["acme"]["cluster"]
    for persona in ("vera", "sam"):
        request = request_of(getattr(world, persona))
        with pytest.raises(PermissionDenied, match="You may look at acme but not change it"):
            scoping.cluster(request, "acme", cluster.pk, CHANGE)
        event = refusals().last()
        assert event.organization == world.acme
        assert event.detail == f"POST /orgs/acme/clusters/1/deregister: {persona} may look at acme but not change it"
    with pytest.raises(PermissionDenied, match="Only owners of globex manage its members"):
        scoping.organization(request_of(world.bob, path="/orgs/globex/members"), "globex", MANAGE_MEMBERS)
    assert refusals().last().detail == "POST /orgs/globex/members: bob is not an owner of globex"
    with pytest.raises(PermissionDenied, match="Only owners of globex"):
        scoping.organization(request_of(world.bob, path="/orgs/globex/delete"), "globex", OFFBOARD)
    assert refusals().last().detail == "POST /orgs/globex/delete: bob may not delete globex"


def test_an_organization_being_offboarded_refuses_changes_saying_so(world):
    Organization.objects.filter(pk=world.acme.pk).update(state=Organization.State.OFFBOARDING)
    with pytest.raises(PermissionDenied, match="acme is offboarding: nothing in it can be changed any more"):
        scoping.organization(request_of(world.alice, path="/orgs/acme/rotate-key"), "acme", CHANGE)
    assert refusals().last().detail == "POST /orgs/acme/rotate-key: acme is offboarding"
    assert scoping.organization(request_of(world.alice), "acme", OFFBOARD) == world.acme


def test_staff_pages_and_creating_organizations(world):
    for persona in ("alice", "charlie"):
        with pytest.raises(PermissionDenied, match="Only platform staff see the budget"):
            scoping.require_staff(request_of(getattr(world, persona), "get"), "the budget")
        with pytest.raises(PermissionDenied, match="Only support staff"):
            scoping.require_organization_creation(request_of(getattr(world, persona)))
    scoping.require_staff(request_of(world.sam, "get"), "the budget")
    limit_to_token(world.sam, frozenset({world.acme.pk}))
    with pytest.raises(PermissionDenied, match="does not reach the budget"):
        scoping.require_staff(request_of(world.sam, "get"), "the budget")


def test_the_request_is_described_once_as_method_and_path():
    assert scoping.described(RequestFactory().delete("/api/v1/organizations/acme/members/bob?x=1")) == (
        "DELETE /api/v1/organizations/acme/members/bob"
    )
