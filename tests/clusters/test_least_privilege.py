"""The least-privilege policies of docs/policies/ (docs/security-model.md includes them) are enough for a full flow, and no more than that.

moto does not enforce IAM policies, so every AWS call orgdns makes in a full flow is recorded where botocore builds
it, and checked against the policy documents with moto's own policy evaluator (plus the record-name condition it
cannot evaluate). The Vault policy is enforced for real: the whole suite runs with a token made from it.
"""

from io import StringIO

import hvac
import pytest
from django.conf import settings
from django.core.management import call_command

from devstack.policies import iam_policy
from provisioning.models import HostedZone, Operation
from provisioning.services import backends
from provisioning.services.certificates import actions as certificates
from provisioning.services.clusters import actions as clusters
from provisioning.services.clusters.jobs import DeregisterCluster
from provisioning.services.credentials import actions as key_rotation
from provisioning.services.zones import gc as zone_gc
from tests.conftest import VAULT_ROOT_TOKEN, run_jobs
from tests.unit.test_policies import ACCOUNT, BOUNDARY, names_allowed, permitted, record_name_patterns

pytestmark = pytest.mark.django_db(transaction=True)

POLICY_CONDITIONED_ON_THE_BOUNDARY = ("CreateUser", "PutUserPolicy", "DeleteUserPolicy")


@pytest.fixture
def aws_calls(stack):
    """Every call orgdns's own AWS identity makes: (service, operation, parameters)."""
    calls = []

    def record(params, model, **_):
        calls.append((model.service_model.endpoint_prefix, model.name, dict(params)))

    backends.aws_session().events.register("before-parameter-build", record)
    return calls


def what_iam_checks(service, operation, params, boundaries):
    """The (action, resource, condition values) IAM authorizes for this call."""
    if service == "iam" and operation == "ListUsers":
        return [("iam:ListUsers", "*", {})]
    if service == "iam":
        user = params["UserName"]
        resource = f"arn:aws:iam::{ACCOUNT}:user/{user}"
        conditions = (
            {"iam:PermissionsBoundary": boundaries.get(user, "")}
            if operation in POLICY_CONDITIONED_ON_THE_BOUNDARY
            else {}
        )
        checks = [(f"iam:{operation}", resource, conditions)]
        if operation == "CreateUser" and params.get("Tags"):
            checks.append(("iam:TagUser", resource, {}))
        return checks
    zone = params.get("HostedZoneId") or params.get("Id") or params.get("ResourceId")
    resource = f"arn:aws:route53:::hostedzone/{zone.split('/')[-1]}" if zone and operation != "GetChange" else "*"
    return [(f"route53:{operation}", resource, {})]


def test_the_iam_policy_allows_every_call_of_a_full_flow_and_users_get_the_boundary(
    personas, make_cluster_api, aws, settings, aws_calls
):
    parent = aws.route53.create_hosted_zone(Name="orgdns.test", CallerReference="parent")["HostedZone"]["Id"]
    settings.ORGDNS_PARENT_ZONE_ID = parent.split("/")[-1]
    settings.ORGDNS_IAM_PERMISSIONS_BOUNDARY = BOUNDARY
    aws_calls.clear()

    api = make_cluster_api()
    api.allow_certificates("web")
    cluster, _ = clusters.register_cluster(personas.acme, "prod", api.connection)
    run_jobs()
    certificates.issue_certificate(personas.acme, ["www.acme.orgdns.test"], [(cluster, "web", "www-tls")])
    run_jobs()
    key_rotation.request_rotation(personas.acme, "the least-privilege flow")
    run_jobs()
    call_command("reconcile", "--apply", "--grace", "0", stdout=StringIO())
    DeregisterCluster.enqueue(cluster)
    run_jobs()
    zone_gc.delete_now(HostedZone.objects.get(), None)
    run_jobs()
    assert set(Operation.objects.values_list("state", flat=True)) == {Operation.State.SUCCEEDED}
    assert HostedZone.objects.get().state == HostedZone.State.DELETED

    policy = iam_policy(ACCOUNT, "orgdns", settings.ORGDNS_BASE_DOMAIN, BOUNDARY)
    boundaries = {p["UserName"]: p.get("PermissionsBoundary", "") for s, op, p in aws_calls if op == "CreateUser"}
    assert boundaries == {"orgdns-acme": BOUNDARY}
    operations = {(service, operation) for service, operation, _ in aws_calls}
    assert {
        ("route53", "CreateHostedZone"),
        ("route53", "ChangeResourceRecordSets"),
        ("route53", "DeleteHostedZone"),
        ("iam", "CreateUser"),
        ("iam", "PutUserPolicy"),
        ("iam", "CreateAccessKey"),
        ("iam", "DeleteAccessKey"),
        ("iam", "DeleteUser"),
        ("route53", "ListHostedZones"),
        ("iam", "ListUsers"),
    } <= operations
    assert [op for _, op, _ in aws_calls].count("CreateAccessKey") == 2  # the first key, and the rotation's
    for service, operation, params in aws_calls:
        if service == "sts":
            continue  # GetCallerIdentity, with the tenant's new key: needs no permission
        for action, resource, conditions in what_iam_checks(service, operation, params, boundaries):
            assert permitted(policy, action, resource, **conditions), (action, resource, conditions)
        if operation == "ChangeResourceRecordSets":
            names = [change["ResourceRecordSet"]["Name"] for change in params["ChangeBatch"]["Changes"]]
            assert names_allowed(record_name_patterns(policy), names), names


@pytest.mark.integration
def test_orgdns_vault_token_holds_its_policy_only(stack):
    """The token every test gives orgdns (tests/conftest.py) is made from docs/policies/orgdns-vault.hcl."""
    client = hvac.Client(url=stack.vault_url, token=settings.VAULT_TOKEN)
    assert settings.VAULT_TOKEN != VAULT_ROOT_TOKEN
    assert sorted(client.auth.token.lookup_self()["data"]["policies"]) == ["default", f"orgdns-{settings.VAULT_PREFIX}"]
    kv = client.secrets.kv.v2
    kv.create_or_update_secret(path=f"{settings.VAULT_PREFIX}/orgs/acme/probe", secret={"a": "b"}, mount_point="secret")
    assert kv.read_secret_version(
        path=f"{settings.VAULT_PREFIX}/orgs/acme/probe", mount_point="secret", raise_on_deleted_version=True
    )
    assert kv.list_secrets(path=f"{settings.VAULT_PREFIX}/orgs", mount_point="secret")["data"]["keys"] == ["acme/"]
    assert kv.read_secret_metadata(path=f"{settings.VAULT_PREFIX}/orgs/acme/probe", mount_point="secret")["data"][
        "versions"
    ]
    kv.delete_metadata_and_all_versions(path=f"{settings.VAULT_PREFIX}/orgs/acme/probe", mount_point="secret")
    root = hvac.Client(url=stack.vault_url, token=VAULT_ROOT_TOKEN)
    root.secrets.kv.v2.create_or_update_secret(path="someone-else/secret", secret={"a": "b"}, mount_point="secret")
    for attempt in (
        lambda: kv.read_secret_version(path="someone-else/secret", mount_point="secret", raise_on_deleted_version=True),
        lambda: kv.create_or_update_secret(path="someone-else/other", secret={"a": "b"}, mount_point="secret"),
        lambda: kv.delete_metadata_and_all_versions(path="someone-else/secret", mount_point="secret"),
        lambda: kv.list_secrets(path="someone-else", mount_point="secret"),
        lambda: kv.list_secrets(path="", mount_point="secret"),
        lambda: kv.read_secret_metadata(path="someone-else/secret", mount_point="secret"),
        lambda: client.sys.list_policies(),
    ):
        with pytest.raises(hvac.exceptions.Forbidden):
            attempt()
