"""Retention (`orgdns prune`, on the schedule daily): what grows with use is removed once older than its setting.

Removed: finished operations with their logs (ORGDNS_RETAIN_OPERATIONS_DAYS) except the latest of each cluster and
certificate, which their pages show; audit entries and django-axes' login records (ORGDNS_RETAIN_AUDIT_DAYS);
expired sessions; API tokens expired or revoked for ORGDNS_RETAIN_TOKENS_DAYS. Never removed: organizations, clusters,
certificates, hosted zone rows and the zone charges ledger (what billing reads)."""

from collections.abc import Callable
from datetime import datetime, timedelta

from axes.models import AccessFailureLog, AccessLog
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db.models import F, OuterRef, Q, QuerySet, Subquery

from provisioning.models import ApiToken, AuditEvent, Operation

BATCH = 5000  # rows deleted per statement: no long lock on a large table


def _latest_operation_of(field: str) -> Subquery:
    return Subquery(
        Operation.objects.filter(**{field: OuterRef(field)}).order_by("-created_at", "-pk").values("pk")[:1]
    )


def prunable(now: datetime) -> dict[str, QuerySet]:
    """What is past its retention at `now`, by kind."""
    operations_before = now - timedelta(days=settings.ORGDNS_RETAIN_OPERATIONS_DAYS)
    audit_before = now - timedelta(days=settings.ORGDNS_RETAIN_AUDIT_DAYS)
    tokens_before = now - timedelta(days=settings.ORGDNS_RETAIN_TOKENS_DAYS)
    operations = (
        Operation.objects.filter(state__in=Operation.FINISHED, finished_at__lt=operations_before)
        .annotate(
            cluster_latest=_latest_operation_of("cluster"), certificate_latest=_latest_operation_of("certificate")
        )
        .filter(Q(cluster_latest__isnull=True) | ~Q(cluster_latest=F("pk")))
        .filter(Q(certificate_latest__isnull=True) | ~Q(certificate_latest=F("pk")))
    )
    return {
        "operations": operations,
        "audit entries": AuditEvent.objects.filter(created_at__lt=audit_before),
        "login records": AccessLog.objects.filter(attempt_time__lt=audit_before),
        "login failure records": AccessFailureLog.objects.filter(attempt_time__lt=audit_before),
        "expired sessions": Session.objects.filter(expire_date__lt=now),
        "API tokens": ApiToken.objects.filter(Q(expires_at__lt=tokens_before) | Q(revoked_at__lt=tokens_before)),
    }


def prune(now: datetime, dry_run: bool = False, progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Delete what is past its retention (count only, with dry_run); {kind: rows}."""
    counts = {}
    for kind, rows in prunable(now).items():
        if dry_run:
            counts[kind] = rows.count()
            continue
        deleted = 0
        while True:
            batch = list(rows.values_list("pk", flat=True)[:BATCH])
            if not batch:
                break
            deleted += rows.model.objects.filter(pk__in=batch).delete()[1].get(rows.model._meta.label, 0)
        counts[kind] = deleted
        if progress is not None:
            progress(kind, deleted)
    return counts
