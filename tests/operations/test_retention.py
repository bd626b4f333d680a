"""`orgdns prune`: what is past its retention goes, what is younger or what billing and the pages need stays."""

import json
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.utils import timezone

from provisioning.models import ApiToken, AuditEvent, HostedZone, Operation, Organization, ZoneCharge
from provisioning.services import audit
from tests.factories import cluster_row, operation_row, zone_row

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def made_at(moment, make):
    with time_machine.travel(moment, tick=False):
        return make()


def audit_entry(action):
    with audit.acting(AuditEvent.Source.UI):
        return audit.record(action)


def token(user, name, **fields):
    return ApiToken.objects.create(user=user, name=name, prefix=name[:8], token_hash=name * 4, **fields)


def prune(*options):
    out = StringIO()
    call_command("prune", "--json", *options, stdout=out)
    return json.loads(out.getvalue())


def test_prune_deletes_what_is_past_its_retention_and_keeps_the_rest(settings):
    settings.ORGDNS_RETAIN_OPERATIONS_DAYS = 90
    settings.ORGDNS_RETAIN_AUDIT_DAYS = 400
    settings.ORGDNS_RETAIN_TOKENS_DAYS = 30
    now = timezone.now()
    user = get_user_model().objects.create_user("alice")
    org = Organization.objects.create(name="acme")
    zone = made_at(now - 800 * DAY, lambda: zone_row(org))
    charge = ZoneCharge.objects.create(zone=zone, month=(now - 700 * DAY).date().replace(day=1), kind="charged")
    cluster = made_at(now - 800 * DAY, lambda: cluster_row(org))
    other = made_at(now - 800 * DAY, lambda: cluster_row(org, name="staging"))
    old = made_at(now - 91 * DAY, lambda: operation_row(cluster))
    old_failed = made_at(now - 91 * DAY, lambda: operation_row(cluster, state=Operation.State.FAILED, log="x" * 1000))
    latest_of_cluster = made_at(now - 90 * DAY + DAY, lambda: operation_row(cluster))  # younger than 90 days
    only_of_other = made_at(now - 200 * DAY, lambda: operation_row(other))  # its cluster's latest: its page shows it
    old_but_running = made_at(now - 201 * DAY, lambda: operation_row(other, state=Operation.State.RUNNING))
    old_audit = made_at(now - 401 * DAY, lambda: audit_entry("old"))
    young_audit = made_at(now - 399 * DAY, lambda: audit_entry("young"))
    expired_long_ago = token(user, "expiredlongago", expires_at=now - 31 * DAY)
    revoked_long_ago = token(user, "revokedlongago", expires_at=now + 100 * DAY, revoked_at=now - 31 * DAY)
    expired_lately = token(user, "expiredlately", expires_at=now - 29 * DAY)
    live = token(user, "livetoken", expires_at=now + 100 * DAY)
    expired_session = SessionStore()
    expired_session.set_expiry(1)
    expired_session.create()
    live_session = SessionStore()
    live_session.create()
    Session.objects.filter(session_key=expired_session.session_key).update(expire_date=now - DAY)

    assert prune("--dry-run") == {
        "dry_run": True,
        "deleted": {
            "operations": 2,
            "audit entries": 1,
            "login records": 0,
            "login failure records": 0,
            "expired sessions": 1,
            "API tokens": 2,
        },
    }
    assert Operation.objects.count() == 5  # a dry run deletes nothing

    assert prune()["deleted"] == {
        "operations": 2,
        "audit entries": 1,
        "login records": 0,
        "login failure records": 0,
        "expired sessions": 1,
        "API tokens": 2,
    }
    assert set(Operation.objects.values_list("pk", flat=True)) == {
        latest_of_cluster.pk,
        only_of_other.pk,
        old_but_running.pk,
    }
    assert not Operation.objects.filter(pk__in=[old.pk, old_failed.pk]).exists()
    assert not AuditEvent.objects.filter(pk=old_audit.pk).exists()
    assert AuditEvent.objects.filter(pk=young_audit.pk).exists()
    assert set(ApiToken.objects.values_list("pk", flat=True)) == {expired_lately.pk, live.pk}
    assert not ApiToken.objects.filter(pk__in=[expired_long_ago.pk, revoked_long_ago.pk]).exists()
    assert list(Session.objects.values_list("session_key", flat=True)) == [live_session.session_key]
    # billing's rows are never pruned, however old
    assert HostedZone.objects.filter(pk=zone.pk).exists() and ZoneCharge.objects.filter(pk=charge.pk).exists()
    # the prune itself is on the record
    (entry,) = AuditEvent.objects.filter(action="prune")
    assert entry.source == AuditEvent.Source.CRON and "operations: 2" in entry.detail

    assert prune()["deleted"] == dict.fromkeys(prune("--dry-run")["deleted"], 0)  # nothing left to do


def test_the_retention_settings_decide(settings):
    settings.ORGDNS_RETAIN_AUDIT_DAYS = 10
    now = timezone.now()
    made_at(now - 11 * DAY, lambda: audit_entry("eleven days old"))
    made_at(now - 9 * DAY, lambda: audit_entry("nine days old"))
    assert prune()["deleted"]["audit entries"] == 1
    assert list(AuditEvent.objects.exclude(action="prune").values_list("action", flat=True)) == ["nine days old"]
