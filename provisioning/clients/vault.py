"""Secrets in Vault (KV v2), every path under one prefix, one subtree per organization."""

import contextlib
import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

import hvac
import hvac.exceptions
import requests

from .errors import ProviderError
from .retry import CallStats, RetryPolicy, call_with_retry

TRANSIENT = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    hvac.exceptions.VaultDown,
    hvac.exceptions.InternalServerError,
    hvac.exceptions.BadGateway,
    hvac.exceptions.RateLimitExceeded,
)


class Vault:
    def __init__(
        self,
        addr: str,
        token: str,
        *,
        mount: str = "secret",
        prefix: str = "orgdns",
        retry: RetryPolicy | None = None,
        stats: CallStats | None = None,
        timeout: float = 10,
    ) -> None:
        # hvac hands the timeout to requests, which takes float seconds; types-hvac says int.
        self.client = hvac.Client(url=addr, token=token, timeout=timeout)  # type: ignore[arg-type]
        self.kv = self.client.secrets.kv.v2
        self.mount = mount
        self.prefix = prefix.strip("/")
        self.retry = retry or RetryPolicy()
        self.stats = stats if stats is not None else CallStats()

    def org_path(self, org: str, *parts: str) -> str:
        return "/".join([self.prefix, "orgs", org, *parts])

    def _call[T](self, what: str, fn: Callable[[], T]) -> T:
        def counted() -> T:
            self.stats.count("vault", what)
            try:
                return fn()
            except hvac.exceptions.RateLimitExceeded:
                self.stats.throttled("vault", what)
                raise

        try:
            return call_with_retry(
                counted, policy=self.retry, is_transient=lambda e: isinstance(e, TRANSIENT), what="Vault"
            )
        except TRANSIENT as exc:
            raise ProviderError(
                f"Vault is unavailable ({type(exc).__name__}); will retry", service="vault", permanent=False
            ) from None
        except hvac.exceptions.Forbidden:
            raise ProviderError(
                "Vault refused our token (permission denied): check VAULT_TOKEN and its policy",
                service="vault",
                permanent=True,
            ) from None
        except hvac.exceptions.VaultError as exc:
            raise ProviderError(f"Vault {what} failed: {type(exc).__name__}", service="vault", permanent=True) from None

    def read(self, path: str) -> dict[str, Any] | None:
        """The secret's data, or None if there is none."""

        def read() -> dict[str, Any] | None:
            try:
                found = self.kv.read_secret_version(path=path, mount_point=self.mount, raise_on_deleted_version=True)
            except hvac.exceptions.InvalidPath:
                return None
            return found["data"]["data"]

        return self._call("read", read)

    def paths_under(self, path: str) -> list[str]:
        """Every secret path under path, recursively (KV v2 metadata list), sorted."""

        def keys(folder: str) -> list[str]:
            try:
                return self.kv.list_secrets(path=folder, mount_point=self.mount)["data"]["keys"]
            except hvac.exceptions.InvalidPath:
                return []

        found: list[str] = []
        folders = [path.strip("/")]
        while folders:
            folder = folders.pop()
            for key in self._call("list", functools.partial(keys, folder)):
                (folders if key.endswith("/") else found).append(f"{folder}/{key.rstrip('/')}")
        return sorted(found)

    def last_written(self, path: str) -> datetime | None:
        """When the secret's newest version was written (its metadata's updated_time), or None if there is none."""

        def read_metadata() -> str | None:
            try:
                return self.kv.read_secret_metadata(path=path, mount_point=self.mount)["data"]["updated_time"]
            except hvac.exceptions.InvalidPath:
                return None

        found = self._call("read metadata", read_metadata)
        return datetime.fromisoformat(found) if found else None

    def write(self, path: str, data: dict[str, Any]) -> None:
        self._call("write", lambda: self.kv.create_or_update_secret(path=path, secret=data, mount_point=self.mount))

    def destroy(self, path: str) -> None:
        """Delete the secret with every version and its metadata."""

        def destroy() -> None:
            with contextlib.suppress(hvac.exceptions.InvalidPath):
                self.kv.delete_metadata_and_all_versions(path=path, mount_point=self.mount)

        self._call("destroy", destroy)
