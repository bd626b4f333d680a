#!/usr/bin/env bash
# Run podman or buildah with the settings orgdns's image build and tests use, so that they live in one place:
#   storage of our own under $ORGDNS_IMAGE_CACHE (default ~/.cache/orgdns/image): the overlay driver where the kernel
#   lets us mount overlays (found out once per machine), else vfs (slower: a full copy per layer and per container);
#   $ORGDNS_IMAGE_STORAGE_DRIVER chooses;
#   no default ulimits (sandboxes that refuse setrlimit inside containers), the cgroupfs cgroup manager, the runc runtime.
# Usage: image/containers.sh podman|buildah ARGS...    e.g. image/containers.sh podman images
set -euo pipefail

tool=${1:?usage: image/containers.sh podman|buildah ARGS...}; shift
case $tool in
  podman|buildah) ;;
  *) echo "image/containers.sh runs podman or buildah, not $tool" >&2; exit 2 ;;
esac
for needed in podman buildah; do
  command -v $needed >/dev/null || {
    echo "$needed is needed: devstack/require-services.sh --image installs it (apt-get install podman buildah mmdebstrap crun fuse-overlayfs uidmap runc)." >&2
    exit 1
  }
done

cache="${ORGDNS_IMAGE_CACHE:-$HOME/.cache/orgdns/image}"
mkdir -p "$cache"
write() {  # write FILE LINE...: atomically, as other podman commands may be reading it
  local file=$1; shift
  printf '%s\n' "$@" > "$file.$$"
  mv "$file.$$" "$file"
}
conf="$cache/containers.conf"
# Written every time: the cache directory may have moved with $ORGDNS_IMAGE_CACHE.
write "$conf" '[containers]' 'default_ulimits = []' '' '[engine]' 'cgroup_manager = "cgroupfs"' 'runtime = "runc"'
export CONTAINERS_CONF="$conf"

overlay_mounts() {  # whether containers/storage can mount an overlay here: a scratch container, mounted, removed
  local probe="$cache/overlay-probe" container ok=1
  local storage=(--storage-driver overlay --root "$probe/root" --runroot "$probe/run")
  if container=$(buildah "${storage[@]}" from scratch 2>/dev/null); then
    buildah "${storage[@]}" mount "$container" >/dev/null 2>&1 && ok=0
    buildah "${storage[@]}" rm "$container" >/dev/null 2>&1 || true
  fi
  rm -rf "$probe"
  return $ok
}
driver=${ORGDNS_IMAGE_STORAGE_DRIVER:-}
if [[ -z $driver ]]; then
  if [[ ! -s $cache/storage-driver ]]; then
    if overlay_mounts; then write "$cache/storage-driver" overlay; else write "$cache/storage-driver" vfs; fi
  fi
  driver=$(cat "$cache/storage-driver")
fi
storage_conf="$cache/storage-$driver.conf"
write "$storage_conf" '[storage]' "driver = \"$driver\"" "graphroot = \"$cache/storage-$driver\"" \
  "runroot = \"$cache/run-$driver\""
export CONTAINERS_STORAGE_CONF="$storage_conf"

exec "$tool" "$@"
