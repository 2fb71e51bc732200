#!/bin/sh
# Runs one libFuzzer target for a while and prints one summary line.
#   sh fuzz/run.sh NAME BINARY SECONDS MAX_LEN RUN_DIR [libFuzzer flags...]
# The committed seeds fuzz/corpus/NAME/ are copied into RUN_DIR/NAME/ (the
# scratch corpus, kept between runs so coverage accumulates; libFuzzer adds
# to it, never to the seeds). Findings land in RUN_DIR/findings/NAME-*;
# the full log in RUN_DIR/NAME.log. Exit status: 0 when nothing was found.
set -u
[ $# -ge 5 ] || { echo "usage: $0 NAME BINARY SECONDS MAX_LEN RUN_DIR [flags...]" >&2; exit 2; }
name=$1 bin=$2 secs=$3 maxlen=$4 run=$5
shift 5
cd "$(dirname "$0")/.." || exit 2

corpus=$run/$name
log=$run/$name.log
mkdir -p "$corpus" "$run/findings" || exit 2
cp fuzz/corpus/"$name"/* "$corpus"/ || exit 2
dict=
[ -f fuzz/dict/"$name".dict ] && dict=-dict=fuzz/dict/"$name".dict

# detect_leaks: LeakSanitizer after any input that allocated more than it
# freed (the Lua state is collected after each input, so what is left is
# a leak or a live cache).
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
"$bin" -max_total_time="$secs" -max_len="$maxlen" -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="$run/findings/$name-" $dict "$@" \
	"$corpus" > "$log" 2>&1
rc=$?

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | sed 's/cov: //')
inputs=$(ls "$corpus" | wc -l | tr -d ' ')
artifact=$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)
if [ "$rc" -eq 0 ]; then
	echo "fuzz-$name: ${execs:-?} executions in ${secs} s, coverage ${cov:-?} edges, corpus $inputs inputs, no finding"
else
	echo "fuzz-$name: ${execs:-?} executions, FINDING (exit $rc): ${artifact:-see $log}"
	grep -m 1 -E '^(==[0-9]+==ERROR|SUMMARY|fuzz: |.*runtime error)' "$log" | sed 's/^/    /'
	echo "    log: $log"
	echo "    reproduce: ${MXP_FUZZ_CA:+MXP_FUZZ_CA=$MXP_FUZZ_CA }$bin ${artifact:-FILE}"
fi
exit "$rc"
