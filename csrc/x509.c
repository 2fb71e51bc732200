/*
 * x509.c -- certificate chains: PEM text -> plain Lua tables, and chain
 * verification against a libcrypto X509_STORE. Pure functions: no I/O
 * except reading the CA store once per (Lua state, CA file).
 *
 *   core.x509_parse(pem)        -> { cert, ... } leaf first | nil, msg, code
 *   core.x509_verify(pem, opts) -> { ok, reason, detail, depth, errors, ... }
 *                                 | nil, msg, code
 *   core.x509_chain(pem, opts)  -> { certificates = <x509_parse's>,
 *                                    verify = <x509_verify's> | nil,
 *                                    verify_error = msg (CA not loaded),
 *                                    presented = n, truncated = true? }
 *                                 | nil, msg, code
 *   core.x509_dane(pem, opts)   -> { matches, ta, chain_length, ... }
 *                                 | nil, msg, code   (DANE, below)
 *
 * x509_chain decodes the PEM once and takes both the fields and the
 * verification from the same X509 objects (the two others are the same
 * code on their own). Over MXP_X509_CHAIN_MAX certificates it keeps and
 * judges the first ones, counts the rest's PEM blocks without decoding
 * them and says truncated; x509_parse and x509_verify refuse such a chain
 * (too-long).
 *
 * Facts only: an untrusted chain is a result (ok = false), never an error.
 * Every OpenSSL object lives in a "guard" userdata while Lua tables are
 * built, so a Lua memory error cannot leak it; the guard is emptied
 * explicitly on the normal path and by __gc otherwise.
 */
#include "mxprobe.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#ifndef MXP_X509_ERRORS_MAX    /* verification errors recorded per chain */
#define MXP_X509_ERRORS_MAX 64
#endif


/* ---- guard: owns everything one call allocates ------------------------ */

struct verr {
	int depth;
	int error;
	int last_presented;   /* cert at depth is the last one sent, not self-issued */
};

struct guard {
	BIO *bio;
	STACK_OF(X509) *chain;      /* owns its certificates */
	STACK_OF(X509) *untrusted;  /* borrows from chain */
	X509_STORE_CTX *ctx;
	GENERAL_NAMES *gens;
	X509_STORE *tastore;        /* x509_dane: one trust anchor */
	int nerr;
	int truncated;     /* more errors than MXP_X509_ERRORS_MAX */
	int presented;     /* PEM certificates in the input */
	int cut;           /* chain longer than MXP_X509_CHAIN_MAX, rest not decoded */
	struct verr err[MXP_X509_ERRORS_MAX];
};

static void guard_release(struct guard *g)
{
	if (g->tastore != NULL) {
		X509_STORE_free(g->tastore);
		g->tastore = NULL;
	}
	if (g->gens != NULL) {
		GENERAL_NAMES_free(g->gens);
		g->gens = NULL;
	}
	if (g->ctx != NULL) {
		X509_STORE_CTX_free(g->ctx);
		g->ctx = NULL;
	}
	if (g->untrusted != NULL) {
		sk_X509_free(g->untrusted);
		g->untrusted = NULL;
	}
	if (g->chain != NULL) {
		sk_X509_pop_free(g->chain, X509_free);
		g->chain = NULL;
	}
	if (g->bio != NULL) {
		BIO_free(g->bio);
		g->bio = NULL;
	}
}

static int guard_gc(lua_State *L)
{
	guard_release(luaL_checkudata(L, 1, MXP_X509_GUARD_MT));
	return 0;
}

/* pushes an empty guard */
static struct guard *guard_new(lua_State *L)
{
	struct guard *g = lua_newuserdatauv(L, sizeof *g, 0);
	memset(g, 0, sizeof *g);
	luaL_setmetatable(L, MXP_X509_GUARD_MT);
	return g;
}

/* ---- small helpers ----------------------------------------------------- */

/* push at most MXP_TEXT_MAX bytes, not cutting a UTF-8 sequence in two */
static void push_text(lua_State *L, const char *s, size_t n)
{
	if (n > MXP_TEXT_MAX) {
		n = MXP_TEXT_MAX;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	lua_pushlstring(L, s, n);
}

static void push_hex(lua_State *L, const unsigned char *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	luaL_Buffer b;
	size_t i;

	luaL_buffinit(L, &b);
	for (i = 0; i < n; i++) {
		luaL_addchar(&b, digits[p[i] >> 4]);
		luaL_addchar(&b, digits[p[i] & 15]);
	}
	luaL_pushresult(&b);
}

static void set_string(lua_State *L, const char *field, const char *s)
{
	if (s != NULL) {
		push_text(L, s, strlen(s));
		lua_setfield(L, -2, field);
	}
}

static void set_integer(lua_State *L, const char *field, lua_Integer v)
{
	lua_pushinteger(L, v);
	lua_setfield(L, -2, field);
}

static void set_boolean(lua_State *L, const char *field, int v)
{
	lua_pushboolean(L, v);
	lua_setfield(L, -2, field);
}

/* the most telling OpenSSL error (a system error's strerror, else the
 * first reason in the queue) or fallback; empties the queue */
static const char *ssl_reason(char *buf, size_t len, const char *fallback)
{
	unsigned long e, first = 0, sys = 0;
	const char *r;

	while ((e = ERR_get_error()) != 0) {
		if (first == 0)
			first = e;
		if (sys == 0 && ERR_SYSTEM_ERROR(e))
			sys = e;
	}
	if (sys != 0) {
		snprintf(buf, len, "%s", strerror(ERR_GET_REASON(sys)));
		return buf;
	}
	if (first == 0)
		return fallback;
	if ((r = ERR_reason_error_string(first)) != NULL)
		return r;
	ERR_error_string_n(first, buf, len);
	return buf;
}

static int is_self_issued(X509 *x)
{
	return X509_NAME_cmp(X509_get_subject_name(x),
	    X509_get_issuer_name(x)) == 0;
}

/* ---- parsing ----------------------------------------------------------- */

/* PEM certificate blocks in p[0..n), counted, not decoded: the BEGIN
 * lines PEM_read_bio_X509 reads ("CERTIFICATE", "X509 CERTIFICATE") */
static int count_pem(const char *p, size_t n)
{
	static const char *const begins[] = {
		"-----BEGIN CERTIFICATE-----", "-----BEGIN X509 CERTIFICATE-----"
	};
	int count = 0;
	size_t i, k;

	for (i = 0; i < n; i++) {
		if (p[i] != '-')
			continue;
		for (k = 0; k < 2; k++) {
			size_t m = strlen(begins[k]);
			if (n - i >= m && memcmp(p + i, begins[k], m) == 0) {
				count++;
				i += m - 1;
				break;
			}
		}
	}
	return count;
}

/* PEM text at stack index idx -> g->chain; returns 0 or pushes nil,msg,code
 * and returns 3. keep: over MXP_X509_CHAIN_MAX certificates, keep the
 * first ones and set g->cut (else too-long). g->presented: how many the
 * text holds. */
static int read_chain(lua_State *L, int idx, struct guard *g, const char *what,
    int keep)
{
	size_t len;
	const char *pem = luaL_checklstring(L, idx, &len);
	X509 *x;
	unsigned long e;

	if (len > MXP_X509_PEM_MAX) {
		lua_pushnil(L);
		lua_pushfstring(L, "%s: PEM longer than %d bytes", what,
		    (int)MXP_X509_PEM_MAX);
		lua_pushstring(L, MXP_E_TOOLONG);
		return 3;
	}
	ERR_clear_error();
	if ((g->bio = BIO_new_mem_buf(pem, (int)len)) == NULL ||
	    (g->chain = sk_X509_new_null()) == NULL) {
		ERR_clear_error();
		return luaL_error(L, "%s: out of memory", what);
	}
	while (!(keep && sk_X509_num(g->chain) >= MXP_X509_CHAIN_MAX) &&
	    (x = PEM_read_bio_X509(g->bio, NULL, NULL, NULL)) != NULL) {
		if (sk_X509_num(g->chain) >= MXP_X509_CHAIN_MAX) {
			X509_free(x);
			ERR_clear_error();
			lua_pushnil(L);
			lua_pushfstring(L, "%s: more than %d certificates", what,
			    (int)MXP_X509_CHAIN_MAX);
			lua_pushstring(L, MXP_E_TOOLONG);
			return 3;
		}
		if (sk_X509_push(g->chain, x) <= 0) {
			X509_free(x);
			ERR_clear_error();
			return luaL_error(L, "%s: out of memory", what);
		}
	}
	g->presented = sk_X509_num(g->chain);
	if (keep && g->presented >= MXP_X509_CHAIN_MAX) {
		/* the rest is counted, not decoded (nor judged) */
		char *rest = NULL;
		long n = BIO_get_mem_data(g->bio, &rest);
		int more = n > 0 && rest != NULL ? count_pem(rest, (size_t)n) : 0;
		g->presented += more;
		g->cut = more > 0;
		ERR_clear_error();
	}
	/* the loop ends on "no start line" when the text is used up; anything
	 * else is a broken certificate */
	e = ERR_peek_last_error();
	if (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM &&
	    ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
		char buf[256];
		const char *r = ssl_reason(buf, sizeof buf, "bad certificate");
		lua_pushnil(L);
		lua_pushfstring(L, "%s: certificate %d: %s", what,
		    sk_X509_num(g->chain) + 1, r);
		lua_pushstring(L, MXP_E_PROTOCOL);
		return 3;
	}
	ERR_clear_error();
	BIO_free(g->bio);
	g->bio = NULL;
	if (sk_X509_num(g->chain) == 0) {
		lua_pushnil(L);
		lua_pushfstring(L, "%s: no PEM certificate found", what);
		lua_pushstring(L, MXP_E_PROTOCOL);
		return 3;
	}
	return 0;
}

/* one-line name, RFC 2253 order and escaping, UTF-8 kept as UTF-8 */
static void set_name(lua_State *L, const char *field, X509_NAME *name,
    struct guard *g)
{
	char *data;
	long n;

	if (name == NULL)
		return;
	if ((g->bio = BIO_new(BIO_s_mem())) == NULL) {
		ERR_clear_error();
		luaL_error(L, "x509: out of memory");
	}
	if (X509_NAME_print_ex(g->bio, name, 0,
	    XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		n = BIO_get_mem_data(g->bio, &data);
		if (n >= 0) {
			push_text(L, data, (size_t)n);
			lua_setfield(L, -2, field);
		}
	}
	ERR_clear_error();
	BIO_free(g->bio);
	g->bio = NULL;
}

/* last CN as UTF-8; the bytes are kept even when they contain NUL */
static void set_cn(lua_State *L, X509_NAME *name)
{
	int i = -1, last = -1;
	X509_NAME_ENTRY *ent;
	ASN1_STRING *s;
	unsigned char *utf8 = NULL;
	int n;

	if (name == NULL)
		return;
	while ((i = X509_NAME_get_index_by_NID(name, NID_commonName, i)) >= 0)
		last = i;
	if (last < 0 || (ent = X509_NAME_get_entry(name, last)) == NULL ||
	    (s = X509_NAME_ENTRY_get_data(ent)) == NULL)
		return;
	n = ASN1_STRING_to_UTF8(&utf8, s);
	if (n >= 0) {
		/* copy, then free before anything that may raise; one byte
		 * more than kept so push_text sees where it cuts */
		char buf[MXP_TEXT_MAX + 1];
		size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf;
		memcpy(buf, utf8, len);
		OPENSSL_free(utf8);
		push_text(L, buf, len);
	} else {
		ERR_clear_error();
		push_text(L, (const char *)ASN1_STRING_get0_data(s),
		    (size_t)ASN1_STRING_length(s));
	}
	lua_setfield(L, -2, "subject_cn");
}

static void set_time(lua_State *L, const char *field, const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof tm);
	if (t != NULL && ASN1_TIME_to_tm(t, &tm) == 1)
		set_integer(L, field, (lua_Integer)timegm(&tm));
	else
		ERR_clear_error();
}

/* subjectAltName: san_dns, san_ip (at most MXP_X509_SAN_MAX kept in all),
 * san_count (every entry, of any type) */
static void set_sans(lua_State *L, X509 *x, struct guard *g)
{
	int crit = 0, i, n, kept = 0, ndns = 0, nip = 0;
	int dns_idx, ip_idx;

	lua_newtable(L);
	dns_idx = lua_gettop(L);
	lua_newtable(L);
	ip_idx = lua_gettop(L);
	/* owned by the guard while Lua tables are filled */
	g->gens = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
	n = g->gens != NULL ? sk_GENERAL_NAME_num(g->gens) : 0;
	for (i = 0; i < n; i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(g->gens, i);
		const unsigned char *p;
		int len;
		char buf[INET6_ADDRSTRLEN];

		if (kept >= MXP_X509_SAN_MAX)
			break;
		if (gn->type == GEN_DNS) {
			/* raw bytes, NUL included: judged (and escaped) in Lua */
			p = ASN1_STRING_get0_data(gn->d.dNSName);
			len = ASN1_STRING_length(gn->d.dNSName);
			push_text(L, (const char *)p, (size_t)len);
			lua_rawseti(L, dns_idx, ++ndns);
			kept++;
		} else if (gn->type == GEN_IPADD) {
			p = ASN1_STRING_get0_data(gn->d.iPAddress);
			len = ASN1_STRING_length(gn->d.iPAddress);
			if ((len == 4 && inet_ntop(AF_INET, p, buf, sizeof buf)) ||
			    (len == 16 && inet_ntop(AF_INET6, p, buf, sizeof buf))) {
				lua_pushstring(L, buf);
				lua_rawseti(L, ip_idx, ++nip);
				kept++;
			}
		}
	}
	GENERAL_NAMES_free(g->gens);
	g->gens = NULL;
	ERR_clear_error();
	lua_setfield(L, -3, "san_ip");
	lua_setfield(L, -2, "san_dns");
	set_integer(L, "san_count", n);
}

static void set_key(lua_State *L, X509 *x)
{
	EVP_PKEY *pk = X509_get0_pubkey(x);
	const char *type = NULL;
	char oid[128];

	if (pk == NULL) {
		/* an algorithm OpenSSL cannot load: name it by its OID */
		ASN1_OBJECT *alg = NULL;
		ERR_clear_error();
		if (X509_PUBKEY_get0_param(&alg, NULL, NULL, NULL,
		    X509_get_X509_PUBKEY(x)) == 1 && alg != NULL) {
			int nid = OBJ_obj2nid(alg);
			if (nid != NID_undef)
				type = OBJ_nid2sn(nid);
			else if (OBJ_obj2txt(oid, sizeof oid, alg, 1) > 0)
				type = oid;
		}
		set_string(L, "key_type", type);
		return;
	}
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA: type = "RSA"; break;
	case EVP_PKEY_EC: type = "EC"; break;
	case EVP_PKEY_ED25519: type = "ED25519"; break;
	case EVP_PKEY_ED448: type = "ED448"; break;
	case EVP_PKEY_DSA: type = "DSA"; break;
	default:
		if (EVP_PKEY_get_base_id(pk) > 0)
			type = OBJ_nid2sn(EVP_PKEY_get_base_id(pk));
		if (type == NULL)
			type = EVP_PKEY_get0_type_name(pk);
		break;
	}
	set_string(L, "key_type", type);
	if (EVP_PKEY_get_bits(pk) > 0)
		set_integer(L, "key_bits", EVP_PKEY_get_bits(pk));
	if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC) {
		char curve[80];
		size_t clen = 0;
		if (EVP_PKEY_get_utf8_string_param(pk,
		    OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof curve, &clen) == 1)
			set_string(L, "curve", curve);
	}
	ERR_clear_error();
}

static void set_sig_alg(lua_State *L, X509 *x)
{
	int nid = X509_get_signature_nid(x);
	const X509_ALGOR *alg = NULL;
	const ASN1_OBJECT *obj = NULL;
	char oid[128];

	if (nid != NID_undef && OBJ_nid2ln(nid) != NULL) {
		set_string(L, "sig_alg", OBJ_nid2ln(nid));
		return;
	}
	X509_get0_signature(NULL, &alg, x);
	if (alg != NULL)
		X509_ALGOR_get0(&obj, NULL, NULL, alg);
	if (obj != NULL && OBJ_obj2txt(oid, sizeof oid, obj, 1) > 0)
		set_string(L, "sig_alg", oid);
}

static void set_serial(lua_State *L, X509 *x)
{
	const ASN1_INTEGER *sn = X509_get0_serialNumber(x);
	int len;

	if (sn == NULL)
		return;
	len = ASN1_STRING_length(sn);
	if (len > MXP_TEXT_MAX / 2)
		len = MXP_TEXT_MAX / 2;
	if (ASN1_STRING_type(sn) == V_ASN1_NEG_INTEGER)
		lua_pushliteral(L, "-");
	else
		lua_pushliteral(L, "");
	if (len == 0)
		lua_pushliteral(L, "00");
	else
		push_hex(L, ASN1_STRING_get0_data(sn), (size_t)len);
	lua_concat(L, 2);
	lua_setfield(L, -2, "serial");
}

static void set_digests(lua_State *L, X509 *x)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	unsigned char *der = NULL;
	int n;

	if (X509_digest(x, EVP_sha256(), md, &mdlen) == 1) {
		push_hex(L, md, mdlen);
		lua_setfield(L, -2, "sha256");
	}
	/* DANE selector 1: the DER SubjectPublicKeyInfo, not only its key bits
	 * (which is what X509_pubkey_digest hashes) */
	n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	if (n > 0) {
		int ok = EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(),
		    NULL);
		OPENSSL_free(der);
		if (ok == 1) {
			push_hex(L, md, mdlen);
			lua_setfield(L, -2, "spki_sha256");
		}
	}
	ERR_clear_error();
}

static void set_unknown_critical(lua_State *L, X509 *x)
{
	int i, n = X509_get_ext_count(x), k = 0;
	char oid[128];

	lua_newtable(L);
	for (i = 0; i < n; i++) {
		X509_EXTENSION *ext = X509_get_ext(x, i);
		if (ext == NULL || !X509_EXTENSION_get_critical(ext) ||
		    X509_supported_extension(ext))
			continue;
		if (OBJ_obj2txt(oid, sizeof oid,
		    X509_EXTENSION_get_object(ext), 1) > 0) {
			lua_pushstring(L, oid);
			lua_rawseti(L, -2, ++k);
		}
	}
	lua_setfield(L, -2, "unknown_critical");
}

/* pushes the table of one certificate */
static void push_cert(lua_State *L, X509 *x, struct guard *g)
{
	uint32_t flags;

	lua_createtable(L, 0, 24);
	set_name(L, "subject", X509_get_subject_name(x), g);
	set_name(L, "issuer", X509_get_issuer_name(x), g);
	set_cn(L, X509_get_subject_name(x));
	set_sans(L, x, g);
	set_time(L, "not_before", X509_get0_notBefore(x));
	set_time(L, "not_after", X509_get0_notAfter(x));
	set_serial(L, x);
	set_key(L, x);
	set_sig_alg(L, x);
	set_digests(L, x);
	flags = X509_get_extension_flags(x);
	set_boolean(L, "is_ca", (flags & EXFLAG_CA) != 0);
	set_boolean(L, "self_issued", is_self_issued(x));
	set_integer(L, "version", X509_get_version(x) + 1);
	set_unknown_critical(L, x);
	ERR_clear_error();
}

/* pushes the list of certificate tables of g->chain */
static void push_certs(lua_State *L, struct guard *g)
{
	int i, n = sk_X509_num(g->chain);

	lua_createtable(L, n, 0);
	for (i = 0; i < n; i++) {
		push_cert(L, sk_X509_value(g->chain, i), g);
		lua_rawseti(L, -2, i + 1);
	}
}

static int l_x509_parse(lua_State *L)
{
	struct guard *g;
	int r;

	luaL_checkstring(L, 1);
	g = guard_new(L);
	if ((r = read_chain(L, 1, g, "x509 parse", 0)) != 0) {
		guard_release(g);
		return r;
	}
	push_certs(L, g);
	guard_release(g);
	return 1;
}

/* ---- the cached CA stores ---------------------------------------------- */

struct store {
	X509_STORE *st;
};

static int store_gc(lua_State *L)
{
	struct store *s = luaL_checkudata(L, 1, MXP_X509_STORE_MT);
	if (s->st != NULL) {
		X509_STORE_free(s->st);
		s->st = NULL;
	}
	return 0;
}

/* the store for ca_file (NULL: system default); loaded once per Lua state
 * and CA file, then reused. Returns it, or pushes nil,msg,code and returns
 * NULL. */
static X509_STORE *get_store(lua_State *L, const char *ca_file,
    const char *what)
{
	struct store *s;
	int ok;

	lua_getfield(L, LUA_REGISTRYINDEX, MXP_X509_STORES_KEY);
	/* the system store is under the key true, so no file name can
	 * collide with it */
	if (ca_file != NULL)
		lua_pushstring(L, ca_file);
	else
		lua_pushboolean(L, 1);
	lua_pushvalue(L, -1);
	lua_rawget(L, -3);                       /* cache key value */
	s = luaL_testudata(L, -1, MXP_X509_STORE_MT);
	if (s != NULL && s->st != NULL) {
		lua_pop(L, 3);
		return s->st;
	}
	lua_pop(L, 1);
	/* created empty before the store exists, so __gc owns it */
	s = lua_newuserdatauv(L, sizeof *s, 0);  /* cache key ud */
	s->st = NULL;
	luaL_setmetatable(L, MXP_X509_STORE_MT);
	ERR_clear_error();
	if ((s->st = X509_STORE_new()) == NULL) {
		ERR_clear_error();
		luaL_error(L, "%s: out of memory", what);
	}
	if (ca_file != NULL)
		ok = X509_STORE_load_file(s->st, ca_file);
	else
		ok = X509_STORE_set_default_paths(s->st);
	if (ok != 1) {
		char buf[256];
		const char *r = ssl_reason(buf, sizeof buf, "load failed");
		X509_STORE_free(s->st);
		s->st = NULL;
		lua_pop(L, 3);
		lua_pushnil(L);
		lua_pushfstring(L, "%s: CA %s %s: %s", what,
		    ca_file != NULL ? "file" : "store",
		    ca_file != NULL ? ca_file : "(system)", r);
		lua_pushstring(L, MXP_E_ERROR);
		return NULL;
	}
	ERR_clear_error();
	lua_rawset(L, -3);                       /* cache */
	lua_pop(L, 1);
	return s->st;
}

/* ---- verification ------------------------------------------------------ */

static int missing_issuer(int err)
{
	return err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
	    err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT;
}

static const char *reason_of(int err, int last_presented)
{
	if (missing_issuer(err))
		return last_presented ? "incomplete-chain" : "unknown-issuer";
	switch (err) {
	case X509_V_ERR_CERT_HAS_EXPIRED: return "expired";
	case X509_V_ERR_CERT_NOT_YET_VALID: return "not-yet-valid";
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: return "self-signed";
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: return "untrusted-root";
	case X509_V_ERR_EE_KEY_TOO_SMALL:
	case X509_V_ERR_CA_KEY_TOO_SMALL: return "weak-key";
	case X509_V_ERR_CA_MD_TOO_WEAK: return "weak-signature";
	case X509_V_ERR_CERT_SIGNATURE_FAILURE: return "bad-signature";
	case X509_V_ERR_INVALID_CA: return "invalid-ca";
	default: return "other";
	}
}

/* records every error and lets verification go on, so all are collected.
 * Runs inside OpenSSL: must not touch Lua. */
static int verify_cb(int ok, X509_STORE_CTX *ctx)
{
	struct guard *g;
	X509 *cur, *last;
	struct verr *v;
	int err, depth, i;

	if (ok)
		return 1;
	g = X509_STORE_CTX_get_app_data(ctx);
	if (g == NULL)
		return 1;
	err = X509_STORE_CTX_get_error(ctx);
	depth = X509_STORE_CTX_get_error_depth(ctx);
	/* "unable to verify the first certificate" only repeats a missing
	 * issuer already recorded at this depth */
	if (err == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE)
		for (i = 0; i < g->nerr; i++)
			if (g->err[i].depth == depth &&
			    missing_issuer(g->err[i].error))
				return 1;
	if (g->nerr >= MXP_X509_ERRORS_MAX) {
		g->truncated = 1;
		return 1;
	}
	v = &g->err[g->nerr++];
	v->error = err;
	v->depth = depth;
	cur = X509_STORE_CTX_get_current_cert(ctx);
	last = sk_X509_value(g->chain, sk_X509_num(g->chain) - 1);
	v->last_presented = cur != NULL && last != NULL &&
	    X509_cmp(cur, last) == 0 && !is_self_issued(cur);
	return 1;
}

/* X509_verify_cert on g->ctx with the error-collecting callback; a
 * failure the callback did not see (internal) is recorded too. Returns
 * X509_verify_cert's result. */
static int run_verify(struct guard *g)
{
	int ret;

	X509_STORE_CTX_set_verify_cb(g->ctx, verify_cb);
	X509_STORE_CTX_set_app_data(g->ctx, g);
	ret = X509_verify_cert(g->ctx);
	if (ret != 1 && g->nerr == 0) {
		struct verr *v = &g->err[g->nerr++];
		v->error = X509_STORE_CTX_get_error(g->ctx);
		if (v->error == X509_V_OK)
			v->error = X509_V_ERR_UNSPECIFIED;
		v->depth = X509_STORE_CTX_get_error_depth(g->ctx);
		v->last_presented = 0;
	}
	ERR_clear_error();
	return ret;
}

static void push_error(lua_State *L, const struct verr *v)
{
	lua_createtable(L, 0, 3);
	set_integer(L, "depth", v->depth);
	lua_pushstring(L, reason_of(v->error, v->last_presented));
	lua_setfield(L, -2, "reason");
	lua_pushstring(L, X509_verify_cert_error_string(v->error));
	lua_setfield(L, -2, "detail");
}

struct vopts {
	const char *name, *ca_file;
	size_t namelen;
	int have_time;
	lua_Integer when;
};

/* opts at stack index 2 -> o. opts.name and opts.ca_file are left at
 * stack index 3 and 4 while their pointers are in use: an __index
 * function may have made them, and then nothing else keeps them from the
 * collector. Misuse raises. */
static void read_vopts(lua_State *L, struct vopts *o)
{
	memset(o, 0, sizeof *o);
	lua_settop(L, 2);
	lua_pushnil(L);                                /* 3: opts.name */
	lua_pushnil(L);                                /* 4: opts.ca_file */
	if (lua_isnil(L, 2))
		return;
	luaL_checktype(L, 2, LUA_TTABLE);
	if (lua_getfield(L, 2, "name") != LUA_TNIL) {
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_argerror(L, 2, "opts.name: string expected");
		o->name = lua_tolstring(L, -1, &o->namelen);
	}
	lua_replace(L, 3);
	if (lua_getfield(L, 2, "ca_file") != LUA_TNIL) {
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_argerror(L, 2, "opts.ca_file: string expected");
		o->ca_file = lua_tostring(L, -1);
	}
	lua_replace(L, 4);
	if (lua_getfield(L, 2, "time") != LUA_TNIL) {
		if (!lua_isinteger(L, -1))
			luaL_argerror(L, 2, "opts.time: integer expected");
		o->when = lua_tointeger(L, -1);
		o->have_time = 1;
	}
	lua_pop(L, 1);
}

/* Verifies g->chain (leaf first) against the store of o->ca_file and
 * pushes the result table; or, when the store cannot be loaded, pushes
 * nil, msg, code and returns 3. Returns 1 otherwise. */
static int verify_chain(lua_State *L, struct guard *g, const struct vopts *o,
    const char *what)
{
	X509_STORE *st;
	X509_VERIFY_PARAM *param;
	int i, n, ret, name_match = 0;

	if ((st = get_store(L, o->ca_file, what)) == NULL)
		return 3;
	n = sk_X509_num(g->chain);
	g->nerr = 0;
	g->truncated = 0;
	if ((g->untrusted = sk_X509_new_null()) == NULL ||
	    (g->ctx = X509_STORE_CTX_new()) == NULL)
		goto oom;
	for (i = 1; i < n; i++)
		if (sk_X509_push(g->untrusted, sk_X509_value(g->chain, i)) <= 0)
			goto oom;
	if (X509_STORE_CTX_init(g->ctx, st, sk_X509_value(g->chain, 0),
	    g->untrusted) != 1 ||
	    X509_STORE_CTX_set_default(g->ctx, "ssl_server") != 1)
		goto oom;
	param = X509_STORE_CTX_get0_param(g->ctx);
	X509_VERIFY_PARAM_set_auth_level(param, 2);
	if (o->have_time)
		X509_VERIFY_PARAM_set_time(param, (time_t)o->when);
	ret = run_verify(g);
	if (o->name != NULL)
		name_match = X509_check_host(sk_X509_value(g->chain, 0), o->name,
		    o->namelen, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1;
	ERR_clear_error();
	X509_STORE_CTX_free(g->ctx);
	g->ctx = NULL;
	sk_X509_free(g->untrusted);
	g->untrusted = NULL;

	lua_createtable(L, 0, 11);
	set_boolean(L, "ok", ret == 1 && g->nerr == 0);
	if (g->nerr > 0) {
		lua_pushstring(L, reason_of(g->err[0].error,
		    g->err[0].last_presented));
		lua_setfield(L, -2, "reason");
		lua_pushstring(L,
		    X509_verify_cert_error_string(g->err[0].error));
		lua_setfield(L, -2, "detail");
		set_integer(L, "depth", g->err[0].depth);
	}
	lua_createtable(L, g->nerr, 0);
	for (i = 0; i < g->nerr; i++) {
		push_error(L, &g->err[i]);
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, "errors");
	if (g->truncated)
		set_boolean(L, "errors_truncated", 1);
	if (o->name != NULL) {
		lua_pushlstring(L, o->name, o->namelen);
		lua_setfield(L, -2, "name");
	}
	set_boolean(L, "name_match", name_match);
	if (o->ca_file != NULL)
		lua_pushstring(L, o->ca_file);
	else
		lua_pushliteral(L, "system");
	lua_setfield(L, -2, "ca");
	set_integer(L, "chain_length", n);
	return 1;
oom:
	ERR_clear_error();
	guard_release(g);
	return luaL_error(L, "%s: out of memory", what);
}

static int l_x509_verify(lua_State *L)
{
	struct guard *g;
	struct vopts o;
	int r;

	luaL_checkstring(L, 1);
	read_vopts(L, &o);
	g = guard_new(L);                              /* 5 */
	if ((r = read_chain(L, 1, g, "x509 verify", 0)) != 0 ||
	    (r = verify_chain(L, g, &o, "x509 verify")) != 1) {
		guard_release(g);
		return r;
	}
	guard_release(g);
	return 1;
}

static int l_x509_chain(lua_State *L)
{
	struct guard *g;
	struct vopts o;
	int r;

	luaL_checkstring(L, 1);
	read_vopts(L, &o);
	g = guard_new(L);                              /* 5 */
	if ((r = read_chain(L, 1, g, "x509 chain", 1)) != 0) {
		guard_release(g);
		return r;
	}
	lua_createtable(L, 0, 5);                      /* 6: result */
	push_certs(L, g);
	lua_setfield(L, 6, "certificates");
	set_integer(L, "presented", g->presented);
	if (g->cut)
		set_boolean(L, "truncated", 1);
	if (verify_chain(L, g, &o, "x509 chain") == 1) {
		lua_setfield(L, 6, "verify");
	} else {
		/* the certificates stand; only the judgement is missing:
		 * nil, msg, code on the stack */
		lua_pop(L, 1);
		lua_setfield(L, 6, "verify_error");
		lua_pop(L, 1);
	}
	guard_release(g);
	lua_settop(L, 6);
	return 1;
}


/* ---- DANE (RFC 6698, RFC 7671, RFC 7672) -------------------------------- */

/*
 * core.x509_dane(pem, opts) -> {
 *     chain_length = n, presented = n, truncated = true?,
 *     matches = { {record = i, depth = d}, ... },  every pair that matched
 *     ta = { {depth, ok, reason, detail, errors, name_match, name}, ... },
 *   } | nil, msg, code
 * opts: records = { {usage, selector, mtype, data = hex}, ... } (at most
 * MXP_X509_DANE_RECORDS_MAX), names = { reference identifier, ... } (at
 * most MXP_X509_DANE_NAMES_MAX), time = epoch seconds (default: now).
 *
 * The chain is decoded once. Each record of selector 0 (the DER
 * certificate) or 1 (the DER SubjectPublicKeyInfo) and matching type 0
 * (exact), 1 (SHA-256) or 2 (SHA-512) is compared with every presented
 * certificate, whatever its usage: a primitive, the usage and the digest
 * rules are judged in Lua. For each certificate that a usage-2 (DANE-TA)
 * record matched, the chain is verified with that certificate as the only
 * trust anchor (partial chain allowed: an intermediate may be the anchor),
 * and the leaf is checked against each name (X509_check_host, no partial
 * wildcards): the first that matches is `name`. Records with other
 * selectors or matching types, or data that is not hex, match nothing.
 */

#define DANE_DATA_MAX (MXP_TEXT_MAX / 2)

struct tlsa {
	int usage, selector, mtype;
	size_t len;           /* bytes of data; 0 with bad = 1 */
	int bad;              /* not hex, odd length or too long */
	unsigned char data[DANE_DATA_MAX];
};

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int int_field(lua_State *L, int idx, const char *field, int i)
{
	lua_Integer v;
	int isint;

	lua_getfield(L, idx, field);
	v = lua_tointegerx(L, -1, &isint);
	if (!isint || v < 0 || v > 255)
		luaL_error(L, "x509 dane: opts.records[%d].%s: integer 0..255 expected", i, field);
	lua_pop(L, 1);
	return (int)v;
}

/* opts.records (at stack index idx) -> r[]; returns how many */
static int read_records(lua_State *L, int idx, struct tlsa *r)
{
	int i, n;

	if (lua_getfield(L, idx, "records") != LUA_TTABLE)
		luaL_argerror(L, 2, "opts.records: a list of TLSA records expected");
	n = (int)luaL_len(L, -1);
	if (n > MXP_X509_DANE_RECORDS_MAX)
		luaL_argerror(L, 2, lua_pushfstring(L,
		    "opts.records: more than %d records", (int)MXP_X509_DANE_RECORDS_MAX));
	for (i = 0; i < n; i++) {
		struct tlsa *t = &r[i];
		size_t hl, k;
		const char *hex;
		int rec;

		if (lua_geti(L, -1, i + 1) != LUA_TTABLE)
			luaL_error(L, "x509 dane: opts.records[%d]: a table expected", i + 1);
		rec = lua_gettop(L);
		t->usage = int_field(L, rec, "usage", i + 1);
		t->selector = int_field(L, rec, "selector", i + 1);
		t->mtype = int_field(L, rec, "mtype", i + 1);
		lua_getfield(L, rec, "data");
		hex = lua_tolstring(L, -1, &hl);
		t->len = 0;
		t->bad = hex == NULL || hl % 2 != 0 || hl / 2 > DANE_DATA_MAX;
		for (k = 0; !t->bad && k < hl; k += 2) {
			int hi = hexval((unsigned char)hex[k]);
			int lo = hexval((unsigned char)hex[k + 1]);
			if (hi < 0 || lo < 0)
				t->bad = 1;
			else
				t->data[t->len++] = (unsigned char)(hi << 4 | lo);
		}
		lua_pop(L, 2);
	}
	lua_pop(L, 1);
	return n;
}

/* does record t match certificate x? (no Lua call inside) */
static int dane_match(const struct tlsa *t, X509 *x)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	unsigned char *der = NULL;
	const EVP_MD *alg;
	int n, ok = 0;

	if (t->bad || t->selector > 1 || t->mtype > 2)
		return 0;
	if (t->selector == 0)
		n = i2d_X509(x, &der);
	else
		n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	if (n <= 0 || der == NULL) {
		ERR_clear_error();
		return 0;
	}
	if (t->mtype == 0) {
		ok = (size_t)n == t->len && memcmp(der, t->data, t->len) == 0;
	} else {
		alg = t->mtype == 1 ? EVP_sha256() : EVP_sha512();
		ok = EVP_Digest(der, (size_t)n, md, &mdlen, alg, NULL) == 1 &&
		    mdlen == t->len && memcmp(md, t->data, mdlen) == 0;
	}
	OPENSSL_free(der);
	ERR_clear_error();
	return ok;
}

/* verifies g->chain with the certificate at depth ta as the only trust
 * anchor; pushes { depth, ok, reason, detail, errors, name_match, name } */
static void dane_ta_verify(lua_State *L, struct guard *g, int ta, int nnames,
    int names_idx, int have_time, lua_Integer when)
{
	X509_VERIFY_PARAM *param;
	X509 *leaf = sk_X509_value(g->chain, 0);
	int i, n = sk_X509_num(g->chain), ret, matched = 0;

	g->nerr = 0;
	g->truncated = 0;
	if ((g->tastore = X509_STORE_new()) == NULL ||
	    X509_STORE_add_cert(g->tastore, sk_X509_value(g->chain, ta)) != 1 ||
	    (g->untrusted = sk_X509_new_null()) == NULL ||
	    (g->ctx = X509_STORE_CTX_new()) == NULL)
		goto oom;
	for (i = 1; i < n; i++)
		if (sk_X509_push(g->untrusted, sk_X509_value(g->chain, i)) <= 0)
			goto oom;
	if (X509_STORE_CTX_init(g->ctx, g->tastore, leaf, g->untrusted) != 1 ||
	    X509_STORE_CTX_set_default(g->ctx, "ssl_server") != 1)
		goto oom;
	param = X509_STORE_CTX_get0_param(g->ctx);
	X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
	if (have_time)
		X509_VERIFY_PARAM_set_time(param, (time_t)when);
	ret = run_verify(g);
	X509_STORE_CTX_free(g->ctx);
	g->ctx = NULL;
	sk_X509_free(g->untrusted);
	g->untrusted = NULL;
	X509_STORE_free(g->tastore);
	g->tastore = NULL;

	lua_createtable(L, 0, 8);
	set_integer(L, "depth", ta);
	set_boolean(L, "ok", ret == 1 && g->nerr == 0);
	if (g->nerr > 0) {
		lua_pushstring(L, reason_of(g->err[0].error, g->err[0].last_presented));
		lua_setfield(L, -2, "reason");
		lua_pushstring(L, X509_verify_cert_error_string(g->err[0].error));
		lua_setfield(L, -2, "detail");
	}
	lua_createtable(L, g->nerr, 0);
	for (i = 0; i < g->nerr; i++) {
		push_error(L, &g->err[i]);
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, "errors");
	for (i = 1; i <= nnames && !matched; i++) {
		size_t len;
		const char *name;

		lua_geti(L, names_idx, i);
		name = lua_tolstring(L, -1, &len);
		if (name != NULL && X509_check_host(leaf, name, len,
		    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1) {
			matched = 1;
			lua_setfield(L, -2, "name");
		} else {
			lua_pop(L, 1);
		}
		ERR_clear_error();
	}
	set_boolean(L, "name_match", matched);
	return;
oom:
	ERR_clear_error();
	guard_release(g);
	luaL_error(L, "x509 dane: out of memory");
}

static int l_x509_dane(lua_State *L)
{
	struct guard *g;
	struct tlsa *recs;
	int nrec, nnames = 0, have_time = 0, r, i, d, n, k = 0, nta = 0;
	lua_Integer when = 0;
	int ta_done[MXP_X509_CHAIN_MAX];

	luaL_checkstring(L, 1);
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 2);
	recs = lua_newuserdatauv(L, sizeof *recs * MXP_X509_DANE_RECORDS_MAX, 0); /* 3 */
	nrec = read_records(L, 2, recs);
	if (lua_getfield(L, 2, "names") == LUA_TTABLE) {                  /* 4 */
		nnames = (int)luaL_len(L, 4);
		if (nnames > MXP_X509_DANE_NAMES_MAX)
			luaL_argerror(L, 2, "opts.names: too many names");
		for (i = 1; i <= nnames; i++) {
			if (lua_geti(L, 4, i) != LUA_TSTRING)
				luaL_argerror(L, 2, "opts.names: a list of strings expected");
			lua_pop(L, 1);
		}
	} else if (!lua_isnil(L, 4)) {
		luaL_argerror(L, 2, "opts.names: a list of strings expected");
	}
	if (lua_getfield(L, 2, "time") != LUA_TNIL) {
		if (!lua_isinteger(L, -1))
			luaL_argerror(L, 2, "opts.time: integer expected");
		when = lua_tointeger(L, -1);
		have_time = 1;
	}
	lua_pop(L, 1);
	g = guard_new(L);                                                  /* 5 */
	if ((r = read_chain(L, 1, g, "x509 dane", 1)) != 0) {
		guard_release(g);
		return r;
	}
	n = sk_X509_num(g->chain);
	lua_createtable(L, 0, 5);                                          /* 6 */
	set_integer(L, "chain_length", n);
	set_integer(L, "presented", g->presented);
	if (g->cut)
		set_boolean(L, "truncated", 1);
	lua_newtable(L);                                                   /* 7 */
	memset(ta_done, 0, sizeof ta_done);
	for (i = 0; i < nrec; i++) {
		for (d = 0; d < n; d++) {
			if (!dane_match(&recs[i], sk_X509_value(g->chain, d)))
				continue;
			lua_createtable(L, 0, 2);
			set_integer(L, "record", i + 1);
			set_integer(L, "depth", d);
			lua_rawseti(L, 7, ++k);
			if (recs[i].usage == 2)
				ta_done[d] = 1;
		}
	}
	lua_setfield(L, 6, "matches");
	lua_newtable(L);                                                   /* 7 */
	for (d = 0; d < n; d++) {
		if (!ta_done[d])
			continue;
		dane_ta_verify(L, g, d, nnames, 4, have_time, when);
		lua_rawseti(L, 7, ++nta);
	}
	lua_setfield(L, 6, "ta");
	guard_release(g);
	lua_settop(L, 6);
	return 1;
}

void mxp_x509_open(lua_State *L)
{
	static const luaL_Reg funcs[] = {
		{"x509_parse", l_x509_parse},
		{"x509_verify", l_x509_verify},
		{"x509_chain", l_x509_chain},
		{"x509_dane", l_x509_dane},
		{NULL, NULL}
	};

	if (luaL_newmetatable(L, MXP_X509_GUARD_MT)) {
		lua_pushcfunction(L, guard_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_pop(L, 1);
	if (luaL_newmetatable(L, MXP_X509_STORE_MT)) {
		lua_pushcfunction(L, store_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_pop(L, 1);
	if (lua_getfield(L, LUA_REGISTRYINDEX, MXP_X509_STORES_KEY) != LUA_TTABLE) {
		lua_newtable(L);
		lua_setfield(L, LUA_REGISTRYINDEX, MXP_X509_STORES_KEY);
	}
	lua_pop(L, 1);
	luaL_setfuncs(L, funcs, 0);
}
