"""Property: whatever is posted to any form — random or hostile — there is no server error, and a request either
does all it should or changes nothing: no row, no Vault path, no AWS object."""

import base64

import pytest
import yaml
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from provisioning.models import (
    AuditEvent,
    Certificate,
    CertificateInstallation,
    Cluster,
    Membership,
    Operation,
    Organization,
)
from provisioning.services.backends import vault_root
from provisioning.services.certificates import actions as certificates
from provisioning.services.clusters import actions as clusters
from tests.conftest import run_jobs, vault_tree

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE = [
    "",
    " ",
    "\t\n",
    "\x00",
    "a\x00b",
    "\u202eevil",
    "\ufeff",
    "😀",
    "ß",
    "İ",
    "xn--",
    "a" * 5000,
    "../../../etc/passwd",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    '"; DROP TABLE provisioning_cluster; --',
    "${jndi:ldap://x/a}",
    "{{ settings.SECRET_KEY }}",
    "{% debug %}",
    "%s%s%n",
    "null",
    "None",
    "[]",
    "{}",
    "-1",
    "9" * 40,
    "www",
    "ns1",
    "_dmarc",
    "acme",
    "globex",
    "kube-system",
    "external-dns",
    "default",
    "*",
    "*.acme.orgdns.test",
    "acme.orgdns.test",
    "www.acme.orgdns.test",
    "www.globex.orgdns.test",
    "10.0.0.1",
    "::1",
    "https://169.254.169.254",
    "https://[fd00:ec2::254]",
    "https://[::1",
    "https://127.0.0.1:0",
    "https://127.0.0.1:99999",
    "https://user:pw@127.0.0.1:1",
    "http://127.0.0.1:1",
    "file:///etc/passwd",
    "https://no-such-cluster.invalid",
    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
    "owner",
    "member",
    "viewer",
    "root",
]
text = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=80))
PROPERTY = hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
ROWS = (Organization, Membership, Cluster, Operation, Certificate, CertificateInstallation)


@pytest.fixture
def world(personas, make_cluster_api, settings, aws, vault):
    """acme with a ready cluster and an issued certificate, and a cluster nobody registered yet (`unregistered`);
    alice (owner) and sam (support staff) logged in at will."""
    cluster_api = make_cluster_api()
    cluster_api.allow_certificates("web")
    settings.ORGDNS_PROBE_TIMEOUT = 5  # one deadline for the probe and its 28 access reviews
    settings.ORGDNS_PROBE_BURST = 10**6  # the per-user budget has its own test
    cluster, _ = clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    certificate, _ = certificates.issue_certificate(personas.acme, ["www.acme.orgdns.test"])
    run_jobs()
    certificate.refresh_from_db()
    personas.sam.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_organization", "act_in_any_organization"])
    )
    personas.cluster, personas.certificate, personas.aws, personas.vault = cluster, certificate, aws, vault
    personas.unregistered = make_cluster_api()
    personas.settings_prefix = settings.VAULT_PREFIX
    return personas


def state(world):
    """Everything a request could leave behind."""
    aws = world.aws
    return {
        "rows": {model.__name__: set(model.objects.values_list("pk", flat=True)) for model in ROWS},
        "memberships": set(Membership.objects.values_list("user_id", "organization_id", "role")),
        "vault": set(vault_tree(world.vault, world.settings_prefix)),
        "zones": {z["Id"] for z in aws.route53.list_hosted_zones()["HostedZones"]},
        "users": {u["UserName"] for u in aws.iam.list_users()["Users"]},
    }


@pytest.fixture
def check(world, client):
    def post(user, url, data, done, must_succeed=False):
        """Post as user; no server error; unchanged unless the request succeeded, and then done(before, after) holds."""
        client.force_login(user)
        before = state(world)
        response = client.post(url, data)
        assert response.status_code in (200, 302, 403, 404), response.status_code
        assert response.status_code == 302 or not must_succeed, response.content.decode()[-2000:]
        after = state(world)
        if response.status_code == 302 and done is not None:
            done(before, after)
        else:
            assert after == before, (data, response.status_code)

    return post


def added(before, after, key, model=None):
    return after[key][model] - before[key][model] if model else after[key] - before[key]


@given(name=text)
@example(name="initech")
@PROPERTY
def test_create_organization(world, check, name):
    def done(before, after):
        (org,) = Organization.objects.filter(pk__in=added(before, after, "rows", "Organization"))
        assert org.name == name.strip() and org.memberships.get().user == world.sam
        assert AuditEvent.objects.filter(action="organization.create", object_id=str(org.pk)).exists()
        assert after["vault"] == before["vault"] and after["zones"] == before["zones"]
        org.memberships.all().delete()
        org.delete()  # the next example starts from the same world

    check(world.sam, reverse("organization-create"), {"name": name}, done, must_succeed=name == "initech")


@given(username=st.one_of(st.sampled_from(["charlie", "bob", "vera"]), text), role=text)
@example(username="charlie", role="viewer")
@PROPERTY
def test_set_member(world, check, username, role):
    def done(before, after):
        assert Membership.objects.get(organization=world.acme, user__username=username.strip()).role == role
        Membership.objects.filter(organization=world.acme, user__username=username.strip()).delete()
        for user_id, organization_id, was in before["memberships"]:
            Membership.objects.update_or_create(
                user_id=user_id, organization_id=organization_id, defaults={"role": was}
            )

    check(
        world.alice,
        reverse("members", args=["acme"]),
        {"username": username, "role": role},
        done,
        must_succeed=role == "viewer" and username == "charlie",
    )


def kubeconfigs(world):
    api = world.unregistered
    good = {
        "current-context": "x",
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
        "clusters": [
            {
                "name": "x",
                "cluster": {
                    "server": api.url,
                    "certificate-authority-data": base64.b64encode(api.ca_pem.encode()).decode(),
                },
            }
        ],
        "users": [{"name": "x", "user": {"token": api.token}}],
    }
    documents = st.recursive(
        st.none() | st.booleans() | st.integers() | text,
        lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
        max_leaves=12,
    )
    mangled = st.builds(lambda key, value: {**good, key: value}, st.sampled_from(list(good)), documents)
    return st.one_of(st.just(good), mangled, documents).map(lambda doc: yaml.safe_dump(doc).encode()) | st.binary(
        max_size=300
    )


VALID = "<valid>"  # stands for the value that works, which only the test's world knows


def valid_or(strategy):
    return st.one_of(st.just(VALID), strategy)


def fill(fields, valid):
    return {name: valid[name] if value == VALID else value for name, value in fields.items()}


@given(
    name=valid_or(text),
    api_server=valid_or(text),
    token=valid_or(text),
    ca_pem=valid_or(text),
    context=valid_or(text),
    kubeconfig=st.one_of(st.none(), st.binary(max_size=300), st.data()),
)
@example(name=VALID, api_server=VALID, token=VALID, ca_pem=VALID, context=VALID, kubeconfig=None)
@PROPERTY
def test_register_cluster(world, check, name, api_server, token, ca_pem, context, kubeconfig):
    api = world.unregistered
    valid = {"name": "edge", "api_server": api.url, "token": api.token, "ca_pem": api.ca_pem, "context": ""}
    fields = fill({"name": name, "api_server": api_server, "token": token, "ca_pem": ca_pem, "context": context}, valid)
    if kubeconfig is not None:
        content = kubeconfig if isinstance(kubeconfig, bytes) else kubeconfig.draw(kubeconfigs(world))
        fields["kubeconfig"] = SimpleUploadedFile("kubeconfig", content)

    def done(before, after):
        (cluster,) = Cluster.objects.filter(pk__in=added(before, after, "rows", "Cluster"))
        assert cluster.operations.get().kind == "register"
        assert added(before, after, "vault") == {f"{vault_root()}/orgs/acme/clusters/{cluster.owner_id}"}
        assert after["zones"] == before["zones"] and after["users"] == before["users"]
        cluster.operations.all().delete()
        cluster.delete()  # the next example starts from the same world
        world.vault.secrets.kv.v2.delete_metadata_and_all_versions(
            path=next(iter(added(before, after, "vault"))), mount_point="secret"
        )

    everything_valid = all(v == VALID for v in (name, api_server, token, ca_pem, context)) and kubeconfig is None
    check(world.alice, reverse("cluster-register", args=["acme"]), fields, done, must_succeed=everything_valid)


@given(
    dns_names=valid_or(text),
    targets=st.lists(valid_or(text), max_size=2),
    namespace=valid_or(text),
    secret_name=valid_or(text),
)
@example(dns_names=VALID, targets=[VALID], namespace=VALID, secret_name=VALID)
@PROPERTY
def test_issue_certificate(world, check, dns_names, targets, namespace, secret_name):
    valid = {"dns_names": "api.acme.orgdns.test www.acme.orgdns.test", "namespace": "web", "secret_name": "api-tls"}
    fields = fill({"dns_names": dns_names, "namespace": namespace, "secret_name": secret_name}, valid)
    fields["clusters"] = [str(world.cluster.pk) if value == VALID else value for value in targets]

    def done(before, after):
        (certificate,) = Certificate.objects.filter(pk__in=added(before, after, "rows", "Certificate"))
        assert certificate.operations.get().kind == "issue_certificate"
        assert certificate.installations.count() == len(set(fields["clusters"]))
        assert after["vault"] == before["vault"]  # the job, not the request, writes to Vault
        certificate.operations.all().delete()
        certificate.delete()

    everything_valid = all(v == VALID for v in (dns_names, namespace, secret_name, *targets)) and targets
    check(world.alice, reverse("certificate-issue", args=["acme"]), fields, done, must_succeed=bool(everything_valid))


@given(cluster=valid_or(text), namespace=valid_or(text), secret_name=valid_or(text))
@example(cluster=VALID, namespace=VALID, secret_name=VALID)
@PROPERTY
def test_install_certificate(world, check, cluster, namespace, secret_name):
    certificate = world.certificate
    valid = {"cluster": str(world.cluster.pk), "namespace": "web", "secret_name": "www-tls"}
    fields = fill({"cluster": cluster, "namespace": namespace, "secret_name": secret_name}, valid)

    def done(before, after):
        (installation,) = CertificateInstallation.objects.filter(
            pk__in=added(before, after, "rows", "CertificateInstallation")
        )
        (operation,) = Operation.objects.filter(pk__in=added(before, after, "rows", "Operation"))
        # The form strips surrounding whitespace (str.strip's, \x85 and the like included), as every CharField does.
        assert (installation.namespace, operation.kind) == (
            fields["namespace"].strip(),
            "install_certificate",
        )
        operation.delete()
        installation.delete()
        Certificate.objects.filter(pk=certificate.pk).update(state=Certificate.State.ACTIVE)

    everything_valid = cluster == namespace == secret_name == VALID
    check(
        world.alice,
        reverse("certificate-install", args=["acme", certificate.pk]),
        fields,
        done,
        must_succeed=everything_valid,
    )


@given(
    params=st.dictionaries(
        st.sampled_from(
            [
                "q",
                "state",
                "org",
                "kind",
                "health",
                "delegation",
                "expires",
                "outcome",
                "source",
                "action",
                "object",
                "sort",
                "page",
            ]
        ),
        text,
        max_size=5,
    ),
    name=st.sampled_from(
        ["organization-list", "cluster-list", "zone-list", "operation-list", "certificate-list", "audit-list"]
    ),
)
@PROPERTY
def test_list_filters(world, client, params, name):
    client.force_login(world.alice)
    before = state(world)
    response = client.get(reverse(name), params)
    assert response.status_code in (200, 400)  # 400: the list page with the filter form's errors
    assert state(world) == before


@given(username=text, password=text)
@PROPERTY
def test_login(world, client, username, password):
    before = state(world)
    response = client.post(reverse("login"), {"username": username, "password": password})
    assert response.status_code in (200, 429)
    assert state(world) == before
