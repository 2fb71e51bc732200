/*
 * err.c -- the shared error helpers: network and environment failures are
 * returned as nil, message, code, with code from the short list in
 * mxprobe.h (misuse raises instead, through luaL_argerror/luaL_error).
 */
#include "mxprobe.h"

#include <errno.h>
#include <string.h>

int mxp_push_fail(lua_State *L, const char *message, const char *code)
{
	lua_pushnil(L);
	lua_pushstring(L, message);
	lua_pushstring(L, code);
	return 3;
}

static const char *errno_code(int err)
{
	switch (err) {
	case ECONNREFUSED: return MXP_E_REFUSED;
	case ETIMEDOUT: return MXP_E_TIMEOUT;
	case ENETUNREACH: case EHOSTUNREACH: case EADDRNOTAVAIL:
	case ENETDOWN: case EHOSTDOWN: case EAFNOSUPPORT:
		return MXP_E_UNREACHABLE;
	case ECONNRESET: case ECONNABORTED: return MXP_E_RESET;
	case EPIPE: return MXP_E_CLOSED;
	default: return MXP_E_ERROR;
	}
}

/* err is saved by the caller before anything that may touch errno */
int mxp_push_errno(lua_State *L, const char *context, int err)
{
	lua_pushnil(L);
	lua_pushfstring(L, "%s: %s", context, strerror(err));
	lua_pushstring(L, errno_code(err));
	return 3;
}
