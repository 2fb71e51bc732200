# mk/bench.mk -- `make bench`: the old code and the new code side by side in
# one run, next to a floor (bench/floor.c, a minimal blocking C client), on
# the lab. Included by the Makefile (`-include mk/bench.mk`); uses its
# BUILD, CC, LUA, WARN and the `deps` and `all` targets.
#
#   make bench                        old = BASE, new = this checkout
#   make bench BASE=HEAD~1            another commit as the old side
#   make bench NEW_TREE=/path/tree    another checkout as the new side (its
#                                     files are copied and built under
#                                     build/bench-new, the tree is not touched)
#   make bench BENCH_RUNS=5 BENCH_IDLE=2000 ...   (bench/bench.lua lists them)
#
#   make bench-bulk                   only the thousands-of-domains table
#
# Numbers are printed, not asserted. Takes about 6-8 minutes.

# The old side: 9d9bcd2 is the last commit of mxprobe v1 ("make test: look
# up the sanitizer toolchain after deps installed it"), the code issue 7
# measured and that core v2 replaces. The v2 work lands in several commits,
# so "the previous commit" would compare v2 with itself; BASE names v1.
BASE       ?= 9d9bcd2
BENCH_BASE ?= $(BUILD)/bench-base
BENCH_NEWB ?= $(BUILD)/bench-new
NEW_TREE   ?=
BENCH_FLOOR = $(BUILD)/bench/floor

# The floor is built like the core: C99, the Makefile's warning list, -O2.
BENCH_WARN   = $(if $(WARN),$(WARN),-Wall -Wextra)
BENCH_CFLAGS = -O2 -g -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(BENCH_WARN) -Werror
BENCH_LIBS   = -ltls -lssl -lcrypto

.PHONY: bench bench-base bench-new bench-floor bench-bulk

bench: deps all bench-floor bench-base bench-new
	BENCH_OLD='$(abspath $(BENCH_BASE))' BENCH_OLD_LABEL='$(BASE) ($(shell git rev-parse --short $(BASE)^{commit} 2>/dev/null))' \
	BENCH_NEW='$(if $(NEW_TREE),$(abspath $(BENCH_NEWB)),$(CURDIR))' \
	BENCH_NEW_LABEL='$(if $(NEW_TREE),$(NEW_TREE) (copied to $(BENCH_NEWB)),this tree)' \
	BENCH_FLOOR='$(abspath $(BENCH_FLOOR))' BENCH_CA='$(CURDIR)/spec/lab/state/ca/root.pem' \
	BENCH_TARGETS='$(abspath $(BUILD))/bench/targets.txt' BUILD='$(BUILD)' LUA='$(LUA)' \
	    sh bench/run.sh
	$(MAKE) --no-print-directory bench-bulk

# Thousands of domains (issue 10 part 5): a generated zone of 10,000
# domains in the lab, a 50 ms RTT (bench/relay.py: no netem on this kernel),
# mxprobe against 16 floor clients and a posttls-finger/swaks loop; start-up
# and memory. One table with each target, met or not. BENCH_BULK_* knobs:
# bench/bulk.py. About 4-5 minutes at the default sizes.
bench-bulk: all bench-floor
	BUILD='$(BUILD)' LUA='$(LUA)' BENCH_FLOOR='$(abspath $(BENCH_FLOOR))' python3 bench/bulk.py

bench-floor: $(BENCH_FLOOR)

$(BENCH_FLOOR): bench/floor.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ bench/floor.c $(BENCH_LIBS)

# The old code, exported from git (no worktree to clean up) and built with
# its own Makefile; rebuilt only when BASE names another commit.
bench-base:
	@set -e; want=$$(git rev-parse '$(BASE)^{commit}'); \
	if [ "$$(cat '$(BENCH_BASE)/.bench-commit' 2>/dev/null)" != "$$want" ]; then \
	    echo "bench: exporting $(BASE) ($$want) to $(BENCH_BASE)"; \
	    rm -rf '$(BENCH_BASE)'; mkdir -p '$(BENCH_BASE)'; \
	    git archive "$$want" | tar -x -C '$(BENCH_BASE)'; \
	fi; \
	env -u MAKEFLAGS -u MFLAGS $(MAKE) --no-print-directory -C '$(BENCH_BASE)' BUILD=build all >/dev/null; \
	echo "$$want" > '$(BENCH_BASE)/.bench-commit'

# Another checkout as the new side: its files as they are now (committed or
# not; no .git, no build output, no lab state), built here.
bench-new:
ifneq ($(NEW_TREE),)
	@set -e; test -f '$(NEW_TREE)/Makefile'; rm -rf '$(BENCH_NEWB)'; mkdir -p '$(BENCH_NEWB)'; \
	tar -C '$(NEW_TREE)' --exclude=./.git --exclude=./build --exclude='./build-*' \
	    --exclude=./spec/lab/state -cf - . | tar -x -C '$(BENCH_NEWB)'; \
	echo "bench: new side = $(NEW_TREE) (copied to $(BENCH_NEWB))"; \
	env -u MAKEFLAGS -u MFLAGS $(MAKE) --no-print-directory -C '$(BENCH_NEWB)' BUILD=build all >/dev/null
endif
