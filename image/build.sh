#!/usr/bin/env bash
# `make image`: builds orgdns's image from this checkout on the Debian base of image/base-rootfs.sh (made once per
# machine), tags it localhost/orgdns:latest and localhost/orgdns:<version>, and writes it as an OCI archive to
# dist/orgdns-image.oci.tar (what an operator loads, or pushes to their registry with skopeo or podman).
# Usage: image/build.sh [--no-archive] [podman build options...]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
containers="$here/containers.sh"
archive="$root/dist/orgdns-image.oci.tar"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/pyproject.toml")

write_archive=1
if [[ ${1:-} == --no-archive ]]; then write_archive=0; shift; fi

base=$("$here/base-rootfs.sh")
previous=$("$containers" podman image inspect --format '{{.Id}}' localhost/orgdns:latest 2>/dev/null || true)
start=$SECONDS
# chroot isolation and the host's network: no container runtime nor network namespace is needed to build; the host's
# CA certificates let pip reach its index from inside.
"$containers" podman build --isolation chroot --network host --pull=never \
  -v /etc/ssl/certs:/etc/ssl/certs:ro --build-arg "BASE=$base" \
  -f "$here/Containerfile" -t localhost/orgdns:latest -t "localhost/orgdns:$version" "$@" "$root"
echo "Built localhost/orgdns:latest ($version) in $((SECONDS - start)) s" >&2
# The image the tags moved away from (the builder stage's layers stay: they are the next build's cache).
if [[ -n $previous && $previous != $("$containers" podman image inspect --format '{{.Id}}' localhost/orgdns:latest) ]]; then
  "$containers" podman rmi "$previous" >/dev/null 2>&1 || true
fi

if (( write_archive )); then
  mkdir -p "$root/dist"
  rm -f "$archive"
  "$containers" podman save --quiet --format oci-archive -o "$archive.tmp" localhost/orgdns:latest "localhost/orgdns:$version"
  mv "$archive.tmp" "$archive"
  echo "Wrote $archive ($(du -m "$archive" | cut -f1) MB)" >&2
fi
