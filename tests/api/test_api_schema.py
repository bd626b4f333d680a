"""schemathesis against the OpenAPI schema the app serves: no 500, and every response (status, content type, body)
is what the schema says, for a token of each role.

Bounded: a few examples per endpoint and role, each sent twice, as generated (mostly unknown names and ids) and aimed
at acme's real objects. Nothing reaches a remote system but the test's own local servers: registration can only probe
the test's real cluster (through its fault proxy; any other URL is refused before a connection is made), and jobs are
never run (nothing commits, so nothing is even queued, and nothing is deployed into the cluster).
"""

from datetime import timedelta

import pytest
import schemathesis
from django.core.exceptions import ValidationError
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from provisioning.models import Certificate, Cluster, HostedZone, Membership, Operation
from provisioning.services.clusters import actions as cluster_service
from provisioning.services.people import api_tokens

pytestmark = pytest.mark.django_db

ROLES = ["owner", "member", "viewer", "staff"]
# The services refuse, with 422 and the reason, schema-valid requests that break rules no schema can say (a name
# outside the organization's zone, a cluster that does not answer, a name already taken).
BEYOND_THE_SCHEMA = [positive_data_acceptance]


# The schema as the app serves it (loading it needs no database).
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", WSGIHandler())


@pytest.fixture(autouse=True)
def in_process_requests(personas, cluster_api, monkeypatch, settings):
    settings.ORGDNS_API_RATE, settings.ORGDNS_API_BURST = 1000.0, 1000
    settings.ORGDNS_API_TOKENS_PER_USER = 1000  # a token per generated request, all for the same few users
    real_probe = cluster_service.probe_cluster

    def probe_only_the_test_cluster(connection):
        if connection.server != cluster_api.url:
            raise ValidationError("Cannot use this cluster: the test reaches no cluster but its own.")
        return real_probe(connection)

    monkeypatch.setattr(cluster_service, "probe_cluster", probe_only_the_test_cluster)
    # The test's database transaction must survive each in-process WSGI request (Django's test Client does the same).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
    assert cluster_api.namespaces() == [], "a request of the test reached into the cluster"


@pytest.fixture
def acme_objects(personas, cluster_api, aws, django_user_model):
    cluster = Cluster.objects.create(
        organization=personas.acme,
        name="prod",
        api_server=cluster_api.url,
        owner_id="acme-prod-1",
        state=Cluster.State.READY,
    )
    operation = Operation.objects.create(
        kind="register",
        organization=personas.acme,
        cluster=cluster,
        state=Operation.State.FAILED,
        error="x",
    )
    zone_id = aws.route53.create_hosted_zone(Name="acme.orgdns.test", CallerReference="acme")["HostedZone"]["Id"]
    HostedZone.objects.create(
        organization=personas.acme,
        name="acme.orgdns.test",
        state=HostedZone.State.ACTIVE,
        zone_id=zone_id.split("/")[-1],
    )
    now = timezone.now()
    certificate = Certificate.objects.create(
        organization=personas.acme,
        dns_names=["app.acme.orgdns.test"],
        state=Certificate.State.ACTIVE,
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=89),
    )
    member = django_user_model.objects.create_user("mia")
    Membership.objects.create(user=member, organization=personas.acme, role=Membership.Role.MEMBER)
    users = {"owner": personas.alice, "member": member, "viewer": personas.vera, "staff": personas.sam}
    return {
        "users": users,
        "path": {
            "org": "acme",
            "cluster_id": cluster.pk,
            "certificate_id": certificate.pk,
            "operation_id": str(operation.pk),
            "username": "vera",
        },
    }


@pytest.mark.parametrize("role", ROLES)
@schema.parametrize()
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_response_matches_the_schema(case, role, acme_objects):
    _, raw = api_tokens.create_token(acme_objects["users"][role], f"schemathesis {role}", 1)
    headers = {"Authorization": f"Bearer {raw}"}
    case.call_and_validate(headers=headers, excluded_checks=BEYOND_THE_SCHEMA)
    if case.path_parameters:
        # Valid paths now, whatever generation meant to break in them: no check that the request was refused.
        case.path_parameters = {
            name: acme_objects["path"].get(name, value) for name, value in case.path_parameters.items()
        }
        case.call_and_validate(headers=headers, excluded_checks=[*BEYOND_THE_SCHEMA, negative_data_rejection])
