#!/bin/sh
# Runs the spec suite and ends with one line "N passed, N failed".
#   sh spec/run-tests.sh            unit + integration + regress (starts and stops the lab)
#   sh spec/run-tests.sh --unit     unit and regress specs only: no sockets, no lab
# Environment:
#   BUSTED         busted command (default busted)
#   MXPROBE_CPATH  where mxprobe.core is (read by .busted; default build/)
#   SAN_BUSTED, SAN_CPATH, SAN_REPORTS   when set (make test), the unit and
#                  hostile-peer specs run a second time on the sanitizer
#                  build; any report in SAN_REPORTS is a failure
set -u
cd "$(dirname "$0")/.." || exit 2
BUSTED=${BUSTED:-busted}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

if [ "${1:-}" = "--unit" ]; then
	set -- spec/unit
	[ -d spec/regress ] && set -- "$@" spec/regress
else
	sh spec/lab/lab.sh up || { echo "lab did not start"; echo "0 passed, 1 failed"; exit 1; }
	trap 'sh spec/lab/lab.sh down >/dev/null 2>&1; rm -f "$log"' EXIT
	set -- spec/unit spec/integration
	[ -d spec/regress ] && set -- "$@" spec/regress
fi

$BUSTED --lua=lua5.4 -o TAP "$@" > "$log" 2>&1
rc=$?
cat "$log"
runner_failed=0
[ "$rc" -ne 0 ] && ! grep -q '^not ok ' "$log" && runner_failed=1

if [ -n "${SAN_BUSTED:-}" ]; then
	echo "# --- the same unit and hostile-peer specs on the sanitizer build (${SAN_CPATH:-}) ---"
	sanlog=$(mktemp)
	MXPROBE_CPATH=$SAN_CPATH $SAN_BUSTED --lua=lua5.4 -o TAP spec/unit $( [ -d spec/regress ] && echo spec/regress ) spec/integration/hostile_*_spec.lua \
		> "$sanlog" 2>&1
	src=$?
	sed 's/^\(not \)\{0,1\}ok [0-9]* - /&[asan] /' "$sanlog" >> "$log"
	sed 's/^\(not \)\{0,1\}ok [0-9]* - /&[asan] /' "$sanlog"
	[ "$src" -ne 0 ] && ! grep -q '^not ok ' "$sanlog" && runner_failed=$((runner_failed + 1))
	rm -f "$sanlog"
	if ls "${SAN_REPORTS:-/nonexistent}"/* >/dev/null 2>&1; then
		cat "$SAN_REPORTS"/*
		echo "not ok - sanitizer reports in $SAN_REPORTS" >> "$log"
	fi
fi

# luacheck (Debian's lua-check) over every Lua file counts as one test
if command -v luacheck >/dev/null 2>&1; then
	lint=$(mktemp)
	if luacheck -q lua spec bench examples bin > "$lint" 2>&1; then
		echo "ok - luacheck: no warnings in lua/ spec/ bench/ examples/ bin/" | tee -a "$log"
	else
		cat "$lint"
		echo "not ok - luacheck: warnings (make lint)" | tee -a "$log"
	fi
	rm -f "$lint"
fi

passed=$(grep -c '^ok ' "$log" | tr -d ' ')
skipped=$(grep -c '^ok .* # SKIP' "$log" | tr -d ' ')
failed=$(grep -c '^not ok ' "$log" | tr -d ' ')
passed=$((passed - skipped))
# busted failing outside any test (a spec file that does not load) is a failure too
failed=$((failed + runner_failed))
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
