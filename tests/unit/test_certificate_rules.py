"""Which names a certificate may have, and when it is due for renewal."""

import datetime

from provisioning.models import Certificate
from provisioning.rules.validators import certificate_dns_names


def test_names_are_normalized_and_wildcard_one_level_below_the_zone_is_allowed():
    asked = [" WWW.Acme.orgdns.test. ", "*.acme.orgdns.test", "www.acme.orgdns.test", "acme.orgdns.test"]
    assert certificate_dns_names(asked, "acme.orgdns.test", 5) == [
        "www.acme.orgdns.test",
        "*.acme.orgdns.test",
        "acme.orgdns.test",
    ]


def test_the_renewal_point_follows_the_setting(instant, settings):
    now = instant.at
    certificate = Certificate(not_before=now - datetime.timedelta(days=40), not_after=now + datetime.timedelta(days=50))
    settings.ORGDNS_TLS_RENEW_AT = 2 / 3
    assert not certificate.renewal_due(now) and certificate.expiry_at(now) == "valid"
    settings.ORGDNS_TLS_RENEW_AT = 0.4
    assert certificate.renewal_due(now) and certificate.expiry_at(now) == "expiring"
    assert certificate.expiry_at(now + datetime.timedelta(days=51)) == "expired"
    assert Certificate().expiry_at(now) == ""
