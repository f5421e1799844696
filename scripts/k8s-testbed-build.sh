#!/usr/bin/env bash
# Builds and caches what the Kubernetes test bed (internal/k8stestbed) runs:
#   - kube-apiserver, kube-controller-manager, kube-scheduler and kubelet from
#     the k8s.io/kubernetes module pinned in tools/kubernetes/go.mod, in one go
#     build (a cold build is ~560 CPU-seconds and ~3.8 GB of build cache, so the
#     binaries are kept, keyed on the Kubernetes and the Go version, and the
#     build cache is dropped);
#   - etcd, containerd, runc and the CNI plugins from Debian's packages,
#     unpacked with dpkg-deb -x (never installed), keyed on their versions.
# Prints the directory that holds bin/ (the four binaries) and root/ (the
# unpacked packages). Idempotent: a second run only prints the directory.
# Usage: scripts/k8s-testbed-build.sh   (SKIFF_TEST_CACHE moves the cache,
# default /var/cache/skiff-test)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${SKIFF_TEST_CACHE:-/var/cache/skiff-test}
export PATH="/usr/local/go/bin:$PATH"
log() { echo "$@" >&2; }

cd "$root/tools/kubernetes"
kver=$(awk '($1 == "k8s.io/kubernetes" && $2 ~ /^v/) {print $2} ($1 == "require" && $2 == "k8s.io/kubernetes") {print $3}' go.mod)
[ -n "$kver" ] || { log " !     tools/kubernetes/go.mod requires no k8s.io/kubernetes"; exit 1; }
gover=$(go env GOVERSION)
dir="$cache/kubernetes-$kver-$gover"
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9 # two test processes building at once would each spend the 560 s

components="kube-apiserver kube-controller-manager kube-scheduler kubelet"
have=1
for c in $components; do [ -x "$dir/bin/$c" ] || have=""; done
if [ -z "$have" ]; then
	log "-----> Building Kubernetes $kver with $gover into $dir/bin (first time only: ~10 minutes on 2 cores)"
	gocache="$dir/.gocache"
	pkgs=""
	for c in $components; do pkgs="$pkgs k8s.io/kubernetes/cmd/$c"; done
	rm -rf "$dir/bin.new"
	start=$(date +%s)
	# shellcheck disable=SC2086
	GOCACHE="$gocache" CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -o "$dir/bin.new/" \
		-ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$kver -X k8s.io/component-base/version.gitTreeState=clean \
		-X k8s.io/client-go/pkg/version.gitVersion=$kver" $pkgs
	rm -rf "$gocache" "$dir/bin"
	mv "$dir/bin.new" "$dir/bin"
	log "       built in $(($(date +%s) - start)) s"
fi

# Debian's packages: the versions the mirror has now name the directory.
debs="etcd-server containerd runc containernetworking-plugins"
candidates() { # "pkg=version …" for each of $debs, or nothing when one has no candidate
	# shellcheck disable=SC2086
	LC_ALL=C apt-cache policy $debs 2>/dev/null | awk -v n="$(echo $debs | wc -w)" '
		/^[^ ].*:$/ {p = substr($0, 1, length($0) - 1)}
		/Candidate:/ {if ($2 != "(none)") {out = out " " p "=" $2; k++}}
		END {if (k == n) print out}'
}
key=$(candidates)
if [ -z "$key" ]; then
	apt-get update -qq >&2
	key=$(candidates)
	[ -n "$key" ] || { log " !     Debian offers not all of $debs here; check the apt sources (bookworm main)"; exit 1; }
fi
sum=$(echo "$key" | sha256sum | cut -c1-12)
debroot="$cache/debs-$sum"
if [ ! -f "$debroot/.done" ]; then
	log "-----> Unpacking$key into $debroot"
	rm -rf "$debroot"
	mkdir -p "$debroot/debs" "$debroot/root"
	# shellcheck disable=SC2086
	(cd "$debroot/debs" && apt-get download -qq -o APT::Sandbox::User=root $(echo $key) >&2)
	for f in "$debroot"/debs/*.deb; do dpkg-deb -x "$f" "$debroot/root"; done
	rm -rf "$debroot/debs"
	echo "$key" > "$debroot/VERSIONS"
	touch "$debroot/.done"
fi
ln -sfn "$debroot/root" "$dir/root.new" && mv -T "$dir/root.new" "$dir/root"
echo "$dir"
