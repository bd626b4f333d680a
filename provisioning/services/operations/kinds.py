"""What an operation kind is: one class that says what it is called, what it acts on, what it runs, what a failure
leaves behind and how a failed one is retried; queued through the class:

    class RegisterCluster(OperationKind):
        name = "register"            # what Operation.kind stores: never renamed once released
        label = "Register cluster"
        target = Cluster

        def run(self, operation, progress, backends): ...

    RegisterCluster.enqueue(cluster, user)

Declaring the class registers it (provisioning.operation_kinds); the app imports every job module at start-up, so every
process knows every kind. The machinery (running.py) runs it, records progress, classifies and retries failures and
sweeps lost jobs for every kind alike."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from provisioning import operation_kinds
from provisioning.models import Certificate, Cluster, Organization
from provisioning.services.operations import running

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from provisioning.models import Operation
    from provisioning.services.backends import Backends
    from provisioning.services.operations.running import Progress


class OperationKind:
    name: ClassVar[str]  # what Operation.kind stores (at most 20 characters)
    label: ClassVar[str]  # what the pages, lists and filters show
    target: ClassVar[type[Organization] | type[Cluster] | type[Certificate]] = Organization
    retryable: ClassVar[bool]  # whether a failed one has a Retry: the class defines retry()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            raise TypeError(f"operation kind {cls.__name__} has no name (the value Operation.kind stores)")
        cls.retryable = cls.retry is not OperationKind.retry
        operation_kinds.register(cls)

    @classmethod
    def enqueue(
        cls,
        target: Organization | Cluster | Certificate,
        user: User | None = None,
        *,
        cluster: Cluster | None = None,
        reason: str = "",
    ) -> Operation:
        """Save the operation and queue its job once the transaction commits (running.start_operation: a user's is
        refused while the organization has too many unfinished). cluster: the cluster a certificate kind acts in;
        reason: why it was asked for, the first line of its log."""
        if not isinstance(target, cls.target):
            raise TypeError(f"{cls.__name__} acts on a {cls.target.__name__}, not on {target!r}")
        if isinstance(target, Cluster):
            cluster = target
        organization = target if isinstance(target, Organization) else target.organization
        certificate = target if isinstance(target, Certificate) else None
        with transaction.atomic():  # the job, queued on commit, starts with the reason logged
            operation = running.start_operation(cls, organization, cluster, user, certificate)
            if reason:
                running.Progress(operation).log(f"asked for: {reason}")
        return operation

    @classmethod
    def retry_intervals(cls) -> list[int]:
        """Seconds between RQ's retries of a transient failure; their number is the retry budget the sweep shares."""
        return list(settings.ORGDNS_JOB_RETRY_INTERVALS)

    def run(self, operation: Operation, progress: Progress, backends: Backends) -> None:
        """The job: every step safe to run again, progress.step(...) before each."""
        raise NotImplementedError

    def on_failure(self, operation: Operation, message: str) -> None:
        """Once it failed for good: put the rows it acts on in a state that says so (nothing by default)."""

    def retry(self, operation: Operation, user: User | None) -> Operation:
        """Start a failed one again, with the checks of what started it (a kind that defines it has a Retry)."""
        raise ValidationError(f"A failed {self.label.lower()} operation cannot be retried.")
