"""The least-privilege policies of docs/policies/ (included in docs/security-model.md), filled in for a deployment."""

import json
from pathlib import Path
from string import Template

import hvac

POLICIES = Path(__file__).resolve().parent.parent / "docs" / "policies"


def policy_text(name, **values):
    """docs/policies/<name> with its ${NAME} placeholders filled in (every one must be given)."""
    return Template((POLICIES / name).read_text()).substitute(values)


def vault_policy(mount, prefix):
    return policy_text("orgdns-vault.hcl", VAULT_KV_MOUNT=mount, VAULT_PREFIX=prefix)


def iam_policy(account_id, resource_prefix, base_domain, boundary_arn):
    return json.loads(
        policy_text(
            "orgdns-iam.json",
            AWS_ACCOUNT_ID=account_id,
            ORGDNS_RESOURCE_PREFIX=resource_prefix,
            ORGDNS_BASE_DOMAIN=base_domain,
            ORGDNS_IAM_PERMISSIONS_BOUNDARY=boundary_arn,
        )
    )


def assume_roles_policy(role_name):
    """orgdns's identity, in the main account: it may assume the role of that name in the other accounts."""
    return json.loads(policy_text("orgdns-assume-roles.json", ORGDNS_ROLE_NAME=role_name))


def role_trust_policy(principal_arn):
    """The trust policy of the role in each other account: orgdns's identity only may assume it."""
    return json.loads(policy_text("orgdns-role-trust.json", ORGDNS_PRINCIPAL_ARN=principal_arn))


def boundary_policy(base_domain):
    return json.loads(policy_text("tenant-boundary.json", ORGDNS_BASE_DOMAIN=base_domain))


def scoped_vault_token(vault_url, root_token, mount, prefix):
    """A token that holds orgdns's Vault policy for this prefix only (and Vault's default policy), made with root_token."""
    root = hvac.Client(url=vault_url, token=root_token)
    name = f"orgdns-{prefix}"
    root.sys.create_or_update_policy(name=name, policy=vault_policy(mount, prefix))
    return root.auth.token.create(policies=[name], ttl="24h")["auth"]["client_token"]
