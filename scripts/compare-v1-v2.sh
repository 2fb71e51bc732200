#!/bin/sh
# Shows that the v2 gatherers see what the v1 probe saw: probes every lab
# scenario with the v1 code (BASE, default 9d9bcd2, the last commit of the
# v1 core) and with this tree, in one lab session, and compares the facts
# modulo the documented renames (docs/facts.md, "Changes from v1").
#   sh scripts/compare-v1-v2.sh          (as root: it starts and stops the lab)
set -eu
cd "$(dirname "$0")/.."
BASE=${BASE:-9d9bcd2}
out=build/compare
base=build/compare-base
mkdir -p "$out"
if [ ! -f "$base/build/mxprobe/core.so" ]; then
	rm -rf "$base" && mkdir -p "$base"
	git archive "$BASE" | tar -x -C "$base"
	make -C "$base" >/dev/null
fi
make >/dev/null
DOMAINS="good expired wrongname selfsigned incomplete notls openrelay greylist postscreen
slowbanner closed blackhole nullmx implicit nxdomain v6only mxcname dangling noaddr samehost
mixed single expiring weakkey helo tls12"
queries=""
for d in $DOMAINS; do queries="$queries $d.example.test"; done
ARGS="--resolver 127.0.53.53 --ca-file $(pwd)/spec/lab/state/ca/root.pem --timeout 5 --ehlo-name compare.mxprobe.test"
sh spec/lab/lab.sh up >/dev/null
trap 'sh spec/lab/lab.sh down >/dev/null 2>&1' EXIT
# shellcheck disable=SC2086
(cd "$base" && LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;" \
	lua5.4 bin/mxprobe --facts $ARGS $queries) > "$out/v1.jsonl"
# shellcheck disable=SC2086
LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;" \
	lua5.4 bin/mxprobe --facts $ARGS $queries > "$out/v2.jsonl"
lua5.4 scripts/compare-facts.lua "$out/v1.jsonl" "$out/v2.jsonl"
