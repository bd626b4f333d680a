#!/usr/bin/env bash
# Make sure Redis (and, with --postgres, PostgreSQL) listen on 127.0.0.1; start them if installed, else explain.
# With --chromium, make sure Debian's Chromium is there for the browser tests (installed with apt-get when we may).
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! listening 6379; then
  if command -v redis-server >/dev/null; then
    echo "Starting redis-server on 127.0.0.1:6379"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 50); do listening 6379 && break; sleep 0.1; done
  fi
  listening 6379 || { echo "Redis is needed on 127.0.0.1:6379: install it (apt-get install redis-server) or start it." >&2; exit 1; }
fi

if [[ " $* " == *" --postgres "* ]] && [[ -z ${DATABASE_URL:-} || ${DATABASE_URL} == postgres* ]] && ! listening 5432; then
  if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "Starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    for _ in $(seq 50); do listening 5432 && break; sleep 0.2; done
  fi
  listening 5432 || {
    echo "The tests run on PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth): install it (apt-get install postgresql)" >&2
    echo "and start it, or point DATABASE_URL at another server (e.g. DATABASE_URL=postgres://user:pw@host:5432/orgdns)." >&2
    exit 1
  }
fi

if [[ " $* " == *" --chromium "* ]] && ! command -v chromium >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "Installing Chromium for the browser tests (apt-get install chromium)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  command -v chromium >/dev/null || {
    echo "The browser tests need Chromium at /usr/bin/chromium: install it (sudo apt-get install chromium)." >&2
    exit 1
  }
fi
