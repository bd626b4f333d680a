"""The admin changes members only for support staff (act_in_any_organization), only through the members page's
services (an organization keeps its last owner), and its audit entries say old → new. A cluster's identity and flags
cannot be edited there."""

import pytest
from django.urls import reverse

from provisioning.admin import audited_values
from provisioning.models import ApiToken, AuditEvent, Cluster, Membership
from provisioning.services.people import api_tokens
from tests.pages.test_staff import grant

pytestmark = pytest.mark.django_db(transaction=True)

MODEL_PERMISSIONS = [
    *("view_membership", "add_membership", "change_membership", "delete_membership"),
    *("view_organization", "change_organization"),
]
LAST_OWNER = "alice is the last owner of acme: make someone else owner first."


def membership(personas, user):
    return personas.acme.memberships.get(user=user)


def inline(organization, rows):
    """The organization's change form, its members inline: rows of (membership or None, user, role, delete)."""
    data = {
        "aws_account": "",
        "memberships-TOTAL_FORMS": str(len(rows)),
        "memberships-INITIAL_FORMS": str(sum(1 for row in rows if row[0] is not None)),
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    for index, (existing, user, role, delete) in enumerate(rows):
        prefix = f"memberships-{index}-"
        data |= {f"{prefix}id": existing.pk if existing else "", f"{prefix}organization": organization.pk}
        data |= {f"{prefix}user": user.pk, f"{prefix}role": role}
        if delete:
            data[f"{prefix}DELETE"] = "on"
    return data


def test_staff_without_the_permission_cannot_change_members_in_the_admin(client, personas):
    client.force_login(grant(personas.sam, *MODEL_PERMISSIONS))
    vera = membership(personas, personas.vera)
    # Sam cannot make himself owner of acme…
    response = client.post(
        reverse("admin:provisioning_membership_add"),
        {"user": personas.sam.pk, "organization": personas.acme.pk, "role": "owner"},
    )
    assert response.status_code == 403
    # …nor change, nor remove a member…
    response = client.post(reverse("admin:provisioning_membership_change", args=[vera.pk]), {"role": "owner"})
    assert response.status_code == 403
    assert (
        client.post(reverse("admin:provisioning_membership_delete", args=[vera.pk]), {"post": "yes"}).status_code == 403
    )
    client.post(
        reverse("admin:provisioning_membership_changelist"),
        {"action": "delete_selected", "_selected_action": [vera.pk], "post": "yes"},
    )
    # …nor through the organization's inline members.
    client.post(
        reverse("admin:provisioning_organization_change", args=[personas.acme.pk]),
        inline(personas.acme, [(vera, personas.vera, "owner", False), (None, personas.sam, "owner", False)]),
    )
    assert set(personas.acme.memberships.values_list("user__username", "role")) == {
        ("alice", "owner"),
        ("vera", "viewer"),
    }
    # What he may do is look.
    assert client.get(reverse("admin:provisioning_membership_change", args=[vera.pk])).status_code == 200
    assert not AuditEvent.objects.filter(action__startswith="member.").exists()


def test_support_staff_change_members_in_the_admin_through_the_members_service(client, personas):
    client.force_login(grant(personas.sam, "act_in_any_organization", *MODEL_PERMISSIONS))
    response = client.post(
        reverse("admin:provisioning_membership_add"),
        {"user": personas.charlie.pk, "organization": personas.acme.pk, "role": "member"},
    )
    assert response.status_code == 302
    assert membership(personas, personas.charlie).role == "member"
    assert AuditEvent.objects.get(action="member.set").detail == "charlie: added as member"
    added = AuditEvent.objects.get(action="admin.add")
    assert "role: member" in added.detail and "organization: acme" in added.detail

    vera = membership(personas, personas.vera)
    response = client.post(
        reverse("admin:provisioning_membership_change", args=[vera.pk]),
        # The user and organization a membership is of are not changed by posting others.
        {"user": personas.charlie.pk, "organization": personas.globex.pk, "role": "owner"},
    )
    assert response.status_code == 302
    vera.refresh_from_db()
    assert (vera.user, vera.organization, vera.role) == (personas.vera, personas.acme, "owner")
    assert AuditEvent.objects.get(action="admin.change").detail == "role: viewer → owner"

    response = client.post(reverse("admin:provisioning_membership_delete", args=[vera.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=vera.pk).exists()
    assert AuditEvent.objects.get(action="member.remove").detail == "vera"


def test_the_last_owner_stays_whatever_the_admin_page(client, personas):
    client.force_login(grant(personas.sam, "act_in_any_organization", *MODEL_PERMISSIONS))
    alice = membership(personas, personas.alice)
    page = client.post(reverse("admin:provisioning_membership_change", args=[alice.pk]), {"role": "member"})
    assert page.status_code == 200 and LAST_OWNER in page.content.decode()

    page = client.post(reverse("admin:provisioning_membership_delete", args=[alice.pk]), {"post": "yes"})
    assert LAST_OWNER in page.content.decode()
    page = client.post(
        reverse("admin:provisioning_membership_changelist"),
        {"action": "delete_selected", "_selected_action": [alice.pk], "post": "yes"},
    )
    assert LAST_OWNER in page.content.decode()

    vera = membership(personas, personas.vera)
    change = reverse("admin:provisioning_organization_change", args=[personas.acme.pk])
    page = client.post(
        change, inline(personas.acme, [(alice, personas.alice, "owner", True), (vera, personas.vera, "viewer", False)])
    )
    assert page.status_code == 200 and LAST_OWNER in page.content.decode()
    alice.refresh_from_db()
    assert alice.role == "owner"

    # Handing over in one save is fine: vera becomes owner before alice stops being one.
    response = client.post(
        change, inline(personas.acme, [(alice, personas.alice, "member", False), (vera, personas.vera, "owner", False)])
    )
    assert response.status_code == 302
    assert set(personas.acme.memberships.values_list("user__username", "role")) == {
        ("alice", "member"),
        ("vera", "owner"),
    }


def test_a_clusters_identity_and_flags_are_read_only_in_the_admin(client, personas):
    personas.sam.is_superuser = True
    personas.sam.save()
    client.force_login(personas.sam)
    cluster = Cluster.objects.create(
        organization=personas.acme,
        name="prod",
        api_server="https://k8s.example:6443",
        owner_id="acme-prod-0001",
        kube_system_uid="6f1c0d6e-0000-4000-8000-000000000001",
        externaldns_flags={"interval": "1m"},
        state=Cluster.State.READY,
    )
    url = reverse("admin:provisioning_cluster_change", args=[cluster.pk])
    page = client.get(url).content.decode()
    for field in ("kube_system_uid", "externaldns_flags", "organization", "api_server", "owner_id", "name", "state"):
        assert f'name="{field}"' not in page, field
    client.post(url, {"kube_system_uid": "", "externaldns_flags": "not json", "api_server": "https://evil.example"})
    cluster.refresh_from_db()
    assert cluster.kube_system_uid == "6f1c0d6e-0000-4000-8000-000000000001"
    assert cluster.externaldns_flags == {"interval": "1m"}
    assert cluster.api_server == "https://k8s.example:6443"


def test_audit_entries_never_show_a_secret(personas):
    token, raw = api_tokens.create_token(personas.alice, "ci", 1)
    shown = audited_values(ApiToken.objects.get(pk=token.pk))
    assert shown["token_hash"] == "(secret)"
    assert raw not in str(shown) and token.token_hash not in str(shown)
