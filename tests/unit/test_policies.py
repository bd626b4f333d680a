"""The least-privilege policies of docs/policies/ refuse what orgdns never needs; the docs include them rather than
copy them. (That they allow a full flow is tested against real calls in tests/clusters/test_least_privilege.py.)"""

import json
import re
from fnmatch import fnmatchcase

from moto.iam.access_control import IAMPolicy, PermissionResult

from devstack.policies import POLICIES, boundary_policy, iam_policy
from provisioning.clients.aws import zone_scoped_policy

ACCOUNT = "123456789012"  # moto's
DOCS = POLICIES.parent


BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/orgdns-tenant-boundary"


def permitted(policy, action, resource="*", **conditions):
    return IAMPolicy(json.dumps(policy)).is_action_permitted(
        action, resource, incoming_condition_values=conditions
    ) == (PermissionResult.PERMITTED)


def record_name_patterns(policy):
    """The record names ChangeResourceRecordSets is limited to (a condition moto's evaluator ignores)."""
    (statement,) = [s for s in policy["Statement"] if "route53:ChangeResourceRecordSets" in s["Action"]]
    return statement["Condition"]["ForAllValues:StringLike"]["route53:ChangeResourceRecordSetsNormalizedRecordNames"]


def names_allowed(patterns, names):
    return all(any(fnmatchcase(name.rstrip(".").lower(), p) for p in patterns) for name in names)


def test_the_iam_policy_refuses_what_orgdns_never_needs(settings):
    policy = iam_policy(ACCOUNT, "orgdns", "orgdns.test", BOUNDARY)
    tenant = f"arn:aws:iam::{ACCOUNT}:user/orgdns-acme"
    assert permitted(policy, "iam:CreateUser", tenant, **{"iam:PermissionsBoundary": BOUNDARY})
    assert not permitted(policy, "iam:CreateUser", tenant, **{"iam:PermissionsBoundary": ""})
    assert not permitted(policy, "iam:PutUserPolicy", tenant, **{"iam:PermissionsBoundary": ""})
    assert not permitted(
        policy, "iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/admin", **{"iam:PermissionsBoundary": BOUNDARY}
    )
    assert not permitted(policy, "iam:CreateAccessKey", f"arn:aws:iam::{ACCOUNT}:user/deploy-bot")
    for action in (
        "iam:AttachUserPolicy",
        "iam:DeleteUserPermissionsBoundary",
        "iam:PutUserPermissionsBoundary",
        "iam:CreateRole",
        "iam:CreatePolicy",
        "sts:AssumeRole",
        "route53:CreateTrafficPolicy",
    ):
        assert not permitted(policy, action, tenant), action
    patterns = record_name_patterns(policy)
    assert names_allowed(patterns, ["acme.orgdns.test.", "a-www.acme.orgdns.test"])
    assert not names_allowed(patterns, ["orgdns.test", "www.example.com", "acme.orgdns.test.evil.example"])


def test_the_boundary_allows_the_tenants_record_work_only():
    boundary = boundary_policy("orgdns.test")
    tenant = zone_scoped_policy("ZACME")
    for statement in tenant["Statement"]:
        for action in statement["Action"]:
            for resource in statement["Resource"]:
                assert permitted(boundary, action, resource), (action, resource)  # what ExternalDNS needs still works
    for action in (
        "route53:DeleteHostedZone",
        "route53:CreateHostedZone",
        "route53:ChangeTagsForResource",
        "route53:AssociateVPCWithHostedZone",
        "iam:CreateUser",
        "iam:CreateAccessKey",
        "sts:AssumeRole",
        "s3:GetObject",
        "ec2:DescribeInstances",
    ):
        assert not permitted(boundary, action, "arn:aws:route53:::hostedzone/ZACME"), action
    patterns = record_name_patterns(boundary)
    assert names_allowed(patterns, ["acme.orgdns.test", "app.acme.orgdns.test", "orgdns.test"])
    assert not names_allowed(patterns, ["www.example.com", "orgdns.test.example.com"])


def test_the_docs_include_every_policy_and_copy_none():
    """Each file of docs/policies/ is included by a page (pymdownx.snippets: `--8<-- "name"`, which `make lint`'s
    strict build fails on when the file is missing); no page nor the README repeats a policy's statements by hand."""
    pages = {path: path.read_text() for path in [*DOCS.glob("*.md"), DOCS.parent / "README.md"]}
    for policy in sorted(path for path in POLICIES.iterdir() if path.is_file()):
        assert any(f'--8<-- "{policy.name}"' in text for text in pages.values()), f"no page includes {policy.name}"
        for line in policy.read_text().splitlines():
            if re.search(r'"Sid"|capabilities|resources:', line):
                copies = [path.name for path, text in pages.items() if line.strip() in text]
                assert not copies, f"{', '.join(copies)} copies {policy.name} ({line.strip()}): include it instead"
