"""Wrong passwords are throttled on the dashboard's login and the admin's alike (django-axes)."""

import pytest
from django.conf import settings
from django.test import Client

pytestmark = pytest.mark.django_db

LOGINS = {"dashboard": "/login/", "admin": "/admin/login/"}


def attempt(client, url, username, password):
    return client.post(url, {"username": username, "password": password, "next": "/"})


@pytest.mark.parametrize("where", LOGINS)
def test_too_many_wrong_passwords_block_even_the_right_one(where, personas):
    url = LOGINS[where]
    attacker = Client(REMOTE_ADDR="198.51.100.7")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(attacker, url, "sam", "guess").status_code == 200  # the form again, with its error
    locked = attempt(attacker, url, "sam", "guess")
    assert locked.status_code == 429 and "Too many login attempts" in locked.content.decode()
    refused = attempt(attacker, url, "sam", "pw-sam")
    assert refused.status_code == 429 and "_auth_user_id" not in attacker.session

    # The block is for that username from that address: the user logs in from elsewhere, others from there.
    elsewhere = Client(REMOTE_ADDR="203.0.113.5")
    assert attempt(elsewhere, url, "sam", "pw-sam").status_code == 302
    assert attempt(attacker, "/login/", "alice", "pw-alice").status_code == 302


def test_the_dashboard_and_the_admin_share_one_count(personas):
    client = Client(REMOTE_ADDR="198.51.100.8")
    for url in ["/login/", "/admin/login/"] * settings.AXES_FAILURE_LIMIT:
        attempt(client, url, "sam", "guess")
    assert attempt(client, "/login/", "sam", "pw-sam").status_code == 429
    assert attempt(client, "/admin/login/", "sam", "pw-sam").status_code == 429


def test_a_success_before_the_limit_resets_the_count(personas):
    client = Client(REMOTE_ADDR="198.51.100.9")
    for _ in range(3):
        for _ in range(settings.AXES_FAILURE_LIMIT - 1):
            attempt(client, "/login/", "alice", "guess")
        assert attempt(client, "/login/", "alice", "pw-alice").status_code == 302
        client.post("/logout/")


def test_a_forwarded_address_is_ignored_unless_proxies_are_trusted(personas):
    client = Client(REMOTE_ADDR="198.51.100.10")
    for n in range(settings.AXES_FAILURE_LIMIT):
        client.post("/login/", {"username": "sam", "password": "guess"}, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    assert attempt(client, "/login/", "sam", "pw-sam").status_code == 429


@pytest.mark.parametrize("where", LOGINS)
def test_a_name_longer_than_any_user_name_is_a_failed_login_counted_like_others(where):
    client = Client(REMOTE_ADDR="198.51.100.8")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        answer = attempt(client, LOGINS[where], "a" * 1000, "guess")
    assert answer.status_code == 429  # counted (under its first 150 characters), never a server error
