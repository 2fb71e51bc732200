# mk/sanitize.mk -- memory-safety runs of the spec suite. Included at the
# end of the top Makefile, whose SRCS, BUILD_CFLAGS, CFLAGS, LIBFLAG,
# LDFLAGS, LIBS and LUA_VERSION it uses; every name here is an overridable ?= variable.
#
#   make test-asan       AddressSanitizer + UBSan build, unit specs
#   make test-asan-all   the same build, unit + integration specs (starts the lab)
#   make test-valgrind   the normal build, unit specs under valgrind memcheck
#   make valgrind-corpus the fuzz seeds and corpus through the parsers under valgrind
#   make asan            only build $(ASAN_BUILD)/mxprobe/core.so
#
# lua5.4 and busted are not instrumented, so the sanitizer runtime is put in
# front with LD_PRELOAD, for the Lua process that runs the specs only (not
# for the lab's daemons): spec/run-tests.sh runs $BUSTED, which is set here
# to "env LD_PRELOAD=... lua5.4 /usr/bin/busted --ignore-lua" (--ignore-lua
# stops busted re-executing itself under another interpreter, which would
# leave the sanitizer or valgrind behind).
#
# Leak checking is off under ASan: a Lua state frees nothing of its own at
# exit, and what lua5.4 allocates is not ours. Leaks are valgrind's job
# (definite leaks only: reachable-at-exit memory is not an error).
# Any report fails the run: ASan aborts, UBSan halts, valgrind exits 99,
# and the runner counts a non-zero busted exit as a failure; under ASan
# every report is also written to $(ASAN_REPORTS)/, and any file there
# fails the make after the runner's summary (a report from a child
# process whose stderr a spec kept to itself is not lost).

SAN_BUSTED   ?= /usr/bin/busted
SAN_LUA      ?= lua$(LUA_VERSION)
LIBFLAG      ?= -shared

# ---- AddressSanitizer + UndefinedBehaviorSanitizer -----------------------
# clang when installed, else $(CC); gcc works too (make test-asan
# ASAN_CC=gcc), except that gcc's separate libubsan ignores log_path, so a
# UBSan report of a child process goes only to that child's stderr. The
# runtime to preload follows the compiler.
ASAN_CC      ?= $(if $(shell command -v clang 2>/dev/null),clang,$(CC))
ASAN_BUILD   ?= build-asan
ASAN_SO       = $(ASAN_BUILD)/mxprobe/core.so
# float-cast-overflow is in clang's "undefined" but not in gcc's: named so
# that both check it
ASAN_CFLAGS  ?= -O1 -g -fsanitize=address,undefined,float-cast-overflow \
                -fno-omit-frame-pointer -fno-sanitize-recover=all
ASAN_IS_CLANG = $(shell $(ASAN_CC) --version 2>/dev/null | grep -q clang && echo yes)
# clang links its ASan runtime into a shared object only when asked to
ASAN_LDFLAGS ?= $(if $(ASAN_IS_CLANG),-shared-libasan)
ASAN_RUNTIME ?= $(shell $(ASAN_CC) -print-file-name=$(if $(ASAN_IS_CLANG),libclang_rt.asan-$(shell uname -m).so,libasan.so))
# Reports go to files as well as failing the process: a spec that runs
# bin/mxprobe as a child (spec/support/lab.lua) sends the child's stderr to
# a file of its own, and the reports would be lost there.
ASAN_REPORTS ?= $(ASAN_BUILD)/reports
ASAN_OPTIONS_RUN  ?= detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:log_path=$(CURDIR)/$(ASAN_REPORTS)/asan
UBSAN_OPTIONS_RUN ?= halt_on_error=1:print_stacktrace=1:log_path=$(CURDIR)/$(ASAN_REPORTS)/ubsan
ASAN_BUSTED   = env LD_PRELOAD=$(ASAN_RUNTIME) ASAN_OPTIONS=$(ASAN_OPTIONS_RUN) \
                UBSAN_OPTIONS=$(UBSAN_OPTIONS_RUN) $(SAN_LUA) $(SAN_BUSTED) --ignore-lua

.PHONY: asan asan-runtime-check test-asan test-asan-all test-valgrind

asan: $(ASAN_SO)

# The C core only changes; CFLAGS' own -O2 is overridden by the later -O1.
$(ASAN_SO): $(SRCS) csrc/mxprobe.h mk/sanitize.mk
	@mkdir -p $(dir $@)
	$(ASAN_CC) $(BUILD_CFLAGS) $(CPPFLAGS) $(CFLAGS) $(ASAN_CFLAGS) $(LIBFLAG) -o $@ $(SRCS) \
	    $(ASAN_LDFLAGS) $(LDFLAGS) $(LIBS)

asan-runtime-check:
	@test -f "$(ASAN_RUNTIME)" || { echo "sanitize.mk: no ASan runtime for $(ASAN_CC) (ASAN_RUNTIME=$(ASAN_RUNTIME))" >&2; exit 1; }

# the runner's status, failed as well when any process left a report
ASAN_RUN = rm -rf $(ASAN_REPORTS) && mkdir -p $(ASAN_REPORTS) && \
	BUSTED='$(ASAN_BUSTED)' MXPROBE_CPATH='$(ASAN_BUILD)/?.so' sh spec/run-tests.sh
ASAN_VERDICT = if ls $(ASAN_REPORTS)/* >/dev/null 2>&1; then cat $(ASAN_REPORTS)/*; \
	echo "sanitizer reports: $$(ls $(ASAN_REPORTS))"; exit 1; fi; exit $$rc

ASAN_SAY = echo "$@: $(ASAN_SO) built by $(ASAN_CC), $(ASAN_RUNTIME) preloaded"

test-asan: $(ASAN_SO) asan-runtime-check
	@$(ASAN_SAY); $(ASAN_RUN) --unit; rc=$$?; $(ASAN_VERDICT)

test-asan-all: $(ASAN_SO) asan-runtime-check
	@$(ASAN_SAY); $(ASAN_RUN); rc=$$?; $(ASAN_VERDICT)

# ---- valgrind memcheck, on the normal build -------------------------------
VALGRIND       ?= valgrind
VALGRIND_SUPP  ?= fuzz/valgrind.supp
VALGRIND_FLAGS ?= --error-exitcode=99 --leak-check=full \
                  --errors-for-leak-kinds=definite --show-leak-kinds=definite \
                  --track-origins=yes --num-callers=30 --keep-debuginfo=yes \
                  --suppressions=$(VALGRIND_SUPP)
VALGRIND_BUSTED = $(VALGRIND) $(VALGRIND_FLAGS) $(SAN_LUA) $(SAN_BUSTED) --ignore-lua

test-valgrind: $(SO)
	BUSTED='$(VALGRIND_BUSTED)' MXPROBE_CPATH='$(BUILD)/?.so' sh spec/run-tests.sh --unit

# The fuzz seeds, the kept findings and the scratch corpus the fuzzers grew
# (if any), through the normal build under valgrind (fuzz/replay.lua): the
# fuzz build does not instrument ldns, OpenSSL or Lua, memcheck sees them.
VALGRIND_CORPUS ?= fuzz/corpus/smtp fuzz/corpus/dns fuzz/corpus/x509 fuzz/corpus/http \
                   fuzz/crashes fuzz/corpus-run/smtp fuzz/corpus-run/dns \
                   fuzz/corpus-run/x509 fuzz/corpus-run/http
# robustness (issue 12): core.address_class
VALGRIND_CORPUS += fuzz/corpus/addr

.PHONY: valgrind-corpus
valgrind-corpus: $(SO)
	LUA_CPATH='$(BUILD)/?.so;;' $(VALGRIND) $(VALGRIND_FLAGS) $(SAN_LUA) fuzz/replay.lua \
	    --ca fuzz/ca.pem $(VALGRIND_CORPUS)
