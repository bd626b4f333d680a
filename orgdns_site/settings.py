"""Settings, all from the environment: docs/configuration.md lists every one (a fast test keeps them in step). Every
one is read and checked as the process starts (orgdns_site/environment.py): a bad value stops it with
ImproperlyConfigured naming the variable and what it must be; any NAME may be read from the file NAME_FILE names."""

import ipaddress
import logging
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from orgdns_site.environment import (
    FRACTION,
    NOT_NEGATIVE,
    POSITIVE,
    aws_accounts,
    between,
    check_order,
    deployment_id_from,
    env,
    envbool,
    envchoice,
    envdatabase,
    envdecimal,
    envfloat,
    envint,
    envlist,
    envmatch,
    envseconds,
    envurl,
    group_pattern,
    group_table,
    network,
    proxy_ssl_header,
    redis_url_with_timeouts,
    whole_seconds,
)

# The source checkout (tests and the devstack read files there); nothing is read from or written to it at run time.
BASE_DIR = Path(__file__).resolve().parent.parent
# Templates and static files ship inside the package (the wheel carries them).
PACKAGE_DIR = Path(__file__).resolve().parent

DEBUG = envbool("DEBUG", False)
# Where orgdns writes what it keeps on disk: the default SQLite database and the collected static files. Default: the
# directory it is started in (a checkout's root for `manage.py`); never the installed package.
DATA_DIR = Path(env("ORGDNS_DATA_DIR", "") or Path.cwd()).resolve()
SECRET_KEY = env("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set: set SECRET_KEY (or SECRET_KEY_FILE) to a long random string, or DEBUG=1 on a "
            "development machine"
        )
    SECRET_KEY = "dev-only-insecure-key"
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver", str, "a host name")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "", str, "an origin")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_rq",
    "ninja",
    "axes",
    "provisioning",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "orgdns_site.staticfiles.WhiteNoiseMiddleware",
    "provisioning.middleware.RequestSizeLimitMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "provisioning.middleware.AuditContextMiddleware",
    "axes.middleware.AxesMiddleware",
    "provisioning.middleware.SessionMaxAgeMiddleware",
]

ROOT_URLCONF = "orgdns_site.urls"
WSGI_APPLICATION = "orgdns_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [PACKAGE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_CONNECT_TIMEOUT = envint("DATABASE_CONNECT_TIMEOUT", 5, POSITIVE)  # seconds (PostgreSQL)
# Seconds a connection stays open for the next request of its thread (0: closed after each request), and whether a
# kept connection is checked before it is used again (a restarted server then costs no failed request).
DATABASE_CONN_MAX_AGE = envint("DATABASE_CONN_MAX_AGE", 0, NOT_NEGATIVE)
DATABASE_CONN_HEALTH_CHECKS = envbool("DATABASE_CONN_HEALTH_CHECKS", False)
DATABASES = {
    "default": envdatabase(
        "DATABASE_URL",
        f"sqlite:///{DATA_DIR / 'db.sqlite3'}",
        connect_timeout=DATABASE_CONNECT_TIMEOUT,
        max_age=DATABASE_CONN_MAX_AGE,
        health_checks=DATABASE_CONN_HEALTH_CHECKS,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Login throttling (django-axes), for the dashboard's and the admin's login alike: after LOGIN_FAILURE_LIMIT wrong
# passwords for one username from one client address, that pair is refused (HTTP 429) for LOGIN_LOCKOUT_MINUTES; after
# LOGIN_USERNAME_FAILURE_LIMIT for one username from any addresses together (guessing spread over many), the username
# is (provisioning.middleware.LoginAttempts).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "provisioning.services.people.sign_in.LocalPasswordBackend",
    "provisioning.services.people.sign_in.IdentityProviderBackend",
]
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5, POSITIVE)
LOGIN_USERNAME_FAILURE_LIMIT = envint("LOGIN_USERNAME_FAILURE_LIMIT", 4 * AXES_FAILURE_LIMIT, POSITIVE)
check_order("LOGIN_FAILURE_LIMIT", AXES_FAILURE_LIMIT, "LOGIN_USERNAME_FAILURE_LIMIT", LOGIN_USERNAME_FAILURE_LIMIT)
AXES_COOLOFF_TIME = timedelta(minutes=envint("LOGIN_LOCKOUT_MINUTES", 15, POSITIVE))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "username"]  # in this order: LoginAttempts reads them so
AXES_HANDLER = "provisioning.middleware.LoginAttempts"
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_CALLABLE = "provisioning.middleware.login_attempt_username"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# The client address is REMOTE_ADDR, unless TRUSTED_PROXY_COUNT proxies in front of orgdns append to X-Forwarded-For.
TRUSTED_PROXY_COUNT = envint("TRUSTED_PROXY_COUNT", 0, NOT_NEGATIVE)
if TRUSTED_PROXY_COUNT:
    AXES_IPWARE_PROXY_COUNT = TRUSTED_PROXY_COUNT
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]
else:
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

# Static files are served by the app itself (whitenoise): `orgdns collectstatic` copies them into STATIC_ROOT under
# names carrying their content's hash, compressed (gzip, brotli), served with far-future cache headers.
STATIC_URL = "static/"
STATICFILES_DIRS = [PACKAGE_DIR / "static"]
STATIC_ROOT = Path(env("STATIC_ROOT", "") or DATA_DIR / "staticfiles").resolve()
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "orgdns_site.staticfiles.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG or not (STATIC_ROOT / "staticfiles.json").exists()  # not collected: the sources

# Security headers. No inline script or style anywhere: CSP allows only our own origin.
SECURE_CSP: dict[str, list[str]] = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_AGE = envint("SESSION_COOKIE_AGE", 12 * 3600, POSITIVE)  # seconds
# Sign-in with the company's identity provider (OpenID Connect; docs/sign-in.md). Empty issuer: off.
ORGDNS_OIDC_ISSUER = envurl("ORGDNS_OIDC_ISSUER", "", ("http", "https"), optional=True)  # exactly as its tokens say
ORGDNS_OIDC_CLIENT_ID = env("ORGDNS_OIDC_CLIENT_ID", "")
ORGDNS_OIDC_CLIENT_SECRET = env("ORGDNS_OIDC_CLIENT_SECRET", "")
if ORGDNS_OIDC_ISSUER and not (ORGDNS_OIDC_CLIENT_ID and ORGDNS_OIDC_CLIENT_SECRET):
    raise ImproperlyConfigured(
        "ORGDNS_OIDC_ISSUER is set: ORGDNS_OIDC_CLIENT_ID and ORGDNS_OIDC_CLIENT_SECRET (or ORGDNS_OIDC_CLIENT_SECRET_FILE) "
        "must be set too"
    )
ORGDNS_OIDC_PROVIDER_NAME = env("ORGDNS_OIDC_PROVIDER_NAME", "single sign-on")  # "Sign in with <this>"
ORGDNS_OIDC_SCOPES = env("ORGDNS_OIDC_SCOPES", "openid email profile groups").split()
if ORGDNS_OIDC_ISSUER and "openid" not in ORGDNS_OIDC_SCOPES:
    raise ImproperlyConfigured(f"ORGDNS_OIDC_SCOPES must include openid, not {' '.join(ORGDNS_OIDC_SCOPES)!r}")
ORGDNS_OIDC_USERNAME_CLAIM = env("ORGDNS_OIDC_USERNAME_CLAIM", "preferred_username")
ORGDNS_OIDC_EMAIL_CLAIM = env("ORGDNS_OIDC_EMAIL_CLAIM", "email")
ORGDNS_OIDC_NAME_CLAIM = env("ORGDNS_OIDC_NAME_CLAIM", "name")
ORGDNS_OIDC_GROUPS_CLAIM = env("ORGDNS_OIDC_GROUPS_CLAIM", "groups")
ORGDNS_OIDC_GROUP_PATTERN = group_pattern(env("ORGDNS_OIDC_GROUP_PATTERN", ""))
ORGDNS_OIDC_GROUP_MAP = group_table(env("ORGDNS_OIDC_GROUP_MAP", ""))
# Seconds to connect to the provider, and again to read each answer: the sign-in page's button answers within 5 s.
ORGDNS_OIDC_TIMEOUT = envfloat("ORGDNS_OIDC_TIMEOUT", 2, between(0.1, 2.5))
ORGDNS_OIDC_CLOCK_SKEW = envint("ORGDNS_OIDC_CLOCK_SKEW", 60, between(0, 300))  # seconds allowed on exp, iat, nbf
ORGDNS_OIDC_DISCOVERY_TTL = envint("ORGDNS_OIDC_DISCOVERY_TTL", 3600, POSITIVE)  # seconds discovery is kept
# seconds an unreachable provider is not tried
ORGDNS_OIDC_DOWN_RETRY = envint("ORGDNS_OIDC_DOWN_RETRY", 30, NOT_NEGATIVE)
if ORGDNS_OIDC_ISSUER:  # logging out may end in the provider's end_session_endpoint, which form-action must allow
    SECURE_CSP["form-action"].append("{0.scheme}://{0.netloc}".format(urlsplit(ORGDNS_OIDC_ISSUER)))
# Local passwords: off for everyone but the break-glass accounts (comma-separated user names) when the provider is on.
ORGDNS_LOCAL_LOGIN = envbool("ORGDNS_LOCAL_LOGIN", True)
ORGDNS_BREAK_GLASS_USERS = envlist("ORGDNS_BREAK_GLASS_USERS", "", str, "a user name")
if not (ORGDNS_LOCAL_LOGIN or ORGDNS_OIDC_ISSUER or ORGDNS_BREAK_GLASS_USERS):
    raise ImproperlyConfigured(
        "ORGDNS_LOCAL_LOGIN is off and there is neither ORGDNS_OIDC_ISSUER nor ORGDNS_BREAK_GLASS_USERS: nobody could "
        "sign in"
    )
# Every session ends this long after its sign-in, however active (seconds; default SESSION_COOKIE_AGE).
ORGDNS_SESSION_MAX_AGE = envint("ORGDNS_SESSION_MAX_AGE", SESSION_COOKIE_AGE, POSITIVE)
# Production behind TLS (docs/configuration.md "Production"): redirect to https, HSTS, and how the proxy says a request was https.
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0, NOT_NEGATIVE)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
SECURE_PROXY_SSL_HEADER = proxy_ssl_header(env("SECURE_PROXY_SSL_HEADER", ""))
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # the load balancer's health check may speak plain http

REDIS_URL = envurl("REDIS_URL", "redis://127.0.0.1:6379/0", ("redis", "rediss", "unix"))
# Seconds a Redis command may take before it fails: a hung Redis gives a clear error, not a hung request.
REDIS_TIMEOUT = envfloat("REDIS_TIMEOUT", 5, POSITIVE)


# /readyz: seconds the Redis PING may take (the database's is DATABASE_CONNECT_TIMEOUT).
ORGDNS_READY_TIMEOUT = envfloat("ORGDNS_READY_TIMEOUT", 2, POSITIVE)
RQ_QUEUES = {"default": {"URL": redis_url_with_timeouts(REDIS_URL, REDIS_TIMEOUT), "DEFAULT_TIMEOUT": 900}}
RQ_SHOW_ADMIN_LINK = False
# rq's worker without a minute's wait when it stops (orgdns_site/workers.py).
RQ = {"WORKER_CLASS": "orgdns_site.workers.Worker"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envchoice("LOG_LEVEL", "INFO", list(logging.getLevelNamesMapping()))},
    # Library debug logs can include request bodies: keep them quiet whatever LOG_LEVEL says (axes: every login).
    "loggers": {name: {"level": "WARNING"} for name in ("botocore", "boto3", "urllib3", "kubernetes", "hvac", "axes")},
}

# `orgdns web` (gunicorn, orgdns_site/cli.py): where it listens (host:port, or unix:/path), its processes and their
# threads, seconds a request may take, and seconds requests under way get to finish after SIGTERM.
ORGDNS_WEB_BIND = envmatch(
    "ORGDNS_WEB_BIND", "0.0.0.0:8000", r"unix:/\S+|(\[[0-9A-Fa-f:.]+\]|[\w.-]*):\d{1,5}", "host:port or unix:/path"
)
ORGDNS_WEB_WORKERS = envint("ORGDNS_WEB_WORKERS", 2, POSITIVE)
ORGDNS_WEB_THREADS = envint("ORGDNS_WEB_THREADS", 4, POSITIVE)
ORGDNS_WEB_TIMEOUT = envint("ORGDNS_WEB_TIMEOUT", 60, POSITIVE)
ORGDNS_WEB_GRACEFUL_TIMEOUT = envint("ORGDNS_WEB_GRACEFUL_TIMEOUT", 25, POSITIVE)

# Retention (`orgdns prune`, daily on the schedule), in days: finished operations with their logs; audit entries and
# login records (kept for security reviews: over a year by default); API tokens once expired or revoked. Zones and the
# zone charges ledger are never pruned (billing).
ORGDNS_RETAIN_OPERATIONS_DAYS = envint("ORGDNS_RETAIN_OPERATIONS_DAYS", 90, POSITIVE)
ORGDNS_RETAIN_AUDIT_DAYS = envint("ORGDNS_RETAIN_AUDIT_DAYS", 400, POSITIVE)
ORGDNS_RETAIN_TOKENS_DAYS = envint("ORGDNS_RETAIN_TOKENS_DAYS", 30, NOT_NEGATIVE)

# `orgdns scheduler` (orgdns_site/schedule.py): the periodic commands not to queue, and those to queue as dry runs.
ORGDNS_SCHEDULE_OFF = envlist("ORGDNS_SCHEDULE_OFF", "", str, "a command")
ORGDNS_SCHEDULE_DRY_RUN = envlist("ORGDNS_SCHEDULE_DRY_RUN", "", str, "a command")

# --- orgdns ---------------------------------------------------------------------------------
ORGDNS_BASE_DOMAIN = envmatch(
    "ORGDNS_BASE_DOMAIN",
    "orgdns.example.com",
    r"(?=.{1,254}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?",
    "a DNS name such as platform.example.com",
).rstrip(".")
ORGDNS_PARENT_ZONE_ID = envmatch(
    "ORGDNS_PARENT_ZONE_ID", "", r"[A-Za-z0-9]*", "a Route53 hosted zone id such as Z0123456789ABCDEFGHIJ, or empty"
)
ORGDNS_RESOURCE_PREFIX = envmatch(
    "ORGDNS_RESOURCE_PREFIX", "orgdns", r"[\w+=,.@-]{1,32}", "1 to 32 letters, digits or +=,.@_- (IAM user names)"
)  # IAM user names, tags, Vault prefix
# What names this deployment in every mark orgdns recognizes its own things by (Route53 zone and IAM user tags, Vault
# paths under VAULT_PREFIX, Kubernetes labels): deployments that share an AWS account, a Vault or a cluster (staging
# and production) never take each other's things for theirs. Changing it orphans what was made under the old one.
ORGDNS_DEPLOYMENT_ID = envmatch(
    "ORGDNS_DEPLOYMENT_ID",
    deployment_id_from(ORGDNS_BASE_DOMAIN),
    r"[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?",
    "1 to 40 lowercase letters, digits and inner hyphens, such as prod-eu",
)
# Organization names never given out (shell-style patterns): <name>.<base domain> would pass for the platform's own.
ORGDNS_RESERVED_NAMES = envlist(
    "ORGDNS_RESERVED_NAMES",
    "www,api,app,apps,admin,administrator,root,mail,email,smtp,imap,pop,pop3,mx,webmail,autodiscover,autoconfig,"
    "ftp,sftp,ns*,dns,_*,hostmaster,postmaster,webmaster,abuse,security,support,help,status,login,auth,sso,oauth,"
    "id,account,accounts,billing,dashboard,console,portal,static,assets,cdn,media,vpn,git,registry,docs,blog,"
    "internal,localhost,wpad,isatap,orgdns",
    str,
    "a name pattern",
)
# The ARN of a managed policy that caps every IAM user orgdns creates (docs/security-model.md); empty: none.
ORGDNS_IAM_PERMISSIONS_BOUNDARY = envmatch(
    "ORGDNS_IAM_PERMISSIONS_BOUNDARY",
    "",
    r"(arn:aws[a-z-]*:iam::\d{12}:policy/[\w+=,.@/-]{1,512})?",
    "an IAM policy ARN like arn:aws:iam::123456789012:policy/orgdns-tenant-boundary, or empty",
)
# Route53 throttles per account (a bucket refilled at 10 requests/s, burst 50), for every caller together.
ORGDNS_ROUTE53_ACCOUNT_RATE = envfloat("ORGDNS_ROUTE53_ACCOUNT_RATE", 10.0, POSITIVE)  # requests/second of the account
# of it, for every tenant's ExternalDNS
ORGDNS_ROUTE53_FLEET_SHARE = envfloat("ORGDNS_ROUTE53_FLEET_SHARE", 0.6, FRACTION)
# of it, for orgdns's workers (the rest: console, scripts)
ORGDNS_ROUTE53_SHARE = envfloat("ORGDNS_ROUTE53_SHARE", 0.3, FRACTION)
# requests/s, all workers
ORGDNS_ROUTE53_RATE = envfloat("ORGDNS_ROUTE53_RATE", ORGDNS_ROUTE53_ACCOUNT_RATE * ORGDNS_ROUTE53_SHARE, POSITIVE)
# requests at once, all workers
ORGDNS_ROUTE53_BURST = envint("ORGDNS_ROUTE53_BURST", max(1, int(50 * ORGDNS_ROUTE53_SHARE)), POSITIVE)
if ORGDNS_ROUTE53_FLEET_SHARE + ORGDNS_ROUTE53_SHARE > 1:
    raise ImproperlyConfigured("ORGDNS_ROUTE53_FLEET_SHARE + ORGDNS_ROUTE53_SHARE must not exceed 1")
# The account's quotas (AWS's defaults; ask AWS for more) and when the Route53 budget page and the home page warn: a
# quota, or a share of the rate, used above this fraction. orgdns's own rate is measured over the last minutes.
ORGDNS_ROUTE53_ZONE_QUOTA = envint("ORGDNS_ROUTE53_ZONE_QUOTA", 500, POSITIVE)  # hosted zones in the account
ORGDNS_IAM_USER_QUOTA = envint("ORGDNS_IAM_USER_QUOTA", 5000, POSITIVE)  # IAM users in the account (a hard cap)
ORGDNS_BUDGET_ATTENTION = envfloat("ORGDNS_BUDGET_ATTENTION", 0.8, FRACTION)
ORGDNS_ROUTE53_MEASURE_MINUTES = envint("ORGDNS_ROUTE53_MEASURE_MINUTES", 15, between(1, 180))
# The AWS accounts orgdns places organizations in (docs/aws-accounts.md): a JSON list of {"name", "role_arn"
# (the role orgdns assumes there; empty: orgdns's own account), "zone_quota", "iam_user_quota", "rate",
# "iam_permissions_boundary"}. Empty: one account, orgdns's own, named "main", with the settings above.
ORGDNS_AWS_ACCOUNTS = aws_accounts(env("ORGDNS_AWS_ACCOUNTS", ""))
# lifetime of assumed-role credentials (STS allows 15 min to 12 h)
ORGDNS_AWS_ROLE_SESSION_SECONDS = envint("ORGDNS_AWS_ROLE_SESSION_SECONDS", 3600, between(900, 43200))
ORGDNS_RETRY_ATTEMPTS = envint("ORGDNS_RETRY_ATTEMPTS", 6, POSITIVE)  # per remote call, for transient errors
ORGDNS_RETRY_BASE_DELAY = envfloat("ORGDNS_RETRY_BASE_DELAY", 0.5, NOT_NEGATIVE)  # seconds, doubles each attempt
ORGDNS_JOB_RETRY_INTERVALS = envlist(
    "ORGDNS_JOB_RETRY_INTERVALS", "30,120,600", whole_seconds, "a whole number of seconds"
)
# A job holds its organization's lock as a lease it renews: a killed job's lock frees within ORGDNS_ORG_LOCK_LEASE.
ORGDNS_ORG_LOCK_LEASE = envfloat("ORGDNS_ORG_LOCK_LEASE", 30, POSITIVE)  # seconds
# seconds a job waits for it, then retries later
ORGDNS_ORG_LOCK_WAIT = envfloat("ORGDNS_ORG_LOCK_WAIT", 600, NOT_NEGATIVE)
# A running job renews its heartbeat every INTERVAL; the sweep calls a job dead once it is older than TTL.
ORGDNS_HEARTBEAT_INTERVAL = envfloat("ORGDNS_HEARTBEAT_INTERVAL", 5, POSITIVE)  # seconds
ORGDNS_HEARTBEAT_TTL = envfloat("ORGDNS_HEARTBEAT_TTL", 20, POSITIVE)  # seconds
# The heartbeat renews the heartbeat and the lock lease: it must come before either runs out.
check_order("ORGDNS_HEARTBEAT_INTERVAL", ORGDNS_HEARTBEAT_INTERVAL, "ORGDNS_HEARTBEAT_TTL", ORGDNS_HEARTBEAT_TTL)
check_order("ORGDNS_HEARTBEAT_INTERVAL", ORGDNS_HEARTBEAT_INTERVAL, "ORGDNS_ORG_LOCK_LEASE", ORGDNS_ORG_LOCK_LEASE)
# rotate_credentials rotates access keys older than this
ORGDNS_MAX_KEY_AGE_DAYS = envint("ORGDNS_MAX_KEY_AGE_DAYS", 90, POSITIVE)
# seconds a deregistration or offboarding waits for the running jobs that could put something back (then it retries)
ORGDNS_WAIT_FOR_JOBS_TIMEOUT = envint("ORGDNS_WAIT_FOR_JOBS_TIMEOUT", 300, POSITIVE)

# Garbage collection of unused hosted zones (docs/gc-billing.md); durations in seconds.
ORGDNS_GC_YOUNG_MARGIN = envseconds("ORGDNS_GC_YOUNG_MARGIN", 15 * 60)  # delete young zones by 12 h minus this
ORGDNS_GC_FINAL_WINDOW = envseconds("ORGDNS_GC_FINAL_WINDOW", 60 * 60)  # delete paid zones this long before month end
ORGDNS_GC_RETRY_AFTER = envseconds("ORGDNS_GC_RETRY_AFTER", 10 * 60)  # the GC resumes a failed teardown after this
# USD per zone-month, first zones of the account
ORGDNS_ZONE_PRICE_FIRST = envdecimal("ORGDNS_ZONE_PRICE_FIRST", "0.50", NOT_NEGATIVE)
# USD per zone-month beyond the tier
ORGDNS_ZONE_PRICE_AFTER = envdecimal("ORGDNS_ZONE_PRICE_AFTER", "0.10", NOT_NEGATIVE)
# zones charged at the first price each month
ORGDNS_ZONE_PRICE_TIER = envint("ORGDNS_ZONE_PRICE_TIER", 25, NOT_NEGATIVE)

AWS_ENDPOINT_URL = envurl("AWS_ENDPOINT_URL", "", ("http", "https"), optional=True)  # empty: real AWS
AWS_REGION = envmatch("AWS_DEFAULT_REGION", "us-east-1", r"[a-z]{2}(-[a-z]+)+-\d+", "an AWS region such as us-east-1")

VAULT_ADDR = envurl("VAULT_ADDR", "http://127.0.0.1:8200", ("http", "https"))
VAULT_TOKEN = env("VAULT_TOKEN", "")
VAULT_KV_MOUNT = envmatch("VAULT_KV_MOUNT", "secret", r"[^/\s]+(/[^/\s]+)*", "a Vault mount path such as secret")
VAULT_PREFIX = envmatch("VAULT_PREFIX", "orgdns", r"/*[^/\s]+(/[^/\s]+)*/*", "a Vault path such as orgdns")

EXTERNALDNS_IMAGE = envmatch(
    "EXTERNALDNS_IMAGE", "registry.k8s.io/external-dns/external-dns:v0.23.0", r"\S+", "an image"
)
EXTERNALDNS_NAMESPACE = envmatch(
    "EXTERNALDNS_NAMESPACE",
    "external-dns",
    r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
    "a Kubernetes namespace name (lowercase letters, digits and inner hyphens, at most 63)",
)
EXTERNALDNS_POLICY = envchoice("EXTERNALDNS_POLICY", "sync", ["sync", "upsert-only", "create-only"])
EXTERNALDNS_MEMORY_LIMIT = envmatch(
    "EXTERNALDNS_MEMORY_LIMIT",
    "",
    r"(\d+(\.\d+)?([eE]\d+|[KMGTPE]i|[kMGTPE])?)?",
    "a Kubernetes quantity such as 512Mi, or empty",
)  # empty: no limit
# seconds for ExternalDNS to become available
EXTERNALDNS_ROLLOUT_TIMEOUT = envint("EXTERNALDNS_ROLLOUT_TIMEOUT", 180, POSITIVE)
EXTERNALDNS_STOP_TIMEOUT = envint("EXTERNALDNS_STOP_TIMEOUT", 120, POSITIVE)  # seconds for its pods and namespace to go
# ExternalDNS's resync interval is chosen between these so that the fleet stays within ORGDNS_ROUTE53_FLEET_SHARE,
# planning for this many record sets per zone and changes per cluster and hour (provisioning/rules/budget.py).
EXTERNALDNS_MIN_INTERVAL = envint("EXTERNALDNS_MIN_INTERVAL", 60, POSITIVE)  # seconds
# seconds; a record changed by hand is put back by then
EXTERNALDNS_MAX_INTERVAL = envint("EXTERNALDNS_MAX_INTERVAL", 3600, POSITIVE)
if EXTERNALDNS_MIN_INTERVAL > EXTERNALDNS_MAX_INTERVAL:
    raise ImproperlyConfigured(
        f"EXTERNALDNS_MIN_INTERVAL ({EXTERNALDNS_MIN_INTERVAL}) must not exceed EXTERNALDNS_MAX_INTERVAL "
        f"({EXTERNALDNS_MAX_INTERVAL})"
    )
# a change reaches Route53 within this + a sync
EXTERNALDNS_MIN_EVENT_SYNC_INTERVAL = envint("EXTERNALDNS_MIN_EVENT_SYNC_INTERVAL", 45, POSITIVE)
EXTERNALDNS_PLAN_RECORDS = envint("EXTERNALDNS_PLAN_RECORDS", 300, POSITIVE)
EXTERNALDNS_PLAN_CHANGES_PER_HOUR = envfloat("EXTERNALDNS_PLAN_CHANGES_PER_HOUR", 6.0, NOT_NEGATIVE)
# When the fleet's size calls for a resync interval off by more than this fraction from the one a ready cluster runs,
# `manage.py rerender_externaldns` deploys its ExternalDNS again, at most this many at a time (each restart reads the
# account's zones and the zone's records once: ⌈Z/100⌉ + ⌈R/300⌉ Route53 calls).
EXTERNALDNS_RERENDER_THRESHOLD = envfloat("EXTERNALDNS_RERENDER_THRESHOLD", 0.2, NOT_NEGATIVE)
EXTERNALDNS_RERENDERS_AT_ONCE = envint("EXTERNALDNS_RERENDERS_AT_ONCE", 10, NOT_NEGATIVE)
KUBE_REQUEST_TIMEOUT = envint("KUBE_REQUEST_TIMEOUT", 15, POSITIVE)
VAULT_TIMEOUT = envfloat("VAULT_TIMEOUT", 10, POSITIVE)  # seconds per Vault call in jobs
# in a request (two tries), then a clear error
ORGDNS_REQUEST_VAULT_TIMEOUT = envfloat("ORGDNS_REQUEST_VAULT_TIMEOUT", 4, POSITIVE)
# Abuse limits (docs/security.md): operations one organization may have queued or running at once (a user's
# request beyond it is refused: 429 from the API, a form error on pages), and live API tokens per user.
ORGDNS_ORG_OPERATION_LIMIT = envint("ORGDNS_ORG_OPERATION_LIMIT", 20, POSITIVE)
ORGDNS_API_TOKENS_PER_USER = envint("ORGDNS_API_TOKENS_PER_USER", 10, POSITIVE)
# A Vault write a request gave up on may land later: the sweep destroys it (no registration owns it) at every run for
# this long after the write was recorded, then forgets it (`reconcile` removes what lands later still).
ORGDNS_PENDING_WRITE_WATCH = envseconds("ORGDNS_PENDING_WRITE_WATCH", 15 * 60, POSITIVE)
# clusters check_externaldns reads at once
ORGDNS_HEALTH_CHECK_WORKERS = envint("ORGDNS_HEALTH_CHECK_WORKERS", 8, POSITIVE)
# Registration checks a cluster with one quick request, a few times a minute per user at most.
ORGDNS_PROBE_TIMEOUT = envfloat("ORGDNS_PROBE_TIMEOUT", 5, POSITIVE)  # seconds, for all its calls together
ORGDNS_PROBES_PER_MINUTE = envfloat("ORGDNS_PROBES_PER_MINUTE", 6, POSITIVE)
ORGDNS_PROBE_BURST = envint("ORGDNS_PROBE_BURST", 5, POSITIVE)
# Networks where a cluster API may be even though orgdns refuses them otherwise (loopback, link-local, metadata).
ORGDNS_CLUSTER_PERMITTED_NETWORKS = envlist(
    "ORGDNS_CLUSTER_PERMITTED_NETWORKS", "", ipaddress.ip_network, "a network such as 10.0.0.0/8, with no host bits set"
)
# The largest answer read from a cluster API (streamed: a longer one is cut off and refused), in bytes.
ORGDNS_CLUSTER_MAX_RESPONSE_BYTES = envint("ORGDNS_CLUSTER_MAX_RESPONSE_BYTES", 1024 * 1024, POSITIVE)
# The largest request body accepted, by its Content-Length, before any of it is read (a kubeconfig is 256 KiB at most).
ORGDNS_MAX_REQUEST_BYTES = envint("ORGDNS_MAX_REQUEST_BYTES", 1024 * 1024, POSITIVE)
DATA_UPLOAD_MAX_MEMORY_SIZE = ORGDNS_MAX_REQUEST_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = ORGDNS_MAX_REQUEST_BYTES  # an upload that passes the limit stays in memory, off the disk

# TLS certificates (per-organization CA in Vault)
ORGDNS_TLS_CA_DAYS = envint("ORGDNS_TLS_CA_DAYS", 3650, POSITIVE)  # validity of a new organization CA
ORGDNS_TLS_CERT_DAYS = envint("ORGDNS_TLS_CERT_DAYS", 90, POSITIVE)  # validity of issued and renewed certificates
# renew once this fraction of the lifetime has passed
ORGDNS_TLS_RENEW_AT = envfloat("ORGDNS_TLS_RENEW_AT", 2 / 3, FRACTION)
ORGDNS_TLS_MAX_NAMES = envint("ORGDNS_TLS_MAX_NAMES", 20, POSITIVE)  # DNS names per certificate

# The REST API (/api/v1/) and its personal tokens
# longest validity of a personal API token
ORGDNS_API_TOKEN_MAX_DAYS = envint("ORGDNS_API_TOKEN_MAX_DAYS", 365, POSITIVE)
# requests/second per token (or session user), across web processes
ORGDNS_API_RATE = envfloat("ORGDNS_API_RATE", 10.0, POSITIVE)
ORGDNS_API_BURST = envint("ORGDNS_API_BURST", 30, POSITIVE)  # requests a token may make at once before the rate applies

# /metrics (Prometheus): allowed with `Authorization: Bearer <ORGDNS_METRICS_TOKEN>` or from ORGDNS_METRICS_NETWORKS
# (comma-separated CIDRs, matched against REMOTE_ADDR); with neither set, every scrape is refused.
ORGDNS_METRICS_TOKEN = env("ORGDNS_METRICS_TOKEN", "")
ORGDNS_METRICS_NETWORKS = envlist(
    "ORGDNS_METRICS_NETWORKS",
    "",
    network,
    "a network such as 10.0.0.0/8 or an address",
)
