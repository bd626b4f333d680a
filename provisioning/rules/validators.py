import re
from fnmatch import fnmatchcase

from django.conf import settings
from django.core.exceptions import ValidationError

DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
IAM_USER_NAME_MAX = 64
DNS_NAME_MAX = 253


def _validate_label(value, what):
    if not DNS_LABEL.fullmatch(value or ""):
        raise ValidationError(
            f"{what} {value!r} is not a DNS label: use lowercase letters, digits and inner hyphens only.",
            code="invalid",
        )
    if len(value) > 63:
        raise ValidationError(f"{what} is {len(value)} characters; a DNS label has at most 63.", code="too_long")


def max_org_name_length():
    """The longest name whose zone name and IAM user name both fit their limits."""
    by_zone = DNS_NAME_MAX - len(settings.ORGDNS_BASE_DOMAIN) - 1
    by_iam = IAM_USER_NAME_MAX - len(iam_user_name(""))
    return min(63, by_zone, by_iam)


def iam_user_name(org_name):
    return f"{settings.ORGDNS_RESOURCE_PREFIX}-{org_name}"


def is_reserved_org_name(name):
    return any(fnmatchcase(name, pattern) for pattern in settings.ORGDNS_RESERVED_NAMES)


def validate_org_name(value):
    if is_reserved_org_name(value or ""):
        raise ValidationError(
            f"Organization name {value!r} is reserved: <name>.{settings.ORGDNS_BASE_DOMAIN} would look like a service of "
            "the platform (see ORGDNS_RESERVED_NAMES). Choose another name.",
            code="reserved",
        )
    _validate_label(value, "Organization name")
    limit = max_org_name_length()
    if len(value) > limit:
        raise ValidationError(
            f"Organization name is {len(value)} characters; at most {limit} fit in the zone name "
            f"(<name>.{settings.ORGDNS_BASE_DOMAIN}) and the IAM user name ({settings.ORGDNS_RESOURCE_PREFIX}-<name>).",
            code="too_long",
        )


def validate_cluster_name(value):
    _validate_label(value, "Cluster name")
    if len(value) > 40:
        raise ValidationError(f"Cluster name is {len(value)} characters; at most 40 are allowed.", code="too_long")


def validate_namespace_name(value):
    _validate_label(value, "Namespace")


def system_namespaces():
    """Namespaces of the cluster's own machinery and of the ExternalDNS we deploy: no certificate goes there."""
    return {"kube-system", "kube-public", "kube-node-lease", settings.EXTERNALDNS_NAMESPACE}


def validate_certificate_namespace(value):
    validate_namespace_name(value)
    if value in system_namespaces():
        raise ValidationError(
            f"Namespace {value} belongs to the cluster's system (or to ExternalDNS): install certificates into an "
            "application namespace.",
            code="system_namespace",
        )


def validate_secret_name(value):
    if len(value) > DNS_NAME_MAX or not all(DNS_LABEL.fullmatch(label) for label in value.split(".")):
        raise ValidationError(
            f"Secret name {value[:80]!r} is not a DNS subdomain: use lowercase letters, digits, inner hyphens and dots, "
            f"at most {DNS_NAME_MAX} characters.",
            code="invalid",
        )


def certificate_dns_names(names, zone, limit):
    """The names, lowercased and without duplicates, if a certificate of zone's CA may hold them; else ValidationError."""
    cleaned = list(dict.fromkeys(name.strip().lower().removesuffix(".") for name in names if name.strip()))
    if not cleaned:
        raise ValidationError("Give at least one DNS name.", code="required")
    if len(cleaned) > limit:
        raise ValidationError(f"{len(cleaned)} names given; a certificate holds at most {limit}.", code="too_many")
    errors = [error for error in (_certificate_name_error(name, zone) for name in cleaned) if error]
    if errors:
        raise ValidationError(errors, code="invalid")
    return cleaned


def _certificate_name_error(name, zone):
    if len(name) > DNS_NAME_MAX:
        return f"{name[:60]}… is {len(name)} characters; a DNS name has at most {DNS_NAME_MAX}."
    if name != zone and not name.endswith(f".{zone}"):
        return f"{name} is outside your zone: names must be {zone} or end in .{zone}."
    labels = name.removesuffix(zone).removesuffix(".").split(".") if name != zone else []
    for position, label in enumerate(labels):
        if "*" in label:
            if label != "*" or position != 0 or len(labels) != 1:
                return (
                    f"{name}: a wildcard is allowed only as the whole first label, one level below the zone: *.{zone}."
                )
        elif len(label) > 63:
            return f"{name}: the label {label[:20]}… is {len(label)} characters; a DNS label has at most 63."
        elif not DNS_LABEL.fullmatch(label):
            return (
                f"{name}: {label!r} is not a DNS label: use lowercase letters, digits and inner hyphens only "
                "(internationalized names in their xn-- form)."
            )
    return None
