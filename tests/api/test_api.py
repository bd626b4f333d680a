"""The API end to end: lists a page at a time, errors that name what is wrong, certificates, zone records, members,
retries, the audit trail, and no secret in any answer."""

import pytest
from cryptography import x509

from provisioning.models import AuditEvent, Cluster, Operation
from provisioning.services.backends import vault_root
from provisioning.services.clusters import actions as clusters
from provisioning.services.people import api_tokens
from tests.clusters.test_deregister import _upsert, owned_records, write
from tests.conftest import VAULT_ROOT_TOKEN, run_jobs
from tests.factories import register

pytestmark = pytest.mark.django_db(transaction=True)


class Api:
    """The test client with a token of one user."""

    def __init__(self, client, user):
        _, raw = api_tokens.create_token(user, "test", 1)
        self.client, self.headers = client, {"Authorization": f"Bearer {raw}"}

    def __getattr__(self, method):
        def call(path, body=None, **headers):
            url = path if path.startswith(("http", "/api/")) else f"/api/v1{path}"
            return getattr(self.client, method)(
                url, body, content_type="application/json", headers={**self.headers, **headers}
            )

        return call


@pytest.fixture
def alice(client, personas):
    return Api(client, personas.alice)


@pytest.fixture
def ready_cluster(personas, cluster_api):
    cluster_api.allow_certificates("web")
    return register(personas.acme, "prod", cluster_api, personas.alice)


def test_lists_come_a_page_at_a_time_with_links(alice, personas):
    Cluster.objects.bulk_create(
        [
            Cluster(
                organization=personas.acme, name=f"c{i:02}", api_server="https://k", owner_id=f"o{i}", state="ready"
            )
            for i in range(30)
        ]
    )
    first = alice.get("/organizations/acme/clusters?page_size=12").json()
    assert (first["count"], first["pages"], first["previous"]) == (30, 3, None)
    assert [c["name"] for c in first["items"]] == [f"c{i:02}" for i in range(12)]
    last = alice.get(alice.get(first["next"]).json()["next"]).json()
    assert [c["name"] for c in last["items"]] == [f"c{i:02}" for i in range(24, 30)] and last["next"] is None
    beyond = alice.get("/organizations/acme/clusters?page_size=12&page=9").json()
    assert beyond["items"] == [] and beyond["count"] == 30
    too_big = alice.get("/organizations/acme/clusters?page_size=1000")
    assert too_big.status_code == 422 and too_big.json()["errors"][0]["field"] == "page_size"


def test_errors_are_problem_details_that_name_what_is_wrong(alice, personas):
    empty = alice.post("/organizations/acme/certificates", {"dns_names": []})
    assert empty.status_code == 422 and empty["Content-Type"] == "application/problem+json"
    assert [e["field"] for e in empty.json()["errors"]] == ["dns_names"]

    outside = alice.post("/organizations/acme/certificates", {"dns_names": ["www.globex.orgdns.test"]})
    assert outside.status_code == 422 and "www.globex.orgdns.test" in outside.json()["detail"]

    wrong_target = alice.post(
        "/organizations/acme/certificates",
        {"dns_names": ["www.acme.orgdns.test"], "install": [{"cluster": 99, "namespace": "web", "secret_name": "tls"}]},
    )
    assert wrong_target.status_code == 422 and "no registered cluster with id 99" in wrong_target.json()["detail"]

    garbage = alice.client.post(
        "/api/v1/organizations/acme/certificates", b"{not json", content_type="application/json", headers=alice.headers
    )
    assert garbage.status_code == 400 and garbage["Content-Type"] == "application/problem+json"

    missing = alice.get("/organizations/acme/clusters/12345")
    problem = missing.json()
    assert (problem["status"], problem["title"], problem["instance"]) == (
        404,
        "Not Found",
        "/api/v1/organizations/acme/clusters/12345",
    )
    assert problem["request_id"] == missing["X-Request-ID"]


def test_issue_install_and_download_a_certificate(alice, personas, ready_cluster, cluster_api):
    target = {"cluster": ready_cluster.pk, "namespace": "web", "secret_name": "app-tls"}
    issued = alice.post(
        "/organizations/acme/certificates",
        {"dns_names": ["app.acme.orgdns.test", "*.acme.orgdns.test"], "install": [target]},
    )
    assert issued.status_code == 202, issued.content
    certificate_url = f"/organizations/acme/certificates/{issued.json()['certificate']['id']}"
    run_jobs()

    certificate = alice.get(certificate_url).json()
    assert certificate["state"] == "active" and certificate["expiry"] == "valid"
    assert [
        (i["cluster"]["name"], i["namespace"], i["secret_name"], i["state"]) for i in certificate["installations"]
    ] == [("prod", "web", "app-tls", "installed")]
    pem = alice.get(f"{certificate_url}/certificate.crt")
    assert pem["Content-Type"] == "application/x-pem-file"
    leaf = x509.load_pem_x509_certificate(pem.content)
    assert format(leaf.serial_number, "x") == certificate["serial"].lower().lstrip("0")
    ca = x509.load_pem_x509_certificate(alice.get("/organizations/acme/certificates/ca.crt").content)
    assert leaf.issuer == ca.subject
    assert b"PRIVATE KEY" not in pem.content + alice.get(certificate_url).content

    renewed = alice.post(f"{certificate_url}/renew")
    assert renewed.status_code == 202
    again = alice.post(f"{certificate_url}/renew")
    assert again.status_code == 409 and "renewing" in again.json()["detail"]


def test_zone_and_its_records_with_their_owner_cluster(alice, personas, ready_cluster, aws):
    zone = alice.get("/organizations/acme/zone").json()
    assert zone["name"] == "acme.orgdns.test" and zone["access_key_id"].startswith(("AKIA", "ASIA"))
    assert zone["garbage_collection"]["action"] == "keep"
    write(aws, zone["zone_id"], owned_records(ready_cluster.owner_id, zone["name"], 2, "app"))
    write(aws, zone["zone_id"], [_upsert(f"manual.{zone['name']}", "CNAME", "example.org")])
    from django.core.cache import cache

    cache.clear()
    records = alice.get("/organizations/acme/zone/records?page_size=300").json()
    by_name = {(r["name"], r["type"]): r for r in records["items"]}
    assert by_name[("app0.acme.orgdns.test.", "A")]["cluster"] == {"id": ready_cluster.pk, "name": "prod"}
    assert by_name[("manual.acme.orgdns.test.", "CNAME")]["cluster"] is None
    assert records["next"] is None and "count" not in records

    # Three at a time, as Route53 pages them: following `next` gives every record set once, with the same owners.
    paged, url = [], "/organizations/acme/zone/records?page_size=3"
    while url:
        page = alice.get(url).json()
        assert len(page["items"]) <= 3
        paged += page["items"]
        url = page["next"]
    assert paged == records["items"]
    refused = alice.get("/organizations/acme/zone/records?start_name=www.example.org.&start_type=A")
    assert refused.status_code == 422 and "is not a record name in acme.orgdns.test." in refused.json()["detail"]


def test_owners_manage_members_and_the_last_owner_stays(client, alice, personas):
    assert alice.put("/organizations/acme/members/charlie", {"role": "member"}).json() == {
        "username": "charlie",
        "role": "member",
        "source": "hand",
    }
    assert alice.delete("/organizations/acme/members/charlie").status_code == 204
    unknown = alice.put("/organizations/acme/members/nobody", {"role": "member"})
    assert unknown.status_code == 422 and "There is no user named 'nobody'" in unknown.json()["detail"]
    last = alice.delete("/organizations/acme/members/alice")
    assert last.status_code == 409 and "last owner of acme" in last.json()["detail"]
    actions = list(AuditEvent.objects.filter(source="api").order_by("id").values_list("action", "actor_name"))
    assert actions == [("member.set", "alice"), ("member.remove", "alice")]


def test_deregister_then_refuse_a_second_time(alice, ready_cluster):
    response = alice.delete(f"/organizations/acme/clusters/{ready_cluster.pk}")
    assert response.status_code == 202
    assert alice.delete(f"/organizations/acme/clusters/{ready_cluster.pk}").status_code == 409
    run_jobs()
    assert alice.get(response["Location"]).json()["state"] == "succeeded"
    assert alice.get("/organizations/acme/clusters").json()["count"] == 0
    assert alice.get("/organizations/acme/clusters?state=deregistered").json()["items"][0]["id"] == ready_cluster.pk


def test_retry_a_failed_operation(alice, personas, cluster_api):
    cluster, operation = clusters.register_cluster(personas.acme, "prod", cluster_api.connection, personas.alice)
    # The cluster refuses applying ExternalDNS's Deployment once (a permanent error: the job fails at once).
    cluster_api.fail_next(
        1, 403, 'deployments.apps "external-dns" is forbidden: denied by an admission policy', "PATCH", "/deployments/"
    )
    run_jobs()
    failed = alice.get(f"/operations/{operation.pk}").json()
    assert (
        failed["state"] == "failed" and "403" in failed["error"] and "denied by an admission policy" in failed["error"]
    )
    assert failed["log"]

    retried = alice.post(f"/operations/{operation.pk}/retry")
    assert retried.status_code == 202
    assert alice.post(f"/operations/{operation.pk}/retry").status_code == 409
    run_jobs()
    assert alice.get(retried["Location"]).json()["state"] == "succeeded"
    listed = alice.get("/operations?organization=acme&kind=register&state=succeeded").json()
    assert [o["id"] for o in listed["items"]] == [retried.json()["operation"]["id"]]


def test_audit_events_are_filtered_and_carry_the_request_id(alice, personas, ready_cluster):
    response = alice.post(
        f"/organizations/acme/clusters/{ready_cluster.pk}/reprovision", **{"X-Request-ID": "deploy-42"}
    )
    request_id = response["X-Request-ID"]
    assert response.status_code == 202 and len(request_id) == 32 and request_id != "deploy-42"  # ours, not the client's
    run_jobs()
    events = alice.get(f"/audit-events?request_id={request_id}").json()["items"]
    assert [(e["action"], e["source"], e["actor"], e["client_request_id"]) for e in events] == [
        ("register.succeeded", "job", "alice", ""),
        ("register.queued", "api", "alice", "deploy-42"),
    ]
    (by_client_id,) = alice.get("/audit-events?client_request_id=deploy-42").json()["items"]
    assert (by_client_id["action"], by_client_id["request_id"]) == ("register.queued", request_id)
    assert alice.get("/audit-events?action=register.&outcome=ok&organization=acme").json()["count"] == 4
    assert alice.get("/audit-events?organization=globex").json()["count"] == 0


def test_no_secret_in_any_answer(alice, personas, ready_cluster, cluster_api, make_cluster_api, vault):
    aws_secret = vault.secrets.kv.v2.read_secret_version(
        path=f"{vault_root()}/orgs/acme/aws", mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]["secret_access_key"]
    operation = ready_cluster.operations.get()
    answers = [
        alice.get(path).content.decode()
        for path in (
            "/organizations/acme",
            "/organizations/acme/clusters",
            f"/organizations/acme/clusters/{ready_cluster.pk}",
            "/organizations/acme/zone",
            "/operations",
            f"/operations/{operation.pk}",
            "/audit-events",
        )
    ]
    other = make_cluster_api()  # a cluster is registered once: the second is another one
    registered = alice.post(
        "/organizations/acme/clusters",
        {"name": "second", "api_server": other.url, "ca_pem": other.ca_pem, "token": other.token},
    )
    assert registered.status_code == 202, registered.content
    answers.append(registered.content.decode())
    refused = alice.post(
        "/organizations/acme/clusters", {"name": "third", "api_server": other.url, "token": "not-the-token-x"}
    )
    assert refused.status_code == 422
    answers.append(refused.content.decode())
    again = alice.post(
        "/organizations/acme/clusters",
        {"name": "fourth", "api_server": cluster_api.url, "ca_pem": cluster_api.ca_pem, "token": cluster_api.token},
    )
    assert again.status_code == 422 and "already registered" in again.json()["detail"]
    answers.append(again.content.decode())
    for secret in (aws_secret, cluster_api.token, other.token, VAULT_ROOT_TOKEN, "not-the-token-x"):
        assert all(secret not in answer for answer in answers)
    assert Operation.objects.count() == 2
