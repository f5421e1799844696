#!/bin/sh
# Installs the Debian packages skiff needs (and what its tests need), and
# only those that are missing: running it again is cheap. Each is checked by
# its package (dpkg), not by a command, since some have none (libc6-dev:
# gcc only recommends it, and cgo needs its headers). e2e/install_test.go
# runs this in a fresh Debian 12 root and builds a cgo program after it.
set -eu

# Needed to build and run skiff.
packages="git openssh-client ca-certificates gcc libc6-dev runc debootstrap"
# Handy: skiff.db by hand, fetching things.
packages="$packages sqlite3 curl"
# Tests: network namespaces and firewall checks, the Python buildpack and
# sample apps, programs without signal handlers, the SSH server's audit.
packages="$packages iproute2 nftables python3 python3-venv busybox-static ssh-audit"
if [ "${SKIFF_BENCH:-}" = 1 ]; then
	packages="$packages openssh-server"
fi

need=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need="$need $p"
done

# apt_wait runs an apt-get command, waiting (up to 10 minutes) while another
# apt or dpkg holds its lock, as unattended-upgrades does on a fresh server.
apt_wait() {
	i=0
	while :; do
		if out=$(apt-get "$@" 2>&1); then
			return 0
		fi
		case "$out" in
		*"Could not get lock"* | *"Unable to acquire"*)
			i=$((i + 1))
			if [ $i -gt 120 ]; then
				printf '%s\n' "$out" >&2
				echo " !     another apt has held its lock for 10 minutes; run this again when it is done" >&2
				return 1
			fi
			if [ $i -eq 1 ]; then
				holder=$(printf '%s\n' "$out" | sed -n 's/.*It is held by \(process [0-9]* ([^)]*)\).*/\1/p' | head -n 1)
				echo "       Waiting for another apt or dpkg to finish${holder:+ ($holder)}: unattended-upgrades often runs on a new server" >&2
			fi
			sleep 5
			;;
		*)
			printf '%s\n' "$out" >&2
			return 1
			;;
		esac
	done
}

if [ -n "$need" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "skiff needs:$need — run as root (sudo make run) to install them" >&2
		exit 1
	fi
	echo "-----> Installing$need"
	export DEBIAN_FRONTEND=noninteractive
	apt_wait update -qq
	# shellcheck disable=SC2086
	apt_wait install -y -qq --no-install-recommends $need
fi

if ! command -v go >/dev/null 2>&1; then
	echo " !     Go is not installed; skiff needs Go 1.26 (the machine image has it in /usr/local/go)" >&2
	exit 1
fi
