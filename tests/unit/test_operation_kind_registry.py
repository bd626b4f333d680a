"""The registry of operation kinds: each kind is declared once, and stays itself when Django copies form choices."""

import copy
import pickle

import pytest

from provisioning import operation_kinds
from provisioning.operation_kinds import OperationKind
from provisioning.services.clusters.jobs import REGISTER


def test_a_kind_is_declared_once():
    with pytest.raises(ValueError, match="declared twice"):
        OperationKind("register", "Register again", run=lambda *args: None)


def test_copies_and_pickles_of_a_kind_are_the_kind():
    assert copy.deepcopy(REGISTER) is REGISTER and copy.copy(REGISTER) is REGISTER
    assert pickle.loads(pickle.dumps(REGISTER)) is REGISTER
    assert REGISTER == "register" and REGISTER.label == "Register cluster"


def test_choices_are_plain_values_by_label():
    choices = operation_kinds.choices()
    assert [label for _, label in choices] == sorted(label for _, label in choices)
    assert all(type(value) is str for value, _ in choices)
    assert ("register", "Register cluster") in choices and "offboard" in operation_kinds.values()
