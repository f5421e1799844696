#!/bin/sh
# Installs what skiff needs on Debian (and what its tests need), and only
# what is missing: running it again is cheap.
set -eu

need=""
have() { command -v "$1" >/dev/null 2>&1; }
want() { # want <command> <debian package>
	have "$1" || need="$need $2"
}
want git git
want ssh openssh-client
want ssh-keygen openssh-client
want gcc gcc            # cgo, for SQLite
want runc runc
want debootstrap debootstrap   # builder:create makes the default builder from Debian
want sqlite3 sqlite3    # not needed by skiff; for looking at skiff.db by hand
want curl curl
want ip iproute2                # tests: network namespaces
want python3 python3            # tests: the Python buildpack and sample apps
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import ensurepip' 2>/dev/null || need="$need python3-venv"
want busybox busybox-static     # tests: programs without signal handlers, a shell with job control
if [ "${SKIFF_BENCH:-}" = 1 ]; then
	want sshd openssh-server
fi

if [ -n "$need" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "skiff needs:$need — run as root (sudo make run) to install them" >&2
		exit 1
	fi
	echo "-----> Installing$need"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

if ! have go; then
	echo " !     Go is not installed; skiff needs Go 1.26 (the machine image has it in /usr/local/go)" >&2
	exit 1
fi
