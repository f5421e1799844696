#!/bin/bash
# Push benchmark: a ~100 MB repository with history, pushed through skiff's
# SSH server (with its pre-receive hook and push pipeline) and through
# OpenSSH's sshd + git-receive-pack, on this machine, interleaved.
#
#   sudo make bench-push            (RUNS=5 SIZE_MB=100 COMMITS=200 to change)
#
# Prints a markdown table; raw timings go to bench/out/push.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
RUNS=${RUNS:-5}
SIZE_MB=${SIZE_MB:-100}
COMMITS=${COMMITS:-200}
out="$root/bench/out"
mkdir -p "$out"
work=$(mktemp -d /tmp/skiff-bench-push.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "run as root (sshd needs it)" >&2; exit 1; }
command -v sshd >/dev/null || SKIFF_BENCH=1 scripts/install-deps.sh

# The repository: COMMITS commits of incompressible data (like binary
# assets), cached between runs.
repo="$out/push-repo-${SIZE_MB}m-${COMMITS}"
if [ ! -d "$repo/.git" ]; then
	echo "-----> Making a ${SIZE_MB} MB repository with $COMMITS commits"
	rm -rf "$repo" && mkdir -p "$repo"
	git -C "$repo" init -q -b main
	per=$((SIZE_MB * 1024 * 1024 / COMMITS))
	for i in $(seq 1 "$COMMITS"); do
		head -c "$per" /dev/urandom > "$repo/asset-$((i % 50)).bin"
		printf 'line %d\n' "$i" >> "$repo/CHANGELOG"
		git -C "$repo" add -A
		git -C "$repo" -c user.name=bench -c user.email=bench@example.com commit -q -m "commit $i"
	done
fi
size=$(du -sm "$repo/.git" | cut -f1)

ssh-keygen -q -t ed25519 -N '' -f "$work/key"
ssh_opts="-i $work/key -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"

# skiff
"$root/bin/skiff" serve --data "$work/skiff" --ssh-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --https-addr 127.0.0.1:0 >"$work/skiff.log" 2>&1 &
pids+=($!)
until [ -s "$work/skiff/ready.json" ]; do sleep 0.1; done
skiff_port=$(sed -n 's/.*"ssh": "[^"]*:\([0-9]*\)".*/\1/p' "$work/skiff/ready.json")
SKIFF_DATA="$work/skiff" "$root/bin/skiff" keys:add bench --admin < "$work/key.pub" 2>/dev/null

# sshd, on a free port, with only our key
sshd_port=${SSHD_PORT:-22022}
ssh-keygen -q -t ed25519 -N '' -f "$work/hostkey"
mkdir -p /run/sshd
cat > "$work/sshd_config" <<CFG
Port $sshd_port
ListenAddress 127.0.0.1
HostKey $work/hostkey
AuthorizedKeysFile $work/key.pub
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
StrictModes no
PidFile $work/sshd.pid
CFG
/usr/sbin/sshd -D -f "$work/sshd_config" -E "$work/sshd.log" &
pids+=($!)
sleep 0.5

now() { date +%s.%N; }
push_skiff() {
	local app="bench$1"
	git -C "$repo" push -q "ssh://skiff@127.0.0.1:$skiff_port/$app" main 2>>"$work/push.log"
}
push_sshd() {
	local dir="$work/sshd-repos/r$1.git"
	git init -q --bare "$dir"
	git -C "$repo" push -q "ssh://root@127.0.0.1:$sshd_port$dir" main 2>>"$work/push.log"
}
export GIT_SSH_COMMAND="ssh $ssh_opts"

echo "-----> Pushing $size MB ($COMMITS commits) $RUNS times each, interleaved"
: > "$out/push.txt"
for i in $(seq 1 "$RUNS"); do
	for target in sshd skiff; do
		sync
		t0=$(now)
		"push_$target" "$i"
		t1=$(now)
		echo "$target $(awk "BEGIN {print $t1 - $t0}")" | tee -a "$out/push.txt"
	done
done

median() { grep "^$1 " "$out/push.txt" | cut -d' ' -f2 | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ms=$(median skiff); mo=$(median sshd)
ratio=$(awk "BEGIN {print $mo / $ms}")
printf '\n| %s MB, %s commits, %s runs | median push time |\n|---|---|\n' "$size" "$COMMITS" "$RUNS"
printf '| OpenSSH sshd + git-receive-pack | %.2f s |\n' "$mo"
printf '| skiff (SSH server + hook + pipeline) | %.2f s |\n' "$ms"
printf '| speed ratio skiff/sshd (≥ 1.0 is as fast or faster) | %.2f× |\n' "$ratio"
