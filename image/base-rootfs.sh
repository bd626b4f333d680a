#!/usr/bin/env bash
# The image's base, made from Debian's packages without any container registry: a Debian trixie (Python 3.13) minbase
# root filesystem with python3, python3-venv and ca-certificates, made by mmdebstrap from the Debian mirror this
# machine's apt uses, and imported as localhost/orgdns-base:trixie into the storage of image/containers.sh.
# Made once per machine: the tarball is kept in $ORGDNS_IMAGE_CACHE (default ~/.cache/orgdns/image); --refresh
# makes it again (a newer trixie point release). Set ORGDNS_DEBIAN_MIRROR to use another mirror.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache="${ORGDNS_IMAGE_CACHE:-$HOME/.cache/orgdns/image}"
suite=trixie
tag=localhost/orgdns-base:$suite
tarball="$cache/orgdns-base-$suite.tar"
containers="$here/containers.sh"
mkdir -p "$cache"
exec 9>"$cache/.base-lock"
flock 9  # a second checkout making the same base waits for it, then finds it made

[[ ${1:-} == --refresh ]] && rm -f "$tarball"

# The first Debian archive apt is configured with (one-line .list or deb822 .sources): not -security, -updates or
# -backports, whose suites are not the release itself.
debian_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r $f ]] || continue
    awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                       if ($(i + 1) !~ /-(security|updates|backports)$/ && $(i + 2) ~ /main/) { print $i; exit } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r $f ]] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
         { uri = ""; suites = ""; comps = ""; deb = 0
           for (n = 1; n <= NF; n++) {
             if ($n ~ /^Types:/ && $n ~ / deb( |$)/) deb = 1
             if ($n ~ /^URIs:/) { split($n, u, " "); uri = u[2] }
             if ($n ~ /^Suites:/) suites = $n
             if ($n ~ /^Components:/) comps = $n }
           if (deb && uri != "" && comps ~ /main/ && suites !~ /-security/) { print uri; exit } }' "$f"
  done
}

if [[ ! -s $tarball ]]; then
  command -v mmdebstrap >/dev/null || {
    echo "mmdebstrap is needed: devstack/require-services.sh --image installs it (apt-get install mmdebstrap)." >&2
    exit 1
  }
  mirror=${ORGDNS_DEBIAN_MIRROR:-$(debian_mirror | head -1)}
  [[ -n $mirror ]] || { echo "No Debian mirror found in /etc/apt/sources.list*: set ORGDNS_DEBIAN_MIRROR to one." >&2; exit 1; }
  echo "Making the Debian $suite base root filesystem with mmdebstrap from $mirror (first time only, about 2 min; cached in $cache)" >&2
  start=$SECONDS
  # Documentation, manual pages and translations are left out (copyright files are kept), like Debian's slim images.
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --format=tar "$suite" "$tarball.tmp" "$mirror"
  mv "$tarball.tmp" "$tarball"
  "$containers" buildah rmi "$tag" >/dev/null 2>&1 || true
  echo "Made the base root filesystem in $((SECONDS - start)) s" >&2
fi

if ! "$containers" buildah inspect --type image "$tag" >/dev/null 2>&1; then
  container=$("$containers" buildah from scratch)
  trap '"$containers" buildah rm "$container" >/dev/null 2>&1 || true' EXIT
  "$containers" buildah add --quiet "$container" "$tarball" / >/dev/null
  "$containers" buildah config --env LANG=C.UTF-8 --cmd /bin/bash "$container"
  "$containers" buildah commit --quiet --rm "$container" "$tag" >/dev/null
  trap - EXIT
  echo "Imported $tag" >&2
fi
echo "$tag"
