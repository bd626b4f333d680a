"""Production settings come from the environment; the production example of docs/configuration.md passes
`check --deploy`."""

import os
import re
import runpy
import secrets
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

CONFIGURATION = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def production_example():
    """The ```env block of docs/configuration.md, as a dict."""
    (block,) = re.findall(r"^```env\n(.*?)^```", CONFIGURATION.read_text(), re.S | re.M)
    return dict(line.split("=", 1) for line in block.splitlines() if line and not line.startswith("#"))


def run_django(environment, *args):
    """A fresh process on orgdns_site.settings with exactly this environment (plus PATH and HOME)."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **environment}
    env["DJANGO_SETTINGS_MODULE"] = "orgdns_site.settings"
    return subprocess.run(
        [sys.executable, *args], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_documented_production_example_passes_check_deploy(tmp_path):
    example = production_example()
    key_file = tmp_path / "secret-key"
    key_file.write_text(secrets.token_urlsafe(50))
    assert example["SECRET_KEY_FILE"].startswith("/run/secrets/")
    example["SECRET_KEY_FILE"] = str(key_file)
    example["VAULT_TOKEN_FILE"] = str(key_file)

    result = run_django(example, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout

    shown = run_django(
        example,
        "-c",
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_PROXY_SSL_HEADER, s.SECURE_HSTS_SECONDS, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_AGE, "
        "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.DEBUG)",
    )
    assert shown.stdout.strip() == "('HTTP_X_FORWARDED_PROTO', 'https') 31536000 True 43200 True True False", (
        shown.stderr
    )
    database = run_django(
        example,
        "-c",
        "import django; django.setup(); from django.conf import settings as s; d = s.DATABASES['default']; "
        "print(d['OPTIONS']['sslmode'], d['OPTIONS']['sslrootcert'], d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS'])",
    )
    assert database.stdout.strip() == "verify-full /run/secrets/db-ca.pem 60 True", database.stderr


def test_without_debug_it_refuses_to_start_without_a_secret_key():
    result = run_django({"DEBUG": "0"}, "manage.py", "check")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert run_django({"DEBUG": "1"}, "manage.py", "check").returncode == 0


def test_the_development_defaults_fail_check_deploy():
    result = run_django({"DEBUG": "1"}, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016", "security.W018"):
        assert warning in result.stderr + result.stdout, warning


def test_a_malformed_proxy_header_setting_is_refused():
    result = run_django({"DEBUG": "1", "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"}, "manage.py", "check")
    assert result.returncode != 0 and "SECURE_PROXY_SSL_HEADER must look like X-Forwarded-Proto=https" in result.stderr


def test_route53_shares_that_exceed_the_account_are_refused_and_orgdns_rate_is_its_share():
    result = run_django(
        {"DEBUG": "1", "ORGDNS_ROUTE53_FLEET_SHARE": "0.8", "ORGDNS_ROUTE53_SHARE": "0.3"}, "manage.py", "check"
    )
    assert result.returncode != 0 and "must not exceed 1" in result.stderr
    shown = run_django(
        {"DEBUG": "1", "ORGDNS_ROUTE53_ACCOUNT_RATE": "20", "ORGDNS_ROUTE53_SHARE": "0.25"},
        "-c",
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.ORGDNS_ROUTE53_RATE, s.ORGDNS_ROUTE53_BURST)",
    )
    assert shown.stdout.split() == ["5.0", "12"], shown.stderr


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        (
            "ORGDNS_BUDGET_ATTENTION",
            "80",
            "ORGDNS_BUDGET_ATTENTION must be a fraction, more than 0 and at most 1, not 80.0",
        ),
        ("ORGDNS_ROUTE53_ZONE_QUOTA", "0", "ORGDNS_ROUTE53_ZONE_QUOTA must be more than 0, not 0"),
        ("ORGDNS_ROUTE53_MEASURE_MINUTES", "0", "ORGDNS_ROUTE53_MEASURE_MINUTES must be 1 to 180, not 0"),
        ("EXTERNALDNS_RERENDERS_AT_ONCE", "-1", "must not be negative"),
    ],
)
def test_route53_budget_settings_out_of_range_are_refused(name, value, said):
    result = run_django({"DEBUG": "1", name: value}, "manage.py", "check")
    assert result.returncode != 0 and said in result.stderr


def load_settings(monkeypatch, **environment):
    """orgdns_site/settings.py run afresh (this process's settings untouched) with these variables on top of the suite's
    environment."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(settings.BASE_DIR / "orgdns_site" / "settings.py"))


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        # whole numbers, and their ranges
        ("SESSION_COOKIE_AGE", "12h", "SESSION_COOKIE_AGE must be a whole number, not '12h'"),
        ("ORGDNS_RETRY_ATTEMPTS", "0", "ORGDNS_RETRY_ATTEMPTS must be more than 0, not 0"),
        ("TRUSTED_PROXY_COUNT", "-1", "TRUSTED_PROXY_COUNT must not be negative, not -1"),
        ("ORGDNS_AWS_ROLE_SESSION_SECONDS", "60", "ORGDNS_AWS_ROLE_SESSION_SECONDS must be 900 to 43200, not 60"),
        ("ORGDNS_GC_FINAL_WINDOW", "1h", "ORGDNS_GC_FINAL_WINDOW must be a whole number, not '1h'"),
        # numbers
        ("REDIS_TIMEOUT", "fast", "REDIS_TIMEOUT must be a number, not 'fast'"),
        ("VAULT_TIMEOUT", "nan", "VAULT_TIMEOUT must be a number, not 'nan'"),
        ("ORGDNS_PROBE_TIMEOUT", "-1", "ORGDNS_PROBE_TIMEOUT must be more than 0, not -1.0"),
        ("ORGDNS_TLS_RENEW_AT", "1.5", "ORGDNS_TLS_RENEW_AT must be a fraction, more than 0 and at most 1, not 1.5"),
        ("ORGDNS_ROUTE53_SHARE", "0", "ORGDNS_ROUTE53_SHARE must be a fraction, more than 0 and at most 1, not 0.0"),
        (
            "ORGDNS_ZONE_PRICE_FIRST",
            "$0.50",
            "ORGDNS_ZONE_PRICE_FIRST must be a decimal number such as 0.50, not '$0.50'",
        ),
        ("ORGDNS_ZONE_PRICE_AFTER", "-0.10", "ORGDNS_ZONE_PRICE_AFTER must not be negative, not -0.10"),
        # yes or no
        (
            "SECURE_SSL_REDIRECT",
            "ture",
            "SECURE_SSL_REDIRECT must be 1, true, yes or on, or 0, false, no or off, not 'ture'",
        ),
        # lists
        ("ORGDNS_JOB_RETRY_INTERVALS", "30,2m", "ORGDNS_JOB_RETRY_INTERVALS: '2m' is not a whole number of seconds"),
        ("ORGDNS_JOB_RETRY_INTERVALS", "30,-1", "ORGDNS_JOB_RETRY_INTERVALS: '-1' is not a whole number of seconds"),
        ("ORGDNS_METRICS_NETWORKS", "10.0.0.0/8,intranet", "ORGDNS_METRICS_NETWORKS: 'intranet' is not a network"),
        (
            "ORGDNS_CLUSTER_PERMITTED_NETWORKS",
            "10.0.0.1/8",
            "ORGDNS_CLUSTER_PERMITTED_NETWORKS: '10.0.0.1/8' is not a network such as 10.0.0.0/8, with no host bits set",
        ),
        # one of a few
        (
            "EXTERNALDNS_POLICY",
            "delete",
            "EXTERNALDNS_POLICY must be one of sync, upsert-only, create-only, not 'delete'",
        ),
        ("LOG_LEVEL", "verbose", "LOG_LEVEL must be one of CRITICAL, FATAL, ERROR, WARN, WARNING, INFO, DEBUG, NOTSET"),
        # addresses of servers
        ("REDIS_URL", "127.0.0.1:6379", "REDIS_URL must be a URL like redis://… or rediss://… or unix://…, not"),
        ("VAULT_ADDR", "vault.internal:8200", "VAULT_ADDR must be a URL like http://… or https://…, not"),
        ("VAULT_ADDR", "https://vault.internal:82000", "VAULT_ADDR must be a URL like http://… or https://…, not"),
        ("AWS_ENDPOINT_URL", "localhost:5000", "AWS_ENDPOINT_URL must be a URL like http://… or https://…, or empty"),
        ("DATABASE_URL", "mysql://db/orgdns", "DATABASE_URL: unsupported scheme 'mysql'"),
        ("ORGDNS_WEB_BIND", "8000", "ORGDNS_WEB_BIND must be host:port or unix:/path, not '8000'"),
        ("DATABASE_CONNECT_TIMEOUT", "0", "DATABASE_CONNECT_TIMEOUT must be more than 0, not 0"),
        ("DATABASE_CONN_MAX_AGE", "-1", "DATABASE_CONN_MAX_AGE must not be negative, not -1"),
        ("DATABASE_CONN_HEALTH_CHECKS", "sometimes", "DATABASE_CONN_HEALTH_CHECKS must be 1, true, yes or on"),
        # secrets from files, and URLs that hold one
        ("SECRET_KEY_FILE", "/nonexistent/secret-key", "The value of SECRET_KEY_FILE must be a readable file path"),
        ("REDIS_URL", "redis://:s3cret@redis.internal:port/0", "REDIS_URL must be a URL like redis://… or rediss"),
        # names
        (
            "ORGDNS_BASE_DOMAIN",
            "platform example.com",
            "ORGDNS_BASE_DOMAIN must be a DNS name such as platform.example",
        ),
        ("ORGDNS_RESOURCE_PREFIX", "org dns", "ORGDNS_RESOURCE_PREFIX must be 1 to 32 letters, digits or +=,.@_-"),
        ("ORGDNS_PARENT_ZONE_ID", "example.com", "ORGDNS_PARENT_ZONE_ID must be a Route53 hosted zone id"),
        (
            "ORGDNS_IAM_PERMISSIONS_BOUNDARY",
            "tenant-boundary",
            "ORGDNS_IAM_PERMISSIONS_BOUNDARY must be an IAM policy ARN",
        ),
        ("AWS_DEFAULT_REGION", "US East", "AWS_DEFAULT_REGION must be an AWS region such as us-east-1, not 'US East'"),
        ("VAULT_KV_MOUNT", "", "VAULT_KV_MOUNT must be a Vault mount path such as secret, not ''"),
        ("EXTERNALDNS_NAMESPACE", "External_DNS", "EXTERNALDNS_NAMESPACE must be a Kubernetes namespace name"),
        ("EXTERNALDNS_MEMORY_LIMIT", "512MB", "EXTERNALDNS_MEMORY_LIMIT must be a Kubernetes quantity such as 512Mi"),
        (
            "ORGDNS_DEPLOYMENT_ID",
            "Prod_EU",
            "ORGDNS_DEPLOYMENT_ID must be 1 to 40 lowercase letters, digits and inner hyphens, such as prod-eu",
        ),
        ("ORGDNS_DEPLOYMENT_ID", "prod\n", "ORGDNS_DEPLOYMENT_ID must be 1 to 40 lowercase letters"),
        ("ORGDNS_DEPLOYMENT_ID", "a" * 41, "ORGDNS_DEPLOYMENT_ID must be 1 to 40 lowercase letters"),
        ("ORGDNS_ORG_OPERATION_LIMIT", "0", "ORGDNS_ORG_OPERATION_LIMIT must be more than 0, not 0"),
        ("ORGDNS_API_TOKENS_PER_USER", "many", "ORGDNS_API_TOKENS_PER_USER must be a whole number, not 'many'"),
        # settings that must agree
        (
            "LOGIN_USERNAME_FAILURE_LIMIT",
            "3",
            "LOGIN_FAILURE_LIMIT (5) must be less than LOGIN_USERNAME_FAILURE_LIMIT (3)",
        ),
        (
            "ORGDNS_HEARTBEAT_INTERVAL",
            "30",
            "ORGDNS_HEARTBEAT_INTERVAL (30) must be less than ORGDNS_HEARTBEAT_TTL (5)",
        ),
        ("ORGDNS_ORG_LOCK_LEASE", "0.5", "ORGDNS_HEARTBEAT_INTERVAL (1) must be less than ORGDNS_ORG_LOCK_LEASE (0.5)"),
        (
            "EXTERNALDNS_MIN_INTERVAL",
            "7200",
            "EXTERNALDNS_MIN_INTERVAL (7200) must not exceed EXTERNALDNS_MAX_INTERVAL",
        ),
    ],
)
def test_a_bad_setting_stops_the_start_naming_the_variable_and_what_it_must_be(monkeypatch, name, value, said):
    with pytest.raises(ImproperlyConfigured) as refused:
        load_settings(monkeypatch, **{name: value})
    assert said in str(refused.value) and "s3cret" not in str(refused.value)


def test_the_settings_read_every_good_spelling_as_before(monkeypatch):
    loaded = load_settings(
        monkeypatch,
        SECURE_SSL_REDIRECT="yes",
        SECURE_HSTS_PRELOAD="",
        SECURE_COOKIES="ON",
        ORGDNS_JOB_RETRY_INTERVALS="1,2,,4, 8",
        ORGDNS_METRICS_NETWORKS="10.0.0.1, 10.0.0.0/8,::1",
        ORGDNS_ZONE_PRICE_FIRST="0.5",
        ORGDNS_GC_YOUNG_MARGIN="600",
        ORGDNS_BASE_DOMAIN="Platform.Example.com.",
        REDIS_URL="unix:///run/redis.sock?db=2",
        AWS_ENDPOINT_URL="",
        EXTERNALDNS_MEMORY_LIMIT="512Mi",
        VAULT_PREFIX="/orgdns/",
    )
    assert (loaded["SECURE_SSL_REDIRECT"], loaded["SECURE_HSTS_PRELOAD"], loaded["SESSION_COOKIE_SECURE"]) == (
        True,
        False,
        True,
    )
    assert loaded["ORGDNS_JOB_RETRY_INTERVALS"] == [1, 2, 4, 8]
    assert loaded["ORGDNS_METRICS_NETWORKS"] == ["10.0.0.1", "10.0.0.0/8", "::1"]
    assert loaded["ORGDNS_ZONE_PRICE_FIRST"] == Decimal("0.5")
    assert loaded["ORGDNS_GC_YOUNG_MARGIN"] == timedelta(minutes=10)
    assert loaded["ORGDNS_BASE_DOMAIN"] == "Platform.Example.com"
    # the suite's own environment gives the settings this process runs with
    monkeypatch.undo()
    again = load_settings(monkeypatch)
    for name in ("ORGDNS_JOB_RETRY_INTERVALS", "ORGDNS_HEARTBEAT_TTL", "ORGDNS_ROUTE53_RATE", "AXES_COOLOFF_TIME"):
        assert again[name] == getattr(settings, name), name


@pytest.mark.parametrize(
    ("base_domain", "deployment_id"),
    [
        ("orgdns.example.com", "orgdns-example-com"),
        ("Staging.DNS.example.com.", "staging-dns-example-com"),
        # Cut to 40 characters with a hash of the whole name: two long names that share their start still differ.
        ("a-very-long-platform-name.eu-west-1.internal.example.com", "a-very-long-platform-name-eu-we-"),
    ],
)
def test_the_deployment_id_defaults_to_one_derived_from_the_base_domain(monkeypatch, base_domain, deployment_id):
    monkeypatch.delenv("ORGDNS_DEPLOYMENT_ID", raising=False)
    derived = load_settings(monkeypatch, ORGDNS_BASE_DOMAIN=base_domain)["ORGDNS_DEPLOYMENT_ID"]
    assert derived.startswith(deployment_id) and len(derived) <= 40
    assert load_settings(monkeypatch, ORGDNS_DEPLOYMENT_ID="prod-eu")["ORGDNS_DEPLOYMENT_ID"] == "prod-eu"


def test_the_database_url_keeps_its_options_and_the_connections_their_age(tmp_path):
    """The query options of DATABASE_URL reach PostgreSQL as written (the suite's own server); the URL may come from a
    file; DATABASE_CONN_MAX_AGE and DATABASE_CONN_HEALTH_CHECKS set Django's CONN_MAX_AGE and CONN_HEALTH_CHECKS."""
    server = urlsplit(os.environ["DATABASE_URL"])
    url_file = tmp_path / "database-url"
    url_file.write_text(
        f"postgres://{server.netloc}/postgres?sslmode=disable&application_name=orgdns-settings-test"
        "&options=-c%20statement_timeout%3D4321&connect_timeout=3\n"
    )
    shown = run_django(
        {"DEBUG": "1", "DATABASE_URL_FILE": str(url_file), "DATABASE_CONN_MAX_AGE": "60"},
        "-c",
        "import django; django.setup(); from django.db import connection as c; d = c.settings_dict; "
        "print(d['OPTIONS']['sslmode'], d['OPTIONS']['connect_timeout'], d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS']); "
        "cursor = c.cursor(); cursor.execute('SHOW statement_timeout'); print(cursor.fetchone()[0]); "
        "cursor.execute('SHOW application_name'); print(cursor.fetchone()[0])",
    )
    assert shown.stdout.split("\n")[:3] == ["disable 3 60 False", "4321ms", "orgdns-settings-test"], shown.stderr

    # an option the driver refuses is not dropped on the way: the connection fails naming it
    refused = run_django(
        {"DEBUG": "1", "DATABASE_URL": f"postgres://{server.netloc}/postgres?sslmode=verify-full"},
        "-c",
        "import django; django.setup(); from django.db import connection; connection.ensure_connection()",
    )
    assert refused.returncode != 0 and ("SSL" in refused.stderr or "sslmode" in refused.stderr), refused.stderr


def test_the_database_settings_are_checked_without_repeating_the_password(monkeypatch):
    with pytest.raises(ImproperlyConfigured) as refused:
        load_settings(monkeypatch, DATABASE_URL="postgres://orgdns:s3cret@db.internal:5432x/orgdns")
    assert "DATABASE_URL must be a URL like postgres://" in str(refused.value) and "s3cret" not in str(refused.value)
    monkeypatch.undo()
    loaded = load_settings(monkeypatch, DATABASE_CONN_HEALTH_CHECKS="on", DATABASE_CONN_MAX_AGE="30")
    assert loaded["DATABASES"]["default"]["CONN_MAX_AGE"] == 30 and loaded["DATABASES"]["default"]["CONN_HEALTH_CHECKS"]
    assert loaded["DATABASES"]["default"]["OPTIONS"]["connect_timeout"] == loaded["DATABASE_CONNECT_TIMEOUT"]
