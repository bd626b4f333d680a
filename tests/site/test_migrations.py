"""Every model change has its migration, so that an upgrade's `migrate` brings the schema the code needs
(docs/upgrades.md)."""

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_every_model_change_has_its_migration():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)  # exits 1 when a migration is missing
