#!/usr/bin/env bash
# Run podman or buildah with the settings orgdns's image build and tests use, so that they live in one place:
#   storage of our own (vfs driver; graph root and run root under $ORGDNS_IMAGE_CACHE, default ~/.cache/orgdns/image),
#   no default ulimits (sandboxes that refuse setrlimit inside containers), the cgroupfs cgroup manager, the runc runtime.
# Usage: image/containers.sh podman|buildah ARGS...    e.g. image/containers.sh podman images
set -euo pipefail

cache="${ORGDNS_IMAGE_CACHE:-$HOME/.cache/orgdns/image}"
mkdir -p "$cache"
conf="$cache/containers.conf"
storage_conf="$cache/storage.conf"
# Written every time: the cache directory may have moved with $ORGDNS_IMAGE_CACHE.
printf '%s\n' '[containers]' 'default_ulimits = []' '' '[engine]' 'cgroup_manager = "cgroupfs"' 'runtime = "runc"' > "$conf"
printf '%s\n' '[storage]' 'driver = "vfs"' "graphroot = \"$cache/storage\"" "runroot = \"$cache/run\"" > "$storage_conf"
export CONTAINERS_CONF="$conf" CONTAINERS_STORAGE_CONF="$storage_conf"

tool=${1:?usage: image/containers.sh podman|buildah ARGS...}; shift
case $tool in
  podman|buildah) ;;
  *) echo "image/containers.sh runs podman or buildah, not $tool" >&2; exit 2 ;;
esac
command -v "$tool" >/dev/null || {
  echo "$tool is needed: devstack/require-services.sh --image installs it (apt-get install podman buildah mmdebstrap crun fuse-overlayfs uidmap runc)." >&2
  exit 1
}
exec "$tool" "$@"
