import re

from django.conf import settings
from django.core.exceptions import ValidationError

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
IAM_USER_NAME_MAX = 64
DNS_NAME_MAX = 253


def _validate_label(value, what):
    if not DNS_LABEL.match(value or ""):
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


def validate_org_name(value):
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
