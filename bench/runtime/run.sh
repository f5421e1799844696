#!/bin/bash
# Runtime benchmark: time from "start instance" to the first connection a
# small Go server accepts (image lookup, overlay, user namespace, veth, runc
# create/start, the app's own start-up), against runc alone (create, start
# and exit of a process that does nothing), and the idle memory of ten
# instances.
#
#   sudo bench/runtime/run.sh            (RUNS=20 to change the iterations)
#
# Raw `go test -bench` output goes to bench/out/runtime.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root (runc, overlay and veths need it)" >&2; exit 1; }
RUNS=${RUNS:-20}
mkdir -p bench/out
go test -run '^$' -bench 'StartToReady|RuncAlone' -benchtime "${RUNS}x" -count 1 ./runtime/ | tee bench/out/runtime.txt
go test -run '^$' -bench 'IdleMemory' -benchtime 1x -count 1 ./runtime/ | tee -a bench/out/runtime.txt
