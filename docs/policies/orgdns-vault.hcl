# orgdns's Vault token: read and write secrets under its prefix of the KV v2 mount, delete them with every
# version, and list them with their metadata (for `reconcile`); nothing else. Secrets are at
# ${VAULT_KV_MOUNT}/${VAULT_PREFIX}/<deployment id>/orgs/<organization>/...; the policy allows the whole prefix so
# that `adopt_deployment_marks` can move secrets from the older ${VAULT_PREFIX}/orgs/... paths on upgrade.
path "${VAULT_KV_MOUNT}/data/${VAULT_PREFIX}/*" {
  capabilities = ["create", "read", "update"]
}

path "${VAULT_KV_MOUNT}/metadata/${VAULT_PREFIX}/*" {
  capabilities = ["read", "list", "delete"]
}
