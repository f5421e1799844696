#!/bin/sh
# Starts skiff with its defaults and prints how to connect. Idempotent: if
# a daemon already serves the data directory, it only prints the directions.
#
# Settings come from the environment (every one optional):
#   SKIFF_DATA (/var/lib/skiff)  SKIFF_DOMAIN (localhost)  SKIFF_SSH_ADDR (:2222)
#   SKIFF_HTTP_ADDR (:80)  SKIFF_HTTPS_ADDR (:443)
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
skiff="$root/bin/skiff"
data=${SKIFF_DATA:-/var/lib/skiff}
export SKIFF_DATA="$data"

if [ "$(id -u)" != 0 ]; then
	echo " !     skiff runs apps in sandboxes and binds ports 80 and 443: run it as root (sudo make run)" >&2
	exit 1
fi

started=""
if "$skiff" version >/dev/null 2>&1; then
	echo "-----> skiff is already running with data in $data"
else
	mkdir -p "$data"
	echo "-----> Starting skiff (data in $data; its log follows below)"
	"$skiff" serve &
	pid=$!
	started=1
	trap 'kill -TERM $pid 2>/dev/null; wait $pid; exit 0' INT TERM
	i=0
	until [ -s "$data/ready.json" ]; do
		if ! kill -0 $pid 2>/dev/null; then
			echo " !     skiff serve exited; its log above says why (a port in use? set SKIFF_HTTP_ADDR and friends)" >&2
			exit 1
		fi
		i=$((i + 1))
		[ $i -lt 300 ] || { echo " !     skiff serve did not get ready in 30s" >&2; exit 1; }
		sleep 0.1
	done
fi

# The first admin: the key of whoever ran sudo, or root's, or a new one.
if ! "$skiff" keys --format json | grep -q '"admin": true'; then
	user=${SUDO_USER:-root}
	home=$(getent passwd "$user" | cut -d: -f6)
	key=""
	for k in "$home/.ssh/id_ed25519.pub" "$home/.ssh/id_ecdsa.pub" "$home/.ssh/id_rsa.pub"; do
		if [ -f "$k" ]; then key=$k; break; fi
	done
	if [ -z "$key" ]; then
		key="$data/admin_ed25519.pub"
		[ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -C "skiff-admin@$(hostname)" -f "$data/admin_ed25519"
	fi
	name=$(echo "$user" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9._\n-' '-')
	case "$name" in [a-z]*) ;; *) name="admin" ;; esac
	"$skiff" keys:add "$name" --admin < "$key"
	echo "$key" > "$data/admin-key-path"
fi

ssh_port=$(sed -n 's/.*"ssh": "[^"]*:\([0-9]*\)".*/\1/p' "$data/ready.json")
domain=${SKIFF_DOMAIN:-localhost}
keyfile=$(cat "$data/admin-key-path" 2>/dev/null || true)
identity=""
case "$keyfile" in "$data"/*) identity=" -i ${keyfile%.pub}" ;; esac
cat <<MSG

=====> skiff is running
       Admin key:   ${keyfile:-(registered earlier; see: skiff keys)}
       Add a key:   skiff keys:add <name> [--admin] < their_key.pub   (on this server)
       Commands:    ssh$identity -p $ssh_port skiff@$domain help
       Deploy:      git remote add skiff ssh://skiff@$domain:$ssh_port/myapp
                    git push skiff main
       Apps answer at http://<app>.$domain (set SKIFF_DOMAIN to your domain)
MSG
if [ -n "$identity" ]; then
	echo "       Git with that key: export GIT_SSH_COMMAND=\"ssh$identity\""
fi
if [ -n "$started" ]; then
	echo "       Stop with Ctrl-C (apps keep running)."
	wait $pid
fi
