"""`make demo`: the local stack, a seeded organization and the dashboard, until Ctrl-C.

Everything the demo keeps lives in .sandbox/ and starts fresh each run, because the stand-ins for AWS,
Vault and Kubernetes keep their state in memory only.
"""

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import redis
import yaml

from devstack.kubeapi import KubeAPIServer
from devstack.policies import boundary_policy, scoped_vault_token
from devstack.processes import port_open, stack_env, start_bao, start_moto, stop, wait_for_http

ROOT = Path(__file__).resolve().parent.parent
SANDBOX = ROOT / ".sandbox"
PORTS = {"web": 8000, "moto": 5055, "vault": 8250, "demo-1": 6551, "demo-2": 6552}
BASE_DOMAIN = "platform.example.com"
ORG = "demo"
CLUSTERS = ("demo-1", "demo-2")


def main():
    with running_stack() as (env, password):
        print_summary(env, password, SANDBOX / "logs")
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\nStopping the demo stack…")


@contextmanager
def running_stack():
    """Start the stack, seed it through the normal paths and yield (env, admin password); stop it all after."""
    busy = [f"{name} ({port})" for name, port in PORTS.items() if port_open("127.0.0.1", port)]
    if busy:
        sys.exit(f"make demo: ports already in use: {', '.join(busy)}. Is another demo running? Stop it with Ctrl-C first.")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/1")
    if not port_open("127.0.0.1", 6379) and "REDIS_URL" not in os.environ:
        sys.exit("make demo: no Redis on 127.0.0.1:6379. Start one (e.g. `redis-server --daemonize yes`) or set REDIS_URL.")

    SANDBOX.mkdir(exist_ok=True)
    (SANDBOX / "demo.sqlite3").unlink(missing_ok=True)
    logs = SANDBOX / "logs"
    logs.mkdir(exist_ok=True)
    logs.chmod(0o700)  # the OpenBao dev server prints its root token
    children, kube_servers = [], []
    try:
        moto, moto_url = start_moto(PORTS["moto"], log=open(logs / "moto.log", "w"))
        children.append(moto)
        root_token = secrets.token_urlsafe(24)
        bao, vault_url = start_bao(PORTS["vault"], root_token, log=open(logs / "openbao.log", "w"))
        children.append(bao)
        vault_token = scoped_vault_token(vault_url, root_token, "secret", "orgdns")  # the README's policy, not root
        for name in CLUSTERS:
            kube_servers.append(KubeAPIServer(port=PORTS[name], token=secrets.token_urlsafe(24), tls=True).start())

        env = {
            "ORGDNS_URL": f"http://127.0.0.1:{PORTS['web']}",
            "ORGDNS_BASE_DOMAIN": BASE_DOMAIN,
            **stack_env(moto_url, vault_url, vault_token, access_key="demo"),
            "REDIS_URL": redis_url,
            "DATABASE_URL": f"sqlite:///{SANDBOX / 'demo.sqlite3'}",
            "KUBECONFIG": str(SANDBOX / "kubeconfig"),
            "ORGDNS_PARENT_ZONE_ID": create_parent_zone(moto_url),
            "ORGDNS_IAM_PERMISSIONS_BOUNDARY": create_boundary_policy(moto_url),
            "DJANGO_SETTINGS_MODULE": "orgdns_site.settings",
        }
        write_kubeconfig(env["KUBECONFIG"], kube_servers)
        write_env(env)
        os.environ.update(env)
        redis.Redis.from_url(redis_url).flushdb()  # jobs left by an earlier demo point at rows that are gone

        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], check=True, cwd=ROOT)
        password = seed(kube_servers)
        children.append(spawn([*manage, "rqworker", "--with-scheduler", "default"], logs / "worker.log"))
        children.append(spawn([*manage, "runserver", f"127.0.0.1:{PORTS['web']}", "--noreload", "--insecure"], logs / "web.log"))
        wait_for_seeded_operations()
        publish_sample_records(moto_url)
        wait_for_http(env["ORGDNS_URL"] + "/healthz")
        yield env, password
    finally:
        for child in reversed(children):
            stop(child)
        for server in kube_servers:
            server.stop()


def spawn(command, log_path):
    return subprocess.Popen(command, cwd=ROOT, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)


def local_aws(service, moto_url):
    import boto3

    return boto3.client(
        service, endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="demo", aws_secret_access_key="demo"
    )


def local_route53(moto_url):
    return local_aws("route53", moto_url)


def create_boundary_policy(moto_url):
    """The README's permissions boundary for the users orgdns creates (moto records it; it does not enforce it)."""
    document = json.dumps(boundary_policy(BASE_DOMAIN))
    return local_aws("iam", moto_url).create_policy(PolicyName="orgdns-tenant-boundary", PolicyDocument=document)["Policy"]["Arn"]


def create_parent_zone(moto_url):
    return local_route53(moto_url).create_hosted_zone(Name=BASE_DOMAIN, CallerReference="orgdns-demo-parent")["HostedZone"]["Id"].split("/")[-1]


def write_kubeconfig(path, servers):
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": CLUSTERS[0],
        "clusters": [],
        "users": [],
        "contexts": [],
    }
    for name, server in zip(CLUSTERS, servers):
        ca = base64.b64encode(server.ca_pem.encode()).decode()
        config["clusters"].append({"name": name, "cluster": {"server": server.url, "certificate-authority-data": ca}})
        config["users"].append({"name": f"{name}-admin", "user": {"token": server.token}})
        config["contexts"].append({"name": name, "context": {"cluster": name, "user": f"{name}-admin"}})
    Path(path).write_text(yaml.safe_dump(config, sort_keys=False))
    os.chmod(path, 0o600)


def write_env(env):
    path = SANDBOX / "env"
    path.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    os.chmod(path, 0o600)


def seed(servers):
    """An admin, organization demo, its two clusters and a certificate, made the way a user would."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from provisioning.clients.kube import connection_from_kubeconfig
    from provisioning.models import AuditEvent
    from provisioning.services import audit, certificates, clusters, organizations

    password = secrets.token_urlsafe(12)
    admin = get_user_model().objects.create_superuser("admin", "admin@example.com", password)
    with audit.acting(AuditEvent.Source.CRON, actor=admin):  # a script acting for the admin, audited as such
        org = organizations.create_organization(ORG, owner=admin)
        kubeconfig = (SANDBOX / "kubeconfig").read_text()
        registered = [
            clusters.register_cluster(org, name, connection_from_kubeconfig(kubeconfig, context=name), admin)[0]
            for name in CLUSTERS
        ]
        certificates.issue_certificate(org, [f"www.{org.zone_name}"], [(registered[0], "default", "demo-www-tls")], admin)
    return password


def publish_sample_records(moto_url):
    """What ExternalDNS in demo-1 would publish for two annotated Services (no real ExternalDNS runs against the
    stand-in clusters), plus one record made by hand, so that the zone page shows owners."""
    from provisioning.models import Cluster

    cluster = Cluster.objects.select_related("organization").get(name=CLUSTERS[0])
    zone = cluster.organization.zones.get()
    owner = f'"heritage=external-dns,external-dns/owner={cluster.owner_id},external-dns/resource=service/default/web"'
    records = [("www", "A", "203.0.113.10"), ("api", "A", "203.0.113.11")]
    changes = [_upsert(f"{name}.{zone.name}", rtype, value) for name, rtype, value in records]
    changes += [_upsert(f"a-{name}.{zone.name}", "TXT", owner) for name, _, _ in records]
    changes.append(_upsert(f"legacy.{zone.name}", "CNAME", "old-lb.example.net"))
    local_route53(moto_url).change_resource_record_sets(HostedZoneId=zone.zone_id, ChangeBatch={"Changes": changes})


def _upsert(name, rtype, value):
    return {"Action": "UPSERT", "ResourceRecordSet": {"Name": name, "Type": rtype, "TTL": 300, "ResourceRecords": [{"Value": value}]}}


def wait_for_seeded_operations(timeout=120):
    from provisioning.models import Operation

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Operation.objects.exclude(state__in=Operation.FINISHED).exists():
            return
        time.sleep(0.5)
    print("Some operations are still running: see the dashboard.")


def print_summary(env, password, logs):
    from provisioning.models import Cluster

    states = ", ".join(f"{c.name}: {c.state}" for c in Cluster.objects.order_by("name"))
    print(
        f"""
orgdns demo is running.

  Dashboard   {env['ORGDNS_URL']}/      user admin, password {password}
  Admin       {env['ORGDNS_URL']}/admin/
  Clusters    {states}
  AWS (moto)  {env['AWS_ENDPOINT_URL']}   Vault (OpenBao) {env['VAULT_ADDR']}
  Kubernetes  {env['KUBECONFIG']} (contexts {', '.join(CLUSTERS)})
  Settings    {SANDBOX / 'env'}   (set -a; . .sandbox/env; set +a  — then aws, bao, kubectl work)
  Logs        {logs}/

Ctrl-C stops everything the demo started.""",
        flush=True,
    )


if __name__ == "__main__":
    main()
