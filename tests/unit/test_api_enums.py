"""The API's OpenAPI schema holds each enum once, as a named component, and every field and parameter of it refers to
it: a generated client (openapi-python-client) then has one enum class per component, instead of an inline enum
named after its field (Member.role became `MemberRole`, which collided with the request schema `MemberRole` and cost
the client the Member and MemberPage schemas and the members endpoints' responses)."""

import json

import pytest

from provisioning import models, operation_kinds
from provisioning.api import api


@pytest.fixture(scope="module")
def schema():
    return json.loads(json.dumps(api.get_openapi_schema(), default=str))


def enums(node, path=()):
    """(path, schema) of every schema in node that lists an enum."""
    if isinstance(node, dict):
        if "enum" in node:
            yield path, node
        for key, value in node.items():
            yield from enums(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from enums(value, (*path, index))


def references(node):
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"].rsplit("/", 1)[-1]
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def test_every_enum_is_a_component_of_its_own(schema):
    found = list(enums(schema))
    inline = ["/".join(map(str, path)) for path, _ in found if len(path) != 3 or path[:2] != ("components", "schemas")]
    assert inline == [], "inline enums: a generated client names them after their field"
    value_sets = [tuple(node["enum"]) for _, node in found]
    assert len(value_sets) == len(set(value_sets)), "the same enum twice, under two names"
    assert len(found) >= 13


def test_each_enum_component_is_referred_to_by_the_fields_and_parameters_that_hold_it(schema):
    components = schema["components"]["schemas"]
    referred = set(references(schema))
    assert {name for name, node in components.items() if "enum" in node} <= referred
    assert components["Role"]["enum"] == list(models.Membership.Role.values)
    assert components["OperationKind"]["enum"] == list(operation_kinds.values())
    # The schemas that collided: both refer to Role, and neither is an enum of its own.
    assert components["Member"]["properties"]["role"] == {"$ref": "#/components/schemas/Role"}
    assert components["MemberRole"]["properties"]["role"] == {"$ref": "#/components/schemas/Role"}
    assert "Member" in components and "MemberPage" in components
    members = schema["paths"]["/api/v1/organizations/{org}/members"]["get"]["responses"]["200"]
    assert members["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/MemberPage"}
    # A query parameter of an enum refers to the component too.
    state = next(
        p for p in schema["paths"]["/api/v1/organizations/{org}/clusters"]["get"]["parameters"] if p["name"] == "state"
    )
    assert "ClusterState" in set(references(state["schema"]))


def test_component_names_are_unique_across_schemas_and_enums(schema):
    # Pydantic names an enum's component after its class; two classes of one name would overwrite each other.
    components = schema["components"]["schemas"]
    assert components["ClusterState"]["enum"] == list(models.Cluster.State.values)
    assert components["OperationState"]["enum"] == list(models.Operation.State.values)
    assert components["CertificateState"]["enum"] == list(models.Certificate.State.values)
    assert components["ZoneState"]["enum"] == list(models.HostedZone.State.values)
    assert components["AuditSource"]["enum"] == list(models.AuditEvent.Source.values)
    assert components["MembershipSource"]["enum"] == list(models.Membership.Source.values)
