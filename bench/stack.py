"""The local servers a bench runs against, and the environment its Django reads."""

import os
import secrets
from contextlib import contextmanager

from devstack.processes import free_port, stack_env, start_bao, start_moto, stop


@contextmanager
def local_servers(redis_db, database_url, **environment):
    """moto and an OpenBao dev server, with os.environ set so that orgdns uses them, database_url and Redis database
    redis_db (or BENCH_REDIS_URL); yields moto's URL and stops both at the end."""
    moto, moto_url = start_moto(free_port())
    vault_token = secrets.token_urlsafe(16)
    bao, vault_url = start_bao(free_port(), vault_token)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="orgdns_site.settings",
        DATABASE_URL=database_url,
        REDIS_URL=os.environ.get("BENCH_REDIS_URL", f"redis://127.0.0.1:6379/{redis_db}"),
        **stack_env(moto_url, vault_url, vault_token, access_key="bench"),
        ORGDNS_BASE_DOMAIN="bench.example.com",
        LOG_LEVEL="WARNING",
        **environment,
    )
    try:
        yield moto_url
    finally:
        stop(moto)
        stop(bao)
