"""A company directory and its identity provider for the demo and the tests: OpenLDAP (`slapd`, Debian's package) on
a loopback port with a configuration and data directory of its own, and Dex (built from its Go module by
devstack/build-cluster.sh) whose LDAP connector reads people and groups from it.

People live under ou=people (inetOrgPerson, uid and userPassword), groups under ou=groups (groupOfNames, `member`
naming people's DNs). groupOfNames needs at least one member, so every group also names PLACEHOLDER, which is no
person: removing a group's last person with ldapmodify then works.
"""

import base64
import hashlib
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from devstack import podnet
from devstack.processes import free_port, port_open, stop, wait_for_http

BASE_DN = "dc=orgdns,dc=example"
ADMIN_DN = f"cn=admin,{BASE_DN}"
PEOPLE = f"ou=people,{BASE_DN}"
GROUPS = f"ou=groups,{BASE_DN}"
PLACEHOLDER = f"cn=placeholder,{BASE_DN}"
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
DEX_VERSION = "v2.41.1"  # devstack/build-cluster.sh's DEX_VERSION


@dataclass
class Person:
    uid: str
    password: str
    name: str
    email: str

    @property
    def dn(self):
        return f"uid={self.uid},{PEOPLE}"


@dataclass
class Directory:
    """A running slapd: its URL, the admin's bind DN and password, and the process."""

    url: str
    bind_dn: str
    password: str
    process: subprocess.Popen
    workdir: Path
    people: dict = field(default_factory=dict)

    def ldap(self, command, ldif):
        """Run ldapadd/ldapmodify/ldapdelete as the directory's admin with this LDIF on standard input."""
        result = subprocess.run(
            [command, "-x", "-H", self.url, "-D", self.bind_dn, "-w", self.password],
            input=ldif,
            text=True,
            capture_output=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{command} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def add_person(self, person):
        self.people[person.uid] = person
        first, _, last = person.name.partition(" ")
        self.ldap(
            "ldapadd",
            f"dn: {person.dn}\nobjectClass: inetOrgPerson\nuid: {person.uid}\ncn: {person.name}\n"
            f"givenName: {first}\nsn: {last or first}\nmail: {person.email}\n"
            f"userPassword: {ssha(person.password)}\n",
        )

    def add_group(self, name, *uids):
        members = "".join(f"member: uid={uid},{PEOPLE}\n" for uid in uids)
        self.ldap(
            "ldapadd",
            f"dn: cn={name},{GROUPS}\nobjectClass: groupOfNames\ncn: {name}\nmember: {PLACEHOLDER}\n{members}",
        )

    def add_to_group(self, name, uid):
        self.ldap(
            "ldapmodify", f"dn: cn={name},{GROUPS}\nchangetype: modify\nadd: member\nmember: uid={uid},{PEOPLE}\n"
        )

    def join(self, name, uid):
        """Add uid to the group, making the group if it is not there yet."""
        try:
            self.add_to_group(name, uid)
        except RuntimeError as exc:
            if "No such object" not in str(exc):
                raise
            self.add_group(name, uid)

    def remove_from_group(self, name, uid):
        self.ldap(
            "ldapmodify", f"dn: cn={name},{GROUPS}\nchangetype: modify\ndelete: member\nmember: uid={uid},{PEOPLE}\n"
        )

    def set_email(self, uid, email):
        self.ldap("ldapmodify", f"dn: uid={uid},{PEOPLE}\nchangetype: modify\nreplace: mail\nmail: {email}\n")

    def stop(self):
        stop(self.process)


def ssha(password):
    """An OpenLDAP {SSHA} hash of password (what slappasswd makes)."""
    salt = secrets.token_bytes(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


def slapd_executable():
    path = shutil.which("slapd") or "/usr/sbin/slapd"
    if not os.path.exists(path):
        raise RuntimeError(
            "OpenLDAP's slapd is needed: install it (apt-get install slapd ldap-utils); "
            "devstack/require-services.sh --directory does."
        )
    return path


def start_slapd(workdir, port=None, log=subprocess.DEVNULL):
    """slapd on 127.0.0.1:port (a free one by default) with its own configuration and mdb data in workdir, holding
    the base (ou=people, ou=groups). Returns a Directory."""
    workdir = Path(workdir)
    data = workdir / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    password = secrets.token_urlsafe(16)
    port = port or free_port()
    includes = "".join(f"include /etc/ldap/schema/{schema}.schema\n" for schema in SCHEMAS)
    config = workdir / "slapd.conf"
    config.write_text(
        f"{includes}"
        f"pidfile {workdir / 'slapd.pid'}\n"
        "modulepath /usr/lib/ldap\n"
        "moduleload back_mdb\n"
        "database mdb\n"
        "maxsize 67108864\n"
        f'suffix "{BASE_DN}"\n'
        f'rootdn "{ADMIN_DN}"\n'
        f"rootpw {ssha(password)}\n"
        f"directory {data}\n"
        # people may read their own entry and bind; only the admin (the rootdn) reads others and writes
        "access to attrs=userPassword by anonymous auth by self read by * none\n"
        "access to * by self read by * none\n"
    )
    config.chmod(0o600)
    url = f"ldap://127.0.0.1:{port}"
    process = subprocess.Popen(
        [slapd_executable(), "-f", str(config), "-h", f"{url}/", "-d", "0"], stdout=log, stderr=log
    )
    podnet.guard(pid=process.pid)  # killed even if we are
    deadline = time.monotonic() + 20
    while not port_open("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"slapd did not start on {url} (exit {process.returncode}); see its log")
        time.sleep(0.05)
    directory = Directory(url=url, bind_dn=ADMIN_DN, password=password, process=process, workdir=workdir)
    directory.ldap(
        "ldapadd",
        f"dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: orgdns\no: orgdns example\n\n"
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n"
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n\n"
        f"dn: {PLACEHOLDER}\nobjectClass: organizationalRole\ncn: placeholder\n"
        "description: a member of every group, so that a group's last person can be removed\n",
    )
    return directory


def dex_binary():
    path = Path(os.environ.get("ORGDNS_BIN_CACHE", Path.home() / ".cache/orgdns/bin")) / f"dex-{DEX_VERSION}"
    if not path.exists():
        raise RuntimeError(f"Dex is not built: run devstack/build-cluster.sh dex (about 2 min; makes {path})")
    return path


@dataclass
class Dex:
    issuer: str
    client_id: str
    client_secret: str
    process: subprocess.Popen

    def stop(self):
        stop(self.process)


def start_dex(directory, workdir, redirect_uris, port=None, client_id="orgdns", log=subprocess.DEVNULL):
    """Dex on 127.0.0.1:port (a free one by default), issuer http://127.0.0.1:port/dex, in memory, with orgdns as a
    static client allowed to return to redirect_uris, and one connector: the directory's LDAP."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    issuer = f"http://127.0.0.1:{port}/dex"
    secret = secrets.token_urlsafe(24)
    config = {
        "issuer": issuer,
        "storage": {"type": "memory"},
        "web": {"http": f"127.0.0.1:{port}"},
        "logger": {"level": "info"},
        "oauth2": {"skipApprovalScreen": True},
        "staticClients": [{"id": client_id, "secret": secret, "name": "orgdns", "redirectURIs": list(redirect_uris)}],
        "connectors": [
            {
                "type": "ldap",
                "id": "ldap",
                "name": "Company directory",
                "config": {
                    "host": directory.url.removeprefix("ldap://"),
                    "insecureNoSSL": True,
                    "bindDN": directory.bind_dn,
                    "bindPW": directory.password,
                    "usernamePrompt": "Username",
                    "userSearch": {
                        "baseDN": PEOPLE,
                        "filter": "(objectClass=inetOrgPerson)",
                        "username": "uid",
                        "idAttr": "entryUUID",  # the subject: a renamed or re-mailed person stays the same
                        "emailAttr": "mail",
                        "nameAttr": "cn",
                        "preferredUsernameAttr": "uid",
                    },
                    "groupSearch": {
                        "baseDN": GROUPS,
                        "filter": "(objectClass=groupOfNames)",
                        "userMatchers": [{"userAttr": "DN", "groupAttr": "member"}],
                        "nameAttr": "cn",
                    },
                },
            }
        ],
    }
    path = workdir / "dex.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    process = subprocess.Popen([str(dex_binary()), "serve", str(path)], stdout=log, stderr=log)
    podnet.guard(pid=process.pid)  # killed even if we are
    try:
        wait_for_http(f"{issuer}/.well-known/openid-configuration", process, timeout=30)
    except RuntimeError:
        stop(process)
        raise
    return Dex(issuer=issuer, client_id=client_id, client_secret=secret, process=process)
