"""An in-memory stand-in for a Kubernetes API server.

It speaks enough of the Kubernetes REST API for the official Python client and
for kubectl: discovery, list/get/create/replace/patch/delete on a fixed set of
resources, label and field selectors, bearer-token auth and optional TLS.
Everything lives in memory; there is no watch, no admission and no garbage
collection beyond deleting a namespace's contents together with it.

Run it standalone with ``python -m devstack.kubeapi --port N [--token T]
[--tls] [--ca-file PATH]``.
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime
import ipaddress
import json
import random
import re
import signal
import ssl
import tempfile
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
PATH_SEGMENT = re.compile(r"(?!\.\.?$)[^/%]+")  # RBAC names, e.g. "system:controller"

VERBS = ["create", "delete", "get", "list", "patch", "update"]


def api_path(group_version: str) -> str:
    """The URL path under which a group version is served: core at /api/v1, the rest under /apis."""
    return f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    name_pattern: re.Pattern[str] = DNS1123_SUBDOMAIN
    returns_deleted_object: bool = False  # DELETE answers with the object rather than a Success Status

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def discovery(self) -> dict:
        entry = {"name": self.plural, "singularName": self.kind.lower(), "namespaced": self.namespaced,
                 "kind": self.kind, "verbs": VERBS}
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        return entry


RESOURCES = [
    Resource("", "v1", "namespaces", "Namespace", False, ("ns",), DNS1123_LABEL, returns_deleted_object=True),
    Resource("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    Resource("", "v1", "pods", "Pod", True, ("po",), returns_deleted_object=True),
    Resource("", "v1", "secrets", "Secret", True),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",), returns_deleted_object=True),
    Resource("", "v1", "services", "Service", True, ("svc",), DNS1123_LABEL, returns_deleted_object=True),
    Resource("apps", "v1", "deployments", "Deployment", True, ("deploy",)),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, (), PATH_SEGMENT),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False, (), PATH_SEGMENT),
]
RESOURCES_BY_PLURAL = {resource.plural: resource for resource in RESOURCES}
GROUP_VERSIONS = list(dict.fromkeys(resource.group_version for resource in RESOURCES))

REASONS = {
    400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 405: "MethodNotAllowed", 409: "Conflict",
    415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
    503: "ServiceUnavailable", 504: "Timeout",
}


class APIError(Exception):
    """An error answered as a Kubernetes Status object with the same HTTP code."""

    def __init__(self, code: int, message: str, reason: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details

    def status(self) -> dict:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": str(self), "reason": self.reason, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(resource: Resource, name: str) -> dict:
    details = {"name": name, "kind": resource.plural}
    if resource.group:
        details["group"] = resource.group
    return details


def not_found(resource: Resource, name: str) -> APIError:
    return APIError(404, f'{resource.plural} "{name}" not found', details=_details(resource, name))


def invalid(resource: Resource, name: str, message: str) -> APIError:
    return APIError(422, f'{resource.kind} "{name}" is invalid: {message}', details=_details(resource, name))


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- selectors -------------------------------------------------------------

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_EXISTS = re.compile(rf"(?P<negated>!?)\s*(?P<key>{_KEY})")
_EQUALITY = re.compile(rf"(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})")
_SET = re.compile(rf"(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)")

Predicate = Callable[[dict], bool]


def _label_requirement(text: str) -> Predicate:
    if match := _SET.fullmatch(text):
        key, values = match["key"], {value.strip() for value in match["values"].split(",")}
        if match["op"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _EQUALITY.fullmatch(text):
        key, value = match["key"], match["value"]
        if match["op"] == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _EXISTS.fullmatch(text):
        key, negated = match["key"], bool(match["negated"])
        return lambda labels: (key in labels) != negated
    raise APIError(400, f"unable to parse requirement: {text!r}")


def parse_label_selector(selector: str) -> Predicate:
    """Parse a label selector such as ``app=web,tier in (a,b),!legacy`` into a predicate on labels."""
    parts = [part.strip() for part in re.split(r",(?![^(]*\))", selector) if part.strip()]
    requirements = [_label_requirement(part) for part in parts]
    return lambda labels: all(requirement(labels) for requirement in requirements)


def parse_field_selector(selector: str) -> Predicate:
    """Parse a field selector on ``metadata.name``/``metadata.namespace`` into a predicate on objects."""
    requirements = []
    for part in filter(None, (part.strip() for part in selector.split(","))):
        match = re.fullmatch(r"metadata\.(?P<field>name|namespace)\s*(?P<op>==|=|!=)\s*(?P<value>.*)", part)
        if not match:
            raise APIError(400, f'unsupported field selector {part!r}: only "metadata.name" and '
                                '"metadata.namespace" are supported')
        field, value, equal = match["field"], match["value"].strip(), match["op"] != "!="
        requirements.append(lambda obj, field=field, value=value, equal=equal:
                            (obj["metadata"].get(field, "") == value) == equal)
    return lambda obj: all(requirement(obj) for requirement in requirements)


# --- patches ---------------------------------------------------------------

def merge_patch(target, patch):
    """Apply an RFC 7386 JSON merge patch; ``target`` is not modified."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _patch_error(message: str) -> APIError:
    return APIError(422, f"the JSON patch could not be applied: {message}")


def _split_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise _patch_error(f"invalid JSON pointer {pointer!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")]


def _child(container, token: str, pointer: str):
    try:
        return container[int(token)] if isinstance(container, list) else container[token]
    except (KeyError, IndexError, ValueError, TypeError):
        raise _patch_error(f"path {pointer!r} does not exist") from None


def _list_index(container: list, token: str, pointer: str, inserting: bool) -> int:
    if inserting and token == "-":
        return len(container)
    if not token.isdigit() or int(token) > len(container) - (0 if inserting else 1):
        raise _patch_error(f"array index in {pointer!r} is out of range")
    return int(token)


def json_patch(document: dict, operations: list) -> dict:
    """Apply an RFC 6902 JSON patch (add, remove, replace, move, copy, test); ``document`` is not modified."""
    document = copy.deepcopy(document)

    def parent_of(pointer: str):
        tokens = _split_pointer(pointer)
        if not tokens:
            raise _patch_error("operations on the whole document are not supported")
        parent = document
        for token in tokens[:-1]:
            parent = _child(parent, token, pointer)
        if not isinstance(parent, (dict, list)):
            raise _patch_error(f"path {pointer!r} does not exist")
        return parent, tokens[-1]

    def get(pointer: str):
        parent, token = parent_of(pointer)
        return _child(parent, token, pointer)

    def add(pointer: str, value) -> None:
        parent, token = parent_of(pointer)
        if isinstance(parent, list):
            parent.insert(_list_index(parent, token, pointer, inserting=True), value)
        else:
            parent[token] = value

    def remove(pointer: str):
        parent, token = parent_of(pointer)
        if isinstance(parent, list):
            return parent.pop(_list_index(parent, token, pointer, inserting=False))
        if token not in parent:
            raise _patch_error(f"path {pointer!r} does not exist")
        return parent.pop(token)

    if not isinstance(operations, list):
        raise APIError(400, "a JSON patch must be a list of operations")
    for operation in operations:
        if not isinstance(operation, dict) or "path" not in operation:
            raise _patch_error(f"malformed operation {operation!r}")
        op, path = operation.get("op"), operation["path"]
        if op == "add":
            add(path, operation.get("value"))
        elif op == "remove":
            remove(path)
        elif op == "replace":
            remove(path)
            add(path, operation.get("value"))
        elif op == "move":
            add(path, remove(operation.get("from", "")))
        elif op == "copy":
            add(path, copy.deepcopy(get(operation.get("from", ""))))
        elif op == "test":
            if get(path) != operation.get("value"):
                raise _patch_error(f"test failed: {path!r} does not equal {operation.get('value')!r}")
        else:
            raise _patch_error(f"unsupported operation {op!r}")
    return document


# --- the store -------------------------------------------------------------

def _normalize(resource: Resource, obj: dict) -> None:
    """Apply the defaults and conversions the real API server does on write."""
    if resource.kind == "Secret":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        encoded = {key: base64.b64encode(value.encode()).decode() for key, value in string_data.items()}
        if encoded:
            obj["data"] = {**(obj.get("data") or {}), **encoded}
    elif resource.kind == "Namespace":
        name = obj["metadata"]["name"]
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
    elif resource.kind == "Deployment":
        obj.setdefault("spec", {}).setdefault("replicas", 1)


def _deployment_status(deployment: dict) -> dict:
    """A status that makes every rollout look complete."""
    replicas, timestamp = deployment["spec"]["replicas"], now_rfc3339()
    name = deployment["metadata"]["name"]
    return {
        "observedGeneration": deployment["metadata"]["generation"],
        "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
             "message": "Deployment has minimum availability.",
             "lastUpdateTime": timestamp, "lastTransitionTime": timestamp},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
             "message": f'ReplicaSet "{name}" has successfully progressed.',
             "lastUpdateTime": timestamp, "lastTransitionTime": timestamp},
        ],
    }


class Store:
    """Objects keyed by resource plural, then by (namespace, name); "" is the namespace of cluster-scoped ones."""

    def __init__(self):
        self.lock = threading.RLock()
        self._objects: dict[str, dict[tuple[str, str], dict]] = {plural: {} for plural in RESOURCES_BY_PLURAL}
        self._revision = 0

    def list(self, resource: Resource, namespace: str | None, label_selector: str = "",
             field_selector: str = "") -> dict:
        labels_match = parse_label_selector(label_selector)
        fields_match = parse_field_selector(field_selector)
        with self.lock:
            items = [copy.deepcopy(obj) for (obj_namespace, _), obj in sorted(self._objects[resource.plural].items())
                     if namespace in (None, obj_namespace)
                     and labels_match(obj["metadata"].get("labels") or {}) and fields_match(obj)]
            return {"apiVersion": resource.group_version, "kind": f"{resource.kind}List",
                    "metadata": {"resourceVersion": str(self._revision)}, "items": items}

    def find(self, resource: Resource, namespace: str, name: str) -> dict | None:
        with self.lock:
            return copy.deepcopy(self._objects[resource.plural].get((namespace, name)))

    def get(self, resource: Resource, namespace: str, name: str) -> dict:
        obj = self.find(resource, namespace, name)
        if obj is None:
            raise not_found(resource, name)
        return obj

    def create(self, resource: Resource, namespace: str, obj: dict) -> dict:
        with self.lock:
            metadata = self._prepare(resource, namespace, obj)
            if not metadata.get("name") and metadata.get("generateName"):
                suffix = "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
                metadata["name"] = f"{metadata['generateName']}{suffix}"
            name = metadata.get("name") or ""
            if not name:
                raise invalid(resource, "", "metadata.name: Required value: name or generateName is required")
            if not resource.name_pattern.fullmatch(name):
                raise invalid(resource, name, f"metadata.name: Invalid value: {name!r}: not a valid name")
            if resource.namespaced and ("", namespace) not in self._objects["namespaces"]:
                raise not_found(RESOURCES_BY_PLURAL["namespaces"], namespace)
            if (namespace, name) in self._objects[resource.plural]:
                raise APIError(409, f'{resource.plural} "{name}" already exists', "AlreadyExists",
                               _details(resource, name))
            return self._commit(resource, namespace, obj, previous=None)

    def update(self, resource: Resource, namespace: str, name: str, obj: dict) -> dict:
        """Replace a stored object; a resourceVersion in ``obj`` must match the stored one."""
        with self.lock:
            previous = self._objects[resource.plural].get((namespace, name))
            if previous is None:
                raise not_found(resource, name)
            metadata = self._prepare(resource, namespace, obj)
            metadata.setdefault("name", name)
            if metadata["name"] != name:
                raise APIError(400, f"the name of the object ({metadata['name']}) does not match the name "
                                    f"on the URL ({name})")
            expected = metadata.get("resourceVersion")
            if expected is not None and expected != previous["metadata"]["resourceVersion"]:
                raise APIError(409, f'Operation cannot be fulfilled on {resource.plural} "{name}": the object '
                                    "has been modified; please apply your changes to the latest version and try "
                                    "again", "Conflict", _details(resource, name))
            return self._commit(resource, namespace, obj, previous)

    def delete(self, resource: Resource, namespace: str, name: str) -> dict:
        with self.lock:
            obj = self._objects[resource.plural].pop((namespace, name), None)
            if obj is None:
                raise not_found(resource, name)
            self._revision += 1
            if resource.kind == "Namespace":
                for plural, objects in self._objects.items():
                    if RESOURCES_BY_PLURAL[plural].namespaced:
                        for key in [key for key in objects if key[0] == name]:
                            del objects[key]
            return obj

    @staticmethod
    def _prepare(resource: Resource, namespace: str, obj: dict) -> dict:
        """Check the envelope of an incoming object and return its metadata."""
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
            raise APIError(400, "the request body must be a JSON object with an object as metadata")
        for field, expected in (("kind", resource.kind), ("apiVersion", resource.group_version)):
            if obj.setdefault(field, expected) != expected:
                raise APIError(400, f"{field} {obj[field]!r} does not match the URL, expected {expected!r}")
        metadata = obj.setdefault("metadata", {})
        if resource.namespaced:
            if metadata.setdefault("namespace", namespace) != namespace:
                raise APIError(400, "the namespace of the provided object does not match the namespace sent "
                                    "on the request")
        else:
            metadata.pop("namespace", None)
        return metadata

    def _commit(self, resource: Resource, namespace: str, obj: dict, previous: dict | None) -> dict:
        _normalize(resource, obj)
        metadata = obj["metadata"]
        self._revision += 1
        metadata["resourceVersion"] = str(self._revision)
        if previous is None:
            metadata.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339(), generation=1)
        else:
            old = previous["metadata"]
            spec_changed = obj.get("spec") != previous.get("spec")
            metadata.update(uid=old["uid"], creationTimestamp=old["creationTimestamp"],
                            generation=old["generation"] + (1 if spec_changed else 0))
        if resource.kind == "Deployment":
            obj["status"] = _deployment_status(obj)
        self._objects[resource.plural][(namespace, metadata["name"])] = obj
        return copy.deepcopy(obj)


# --- HTTP ------------------------------------------------------------------

def _discovery_documents() -> dict[str, dict]:
    """The documents served at the discovery paths, by path."""
    groups = {}
    for resource in RESOURCES:
        if resource.group:
            version = {"groupVersion": resource.group_version, "version": resource.version}
            groups[resource.group] = {"name": resource.group, "versions": [version], "preferredVersion": version}
    documents = {
        "/version": {"major": "1", "minor": "32", "gitVersion": "v1.32.0-devstack", "gitCommit": "0" * 40,
                     "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.0",
                     "compiler": "gc", "platform": "linux/amd64"},
        "/api": {"kind": "APIVersions", "versions": ["v1"],
                 "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]},
        "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": list(groups.values())},
    }
    for name, group in groups.items():
        documents[f"/apis/{name}"] = {"kind": "APIGroup", "apiVersion": "v1", **group}
    for group_version in GROUP_VERSIONS:
        documents[api_path(group_version)] = {
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": [r.discovery() for r in RESOURCES if r.group_version == group_version]}
    return documents


DISCOVERY = _discovery_documents()


def _route(path: str) -> tuple[Resource, str | None, str | None]:
    """Map a resource path to (resource, namespace, name); namespace is None for cluster-scoped or cluster-wide."""
    for group_version in GROUP_VERSIONS:
        prefix = api_path(group_version) + "/"
        if path.startswith(prefix):
            parts = [unquote(part) for part in path[len(prefix):].strip("/").split("/")]
            break
    else:
        raise APIError(404, "the server could not find the requested resource")
    namespace = None
    if parts[0] == "namespaces" and len(parts) >= 3:
        namespace, parts = parts[1], parts[2:]
    resource = RESOURCES_BY_PLURAL.get(parts[0])
    if (resource is None or resource.group_version != group_version or len(parts) > 2
            or (namespace is not None and not resource.namespaced)
            or (namespace is None and resource.namespaced and len(parts) == 2)):
        raise APIError(404, "the server could not find the requested resource")
    return resource, namespace, parts[1] if len(parts) == 2 else None


def _decode_body(body: bytes, allow_yaml: bool = False):
    try:
        return json.loads(body)
    except ValueError:
        if allow_yaml:
            try:
                return yaml.safe_load(body)
            except yaml.YAMLError:
                pass
    raise APIError(400, "the request body could not be decoded")


class KubeAPIServer:
    """A threaded, in-memory Kubernetes API server; see the module docstring."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None, tls: bool = False):
        self.token = token
        self._store = Store()
        self.requests: list[tuple[str, str]] = []  # (method, path without the query string)
        self._failures: list[int] = []
        self._requests_lock = threading.Lock()
        self._httpd = _HTTPServer((host, port), _Handler, api=self)
        self.ca_pem: str | None = None
        if tls:
            self.ca_pem, self._httpd.ssl_context = _tls_context(host)
        scheme = "https" if tls else "http"
        url_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        self.url = f"{scheme}://{url_host}:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="kubeapi", daemon=True)

    def start(self) -> KubeAPIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` requests with ``status``, as a briefly unavailable server would."""
        with self._requests_lock:
            self._failures.extend([status] * count)

    def objects(self, resource: str, namespace: str | None = None) -> list[dict]:
        """The stored objects of a resource (by plural), optionally only those in one namespace."""
        return self._store.list(RESOURCES_BY_PLURAL[resource], namespace)["items"]

    @property
    def request_count(self) -> int:
        return len(self.requests)

    def _handle(self, method: str, target: str, headers, body: bytes) -> tuple[int, dict]:
        url = urlsplit(target)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        with self._requests_lock:
            self.requests.append((method, url.path))
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            raise APIError(failure, "the server is currently unable to handle the request")
        if self.token is not None and headers.get("Authorization") != f"Bearer {self.token}":
            raise APIError(401, "Unauthorized")
        path = url.path.rstrip("/") or "/"
        if path in DISCOVERY:
            if method != "GET":
                raise APIError(405, f"{method} is not allowed on {path}")
            return 200, DISCOVERY[path]
        resource, namespace, name = _route(path)
        content_type = headers.get("Content-Type", "").split(";")[0].strip()
        return self._serve(method, resource, namespace, name, query, content_type, body)

    def _serve(self, method: str, resource: Resource, namespace: str | None, name: str | None,
               query: dict[str, str], content_type: str, body: bytes) -> tuple[int, dict]:
        store, scope = self._store, namespace or ""
        if method in ("POST", "PUT") and content_type not in ("", "application/json"):
            # e.g. the protobuf that kubectl's generator commands (kubectl create namespace ...) send
            raise APIError(415, f"the content type {content_type!r} is not supported, send application/json")
        if name is None and method == "GET":
            if query.get("watch") in ("1", "true"):
                raise APIError(405, "watch is not supported by this API server")
            return 200, store.list(resource, namespace, query.get("labelSelector", ""),
                                   query.get("fieldSelector", ""))
        if name is None and method == "POST" and (namespace is not None or not resource.namespaced):
            return 201, store.create(resource, scope, _decode_body(body))
        if name is not None and method == "GET":
            return 200, store.get(resource, scope, name)
        if name is not None and method == "PUT":
            return 200, store.update(resource, scope, name, _decode_body(body))
        if name is not None and method == "PATCH":
            return self._patch(resource, scope, name, content_type, body)
        if name is not None and method == "DELETE":
            deleted = store.delete(resource, scope, name)
            if resource.returns_deleted_object:
                return 200, deleted
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                         "details": {**_details(resource, name), "uid": deleted["metadata"]["uid"]}}
        raise APIError(405, f"{method} is not allowed on this path")

    def _patch(self, resource: Resource, namespace: str, name: str, content_type: str,
               body: bytes) -> tuple[int, dict]:
        store = self._store
        with store.lock:
            if content_type == "application/apply-patch+yaml":
                patch = _decode_body(body, allow_yaml=True)
                if not isinstance(patch, dict):
                    raise APIError(400, "an apply patch must be an object")
                current = store.find(resource, namespace, name)
                if current is not None:
                    return 200, store.update(resource, namespace, name, merge_patch(current, patch))
                if patch.setdefault("metadata", {}).setdefault("name", name) != name:
                    raise APIError(400, "the name of the object does not match the name on the URL")
                return 201, store.create(resource, namespace, patch)
            current = store.get(resource, namespace, name)
            if content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                patched = merge_patch(current, _decode_body(body))
            elif content_type == "application/json-patch+json":
                patched = json_patch(current, _decode_body(body))
            else:
                raise APIError(415, f"the content type {content_type!r} is not a supported patch type")
            return 200, store.update(resource, namespace, name, patched)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, handler, api: KubeAPIServer):
        self.api = api
        self.ssl_context: ssl.SSLContext | None = None
        super().__init__(address, handler)

    def get_request(self):
        sock, address = super().get_request()
        if self.ssl_context is not None:
            # The handshake runs in the request thread, so a stalled client cannot block accept().
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request, client_address):
        pass  # clients that drop the connection or reject the certificate are expected


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def log_message(self, format, *args):
        pass

    def _dispatch(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            code, payload = self.server.api._handle(self.command, self.path, self.headers, body)
        except APIError as error:
            code, payload = error.code, error.status()
        except Exception as error:  # a bug in this server: answer it rather than dropping the connection
            code, payload = 500, APIError(500, f"{type(error).__name__}: {error}").status()
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


# --- TLS -------------------------------------------------------------------

def _tls_context(host: str) -> tuple[str, ssl.SSLContext]:
    """Create a CA and a serving certificate it signs; return the CA's PEM and a server context."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def key_usage(**enabled) -> x509.KeyUsage:
        flags = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                 "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"]
        return x509.KeyUsage(**{flag: enabled.get(flag, False) for flag in flags})

    now = datetime.datetime.now(datetime.UTC)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "devstack kubeapi CA")])
    ca_key_id = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())

    def builder(subject: x509.Name, public_key) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=365))
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))

    ca_cert = (builder(ca_name, ca_key.public_key())
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(key_usage(key_cert_sign=True, crl_sign=True), critical=True)
               .sign(ca_key, hashes.SHA256()))
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubeapi")])
    server_cert = (builder(subject, server_key.public_key())
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(key_usage(digital_signature=True), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .add_extension(x509.SubjectAlternativeName(list(dict.fromkeys(names))), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id),
                                  critical=False)
                   .sign(ca_key, hashes.SHA256()))

    pem = serialization.Encoding.PEM
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:
        cert_file, key_file = Path(directory, "server.crt"), Path(directory, "server.key")
        cert_file.write_bytes(server_cert.public_bytes(pem))
        key_file.write_bytes(server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
        context.load_cert_chain(cert_file, key_file)
    return ca_cert.public_bytes(pem).decode(), context


# --- CLI -------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.kubeapi",
                                     description="Serve an in-memory fake Kubernetes API until interrupted.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on every request")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a freshly generated CA")
    parser.add_argument("--ca-file", type=Path, help="write the CA certificate (PEM) here; needs --tls")
    args = parser.parse_args(argv)
    if args.ca_file and not args.tls:
        parser.error("--ca-file requires --tls")

    server = KubeAPIServer(args.host, args.port, token=args.token, tls=args.tls).start()
    if args.ca_file:
        args.ca_file.write_text(server.ca_pem)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    print(f"ready {server.url}", flush=True)
    stopping.wait()
    server.stop()


if __name__ == "__main__":
    main()
