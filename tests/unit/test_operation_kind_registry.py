"""The registry of operation kinds: each kind is a class, declared once, registered when it is declared; what the model
stores and offers are plain names and labels."""

import copy
import pickle

import pytest

from provisioning import operation_kinds
from provisioning.models import Cluster
from provisioning.services.clusters.jobs import DeregisterCluster, RegisterCluster, RerenderExternalDNS
from provisioning.services.operations.kinds import OperationKind


def test_every_job_module_registered_its_kinds_at_start_up():
    assert operation_kinds.get("register") is RegisterCluster
    assert set(operation_kinds.values()) >= {
        "register",
        "rerender_externaldns",
        "deregister",
        "issue_certificate",
        "renew_certificate",
        "install_certificate",
        "delete_certificate",
        "rotate_credentials",
        "offboard",
        "delete_zone",
    }


def test_a_kind_is_declared_once():
    with pytest.raises(ValueError, match="declared twice"):

        class RegisterAgain(OperationKind):
            name = "register"
            label = "Register again"

    assert operation_kinds.get("register") is RegisterCluster


def test_a_kind_has_a_name():
    with pytest.raises(TypeError, match="has no name"):

        class Nameless(OperationKind):
            label = "Nameless"


def test_a_kind_is_retryable_when_it_says_how():
    assert RegisterCluster.retryable and DeregisterCluster.retryable and RerenderExternalDNS.retryable
    assert not operation_kinds.get("issue_certificate").retryable and not operation_kinds.get("offboard").retryable


def test_a_kind_is_queued_for_its_target_type():
    with pytest.raises(TypeError, match="acts on a Cluster"):
        RegisterCluster.enqueue(object())
    assert RegisterCluster.target is Cluster


def test_copies_and_pickles_of_a_kind_are_the_kind():
    assert copy.deepcopy(RegisterCluster) is RegisterCluster and copy.copy(RegisterCluster) is RegisterCluster
    assert pickle.loads(pickle.dumps(RegisterCluster)) is RegisterCluster
    assert RegisterCluster.name == "register" and RegisterCluster.label == "Register cluster"


def test_choices_are_plain_values_by_label():
    choices = operation_kinds.choices()
    assert [label for _, label in choices] == sorted(label for _, label in choices)
    assert all(type(value) is str for value, _ in choices)
    assert ("register", "Register cluster") in choices and "offboard" in operation_kinds.values()
