"""Every state-changing action leaves an audit event: who, what, which object, when, which request, outcome."""

import pytest
from django.urls import reverse

from provisioning.models import AuditEvent, Cluster
from tests.conftest import run_jobs

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_registration_is_traced_from_the_request_through_the_job(client, personas, cluster_api):
    client.force_login(personas.alice)
    response = client.post(
        reverse("cluster-register", args=["acme"]),
        {"name": "edge", "api_server": cluster_api.url, "token": cluster_api.token, "ca_pem": cluster_api.ca_pem},
        HTTP_X_REQUEST_ID="req-12345",
    )
    request_id = response["X-Request-ID"]
    assert len(request_id) == 32 and request_id != "req-12345"  # ours; the client's is kept beside it
    run_jobs()
    cluster = Cluster.objects.get()
    events = list(
        AuditEvent.objects.order_by("id").values_list(
            "action", "source", "actor_name", "request_id", "outcome", "object_type", "object_id"
        )
    )
    assert events == [
        ("register.queued", "ui", "alice", request_id, "ok", "cluster", str(cluster.pk)),
        ("register.succeeded", "job", "alice", request_id, "ok", "cluster", str(cluster.pk)),
    ]
    assert AuditEvent.objects.get(action="register.queued").client_request_id == "req-12345"
    assert cluster.operations.get().request_id == request_id
    assert AuditEvent.objects.filter(organization=personas.acme).count() == 2


def test_a_failed_job_and_a_refused_request_are_recorded(client, personas, cluster_api):
    client.force_login(personas.alice)
    client.post(
        reverse("cluster-register", args=["acme"]),
        {"name": "edge", "api_server": cluster_api.url, "token": "wrong", "ca_pem": cluster_api.ca_pem},
    )
    refused = AuditEvent.objects.get()
    assert (refused.action, refused.outcome, refused.object_repr) == ("register.refused", "refused", "acme")
    assert "refused our token" in refused.detail and "wrong" not in refused.detail

    client.post(
        reverse("cluster-register", args=["acme"]),
        {"name": "edge", "api_server": cluster_api.url, "token": cluster_api.token, "ca_pem": cluster_api.ca_pem},
    )
    cluster_api.revoke_token()
    run_jobs()
    failed = AuditEvent.objects.get(action="register.failed")
    assert failed.outcome == "failed" and "refused our token" in failed.detail


def test_member_changes_and_new_organizations_are_recorded(client, personas):
    client.force_login(personas.alice)
    client.post(reverse("members", args=["acme"]), {"username": "charlie", "role": "viewer"})
    client.post(reverse("members", args=["acme"]), {"username": "charlie", "role": "member"})
    details = list(AuditEvent.objects.filter(action="member.set").order_by("id").values_list("detail", flat=True))
    assert details == ["charlie: added as viewer", "charlie: viewer → member"]
    from tests.pages.test_staff import grant

    client.force_login(grant(personas.sam, "add_organization"))
    client.post(reverse("organization-create"), {"name": "initech"})
    created = AuditEvent.objects.get(action="organization.create")
    assert (created.actor, created.source, created.object_repr) == (personas.sam, "ui", "initech")


def test_a_client_cannot_choose_the_request_id_its_actions_are_audited_under(client, personas):
    client.force_login(personas.alice)
    first = client.post(reverse("members", args=["acme"]), {"username": "charlie", "role": "viewer"})
    taken = first["X-Request-ID"]
    second = client.post(
        reverse("members", args=["acme"]), {"username": "charlie", "role": "member"}, HTTP_X_REQUEST_ID=taken
    )
    assert second["X-Request-ID"] != taken
    events = AuditEvent.objects.filter(action="member.set").order_by("id")
    assert [e.request_id for e in events] == [taken, second["X-Request-ID"]]
    assert events.last().client_request_id == taken  # recorded, for what it is worth


def test_a_client_request_id_that_is_not_a_sane_token_is_not_recorded(client, personas):
    client.force_login(personas.alice)
    response = client.post(
        reverse("members", args=["acme"]),
        {"username": "charlie", "role": "viewer"},
        HTTP_X_REQUEST_ID="bad id\nwith newline",
    )
    assert len(response["X-Request-ID"]) == 32
    assert AuditEvent.objects.get(action="member.set").client_request_id == ""
