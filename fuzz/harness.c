/* fuzz/harness.c -- the Lua state and the checks the fuzz targets share. */
#include "harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CORE_KEY "mxprobe.fuzz.core"
#define NESTING_MAX 8          /* deepest table the core returns is ~4 */
#define MESSAGE_MAX 1024       /* bytes in an error message */

int luaopen_mxprobe_core(lua_State *L);

static lua_State *state;

void fz_fail(const char *what, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz: %s: ", what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

lua_State *fz_state(void)
{
	if (state != NULL)
		return state;
	if ((state = luaL_newstate()) == NULL)
		fz_fail("init", "luaL_newstate failed");
	luaL_openlibs(state);
	/* as require "mxprobe.core" would: package.loaded["mxprobe.core"] */
	luaL_requiref(state, "mxprobe.core", luaopen_mxprobe_core, 0);
	if (!lua_istable(state, -1))
		fz_fail("init", "luaopen_mxprobe_core returned no table");
	lua_setfield(state, LUA_REGISTRYINDEX, CORE_KEY);
	lua_settop(state, 0);
	return state;
}

void fz_push_core(lua_State *L, const char *name)
{
	lua_getfield(L, LUA_REGISTRYINDEX, CORE_KEY);
	if (lua_getfield(L, -1, name) != LUA_TFUNCTION)
		fz_fail("init", "core.%s is not a function", name);
	lua_remove(L, -2);
}

static int traceback(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	luaL_traceback(L, L, msg != NULL ? msg : "(error object is not a string)", 1);
	return 1;
}

int fz_call(lua_State *L, int nargs, const char *what)
{
	int func = lua_gettop(L) - nargs;

	lua_pushcfunction(L, traceback);
	lua_insert(L, func);
	if (lua_pcall(L, nargs, LUA_MULTRET, func) != LUA_OK)
		fz_fail(what, "raised on input data: %s", lua_tostring(L, -1));
	lua_remove(L, func);
	return lua_gettop(L) - func + 1;
}

void fz_reset(lua_State *L)
{
	lua_settop(L, 0);
	lua_gc(L, LUA_GCCOLLECT);
}

void fz_check_failure(lua_State *L, int base, int n, const char *what,
    const char *const codes[])
{
	const char *code;
	size_t len;
	int i;

	if (n != 3 || !lua_isnil(L, base) || lua_type(L, base + 1) != LUA_TSTRING ||
	    lua_type(L, base + 2) != LUA_TSTRING)
		fz_fail(what, "%d results of types %s, %s, %s: not a table and not nil, message, code",
		    n, luaL_typename(L, base),
		    n > 1 ? luaL_typename(L, base + 1) : "none",
		    n > 2 ? luaL_typename(L, base + 2) : "none");
	lua_tolstring(L, base + 1, &len);
	if (len == 0 || len > MESSAGE_MAX)
		fz_fail(what, "error message of %zu bytes", len);
	code = lua_tostring(L, base + 2);
	for (i = 0; codes[i] != NULL; i++)
		if (strcmp(code, codes[i]) == 0)
			return;
	fz_fail(what, "error code \"%s\" not expected here (message: %s)", code,
	    lua_tostring(L, base + 1));
}

static void check_strings(lua_State *L, int idx, size_t max, const char *what,
    int depth)
{
	size_t len;

	if (depth > NESTING_MAX)
		fz_fail(what, "tables nested more than %d deep", NESTING_MAX);
	luaL_checkstack(L, 3, "fuzz: check_strings");
	idx = lua_absindex(L, idx);
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		/* never lua_tolstring a number key: it would confuse lua_next */
		if (lua_type(L, -2) == LUA_TSTRING) {
			lua_tolstring(L, -2, &len);
			if (len > max)
				fz_fail(what, "key of %zu bytes (limit %zu)", len, max);
		}
		if (lua_type(L, -1) == LUA_TSTRING) {
			lua_tolstring(L, -1, &len);
			if (len > max)
				fz_fail(what, "field %s: string of %zu bytes (limit %zu)",
				    lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "[n]",
				    len, max);
		} else if (lua_type(L, -1) == LUA_TTABLE) {
			check_strings(L, -1, max, what, depth + 1);
		} else if (lua_type(L, -1) == LUA_TUSERDATA ||
		    lua_type(L, -1) == LUA_TFUNCTION ||
		    lua_type(L, -1) == LUA_TLIGHTUSERDATA ||
		    lua_type(L, -1) == LUA_TTHREAD) {
			fz_fail(what, "a %s in a result that should be plain data",
			    luaL_typename(L, -1));
		}
		lua_pop(L, 1);
	}
}

void fz_check_strings(lua_State *L, int idx, size_t max, const char *what)
{
	check_strings(L, idx, max, what, 0);
}
