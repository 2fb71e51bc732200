/*
 * fuzz/fuzz_addr.c -- address classes (issue 12): core.address_class(text).
 *
 * The input is an address as DNS or a user gives it. Checked on every
 * input:
 *   - the result is nil, or class, family, canonical with class one of the
 *     fixed words and family "ipv4" or "ipv6"
 *   - an input with a NUL in it is nil (inet_pton would stop at the NUL)
 *   - the canonical form is a fixed point: it classifies to the same
 *     class, family and canonical text (so ::ffff:a.b.c.d and a.b.c.d
 *     dedupe to one address)
 *   - the canonical text of an "ipv4" result has no ':'
 */
#include "harness.h"

#include <string.h>

static const char *const classes[] = {
	"unspecified", "loopback", "private", "link-local", "multicast",
	"broadcast", "reserved", "documentation", "global", NULL
};

static void check_class(const char *c)
{
	int i;

	for (i = 0; classes[i] != NULL; i++)
		if (strcmp(c, classes[i]) == 0)
			return;
	fz_fail("address_class", "unknown class %s", c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lua_State *L = fz_state();
	const char *cls, *fam, *canon;
	int n;

	fz_push_core(L, "address_class");
	lua_pushlstring(L, (const char *)data, size);
	n = fz_call(L, 1, "address_class");
	if (n == 1 && lua_isnil(L, 1)) {
		fz_reset(L);
		return 0;
	}
	if (n != 3 || !lua_isstring(L, 1) || !lua_isstring(L, 2) || !lua_isstring(L, 3))
		fz_fail("address_class", "%d results, not nil or class, family, canonical", n);
	if (memchr(data, 0, size) != NULL)
		fz_fail("address_class", "an input with a NUL classified");
	cls = lua_tostring(L, 1);
	fam = lua_tostring(L, 2);
	canon = lua_tostring(L, 3);
	check_class(cls);
	if (strcmp(fam, "ipv4") != 0 && strcmp(fam, "ipv6") != 0)
		fz_fail("address_class", "family %s", fam);
	if (strcmp(fam, "ipv4") == 0 && strchr(canon, ':') != NULL)
		fz_fail("address_class", "ipv4 canonical %s", canon);
	fz_push_core(L, "address_class");
	lua_pushvalue(L, 3);
	n = fz_call(L, 1, "address_class (canonical)");
	if (n != 3 || strcmp(lua_tostring(L, 4), cls) != 0 || strcmp(lua_tostring(L, 5), fam) != 0 ||
	    strcmp(lua_tostring(L, 6), canon) != 0)
		fz_fail("address_class", "canonical %s is not a fixed point", canon);
	fz_reset(L);
	return 0;
}
