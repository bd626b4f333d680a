"""Which record sets of a zone an ExternalDNS owns, read from its TXT ownership markers in each naming style."""

from provisioning.clients.externaldns import owned_record_sets, record_owners


def record_set(name, rtype, *values):
    return {"Name": name, "Type": rtype, "TTL": 300, "ResourceRecords": [{"Value": v} for v in values]}


def marker(name, owner):
    return record_set(
        name, "TXT", f'"heritage=external-dns,external-dns/owner={owner},external-dns/resource=service/x"'
    )


ZONE = [
    record_set("acme.orgdns.test.", "NS", "ns-1.example."),
    # ours (TXT_PREFIX): _extdns-<type>.<name>
    record_set("web.acme.orgdns.test.", "A", "203.0.113.10"),
    marker("_extdns-a.web.acme.orgdns.test.", "acme-prod"),
    # the default of current ExternalDNS releases: <type>-<name>
    record_set("api.acme.orgdns.test.", "CNAME", "lb.example."),
    marker("cname-api.acme.orgdns.test.", "acme-edge"),
    # older releases: a marker named like the record itself, for every type at that name
    record_set("old.acme.orgdns.test.", "A", "203.0.113.11"),
    record_set("old.acme.orgdns.test.", "AAAA", "2001:db8::11"),
    marker("old.acme.orgdns.test.", "acme-prod"),
    # a wildcard, whose marker stands "wildcard" in for the "*"
    record_set("\\052.apps.acme.orgdns.test.", "A", "203.0.113.12"),
    marker("_extdns-a.wildcard.apps.acme.orgdns.test.", "acme-prod"),
    # made by hand: a TXT record that is not a marker, and a record without one
    record_set("manual.acme.orgdns.test.", "TXT", '"v=spf1 -all"'),
    record_set("manual.acme.orgdns.test.", "A", "203.0.113.13"),
]


def test_each_marker_style_gives_the_owner_of_its_record_and_of_itself():
    assert record_owners(ZONE) == {
        ("web.acme.orgdns.test.", "A"): "acme-prod",
        ("_extdns-a.web.acme.orgdns.test.", "TXT"): "acme-prod",
        ("api.acme.orgdns.test.", "CNAME"): "acme-edge",
        ("cname-api.acme.orgdns.test.", "TXT"): "acme-edge",
        ("old.acme.orgdns.test.", "A"): "acme-prod",
        ("old.acme.orgdns.test.", "AAAA"): "acme-prod",
        ("old.acme.orgdns.test.", "TXT"): "acme-prod",
        ("\\052.apps.acme.orgdns.test.", "A"): "acme-prod",
        ("_extdns-a.wildcard.apps.acme.orgdns.test.", "TXT"): "acme-prod",
    }


def test_a_marker_of_one_type_does_not_claim_another_type_at_the_name():
    zone = [
        record_set("web.acme.orgdns.test.", "A", "203.0.113.10"),
        record_set("web.acme.orgdns.test.", "AAAA", "2001:db8::10"),
        marker("_extdns-a.web.acme.orgdns.test.", "acme-prod"),
    ]
    assert ("web.acme.orgdns.test.", "AAAA") not in record_owners(zone)


def test_an_owners_record_sets_come_with_their_markers_last():
    owned = owned_record_sets(ZONE, "acme-prod")
    assert [(rs["Name"], rs["Type"]) for rs in owned] == [
        ("web.acme.orgdns.test.", "A"),
        ("old.acme.orgdns.test.", "A"),
        ("old.acme.orgdns.test.", "AAAA"),
        ("\\052.apps.acme.orgdns.test.", "A"),
        ("_extdns-a.web.acme.orgdns.test.", "TXT"),
        ("old.acme.orgdns.test.", "TXT"),
        ("_extdns-a.wildcard.apps.acme.orgdns.test.", "TXT"),
    ]
    assert [rs["Name"] for rs in owned_record_sets(ZONE, "acme-edge")] == [
        "api.acme.orgdns.test.",
        "cname-api.acme.orgdns.test.",
    ]
    assert owned_record_sets(ZONE, "globex-prod") == []
