/*
 * fuzz/fuzz_dns.c -- DNS answer decoding: core.dns_parse(wire).
 *
 * The input is a DNS message as a resolver sent it. Checked: dns_parse
 * never raises; it returns either nil, message, "protocol" | "too-long", or
 * a table whose header fields have their types, whose three sections are
 * sequences of records with name, type, class and ttl, and none of whose
 * strings is longer than MXP_TEXT_MAX (type and class mnemonics such as
 * "TYPE65535" excepted up to 64 bytes).
 */
#include "harness.h"

static const char *const dns_codes[] = { MXP_E_PROTOCOL, MXP_E_TOOLONG, NULL };
static const char *const sections[] = { "answer", "authority", "additional" };

static void check_field(lua_State *L, int idx, const char *k, int type)
{
	if (lua_getfield(L, idx, k) != type)
		fz_fail("dns_parse", "field %s is a %s, not a %s", k,
		    luaL_typename(L, -1), lua_typename(L, type));
	lua_pop(L, 1);
}

static void check_message(lua_State *L, int idx)
{
	static const char *const flags[] = { "qr", "aa", "tc", "rd", "ra", "ad", "cd" };
	lua_Integer id, n, i;
	size_t s, f;

	if (lua_getfield(L, idx, "id") != LUA_TNUMBER || !lua_isinteger(L, -1))
		fz_fail("dns_parse", "id is not an integer");
	id = lua_tointeger(L, -1);
	lua_pop(L, 1);
	if (id < 0 || id > 65535)
		fz_fail("dns_parse", "id %lld", (long long)id);
	for (f = 0; f < sizeof flags / sizeof flags[0]; f++)
		check_field(L, idx, flags[f], LUA_TBOOLEAN);
	check_field(L, idx, "opcode", LUA_TSTRING);
	check_field(L, idx, "rcode", LUA_TSTRING);
	for (s = 0; s < sizeof sections / sizeof sections[0]; s++) {
		if (lua_getfield(L, idx, sections[s]) != LUA_TTABLE)
			fz_fail("dns_parse", "%s is not a table", sections[s]);
		n = luaL_len(L, -1);
		if (n > MXP_DNS_RR_MAX)
			fz_fail("dns_parse", "%lld %s records", (long long)n, sections[s]);
		for (i = 1; i <= n; i++) {
			if (lua_geti(L, -1, i) != LUA_TTABLE)
				fz_fail("dns_parse", "%s[%lld] is not a table",
				    sections[s], (long long)i);
			check_field(L, -1, "name", LUA_TSTRING);
			check_field(L, -1, "type", LUA_TSTRING);
			check_field(L, -1, "class", LUA_TSTRING);
			check_field(L, -1, "ttl", LUA_TNUMBER);
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
	fz_check_strings(L, idx, MXP_TEXT_MAX > 64 ? MXP_TEXT_MAX : 64, "dns_parse");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lua_State *L = fz_state();
	int n;

	fz_push_core(L, "dns_parse");
	lua_pushlstring(L, (const char *)data, size);
	n = fz_call(L, 1, "dns_parse");
	if (n == 1 && lua_istable(L, 1))
		check_message(L, 1);
	else
		fz_check_failure(L, 1, n, "dns_parse", dns_codes);
	fz_reset(L);
	return 0;
}
