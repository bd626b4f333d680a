"""Operations and certificates made in the same instant come in one order: Meta.ordering ends with the primary key,
so "the latest operation" of a cluster (cluster.operations.first()) and unsorted lists never depend on the plan
PostgreSQL happens to choose."""

import pytest
from django.utils import timezone

from provisioning.models import Certificate, Operation
from tests.factories import cluster_row, operation_row

pytestmark = pytest.mark.django_db


def test_operations_of_one_instant_come_newest_key_first(personas):
    cluster = cluster_row(personas.acme)
    operations = [operation_row(cluster) for _ in range(6)]
    instant = timezone.now()
    Operation.objects.filter(pk__in=[o.pk for o in operations]).update(created_at=instant)
    by_key = sorted((o.pk for o in operations), reverse=True)
    assert list(cluster.operations.values_list("pk", flat=True)) == by_key
    assert cluster.operations.first().pk == by_key[0]
    assert Operation._meta.ordering[-1] == "-pk"


def test_certificates_of_one_instant_come_newest_key_first(personas):
    certificates = [
        Certificate.objects.create(organization=personas.acme, dns_names=[f"w{i}.acme.orgdns.test"]) for i in range(6)
    ]
    Certificate.objects.filter(pk__in=[c.pk for c in certificates]).update(created_at=timezone.now())
    assert list(personas.acme.certificates.values_list("pk", flat=True)) == sorted(
        (c.pk for c in certificates), reverse=True
    )
