"""How a setting is read from the environment and checked: one reader per kind of value (environs does the parsing),
and the parsers of the settings that are more than one value (ORGDNS_AWS_ACCOUNTS, the OIDC group mapping, …)."""

import hashlib
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
import environs
from django.core.exceptions import ImproperlyConfigured

# Every setting is parsed (by environs) and checked as the process starts (orgdns_site/settings.py): a bad value stops
# it with ImproperlyConfigured naming the variable and what it must be, never a failure later at use. Any NAME may
# instead be read from the file NAME_FILE names (secrets mounted as files), its surrounding whitespace stripped.
ENVIRONMENT = environs.FileAwareEnv(strip_whitespace=True)


def env(name, default=""):
    """NAME as text: the one reader every other one goes through."""
    return parsed(ENVIRONMENT.str, name, default, "readable text")


def parsed(read, name, default, wanted, rule=None, **options):
    """NAME through `read` (ENVIRONMENT.int, .float, …); a value it refuses, or one `rule` does not hold for, stops the
    start: "NAME must be <wanted>, not <the value>"."""
    try:
        value = read(name, default, **options)
    except environs.EnvValidationError:
        raise ImproperlyConfigured(f"{name} must be {wanted}, not {ENVIRONMENT.str(name)!r}") from None
    except ValueError as error:  # NAME_FILE names no readable file
        raise ImproperlyConfigured(str(error)) from None
    return checked(name, value, rule)


@dataclass(frozen=True)
class Rule:
    says: str  # what the value must be, as the error says it: "must be more than 0"
    holds: Callable[[Any], bool]


POSITIVE = Rule("must be more than 0", lambda value: value > 0)
NOT_NEGATIVE = Rule("must not be negative", lambda value: value >= 0)
FRACTION = Rule("must be a fraction, more than 0 and at most 1", lambda value: 0 < value <= 1)


def between(low, high):
    return Rule(f"must be {low} to {high}", lambda value: low <= value <= high)


def checked(name, value, rule):
    if rule is not None and not rule.holds(value):
        raise ImproperlyConfigured(f"{name} {rule.says}, not {value}")
    return value


# The one parser of each kind of value.


def envbool(name, default):
    # an empty value is off, as it always was
    falsy = {*environs.ma.fields.Boolean.falsy, ""}
    return parsed(ENVIRONMENT.bool, name, default, "1, true, yes or on, or 0, false, no or off", falsy=falsy)


def envint(name, default, rule=None):
    return parsed(ENVIRONMENT.int, name, default, "a whole number", rule)


def envfloat(name, default, rule=None):
    return parsed(ENVIRONMENT.float, name, float(default), "a number", rule)


def envdecimal(name, default, rule=None):
    return parsed(ENVIRONMENT.decimal, name, Decimal(default), "a decimal number such as 0.50", rule)


def envseconds(name, default, rule=NOT_NEGATIVE):
    return timedelta(seconds=envint(name, default, rule))


def envchoice(name, default, choices):
    wanted = f"one of {', '.join(choices)}"
    return parsed(ENVIRONMENT.str, name, default, wanted, validate=environs.validate.OneOf(choices))


def envmatch(name, default, pattern, wanted):
    """A text setting that must match the regular expression `pattern` (wholly); `wanted` says what it must be."""
    return parsed(ENVIRONMENT.str, name, default, wanted, validate=environs.validate.Regexp(rf"(?:{pattern})\Z"))


def envurl(name, default, schemes, *, optional=False):
    value = env(name, default)
    if optional and not value:
        return value
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number in range)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in schemes or not (parts.hostname or parts.scheme == "unix"):
        examples = " or ".join(f"{scheme}://…" for scheme in schemes)
        shown = re.sub(r"[^/@]*@", "…@", value, count=1)  # never the password a URL may hold
        raise ImproperlyConfigured(
            f"{name} must be a URL like {examples}{', or empty' if optional else ''}, not {shown!r}"
        )
    return value


def envlist(name, default, parse, wanted):
    """A comma-separated setting, every item parsed by `parse` (which raises ValueError for a bad one)."""
    items = [item.strip() for item in env(name, default).split(",") if item.strip()]
    for item in items:
        try:
            parse(item)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not {wanted}") from None
    return [parse(item) for item in items]


def envdatabase(name, default, *, connect_timeout, max_age, health_checks):
    """A database URL (sqlite:///path or postgres://user:password@host:port/name?option=value&…): its query options
    (sslmode, sslrootcert, options=-c …, connect_timeout …) go to the driver as they are. The error never repeats the
    URL, which may hold a password."""
    url = env(name, default)
    scheme = url.partition(":")[0]
    if scheme not in ("sqlite", "postgres", "postgresql"):
        raise ImproperlyConfigured(f"{name}: unsupported scheme {scheme!r} (use sqlite:/// or postgres://)")
    try:
        database = dj_database_url.parse(url, conn_max_age=max_age, conn_health_checks=health_checks)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a URL like postgres://user:password@host:5432/name") from None
    if scheme != "sqlite":
        # a server that does not answer fails a request (and /readyz) in seconds, not after TCP's minutes
        database.setdefault("OPTIONS", {}).setdefault("connect_timeout", connect_timeout)
    return database


def whole_seconds(item):
    seconds = int(item)
    if seconds < 0:
        raise ValueError(item)
    return seconds


def network(item):
    """An address or network, as given (10.0.0.0/8, 10.1.2.3); ValueError if it is neither."""
    ipaddress.ip_network(item, strict=False)
    return item


def check_order(smaller, smaller_value, larger, larger_value):
    if not smaller_value < larger_value:
        raise ImproperlyConfigured(f"{smaller} ({smaller_value:g}) must be less than {larger} ({larger_value:g})")


def deployment_id_from(base_domain):
    """`dns.example.com` → `dns-example-com`: this deployment's default id (cut to 40 characters, with a hash of the
    whole name when cut, so that two long names still differ)."""
    slug = re.sub(r"[^a-z0-9]+", "-", base_domain.lower()).strip("-") or "orgdns"
    if len(slug) > 40:
        slug = f"{slug[:31].rstrip('-')}-{hashlib.sha256(base_domain.encode()).hexdigest()[:8]}"
    return slug


POSITIVE_FIELD = environs.validate.Range(min=0, min_inclusive=False, error="must be more than 0")


def must_be(wanted):
    """A JSON field's errors, as the settings say them."""
    return {"invalid": f"must be {wanted}", "required": f"must be {wanted}"}


class AwsAccount(environs.ma.Schema):
    """An entry of ORGDNS_AWS_ACCOUNTS (docs/aws-accounts.md); every error says what the field must be."""

    name = environs.ma.fields.String(
        required=True,
        error_messages=must_be("a string"),
        validate=environs.validate.Regexp(
            r"[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?\Z", error="must be 1 to 32 lowercase letters, digits and inner hyphens"
        ),
    )
    role_arn = environs.ma.fields.String(
        load_default="",
        error_messages=must_be("a string"),
        validate=environs.validate.Regexp(
            r"(arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512})?\Z",
            error="must be an IAM role ARN like arn:aws:iam::123456789012:role/orgdns, or empty for orgdns's own account",
        ),
    )
    zone_quota = environs.ma.fields.Integer(
        strict=True, load_default=500, error_messages=must_be("a whole number"), validate=POSITIVE_FIELD
    )
    iam_user_quota = environs.ma.fields.Integer(
        strict=True, load_default=5000, error_messages=must_be("a whole number"), validate=POSITIVE_FIELD
    )
    rate = environs.ma.fields.Float(load_default=10.0, error_messages=must_be("a number"), validate=POSITIVE_FIELD)
    iam_permissions_boundary = environs.ma.fields.String(load_default="", error_messages=must_be("a string"))

    @environs.ma.validates_schema
    def the_main_account_is_orgdns_s_own(self, account, **_):
        if account["name"] == "main" and account["role_arn"]:
            raise environs.ValidationError("the name main is the main account's (the one with an empty role_arn)")


def aws_accounts(value):
    """ORGDNS_AWS_ACCOUNTS (JSON) → [{"name", "role_arn", "zone_quota", "iam_user_quota", "rate", …}], checked: every
    error names the entry. Empty: [] (one main account, from the other settings)."""
    if not value.strip():
        return []
    try:
        entries = json.loads(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"ORGDNS_AWS_ACCOUNTS is not valid JSON: {exc}") from None
    if not isinstance(entries, list) or not entries:
        raise ImproperlyConfigured("ORGDNS_AWS_ACCOUNTS must be a JSON list of accounts, at least one")
    accounts = [_aws_account(i, entry) for i, entry in enumerate(entries, 1)]
    for field in ("name", "role_arn"):
        seen = [account[field] for account in accounts]
        repeated = sorted({v for v in seen if seen.count(v) > 1})
        if repeated:
            what = "the main account (an empty role_arn)" if repeated == [""] else ", ".join(repeated)
            raise ImproperlyConfigured(f"ORGDNS_AWS_ACCOUNTS: {field} must differ between accounts; repeated: {what}")
    return accounts


def _aws_account(number, entry):
    where = f"ORGDNS_AWS_ACCOUNTS entry {number}"
    if not isinstance(entry, dict):
        raise ImproperlyConfigured(f'{where} must be an object like {{"name": "eu-1", "role_arn": ...}}, not {entry!r}')
    where += f" ({entry['name']!r})" if isinstance(entry.get("name"), str) else ""
    try:
        return AwsAccount().load(entry)
    except environs.ValidationError as error:
        field, (said, *_) = next(iter(error.normalized_messages().items()))
    if field == "_schema":
        raise ImproperlyConfigured(f"{where}: {said}")
    if field not in AwsAccount().fields:
        raise ImproperlyConfigured(f"{where}: unknown field {field} (known: {', '.join(AwsAccount().fields)})")
    raise ImproperlyConfigured(f"{where}: {field} {said}, not {entry.get(field)!r}")


def proxy_ssl_header(value):
    """`X-Forwarded-Proto=https` → ("HTTP_X_FORWARDED_PROTO", "https"), as SECURE_PROXY_SSL_HEADER wants it."""
    if not value:
        return None
    header, separator, expected = value.partition("=")
    if not (separator and header.strip() and expected.strip()):
        raise ImproperlyConfigured(f"SECURE_PROXY_SSL_HEADER must look like X-Forwarded-Proto=https, got {value!r}")
    return "HTTP_" + header.strip().upper().replace("-", "_"), expected.strip()


ROLES = ("owner", "member", "viewer")  # provisioning.models.Membership.Role
SITE_GRANTS = ("staff", "superuser")


def group_pattern(value):
    """ORGDNS_OIDC_GROUP_PATTERN such as `orgdns:{org}:{role}` → a regular expression with the groups org and role
    (empty: no pattern). The rest of the pattern is matched literally."""
    if not value:
        return None
    if value.count("{org}") != 1 or value.count("{role}") != 1:
        raise ImproperlyConfigured(
            f"ORGDNS_OIDC_GROUP_PATTERN must hold {{org}} and {{role}} once each, like orgdns:{{org}}:{{role}}; "
            f"not {value!r}"
        )
    parts = re.split(r"(\{org\}|\{role\})", value)
    wanted = {"{org}": r"(?P<org>[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)", "{role}": f"(?P<role>{'|'.join(ROLES)})"}
    return "".join(wanted.get(part, re.escape(part)) for part in parts)


def group_table(value):
    """ORGDNS_OIDC_GROUP_MAP (JSON) → {group: [grant, …]}, a grant being staff, superuser or ORG:ROLE; checked here,
    every error naming the group. Empty: {}."""
    if not value.strip():
        return {}
    example = '{"platform-admins": ["superuser"], "acme-devs": ["acme:member"]}'
    try:
        table = json.loads(value)
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"ORGDNS_OIDC_GROUP_MAP is not valid JSON ({exc}); it looks like {example}"
        ) from None
    if not isinstance(table, dict):
        raise ImproperlyConfigured(f"ORGDNS_OIDC_GROUP_MAP must be a JSON object like {example}")
    checked_table = {}
    for group, grants in table.items():
        grants = [grants] if isinstance(grants, str) else grants
        if not isinstance(grants, list) or not grants:
            raise ImproperlyConfigured(f"ORGDNS_OIDC_GROUP_MAP[{group!r}] must be a grant or a list of them")
        for grant in grants:
            org, _, role = str(grant).rpartition(":")
            if not (grant in SITE_GRANTS or (isinstance(grant, str) and org and role in ROLES)):
                raise ImproperlyConfigured(
                    f"ORGDNS_OIDC_GROUP_MAP[{group!r}]: {grant!r} is not a grant: use staff, superuser or ORG:ROLE with "
                    f"ROLE one of {', '.join(ROLES)}"
                )
        checked_table[group] = grants
    return checked_table


def redis_url_with_timeouts(url, seconds):
    if "socket_timeout" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}socket_timeout={seconds}&socket_connect_timeout={seconds}"
