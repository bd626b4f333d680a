"""Who owns what, read from the code: only the models write a row's state (their transition methods), the services
raise no HTTP error (the pages, the API and the admin answer 404 or 403, through provisioning/scoping.py), and the
request is described for the refusal trail in one place."""

import ast
from pathlib import Path

import pytest

PROVISIONING = Path(__file__).resolve().parents[2] / "provisioning"
MODULES = sorted(p for p in PROVISIONING.rglob("*.py") if "migrations" not in p.parts)
WRITES = ("update", "create", "update_or_create", "get_or_create")


def places(path, found):
    tree = ast.parse(path.read_text())
    return [f"{path.relative_to(PROVISIONING.parent)}:{node.lineno}" for node in ast.walk(tree) if found(node)]


def writes_state(node):
    if isinstance(node, ast.Assign):
        return any(isinstance(target, ast.Attribute) and target.attr == "state" for target in node.targets)
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITES):
        return False
    keywords = {keyword.arg: keyword.value for keyword in node.keywords}
    defaults = keywords.get("defaults")
    in_defaults = isinstance(defaults, ast.Dict) and any(
        isinstance(key, ast.Constant) and key.value == "state" for key in defaults.keys
    )
    return "state" in keywords or in_defaults


def raises_http_error(node):
    if isinstance(node, ast.Raise) and node.exc is not None:
        raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        return isinstance(raised, ast.Name) and raised.id in ("Http404", "PermissionDenied")
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "get_object_or_404"


def test_only_the_models_write_a_state():
    found = [place for path in MODULES if path.name != "models.py" for place in places(path, writes_state)]
    assert found == []


def test_the_services_raise_no_http_error():
    found = [place for path in MODULES if "services" in path.parts for place in places(path, raises_http_error)]
    assert found == []


def test_the_request_is_described_in_one_place():
    found = [path.name for path in MODULES if "{request.method} {request.path}" in path.read_text()]
    assert found == ["scoping.py"]


@pytest.mark.parametrize(
    "code, found",
    [
        ("Cluster.objects.filter(pk=1).update(state='ready')", True),
        ("zone.state = HostedZone.State.ACTIVE", True),
        ("X.objects.update_or_create(pk=1, defaults={'state': 'pending'})", True),
        ("Cluster.objects.filter(state='ready').update(message='')", False),
        ("cluster.finish_provisioning(message)", False),
    ],
)
def test_the_rule_sees_a_state_write(code, found):
    assert any(writes_state(node) for node in ast.walk(ast.parse(code))) is found
