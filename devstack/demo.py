"""`make demo`: the local stack, a seeded organization and the dashboard, until Ctrl-C.

Everything the demo keeps lives in .sandbox/ and starts fresh each run: moto and OpenBao keep their state in
memory, and the local Kubernetes clusters (devstack/cluster.py, real control planes running the real ExternalDNS)
are made anew in .sandbox/clusters/.
"""

import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import redis
import yaml

from devstack.cluster import ClusterFarm, binaries
from devstack.directory import GROUPS, PEOPLE, Person, start_dex, start_slapd
from devstack.policies import boundary_policy, scoped_vault_token
from devstack.processes import Supervisor, port_open, stack_env, start_bao, start_moto, stop, wait_for_http

ROOT = Path(__file__).resolve().parent.parent
SANDBOX = ROOT / ".sandbox"
PORTS = {
    "web": 8000,
    "moto": 5055,
    "vault": 8250,
    "ldap": 3890,
    "dex": 5556,
    "demo-1": 6551,
    "demo-2": 6552,
    "demo-3": 6553,
}
BASE_DOMAIN = "platform.example.com"
ORG = "demo"
CLUSTERS = ("demo-1", "demo-2")  # registered by the seed; demo-3 is left for the user to register
# The company directory's people (uid, name, what they are) and their groups: what they get at their first sign-in.
DIRECTORY_PEOPLE = (
    ("olivia", "Olivia Owner", f"owner of {ORG}", f"orgdns:{ORG}:owner"),
    ("victor", "Victor Viewer", f"viewer of {ORG}", f"orgdns:{ORG}:viewer"),
    ("paula", "Paula Platform", "platform admin (superuser)", "platform-admins"),
)


def main():
    with running_stack() as (env, password, directory):
        print_summary(env, password, SANDBOX / "logs", directory)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\nStopping the demo stack…")


@contextmanager
def running_stack():
    """Start the stack, seed it through the normal paths and yield (env, admin password, directory); stop it all
    after."""
    busy = [f"{name} ({port})" for name, port in PORTS.items() if port_open("127.0.0.1", port)]
    if busy:
        sys.exit(
            f"make demo: ports already in use: {', '.join(busy)}. Is another demo running? Stop it with Ctrl-C first."
        )
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/1")
    if not port_open("127.0.0.1", 6379) and "REDIS_URL" not in os.environ:
        sys.exit(
            "make demo: no Redis on 127.0.0.1:6379. Start one (e.g. `redis-server --daemonize yes`) or set REDIS_URL."
        )

    SANDBOX.mkdir(exist_ok=True)
    (SANDBOX / "demo.sqlite3").unlink(missing_ok=True)
    logs = SANDBOX / "logs"
    logs.mkdir(exist_ok=True)
    logs.chmod(0o700)  # the OpenBao dev server prints its root token
    children, farm, supervisor = [], None, None
    try:
        moto, moto_url = start_moto(PORTS["moto"], log=open(logs / "moto.log", "w"))
        children.append(moto)
        root_token = secrets.token_urlsafe(24)
        bao, vault_url = start_bao(PORTS["vault"], root_token, log=open(logs / "openbao.log", "w"))
        children.append(bao)
        # a token of the Vault policy of docs/security-model.md, not root
        vault_token = scoped_vault_token(vault_url, root_token, "secret", "orgdns")
        directory = start_slapd(
            fresh_directory(SANDBOX / "directory"), PORTS["ldap"], log=open(logs / "slapd.log", "w")
        )
        children.append(directory.process)
        for uid, name, _, group in DIRECTORY_PEOPLE:
            directory.add_person(Person(uid, secrets.token_urlsafe(9), name, f"{uid}@example.com"))
            directory.add_group(group, uid)
        web_url = f"http://127.0.0.1:{PORTS['web']}"
        dex = start_dex(
            directory,
            SANDBOX / "dex",
            [f"{web_url}/oidc/callback/", f"http://localhost:{PORTS['web']}/oidc/callback/"],
            PORTS["dex"],
            log=open(logs / "dex.log", "w"),
        )
        children.append(dex.process)
        client_secret = SANDBOX / "dex-client-secret"
        client_secret.write_text(dex.client_secret)
        client_secret.chmod(0o600)
        shutil.rmtree(SANDBOX / "clusters", ignore_errors=True)
        print(
            "Starting three local Kubernetes clusters (etcd, kube-apiserver, controllers, kwok, ExternalDNS runner)…",
            flush=True,
        )
        farm = ClusterFarm(moto_url, workdir=SANDBOX / "clusters", logs=logs)
        kube = {name: farm.start_cluster(name, PORTS[name]) for name in ("demo-1", "demo-2", "demo-3")}
        kubectl = Path(sys.executable).parent / "kubectl"
        kubectl.unlink(missing_ok=True)
        kubectl.symlink_to(binaries()["kubectl"])

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
            "PROMETHEUS_MULTIPROC_DIR": str(fresh_directory(SANDBOX / "metrics")),  # web and worker count together
            "ORGDNS_METRICS_NETWORKS": "127.0.0.1/32",
            "ORGDNS_SCHEDULE_DRY_RUN": "gc_hosted_zones",
            # Sign-in through Dex, which reads the directory; passwords only for the break-glass admin.
            "ORGDNS_OIDC_ISSUER": dex.issuer,
            "ORGDNS_OIDC_CLIENT_ID": dex.client_id,
            "ORGDNS_OIDC_CLIENT_SECRET_FILE": str(client_secret),
            "ORGDNS_OIDC_PROVIDER_NAME": "Dex",
            "ORGDNS_OIDC_GROUP_PATTERN": "orgdns:{org}:{role}",
            "ORGDNS_OIDC_GROUP_MAP": json.dumps({"platform-admins": ["superuser"]}),
            "ORGDNS_LOCAL_LOGIN": "off",
            "ORGDNS_BREAK_GLASS_USERS": "admin",
        }
        write_kubeconfig(env["KUBECONFIG"], kube)
        # Each cluster's admin has applied orgdns's bootstrap manifest (LocalCluster does, as a tenant would): this is
        # the token of its orgdns ServiceAccount, and the manifest itself.
        kube["demo-3"].cluster.write_kubeconfig(SANDBOX / "demo-3-orgdns.kubeconfig", kube["demo-3"].token)
        for access in kube.values():
            access.cluster.allow_certificates("default")  # the tenant lets orgdns install certificates there
        add_sample_workloads(kube["demo-1"].cluster)
        write_env(env)
        os.environ.update(env)
        redis.Redis.from_url(redis_url).flushdb()  # jobs left by an earlier demo point at rows that are gone

        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], check=True, cwd=ROOT)
        password = seed(kube)
        supervisor = Supervisor(ROOT)
        supervisor.start("worker", [*manage, "rqworker", "--with-scheduler", "default"], logs / "worker.log")
        supervisor.start("sweep", [*manage, "sweep_operations", "--every", "15"], logs / "sweep.log")
        # the periodic work (orgdns_site/schedule.py): health checks, renewals, rotation, re-rendering; GC as a dry run
        supervisor.start("scheduler", [sys.executable, "-m", "orgdns_site.cli", "scheduler"], logs / "scheduler.log")
        supervisor.start(
            "web", [*manage, "runserver", f"127.0.0.1:{PORTS['web']}", "--noreload", "--insecure"], logs / "web.log"
        )
        wait_for_seeded_operations()
        # A first ExternalDNS health check (through each API server's service proxy), so the cluster pages say
        # "running, last sync N s ago" from the start.
        subprocess.run([*manage, "check_externaldns"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        add_hand_made_record(moto_url)
        wait_for_http(env["ORGDNS_URL"] + "/healthz")
        yield env, password, directory
    finally:
        if supervisor is not None:
            supervisor.stop()
        for child in reversed(children):
            stop(child)
        if farm is not None:
            farm.stop()


def fresh_directory(path):
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    return path


def local_aws(service, moto_url):
    import boto3

    return boto3.client(
        service, endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="demo", aws_secret_access_key="demo"
    )


def local_route53(moto_url):
    return local_aws("route53", moto_url)


def create_boundary_policy(moto_url):
    """docs/policies/' permissions boundary for the users orgdns creates (moto records it; it does not enforce it)."""
    document = json.dumps(boundary_policy(BASE_DOMAIN))
    return local_aws("iam", moto_url).create_policy(PolicyName="orgdns-tenant-boundary", PolicyDocument=document)[
        "Policy"
    ]["Arn"]


def create_parent_zone(moto_url):
    return (
        local_route53(moto_url)
        .create_hosted_zone(Name=BASE_DOMAIN, CallerReference="orgdns-demo-parent")["HostedZone"]["Id"]
        .split("/")[-1]
    )


def write_kubeconfig(path, clusters):
    """One context per cluster for the user, as its admin (orgdns itself holds only its documented permissions)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": CLUSTERS[0],
        "clusters": [],
        "users": [],
        "contexts": [],
    }
    for access in clusters.values():
        one = access.cluster.kubeconfig(access.cluster.admin_token, user=f"{access.cluster.name}-admin")
        for section in ("clusters", "users", "contexts"):
            config[section] += one[section]
    Path(path).write_text(yaml.safe_dump(config, sort_keys=False))
    os.chmod(path, 0o600)


def write_env(env):
    path = SANDBOX / "env"
    path.write_text("".join(f"{key}={shlex.quote(value)}\n" for key, value in env.items()))
    os.chmod(path, 0o600)


def seed(clusters_by_name):
    """An admin, organization demo, its two clusters and a certificate, made the way a user would."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from provisioning.clients.kube import ClusterConnection
    from provisioning.models import AuditEvent
    from provisioning.services import audit
    from provisioning.services.certificates import actions as certificates
    from provisioning.services.clusters import actions as clusters
    from provisioning.services.organizations import actions as organizations

    password = secrets.token_urlsafe(12)
    admin = get_user_model().objects.create_superuser("admin", "admin@example.com", password)
    with audit.acting(AuditEvent.Source.CRON, actor=admin):  # a script acting for the admin, audited as such
        org = organizations.create_organization(ORG, owner=admin)
        registered = []
        for name in CLUSTERS:
            access = clusters_by_name[name]
            connection = ClusterConnection(server=access.cluster.url, token=access.token, ca_pem=access.ca_pem)
            registered.append(clusters.register_cluster(org, name, connection, admin)[0])
        certificates.issue_certificate(
            org, [f"www.{org.zone_name}"], [(registered[0], "default", "demo-www-tls")], admin
        )
    return password


def add_sample_workloads(cluster):
    """Annotated Services and an Ingress in demo-1, which its ExternalDNS publishes once it runs."""
    zone = f"{ORG}.{BASE_DOMAIN}"
    cluster.create_load_balancer_service("web", f"web.{zone}", "203.0.113.10")
    cluster.create_load_balancer_service(
        "api", f"api.{zone}", "203.0.113.11", annotation_prefix="external-dns.alpha.kubernetes.io/"
    )
    cluster.create_ingress("shop", f"shop.{zone}", "203.0.113.12")


def add_hand_made_record(moto_url):
    """A record nobody's ExternalDNS owns, so that the zone page shows owners and the lack of one."""
    from provisioning.models import HostedZone

    zone = HostedZone.objects.get(organization__name=ORG)
    change = _upsert(f"legacy.{zone.name}", "CNAME", "old-lb.example.net")
    local_route53(moto_url).change_resource_record_sets(HostedZoneId=zone.zone_id, ChangeBatch={"Changes": [change]})


def _upsert(name, rtype, value):
    return {
        "Action": "UPSERT",
        "ResourceRecordSet": {"Name": name, "Type": rtype, "TTL": 300, "ResourceRecords": [{"Value": value}]},
    }


def wait_for_seeded_operations(timeout=120):
    from provisioning.models import Operation

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Operation.objects.exclude(state__in=Operation.FINISHED).exists():
            return
        time.sleep(0.5)
    print("Some operations are still running: see the dashboard.")


def print_summary(env, password, logs, directory):
    from provisioning.models import Cluster

    states = ", ".join(f"{c.name}: {c.state}" for c in Cluster.objects.order_by("name"))
    people = "\n".join(
        f"              {uid:<7} password {directory.people[uid].password:<13} {what:<27} (group {group})"
        for uid, _, what, group in DIRECTORY_PEOPLE
    )
    ldap = f"-x -H {directory.url} -D {directory.bind_dn} -w {directory.password}"
    print(
        f"""
orgdns demo is running.

  Dashboard   {env["ORGDNS_URL"]}/   "Sign in with Dex" (the company directory's people):
{people}
              admin   password {password}  break-glass account: "Break-glass account" on the sign-in page
              (passwords are off for everyone else)
  Directory   {directory.url}   bind DN {directory.bind_dn}   password {directory.password}
  Dex         {env["ORGDNS_OIDC_ISSUER"]}
  Admin       {env["ORGDNS_URL"]}/admin/
  API         {env["ORGDNS_URL"]}/api/v1/docs  (tokens: API tokens in the top bar)   Metrics {env["ORGDNS_URL"]}/metrics
  Clusters    {states}
  AWS (moto)  {env["AWS_ENDPOINT_URL"]}   Vault (OpenBao) {env["VAULT_ADDR"]}
  Kubernetes  {env["KUBECONFIG"]} (contexts demo-1, demo-2, demo-3; you are their admin)
  Settings    {SANDBOX / "env"}   (set -a; . .sandbox/env; set +a  — then aws, bao, kubectl work)
  Logs        {logs}/

ExternalDNS runs in demo-1 and demo-2 and publishes into {ORG}.{BASE_DOMAIN} (demo-1's web, api and shop are on
the zone page). Publish a name yourself — it appears within a minute (ExternalDNS's sync interval):

  .venv/bin/kubectl --context demo-2 create service loadbalancer hello --tcp=80:80
  .venv/bin/kubectl --context demo-2 annotate service hello external-dns.kubernetes.io/hostname=hello.{ORG}.{BASE_DOMAIN}
  .venv/bin/kubectl --context demo-2 patch service hello --subresource=status --type=merge \\
    -p '{{"status":{{"loadBalancer":{{"ingress":[{{"ip":"203.0.113.20"}}]}}}}}}'

Change a group and watch the effect at that person's next sign-in (e.g. victor becomes an owner of {ORG}):

ldapmodify {ldap} <<'EOF'
dn: cn=orgdns:{ORG}:owner,{GROUPS}
changetype: modify
add: member
member: uid=victor,{PEOPLE}
EOF

Register demo-3 yourself: on the organization page, upload {SANDBOX / "demo-3-orgdns.kubeconfig"}
(the token of the orgdns ServiceAccount of the bootstrap manifest already applied there: no cluster-wide write; see
docs/least-privilege-clusters.md). Uploading the admin kubeconfig (context demo-3) registers too, with a warning
naming what that token can do beyond orgdns's needs.

Ctrl-C stops everything the demo started.""",
        flush=True,
    )


if __name__ == "__main__":
    main()
