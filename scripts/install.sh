#!/bin/sh
# Installs skiff as a system service: the binaries in /usr/local/bin, the
# settings in /etc/default/skiff (kept if present), and a systemd unit that
# starts skiff at boot and restarts it if it dies. App instances survive
# restarts of the daemon. systemd holds skiff's listening sockets (the
# skiff-*.socket units, made here from the addresses in /etc/default/skiff),
# so connections that arrive during a restart or upgrade wait, not fail.
#
# DESTDIR stages everything below a directory instead (nothing is started):
# e2e/install_test.go installs into a scratch one and checks the result.
# BIN_DIR is where `make build` put the programs (default bin).
set -eu
cd "$(dirname "$0")/.."
dest=${DESTDIR:-}
bin=${BIN_DIR:-bin}
[ -n "$dest" ] || [ "$(id -u)" = 0 ] || { echo " !     run as root: sudo make install" >&2; exit 1; }
# Every program `make build` makes: skiff, and the helpers it finds beside
# itself (skiff-init, the first process of every app instance,
# skiff-buildpack, the default builder's buildpacks, and skiff-hook, git's
# hook for pushes).
for prog in skiff skiff-init skiff-buildpack skiff-hook; do
	[ -x "$bin/$prog" ] || { echo " !     $bin/$prog is missing: run make build first" >&2; exit 1; }
done
mkdir -p "$dest/usr/local/bin" "$dest/etc/default" "$dest/etc/systemd/system"
install -m 0755 "$bin/skiff" "$bin/skiff-init" "$bin/skiff-buildpack" "$bin/skiff-hook" "$dest/usr/local/bin/"
if [ ! -f "$dest/etc/default/skiff" ]; then
	cat > "$dest/etc/default/skiff" <<CFG
# skiff serve's settings (see skiff serve --help); restart skiff after a change.
SKIFF_DATA=/var/lib/skiff
SKIFF_DOMAIN=${SKIFF_DOMAIN:-localhost}
#SKIFF_ACME_EMAIL=you@example.com
# Load balancers or CDNs in front of skiff whose X-Forwarded-* headers to believe:
#SKIFF_TRUSTED_PROXIES=10.0.0.0/8
CFG
fi
if [ -z "$dest" ] && { ! command -v systemctl >/dev/null 2>&1 || [ ! -d /run/systemd/system ]; }; then
	echo " !     this machine does not run systemd: start skiff with \`sudo make run\` or your own supervisor" >&2
	exit 1
fi
. "$dest/etc/default/skiff"
export SKIFF_DATA
# One socket unit per listener, named as skiff serve expects them.
for sock in ssh:${SKIFF_SSH_ADDR:-:2222} http:${SKIFF_HTTP_ADDR:-:80} https:${SKIFF_HTTPS_ADDR:-:443}; do
	name=${sock%%:*}
	addr=${sock#*:}
	case "$addr" in :*) addr=${addr#:} ;; esac # ":80" is every address, port 80
	cat > "$dest/etc/systemd/system/skiff-$name.socket" <<UNIT
# Made by skiff's make install from /etc/default/skiff; run it again after
# changing the addresses there.
[Unit]
Description=skiff's $name socket, kept open across restarts of skiff

[Socket]
ListenStream=$addr
FileDescriptorName=$name
Service=skiff.service
NoDelay=true
Backlog=4096

[Install]
WantedBy=sockets.target
UNIT
done
install -m 0644 contrib/skiff.service "$dest/etc/systemd/system/skiff.service"
if [ -n "$dest" ]; then
	echo "-----> Staged skiff in $dest (programs, settings, systemd units); nothing was started"
	exit 0
fi
systemctl daemon-reload
# A running skiff holds the ports itself until it stops; the sockets take
# them over, then skiff starts on them (its apps keep running throughout).
systemctl stop skiff 2>/dev/null || true
systemctl stop skiff-ssh.socket skiff-http.socket skiff-https.socket 2>/dev/null || true
systemctl enable --now skiff-ssh.socket skiff-http.socket skiff-https.socket
systemctl enable --now skiff
i=0
until /usr/local/bin/skiff version >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 60 ] || { echo " !     skiff did not start: journalctl -u skiff" >&2; exit 1; }
	sleep 0.5
done
/usr/local/bin/skiff builder:create --if-missing
echo "-----> skiff runs as a service: systemctl status skiff; journalctl -u skiff -f"
