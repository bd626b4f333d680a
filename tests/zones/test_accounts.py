"""Several AWS accounts as shards (issue #9 part 4): organizations placed by headroom and never moved, every AWS call of
an organization in its account through an assumed role, the parent zone and delegations in the main account; moto
serves both accounts (AssumeRole into a role of another account id gives credentials of that account)."""

import base64
import json
from datetime import timedelta
from decimal import Decimal

import boto3
import pytest
from django.urls import reverse
from django.utils import timezone
from moto.iam.access_control import IAMPolicy, PermissionResult

from devstack.policies import assume_roles_policy, boundary_policy, role_trust_policy
from orgdns_site.environment import aws_accounts
from provisioning.clients.aws import RoleCredentials
from provisioning.clients.errors import ProviderError
from provisioning.models import Cluster, HostedZone, Operation, Organization, ZoneCharge
from provisioning.services import backends
from provisioning.services.aws_accounts import assignment as accounts
from provisioning.services.backends import Backends
from provisioning.services.clusters import actions as clusters
from provisioning.services.clusters.jobs import DeregisterCluster
from provisioning.services.zones import billing_overview
from provisioning.services.zones import gc as zone_gc
from provisioning.services.zones import ledger as zone_ledger
from provisioning.services.zones import records as zones
from provisioning.services.zones import setup as zone_setup
from tests.conftest import run_jobs, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

SECOND_ID = "222222222222"
SECOND_ROLE = f"arn:aws:iam::{SECOND_ID}:role/orgdns-provisioner"


@pytest.fixture
def two_accounts(settings):
    """The main account (orgdns's own) and "second", reached by assuming a role there; the main account's zone quota
    is set low in tests that fill it."""

    def configure(main_zones=500, second_zones=500):
        settings.ORGDNS_AWS_ACCOUNTS = aws_accounts(
            json.dumps(
                [
                    {"name": "main", "role_arn": "", "zone_quota": main_zones},
                    {"name": "second", "role_arn": SECOND_ROLE, "zone_quota": second_zones, "rate": 20},
                ]
            )
        )

    configure()
    return configure


@pytest.fixture
def second(stack):
    """boto3 clients in the second account, as an operator there would have."""
    sts = boto3.client("sts", endpoint_url=stack.moto_url, region_name="us-east-1")
    found = sts.assume_role(RoleArn=f"arn:aws:iam::{SECOND_ID}:role/operator", RoleSessionName="test")["Credentials"]
    credentials = {
        "aws_access_key_id": found["AccessKeyId"],
        "aws_secret_access_key": found["SecretAccessKey"],
        "aws_session_token": found["SessionToken"],
    }

    def client(name):
        return boto3.client(name, endpoint_url=stack.moto_url, region_name="us-east-1", **credentials)

    return type("Second", (), {"route53": client("route53"), "iam": client("iam"), "sts": client("sts")})


def zone_names(route53):
    return sorted(z["Name"] for z in route53.list_hosted_zones()["HostedZones"])


def user_names(iam):
    return sorted(u["UserName"] for u in iam.list_users()["Users"])


def provision_zone(org):
    """The register job's AWS steps for the organization (no cluster): placement, zone, IAM user and key."""
    backends = Backends()
    with_account = backends.for_account(accounts.place(org))
    zone = zone_setup.ensure_zone(org, with_account, zone_setup.NoProgress())
    zone_setup.ensure_credentials(zone, backends.vault(), with_account, zone_setup.NoProgress())
    return HostedZone.objects.get(pk=zone.pk)


def live_zone(org, account, created=None):
    """A zone row only (nothing in AWS) of an organization placed in `account`."""
    Organization.objects.filter(pk=org.pk).update(aws_account=account)
    return HostedZone.objects.create(
        organization=org,
        name=org.zone_name,
        state=HostedZone.State.ACTIVE,
        zone_id=f"Z{org.name.upper()}",
        iam_user_name=f"orgdns-{org.name}",
        aws_account=account,
        aws_created_at=created or timezone.now(),
    )


# --- settings -----------------------------------------------------------------------------------------------------


def test_the_default_is_one_main_account_from_the_other_settings(settings):
    settings.ORGDNS_AWS_ACCOUNTS = aws_accounts("")
    settings.ORGDNS_ROUTE53_ZONE_QUOTA, settings.ORGDNS_ROUTE53_ACCOUNT_RATE = 7, 4.0
    (main,) = accounts.configured()
    assert (main.name, main.role_arn, main.zone_quota, main.rate, main.is_main) == ("main", "", 7, 4.0, True)
    assert accounts.main() == main


def test_orgdns_refuses_to_start_with_a_bad_account_naming_it():
    from tests.site.test_settings import run_django

    bad = json.dumps([{"name": "main"}, {"name": "eu-2", "role_arn": SECOND_ROLE, "zone_quota": -5}])
    result = run_django({"DEBUG": "1", "ORGDNS_AWS_ACCOUNTS": bad}, "manage.py", "check")
    assert result.returncode != 0
    assert "ORGDNS_AWS_ACCOUNTS entry 2 ('eu-2'): zone_quota must be more than 0, not -5" in result.stderr


def test_the_documented_example_is_a_valid_setting(settings):
    page = (settings.BASE_DIR / "docs" / "aws-accounts.md").read_text()
    example = page.split("```json\n", 1)[1].split("```", 1)[0]
    main, other = aws_accounts(example)
    assert (main["name"], main["role_arn"], other["name"], other["zone_quota"]) == ("main", "", "eu-2", 1000)
    assert other["iam_user_quota"] == 5000  # the default


# --- placement ----------------------------------------------------------------------------------------------------


def test_organizations_go_to_the_account_with_the_most_headroom_and_stay(personas, two_accounts):
    two_accounts(main_zones=4, second_zones=8)
    first = accounts.place(personas.acme)  # both empty: the first of equals
    assert first.name == "main"
    live_zone(personas.acme, first.name)
    placed = []
    for i in range(4):
        org = Organization.objects.create(name=f"org{i}")
        placed.append(accounts.place(org).name)
        live_zone(org, org.aws_account)
    # zones used: main 1/4 vs second 0/8 → second; 1/4 vs 1/8 → second; 1/4 vs 2/8 → main (the first of equals);
    # 2/4 vs 2/8 → second
    assert placed == ["second", "second", "main", "second"]
    assert dict(Organization.objects.values_list("name", "aws_account")) == {
        "acme": "main",
        "globex": "",
        "org0": "second",
        "org1": "second",
        "org2": "main",
        "org3": "second",
    }


def test_placement_counts_zones_made_since_and_a_full_account_takes_no_more(personas, two_accounts):
    two_accounts(main_zones=1, second_zones=2)
    live_zone(personas.acme, accounts.place(personas.acme).name)
    assert personas.acme.aws_account == "main"
    live_zone(personas.globex, accounts.place(personas.globex).name)
    assert personas.globex.aws_account == "second"  # main is at its quota
    initech = Organization.objects.create(name="initech")
    live_zone(initech, accounts.place(initech).name)
    assert initech.aws_account == "second"
    full = Organization.objects.create(name="umbrella")
    with pytest.raises(ProviderError) as refused:
        accounts.place(full)
    assert "no AWS account has room for umbrella's zone" in refused.value.message and refused.value.permanent
    assert Organization.objects.get(pk=full.pk).aws_account == ""  # nothing half-done


def test_an_organization_never_moves_when_headroom_changes(personas, two_accounts):
    two_accounts(main_zones=1)
    live_zone(personas.acme, accounts.place(personas.acme).name)
    live_zone(personas.globex, accounts.place(personas.globex).name)
    assert personas.globex.aws_account == "second"
    two_accounts(main_zones=500, second_zones=1)  # now main has all the room, second none
    for org in (personas.globex, Organization.objects.get(pk=personas.globex.pk)):
        assert accounts.place(org).name == "second"
    assert accounts.place(Organization.objects.create(name="initech")).name == "main"


def test_an_organization_provisioned_before_accounts_stays_in_the_main_account(personas, two_accounts):
    two_accounts(main_zones=2)
    HostedZone.objects.create(organization=personas.acme, name="acme.orgdns.test", state=HostedZone.State.ACTIVE)
    HostedZone.objects.create(organization=personas.globex, name="globex.orgdns.test", state=HostedZone.State.ACTIVE)
    assert accounts.of_organization(personas.acme).name == "main"  # read: not placed
    assert Organization.objects.get(pk=personas.acme.pk).aws_account == ""
    assert accounts.place(personas.acme).name == "main"  # even with main full, its zone is there
    assert Organization.objects.get(pk=personas.acme.pk).aws_account == "main"


def test_an_unknown_account_fails_clearly(personas, two_accounts):
    Organization.objects.filter(pk=personas.acme.pk).update(aws_account="gone")
    with pytest.raises(ProviderError) as refused:
        accounts.of_organization(Organization.objects.get(pk=personas.acme.pk))
    assert "AWS account 'gone' is not configured (ORGDNS_AWS_ACCOUNTS names main, second)" in refused.value.message


def test_admins_may_move_an_organization_only_while_it_has_no_zone(client, personas, two_accounts, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="pw-root")
    client.force_login(admin)
    url = reverse("admin:provisioning_organization_change", args=[personas.acme.pk])
    form = {"name": "acme", "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}
    live_zone(personas.acme, "main")
    refused = client.post(url, {**form, "aws_account": "second"})
    assert refused.status_code == 200
    assert "cannot change AWS account while its zone acme.orgdns.test exists" in refused.content.decode()
    assert Organization.objects.get(pk=personas.acme.pk).aws_account == "main"
    HostedZone.objects.filter(organization=personas.acme).update(state=HostedZone.State.DELETED)
    assert client.post(url, {**form, "aws_account": "second"}).status_code == 302
    assert Organization.objects.get(pk=personas.acme.pk).aws_account == "second"
    assert client.post(url, {**form, "aws_account": "nowhere"}).status_code == 200  # not a configured account
    assert Organization.objects.get(pk=personas.acme.pk).aws_account == "second"


# --- AWS calls in the organization's account ----------------------------------------------------------------------


def test_each_organizations_zone_and_iam_user_exist_only_in_its_account(personas, two_accounts, aws, second, settings):
    two_accounts(main_zones=1)
    settings.ORGDNS_IAM_PERMISSIONS_BOUNDARY = "arn:aws:iam::123456789012:policy/orgdns-tenant-boundary"
    boundary = json.dumps(boundary_policy(settings.ORGDNS_BASE_DOMAIN))
    for iam in (aws.iam, second.iam):  # the same boundary policy, created in each account
        iam.create_policy(PolicyName="orgdns-tenant-boundary", PolicyDocument=boundary)

    created = {}  # moto does not keep a user's boundary: what orgdns asked for, as sent

    def record(params, **_):
        created[params["UserName"]] = params.get("PermissionsBoundary")

    backends.aws_session().events.register("provide-client-params.iam.CreateUser", record)

    acme, globex = provision_zone(personas.acme), provision_zone(personas.globex)
    assert (acme.aws_account, globex.aws_account) == ("main", "second")
    assert zone_names(aws.route53) == ["acme.orgdns.test."] and user_names(aws.iam) == ["orgdns-acme"]
    assert zone_names(second.route53) == ["globex.orgdns.test."] and user_names(second.iam) == ["orgdns-globex"]
    keys = second.iam.list_access_keys(UserName="orgdns-globex")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [globex.access_key_id]
    assert created == {  # each account's own boundary policy
        "orgdns-acme": "arn:aws:iam::123456789012:policy/orgdns-tenant-boundary",
        "orgdns-globex": f"arn:aws:iam::{SECOND_ID}:policy/orgdns-tenant-boundary",
    }


def test_the_documented_policies_let_orgdns_assume_the_role_and_nobody_else(settings):
    allowed = IAMPolicy(json.dumps(assume_roles_policy("orgdns-provisioner")))
    assert allowed.is_action_permitted("sts:AssumeRole", SECOND_ROLE) == PermissionResult.PERMITTED
    assert (
        allowed.is_action_permitted("sts:AssumeRole", f"arn:aws:iam::{SECOND_ID}:role/admin")
        != PermissionResult.PERMITTED
    )
    (trust,) = role_trust_policy("arn:aws:iam::123456789012:user/orgdns")["Statement"]
    assert (
        trust["Principal"] == {"AWS": "arn:aws:iam::123456789012:user/orgdns"} and trust["Action"] == "sts:AssumeRole"
    )


@pytest.mark.integration
def test_the_assumed_roles_credentials_are_reused_until_shortly_before_they_expire(personas, two_accounts):
    account = accounts.named("second")
    first = Backends().for_account(account)
    first.route53().find_zone("acme.orgdns.test")
    first.iam().user_exists("orgdns-acme")
    later = Backends().for_account(account)
    later.route53().find_zone("acme.orgdns.test")
    assert first.stats.calls["sts"] == 1 and later.stats.calls["sts"] == 0
    assert Backends().stats.calls["sts"] == 0  # the main account needs no role

    now = [timezone.now()]
    assumed = []

    def assume(role_arn):
        assumed.append(role_arn)
        return {"aws_access_key_id": f"key{len(assumed)}"}, now[0] + timedelta(hours=1)

    cache = RoleCredentials(margin=timedelta(minutes=5), clock=lambda: now[0])
    assert cache.get(SECOND_ROLE, assume) == {"aws_access_key_id": "key1"}
    now[0] += timedelta(minutes=54)
    assert cache.get(SECOND_ROLE, assume) == {"aws_access_key_id": "key1"}
    now[0] += timedelta(minutes=1)  # 5 minutes before they expire
    assert cache.get(SECOND_ROLE, assume) == {"aws_access_key_id": "key2"}
    assert assumed == [SECOND_ROLE, SECOND_ROLE]


def test_a_cluster_registered_in_the_second_account_end_to_end(
    personas, two_accounts, aws, second, cluster_api, settings
):
    parent = aws.route53.create_hosted_zone(Name="orgdns.test", CallerReference="parent")["HostedZone"]["Id"].split(
        "/"
    )[-1]
    settings.ORGDNS_PARENT_ZONE_ID = parent
    two_accounts(main_zones=1)  # acme's zone fills it (the parent zone is not an organization's)
    provision_zone(personas.acme)
    cluster_api.cluster.create_load_balancer_service("web", "web.globex.orgdns.test", "203.0.113.20")

    cluster, operation = clusters.register_cluster(personas.globex, "prod", cluster_api.connection)
    run_jobs()
    operation.refresh_from_db()
    assert operation.state == Operation.State.SUCCEEDED, operation.error
    zone = HostedZone.objects.get(organization=personas.globex)
    assert zone.aws_account == "second" and Organization.objects.get(pk=personas.globex.pk).aws_account == "second"
    assert zone_names(second.route53) == ["globex.orgdns.test."]
    assert zone_names(aws.route53) == ["acme.orgdns.test.", "orgdns.test."]
    assert user_names(second.iam) == ["orgdns-globex"] and user_names(aws.iam) == ["orgdns-acme"]

    # The delegation is in the main account's parent zone, to the second account's zone.
    records = aws.route53.list_resource_record_sets(HostedZoneId=parent)["ResourceRecordSets"]
    (ns,) = [r for r in records if r["Name"] == "globex.orgdns.test." and r["Type"] == "NS"]
    served = second.route53.get_hosted_zone(Id=zone.zone_id)["DelegationSet"]["NameServers"]
    assert sorted(v["Value"] for v in ns["ResourceRecords"]) == sorted(served)

    # ExternalDNS runs with a key of the second account's user, and publishes into the zone there.
    secret = cluster_api.objects("secrets", "external-dns", "app.kubernetes.io/managed-by=orgdns")[0]
    key_id = base64.b64decode(secret["data"]["AWS_ACCESS_KEY_ID"]).decode()
    key_secret = base64.b64decode(secret["data"]["AWS_SECRET_ACCESS_KEY"]).decode()
    identity = boto3.client(
        "sts",
        endpoint_url=settings.AWS_ENDPOINT_URL,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=key_secret,
    ).get_caller_identity()
    assert identity["Arn"] == f"arn:aws:iam::{SECOND_ID}:user/orgdns-globex"

    def published():
        found = second.route53.list_resource_record_sets(HostedZoneId=zone.zone_id)["ResourceRecordSets"]
        return {r["Name"]: r["ResourceRecords"][0]["Value"] for r in found if r["Type"] == "A"}

    wait_until(lambda: published() == {"web.globex.orgdns.test.": "203.0.113.20"}, timeout=60)
    shown = zones.record_page(zone).records  # the zone page reads it in the second account
    assert ("web.globex.orgdns.test.", "A", ["203.0.113.20"]) in [(r.name, r.type, r.values) for r in shown]

    # Deregistered: its records go from the zone in the second account; then the GC deletes the zone there.
    DeregisterCluster.enqueue(Cluster.objects.get(pk=cluster.pk))
    run_jobs()
    assert {
        r["Type"] for r in second.route53.list_resource_record_sets(HostedZoneId=zone.zone_id)["ResourceRecordSets"]
    } == {"SOA", "NS"}
    planned = zone_gc.plan(timezone.now(), Organization.objects.filter(pk=personas.globex.pk))  # acme's is unused too
    zone_gc.apply(planned, timezone.now())
    run_jobs()
    zone.refresh_from_db()
    assert zone.state == HostedZone.State.DELETED
    assert zone_names(second.route53) == [] and user_names(second.iam) == []
    assert zone_names(aws.route53) == ["acme.orgdns.test.", "orgdns.test."] and user_names(aws.iam) == ["orgdns-acme"]
    records = aws.route53.list_resource_record_sets(HostedZoneId=parent)["ResourceRecordSets"]
    assert not [r for r in records if r["Name"] == "globex.orgdns.test."]  # the delegation went first

    # A new cluster later: the organization is still in the second account, though main has room again.
    two_accounts(main_zones=500)
    assert accounts.place(Organization.objects.get(pk=personas.globex.pk)).name == "second"


# --- money and budget per account ---------------------------------------------------------------------------------


def test_the_price_tier_counts_each_accounts_zones(personas, two_accounts, settings):
    settings.ORGDNS_ZONE_PRICE_TIER = 1
    now = timezone.now()
    created = now - timedelta(days=1)
    acme = live_zone(personas.acme, "main", created)
    globex = live_zone(personas.globex, "second", created + timedelta(minutes=1))
    initech = live_zone(Organization.objects.create(name="initech"), "second", created + timedelta(minutes=2))
    zone_ledger.record_charges(now)
    month = now.replace(day=1).date()
    assert set(ZoneCharge.objects.filter(month=month).values_list("zone", flat=True)) == {
        acme.pk,
        globex.pk,
        initech.pk,
    }

    overview = billing_overview.billing_overview(Organization.objects.all(), now)
    prices = {c.charge.zone.organization.name: c.price for c in overview.charged}
    # One account holding all three would charge 0.50 + 0.10 + 0.10: each account's first zone is at the first price.
    assert prices == {"acme": Decimal("0.50"), "globex": Decimal("0.50"), "initech": Decimal("0.10")}


@pytest.mark.integration
def test_the_budget_page_shows_every_account_with_its_own_figures(client, personas, two_accounts):
    two_accounts(main_zones=1)
    live_zone(personas.acme, "main")
    live_zone(personas.globex, "second")
    live_zone(Organization.objects.create(name="initech"), "second")
    Cluster.objects.create(
        organization=personas.globex,
        name="prod",
        api_server="https://k.example:6443",
        owner_id="globex-prod",
        state=Cluster.State.READY,
    )
    Backends().for_account(accounts.named("second")).route53().find_zone("globex.orgdns.test")

    main, other = route53_budget_figures()
    assert (main.account.name, main.load.zones, main.load.zone_quota, main.clusters) == ("main", 1, 1, 0)
    assert (other.account.name, other.load.zones, other.load.zone_quota, other.clusters) == ("second", 2, 500, 1)
    assert (main.measured_requests, other.measured_requests) == (0, 1)  # AssumeRole is STS's, not counted
    assert other.load.account_rate == 20 and main.load.account_rate == 10
    assert main.attention == ["1 hosted zones of the quota of 1 (100%)"]

    client.force_login(personas.sam)
    body = client.get(reverse("route53-budget")).content.decode()
    assert "Account main" in body and "Account second" in body
    assert "orgdns's own account (its identity; the parent zone's)" in body
    assert f"Reached through the role <code>{SECOND_ROLE}</code>" in body
    assert "Hosted zones (orgdns's)</td><td>2</td><td>500</td>" in body
    assert "Hosted zones (orgdns's)</td><td>1</td><td>1</td>" in body
    client.force_login(personas.alice)  # not staff
    assert client.get(reverse("route53-budget")).status_code in (302, 403)


def route53_budget_figures():
    from provisioning.services.aws_accounts import route53_budget

    return route53_budget.account_budgets()


# --- reconcile in every account -----------------------------------------------------------------------------------


def test_reconcile_finds_and_removes_orphans_in_every_account_and_never_adopts_across(
    personas, two_accounts, aws, second
):
    from tests.credentials.test_reconcile import make_user, make_zone, our_tags, reconcile

    paid_at = timezone.now() - timedelta(days=1)
    live_zone(personas.acme, "main")  # acme is in main: a zone of acme's in second is deleted, never adopted
    make_zone(second, "acme.orgdns.test", our_tags("acme", paid_at))
    make_user(second, "orgdns-acme", our_tags("acme"))  # acme's user is in main (its zone row names it there)
    Organization.objects.filter(pk=personas.globex.pk).update(aws_account="second")
    globex_zone = make_zone(second, "globex.orgdns.test", our_tags("globex", paid_at))  # globex has none: adopted
    make_zone(aws, "gone.orgdns.test", our_tags("gone", paid_at))

    dry = reconcile("--grace", "0")
    found = {(o["kind"], o["name"]): o for o in dry["orphans"]}
    assert set(found) == {
        ("zone", "acme.orgdns.test"),
        ("iam-user", "orgdns-acme"),
        ("zone", "globex.orgdns.test"),
        ("zone", "gone.orgdns.test"),
    }
    assert found[("zone", "acme.orgdns.test")]["action"] == "delete"
    assert "organization acme is in AWS account main" in found[("zone", "acme.orgdns.test")]["why"]
    assert "(in AWS account second)" in found[("iam-user", "orgdns-acme")]["why"]
    assert found[("zone", "globex.orgdns.test")]["action"] == "adopt"
    assert "(in AWS account main)" in found[("zone", "gone.orgdns.test")]["why"]

    reconcile("--apply", "--grace", "0")
    assert zone_names(second.route53) == ["globex.orgdns.test."] and user_names(second.iam) == []
    assert zone_names(aws.route53) == []
    adopted = HostedZone.objects.get(organization=personas.globex)
    assert (adopted.zone_id, adopted.aws_account, adopted.state) == (globex_zone, "second", HostedZone.State.ACTIVE)


def test_a_key_rotation_replaces_the_key_in_the_organizations_account(personas, two_accounts, aws, second):
    from provisioning.services.credentials import actions as key_rotation

    two_accounts(main_zones=1)
    provision_zone(personas.acme)
    globex = provision_zone(personas.globex)
    old = globex.access_key_id
    operation = key_rotation.rotate_now(personas.globex, personas.bob)
    run_jobs()
    operation.refresh_from_db()
    assert operation.state == Operation.State.SUCCEEDED, operation.error
    globex.refresh_from_db()
    keys = [k["AccessKeyId"] for k in second.iam.list_access_keys(UserName="orgdns-globex")["AccessKeyMetadata"]]
    assert keys == [globex.access_key_id] and globex.access_key_id != old
    assert user_names(aws.iam) == ["orgdns-acme"]  # nothing of globex's in main
