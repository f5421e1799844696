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

# skiff: receiving and recording pushes only (--git-only: the benchmark
# measures the transfer, hook and pipeline, not a build), on ports of its
# own and with host resource names of its own, so that it runs beside a
# skiff that is already serving on this machine.
"$root/bin/skiff" serve --git-only --data "$work/skiff" --ssh-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --https-addr 127.0.0.1:0 \
	--resource-prefix "bpush$$" --network-pool 10.254.0.0/16 >"$work/skiff.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
	[ -s "$work/skiff/ready.json" ] && break
	kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/skiff.log" >&2; echo "skiff did not start (above)" >&2; exit 1; }
	sleep 0.1
done
[ -s "$work/skiff/ready.json" ] || { cat "$work/skiff.log" >&2; echo "skiff not ready after 30 s" >&2; exit 1; }
skiff_port=$(sed -n 's/.*"ssh": "[^"]*:\([0-9]*\)".*/\1/p' "$work/skiff/ready.json")
SKIFF_DATA="$work/skiff" "$root/bin/skiff" keys:add bench --admin < "$work/key.pub" 2>/dev/null

# sshd, on a free port, with only our key
sshd_port=${SSHD_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
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
for _ in $(seq 1 50); do
	(exec 3<>"/dev/tcp/127.0.0.1/$sshd_port") 2>/dev/null && break
	sleep 0.1
done

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
		if ! "push_$target" "$i"; then
			tail -20 "$work/push.log" "$work/skiff.log" >&2
			echo "the push to $target failed (above)" >&2
			exit 1
		fi
		t1=$(now)
		echo "$target $(awk "BEGIN {print $t1 - $t0}")" | tee -a "$out/push.txt"
	done
done

median() { grep "^$1 " "$out/push.txt" | cut -d' ' -f2 | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
lo() { grep "^$1 " "$out/push.txt" | cut -d' ' -f2 | sort -n | head -1; }
hi() { grep "^$1 " "$out/push.txt" | cut -d' ' -f2 | sort -n | tail -1; }
ms=$(median skiff); mo=$(median sshd)
# The speed ratio of each round (sshd's time / skiff's, pushes side by
# side), for the spread.
ratios=$(paste -d' ' <(grep '^sshd ' "$out/push.txt" | cut -d' ' -f2) <(grep '^skiff ' "$out/push.txt" | cut -d' ' -f2) |
	awk '{printf "%.2f\n", $1 / $2}' | sort -n)
load=$(cut -d' ' -f1-3 /proc/loadavg)
printf '\n%s, %s MB, %s commits, %s interleaved runs; load average after: %s\n' "$(date -u +%Y-%m-%d)" "$size" "$COMMITS" "$RUNS" "$load"
printf '| | median push time | fastest | slowest |\n|---|---:|---:|---:|\n'
printf '| OpenSSH sshd + git-receive-pack | %.2f s | %.2f s | %.2f s |\n' "$mo" "$(lo sshd)" "$(hi sshd)"
printf '| skiff (SSH server + hook + pipeline, --git-only) | %.2f s | %.2f s | %.2f s |\n' "$ms" "$(lo skiff)" "$(hi skiff)"
printf '| speed ratio skiff/sshd (≥ 1.0 is as fast or faster) | %.2f× | %s× | %s× |\n' "$(awk "BEGIN {print $mo / $ms}")" \
	"$(echo "$ratios" | tail -1)" "$(echo "$ratios" | head -1)"
