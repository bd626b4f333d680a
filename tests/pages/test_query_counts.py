"""Every list and detail page runs the same number of SQL queries on a small and on a ten times larger dataset.

The larger dataset also gives the page's own object more of everything (clusters, operations, installations),
so a query per row shows up both in the lists and in the "recent" tables of the detail pages.
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from provisioning.models import (
    AuditEvent,
    Certificate,
    CertificateInstallation,
    Cluster,
    HostedZone,
    Membership,
    Operation,
    Organization,
)
from provisioning.services.people import api_tokens

pytestmark = pytest.mark.django_db

MOST_QUERIES = 14  # staff's home page: 12, and 2 for the Route53 budget's "Needs attention"
LISTS = ["organization-list", "cluster-list", "zone-list", "operation-list", "certificate-list", "audit-list"]


def seed(prefix, organizations, clusters, operations, member):
    """organizations × (a zone, clusters each with operations, a certificate installed in every cluster); member
    belongs to all of them. Returns the last organization."""
    now = timezone.now()
    orgs = Organization.objects.bulk_create([Organization(name=f"{prefix}{i}") for i in range(organizations)])
    Membership.objects.bulk_create(
        [Membership(user=member, organization=org, role=Membership.Role.OWNER) for org in orgs]
    )
    HostedZone.objects.bulk_create(
        [
            HostedZone(
                organization=org,
                name=org.zone_name,
                state=HostedZone.State.ACTIVE,
                zone_id=f"Z{org.pk}",
                delegated=True,
            )
            for org in orgs
        ]
    )
    states = [Cluster.State.READY, Cluster.State.ERROR, Cluster.State.PROVISIONING]
    made = Cluster.objects.bulk_create(
        [
            Cluster(
                organization=org, name=f"c{i}", api_server="https://k", owner_id=f"{org.name}-c{i}", state=states[i % 3]
            )
            for org in orgs
            for i in range(clusters)
        ]
    )
    certificates = Certificate.objects.bulk_create(
        [
            Certificate(
                organization=org,
                dns_names=[f"app.{org.zone_name}"],
                state=Certificate.State.ACTIVE,
                not_before=now - timedelta(days=60),
                not_after=now + timedelta(days=30),
            )
            for org in orgs
        ]
    )
    by_org = {certificate.organization_id: certificate for certificate in certificates}
    CertificateInstallation.objects.bulk_create(
        [
            CertificateInstallation(
                certificate=by_org[c.organization_id], cluster=c, namespace="web", secret_name="tls"
            )
            for c in made
        ]
    )
    Operation.objects.bulk_create(
        [
            Operation(kind="issue_certificate", organization=c.organization, certificate=c, state="failed", error="x")
            for c in certificates
        ]
        + [
            Operation(
                kind="register", organization_id=c.organization_id, cluster=c, state="succeeded", created_by=member
            )
            for c in made
            for _ in range(operations)
        ]
    )
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                actor=member,
                actor_name="member",
                source="ui",
                action="register.queued",
                organization_id=c.organization_id,
                object_type="cluster",
                object_id=str(c.pk),
                object_repr=c.name,
            )
            for c in made
        ]
    )
    return orgs[-1]


def pages(org, staff=False):
    """Every list page and every detail page about org and its objects (and staff's pages, for staff)."""
    cluster = org.clusters.first()
    certificate = org.certificates.first()
    operation = cluster.operations.first()
    return {
        "home": reverse("home"),
        "billing": reverse("billing"),
        **{name: reverse(name) for name in LISTS},
        "operation-list filtered": reverse("operation-list") + f"?org={org.name}&state=succeeded&sort=organization",
        "organization": reverse("organization", args=[org.name]),
        "zone": reverse("zone", args=[org.name]),
        "members": reverse("members", args=[org.name]),
        "cluster": reverse("cluster", args=[org.name, cluster.pk]),
        "operation": reverse("operation", args=[operation.pk]),
        "operation-status": reverse("operation-status", args=[operation.pk]),
        "certificates": reverse("certificates", args=[org.name]),
        "certificate": reverse("certificate", args=[org.name, certificate.pk]),
        "certificate-summary": reverse("certificate-summary", args=[org.name, certificate.pk]),
        **({"route53-budget": reverse("route53-budget")} if staff else {}),
    }


def api_endpoints(org):
    """Every list and detail endpoint of the API about org and its objects (not the zone's records: Route53's)."""
    cluster = org.clusters.first()
    certificate = org.certificates.first()
    operation = cluster.operations.first()
    base = f"/api/v1/organizations/{org.name}"
    return {
        "api me": "/api/v1/me",
        "api organizations": "/api/v1/organizations",
        "api organization": base,
        "api members": f"{base}/members",
        "api clusters": f"{base}/clusters",
        "api cluster": f"{base}/clusters/{cluster.pk}",
        "api zone": f"{base}/zone",
        "api certificates": f"{base}/certificates",
        "api certificate": f"{base}/certificates/{certificate.pk}",
        "api operations": "/api/v1/operations",
        "api operations filtered": f"/api/v1/operations?organization={org.name}&state=succeeded",
        "api operation": f"/api/v1/operations/{operation.pk}",
        "api audit events": "/api/v1/audit-events",
    }


def query_counts(client, urls, headers=None):
    counts = {}
    for name, url in urls.items():
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url, headers=headers or {})
        assert response.status_code in (200, 286), (name, response.status_code)
        counts[name] = len(queries)
    return counts


@pytest.mark.integration
@pytest.mark.parametrize("persona", ["sam", "member"])
def test_queries_do_not_grow_with_the_data(client, personas, django_user_model, persona):
    user = personas.sam if persona == "sam" else django_user_model.objects.create_user("member")
    client.force_login(user)

    small_org = seed("small", organizations=3, clusters=1, operations=1, member=user)
    small = query_counts(client, {**pages(small_org, user.is_staff), **api_endpoints(small_org)})
    large_org = seed("large", organizations=30, clusters=5, operations=12, member=user)
    large = query_counts(client, {**pages(large_org, user.is_staff), **api_endpoints(large_org)})

    assert Cluster.objects.count() == 153 and Operation.objects.count() == 1836
    assert large == small
    assert max(large.values()) <= MOST_QUERIES, large


def test_admin_change_lists_do_not_grow_with_the_data(client, django_user_model):
    user = django_user_model.objects.create_superuser("support", password="!")
    client.force_login(user)
    models = [
        "organization",
        "membership",
        "hostedzone",
        "cluster",
        "operation",
        "certificate",
        "certificateinstallation",
        "auditevent",
    ]
    urls = {model: reverse(f"admin:provisioning_{model}_changelist") for model in models}

    seed("small", organizations=3, clusters=1, operations=1, member=user)
    small = query_counts(client, urls)
    seed("large", organizations=30, clusters=5, operations=12, member=user)
    large = query_counts(client, urls)

    assert large == small
    assert max(large.values()) <= MOST_QUERIES, large


@pytest.mark.parametrize("persona", ["sam", "member"])
def test_api_queries_with_a_token_do_not_grow_with_the_data(client, personas, django_user_model, persona):
    user = personas.sam if persona == "sam" else django_user_model.objects.create_user("member")
    _, raw = api_tokens.create_token(user, "bench", 1)
    headers = {"Authorization": f"Bearer {raw}"}
    client.get("/api/v1/me", headers=headers)  # the first use records last_used_at

    small = query_counts(
        client, api_endpoints(seed("small", organizations=3, clusters=1, operations=1, member=user)), headers
    )
    large = query_counts(
        client, api_endpoints(seed("large", organizations=30, clusters=5, operations=12, member=user)), headers
    )

    assert large == small
    assert max(large.values()) <= MOST_QUERIES, large
