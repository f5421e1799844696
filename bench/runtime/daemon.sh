#!/bin/bash
# Daemon idle memory: `skiff serve` (bin/skiff, after `make build`) on a
# temporary data directory and host resources of its own, with APPS (10)
# small Procfile apps pushed and running (python3's http.server on the run
# image). Reads the daemon's VmRSS from /proc once the apps answer and the
# daemon has been idle for SETTLE seconds, then again after a restart of
# the daemon (the apps re-adopted, no build ever run by that process).
# Goal (issue 4): under 60 MB with 10 apps running.
#
#   sudo bench/runtime/daemon.sh        (APPS=10 SETTLE=30 to change)
#
# The first run makes the default builder from debootstrap's cache
# (DEBOOTSTRAP_CACHE, shared with the e2e tests); figures go to
# bench/out/daemon.txt. KEEP_LOG=file keeps the daemon's log (run with
# GODEBUG=gctrace=1 to see its heap after each GC).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
APPS=${APPS:-10}
SETTLE=${SETTLE:-30}
PREFIX=${PREFIX:-bskiff}
POOL=${POOL:-10.216.0.0/16}
DEBOOTSTRAP_CACHE=${DEBOOTSTRAP_CACHE:-/var/cache/skiff-test/debootstrap}
[ "$(id -u)" = 0 ] || { echo "run as root (runc, overlay and veths need it)" >&2; exit 1; }
[ -x bin/skiff ] && [ -x bin/skiff-init ] || { echo "run make build first" >&2; exit 1; }
mkdir -p bench/out
work=$(mktemp -d /tmp/skiff-bench-daemon.XXXXXX)
chmod 711 "$work" # instances reach their root file systems below it
data="$work/data"
skiff() { "$root/bin/skiff" --data "$data" "$@"; }
pid=
start_daemon() {
	rm -f "$data/ready.json"
	"$root/bin/skiff" serve --data "$data" --ssh-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --https-addr 127.0.0.1:0 \
		--domain skiff.bench --resource-prefix "$PREFIX" --network-pool "$POOL" --acme-ca "" \
		--debootstrap-cache "$DEBOOTSTRAP_CACHE" >>"$work/skiff.log" 2>&1 &
	pid=$!
	until [ -s "$data/ready.json" ]; do
		kill -0 "$pid" 2>/dev/null || { cat "$work/skiff.log" >&2; exit 1; }
		sleep 0.2
	done
	ssh_port=$(sed -n 's/.*"ssh": "[^"]*:\([0-9]*\)".*/\1/p' "$data/ready.json")
	http_addr=$(sed -n 's/.*"http": "\([^"]*\)".*/\1/p' "$data/ready.json")
}
stop_daemon() {
	kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
}
cleanup() {
	set +e
	for i in $(seq 1 "$APPS"); do skiff apps:destroy "bench$i" --force >/dev/null 2>&1; done
	stop_daemon
	[ -n "${KEEP_LOG:-}" ] && cp "$work/skiff.log" "$KEEP_LOG"
	# Everything the daemon put on the host: instances, cgroups, runc
	# state, its nftables table.
	"$root/bin/skiff" --data "$work/data" teardown --resource-prefix "$PREFIX" --network-pool "$POOL" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
rss() { awk '/^VmRSS/ {print int($2 / 1024 + 0.5)}' "/proc/$pid/status"; }
# Where it is: anonymous memory (Go's heap and stacks, SQLite's C heap),
# and pages of skiff's own binary (code, and the lifecycle embedded in it,
# read by builder:create) that are page cache the kernel can take back.
rss_parts() { awk '/^RssAnon/ {a = int($2 / 1024 + 0.5)} /^RssFile/ {f = int($2 / 1024 + 0.5)} END {printf "anon %d MB, file %d MB", a, f}' "/proc/$pid/status"; }
answers() { # answers <app>: its page through the router
	curl -fsS -m 5 -o /dev/null -H "Host: $1.skiff.bench" "http://$http_addr/"
}

start_daemon
echo "-----> Daemon up: $(rss) MB"
ssh-keygen -q -t ed25519 -N '' -f "$work/key"
skiff keys:add bench --admin <"$work/key.pub" >/dev/null 2>&1
echo "-----> Making the default builder"
skiff builder:create >"$work/builder.log" 2>&1 || { tail -20 "$work/builder.log" >&2; exit 1; }
echo "       daemon $(rss) MB ($(rss_parts))"

app="$work/app"
mkdir -p "$app"
printf 'web: exec python3 -m http.server $PORT\n' >"$app/Procfile"
echo '<h1>bench</h1>' >"$app/index.html"
git -C "$app" init -q -b main
git -C "$app" add -A
git -C "$app" -c user.name=bench -c user.email=bench@example.com commit -q -m app
export GIT_SSH_COMMAND="ssh -i $work/key -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
echo "-----> Pushing $APPS apps"
for i in $(seq 1 "$APPS"); do
	git -C "$app" push -q "ssh://skiff@127.0.0.1:$ssh_port/bench$i" main >>"$work/push.log" 2>&1 ||
		{ tail -30 "$work/push.log" >&2; exit 1; }
	answers "bench$i" || { echo "bench$i does not answer" >&2; exit 1; }
	echo "       bench$i up; daemon $(rss) MB"
done
echo "-----> Idle for ${SETTLE}s"
sleep "$SETTLE"
for i in $(seq 1 "$APPS"); do answers "bench$i"; done
after_deploys=$(rss)
after_deploys_parts=$(rss_parts)
hwm=$(awk '/^VmHWM/ {print int($2 / 1024 + 0.5)}' "/proc/$pid/status")
threads=$(awk '/^Threads/ {print $2}' "/proc/$pid/status")

echo "-----> Restarting the daemon"
stop_daemon
start_daemon
for i in $(seq 1 "$APPS"); do
	for _ in $(seq 1 50); do answers "bench$i" 2>/dev/null && break; sleep 0.2; done
	answers "bench$i"
done
sleep "$SETTLE"
for i in $(seq 1 "$APPS"); do answers "bench$i"; done
after_restart=$(rss)
after_restart_parts=$(rss_parts)
instances=$(skiff ps bench1 --format json 2>/dev/null | grep -o '"memory_bytes": *[0-9]*' | grep -o '[0-9]*$' | tail -1) # the last: after the spec's limit
echo "-----> ps after the restart (uptime counts from the instance's start):"
skiff ps bench1 | sed 's/^/       /'

# python3's http.server has no SIGTERM handler: as pid 1 it would ignore
# the stop's SIGTERM and wait out the 30 s grace; behind skiff-init it ends
# at once. A restart starts the new instance, switches, stops the old one.
t0=$(date +%s.%N)
skiff ps:restart bench1 >/dev/null 2>&1
restart=$(awk "BEGIN {printf \"%.1f\", $(date +%s.%N) - $t0}")
answers bench1
echo "-----> ps:restart bench1 took ${restart}s"

{
	printf '\n| skiff serve, %d apps running (python3 http.server), idle %ds | VmRSS |\n|---|---|\n' "$APPS" "$SETTLE"
	printf '| after builder:create and deploying the %d apps (peak %d MB, %d threads) | %d MB (%s) |\n' "$APPS" "$hwm" "$threads" "$after_deploys" "$after_deploys_parts"
	printf '| after a daemon restart, the apps re-adopted | %d MB (%s) |\n' "$after_restart" "$after_restart_parts"
	[ -n "$instances" ] && printf '| one instance (its cgroup: python3, skiff-init, page cache) | %d MB |\n' $((instances / 1048576))
	printf '| goal | < 60 MB |\n'
	printf '\nps:restart of one app (start, switch, stop of the old instance): %s s\n' "$restart"
} | tee bench/out/daemon.txt
