#!/bin/sh
# Starts skiff with its defaults and prints how to connect. Idempotent: if
# a daemon already serves the data directory, it only prints the directions.
#
# Settings come from the environment, then /etc/default/skiff (what make
# install writes), every one optional; sudo drops the caller's environment,
# so pass them after it: sudo SKIFF_DOMAIN=apps.example.com make run.
#   SKIFF_DATA (/var/lib/skiff)  SKIFF_DOMAIN (localhost)  SKIFF_SSH_ADDR (:2222)
#   SKIFF_HTTP_ADDR (:80)  SKIFF_HTTPS_ADDR (:443), and every other SKIFF_*
#   that skiff serve reads.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
skiff="$root/bin/skiff"
defaults=${SKIFF_DEFAULTS:-/etc/default/skiff}
if [ -f "$defaults" ]; then
	while IFS='=' read -r k v; do
		case "$k" in
		*[!A-Z0-9_]*) ;; # not a variable name: never reaches eval
		SKIFF_?*)
			v=${v#\"}; v=${v%\"}; v=${v#\'}; v=${v%\'}
			eval "[ -n \"\${$k+set}\" ] || { $k=\$v; export $k; }"
			;;
		esac
	done < "$defaults"
fi
data=${SKIFF_DATA:-/var/lib/skiff}
export SKIFF_DATA="$data"

if [ "$(id -u)" != 0 ]; then
	echo " !     skiff runs apps in sandboxes and binds ports 80 and 443: run it as root (sudo make run)" >&2
	exit 1
fi

# Each step is timed for the summary at the end: a first start on a new
# machine spends minutes installing packages, compiling and making the
# default builder, and says where. make passes when it started.
now() { date +%s; }
t0=$(now)
steps=""
case "${SKIFF_MAKE_START:-}" in
'' | *[!0-9]*) ;;
*)
	steps="packages and build $((t0 - SKIFF_MAKE_START))s"
	t0=$SKIFF_MAKE_START
	;;
esac
timed() { # timed <name> <command…>
	name=$1
	shift
	s=$(now)
	"$@"
	steps="$steps${steps:+, }$name $(($(now) - s))s"
}

started=""
s=$(now)
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
steps="$steps${steps:+, }daemon $(($(now) - s))s"

# The first admin: the key of whoever ran sudo, or root's, or a new one.
if ! "$skiff" keys --format json | grep -q '"admin": true'; then
	user=${SUDO_USER:-root}
	home=$(getent passwd "$user" | cut -d: -f6)
	key=""
	for k in "$home/.ssh/id_ed25519.pub" "$home/.ssh/id_ecdsa.pub" "$home/.ssh/id_rsa.pub"; do
		if [ -f "$k" ]; then key=$k; break; fi
	done
	if [ -z "$key" ]; then
		# A new key, where the user who ran sudo can use it: in their
		# ~/.ssh, theirs; root's own in the data directory otherwise.
		if [ "$user" != root ] && [ -d "$home" ]; then
			mkdir -p "$home/.ssh"
			chown "$user:" "$home/.ssh" && chmod 700 "$home/.ssh"
			key="$home/.ssh/skiff_admin_ed25519.pub"
		else
			key="$data/admin_ed25519.pub"
		fi
		if [ ! -f "$key" ]; then
			ssh-keygen -q -t ed25519 -N '' -C "skiff-admin@$(hostname)" -f "${key%.pub}"
			[ "$user" = root ] || [ "$key" = "$data/admin_ed25519.pub" ] || chown "$user:" "${key%.pub}" "$key"
		fi
	fi
	name=$(echo "$user" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9._\n-' '-')
	case "$name" in [a-z]*) ;; *) name="admin" ;; esac
	"$skiff" keys:add "$name" --admin < "$key"
	echo "$key" > "$data/admin-key-path"
fi

# The default builder: Debian from the distribution's mirror, the CNB
# lifecycle and skiff's buildpacks. Minutes the first time, then cached.
echo "-----> The default builder (the first time it is made from Debian's mirror: about two minutes; a push meanwhile is told to wait)"
timed builder "$skiff" builder:create --if-missing

field() { sed -n "s/.*\"$1\": \"\([^\"]*\)\".*/\1/p" "$data/ready.json"; }
ssh_port=$(field ssh | sed 's/.*://')
http_port=$(field http | sed 's/.*://')
web_port=""
[ "$http_port" = 80 ] || web_port=":$http_port"
domain=$(field domain)
domain=${domain:-${SKIFF_DOMAIN:-localhost}}
hostkey=$(field host_key)
keyfile=$(cat "$data/admin-key-path" 2>/dev/null || true)
identity=""
case "$keyfile" in */skiff_admin_ed25519.pub | "$data"/*) identity=" -i ${keyfile%.pub}" ;; esac
if [ -n "${SKIFF_DOMAIN:-}" ] && [ "$SKIFF_DOMAIN" != "$domain" ]; then
	echo " !     The running skiff serves $domain; SKIFF_DOMAIN=$SKIFF_DOMAIN applies when it restarts" >&2
	echo "       (Ctrl-C where it runs, or kill $(field pid), then make run again)" >&2
fi
cat <<MSG

=====> skiff is running (this start took $(($(now) - t0))s: $steps)
       Admin key:   ${keyfile:-(registered earlier; see: sudo $skiff keys)}
       Host key:    $hostkey (ssh shows this at the first connection: check it)
       Add a key:   sudo $skiff keys:add <name> [--admin] < their_key.pub   (on this server)
       Commands:    ssh$identity -p $ssh_port skiff@$domain help
       Deploy:      git remote add skiff ssh://skiff@$domain:$ssh_port/myapp
                    git push skiff main
       Apps answer at http://<app>.$domain$web_port (sudo SKIFF_DOMAIN=your.domain make run to change it)
MSG
if [ -n "$identity" ]; then
	echo "       Git with that key: export GIT_SSH_COMMAND=\"ssh$identity\""
fi
if [ -n "$started" ]; then
	echo "       Stop with Ctrl-C (apps keep running)."
	wait $pid
fi
