"""The kinds of background operation. Each job module declares its own, with what runs it:

    REGISTER = OperationKind("register", "Register cluster", run=register, on_failure=mark_register_failed)

The value is what Operation.kind stores; the model reads its choices from here, so a new kind needs no migration.
provisioning.jobs imports every job module, so every process knows every kind once Django has started."""

from collections.abc import Callable

_KINDS: dict[str, "OperationKind"] = {}


def _nothing_to_undo(operation, message):
    pass


class OperationKind(str):
    """A str (the stored value) that also knows its label, its job and what to do when the job fails for good.

    run(operation, progress, backends) does the work; on_failure(operation, message) puts the rows it acts on in a
    state that says so. retry(operation, user), set by the request side with retried_by, starts a failed one again
    through the action that started it (with that action's checks); kinds without it have no Retry."""

    label: str
    run: Callable
    on_failure: Callable
    retry: Callable | None

    def __new__(cls, value, label, *, run, on_failure=_nothing_to_undo):
        if value in _KINDS:
            raise ValueError(f"operation kind {value!r} is declared twice")
        kind = super().__new__(cls, value)
        kind.label, kind.run, kind.on_failure, kind.retry = label, run, on_failure, None
        _KINDS[value] = kind
        return kind

    def __reduce__(self):  # copies and pickles are the declared kind itself
        return get, (str(self),)

    def retried_by(self, retry):
        """Decorator for the request-side function that retries a failed operation of this kind."""
        self.retry = retry
        return retry


def get(value):
    return _KINDS[value]


def values():
    return sorted(_KINDS)


def choices():
    return sorted(((str(kind), kind.label) for kind in _KINDS.values()), key=lambda choice: choice[1])
