"""A kind declared in one place (as docs/architecture.md's checklist says) is run, failed, retried, shown and audited by the
same machinery as the product's own kinds, with no migration and no list of kinds to extend."""

from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from provisioning import operation_kinds
from provisioning.clients.errors import ProviderError
from provisioning.models import AuditEvent, Operation
from provisioning.operation_kinds import OperationKind
from provisioning.services.operations import running as operations
from provisioning.services.operations.running import start_operation
from tests.conftest import run_jobs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def frobnicate():
    seen = SimpleNamespace(ran=[], failed=[], broken=False)

    def run(operation, progress, backends):
        progress.step("Frobnicating", 50)
        if seen.broken:
            raise ProviderError("the frobnicator is broken: fix it, then retry", service="orgdns", permanent=True)
        seen.ran.append(operation.pk)

    def on_failure(operation, message):
        seen.failed.append((operation.pk, message))

    seen.kind = OperationKind("test_frobnicate", "Frobnicate things", run=run, on_failure=on_failure)

    @seen.kind.retried_by
    def retry(operation, user):
        return start_operation(seen.kind, operation.organization, user=user)

    yield seen
    operation_kinds._KINDS.pop("test_frobnicate")


def start(kind, organization, user):
    with transaction.atomic():
        return start_operation(kind, organization, user=user)


@pytest.mark.integration
def test_a_declared_kind_runs_and_is_shown_and_audited(frobnicate, personas, client):
    operation = start(frobnicate.kind, personas.acme, personas.alice)
    run_jobs()

    operation.refresh_from_db()
    assert operation.state == Operation.State.SUCCEEDED and frobnicate.ran == [operation.pk]
    assert "Frobnicating" in operation.log
    assert operation.get_kind_display() == "Frobnicate things"
    assert set(AuditEvent.objects.filter(action__startswith="test_frobnicate.").values_list("action", flat=True)) == {
        "test_frobnicate.queued",
        "test_frobnicate.succeeded",
    }
    client.force_login(personas.alice)
    assert "Frobnicate things" in client.get(f"/operations/{operation.pk}/").content.decode()


@pytest.mark.integration
def test_a_declared_kind_fails_calls_its_on_failure_and_is_retried(frobnicate, personas, client):
    frobnicate.broken = True
    failed = start(frobnicate.kind, personas.acme, personas.alice)
    run_jobs()

    failed.refresh_from_db()
    assert failed.state == Operation.State.FAILED and "frobnicator is broken" in failed.error
    assert frobnicate.failed == [(failed.pk, failed.error)]
    client.force_login(personas.alice)
    assert ">Retry</button>" in client.get(f"/operations/{failed.pk}/").content.decode()

    frobnicate.broken = False
    retried = operations.retry_operation(failed, personas.alice)
    run_jobs()
    retried.refresh_from_db()
    assert retried.kind == "test_frobnicate" and retried.state == Operation.State.SUCCEEDED


def test_a_kind_without_retry_offers_none(personas, client):
    never = OperationKind("test_once", "Do it once", run=lambda *args: None)
    try:
        operation = Operation.objects.create(kind=never, organization=personas.acme, state=Operation.State.FAILED)
        with pytest.raises(ValidationError, match="can be retried"):
            operations.retry_operation(operation, personas.alice)
        client.force_login(personas.alice)
        assert ">Retry</button>" not in client.get(f"/operations/{operation.pk}/").content.decode()
    finally:
        operation_kinds._KINDS.pop("test_once")
