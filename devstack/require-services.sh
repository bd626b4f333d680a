#!/usr/bin/env bash
# Make sure what `make demo` and `make test` need is there and running, on a fresh machine too:
#   Redis on 127.0.0.1:6379 (installed with apt-get when we may, then started);
#   with --postgres, PostgreSQL: $DATABASE_URL when it is set, else a throwaway cluster of our own
#     (trust auth on 127.0.0.1:$ORGDNS_PG_PORT, data in $ORGDNS_PG_DATA), initialised and started here;
#   with --chromium, Debian's Chromium for the browser tests;
#   with --cluster, the Go-built etcd, Kubernetes control plane, kwok, ExternalDNS and helm (devstack/build-cluster.sh);
#     and iproute2 and nftables, with which each ExternalDNS pod gets a network namespace of its own (root only).
#   with --directory, OpenLDAP's slapd and ldap-utils (Debian's packages) and the Go-built Dex (the sign-in's provider).
#   with --image, podman, buildah and mmdebstrap (and the runtimes and helpers they use), for the image (image/).
# Whatever cannot be set up is explained, with what to do.
set -euo pipefail

PG_PORT=${ORGDNS_PG_PORT:-54329}
PG_DATA=${ORGDNS_PG_DATA:-/var/tmp/orgdns-postgres-$(id -u)}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_listening() { for _ in $(seq 100); do listening "$1" && return 0; sleep 0.1; done; return 1; }
have() { command -v "$1" >/dev/null; }
apt_install() {  # apt_install PACKAGE...: only as root on a Debian-like machine; false otherwise
  [[ $(id -u) == 0 ]] && have apt-get || return 1
  echo "Installing $* (apt-get)"
  if [[ ! -e /var/tmp/orgdns-apt-updated ]]; then apt-get update -qq && touch /var/tmp/orgdns-apt-updated; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
fail() { printf '%s\n' "$@" >&2; exit 1; }

if ! listening 6379; then
  have redis-server || apt_install redis-server || true
  have redis-server || fail "Redis is needed on 127.0.0.1:6379: install it (apt-get install redis-server) or start one there."
  echo "Starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  wait_listening 6379 || fail "redis-server did not start on 127.0.0.1:6379."
fi

if [[ " $* " == *" --postgres "* && -z ${DATABASE_URL:-} ]] && ! listening "$PG_PORT"; then
  pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
  [[ -n $(pg_bin) ]] || apt_install postgresql || true
  bin=$(pg_bin)
  [[ -n $bin ]] || fail "The tests need PostgreSQL: install it (apt-get install postgresql), or set DATABASE_URL to a server" \
    "you have (e.g. DATABASE_URL=postgres://user:pw@host:5432/postgres; each run creates its own test database)."
  as_owner=()  # PostgreSQL refuses to run as root: root runs it as the postgres user
  if [[ $(id -u) == 0 ]]; then as_owner=(runuser -u postgres --); fi
  if [[ ! -s $PG_DATA/PG_VERSION ]]; then
    echo "Creating a throwaway PostgreSQL cluster in $PG_DATA (trust auth, 127.0.0.1:$PG_PORT)"
    mkdir -p "$PG_DATA"
    [[ $(id -u) == 0 ]] && chown postgres: "$PG_DATA"
    "${as_owner[@]}" "$bin/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 >/dev/null
  fi
  echo "Starting PostgreSQL on 127.0.0.1:$PG_PORT"
  "${as_owner[@]}" "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w -s start \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$PG_DATA -c fsync=off -c max_connections=200" \
    || fail "PostgreSQL did not start: see $PG_DATA/server.log."
fi

if [[ " $* " == *" --chromium "* ]] && ! have chromium; then
  apt_install chromium || true
  have chromium || fail "The browser tests need Chromium at /usr/bin/chromium: install it (apt-get install chromium)."
fi

if [[ " $* " == *" --image "* ]]; then
  image_tools=(podman buildah mmdebstrap crun fuse-overlayfs newuidmap runc)
  missing=(); for tool in "${image_tools[@]}"; do have "$tool" || missing+=("$tool"); done
  if [[ ${#missing[@]} -gt 0 ]]; then
    apt_install --no-install-recommends podman buildah mmdebstrap crun fuse-overlayfs uidmap runc || true
    for tool in "${image_tools[@]}"; do
      have "$tool" || fail "The image is built and run with podman, buildah and mmdebstrap: install them" \
        "(apt-get install podman buildah mmdebstrap crun fuse-overlayfs uidmap runc)."
    done
  fi
fi

if [[ " $* " == *" --cluster "* ]]; then
  missing=()
  have ip || missing+=(iproute2)
  have nft || missing+=(nftables)
  if ((${#missing[@]})); then
    apt_install "${missing[@]}" || true
    have ip && have nft || fail "The local clusters give each ExternalDNS pod a network namespace of its own: install" \
      "iproute2 and nftables (apt-get install iproute2 nftables) and run as root."
  fi
  "$(dirname "$0")/build-cluster.sh" >/dev/null
fi

if [[ " $* " == *" --directory "* ]]; then
  if ! have slapd && [[ ! -x /usr/sbin/slapd ]] || ! have ldapmodify; then
    apt_install slapd ldap-utils || true
  fi
  { have slapd || [[ -x /usr/sbin/slapd ]]; } && have ldapmodify \
    || fail "The sign-in tests and the demo need OpenLDAP: install it (apt-get install slapd ldap-utils)."
  "$(dirname "$0")/build-cluster.sh" dex >/dev/null
fi
