/*
 * random.c -- unpredictable bytes from the kernel (getrandom(2)), for DNS
 * query IDs and anything else a peer must not guess.
 *
 *   core.random_bytes(n) -> string of n bytes (0 <= n <= MXP_RANDOM_MAX)
 *                           | nil, msg, code
 *   core.random_u16()    -> integer 0..65535 | nil, msg, code
 *
 * GRND_NONBLOCK: before the kernel's pool is initialised (early boot)
 * this fails with EAGAIN instead of blocking the whole loop.
 */
#include "mxprobe.h"

#include <errno.h>
#include <sys/random.h>

/* fills buf with n bytes; 0, or an errno */
static int fill(unsigned char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = getrandom(buf + got, n - got, GRND_NONBLOCK);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		got += (size_t)r;
	}
	return 0;
}

static int l_random_bytes(lua_State *L)
{
	lua_Integer n = luaL_checkinteger(L, 1);
	unsigned char buf[MXP_RANDOM_MAX];
	int err;

	luaL_argcheck(L, n >= 0 && n <= MXP_RANDOM_MAX, 1, "out of range");
	if ((err = fill(buf, (size_t)n)) != 0)
		return mxp_push_errno(L, "getrandom", err);
	lua_pushlstring(L, (const char *)buf, (size_t)n);
	return 1;
}

static int l_random_u16(lua_State *L)
{
	unsigned char b[2];
	int err;

	if ((err = fill(b, sizeof b)) != 0)
		return mxp_push_errno(L, "getrandom", err);
	lua_pushinteger(L, (lua_Integer)(b[0] << 8 | b[1]));
	return 1;
}

void mxp_random_open(lua_State *L)
{
	static const luaL_Reg funcs[] = {
		{"random_bytes", l_random_bytes},
		{"random_u16", l_random_u16},
		{NULL, NULL}
	};
	luaL_setfuncs(L, funcs, 0);
}
