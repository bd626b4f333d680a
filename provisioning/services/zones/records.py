"""What is in an organization's zone right now, as Route53 has it."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.cache import cache
from django.core.exceptions import ValidationError

from provisioning.clients import externaldns
from provisioning.clients.aws import MAX_LIST_RECORDS, RecordPosition
from provisioning.models import HostedZone
from provisioning.services.aws_accounts import assignment as accounts
from provisioning.services.backends import Backends

if TYPE_CHECKING:
    from provisioning.clients.aws import RecordSet, Route53
    from provisioning.models import Cluster, Organization

RECORDS_CACHE_SECONDS = 30
RECORDS_PER_PAGE = 100
LOOKAHEAD = 20  # record sets read after a page, for the ownership markers Route53 lists just after their records
MAX_NAME_LENGTH = 1024
MAX_IDENTIFIER_LENGTH = 128
RECORD_NAME = re.compile(r"(?:[a-z0-9_*-]|\\[0-7]{3})+(?:\.(?:[a-z0-9_*-]|\\[0-7]{3})+)*\.")  # as Route53 lists names
RECORD_TYPES = {
    "SOA",
    "A",
    "TXT",
    "NS",
    "CNAME",
    "MX",
    "NAPTR",
    "PTR",
    "SRV",
    "SPF",
    "AAAA",
    "CAA",
    "DS",
    "TLSA",
    "SSHFP",
    "SVCB",
    "HTTPS",
}  # StartRecordType's values


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


@dataclass(frozen=True)
class RecordPage:
    records: list[ZoneRecord]
    following: RecordPosition | None  # where the next page starts; None on the zone's last page


def live_zone(organization: Organization) -> HostedZone | None:
    """The organization's zone that is not deleted (one at most), or None."""
    return organization.zones.live().first()


def active_zone(organization: Organization) -> HostedZone | None:
    """The organization's zone if Route53 has it: the one whose records can be read."""
    return organization.zones.filter(state=HostedZone.State.ACTIVE).first()


def position(
    zone: HostedZone, name: str | None, rtype: str | None, identifier: str | None = None
) -> RecordPosition | None:
    """The position in the zone a page of records starts at, as a link or an API call gives it (None: the zone's
    first record); ValidationError naming what is wrong."""
    if not name and not rtype and not identifier:
        return None
    if not name or not rtype:
        raise ValidationError("A page of records starts at a record name and a record type: give both.")
    apex = zone.name.rstrip(".") + "."
    if (
        len(name) > MAX_NAME_LENGTH
        or not RECORD_NAME.fullmatch(name)
        or not (name == apex or name.endswith("." + apex))
    ):
        raise ValidationError(f"{name[:100]!r} is not a record name in {apex} (a DNS name ending in '.').")
    if rtype not in RECORD_TYPES:
        raise ValidationError(f"{rtype[:20]!r} is not a Route53 record type ({', '.join(sorted(RECORD_TYPES))}).")
    if identifier is not None and len(identifier) > MAX_IDENTIFIER_LENGTH:
        raise ValidationError(f"A record set identifier has at most {MAX_IDENTIFIER_LENGTH} characters.")
    return RecordPosition(name, rtype, identifier or None)


def record_page(zone: HostedZone, start: RecordPosition | None = None, size: int = RECORDS_PER_PAGE) -> RecordPage:
    """One page of the zone's record sets from `start` on, each with its owner: one ListResourceRecordSets call (the
    page and LOOKAHEAD record sets after it, where the markers of its last records usually are), and as few more as
    the ownership markers of its records that lie on other pages need (usually none or one). Never the whole zone.
    Read from Route53 at most every RECORDS_CACHE_SECONDS."""
    key = "orgdns:zone-records:" + hashlib.sha256(repr((zone.zone_id, start, size)).encode()).hexdigest()
    read = cache.get(key)
    if read is None:
        route53 = Backends().for_account(accounts.of_zone(zone)).route53()
        read_sets, following = route53.record_set_page(zone.zone_id, start, min(size + LOOKAHEAD, MAX_LIST_RECORDS))
        record_sets, beyond = read_sets[:size], read_sets[size:]
        wanted = externaldns.markers_elsewhere(record_sets, read_sets, zone.name, start is None, following is None)
        markers = [rs for rs in beyond if rs["Type"] == "TXT"] + _markers(route53, zone.zone_id, wanted)
        if beyond:
            following = RecordPosition(beyond[0]["Name"], beyond[0]["Type"], beyond[0].get("SetIdentifier"))
        read = record_sets, markers, following
        cache.set(key, read, RECORDS_CACHE_SECONDS)
    record_sets, markers, following = read
    owners = externaldns.record_owners([*record_sets, *markers])
    clusters = {c.owner_id: c for c in zone.organization.clusters.all()}
    records = [
        ZoneRecord(
            name=rs["Name"],
            type=rs["Type"],
            ttl=rs.get("TTL"),
            values=[r["Value"] for r in rs.get("ResourceRecords", [])] or [_alias(rs)],
            owner_id=owners.get((rs["Name"], rs["Type"])),
            cluster=clusters.get(owners.get((rs["Name"], rs["Type"])) or ""),
        )
        for rs in record_sets
    ]
    return RecordPage(records, following)


def _markers(route53: Route53, zone_id: str, wanted: list[str]) -> list[RecordSet]:
    """The TXT record sets among these names (in Route53's order), read from the first name still in question on:
    one read answers for every name Route53 lists from where it starts up to its last record set (to the zone's end
    on its last page)."""
    found: list[RecordSet] = []
    while wanted:
        start = RecordPosition(wanted[0], "TXT")
        record_sets, following = route53.record_set_page(zone_id, start, MAX_LIST_RECORDS)
        found += [rs for rs in record_sets if rs["Type"] == "TXT"]
        first, last = {"Name": start.name, "Type": start.type}, (record_sets[-1] if following else None)
        wanted = [name for name in wanted[1:] if not externaldns.listed_between(name, "TXT", first, last)]
    return found


def _alias(record_set: RecordSet) -> str:
    target = record_set.get("AliasTarget", {})
    return f"ALIAS {target.get('DNSName', '?')}"
