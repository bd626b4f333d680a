"""Real Kubernetes control planes for the local stack (tests, demo, benches), built from Go modules by
devstack/build-cluster.sh: one etcd shared by every cluster (each under its own key prefix), and per cluster
kube-apiserver (RBAC, PodSecurity), kube-controller-manager, kube-scheduler and kwok (one simulated node).

No container runtime runs here. Pods are scheduled and made Running by kwok, except ExternalDNS's: the
ExternalDNSRunner (devstack/podrunner.py) plays the kubelet's part for those and runs the real binary.
"""

import base64
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devstack import podnet
from devstack.faultproxy import FaultProxy
from devstack.podrunner import ExternalDNSRunner
from devstack.processes import free_port, stop
from provisioning.clients import externaldns
from provisioning.clients.kube import ClusterConnection

BUILD_SCRIPT = Path(__file__).resolve().parent / "build-cluster.sh"
VERSIONS = {"etcd": "v3.6.16", "kubernetes": "v1.37.2", "kwok": "v0.8.0", "external-dns": "v0.23.0"}
NODE_NAME = "kwok-node-0"
# ExternalDNS's namespace (orgdns's EXTERNALDNS_NAMESPACE default), made by the bootstrap manifest the tenant applies;
# the ServiceAccount orgdns uses lives there too.
ORGDNS_NAMESPACE = "external-dns"
SYSTEM_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease", ORGDNS_NAMESPACE}
API_GROUPS = {
    "deployments": "/apis/apps/v1",
    "replicasets": "/apis/apps/v1",
    "clusterroles": "/apis/rbac.authorization.k8s.io/v1",
    "clusterrolebindings": "/apis/rbac.authorization.k8s.io/v1",
    "roles": "/apis/rbac.authorization.k8s.io/v1",
    "rolebindings": "/apis/rbac.authorization.k8s.io/v1",
    "ingresses": "/apis/networking.k8s.io/v1",
}
KIND_PLURALS = {
    "Namespace": "namespaces",
    "ServiceAccount": "serviceaccounts",
    "Secret": "secrets",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "Role": "roles",
    "RoleBinding": "rolebindings",
}


def binaries():
    """{name: path} of the cached Go-built binaries, building what is missing (first time only)."""
    cache = Path(os.environ.get("ORGDNS_BIN_CACHE", Path.home() / ".cache/orgdns/bin"))
    wanted = {
        "etcd": f"etcd-{VERSIONS['etcd']}",
        "kube-apiserver": f"kube-apiserver-{VERSIONS['kubernetes']}",
        "kube-controller-manager": f"kube-controller-manager-{VERSIONS['kubernetes']}",
        "kube-scheduler": f"kube-scheduler-{VERSIONS['kubernetes']}",
        "kubectl": f"kubectl-{VERSIONS['kubernetes']}",
        "kwok": f"kwok-{VERSIONS['kwok']}",
        "kwok-stages": f"kwok-stages-{VERSIONS['kwok']}.yaml",
        "external-dns": f"external-dns-{VERSIONS['external-dns']}",
    }
    if not all((cache / file).exists() for file in wanted.values()):
        subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.DEVNULL)
    return {name: str(cache / file) for name, file in wanted.items()}


class Etcd:
    def __init__(self, workdir, log):
        self.dir = Path(workdir) / "etcd"
        self.port, peer = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                binaries()["etcd"],
                "--name=local",
                f"--data-dir={self.dir}",
                f"--listen-client-urls={self.url}",
                f"--advertise-client-urls={self.url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=local=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--log-level=error",
            ],
            stdout=log,
            stderr=log,
        )
        podnet.guard(pid=self.process.pid)  # killed even if we are
        try:
            _wait(lambda: _http_ok(f"{self.url}/health"), self.process, f"etcd at {self.url}")
        except BaseException:
            self.stop()
            raise

    def stop(self):
        stop(self.process)


class LocalCluster:
    """One Kubernetes cluster: API server on https://127.0.0.1:<port>, its controllers and a kwok node.

    `admin_token` is cluster-admin (system:masters). As a tenant would, its admin applies orgdns's bootstrap manifest
    (externaldns.bootstrap); orgdns is given `orgdns_token`, the token of the bootstrap's orgdns ServiceAccount.
    """

    def __init__(self, name, etcd, workdir, port=None, logs=None):
        self.name = name
        self.dir = Path(workdir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.etcd = etcd
        self.logs = Path(logs or self.dir)
        self.processes = []
        self.admin_token = secrets.token_urlsafe(24)
        self.orgdns_token = None

    def start(self):
        """Start the control plane; if any part fails, stop the parts already started and raise."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self):
        started = time.monotonic()
        bins = binaries()
        self._write_pki()
        self.processes.append(
            self._spawn(
                "kube-apiserver",
                [
                    bins["kube-apiserver"],
                    f"--etcd-servers={self.etcd.url}",
                    f"--etcd-prefix=/{self.name}",
                    f"--secure-port={self.port}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    "--endpoint-reconciler-type=none",  # it refuses a loopback advertise address otherwise
                    f"--tls-cert-file={self.dir / 'apiserver.crt'}",
                    f"--tls-private-key-file={self.dir / 'apiserver.key'}",
                    f"--client-ca-file={self.dir / 'ca.crt'}",
                    f"--token-auth-file={self.dir / 'tokens.csv'}",
                    "--service-account-issuer=https://kubernetes.default.svc",
                    f"--service-account-key-file={self.dir / 'sa.key'}",
                    f"--service-account-signing-key-file={self.dir / 'sa.key'}",
                    "--service-cluster-ip-range=10.96.0.0/16",
                    "--authorization-mode=Node,RBAC",
                    "--enable-admission-plugins=PodSecurity,NodeRestriction",
                    "--profiling=false",
                ],
            )
        )
        _wait(self._ready, self.processes[0], f"kube-apiserver of {self.name}", timeout=120)
        kubeconfig = self.write_kubeconfig(self.dir / "admin.kubeconfig", self.admin_token)
        self.processes.append(
            self._spawn(
                "kube-controller-manager",
                [
                    bins["kube-controller-manager"],
                    f"--kubeconfig={kubeconfig}",
                    "--leader-elect=false",
                    "--secure-port=0",
                    f"--service-account-private-key-file={self.dir / 'sa.key'}",
                    f"--root-ca-file={self.dir / 'ca.crt'}",
                    "--use-service-account-credentials=false",
                    "--concurrent-namespace-syncs=5",
                ],
            )
        )
        self.processes.append(
            self._spawn(
                "kube-scheduler",
                [
                    bins["kube-scheduler"],
                    f"--kubeconfig={kubeconfig}",
                    "--leader-elect=false",
                    "--secure-port=0",
                ],
            )
        )
        self.processes.append(
            self._spawn(
                "kwok",
                [
                    bins["kwok"],
                    f"--kubeconfig={kubeconfig}",
                    f"--config={bins['kwok-stages']}",
                    "--manage-all-nodes=true",
                    "--node-lease-duration-seconds=40",
                    f"--server-address=127.0.0.1:{free_port()}",
                    # ExternalDNS pods are run for real by the ExternalDNSRunner, which reports their status.
                    "--disregard-status-with-label-selector=app.kubernetes.io/name=external-dns",
                ],
            )
        )
        self._bootstrap()
        self.start_seconds = time.monotonic() - started
        return self

    def stop(self):
        for process in reversed(self.processes):
            stop(process)
        self.processes.clear()

    # --- objects ---------------------------------------------------------------------------------------------

    def api(self, method, path, body=None, token=None, content_type="application/json"):
        """The decoded answer of the API server (admin unless a token is given); None for 404."""
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode()),
            method=method,
            headers={"Authorization": f"Bearer {token or self.admin_token}", "Content-Type": content_type},
        )
        try:
            with urllib.request.urlopen(request, context=self.ssl_context(), timeout=30) as response:
                data = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise RuntimeError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None
        return json.loads(data) if data else {}

    def objects(self, plural, namespace=None, selector=None):
        """The live objects of a kind (admin view), e.g. objects("deployments", "external-dns")."""
        group = API_GROUPS.get(plural, "/api/v1")
        path = f"{group}/namespaces/{namespace}/{plural}" if namespace else f"{group}/{plural}"
        if selector:
            path += f"?labelSelector={selector}"
        answer = self.api("GET", path)
        return [] if answer is None else answer["items"]

    def reset(self, wait=True, timeout=90):
        """Back to a fresh cluster: every namespace but the system ones gone, what orgdns created in ExternalDNS's
        namespace gone, every cluster-wide object orgdns once managed gone, and the bootstrap as applied at first.
        The namespace controller takes a few seconds for each: wait=False returns before that (see `is_clean`)."""
        label = f"app.kubernetes.io/managed-by={externaldns.OWNER}"
        for plural in ("clusterrolebindings", "clusterroles"):
            for obj in self.objects(plural, selector=label):
                self.api("DELETE", f"/apis/rbac.authorization.k8s.io/v1/{plural}/{obj['metadata']['name']}")
        for ns in self.tenant_namespaces():
            name = ns["metadata"]["name"]
            if not ns["metadata"].get("deletionTimestamp"):
                self.api("DELETE", f"/api/v1/namespaces/{name}")
            # No graceful stop to wait for: the namespace controller would wait for it before finishing.
            self.api("DELETE", f"/api/v1/namespaces/{name}/pods?gracePeriodSeconds=0")
        ours = ORGDNS_NAMESPACE
        for plural, group in (("deployments", "/apis/apps/v1"), ("services", "/api/v1"), ("secrets", "/api/v1")):
            # orgdns's, and what a test put there in its way (the bootstrap's token Secret stays)
            for obj in self.objects(plural, ours):
                if obj["metadata"]["name"] != externaldns.TOKEN_SECRET:
                    self.api("DELETE", f"{group}/namespaces/{ours}/{plural}/{obj['metadata']['name']}")
        self.api("DELETE", f"/api/v1/namespaces/{ours}/pods?gracePeriodSeconds=0")
        for obj in self.objects("resourcequotas", ours):  # a test's, which would stop ExternalDNS from starting
            self.api("DELETE", f"/api/v1/namespaces/{ours}/resourcequotas/{obj['metadata']['name']}")
        for namespace in ("default",):
            for plural in ("services", "secrets"):
                for obj in self.objects(plural, namespace):
                    if plural == "services" and obj["metadata"]["name"] == "kubernetes":
                        continue
                    self.api("DELETE", f"/api/v1/namespaces/{namespace}/{plural}/{obj['metadata']['name']}")
            for obj in self.objects("ingresses", namespace):
                self.api(
                    "DELETE", f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses/{obj['metadata']['name']}"
                )
            for obj in self.objects("rolebindings", namespace):
                self.api(
                    "DELETE",
                    f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings/{obj['metadata']['name']}",
                )
        if wait:
            self.wait_clean(timeout)

    def is_clean(self):
        return not self.tenant_namespaces() and not self.objects("pods", ORGDNS_NAMESPACE)

    def wait_clean(self, timeout=90):
        _wait(self.is_clean, None, f"namespaces of {self.name} to be deleted", timeout=timeout)
        self.apply_bootstrap()

    # --- the tenant's part: orgdns's bootstrap manifest ------------------------------------------------------

    def bootstrap_objects(self):
        return externaldns.bootstrap(ORGDNS_NAMESPACE)

    def apply_bootstrap(self):
        """What `kubectl apply -f orgdns-bootstrap.yaml` does as the cluster's admin: create what is missing, put
        back what was changed. A token made anew (its namespace or Secret was gone) becomes orgdns_token."""
        namespace = self.api("GET", f"/api/v1/namespaces/{ORGDNS_NAMESPACE}")
        if namespace is not None and namespace["metadata"].get("deletionTimestamp"):
            _wait(
                lambda: self.api("GET", f"/api/v1/namespaces/{ORGDNS_NAMESPACE}") is None,
                None,
                f"namespace {ORGDNS_NAMESPACE} of {self.name} to be deleted",
                timeout=90,
            )
        new_token = False
        for obj in self.bootstrap_objects():
            path = self._object_path(obj)
            current = self.api("GET", path)
            if current is None:
                self.api("POST", path.rsplit("/", 1)[0], obj)
                new_token = new_token or obj["kind"] == "Secret"
            elif obj["kind"] in ("ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding"):
                self.api("PUT", path, obj)
        if new_token or self.orgdns_token is None:
            self._read_token()

    def _object_path(self, obj):
        plural = KIND_PLURALS[obj["kind"]]
        group = API_GROUPS.get(plural, "/api/v1")
        namespace = obj["metadata"].get("namespace")
        base = f"{group}/namespaces/{namespace}/{plural}" if namespace else f"{group}/{plural}"
        return f"{base}/{obj['metadata']['name']}"

    def allow_certificates(self, namespace):
        """What the tenant does so that orgdns may install certificates in namespace: bind ClusterRole
        orgdns-certificates to orgdns's ServiceAccount there (the kubectl create rolebinding line orgdns shows),
        making the namespace first if it is not there."""
        if self.api("GET", f"/api/v1/namespaces/{namespace}") is None:
            self.api(
                "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            )
        self.api(
            "POST",
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": externaldns.CERTIFICATES_CLUSTER_ROLE, "namespace": namespace},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": externaldns.CERTIFICATES_CLUSTER_ROLE,
                },
                "subjects": [
                    {
                        "kind": "ServiceAccount",
                        "name": externaldns.ORGDNS_SERVICE_ACCOUNT,
                        "namespace": ORGDNS_NAMESPACE,
                    }
                ],
            },
        )

    def tenant_namespaces(self):
        return [ns for ns in self.objects("namespaces") if ns["metadata"]["name"] not in SYSTEM_NAMESPACES]

    def create_load_balancer_service(
        self, name, hostname, ip, namespace="default", annotation_prefix="external-dns.kubernetes.io/"
    ):
        """A Service annotated for ExternalDNS whose load balancer has an address (what a cloud controller sets)."""
        self.api(
            "POST",
            f"/api/v1/namespaces/{namespace}/services",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "annotations": {f"{annotation_prefix}hostname": hostname}},
                "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}]},
            },
        )
        self._set_load_balancer(f"/api/v1/namespaces/{namespace}/services/{name}", ip)

    def create_ingress(self, name, host, ip, namespace="default", service="web"):
        """An Ingress for host whose controller has published an address."""
        path = f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses"
        backend = {"service": {"name": service, "port": {"number": 80}}}
        self.api(
            "POST",
            path,
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {"name": name},
                "spec": {
                    "rules": [
                        {"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
                    ]
                },
            },
        )
        self._set_load_balancer(f"{path}/{name}", ip)

    def _set_load_balancer(self, path, ip):
        self.api(
            "PATCH",
            f"{path}/status",
            {"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}},
            content_type="application/merge-patch+json",
        )

    def new_orgdns_token(self):
        """A fresh long-lived token of the orgdns ServiceAccount; the previous one stops working (it is deleted)."""
        secret = externaldns.TOKEN_SECRET
        self.api("DELETE", f"/api/v1/namespaces/{ORGDNS_NAMESPACE}/secrets/{secret}")
        _wait(
            lambda: self.api("GET", f"/api/v1/namespaces/{ORGDNS_NAMESPACE}/secrets/{secret}") is None,
            None,
            "token secret deletion",
        )
        (token_secret,) = [obj for obj in self.bootstrap_objects() if obj["metadata"]["name"] == secret]
        self.api("POST", f"/api/v1/namespaces/{ORGDNS_NAMESPACE}/secrets", token_secret)
        return self._read_token()

    def _read_token(self):
        secret = externaldns.TOKEN_SECRET

        def token():
            data = (self.api("GET", f"/api/v1/namespaces/{ORGDNS_NAMESPACE}/secrets/{secret}") or {}).get("data") or {}
            return base64.b64decode(data["token"]).decode() if "token" in data else None

        _wait(token, None, "the token controller to fill the orgdns token")
        old, self.orgdns_token = self.orgdns_token, token()
        if old and old != self.orgdns_token:  # the API server caches authenticated tokens for a few seconds
            _wait(lambda: self._refused(old), None, "the revoked token to be refused", timeout=30)
        return self.orgdns_token

    def _refused(self, token):
        try:
            self.api("GET", "/api", token=token)
        except RuntimeError as exc:
            return ": 401 " in str(exc)
        return False

    def set_orgdns_rules(self, rules):
        """Replace the rules of orgdns's Role in ExternalDNS's namespace (tests take one away; reset puts them back)."""
        (role,) = [obj for obj in self.bootstrap_objects() if obj["kind"] == "Role"]
        self.api("PUT", self._object_path(role), {**role, "rules": rules})

    def may(self, token, verb, resource, group="", namespace="", name="", subresource=""):
        """Whether the API server allows token the request (a SelfSubjectAccessReview made as that token)."""
        attributes = {"verb": verb, "group": group, "resource": resource}
        for key, value in (("namespace", namespace), ("name", name), ("subresource", subresource)):
            if value:
                attributes[key] = value
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        }
        answer = self.api("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review, token=token)
        return bool(answer["status"].get("allowed"))

    def kubeconfig(self, token, user=None):
        """A kubeconfig (as a dict) reaching this cluster with token."""
        ca = base64.b64encode(self.ca_pem.encode()).decode()
        user = user or self.name
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": self.name,
            "clusters": [{"name": self.name, "cluster": {"server": self.url, "certificate-authority-data": ca}}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": self.name, "context": {"cluster": self.name, "user": user}}],
        }

    def write_kubeconfig(self, path, token):
        Path(path).write_text(yaml.safe_dump(self.kubeconfig(token)))
        os.chmod(path, 0o600)
        return path

    def ssl_context(self):
        return ssl.create_default_context(cadata=self.ca_pem)

    # --- start-up --------------------------------------------------------------------------------------------

    def _spawn(self, component, command):
        log = open(self.logs / f"{self.name}-{component}.log", "w")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        podnet.guard(pid=process.pid)  # killed even if we are
        return process

    def _ready(self):
        request = urllib.request.Request(self.url + "/readyz", headers={"Authorization": f"Bearer {self.admin_token}"})
        try:
            with urllib.request.urlopen(request, context=self.ssl_context(), timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def _bootstrap(self):
        """The kwok node, and orgdns's bootstrap manifest applied as the tenant would."""
        self.api(
            "POST",
            "/api/v1/nodes",
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": NODE_NAME,
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                    "labels": {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux", "type": "kwok"},
                },
            },
        )
        self.apply_bootstrap()
        _wait(lambda: any(_node_ready(n) for n in self.objects("nodes")), None, f"kwok node of {self.name}")

    def _write_pki(self):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        # Wide validity: a cluster may be started while a test has moved the clock (time-machine) by a few years.
        now = datetime.datetime.now(datetime.UTC)
        years = datetime.timedelta(days=5 * 365)
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{self.name} local cluster CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - years)
            .not_valid_after(now + years)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        names = [x509.DNSName(n) for n in ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", "10.96.0.1")]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - years)
            .not_valid_after(now + years)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
        private = lambda k: k.private_bytes(  # noqa: E731  (SEC1: what --service-account-key-file reads)
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
        self.ca_pem = pem(ca).decode()
        self.ca_key_pem = private(ca_key)
        files = {
            "ca.crt": pem(ca),
            "apiserver.crt": pem(cert) + pem(ca),
            "apiserver.key": private(key),
            "sa.key": private(ec.generate_private_key(ec.SECP256R1())),
            "tokens.csv": f"{self.admin_token},cluster-admin,cluster-admin,system:masters\n".encode(),
        }
        for name, data in files.items():
            path = self.dir / name
            path.write_bytes(data)
            path.chmod(0o600)


class ClusterAccess:
    """A local cluster as orgdns reaches it: through a fault proxy, with the orgdns ServiceAccount's token."""

    def __init__(self, cluster, aws_endpoint_url, logs):
        self.cluster = cluster
        self.proxy = FaultProxy(
            cluster.url, cluster.dir / "apiserver.crt", cluster.dir / "apiserver.key", cluster.ca_pem
        )
        self.runner = ExternalDNSRunner(cluster, binaries()["external-dns"], aws_endpoint_url, logs).start()
        self.url = self.proxy.url
        self.ca_pem = cluster.ca_pem

    @property
    def token(self):
        return self.cluster.orgdns_token

    @property
    def connection(self):
        return ClusterConnection(server=self.url, token=self.token, ca_pem=self.ca_pem)

    @property
    def request_count(self):
        return self.proxy.request_count

    def objects(self, plural, namespace=None, selector=None):
        return self.cluster.objects(plural, namespace, selector)

    def namespaces(self):
        """Names of the namespaces that are not the cluster's own (nor the one orgdns's ServiceAccount lives in)."""
        return sorted(ns["metadata"]["name"] for ns in self.cluster.tenant_namespaces())

    def fail_next(self, times, status=503, message="injected fault", method=None, path=""):
        self.proxy.fail_next(times, status, message, method, path)

    def set_permissions(self, rules):
        """The cluster's admin changes orgdns's Role in ExternalDNS's namespace (undone by reset)."""
        self.cluster.set_orgdns_rules(rules)

    def allow_certificates(self, namespace):
        self.cluster.allow_certificates(namespace)

    @property
    def admin_connection(self):
        """The cluster reached as its admin (cluster-admin), through the fault proxy."""
        return ClusterConnection(server=self.url, token=self.cluster.admin_token, ca_pem=self.ca_pem)

    def revoke_token(self):
        """The cluster's admin revokes the token orgdns holds (a new one is made, for a later registration)."""
        self.cluster.new_orgdns_token()

    def reset(self, wait=True):
        self.proxy.heal()
        self.cluster.reset(wait=wait)

    def stop(self):
        self.runner.stop()
        self.proxy.stop()
        self.cluster.stop()


class ClusterFarm:
    """Local clusters on one etcd, each running the real ExternalDNS against aws_endpoint_url; started on demand
    and reused (reset in between)."""

    def __init__(self, aws_endpoint_url, workdir=None, logs=None):
        self.aws_endpoint_url = aws_endpoint_url
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="orgdns-clusters-"))
        self._own_workdir = workdir is None
        self.logs = Path(logs or self.workdir)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.etcd = Etcd(self.workdir, open(self.logs / "etcd.log", "w"))
        self.clusters = []
        self.free = []

    def start_cluster(self, name=None, port=None):
        cluster = LocalCluster(
            name or f"cluster-{len(self.clusters) + 1}", self.etcd, self.workdir, port, self.logs
        ).start()
        try:
            access = ClusterAccess(cluster, self.aws_endpoint_url, self.logs)
        except BaseException:
            cluster.stop()
            raise
        self.clusters.append(access)
        return access

    def acquire(self):
        """The cluster released longest ago (its reset is done by then, or soon), else a new one."""
        if not self.free or (len(self.free) == 1 and not self.free[0].cluster.is_clean()):
            return self.start_cluster()
        access = self.free.pop(0)
        access.cluster.wait_clean()
        return access

    def release(self, access):
        access.reset(wait=False)
        self.free.append(access)

    def stop(self):
        for access in self.clusters:
            access.stop()
        self.etcd.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _node_ready(node):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))


def _http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


def _wait(condition, process, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: {process.args[0]} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)
