"""The real ExternalDNS, deployed by orgdns into a real cluster, publishing into the organization's zone in moto."""

import time

import pytest
from django.core.exceptions import ValidationError

from provisioning.clients import externaldns
from provisioning.models import Cluster, HostedZone, Operation
from provisioning.rules import budget
from provisioning.services.aws_accounts import assignment as accounts
from provisioning.services.clusters import actions as clusters
from provisioning.services.clusters import externaldns as externaldns_deploy
from provisioning.services.clusters.jobs import DeregisterCluster, RegisterCluster
from tests.conftest import run_jobs, wait_until
from tests.factories import attempt_registration, register

pytestmark = pytest.mark.django_db(transaction=True)

OURS = "app.kubernetes.io/managed-by=orgdns"


def record_sets(aws, zone_id):
    pages = aws.route53.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone_id)
    return [rs for page in pages for rs in page["ResourceRecordSets"]]


def a_records(aws, zone_id):
    return {rs["Name"]: rs["ResourceRecords"][0]["Value"] for rs in record_sets(aws, zone_id) if rs["Type"] == "A"}


def test_services_ingresses_and_the_apex_are_published_and_removed_with_the_cluster(personas, cluster_api, aws):
    admin = cluster_api.cluster
    admin.create_load_balancer_service("web", "web.acme.orgdns.test", "203.0.113.10")
    admin.create_load_balancer_service(
        "apex", "acme.orgdns.test", "203.0.113.11", annotation_prefix="external-dns.alpha.kubernetes.io/"
    )
    admin.create_load_balancer_service("stranger", "app.globex.orgdns.test", "203.0.113.12")
    admin.create_ingress("shop", "shop.acme.orgdns.test", "203.0.113.13")
    cluster = register(personas.acme, "prod", cluster_api)
    zone = HostedZone.objects.get(organization=personas.acme)

    expected = {
        "web.acme.orgdns.test.": "203.0.113.10",
        "acme.orgdns.test.": "203.0.113.11",
        "shop.acme.orgdns.test.": "203.0.113.13",
    }
    wait_until(lambda: a_records(aws, zone.zone_id) == expected, timeout=60)  # its first sync, at start
    markers = {rs["Name"] for rs in record_sets(aws, zone.zone_id) if rs["Type"] == "TXT"}
    assert markers == {
        "_extdns-a.web.acme.orgdns.test.",
        "_extdns-a.acme.orgdns.test.",
        "_extdns-a.shop.acme.orgdns.test.",
    }
    owned = externaldns.owned_record_sets(record_sets(aws, zone.zone_id), cluster.owner_id)
    assert {(rs["Name"], rs["Type"]) for rs in owned} == {(n, "A") for n in expected} | {(n, "TXT") for n in markers}
    assert not any("globex" in rs["Name"] for rs in record_sets(aws, zone.zone_id))

    DeregisterCluster.enqueue(cluster)
    run_jobs()
    cluster.refresh_from_db()
    assert cluster.state == Cluster.State.DEREGISTERED, cluster.message
    assert cluster_api.namespaces() == [] and cluster_api.objects("clusterroles", selector=OURS) == []
    assert [cluster_api.objects(p, "external-dns", OURS) for p in ("deployments", "services", "secrets")] == [
        [],
        [],
        [],
    ]
    assert cluster_api.runner.pods == {}  # no ExternalDNS process left
    time.sleep(3)
    assert {rs["Type"] for rs in record_sets(aws, zone.zone_id)} == {"SOA", "NS"}  # and nothing came back


def deployed_args(cluster_api):
    (deployment,) = cluster_api.objects("deployments", "external-dns")
    return deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def test_externaldns_runs_with_the_budgets_flags_and_publishes_a_change_by_event_not_by_resync(
    personas, cluster_api, aws, settings
):
    # A resync interval of an hour (the budget's longest): a Service made after the start reaches Route53 only if
    # --events works, and without reading Route53 again (the caches are fresh).
    settings.EXTERNALDNS_MIN_INTERVAL = settings.EXTERNALDNS_MAX_INTERVAL = 3600
    settings.EXTERNALDNS_MIN_EVENT_SYNC_INTERVAL = 5
    cluster = register(personas.acme, "prod", cluster_api)
    zone = HostedZone.objects.get(organization=personas.acme)
    args = deployed_args(cluster_api)
    flags = [
        a
        for a in args
        if a.split("=")[0]
        in ("--interval", "--aws-zones-cache-duration", "--txt-cache-interval", "--events", "--min-event-sync-interval")
    ]
    assert flags == budget.externaldns_flags(1, 1, cluster.owner_id, accounts.budget_of(accounts.main())).args()
    assert "--events" in args and "--min-event-sync-interval=5s" in args
    assert any(a.startswith("--interval=1h") for a in args)
    assert cluster_api.runner.pods  # the real ExternalDNS accepted them: it runs (rollout available)

    time.sleep(8)  # after its start sync
    cluster_api.cluster.create_load_balancer_service("late", "late.acme.orgdns.test", "203.0.113.20")
    started = time.monotonic()
    wait_until(lambda: a_records(aws, zone.zone_id) == {"late.acme.orgdns.test.": "203.0.113.20"}, timeout=60)
    assert time.monotonic() - started < 30  # far sooner than the hour's resync


def test_the_flags_follow_the_fleet_in_the_account(personas):
    org = personas.acme
    zone = HostedZone.objects.create(
        organization=org, name="acme.orgdns.test", zone_id="Z1", state=HostedZone.State.ACTIVE
    )
    made = [
        Cluster.objects.create(
            organization=org, name=f"c{i}", api_server=f"https://c{i}.example:6443", owner_id=f"acme-c{i}"
        )
        for i in range(3)
    ]
    small = externaldns_deploy.externaldns_config(made[0], zone).args()
    assert "--interval=1m" in " ".join(small) and "--events" in small and "--txt-cache-interval" in " ".join(small)
    b = accounts.budget_of(accounts.main())
    assert externaldns_deploy.externaldns_flags(made[0]) == budget.externaldns_flags(3, 1, made[0].owner_id, b)
    Cluster.objects.filter(pk=made[1].pk).update(state=Cluster.State.DEREGISTERED)
    assert externaldns_deploy.externaldns_flags(made[0]) == budget.externaldns_flags(2, 1, made[0].owner_id, b)
    assert externaldns_deploy.externaldns_flags(made[0]) != externaldns_deploy.externaldns_flags(
        made[2]
    )  # jittered per owner


def test_a_token_without_every_permission_is_refused_naming_what_is_missing(personas, cluster_api):
    rules = [dict(rule) for rule in externaldns.orgdns_rules()]
    rules[0] = {**rules[0], "verbs": ["get", "create", "patch"]}  # no delete of its Secret
    cluster_api.set_permissions(rules)
    with pytest.raises(ValidationError) as refused:
        clusters.register_cluster(personas.acme, "prod", cluster_api.connection)
    assert (
        "lacks permissions orgdns needs in this cluster: delete secrets external-dns-aws in namespace external-dns."
        in refused.value.messages[0]
    )
    assert not Cluster.objects.exists()

    cluster_api.set_permissions(externaldns.orgdns_rules())
    cluster = register(personas.acme, "prod", cluster_api)  # the documented permissions are enough
    assert cluster.state == Cluster.State.READY


def test_a_deployment_edited_by_hand_is_repaired_by_reprovisioning(personas, cluster_api):
    cluster = register(personas.acme, "prod", cluster_api)
    path = "/apis/apps/v1/namespaces/external-dns/deployments/external-dns"
    cluster_api.cluster.api(
        "PATCH",
        path,
        {
            "spec": {
                "replicas": 0,
                "template": {
                    "spec": {"containers": [{"name": "external-dns", "args": ["--provider=aws", "--policy=sync"]}]}
                },
            }
        },
        content_type="application/strategic-merge-patch+json",
    )

    RegisterCluster.enqueue_again(cluster)
    run_jobs()
    cluster.refresh_from_db()
    assert cluster.state == Cluster.State.READY
    assert "repaired what had been changed by hand: Deployment external-dns" in cluster.message
    (deployment,) = cluster_api.objects("deployments", "external-dns")
    assert deployment["spec"]["replicas"] == 1
    assert f"--txt-owner-id={cluster.owner_id}" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert deployment["status"]["availableReplicas"] == 1


def test_externaldns_runs_under_pod_security_restricted(personas, cluster_api):
    register(personas.acme, "prod", cluster_api)
    (namespace,) = [ns for ns in cluster_api.objects("namespaces") if ns["metadata"]["name"] == "external-dns"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    (pod,) = cluster_api.objects("pods", "external-dns")  # admitted by the PodSecurity admission
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_a_rollout_that_never_becomes_available_fails_with_the_reason(personas, cluster_api, settings):
    settings.EXTERNALDNS_ROLLOUT_TIMEOUT = 5
    admin = cluster_api.cluster  # the cluster's admin allows no pod in ExternalDNS's namespace (reset removes it)
    admin.api(
        "POST",
        "/api/v1/namespaces/external-dns/resourcequotas",
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}},
    )
    cluster, operation = attempt_registration(personas.acme, "prod", cluster_api)
    assert operation.state == Operation.State.FAILED
    assert "did not become available within 5s: FailedCreate" in operation.error and "exceeded quota" in operation.error
    assert cluster.state == Cluster.State.ERROR and "exceeded quota" in cluster.message


def test_externaldns_crash_looping_fails_the_registration_with_its_last_log_line(personas, cluster_api, settings):
    settings.EXTERNALDNS_ROLLOUT_TIMEOUT = 15
    settings.EXTERNALDNS_POLICY = "everything"  # not a policy ExternalDNS knows: it exits at start
    cluster, operation = attempt_registration(personas.acme, "prod", cluster_api)
    assert operation.state == Operation.State.FAILED
    assert "CrashLoopBackOff" in cluster.message and "last log line:" in cluster.message
    assert "everything" in cluster.message.split("last log line:")[1]  # ExternalDNS's own words about the flag


def test_a_cluster_belongs_to_one_organization_whatever_url_it_is_registered_with(personas, cluster_api):
    cluster = register(personas.acme, "prod", cluster_api)
    assert (
        cluster.kube_system_uid == cluster_api.cluster.api("GET", "/api/v1/namespaces/kube-system")["metadata"]["uid"]
    )
    direct = cluster_api.connection.__class__(cluster_api.cluster.url, cluster_api.token, cluster_api.ca_pem)
    for org, connection in (
        (personas.globex, cluster_api.connection),
        (personas.globex, direct),
        (personas.acme, direct),
    ):
        with pytest.raises(ValidationError) as refused:
            clusters.register_cluster(org, "again", connection)
        assert "already registered with orgdns, by this or another organization" in refused.value.messages[0]
        assert "acme" not in refused.value.messages[0] and "prod" not in refused.value.messages[0]
    assert Cluster.objects.count() == 1

    DeregisterCluster.enqueue(cluster)
    run_jobs()
    again = register(personas.globex, "edge", cluster_api)  # once deregistered, it can go elsewhere
    assert again.state == Cluster.State.READY
