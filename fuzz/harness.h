/*
 * fuzz/harness.h -- what the libFuzzer targets share: one Lua state per
 * process with the standard libraries and mxprobe.core loaded, a protected
 * call that turns any Lua error into a crash, and checks of the shape of
 * what the core returns.
 *
 * The core promises that no byte string makes its parsers raise (misuse
 * raises, bad input is data), that every string it copies out is bounded,
 * and that failures come as nil, message, code from a short list. A target
 * that sees anything else calls fz_fail(), which prints and aborts, so
 * libFuzzer saves the input as a crash.
 */
#ifndef MXP_FUZZ_HARNESS_H
#define MXP_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "mxprobe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The process's Lua state, created on first use; its stack is empty. */
lua_State *fz_state(void);

/* Push core[name] (a function). */
void fz_push_core(lua_State *L, const char *name);

/* Call the function below nargs arguments with all its results kept;
 * returns how many there are. A Lua error is a crash (fz_fail). */
int fz_call(lua_State *L, int nargs, const char *what);

/* Empty the stack and collect every garbage object, so the __gc of every
 * guard created by the input runs before the next input and LeakSanitizer
 * sees memory that nothing frees. */
void fz_reset(lua_State *L);

/* Print "fuzz: <what>: <message>" and abort. */
void fz_fail(const char *what, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((noreturn, format(printf, 2, 3)))
#endif
	;

/* The results at [base, base+n) are nil, message, code with code one of
 * the words given (NULL-terminated); fails otherwise. */
void fz_check_failure(lua_State *L, int base, int n, const char *what,
    const char *const codes[]);

/* Every string reachable from the table at idx (keys and values, nested
 * tables too, depth-limited) is at most max bytes long; fails otherwise. */
void fz_check_strings(lua_State *L, int idx, size_t max, const char *what);

#endif
