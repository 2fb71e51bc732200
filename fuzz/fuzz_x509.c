/*
 * fuzz/fuzz_x509.c -- certificate extraction: core.x509_parse(pem), and
 * core.x509_verify on every chain that parses.
 *
 * Two shapes of input:
 *   - starting with '-': PEM text, given as it is (the PEM layer);
 *   - anything else: DER. The input is cut into DER elements by their outer
 *     length (the last one takes what is left), each is wrapped into its
 *     own "-----BEGIN CERTIFICATE-----" block, so mutations reach the
 *     certificate decoder and the extraction code directly and a chain is
 *     several DER certificates back to back.
 * Checked: neither function raises; x509_parse returns nil, message,
 * "protocol" | "too-long" or 1..MXP_X509_CHAIN_MAX certificate tables of
 * plain data whose strings are bounded; x509_verify of a chain that parsed
 * returns a result table with a boolean ok, at most 64 errors and the same
 * chain length. The CA for x509_verify is the file named by $MXP_FUZZ_CA
 * (make fuzz sets fuzz/ca.pem, the root of the x509 seeds); without it
 * x509_verify is not called. The verification time is fixed, so a run is
 * reproducible.
 * core.x509_dane (DANE) runs on every chain that parses, with a DANE-TA
 * record of each certificate's SPKI and a DANE-EE record of each one's
 * SHA-256: each certificate is then a trust anchor once, so the chain
 * verification to an anchor runs at every depth. Checked: it returns a
 * table with at most one `ta` entry per certificate, each with a boolean
 * ok, and the chain length of x509_parse.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#define VERIFY_NAME "mx.example.test"
#define VERIFY_TIME 1811808000     /* 2027-06-01, inside the seeds' validity */
#ifndef MXP_X509_ERRORS_MAX        /* as x509.c defines it, privately */
#define MXP_X509_ERRORS_MAX 64
#endif
/* a serial is MXP_TEXT_MAX hex digits and a sign; OIDs, digests and
 * algorithm names are short but not cut */
#define STRING_MAX (MXP_TEXT_MAX + 1 > 128 ? MXP_TEXT_MAX + 1 : 128)

static const char *const x509_codes[] = { MXP_E_PROTOCOL, MXP_E_TOOLONG, NULL };

/* total length of the DER element at p, at least 1, at most n */
static size_t der_element(const uint8_t *p, size_t n)
{
	size_t hdr, len = 0, k, i;

	if (n < 2)
		return n;
	if (p[1] < 0x80) {
		hdr = 2;
		len = p[1];
	} else {
		k = p[1] & 0x7f;
		if (k == 0 || k > 4 || n < 2 + k)
			return n;
		hdr = 2 + k;
		for (i = 0; i < k; i++)
			len = len << 8 | p[2 + i];
	}
	return len > n - hdr ? n : hdr + len;
}

static void add_base64(luaL_Buffer *B, const uint8_t *p, size_t n)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, col = 0;

	for (i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		luaL_addchar(B, b64[v >> 18 & 63]);
		luaL_addchar(B, b64[v >> 12 & 63]);
		luaL_addchar(B, i + 1 < n ? b64[v >> 6 & 63] : '=');
		luaL_addchar(B, i + 2 < n ? b64[v & 63] : '=');
		if ((col += 4) == 64) {
			luaL_addchar(B, '\n');
			col = 0;
		}
	}
	if (col != 0)
		luaL_addchar(B, '\n');
}

/* push the PEM text for the input */
static void push_pem(lua_State *L, const uint8_t *data, size_t size)
{
	luaL_Buffer B;
	size_t off = 0, n;

	if (size > 0 && data[0] == '-') {
		lua_pushlstring(L, (const char *)data, size);
		return;
	}
	luaL_buffinit(L, &B);
	while (off < size) {
		n = der_element(data + off, size - off);
		luaL_addstring(&B, "-----BEGIN CERTIFICATE-----\n");
		add_base64(&B, data + off, n);
		luaL_addstring(&B, "-----END CERTIFICATE-----\n");
		off += n;
	}
	luaL_pushresult(&B);
}

static void check_certs(lua_State *L, int idx)
{
	lua_Integer n = luaL_len(L, idx), i;

	if (n < 1 || n > MXP_X509_CHAIN_MAX)
		fz_fail("x509_parse", "%lld certificates (limit %d)", (long long)n,
		    MXP_X509_CHAIN_MAX);
	for (i = 1; i <= n; i++) {
		if (lua_geti(L, idx, i) != LUA_TTABLE)
			fz_fail("x509_parse", "certificate %lld is not a table", (long long)i);
		if (lua_getfield(L, -1, "sha256") != LUA_TSTRING)
			fz_fail("x509_parse", "certificate %lld has no sha256", (long long)i);
		if (lua_getfield(L, -2, "san_count") != LUA_TNUMBER)
			fz_fail("x509_parse", "certificate %lld has no san_count", (long long)i);
		if (lua_getfield(L, -3, "san_dns") != LUA_TTABLE ||
		    lua_getfield(L, -4, "san_ip") != LUA_TTABLE)
			fz_fail("x509_parse", "certificate %lld has no SAN tables", (long long)i);
		if (luaL_len(L, -1) + luaL_len(L, -2) > MXP_X509_SAN_MAX)
			fz_fail("x509_parse", "certificate %lld keeps %lld SANs (limit %d)",
			    (long long)i, (long long)(luaL_len(L, -1) + luaL_len(L, -2)),
			    MXP_X509_SAN_MAX);
		lua_pop(L, 5);
	}
	fz_check_strings(L, idx, STRING_MAX, "x509_parse");
}

static void verify(lua_State *L, int pem, lua_Integer ncerts, const char *ca)
{
	lua_Integer nerr;
	int n, ok;

	fz_push_core(L, "x509_verify");
	lua_pushvalue(L, pem);
	lua_createtable(L, 0, 3);
	lua_pushliteral(L, VERIFY_NAME);
	lua_setfield(L, -2, "name");
	lua_pushstring(L, ca);
	lua_setfield(L, -2, "ca_file");
	lua_pushinteger(L, VERIFY_TIME);
	lua_setfield(L, -2, "time");
	n = fz_call(L, 2, "x509_verify");
	if (n != 1 || !lua_istable(L, -1)) {
		if (n == 3 && lua_isstring(L, -2))
			fz_fail("x509_verify", "failed on a chain that parsed: %s (%s)",
			    lua_tostring(L, -2), luaL_tolstring(L, -1, NULL));
		fz_fail("x509_verify", "%d results, not a table", n);
	}
	if (lua_getfield(L, -1, "ok") != LUA_TBOOLEAN)
		fz_fail("x509_verify", "ok is not a boolean");
	ok = lua_toboolean(L, -1);
	if (lua_getfield(L, -2, "errors") != LUA_TTABLE)
		fz_fail("x509_verify", "errors is not a table");
	nerr = luaL_len(L, -1);
	if (nerr > MXP_X509_ERRORS_MAX || (ok && nerr != 0))
		fz_fail("x509_verify", "ok = %d with %lld errors", ok, (long long)nerr);
	if (lua_getfield(L, -3, "chain_length") != LUA_TNUMBER ||
	    lua_tointeger(L, -1) != ncerts)
		fz_fail("x509_verify", "chain_length differs from x509_parse's %lld",
		    (long long)ncerts);
	fz_check_strings(L, -4, STRING_MAX, "x509_verify");
	lua_pop(L, 4);
}

/* one TLSA record {usage, selector = 1 or 0, mtype = 1, data = field of cert} */
static void push_record(lua_State *L, int certs, lua_Integer i, int usage,
    const char *field)
{
	lua_createtable(L, 0, 4);
	lua_pushinteger(L, usage);
	lua_setfield(L, -2, "usage");
	lua_pushinteger(L, usage == 2 ? 1 : 0);
	lua_setfield(L, -2, "selector");
	lua_pushinteger(L, 1);
	lua_setfield(L, -2, "mtype");
	lua_geti(L, certs, i);
	lua_getfield(L, -1, field);
	lua_setfield(L, -3, "data");
	lua_pop(L, 1);
}

static void dane(lua_State *L, int pem, int certs, lua_Integer ncerts)
{
	lua_Integer i, k = 0, nta;
	int n;

	fz_push_core(L, "x509_dane");
	lua_pushvalue(L, pem);
	lua_createtable(L, 0, 3);
	lua_createtable(L, (int)(2 * ncerts), 0);
	for (i = 1; i <= ncerts; i++) {
		push_record(L, certs, i, 2, "spki_sha256");
		lua_rawseti(L, -2, ++k);
		push_record(L, certs, i, 3, "sha256");
		lua_rawseti(L, -2, ++k);
	}
	lua_setfield(L, -2, "records");
	lua_createtable(L, 1, 0);
	lua_pushliteral(L, VERIFY_NAME);
	lua_rawseti(L, -2, 1);
	lua_setfield(L, -2, "names");
	lua_pushinteger(L, VERIFY_TIME);
	lua_setfield(L, -2, "time");
	n = fz_call(L, 2, "x509_dane");
	if (n != 1 || !lua_istable(L, -1))
		fz_fail("x509_dane", "%d results on a chain that parsed", n);
	if (lua_getfield(L, -1, "chain_length") != LUA_TNUMBER ||
	    lua_tointeger(L, -1) != ncerts)
		fz_fail("x509_dane", "chain_length differs from x509_parse's %lld",
		    (long long)ncerts);
	if (lua_getfield(L, -2, "ta") != LUA_TTABLE)
		fz_fail("x509_dane", "ta is not a table");
	nta = luaL_len(L, -1);
	/* at most one per certificate (fewer when a key has no SPKI digest) */
	if (nta > ncerts)
		fz_fail("x509_dane", "%lld trust anchors verified for %lld certificates",
		    (long long)nta, (long long)ncerts);
	for (i = 1; i <= nta; i++) {
		lua_geti(L, -1, i);
		if (lua_getfield(L, -1, "ok") != LUA_TBOOLEAN)
			fz_fail("x509_dane", "ta %lld: ok is not a boolean", (long long)i);
		lua_pop(L, 2);
	}
	fz_check_strings(L, -3, STRING_MAX, "x509_dane");
	lua_pop(L, 3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *ca;
	static int ca_read;
	lua_State *L = fz_state();
	int n;

	if (!ca_read) {
		ca = getenv("MXP_FUZZ_CA");
		if (ca != NULL && *ca == '\0')
			ca = NULL;
		ca_read = 1;
	}
	push_pem(L, data, size);                                /* 1 */
	fz_push_core(L, "x509_parse");
	lua_pushvalue(L, 1);
	n = fz_call(L, 1, "x509_parse");
	if (n == 1 && lua_istable(L, 2)) {
		check_certs(L, 2);
		if (ca != NULL)
			verify(L, 1, luaL_len(L, 2), ca);
		dane(L, 1, 2, luaL_len(L, 2));
	} else {
		fz_check_failure(L, 2, n, "x509_parse", x509_codes);
	}
	fz_reset(L);
	return 0;
}
