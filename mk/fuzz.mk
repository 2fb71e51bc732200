# mk/fuzz.mk -- libFuzzer targets for the C core's parsers. Included at the
# end of the top Makefile, whose SRCS, WARN, LUA_INCDIR, LUA_VERSION and
# LIBS it uses; every name here is an overridable ?= variable.
#
#   make fuzz [FUZZ_TIME=60]   build, then run each target FUZZ_TIME seconds,
#                              one after the other; one summary line each
#   make fuzz-smtp | fuzz-dns | fuzz-x509 | fuzz-http    run one target
#   make fuzz-build            only build $(FUZZ_BUILD)/fuzz-*
#   make fuzz-regress          replay the seeds and fuzz/crashes/ (no fuzzing;
#                              for CI: every past finding stays fixed)
#   make fuzz-clean            forget the scratch corpus
#
# Each target drives the real Lua entry point through a Lua state (see
# fuzz/harness.c): fuzz-smtp core.smtp_reply, fuzz-dns core.dns_parse,
# fuzz-x509 core.x509_parse, core.x509_verify and core.x509_dane, fuzz-http
# core.http_response and core.dns_tcp_frame (first byte: eof/head flags). Seeds are in
# fuzz/corpus/<target>/ and are only read; the growing corpus lives in
# $(FUZZ_RUN)/<target>/, findings in $(FUZZ_RUN)/findings/. A finding is
# reproduced with `$(FUZZ_BUILD)/fuzz-<target> FILE`; keep it as
# fuzz/crashes/<target>-<what> once fixed, so fuzz-regress replays it.
#
# The limits are built small (FUZZ_LIMITS) so that short inputs reach every
# "too-long" branch and every cut; `make fuzz FUZZ_LIMITS=` fuzzes the
# limits a release has (then raise FUZZ_MAXLEN_smtp to ~70000 to reach
# MXP_SMTP_REPLY_MAX).

FUZZ_CC      ?= clang
FUZZ_BUILD   ?= build-fuzz
FUZZ_RUN     ?= fuzz/corpus-run
FUZZ_TIME    ?= 60
FUZZ_TARGETS ?= smtp dns x509 http
FUZZ_FLAGS   ?=
FUZZ_SAN     ?= -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  ?= -O1 -g -fno-omit-frame-pointer -std=c99 \
                -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
FUZZ_LIMITS  ?= -DMXP_SMTP_LINE_MAX=128 -DMXP_SMTP_LINES_MAX=16 \
                -DMXP_SMTP_REPLY_MAX=1024 -DMXP_DNS_RR_MAX=64 -DMXP_TEXT_MAX=64 \
                -DMXP_X509_CHAIN_MAX=4 -DMXP_X509_SAN_MAX=16 \
                -DMXP_HTTP_HEADER_MAX=512 -DMXP_HTTP_BODY_MAX=1024 \
                -DMXP_HTTP_HEADERS_MAX=8 -DMXP_HTTP_CHUNK_LINE_MAX=64
FUZZ_LUALIB  ?= -llua$(LUA_VERSION)
FUZZ_CA      ?= fuzz/ca.pem
FUZZ_MAXLEN_smtp ?= 4096
FUZZ_MAXLEN_dns  ?= 8192
FUZZ_MAXLEN_x509 ?= 8192
FUZZ_MAXLEN_http ?= 4096
# robustness (issue 12): core.address_class (fuzz/fuzz_addr.c)
FUZZ_TARGETS += addr
FUZZ_MAXLEN_addr ?= 128

FUZZ_BINS = $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz-%)

.PHONY: fuzz fuzz-build fuzz-regress fuzz-clean $(FUZZ_TARGETS:%=fuzz-%)

fuzz-build: $(FUZZ_BINS)

# Every C file: core.c opens every concern, so the module links them all.
# The limits are part of the build: a changed FUZZ_LIMITS needs fuzz-clean
# or a touched source to rebuild.
$(FUZZ_BUILD)/fuzz-%: fuzz/fuzz_%.c fuzz/harness.c fuzz/harness.h $(SRCS) csrc/mxprobe.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) $(FUZZ_LIMITS) $(WARN) -Icsrc -I$(LUA_INCDIR) \
	    -o $@ $< fuzz/harness.c $(SRCS) $(FUZZ_LUALIB) $(LIBS)

# One at a time (each takes a core); all run even when one finds something,
# and the make fails at the end if any did.
fuzz: fuzz-build
	@failed=0; for t in $(FUZZ_TARGETS); do \
	    case $$t in smtp) m=$(FUZZ_MAXLEN_smtp);; dns) m=$(FUZZ_MAXLEN_dns);; \
	        x509) m=$(FUZZ_MAXLEN_x509);; http) m=$(FUZZ_MAXLEN_http);; *) m=4096;; esac; \
	    MXP_FUZZ_CA=$(FUZZ_CA) sh fuzz/run.sh $$t $(FUZZ_BUILD)/fuzz-$$t $(FUZZ_TIME) $$m \
	        $(FUZZ_RUN) $(FUZZ_FLAGS) || failed=1; \
	done; exit $$failed

$(FUZZ_TARGETS:%=fuzz-%): fuzz-%: $(FUZZ_BUILD)/fuzz-%
	@MXP_FUZZ_CA=$(FUZZ_CA) sh fuzz/run.sh $* $< $(FUZZ_TIME) $(FUZZ_MAXLEN_$*) \
	    $(FUZZ_RUN) $(FUZZ_FLAGS)

# Executes each seed and each kept finding once; any crash fails.
fuzz-regress: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	    set -- fuzz/corpus/$$t/*; \
	    for f in fuzz/crashes/$$t-*; do [ -f "$$f" ] && set -- "$$@" "$$f"; done; \
	    MXP_FUZZ_CA=$(FUZZ_CA) $(FUZZ_BUILD)/fuzz-$$t "$$@" > $(FUZZ_BUILD)/regress-$$t.log 2>&1 || \
	        { tail -n 30 $(FUZZ_BUILD)/regress-$$t.log; echo "fuzz-regress: $$t FAILED"; exit 1; }; \
	    echo "fuzz-regress: $$t: $$# inputs, no crash"; \
	done

fuzz-clean:
	rm -rf $(FUZZ_RUN) $(FUZZ_BUILD)
