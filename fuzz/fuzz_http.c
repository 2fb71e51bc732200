/*
 * fuzz/fuzz_http.c -- HTTP response framing: core.http_response(buf, pos,
 * eof, opts), and DNS-over-TCP framing: core.dns_tcp_frame(buf, pos).
 *
 * The first input byte chooses how the rest is read: bit 0 eof (the
 * stream has ended after these bytes), bit 1 opts.head (the request was
 * HEAD). The rest is what a server sent; it is framed response after
 * response from pos = 1, as a client keeping the connection would. Checked
 * on every response:
 *   - next moves forward and stays inside the buffer (pos < next <= #buf+1)
 *   - status 100..599 (never an interim 1xx but 101), version "HTTP/d.d",
 *     at most MXP_HTTP_HEADERS_MAX fields, body at most MXP_HTTP_BODY_MAX
 *     bytes, every other string at most MXP_HTTP_HEADER_MAX bytes
 *   - when the response was complete without eof: the same bytes less the
 *     last one are "need more" (false), never a response or an error
 * and on every stop: false, or nil, message, "protocol" | "too-long".
 * The same bytes then go through dns_tcp_frame message after message.
 */
#include "harness.h"

#include <string.h>

static const char *const codes[] = { MXP_E_PROTOCOL, MXP_E_TOOLONG, NULL };

static void check_response(lua_State *L, int idx)
{
	lua_Integer status;
	size_t len;
	const char *v;

	if (lua_getfield(L, idx, "status") != LUA_TNUMBER || !lua_isinteger(L, -1))
		fz_fail("http_response", "status is not an integer");
	status = lua_tointeger(L, -1);
	if (status < 100 || status > 599 || (status < 200 && status != 101))
		fz_fail("http_response", "status %lld", (long long)status);
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "version") != LUA_TSTRING)
		fz_fail("http_response", "version is not a string");
	v = lua_tolstring(L, -1, &len);
	if (len != 8 || memcmp(v, "HTTP/", 5) != 0)
		fz_fail("http_response", "version \"%s\"", v);
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "headers") != LUA_TTABLE)
		fz_fail("http_response", "headers is not a table");
	if (luaL_len(L, -1) > MXP_HTTP_HEADERS_MAX)
		fz_fail("http_response", "%lld headers", (long long)luaL_len(L, -1));
	fz_check_strings(L, -1, MXP_HTTP_HEADER_MAX, "http_response headers");
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "body") != LUA_TSTRING)
		fz_fail("http_response", "body is not a string");
	lua_tolstring(L, -1, &len);
	if (len > MXP_HTTP_BODY_MAX)
		fz_fail("http_response", "body of %zu bytes", len);
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "chunked") != LUA_TBOOLEAN)
		fz_fail("http_response", "chunked is not a boolean");
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "reason") != LUA_TSTRING)
		fz_fail("http_response", "reason is not a string");
	lua_pop(L, 1);
}

static void push_opts(lua_State *L, int head)
{
	lua_createtable(L, 0, 1);
	lua_pushboolean(L, head);
	lua_setfield(L, -2, "head");
}

static void http(lua_State *L, const uint8_t *data, size_t size, int eof, int head)
{
	lua_Integer pos = 1, next;
	int n;

	lua_pushlstring(L, (const char *)data, size);           /* 1 */
	for (;;) {
		fz_push_core(L, "http_response");
		lua_pushvalue(L, 1);
		lua_pushinteger(L, pos);
		lua_pushboolean(L, eof);
		push_opts(L, head);
		n = fz_call(L, 4, "http_response");
		if (n == 1 && lua_isboolean(L, 2) && !lua_toboolean(L, 2))
			break;
		if (n != 2 || !lua_istable(L, 2)) {
			fz_check_failure(L, 2, n, "http_response", codes);
			break;
		}
		if (!lua_isinteger(L, 3))
			fz_fail("http_response", "next is not an integer");
		next = lua_tointeger(L, 3);
		if (next < pos || next > (lua_Integer)size + 1 ||
		    (next == pos && size > 0))
			fz_fail("http_response", "next %lld after pos %lld in %zu bytes",
			    (long long)next, (long long)pos, size);
		check_response(L, 2);
		lua_settop(L, 1);

		/* complete without eof: one byte short is not yet complete */
		if (next > pos) {
			fz_push_core(L, "http_response");
			lua_pushlstring(L, (const char *)data, (size_t)(next - 2));
			lua_pushinteger(L, pos);
			lua_pushboolean(L, 0);
			push_opts(L, head);
			n = fz_call(L, 4, "http_response (prefix)");
			if (!eof && (n != 1 || !lua_isboolean(L, 2) || lua_toboolean(L, 2)))
				fz_fail("http_response", "the response at %lld less its last byte is not \"need more\"",
				    (long long)pos);
			lua_settop(L, 1);
		}
		if (next == pos || next > (lua_Integer)size)
			break;
		pos = next;
	}
	lua_settop(L, 0);
}

static void dns_tcp(lua_State *L, const uint8_t *data, size_t size)
{
	lua_Integer pos = 1, next;
	size_t len;
	int n;

	lua_pushlstring(L, (const char *)data, size);           /* 1 */
	for (;;) {
		fz_push_core(L, "dns_tcp_frame");
		lua_pushvalue(L, 1);
		lua_pushinteger(L, pos);
		n = fz_call(L, 2, "dns_tcp_frame");
		if (n == 1 && lua_isboolean(L, 2) && !lua_toboolean(L, 2))
			break;
		if (n != 2 || lua_type(L, 2) != LUA_TSTRING) {
			fz_check_failure(L, 2, n, "dns_tcp_frame", codes);
			break;
		}
		lua_tolstring(L, 2, &len);
		next = lua_tointeger(L, 3);
		if (len < 1 || next != pos + 2 + (lua_Integer)len ||
		    next > (lua_Integer)size + 1)
			fz_fail("dns_tcp_frame", "message of %zu bytes, next %lld after %lld",
			    len, (long long)next, (long long)pos);
		lua_settop(L, 1);
		pos = next;
	}
	lua_settop(L, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lua_State *L = fz_state();
	uint8_t flags;

	if (size == 0)
		return 0;
	flags = data[0];
	http(L, data + 1, size - 1, flags & 1, (flags & 2) != 0);
	dns_tcp(L, data + 1, size - 1);
	fz_reset(L);
	return 0;
}
