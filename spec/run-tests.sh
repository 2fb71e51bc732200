#!/bin/sh
# Runs the spec suite and ends with one line "N passed, N failed".
#   sh spec/run-tests.sh            unit + integration (starts and stops the lab)
#   sh spec/run-tests.sh --unit     unit specs only: no sockets, no lab
# Environment: BUSTED (default busted), MXPROBE_CPATH (a sanitizer build).
set -u
cd "$(dirname "$0")/.." || exit 2
BUSTED=${BUSTED:-busted}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

if [ "${1:-}" = "--unit" ]; then
	set -- spec/unit
else
	sh spec/lab/lab.sh up || { echo "lab did not start"; echo "0 passed, 1 failed"; exit 1; }
	trap 'sh spec/lab/lab.sh down >/dev/null 2>&1; rm -f "$log"' EXIT
	set -- spec/unit spec/integration
fi

$BUSTED --lua=lua5.4 -o TAP "$@" > "$log" 2>&1
rc=$?
cat "$log"
passed=$(grep -c '^ok ' "$log" | tr -d ' ')
skipped=$(grep -c '^ok .* # SKIP' "$log" | tr -d ' ')
failed=$(grep -c '^not ok ' "$log" | tr -d ' ')
passed=$((passed - skipped))
# busted failing outside any test (a spec file that does not load) is a failure too
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
