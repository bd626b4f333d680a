"""The registry of operation kinds: the value Operation.kind stores → the kind's class. A kind is a subclass of
OperationKind (provisioning/services/operations/kinds.py), which registers itself here when its class is made;
the app imports every job module at start-up (ProvisioningConfig.ready), so every process knows every kind.

The model reads its choices from here, so a new kind needs no migration."""

from __future__ import annotations

from typing import Any

_KINDS: dict[str, Any] = {}


def register(kind: Any) -> None:
    if _KINDS.get(kind.name, kind) is not kind:
        raise ValueError(f"operation kind {kind.name!r} is declared twice")
    _KINDS[kind.name] = kind


def get(value: str) -> Any:
    return _KINDS[value]


def values() -> list[str]:
    return sorted(_KINDS)


def choices() -> list[tuple[str, str]]:
    return sorted(((kind.name, kind.label) for kind in _KINDS.values()), key=lambda choice: choice[1])
