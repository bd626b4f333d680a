"""A Kubernetes cluster reached with a server URL, its CA and a bearer token."""

import base64
import contextlib
import hashlib
import ipaddress
import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import urllib3
import yaml
from cryptography import x509
from kubernetes.client import Configuration
from kubernetes.client.rest import RESTClientObject

from .errors import ProviderError
from .retry import CallStats, RetryPolicy, call_with_retry

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Object = dict[str, Any]  # a Kubernetes object as JSON


@dataclass(frozen=True)
class Access:
    """One request a token may or may not make, as the API server's authorizer sees it: namespace "" is cluster-wide
    (every namespace, for a namespaced resource), name "" any object."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    def __str__(self) -> str:
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        resource += f".{self.group}" if self.group else ""
        named = f" {self.name}" if self.name else ""
        where = f" in namespace {self.namespace}" if self.namespace else " cluster-wide"
        return f"{self.verb} {resource}{named}{where}"

    def review(self) -> dict[str, Any]:
        attributes = {"verb": self.verb, "group": self.group, "resource": self.resource}
        for key in ("subresource", "namespace", "name"):
            if getattr(self, key):
                attributes[key] = getattr(self, key)
        return {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        }


APPLIED_HASH = "orgdns.io/applied-hash"
MANAGED_BY = "app.kubernetes.io/managed-by"
FIELD_MANAGER = "orgdns"

# kind -> (API path prefix, plural, namespaced)
KINDS = {
    "Namespace": ("/api/v1", "namespaces", False),
    "Secret": ("/api/v1", "secrets", True),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Service": ("/api/v1", "services", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Pod": ("/api/v1", "pods", True),
    "ReplicaSet": ("/apis/apps/v1", "replicasets", True),
}


# Addresses a cluster API is never reached at unless a permitted network covers them: the machine orgdns runs on, its
# link (where clouds serve instance metadata and credentials) and the metadata endpoints outside link-local.
METADATA_ADDRESSES: dict[IPAddress, str] = {
    ipaddress.ip_address(a): "cloud metadata" for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
}
# ProviderError codes of a cluster connection, for callers that tell the cases apart.
REFUSED_ADDRESS = "refused-address"
UNREACHABLE = "unreachable"
UNAUTHORIZED = "unauthorized"
NOT_KUBERNETES = "not-kubernetes"
TOO_LARGE = "answer-too-large"
TIMED_OUT = "timed-out"

# What one answer of a cluster may cost: its size (ORGDNS_CLUSTER_MAX_RESPONSE_BYTES) and how deeply its JSON nests.
MAX_RESPONSE_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 100
READ_CHUNK = 64 * 1024
FORBIDDEN = "forbidden"
NO_NAMESPACE = "no-namespace"


class InvalidConnection(ValueError):
    """Cluster connection details that cannot work, with a message that says why."""


def refused_kind(address: IPAddress) -> str:
    """Why orgdns does not connect to this address on its own ("loopback", …), or "" if it may."""
    address = getattr(address, "ipv4_mapped", None) or address
    if address in METADATA_ADDRESSES:
        return METADATA_ADDRESSES[address]
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified or address in ipaddress.ip_network("0.0.0.0/8"):
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    return ""


def resolve(host: str, port: int, permitted_networks: Iterable[IPNetwork] = ()) -> IPAddress:
    """The address to connect to for host (the first it resolves to). ProviderError if it does not resolve, or if any
    of its addresses is one orgdns does not connect to and no permitted network covers it."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise ProviderError(f"cannot resolve {host}", service="kubernetes", permanent=False, code=UNREACHABLE) from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found))
    for address in addresses:
        kind = refused_kind(address)
        if kind and not any(address in network for network in permitted_networks):
            shown = host if host == str(address) else f"{host} ({address})"
            raise ProviderError(
                f"the API server address {shown} is {kind}: orgdns does not connect to loopback, link-local or cloud "
                "metadata addresses unless ORGDNS_CLUSTER_PERMITTED_NETWORKS allows them",
                service="kubernetes",
                permanent=True,
                code=REFUSED_ADDRESS,
            )
    return addresses[0]


PRINTABLE_ASCII = re.compile(r"[!-~]+")  # no spaces: what a URL or an HTTP header can carry as it is
BEARER_TOKEN = PRINTABLE_ASCII
MAX_TOKEN_LENGTH = 16384


@dataclass(frozen=True)
class ClusterConnection:
    server: str
    token: str = field(repr=False)
    ca_pem: str = ""

    def __post_init__(self) -> None:
        if not all(isinstance(value, str) for value in (self.server, self.token, self.ca_pem)):
            raise InvalidConnection("the API server URL, the token and the CA certificate must be text")
        if not PRINTABLE_ASCII.fullmatch(self.server):  # urlsplit would drop a newline or a tab silently
            raise InvalidConnection(
                "API server URL must be printable ASCII without spaces (an internationalized name in its xn-- form), "
                f"got {self.server[:200]!r}"
            )
        try:
            parts = urlsplit(self.server)
            parts.port  # noqa: B018 (raises ValueError for a port out of range)
        except ValueError:
            raise InvalidConnection(
                f"API server URL must look like https://host[:port], got {self.server[:200]!r}"
            ) from None
        if parts.scheme != "https" or not parts.hostname:
            raise InvalidConnection(f"API server URL must look like https://host[:port], got {self.server[:200]!r}")
        if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
            raise InvalidConnection(
                "API server URL must be just https://host[:port], without path, query or credentials"
            )
        if not self.token.strip():
            raise InvalidConnection("a bearer token is required")
        if len(self.token) > MAX_TOKEN_LENGTH or not BEARER_TOKEN.fullmatch(self.token):
            raise InvalidConnection(
                f"the bearer token must be printable ASCII without spaces, at most {MAX_TOKEN_LENGTH} characters"
            )
        if self.ca_pem:
            try:
                x509.load_pem_x509_certificates(self.ca_pem.encode())
            except ValueError:
                raise InvalidConnection("the CA certificate must be PEM (-----BEGIN CERTIFICATE-----)") from None

    def as_secret(self) -> dict[str, str]:
        return asdict(self)


def connection_from_kubeconfig(text: str, context: str | None = None) -> ClusterConnection:
    """The connection a kubeconfig describes, for its current (or the named, or only) context."""
    try:
        config = yaml.load(text, Loader=_KubeconfigLoader)  # noqa: S506 (a SafeLoader)
    except (yaml.YAMLError, RecursionError):
        raise InvalidConnection("the kubeconfig is not valid YAML") from None
    if not isinstance(config, dict):
        raise InvalidConnection("the kubeconfig is not a mapping of clusters, users and contexts")
    clusters, users, contexts = (_named(config, section) for section in ("clusters", "users", "contexts"))
    if not contexts:
        raise InvalidConnection("the kubeconfig has no contexts")
    name = context or config.get("current-context") or (next(iter(contexts)) if len(contexts) == 1 else None)
    if name is None:
        raise InvalidConnection(f"the kubeconfig has {len(contexts)} contexts and no current-context: name one")
    if not isinstance(name, str):
        raise InvalidConnection("current-context must be the name of a context")
    if name not in contexts:
        raise InvalidConnection(f"the kubeconfig has no context named {name[:100]!r}")
    ctx = contexts[name]
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    cluster = clusters.get(cluster_name) if isinstance(cluster_name, str) else None
    user = users.get(user_name) if isinstance(user_name, str) else None
    if not cluster or not isinstance(cluster.get("server"), str) or not cluster["server"]:
        raise InvalidConnection(f"context {name!r} names no cluster with a server URL")
    if user is None:
        raise InvalidConnection(f"context {name!r} names no user")
    if cluster.get("certificate-authority"):
        raise InvalidConnection(
            "the kubeconfig points at a CA file on another machine: embed certificate-authority-data"
        )
    if cluster.get("insecure-skip-tls-verify"):
        raise InvalidConnection("insecure-skip-tls-verify is not allowed: include the cluster's CA")
    if user.get("exec") or user.get("auth-provider"):
        raise InvalidConnection("the kubeconfig runs a credential plugin: use a ServiceAccount token instead")
    if not user.get("token"):
        raise InvalidConnection(f"user of context {name!r} has no token: only bearer-token users are supported")
    if not isinstance(user["token"], str):
        raise InvalidConnection(f"the token of the user of context {name!r} is not text")
    ca_pem = ""
    if cluster.get("certificate-authority-data"):
        try:
            ca_pem = base64.b64decode(cluster["certificate-authority-data"], validate=True).decode()
        except (ValueError, TypeError):
            raise InvalidConnection("certificate-authority-data is not base64 PEM") from None
    return ClusterConnection(server=cluster["server"], token=user["token"], ca_pem=ca_pem)


MAX_YAML_ALIASES = 32  # kubeconfigs written by kubectl or a cloud's CLI use none


class _KubeconfigLoader(yaml.SafeLoader):
    """yaml.SafeLoader, refusing a document with more than MAX_YAML_ALIASES aliases: a few hundred bytes of aliases
    and merge keys can stand for a document too large to build."""

    aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise InvalidConnection(f"the kubeconfig uses more than {MAX_YAML_ALIASES} YAML aliases (*name)")
        return super().compose_node(parent, index)  # type: ignore[arg-type]


def _named(config: dict[str, Any], section: str) -> dict[str, dict[str, Any]]:
    """A kubeconfig section (clusters, users or contexts): a list of {name, <singular>: {...}} → {name: {...}}."""
    entries = config.get(section)
    if entries is None:
        return {}
    if not isinstance(entries, list):
        raise InvalidConnection(f"{section} in the kubeconfig must be a list")
    singular = section[:-1]
    found: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise InvalidConnection(f"every entry of {section} in the kubeconfig must be a mapping with a name")
        body = entry.get(singular) or {}
        if not isinstance(body, dict):
            raise InvalidConnection(f"{section}: the {singular} of {entry['name'][:100]!r} must be a mapping")
        found[entry["name"]] = body
    return found


def applied_hash(obj: Object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:32]


class KubeCluster:
    """The cluster API at connection.server, reached at the address it resolved to when this was made (so a name that
    resolves differently later cannot lead requests elsewhere), and only if that address is allowed (see resolve)."""

    def __init__(
        self,
        connection: ClusterConnection,
        *,
        retry: RetryPolicy | None = None,
        stats: CallStats | None = None,
        timeout: float = 15,
        permitted_networks: Iterable[IPNetwork] = (),
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        deadline: float | None = None,
    ) -> None:
        """timeout: seconds for one call, from connecting to the answer's last byte; deadline: a time.monotonic()
        instant no call goes past (a probe's, for all its calls); max_response_bytes: the largest answer read."""
        parts = urlsplit(connection.server)
        assert parts.hostname, "ClusterConnection has checked the URL"
        address = resolve(parts.hostname, parts.port or 443, permitted_networks)
        literal = f"[{address}]" if address.version == 6 else str(address)
        config = Configuration(host=f"https://{literal}:{parts.port or 443}")
        if parts.hostname.strip("[]") != str(address):
            config.tls_server_name = parts.hostname  # SNI and certificate check against the name, not the address
        config.ca_cert_data = connection.ca_pem or None
        config.retries = False
        self.host = connection.server.rstrip("/")
        self.base_url = config.host
        self.rest = RESTClientObject(config)
        # Connections whose sockets are shut down when the deadline of the call using them passes.
        self.rest.pool_manager.pool_classes_by_scheme = {
            **self.rest.pool_manager.pool_classes_by_scheme,
            "https": _WatchedHTTPSConnectionPool,
        }
        self.token = connection.token
        self.timeout = timeout
        self.deadline = deadline
        self.max_response_bytes = max_response_bytes
        self.retry = retry or RetryPolicy()
        self.stats = stats if stats is not None else CallStats()

    def close(self) -> None:
        self.rest.close()

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        content_type: str = "application/json",
        text: bool = False,
    ) -> Any:
        """The decoded JSON answer (with text, the answer as text), None for 404; ProviderError for anything else that
        is not 2xx."""
        accept = "text/plain" if text else "application/json"
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": accept,
            "Accept-Encoding": "identity",
            "Content-Type": content_type,
        }
        if body is not None and not isinstance(body, str | bytes):
            body = json.dumps(body)
        what = f"{method} {path.split('?')[0]}"

        def send() -> tuple[int, bytes]:
            self.stats.count("kubernetes", method)
            seconds = self.timeout if self.deadline is None else min(self.timeout, self.deadline - time.monotonic())
            if seconds <= 0:
                raise _TimedOut(self.timeout)
            with _CallDeadline(seconds) as deadline:
                try:
                    response = self.rest.pool_manager.request(
                        method,
                        self.base_url + path,
                        body=body,
                        headers=headers,
                        timeout=urllib3.Timeout(connect=seconds, read=seconds),
                        retries=False,
                        redirect=False,
                        preload_content=False,
                        decode_content=False,
                    )
                    data = _read_capped(response, self.max_response_bytes)
                except (urllib3.exceptions.HTTPError, OSError):
                    if deadline.expired:
                        raise _TimedOut(seconds) from None
                    raise
                if deadline.expired:  # what was read may be cut short
                    raise _TimedOut(seconds)
            if response.status == 429:
                self.stats.throttled("kubernetes", method)
            if response.status >= 500 or response.status in (409, 429) or _terminating(response.status, data):
                raise _Unavailable(response.status, _status_message(data))
            return response.status, data

        try:
            status, data = call_with_retry(
                send, policy=self.retry, is_transient=_is_transient, what=f"the cluster API at {self.host}"
            )
        except _Unavailable as exc:
            detail = f" ({exc.message})" if exc.message else ""
            raise ProviderError(
                f"the cluster API at {self.host} answered {exc.status}{detail}; will retry",
                service="kubernetes",
                permanent=False,
            ) from None
        except _TimedOut as exc:
            raise ProviderError(
                f"the cluster API at {self.host} did not answer {what} within {exc.seconds:g} s; will retry",
                service="kubernetes",
                permanent=False,
                code=TIMED_OUT,
            ) from None
        except _TooLarge:
            raise ProviderError(
                f"the cluster API at {self.host} answered {what} with more than {self.max_response_bytes} bytes "
                "(ORGDNS_CLUSTER_MAX_RESPONSE_BYTES): the answer was not read",
                service="kubernetes",
                permanent=True,
                code=TOO_LARGE,
            ) from None
        except urllib3.exceptions.SSLError:
            raise ProviderError(
                f"TLS verification of {self.host} failed: check the cluster CA certificate",
                service="kubernetes",
                permanent=True,
                code=UNREACHABLE,
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ProviderError(
                f"cannot reach the cluster API at {self.host} ({type(exc).__name__})",
                service="kubernetes",
                permanent=False,
                code=UNREACHABLE,
            ) from None
        if status == 404:
            return None
        if status == 401:
            raise ProviderError(
                f"the cluster at {self.host} refused our token (401 Unauthorized): it was revoked, or its ServiceAccount "
                "deleted (orgdns's, with ExternalDNS's namespace); apply orgdns's bootstrap manifest and give orgdns "
                "a valid token",
                service="kubernetes",
                permanent=True,
                code=UNAUTHORIZED,
            )
        if not 200 <= status < 300:  # redirects are not followed: they could lead past resolve()'s check
            message = _status_message(data)
            raise ProviderError(
                f"the cluster refused {method} {path}: {status} {message}",
                service="kubernetes",
                permanent=True,
                code=FORBIDDEN if status == 403 else "",
            )
        if text:
            return data.decode(errors="replace")
        if not data:
            return {}
        try:
            return parse_json(data)
        except ValueError as exc:
            raise ProviderError(
                f"{self.host} did not answer {what} with JSON ({exc}): it is not a Kubernetes API server",
                service="kubernetes",
                permanent=True,
                code=NOT_KUBERNETES,
            ) from None

    def version(self) -> str:
        """The server's version (e.g. v1.32.0); ProviderError if it does not answer like a Kubernetes API server."""
        found = self.request("GET", "/version")
        if not isinstance(found, dict) or not isinstance(found.get("gitVersion"), str):
            raise ProviderError(
                f"{self.host} does not answer GET /version like a Kubernetes API server",
                service="kubernetes",
                permanent=True,
                code=NOT_KUBERNETES,
            )
        return found["gitVersion"]

    def path(self, kind: str, name: str | None = None, namespace: str | None = None) -> str:
        prefix, plural, namespaced = KINDS[kind]
        path = f"{prefix}/namespaces/{namespace}/{plural}" if namespaced else f"{prefix}/{plural}"
        return f"{path}/{name}" if name else path

    def get(self, kind: str, name: str | None, namespace: str | None = None) -> Object | None:
        found = self.request("GET", self.path(kind, name, namespace))
        if found is not None and not _is_object(found):
            raise self._not_kubernetes(f"GET {self.path(kind, name, namespace)}", "an object with metadata")
        return found

    def list(self, kind: str, namespace: str | None, selector: str) -> list[Object]:
        found = self.request("GET", f"{self.path(kind, namespace=namespace)}?labelSelector={selector}")
        items = found.get("items") if isinstance(found, dict) else None
        if not isinstance(items, list) or not all(_is_object(item) for item in items):
            raise self._not_kubernetes(f"GET {self.path(kind, namespace=namespace)}", "a list of objects")
        return items

    def _not_kubernetes(self, what: str, wanted: str) -> ProviderError:
        return ProviderError(
            f"{self.host} did not answer {what} with {wanted}: it does not answer like a Kubernetes API server",
            service="kubernetes",
            permanent=True,
            code=NOT_KUBERNETES,
        )

    def apply(self, obj: Object) -> Literal["created", "updated", "repaired", "unchanged"]:
        """Server-side apply obj as our field manager, forcing our fields back where someone changed them by hand.

        Returns created, updated (we changed what we want), repaired (someone else had changed fields we own) or
        unchanged. An existing object that is not labelled managed-by like obj is someone else's: refused, never
        replaced.
        """
        obj = json.loads(json.dumps(obj))
        meta = obj["metadata"]
        wanted = applied_hash(obj)
        meta.setdefault("annotations", {})[APPLIED_HASH] = wanted
        kind, name, namespace = obj["kind"], meta["name"], meta.get("namespace")
        current = self.get(kind, name, namespace)
        owner = (meta.get("labels") or {}).get(MANAGED_BY)
        if current is not None and _labels(current).get(MANAGED_BY) != owner:
            where = f"{namespace}/{name}" if namespace else name
            raise ProviderError(
                f"{kind} {where} already exists in the cluster and is not managed by {owner}: it is left alone; "
                "remove or rename it, then retry",
                service="kubernetes",
                permanent=True,
            )
        applied = self.request(
            "PATCH",
            f"{self.path(kind, name, namespace)}?fieldManager={FIELD_MANAGER}&force=true",
            body=json.dumps(obj),
            content_type="application/apply-patch+yaml",
        )
        if applied is None:  # 404: its namespace does not exist
            raise ProviderError(
                f"cannot apply {kind} {name}: namespace {namespace} does not exist in the cluster",
                service="kubernetes",
                permanent=True,
                code=NO_NAMESPACE,
            )
        if current is None:
            return "created"
        if applied["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"]:
            return "unchanged"
        if (current["metadata"].get("annotations") or {}).get(APPLIED_HASH) == wanted:
            return "repaired"
        return "updated"

    def wait_for_rollout(self, name: str, namespace: str, timeout: float, poll: float = 1.0) -> None:
        """Until the Deployment's latest version is available; ProviderError saying what stops it otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            deployment = self.get("Deployment", name, namespace)
            if deployment is not None and _rolled_out(deployment):
                return
            if time.monotonic() > deadline:
                raise ProviderError(
                    f"{name} in namespace {namespace} did not become available within {timeout}s: "
                    f"{self.rollout_problem(deployment, namespace)}",
                    service="kubernetes",
                    permanent=True,
                )
            time.sleep(poll)

    def rollout_problem(self, deployment: Object | None, namespace: str) -> str:
        """What a person can act on: the ReplicaSet's failure, the pod's waiting reason and last log line."""
        if deployment is None:
            return "the Deployment is gone"
        selector = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
        for replica_set in self.list("ReplicaSet", namespace, selector):
            for condition in replica_set.get("status", {}).get("conditions", []):
                if condition["type"] == "ReplicaFailure" and condition["status"] == "True":
                    return f"{condition.get('reason', 'ReplicaFailure')}: {condition.get('message', '')}"[:500]
        pods = self.list("Pod", namespace, selector)
        if not pods:
            return "no pod was created"
        return pods_problem(pods) or "its pods are not ready"

    def service_proxy_get(self, namespace: str, service: str, path: str) -> str:
        """GET path of a Service through the API server's proxy, as text; service in the proxy's form, e.g.
        http:external-dns:7979 (scheme, name and port: the name RBAC sees, hence what resourceNames pin)."""
        found = self.request(
            "GET", f"/api/v1/namespaces/{namespace}/services/{service}/proxy/{path.lstrip('/')}", text=True
        )
        if found is None:
            raise ProviderError(
                f"service {service} in {namespace} or its /{path.lstrip('/')} is gone",
                service="kubernetes",
                permanent=False,
            )
        return found

    def pod_proxy_get(self, namespace: str, pod: str, port: int, path: str) -> str:
        """GET path of the pod's port through the API server's proxy, as text."""
        found = self.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy/{path.lstrip('/')}", text=True
        )
        if found is None:
            raise ProviderError(
                f"pod {pod} in {namespace} or its /{path.lstrip('/')} is gone", service="kubernetes", permanent=False
            )
        return found

    def wait_until_gone(
        self,
        kind: str,
        name: str | None = None,
        namespace: str | None = None,
        selector: str | None = None,
        timeout: float = 120,
        poll: float = 1.0,
    ) -> None:
        """Until the object (or every object of the kind matching selector in namespace) no longer exists."""
        deadline = time.monotonic() + timeout
        while self.list(kind, namespace, selector) if selector else (self.get(kind, name, namespace) is not None):
            if time.monotonic() > deadline:
                what = f"{kind}s {selector} in {namespace}" if selector else f"{kind} {name}"
                raise ProviderError(
                    f"{what} still terminating after {timeout}s; will retry", service="kubernetes", permanent=False
                )
            time.sleep(poll)

    def may(self, access: Access) -> bool:
        """Whether the API server would allow this token the request (one SelfSubjectAccessReview): RBAC's
        namespaced rules and resourceNames included."""
        path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        answer = self.request("POST", path, body=access.review())
        status = answer.get("status") if isinstance(answer, dict) else None
        if not isinstance(status, dict):
            raise self._not_kubernetes(f"POST {path}", "an access review")
        return status.get("allowed") is True

    def delete(self, kind: str, name: str, namespace: str | None = None, managed_by: str | None = None) -> bool:
        """Delete the object if it is there (and, given managed_by, labelled so). True if it was deleted."""
        if managed_by is not None:
            current = self.get(kind, name, namespace)
            if current is None or _labels(current).get(MANAGED_BY) != managed_by:
                return False
        return self.request("DELETE", self.path(kind, name, namespace)) is not None


def pods_problem(pods: Iterable[Object]) -> str:
    """What a person can act on about the first pod whose container waits or has ended (its reason, restarts and last
    log line), or "" if none does."""
    for pod in pods:
        for status in pod.get("status", {}).get("containerStatuses", []):
            waiting = status.get("state", {}).get("waiting")
            last = status.get("lastState", {}).get("terminated") or {}
            if waiting or last:
                parts = [f"pod {pod['metadata']['name']}"]
                if waiting:
                    parts.append(f"{waiting.get('reason')}: {waiting.get('message', '')}".strip(": "))
                if status.get("restartCount"):
                    parts.append(f"restarted {status['restartCount']} times")
                if last.get("message"):
                    parts.append(f"last log line: {last['message'].strip().splitlines()[-1]}")
                return "; ".join(parts)[:500]
    return ""


def _is_object(found: Any) -> bool:
    return isinstance(found, dict) and isinstance(found.get("metadata"), dict)


def _labels(obj: Object) -> dict[str, str]:
    return obj["metadata"].get("labels") or {}


def _rolled_out(deployment: Object) -> bool:
    """kubectl rollout status's rule: the latest generation observed, every replica updated and available."""
    spec, status = deployment["spec"], deployment.get("status", {})
    wanted = spec.get("replicas", 1)
    return (
        status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 1)
        and status.get("updatedReplicas", 0) == wanted
        and status.get("replicas", 0) == wanted
        and status.get("availableReplicas", 0) == wanted
    )


class _Unavailable(Exception):
    def __init__(self, status: int, message: str = "") -> None:
        self.status = status
        self.message = message


def _terminating(status: int, data: bytes) -> bool:
    """403 for content created in a namespace that is being deleted: it will be gone (and creatable) shortly."""
    return status == 403 and "being terminated" in _status_message(data)


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, _Unavailable | _TimedOut):
        return True
    if isinstance(exc, urllib3.exceptions.SSLError):
        return False
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)


def _status_message(data: bytes) -> str:
    try:
        message = parse_json(data).get("message", "")
    except (ValueError, AttributeError):
        return ""
    return message[:300] if isinstance(message, str) else ""


def parse_json(data: bytes) -> Any:
    """The JSON value of data; ValueError saying why if it is not JSON, or nests deeper than MAX_JSON_DEPTH."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError:
        raise ValueError("not valid JSON") from None
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return value


class _TimedOut(Exception):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class _TooLarge(Exception):
    pass


def _read_capped(response: urllib3.BaseHTTPResponse, limit: int) -> bytes:
    """The body of response, read in chunks; _TooLarge as soon as it (or its Content-Length) is past limit bytes, and
    the connection is closed rather than drained."""
    try:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _TooLarge
        chunks, size = [], 0
        while chunk := response.read(READ_CHUNK, decode_content=False):
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
    except BaseException:
        response.close()
        raise
    finally:
        response.release_conn()
    return b"".join(chunks)


class _CallDeadline:
    """One call's deadline, however the server trickles its answer: when it passes, the sockets the call uses are shut
    down, so that a read waiting on them returns at once (a timeout of the socket bounds one read only)."""

    current = threading.local()

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> "_CallDeadline":
        _CallDeadline.current.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        _CallDeadline.current.deadline = None
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    @classmethod
    def watch(cls, sock: socket.socket | None) -> None:
        """Shut sock down when the current call's deadline passes (at once if it has)."""
        deadline = getattr(cls.current, "deadline", None)
        if deadline is None or sock is None:
            return
        # A descriptor of our own to the same socket: shutting it down stops every read of the connection, and
        # closing it later leaves the connection (kept for the next call) open.
        watched = socket.socket(fileno=os.dup(sock.fileno()))
        with deadline._lock:
            deadline._sockets.append(watched)
            if deadline.expired:
                _shut_down(watched)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    """An HTTPS connection whose socket is watched by the deadline of the call using it (see _CallDeadline)."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _CallDeadline.watch(sock)  # before the TLS handshake, which a server may trickle too
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _CallDeadline.watch(self.sock)  # a connection kept from an earlier call (None: it connects first)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection
