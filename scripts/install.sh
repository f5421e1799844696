#!/bin/sh
# Installs skiff as a system service: the binaries in /usr/local/bin, the
# settings in /etc/default/skiff (kept if present), and a systemd unit that
# starts skiff at boot and restarts it if it dies. App instances survive
# restarts of the daemon.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo " !     run as root: sudo make install" >&2; exit 1; }
install -m 0755 bin/skiff bin/skiff-buildpack /usr/local/bin/
if [ ! -f /etc/default/skiff ]; then
	cat > /etc/default/skiff <<CFG
# skiff serve's settings (see skiff serve --help); restart skiff after a change.
SKIFF_DATA=/var/lib/skiff
SKIFF_DOMAIN=${SKIFF_DOMAIN:-localhost}
#SKIFF_ACME_EMAIL=you@example.com
# Load balancers or CDNs in front of skiff whose X-Forwarded-* headers to believe:
#SKIFF_TRUSTED_PROXIES=10.0.0.0/8
CFG
fi
if ! command -v systemctl >/dev/null 2>&1 || [ ! -d /run/systemd/system ]; then
	echo " !     this machine does not run systemd: start skiff with \`sudo make run\` or your own supervisor" >&2
	exit 1
fi
install -m 0644 contrib/skiff.service /etc/systemd/system/skiff.service
systemctl daemon-reload
systemctl enable --now skiff
. /etc/default/skiff
export SKIFF_DATA
i=0
until /usr/local/bin/skiff version >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 60 ] || { echo " !     skiff did not start: journalctl -u skiff" >&2; exit 1; }
	sleep 0.5
done
/usr/local/bin/skiff builder:create --if-missing
echo "-----> skiff runs as a service: systemctl status skiff; journalctl -u skiff -f"
