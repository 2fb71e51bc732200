/*
 * fuzz/fuzz_smtp.c -- SMTP reply framing: core.smtp_reply(buf, init).
 *
 * The input is what a server sent. It is framed as a client does: reply
 * after reply from init = 1, each call starting where the last one ended,
 * until the framer wants more bytes or reports an error. Checked on every
 * reply:
 *   - next moves forward and stays inside the buffer (init < next <= #buf+1)
 *   - code is 200..599; 1..MXP_SMTP_LINES_MAX lines of text without LF,
 *     each at most MXP_SMTP_LINE_MAX bytes; the reply at most
 *     MXP_SMTP_REPLY_MAX bytes
 *   - the same bytes less the final LF are "need more" (false): a reply is
 *     never complete before its last line ends
 * and on every stop: false, or nil, message, "protocol" | "too-long".
 */
#include "harness.h"

#include <string.h>

static const char *const smtp_codes[] = { MXP_E_PROTOCOL, MXP_E_TOOLONG, NULL };

/* the reply table at idx; returns its line count */
static lua_Integer check_reply(lua_State *L, int idx)
{
	lua_Integer code, nlines, i;
	size_t len;

	if (lua_getfield(L, idx, "code") != LUA_TNUMBER || !lua_isinteger(L, -1))
		fz_fail("smtp_reply", "reply.code is not an integer");
	code = lua_tointeger(L, -1);
	lua_pop(L, 1);
	if (code < 200 || code > 599)
		fz_fail("smtp_reply", "reply.code %lld outside 200..599", (long long)code);
	if (lua_getfield(L, idx, "lines") != LUA_TTABLE)
		fz_fail("smtp_reply", "reply.lines is not a table");
	nlines = luaL_len(L, -1);
	if (nlines < 1 || nlines > MXP_SMTP_LINES_MAX)
		fz_fail("smtp_reply", "%lld lines (limit %d)", (long long)nlines,
		    MXP_SMTP_LINES_MAX);
	for (i = 1; i <= nlines; i++) {
		const char *s;

		if (lua_geti(L, -1, i) != LUA_TSTRING)
			fz_fail("smtp_reply", "line %lld is not a string", (long long)i);
		s = lua_tolstring(L, -1, &len);
		if (len > MXP_SMTP_LINE_MAX)
			fz_fail("smtp_reply", "line %lld of %zu bytes", (long long)i, len);
		if (memchr(s, '\n', len) != NULL)
			fz_fail("smtp_reply", "line %lld contains LF", (long long)i);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return nlines;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lua_State *L = fz_state();
	lua_Integer init = 1, next;
	int n;

	lua_pushlstring(L, (const char *)data, size);           /* 1: the buffer */
	for (;;) {
		fz_push_core(L, "smtp_reply");
		lua_pushvalue(L, 1);
		lua_pushinteger(L, init);
		n = fz_call(L, 2, "smtp_reply");
		if (n == 1 && lua_isboolean(L, 2) && !lua_toboolean(L, 2))
			break;                                  /* needs more */
		if (n != 2 || !lua_istable(L, 2)) {
			fz_check_failure(L, 2, n, "smtp_reply", smtp_codes);
			break;
		}
		if (!lua_isinteger(L, 3))
			fz_fail("smtp_reply", "next is not an integer");
		next = lua_tointeger(L, 3);
		if (next <= init || next > (lua_Integer)size + 1)
			fz_fail("smtp_reply", "next %lld after init %lld in %zu bytes",
			    (long long)next, (long long)init, size);
		if (next - init > MXP_SMTP_REPLY_MAX)
			fz_fail("smtp_reply", "reply of %lld bytes",
			    (long long)(next - init));
		if (data[next - 2] != '\n')
			fz_fail("smtp_reply", "reply does not end with LF");
		check_reply(L, 2);
		lua_settop(L, 1);

		/* one byte short of the reply is not yet a reply */
		fz_push_core(L, "smtp_reply");
		lua_pushlstring(L, (const char *)data, (size_t)(next - 2));
		lua_pushinteger(L, init);
		n = fz_call(L, 2, "smtp_reply (prefix)");
		if (n != 1 || !lua_isboolean(L, 2) || lua_toboolean(L, 2))
			fz_fail("smtp_reply", "the reply at %lld less its final LF is not \"need more\"",
			    (long long)init);
		lua_settop(L, 1);
		init = next;
	}
	fz_reset(L);
	return 0;
}
