# mxprobe -- build, test, lab, demo, bench.
# Every path is an overridable ?= variable with LuaRocks' names; DESTDIR is honoured.

LUA_VERSION  ?= 5.4
LUA          ?= lua$(LUA_VERSION)
LUA_INCDIR   ?= /usr/include/lua$(LUA_VERSION)
PREFIX       ?= /usr/local
LUADIR       ?= $(PREFIX)/share/lua/$(LUA_VERSION)
LIBDIR       ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
BINDIR       ?= $(PREFIX)/bin
BUSTED       ?= busted
CC           ?= cc

WARN = -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
       -Wpointer-arith -Wcast-qual -Wwrite-strings -Wformat=2 -Wundef \
       -Wvla -Wnull-dereference -Wimplicit-fallthrough -Wconversion -Wno-sign-conversion
# CFLAGS is the user's (optimisation, -D limits...): `make CFLAGS=-O0` or
# `make CFLAGS+=-DMXP_SMTP_LINE_MAX=4096` replace or extend it without
# losing what the build needs, which is in BUILD_CFLAGS (lua-cjson's
# model); `make check-build-flags` proves both.
CFLAGS   ?= -O2 -g
BUILD_CFLAGS = -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -fPIC $(WARN) \
               -I$(LUA_INCDIR) $(if $(WERROR),-Werror)
LIBS     ?= -ltls -lldns -lcrypto -lssl
LIBFLAG  ?= -shared

SRCS  = csrc/core.c csrc/err.c csrc/net.c csrc/smtp.c csrc/dns.c csrc/tls.c \
        csrc/x509.c csrc/poller.c csrc/random.c csrc/http.c \
        csrc/proc.c csrc/lines.c csrc/sys.c \
        csrc/spawn.c
BUILD ?= build
SO    = $(BUILD)/mxprobe/core.so

.PHONY: all deps test test-after-deps unit lint check-build-flags lab-up lab-down demo install \
        clean test-asan test-valgrind fuzz

all: $(SO)

$(SO): $(SRCS) csrc/mxprobe.h
	@mkdir -p $(dir $@)
	$(CC) $(BUILD_CFLAGS) $(CPPFLAGS) $(CFLAGS) $(LIBFLAG) -o $@ $(SRCS) $(LDFLAGS) $(LIBS)

# Installs every Debian package the build, the tests and the lab need.
deps:
	sh scripts/install-deps.sh

# The whole suite: packages, build, lab up, every spec, lab down.
# Ends with one line "N passed, N failed".
# The ASan/UBSan build of the core also runs the unit and hostile-peer specs.
# A sub-make does the rest, so that what mk/sanitize.mk finds with $(shell)
# (clang, its ASan runtime) is looked up after deps installed them.
test: deps
	$(MAKE) WERROR=1 test-after-deps

test-after-deps: all asan check-build-flags
	@rm -rf $(ASAN_REPORTS) && mkdir -p $(ASAN_REPORTS)
	SAN_BUSTED='$(ASAN_BUSTED)' SAN_CPATH='$(ASAN_BUILD)/?.so' SAN_REPORTS='$(ASAN_REPORTS)' \
	    sh spec/run-tests.sh

# Unit specs only: no sockets, no lab.
unit: all
	sh spec/run-tests.sh --unit

# luacheck over every Lua file (.luacheckrc: Lua 5.4, busted in spec/).
LUACHECK  ?= luacheck
LINT_DIRS ?= $(wildcard lua spec bench examples bin)
lint:
	$(LUACHECK) $(LINT_DIRS)

# The user's CFLAGS replaced (-O0) or extended (a limit): the core still
# builds with what it needs, and the limit is in force.
CHECK_BUILD = $(BUILD)/check-build-flags
check-build-flags:
	@rm -rf $(CHECK_BUILD)
	$(MAKE) --no-print-directory BUILD=$(CHECK_BUILD)/O0 CFLAGS=-O0 all
	$(MAKE) --no-print-directory BUILD=$(CHECK_BUILD)/limit 'CFLAGS+=-DMXP_SMTP_LINE_MAX=4096' all
	LUA_CPATH='$(CHECK_BUILD)/limit/?.so' $(LUA) -e \
	    'local n = require("mxprobe.core").limits.smtp_line_max; assert(n == 4096, n); print("check-build-flags: CFLAGS=-O0 and CFLAGS+=-D... build; smtp_line_max = " .. n)'
	@rm -rf $(CHECK_BUILD)

lab-up: all
	sh spec/lab/lab.sh up

lab-down:
	sh spec/lab/lab.sh down

# A probe of the lab's healthy and broken domains (a healthy one, an expired
# certificate, no STARTTLS, an open relay, a DANE mismatch, an MX that the
# MTA-STS policy does not list), on a machine without internet.
demo: deps all
	sh spec/lab/lab.sh up
	@LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$(BUILD)/?.so;;" $(LUA) bin/mxprobe \
	    --resolver 127.0.53.53 --ca-file spec/lab/state/ca/root.pem \
	    good.example.test expired.example.test notls.example.test openrelay.example.test \
	    dane-mismatch.example.test sts-notlisted.example.test; \
	echo "mxprobe exit status $$? (0 ok, 1 warning, 2 critical, 3 could not test)"
	sh spec/lab/lab.sh down

install: $(SO)
	install -d $(DESTDIR)$(LUADIR)/mxprobe $(DESTDIR)$(LIBDIR)/mxprobe $(DESTDIR)$(BINDIR)
	cp -R lua/mxprobe.lua lua/mxprobe $(DESTDIR)$(LUADIR)/
	install -m 755 $(SO) $(DESTDIR)$(LIBDIR)/mxprobe/core.so
	install -m 755 bin/mxprobe $(DESTDIR)$(BINDIR)/mxprobe

clean:
	rm -rf $(BUILD) build-asan build-fuzz

# memory-safety runs (test-asan, test-valgrind) and libFuzzer targets (fuzz)
include mk/sanitize.mk mk/fuzz.mk
# `make bench`: speed and memory against the lab (the bench stream's file)
-include mk/bench.mk
