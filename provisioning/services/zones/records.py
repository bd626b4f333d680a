"""What is in an organization's zone right now, as Route53 has it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.cache import cache

from provisioning.clients import externaldns
from provisioning.models import HostedZone
from provisioning.services.aws_accounts import assignment as accounts
from provisioning.services.backends import Backends

if TYPE_CHECKING:
    from provisioning.clients.aws import RecordSet
    from provisioning.models import Cluster, Organization

RECORDS_CACHE_SECONDS = 30


@dataclass(frozen=True)
class ZoneRecord:
    name: str
    type: str
    ttl: int | None
    values: list[str]
    owner_id: str | None
    cluster: Cluster | None  # the Cluster whose ExternalDNS owns the record, if it is one of ours

    @property
    def managed(self) -> bool:
        return self.owner_id is not None


def live_zone(organization: Organization) -> HostedZone | None:
    """The organization's zone that is not deleted (one at most), or None."""
    return organization.zones.live().first()


def active_zone(organization: Organization) -> HostedZone | None:
    """The organization's zone if Route53 has it: the one whose records can be read."""
    return organization.zones.filter(state=HostedZone.State.ACTIVE).first()


def zone_records(zone: HostedZone) -> list[ZoneRecord]:
    """Every record set of the zone with its owner; read from Route53 at most every RECORDS_CACHE_SECONDS."""
    key = f"orgdns:zone-records:{zone.zone_id}"
    record_sets = cache.get(key)
    if record_sets is None:
        record_sets = list(Backends().for_account(accounts.of_zone(zone)).route53().record_sets(zone.zone_id))
        cache.set(key, record_sets, RECORDS_CACHE_SECONDS)
    owners = externaldns.record_owners(record_sets)
    clusters = {c.owner_id: c for c in zone.organization.clusters.all()}
    return [
        ZoneRecord(
            name=rs["Name"],
            type=rs["Type"],
            ttl=rs.get("TTL"),
            values=[r["Value"] for r in rs.get("ResourceRecords", [])] or [_alias(rs)],
            owner_id=owners.get((rs["Name"], rs["Type"])),
            cluster=clusters.get(owners.get((rs["Name"], rs["Type"]))),
        )
        for rs in record_sets
    ]


def _alias(record_set: RecordSet) -> str:
    target = record_set.get("AliasTarget", {})
    return f"ALIAS {target.get('DNSName', '?')}"
