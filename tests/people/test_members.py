"""Organization owners manage members and roles; nobody else does."""

import pytest
from django.urls import reverse

from provisioning.models import Membership

pytestmark = pytest.mark.django_db


def test_owner_adds_an_existing_user_and_changes_the_role(client, personas):
    client.force_login(personas.alice)
    client.post(reverse("members", args=["acme"]), {"username": "charlie", "role": "viewer"})
    assert Membership.objects.get(organization=personas.acme, user=personas.charlie).role == "viewer"
    client.post(reverse("members", args=["acme"]), {"username": "charlie", "role": "member"})
    assert Membership.objects.get(organization=personas.acme, user=personas.charlie).role == "member"
    page = client.get(reverse("members", args=["acme"])).content.decode()
    assert "charlie" in page and "vera" in page and "bob" not in page


def test_unknown_user_is_refused_with_a_clear_message(client, personas):
    client.force_login(personas.alice)
    response = client.post(reverse("members", args=["acme"]), {"username": "nobody", "role": "member"})
    assert "There is no user named &#x27;nobody&#x27;" in response.content.decode()
    assert Membership.objects.filter(organization=personas.acme).count() == 2


def test_the_last_owner_cannot_leave_or_be_demoted(client, personas):
    client.force_login(personas.alice)
    alice = Membership.objects.get(organization=personas.acme, user=personas.alice)
    client.post(reverse("member-remove", args=["acme", alice.pk]))
    response = client.post(reverse("members", args=["acme"]), {"username": "alice", "role": "viewer"})
    assert "last owner of acme" in response.content.decode()
    alice.refresh_from_db()
    assert alice.role == "owner"


def test_owner_removes_a_member(client, personas):
    client.force_login(personas.alice)
    vera = Membership.objects.get(organization=personas.acme, user=personas.vera)
    client.post(reverse("member-remove", args=["acme", vera.pk]))
    assert not Membership.objects.filter(pk=vera.pk).exists()


def test_members_and_viewers_cannot_manage_members(client, personas):
    Membership.objects.create(organization=personas.acme, user=personas.charlie, role="member")
    for user in (personas.charlie, personas.vera):
        client.force_login(user)
        assert client.post(reverse("members", args=["acme"]), {"username": "bob", "role": "owner"}).status_code == 403
        alice = Membership.objects.get(organization=personas.acme, user=personas.alice)
        assert client.post(reverse("member-remove", args=["acme", alice.pk])).status_code == 403
        assert "Add a member" not in client.get(reverse("members", args=["acme"])).content.decode()
    assert not Membership.objects.filter(organization=personas.acme, user=personas.bob).exists()


def test_other_organizations_members_are_not_found(client, personas):
    client.force_login(personas.bob)
    assert client.get(reverse("members", args=["acme"])).status_code == 404
    vera = Membership.objects.get(organization=personas.acme, user=personas.vera)
    assert client.post(reverse("member-remove", args=["acme", vera.pk])).status_code == 404
    # A membership id of another organization under your own organization's URL is not found either.
    client.force_login(personas.alice)
    bobs = Membership.objects.get(user=personas.bob)
    assert client.post(reverse("member-remove", args=["acme", bobs.pk])).status_code == 404
    assert Membership.objects.filter(pk=bobs.pk).exists()


def test_support_staff_manage_any_organization_other_staff_only_look(client, personas):
    from tests.pages.test_staff import grant

    client.force_login(personas.sam)
    assert client.get(reverse("members", args=["globex"])).status_code == 200
    assert client.post(reverse("members", args=["globex"]), {"username": "charlie", "role": "owner"}).status_code == 403
    assert not Membership.objects.filter(organization=personas.globex, user=personas.charlie).exists()
    client.force_login(grant(personas.sam, "act_in_any_organization"))
    client.post(reverse("members", args=["globex"]), {"username": "charlie", "role": "owner"})
    assert Membership.objects.get(organization=personas.globex, user=personas.charlie).role == "owner"
