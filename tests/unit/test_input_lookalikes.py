"""Property: every validator and parser of input takes the whole value or nothing. A valid value with a line break, a
NUL or a Unicode look-alike (Cyrillic 'а', fullwidth '．', a zero-width joiner…) put anywhere in it is refused with a
clear error, or (where input is cleaned, as DNS names are) comes out without it; never a crash."""

import pytest
import yaml
from django.core.exceptions import ValidationError
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import TypeAdapter
from pydantic import ValidationError as SchemaError

from provisioning.api import params, schemas
from provisioning.clients import externaldns
from provisioning.clients.kube import ClusterConnection, InvalidConnection, connection_from_kubeconfig
from provisioning.rules import validators
from provisioning.services import audit

POISON = [
    "\n",
    "\r",
    "\r\n",
    "\x00",
    "\t",
    " ",
    "\u0430",  # Cyrillic а
    "\u0435",  # Cyrillic е
    "\u043e",  # Cyrillic о
    "\uff0e",  # fullwidth full stop
    "\u3002",  # ideographic full stop (IDNA maps it to '.')
    "\uff41",  # fullwidth a
    "\u200d",  # zero-width joiner
    "\u200b",  # zero-width space
    "\ufeff",  # byte order mark
    "\u00a0",  # no-break space
    "\u2024",  # one dot leader
    "\u0661",  # Arabic-Indic digit one (\d would take it)
    "\u0131",  # dotless i
    "\u2028",  # line separator
]
ASCII_DNS = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


def poisoned(valid):
    """valid with one poison character (or pair) put at any place in it."""
    return st.tuples(valid, st.sampled_from(POISON), st.integers(min_value=0)).map(
        lambda found: found[0][: found[2] % (len(found[0]) + 1)] + found[1] + found[0][found[2] % (len(found[0]) + 1) :]
    )


def has_poison(text):
    return any(poison in text for poison in POISON)


# name -> (a strategy of valid values, the check: raises a clear error for a bad value)
VALIDATORS = {
    "organization name": (
        ASCII_DNS.filter(lambda v: not validators.is_reserved_org_name(v)),
        validators.validate_org_name,
    ),
    "cluster name": (ASCII_DNS, validators.validate_cluster_name),
    "namespace": (ASCII_DNS, validators.validate_namespace_name),
    "certificate namespace": (ASCII_DNS.map(lambda v: f"app-{v}"), validators.validate_certificate_namespace),
    "secret name": (st.lists(ASCII_DNS, min_size=1, max_size=3).map(".".join), validators.validate_secret_name),
}


@pytest.mark.parametrize("name", VALIDATORS)
def test_validators_refuse_a_value_with_a_poisoned_character(name):
    valid, validate = VALIDATORS[name]

    @given(poisoned(valid))
    @example("acme\n")
    @example("acm\u0430")
    def check(value):
        with pytest.raises(ValidationError) as refused:
            validate(value)
        message = refused.value.messages[0]
        assert "is not a DNS label" in message or "is not a DNS subdomain" in message or "reserved" in message

    @given(valid)
    def still_valid(value):
        validate(value)

    check()
    still_valid()


ZONE = "acme.orgdns.test"


@given(poisoned(ASCII_DNS.map(lambda v: f"{v}.{ZONE}")))
@example(f"a\n.{ZONE}")
@example(f"www\uff0e{ZONE}")
def test_certificate_names_are_refused_or_come_out_clean(name):
    try:
        cleaned = validators.certificate_dns_names([name], ZONE, limit=20)
    except ValidationError:
        return
    assert not any(has_poison(found) for found in cleaned)
    assert all(found.isascii() for found in cleaned)


@given(poisoned(st.from_regex(r"[!-~]{1,40}", fullmatch=True)))
@example("abc\n")
def test_a_token_with_a_poisoned_character_is_refused(token):
    with pytest.raises(InvalidConnection, match="printable ASCII"):
        ClusterConnection("https://k8s.example:6443", token)


@given(poisoned(ASCII_DNS.map(lambda v: f"https://{v}.example:6443")))
@example("https://k8s.example:6443\n")
def test_a_server_url_with_a_poisoned_character_is_refused(server):
    with pytest.raises(InvalidConnection, match="printable ASCII"):
        ClusterConnection(server, "token")


@given(
    field=st.sampled_from(["token", "server"]),
    value=poisoned(st.just("abc")),
)
@example(field="token", value="abc\n")
def test_kubeconfig_values_with_a_poisoned_character_are_refused_clearly(field, value):
    server = f"https://{value}.example" if field == "server" else "https://k8s.example"
    token = value if field == "token" else "t"
    text = yaml.safe_dump(
        {
            "current-context": "main",
            "contexts": [{"name": "main", "context": {"cluster": "c", "user": "u"}}],
            "clusters": [{"name": "c", "cluster": {"server": server}}],
            "users": [{"name": "u", "user": {"token": token}}],
        }
    )
    with pytest.raises(InvalidConnection, match="printable ASCII"):
        connection_from_kubeconfig(text)


@given(poisoned(st.from_regex(r"[A-Za-z0-9._:-]{1,40}", fullmatch=True)))
@example("req-1\n")
def test_a_poisoned_client_request_id_is_ignored(proposed):
    assert audit.client_request_id(proposed) == ""


@given(poisoned(st.sampled_from(["1m", "90s", "1h0m0s", "1.5h", "250ms"])))
@example("1m\n")
@example("\u0661m")
def test_a_poisoned_interval_flag_reads_as_the_default(duration):
    assert externaldns._interval([f"--interval={duration}"]) == externaldns.DEFAULT_INTERVAL


@pytest.mark.parametrize(
    "annotation",
    [params.OrgName, schemas.NewCluster.model_fields["name"].metadata and schemas.NewCluster],
    ids=["organization in a path", "new cluster's name"],
)
def test_api_patterns_take_the_whole_value(annotation):
    def validate(value):
        if annotation is schemas.NewCluster:
            schemas.NewCluster(name=value, kubeconfig="x")
        else:
            TypeAdapter(annotation).validate_python(value)

    @given(poisoned(ASCII_DNS))
    @example("acme\n")
    def check(value):
        with pytest.raises(SchemaError):
            validate(value)

    check()
    validate("acme")
