/*
 * smtp.c -- SMTP reply framing (RFC 5321 §4.2), a pure function over bytes.
 *
 * A reply is one or more lines "NNN-text" ended by "NNN text" (or a bare
 * "NNN"); every line of one reply carries the same code. Replies are framed
 * by those continuations, never by counting lines. Line length, line count
 * and reply size are capped; a bare LF is accepted as a line end (seen in
 * the wild), the CR before it is removed from the text.
 */
#include "mxprobe.h"

#include <stdio.h>
#include <string.h>

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* core.smtp_reply(buf [, init]) ->
 *   reply, next      a complete reply {code = n, lines = {...}} and the
 *                    index of the first byte after it
 *   false            more bytes are needed
 *   nil, msg, code   "protocol" or "too-long"
 */
static int l_smtp_reply(lua_State *L)
{
	size_t len;
	const char *buf = luaL_checklstring(L, 1, &len);
	lua_Integer init = luaL_optinteger(L, 2, 1);
	size_t pos, start;
	int code = -1, nlines = 0;
	char msg[160];

	luaL_argcheck(L, init >= 1 && (size_t)init <= len + 1, 2, "index out of range");
	start = pos = (size_t)init - 1;
	lua_createtable(L, 0, 2);     /* reply */
	lua_createtable(L, 4, 0);     /* lines */
	for (;;) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t linelen, textlen;
		int this_code;
		char sep;

		if (nl == NULL) {
			if (len - pos > MXP_SMTP_LINE_MAX) {
				snprintf(msg, sizeof msg,
					 "reply line longer than %d bytes", MXP_SMTP_LINE_MAX);
				return mxp_push_fail(L, msg, MXP_E_TOOLONG);
			}
			lua_pushboolean(L, 0);
			return 1;
		}
		linelen = (size_t)(nl - line) + 1;
		if (linelen > MXP_SMTP_LINE_MAX) {
			snprintf(msg, sizeof msg, "reply line longer than %d bytes",
				 MXP_SMTP_LINE_MAX);
			return mxp_push_fail(L, msg, MXP_E_TOOLONG);
		}
		if (pos + linelen - start > MXP_SMTP_REPLY_MAX) {
			snprintf(msg, sizeof msg, "reply longer than %d bytes",
				 MXP_SMTP_REPLY_MAX);
			return mxp_push_fail(L, msg, MXP_E_TOOLONG);
		}
		if (++nlines > MXP_SMTP_LINES_MAX) {
			snprintf(msg, sizeof msg, "reply of more than %d lines",
				 MXP_SMTP_LINES_MAX);
			return mxp_push_fail(L, msg, MXP_E_TOOLONG);
		}
		textlen = linelen - 1;
		if (textlen > 0 && line[textlen - 1] == '\r')
			textlen--;
		if (textlen < 3 || !is_digit(line[0]) || !is_digit(line[1]) ||
		    !is_digit(line[2]) || (textlen > 3 && line[3] != '-' && line[3] != ' '))
			return mxp_push_fail(L, "reply line does not start with a three-digit code",
					     MXP_E_PROTOCOL);
		this_code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		if (line[0] < '2' || line[0] > '5') {
			snprintf(msg, sizeof msg, "reply code %03d outside 2xx-5xx", this_code);
			return mxp_push_fail(L, msg, MXP_E_PROTOCOL);
		}
		if (code >= 0 && this_code != code) {
			snprintf(msg, sizeof msg, "reply code changed from %03d to %03d mid-reply",
				 code, this_code);
			return mxp_push_fail(L, msg, MXP_E_PROTOCOL);
		}
		code = this_code;
		sep = textlen > 3 ? line[3] : ' ';
		lua_pushlstring(L, textlen > 4 ? line + 4 : "", textlen > 4 ? textlen - 4 : 0);
		lua_seti(L, -2, nlines);
		pos += linelen;
		if (sep == ' ')
			break;
	}
	lua_setfield(L, -2, "lines");
	lua_pushinteger(L, code);
	lua_setfield(L, -2, "code");
	lua_pushinteger(L, (lua_Integer)pos + 1);
	return 2;
}

static const luaL_Reg smtp_funcs[] = {
	{"smtp_reply", l_smtp_reply},
	{NULL, NULL}
};

void mxp_smtp_open(lua_State *L)
{
	luaL_setfuncs(L, smtp_funcs, 0);
}
