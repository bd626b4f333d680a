"""Pages, a module per area; each view starts from a scoping helper of services.organizations."""
