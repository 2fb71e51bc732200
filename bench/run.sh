#!/bin/sh
# bench/run.sh: the lab part of `make bench` (mk/bench.mk): lab up, the
# comparison (bench/bench.lua), lab down. The lab binds fixed loopback
# addresses: one lab per machine at a time (lab.sh up refuses loudly when
# another one holds them).
set -u

# 1,000 idle probes in flight need that many sockets: raise the soft limit
# as far as the hard limit allows.
want=$(( ${BENCH_IDLE:-1000} + 256 ))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want" ]; then
	ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -H -n)" 2>/dev/null || true
fi
echo "bench: open files limit $(ulimit -n)"

LAB=spec/lab
log=${BUILD:-build}/bench/lab-up.log
mkdir -p "$(dirname "$log")"

sh $LAB/lab.sh up >"$log" 2>&1 || { cat "$log" >&2; echo "bench: lab up failed" >&2; exit 1; }
trap 'sh $LAB/lab.sh down >/dev/null 2>&1' EXIT INT TERM

${LUA:-lua5.4} bench/bench.lua
