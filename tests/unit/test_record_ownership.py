"""Which record sets of a zone an ExternalDNS owns, read from its TXT ownership markers in each naming style."""

from provisioning.clients.externaldns import (
    listed_between,
    marker_names,
    markers_elsewhere,
    owned_record_sets,
    record_owners,
    route53_orders,
)


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


def route53_listing(record_sets):
    """The record sets in Route53's documented order: reversed labels with the trailing dot, then the type."""
    return sorted(record_sets, key=lambda rs: route53_orders(rs["Name"], rs["Type"])[0])


def test_each_style_of_marker_name_is_looked_for():
    assert marker_names(record_set("web.acme.orgdns.test.", "A")) == [
        "_extdns-a.web.acme.orgdns.test.",
        "web.acme.orgdns.test.",
        "a-web.acme.orgdns.test.",
    ]
    assert marker_names(record_set("\\052.apps.acme.orgdns.test.", "CNAME"))[0] == (
        "_extdns-cname.wildcard.apps.acme.orgdns.test."
    )


def test_route53s_documented_order_and_the_order_without_the_trailing_dot_differ_at_a_hyphen():
    (with_dot, without) = route53_orders("web-1.acme.orgdns.test.", "A")
    assert with_dot < route53_orders("web.acme.orgdns.test.", "A")[0]  # '-' before '.'
    assert without > route53_orders("web.acme.orgdns.test.", "A")[1]  # 'web' is a prefix of 'web-1'
    web, marker_of_web = record_set("web.acme.orgdns.test.", "A"), record_set("_extdns-a.web.acme.orgdns.test.", "TXT")
    # Only what both orders put between two record sets is surely listed between them.
    assert listed_between("0.web.acme.orgdns.test.", "A", web, marker_of_web)
    assert not listed_between("web-1.acme.orgdns.test.", "A", web, marker_of_web)
    assert listed_between("zzz.acme.orgdns.test.", "A", web, None) and listed_between(
        "a.acme.orgdns.test.", "A", None, web
    )


def test_a_page_asks_only_for_the_markers_it_did_not_read_and_that_lie_beyond_it():
    zone = route53_listing(ZONE)
    everything = [(rs["Name"], rs["Type"]) for rs in zone]
    # The whole zone in one page: every marker is read with it.
    assert markers_elsewhere(zone, zone, "acme.orgdns.test", zone_start=True, zone_end=True) == []
    # A page cut just after a record whose marker comes next: its markers in each style Route53 lists after the page
    # (ours, and its own name's TXT), none it lists inside the page, nothing for the records the page settles.
    web = everything.index(("web.acme.orgdns.test.", "A"))
    page = zone[: web + 1]
    asked = markers_elsewhere(page, page, "acme.orgdns.test", zone_start=True, zone_end=False)
    assert "_extdns-a.web.acme.orgdns.test." in asked and "web.acme.orgdns.test." in asked
    assert "a-web.acme.orgdns.test." not in asked  # listed inside the page, and not there: there is none
    assert not any(name.startswith(("old.", "_extdns-a.wildcard")) for name in asked)
    # Read one record set further (the lookahead): the marker came with the answer, nothing is left to ask for it.
    ahead = zone[: web + 2]
    assert ahead[-1]["Name"] == "_extdns-a.web.acme.orgdns.test."
    assert markers_elsewhere(page, ahead, "acme.orgdns.test", True, False) == []
    # A page that starts after a record's `<type>-<name>` marker: Route53 listed that marker on an earlier page.
    shop = [marker("a-shop.acme.orgdns.test.", "acme-edge"), record_set("shop.acme.orgdns.test.", "A", "203.0.113.5")]
    assert markers_elsewhere(shop[1:], shop[1:], "acme.orgdns.test", False, True) == ["a-shop.acme.orgdns.test."]
    # Nothing lies before the zone's start.
    assert markers_elsewhere(shop[1:], shop[1:], "acme.orgdns.test", True, True) == []
    # The apex's SOA has no marker, and no name outside the zone is asked for.
    apex = [record_set("acme.orgdns.test.", "SOA", "ns. hostmaster. 1 1 1 1 1")]
    assert markers_elsewhere(apex, apex, "acme.orgdns.test", False, False) == []
    apex_ns = zone[:1]
    assert apex_ns[0]["Type"] == "NS"
    asked = markers_elsewhere(apex_ns, apex_ns, "acme.orgdns.test", False, False)
    assert asked == ["acme.orgdns.test.", "_extdns-ns.acme.orgdns.test."]  # not ns-acme.orgdns.test., beside the zone
