#!/bin/sh
# bench/run.sh: the lab part of `make bench` (mk/bench.mk): lab up, the
# comparison (bench/bench.lua), lab down -- all under the lab lock.
#
# The lab is shared by every checkout on the machine (fixed loopback
# addresses), so it only runs while /tmp/mxprobe-lab.lock (LAB_LOCK) is
# held. When a caller already holds it (`flock /tmp/mxprobe-lab.lock make
# bench`, as the working rules ask), this process inherited the locked
# descriptor and must not lock again (a second flock on the file would wait
# for ever); otherwise it takes the lock itself.
set -u

LAB_LOCK=${LAB_LOCK:-/tmp/mxprobe-lab.lock}

holds_lock() {
	for fd in /proc/$$/fd/*; do
		[ "$(readlink "$fd" 2>/dev/null)" = "$LAB_LOCK" ] && return 0
	done
	return 1
}

if [ "${1:-}" != --locked ]; then
	if holds_lock; then
		exec sh "$0" --locked
	fi
	exec flock "$LAB_LOCK" sh "$0" --locked
fi

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
