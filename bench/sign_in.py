"""Signing in through the real Dex reading the real OpenLDAP: how long each part takes, and how fast a hung provider
is answered.

    .venv/bin/python bench/sign_in.py [--sign-ins 20] [--groups 1 50]

Starts slapd and Dex (devstack/directory.py; Dex built by devstack/build-cluster.sh dex) and orgdns on a SQLite
database of its own (Django's test Client: the whole server stack, no network between browser and orgdns). Per
number of groups, a person in that many `orgdns:org<N>:member` groups (the organizations exist) signs in
--sign-ins times; printed: p50/p95 of orgdns's redirect to Dex (discovery cached), Dex's login page and form (the
LDAP bind and group search), and orgdns's callback (code exchange, JWKS, ID token verification, memberships synced).
Then a provider that accepts connections and never answers: the time to the clear page, first and while remembered.
"""

import argparse
import os
import re
import socket
import sys
import tempfile
import time
from html import unescape
from pathlib import Path
from urllib.parse import urljoin, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CALLBACK = "http://testserver/oidc/callback/"


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def sign_in_once(person):
    import requests
    from django.test import Client

    client = Client()
    start, to_dex = timed(client.get, "/login/provider/")
    browser = requests.Session()
    started = time.perf_counter()
    page = browser.get(start["Location"], timeout=10)
    action = unescape(re.search(r'<form method="post" action="([^"]*)"', page.text)[1])
    answer = browser.post(
        urljoin(page.url, action), data={"login": person.uid, "password": person.password}, allow_redirects=False
    )
    while not answer.headers["Location"].startswith(CALLBACK):
        answer = browser.get(urljoin(answer.url, answer.headers["Location"]), allow_redirects=False, timeout=10)
    at_dex = time.perf_counter() - started
    callback = urlsplit(answer.headers["Location"])
    done, back = timed(client.get, f"{callback.path}?{callback.query}")
    assert done.status_code == 302, done.content[:300]
    return to_dex, at_dex, back


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sign-ins", type=int, default=20)
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 50])
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="orgdns-bench-sign-in-"))
    os.environ.update(
        DEBUG="1",
        DJANGO_SETTINGS_MODULE="orgdns_site.settings",
        DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}",
        LOG_LEVEL="WARNING",
    )
    from devstack.directory import Person, start_dex, start_slapd

    directory, slapd_start = timed(start_slapd, workdir / "slapd")
    dex, dex_start = timed(start_dex, directory, workdir / "dex", [CALLBACK])
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        from orgdns_site.environment import group_pattern
        from provisioning.models import Organization
        from provisioning.services.people import sign_in

        call_command("migrate", "--noinput", verbosity=0)
        settings.ORGDNS_OIDC_ISSUER, settings.ORGDNS_OIDC_CLIENT_ID = dex.issuer, dex.client_id
        settings.ORGDNS_OIDC_CLIENT_SECRET, settings.ORGDNS_OIDC_PROVIDER_NAME = dex.client_secret, "Dex"
        settings.ORGDNS_OIDC_GROUP_PATTERN = group_pattern("orgdns:{org}:{role}")
        settings.AXES_ENABLED = True
        print(f"slapd started in {slapd_start:.2f} s, Dex in {dex_start:.2f} s")
        print(
            f"{'groups':>6} {'sign-ins':>8}  {'to Dex p50/p95':>16}  {'at Dex p50/p95':>16}  {'callback p50/p95':>18}"
        )
        for groups in options.groups:
            Organization.objects.bulk_create(
                [Organization(name=f"org{n}") for n in range(groups)], ignore_conflicts=True
            )
            person = Person(f"bench{groups}", f"pw-bench-{groups}", "Bench Person", f"bench{groups}@example.com")
            directory.add_person(person)
            for n in range(groups):
                directory.join(f"orgdns:org{n}:member", person.uid)
            sign_in_once(person)  # the first: discovery and keys fetched, the user made
            runs = [sign_in_once(person) for _ in range(options.sign_ins)]
            columns = [[run[i] * 1000 for run in runs] for i in range(3)]
            print(
                f"{groups:>6} {options.sign_ins:>8}  "
                + "  ".join(f"{percentile(c, 50):7.1f}/{percentile(c, 95):6.1f} ms" for c in columns)
            )

        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        settings.ORGDNS_OIDC_ISSUER = f"http://127.0.0.1:{listener.getsockname()[1]}/dex"
        sign_in.forget_provider()
        from django.test import Client

        first, first_time = timed(Client().get, "/login/provider/")
        again, again_time = timed(Client().get, "/login/provider/")
        page, page_time = timed(Client().get, "/login/")
        print(
            f"hung provider (ORGDNS_OIDC_TIMEOUT={settings.ORGDNS_OIDC_TIMEOUT:g} s): clear page {first.status_code} "
            f"in {first_time:.2f} s, then {again.status_code} in {again_time * 1000:.1f} ms while remembered; "
            f"the sign-in page {page.status_code} in {page_time * 1000:.1f} ms"
        )
        listener.close()
    finally:
        dex.stop()
        directory.stop()


if __name__ == "__main__":
    main()
