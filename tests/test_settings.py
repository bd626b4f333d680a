"""Production settings come from the environment; the README's production example passes `check --deploy`."""

import os
import re
import secrets
import subprocess
import sys

import pytest
from django.conf import settings

README = settings.BASE_DIR / "README.md"


def production_example():
    """The README's ```env block, as a dict."""
    (block,) = re.findall(r"^```env\n(.*?)^```", README.read_text(), re.S | re.M)
    return dict(line.split("=", 1) for line in block.splitlines() if line and not line.startswith("#"))


def run_django(environment, *args):
    """A fresh process on orgdns_site.settings with exactly this environment (plus PATH and HOME)."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **environment}
    env["DJANGO_SETTINGS_MODULE"] = "orgdns_site.settings"
    return subprocess.run(
        [sys.executable, *args], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_readme_production_example_passes_check_deploy(tmp_path):
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
