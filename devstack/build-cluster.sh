#!/usr/bin/env bash
# Build the real cluster side of the local stack from Go modules, once per version:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok (and its stages) and external-dns;
# and Dex, the OIDC provider the sign-in tests and the demo use (not part of the default set);
# and helm, for the chart's tests (charts/orgdns).
# Binaries are cached outside the repository in $ORGDNS_BIN_CACHE (default ~/.cache/orgdns/bin) as NAME-VERSION.
# Usage: devstack/build-cluster.sh [NAME...]   (no NAME: all of them); prints the cache directory.
set -euo pipefail

KUBERNETES_VERSION=v1.37.2
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0
EXTERNALDNS_VERSION=v0.23.0
# ExternalDNS v0.23 needs Go 1.27; the go command fetches this toolchain through the module proxy.
EXTERNALDNS_TOOLCHAIN=go1.27.3
HELM_VERSION=v4.3.2
# Dex v2.41.1 is the commit its module pins in gobuild/dex (dex's go.mod replaces its api module, so no `go install`).
DEX_VERSION=v2.41.1

here="$(cd "$(dirname "$0")" && pwd)/gobuild"
cache="${ORGDNS_BIN_CACHE:-$HOME/.cache/orgdns/bin}"
mkdir -p "$cache"
exec 9>"$cache/.build-lock"
flock 9  # another build (a second checkout's tests, say) finishes first; what it built is then skipped

command -v go >/dev/null || {
  echo "Go is needed to build the local Kubernetes control plane and ExternalDNS: install Go >= 1.26 (https://go.dev/doc/install) and put it on PATH." >&2
  exit 1
}

build() {  # build NAME VERSION MINUTES COMMAND...
  local name=$1 version=$2 minutes=$3; shift 3
  local out="$cache/$name-$version"
  [[ -x $out ]] && return 0
  echo "Building $name $version from its Go module (first time only${minutes:+, about $minutes min}; cached in $cache)" >&2
  local start=$SECONDS
  "$@" "$out.tmp"
  chmod +x "$out.tmp"; mv "$out.tmp" "$out"
  echo "Built $name $version in $((SECONDS - start)) s" >&2
}

kube() { (cd "$here/kubernetes" && go build -trimpath -ldflags "-s -w $(kube_version_flags)" -o "$2" "k8s.io/kubernetes/cmd/$1"); }
kube_version_flags() {
  local v=${KUBERNETES_VERSION#v}
  echo "-X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=${v%%.*} -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$v")"
}
kube_apiserver() { kube kube-apiserver "$1"; }
kube_controller_manager() { kube kube-controller-manager "$1"; }
kube_scheduler() { kube kube-scheduler "$1"; }
kubectl() { kube kubectl "$1"; }
etcd() { (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$1" .); }
kwok() {
  local gobin; gobin=$(mktemp -d)
  GOBIN=$gobin go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  mv "$gobin/kwok" "$1"; rmdir "$gobin"
}
kwok_stages() {  # kwok runs no stage unless configured: upstream's default node and pod stages, from its module
  local dir; dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  local stage
  for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
    pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    echo "---"; cat "$dir/kustomize/stage/$stage.yaml"
  done > "$1"
}
helm() {
  local gobin; gobin=$(mktemp -d)
  GOBIN=$gobin go install -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  mv "$gobin/helm" "$1"; rmdir "$gobin"
}
external_dns() {
  (cd "$here/externaldns" && GOTOOLCHAIN=$EXTERNALDNS_TOOLCHAIN go build -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/external-dns/pkg/apis/externaldns.Version=$EXTERNALDNS_VERSION" -o "$1" sigs.k8s.io/external-dns)
}

dex() { (cd "$here/dex" && go build -trimpath -ldflags "-s -w -X main.version=$DEX_VERSION" -o "$1" github.com/dexidp/dex/cmd/dex); }

want=("$@")
[[ ${#want[@]} -gt 0 ]] || want=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kwok-stages external-dns helm)
for name in "${want[@]}"; do
  case $name in
    etcd) build etcd "$ETCD_VERSION" 1 etcd ;;
    kube-apiserver) build kube-apiserver "$KUBERNETES_VERSION" 8 kube_apiserver ;;
    kube-controller-manager) build kube-controller-manager "$KUBERNETES_VERSION" 3 kube_controller_manager ;;
    kube-scheduler) build kube-scheduler "$KUBERNETES_VERSION" 1 kube_scheduler ;;
    kubectl) build kubectl "$KUBERNETES_VERSION" 1 kubectl ;;
    kwok) build kwok "$KWOK_VERSION" 3 kwok ;;
    kwok-stages) build kwok-stages "$KWOK_VERSION.yaml" "" kwok_stages ;;
    external-dns) build external-dns "$EXTERNALDNS_VERSION" 5 external_dns ;;
    dex) build dex "$DEX_VERSION" 2 dex ;;
    helm) build helm "$HELM_VERSION" 3 helm ;;
    *) echo "unknown binary $name" >&2; exit 2 ;;
  esac
done
echo "$cache"
