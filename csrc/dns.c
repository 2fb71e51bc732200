/*
 * dns.c -- the DNS wire codec (pure: no sockets, no resolver, no clock).
 *
 *   core.dns_query(name, qtype, id [, opts])  -> wire string
 *   core.dns_parse(wire)                      -> table | nil, message, code
 *   core.dns_reverse_name(address)            -> "4.3.2.1.in-addr.arpa" ...
 *
 * Queries are built with ldns (ldns_pkt + ldns_pkt2wire). Answers are
 * walked record by record here, with ldns decoding every name
 * (ldns_wire2dname: compression, pointer and length checks) and every
 * rdata (ldns_wire2rdf). Walking the records ourselves rather than calling
 * ldns_wire2pkt lets the section limits be checked before any work, checks
 * that each rdata ends exactly where its RDLENGTH says (ldns_wire2rdf
 * alone accepts a mismatch and then reads the next record out of step),
 * and keeps ldns_wire2pkt's TSIG handling out of the way (a second TSIG
 * record there leaks the first).
 *
 * Everything ldns allocates is held in a to-be-closed "scratch" userdata
 * created before the allocation, so a Lua error (out of memory, a bad
 * argument) in the middle frees it as well as a normal return does.
 *
 * Any byte string given to dns_parse is safe: malformed input returns
 * nil, message, "protocol"; a section of more than MXP_DNS_RR_MAX records
 * or a message of more than MXP_DNS_MSG_MAX bytes returns "too-long".
 */
#include "mxprobe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <ldns/ldns.h>

/* Everything ldns has allocated for the call in progress. */
struct dns_scratch {
	ldns_pkt *pkt;      /* dns_query: the packet being built */
	ldns_rr *rr;        /* the record being built or decoded */
	uint8_t *wire;      /* dns_query: ldns_pkt2wire's output */
	char *str;          /* an ldns string being copied into Lua */
	ldns_buffer *text;  /* dns_parse: presentation form of one name */
};

/* The fixed fields of one record, read from the wire. */
struct rr_head {
	uint16_t type;
	uint16_t klass;
	uint32_t ttl;
	size_t rdlength_at; /* offset of RDLENGTH */
	size_t end;         /* offset just past the rdata */
};

static void scratch_release(struct dns_scratch *s)
{
	if (s->rr != NULL) {
		ldns_rr_free(s->rr);
		s->rr = NULL;
	}
	if (s->pkt != NULL) {
		ldns_pkt_free(s->pkt);
		s->pkt = NULL;
	}
	if (s->wire != NULL) {
		LDNS_FREE(s->wire);
		s->wire = NULL;
	}
	if (s->str != NULL) {
		LDNS_FREE(s->str);
		s->str = NULL;
	}
	if (s->text != NULL) {
		ldns_buffer_free(s->text);
		s->text = NULL;
	}
}

/* __gc and __close of the scratch userdata; idempotent */
static int scratch_close(lua_State *L)
{
	struct dns_scratch *s = lua_touserdata(L, 1);

	if (s != NULL)
		scratch_release(s);
	return 0;
}

/* Push an empty scratch (its metatable is upvalue 1) and mark it
 * to-be-closed. */
static struct dns_scratch *scratch_new(lua_State *L)
{
	struct dns_scratch *s = lua_newuserdatauv(L, sizeof *s, 0);

	memset(s, 0, sizeof *s);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_setmetatable(L, -2);
	lua_toclose(L, -1);
	return s;
}

static size_t at_most(size_t n, size_t max)
{
	return n < max ? n : max;
}

static int out_of_memory(lua_State *L)
{
	return luaL_error(L, "dns: out of memory");
}

/* Push a string ldns allocated, then free it (held in the scratch while
 * Lua copies it). */
static void push_ldns_string(lua_State *L, struct dns_scratch *s, char *str)
{
	if (str == NULL)
		out_of_memory(L);
	s->str = str;
	lua_pushstring(L, str);
	LDNS_FREE(s->str);
	s->str = NULL;
}

/* The mnemonic of a type: ldns_rr_type2str's text. A type ldns has a
 * descriptor name for is that name (what ldns_rr_type2str prints first),
 * read from the descriptor without its buffer, printf and malloc; the
 * others (pseudo-types, TYPEnnn) go through ldns_rr_type2str. */
static void push_type(lua_State *L, struct dns_scratch *s, uint16_t type)
{
	const ldns_rr_descriptor *d = ldns_rr_descript(type);

	if (d != NULL && d->_name != NULL) {
		lua_pushstring(L, d->_name);
		return;
	}
	push_ldns_string(L, s, ldns_rr_type2str((ldns_rr_type)type));
}

/* The mnemonic of a class: "IN" without a call, the others through
 * ldns_rr_class2str (whose table names class 1 "IN"). */
static void push_class(lua_State *L, struct dns_scratch *s, uint16_t klass)
{
	if (klass == LDNS_RR_CLASS_IN) {
		lua_pushliteral(L, "IN");
		return;
	}
	push_ldns_string(L, s, ldns_rr_class2str((ldns_rr_class)klass));
}

/* ---- dns_query ------------------------------------------------------- */

static const char *const query_type_names[] = {
	"MX", "A", "AAAA", "CNAME", "TXT", "TLSA", "PTR", "SOA", "NS", NULL
};
static const ldns_rr_type query_types[] = {
	LDNS_RR_TYPE_MX, LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA, LDNS_RR_TYPE_CNAME,
	LDNS_RR_TYPE_TXT, LDNS_RR_TYPE_TLSA, LDNS_RR_TYPE_PTR, LDNS_RR_TYPE_SOA,
	LDNS_RR_TYPE_NS
};

#define DNS_EDNS_DEFAULT 1232   /* DNS flag day 2020 */
#define DNS_EDNS_MIN     512

struct query_opts {
	int rd;
	int ad;
	int cd;     /* checking disabled (RFC 4035 3.2.2): tells bogus from other SERVFAILs */
	lua_Integer edns;   /* 0: no OPT record */
};

/* opts.<field>, a boolean, or dflt when absent */
static int opt_boolean(lua_State *L, int idx, const char *field, int dflt)
{
	int v = dflt;

	if (lua_getfield(L, idx, field) != LUA_TNIL) {
		if (!lua_isboolean(L, -1))
			return luaL_argerror(L, idx, lua_pushfstring(L,
			    "opts.%s must be a boolean", field));
		v = lua_toboolean(L, -1);
	}
	lua_pop(L, 1);
	return v;
}

static void query_opts_check(lua_State *L, int idx, struct query_opts *o)
{
	int isint;

	o->rd = 1;
	o->ad = 1;
	o->cd = 0;
	o->edns = DNS_EDNS_DEFAULT;
	if (lua_isnoneornil(L, idx))
		return;
	luaL_checktype(L, idx, LUA_TTABLE);
	o->rd = opt_boolean(L, idx, "rd", 1);
	o->ad = opt_boolean(L, idx, "ad", 1);
	o->cd = opt_boolean(L, idx, "cd", 0);
	switch (lua_getfield(L, idx, "edns")) {
	case LUA_TNIL:
		break;
	case LUA_TBOOLEAN:
		if (lua_toboolean(L, -1))
			luaL_argerror(L, idx,
			    "opts.edns must be a buffer size or false");
		o->edns = 0;
		break;
	default:
		o->edns = lua_tointegerx(L, -1, &isint);
		if (!isint || o->edns < DNS_EDNS_MIN || o->edns > 65535)
			luaL_argerror(L, idx,
			    "opts.edns must be an integer in 512..65535 or false");
		break;
	}
	lua_pop(L, 1);
}

/*
 * The fast path of dns_query: the same bytes ldns_pkt2wire writes for the
 * packet dns_query builds (header, one question of class IN, the OPT
 * record with the DO bit when edns > 0), for a name of letters, digits,
 * '-' and '_' in labels of 1..63 bytes, with or without the final dot.
 * Returns the length written into w (at most DNS_FASTQ_MAX), or 0 for any
 * other name: then ldns parses the name (escapes, the root) and builds
 * the packet, as before.
 */
#define DNS_FASTQ_MAX (12 + 255 + 4 + 11)

static size_t fast_query(const char *name, size_t len, uint16_t type,
    uint16_t id, const struct query_opts *o, uint8_t *w)
{
	size_t p, lab = 12, i;

	if (len == 0 || len > 254 || (len == 1 && name[0] == '.'))
		return 0;
	if (name[len - 1] == '.')
		len--;
	w[0] = (uint8_t)(id >> 8);
	w[1] = (uint8_t)id;
	w[2] = (uint8_t)(o->rd ? 1 : 0);       /* QR 0, opcode QUERY, RD */
	w[3] = (uint8_t)((o->ad ? 0x20 : 0) | (o->cd ? 0x10 : 0));
	w[4] = 0;
	w[5] = 1;                              /* QDCOUNT */
	w[6] = w[7] = w[8] = w[9] = w[10] = 0;
	w[11] = (uint8_t)(o->edns > 0);        /* ARCOUNT: the OPT record */
	p = lab + 1;
	for (i = 0; i <= len; i++) {
		char c = i < len ? name[i] : '.';

		if (c == '.') {
			size_t l = p - lab - 1;

			if (l == 0 || l > 63)
				return 0;
			w[lab] = (uint8_t)l;
			lab = p;
			p = lab + 1;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_') {
			w[p++] = (uint8_t)c;
		} else {
			return 0;
		}
	}
	w[lab] = 0;                            /* the root label */
	p = lab + 1;
	if (p - 12 > 255)
		return 0;
	w[p++] = (uint8_t)(type >> 8);
	w[p++] = (uint8_t)type;
	w[p++] = 0;
	w[p++] = LDNS_RR_CLASS_IN;
	if (o->edns > 0) {
		w[p++] = 0;                        /* owner: the root */
		w[p++] = 0;
		w[p++] = LDNS_RR_TYPE_OPT;
		w[p++] = (uint8_t)(o->edns >> 8);  /* class: the UDP size */
		w[p++] = (uint8_t)o->edns;
		w[p++] = 0;                        /* TTL: ext rcode, version, */
		w[p++] = 0;
		w[p++] = 0x80;                     /* DO */
		w[p++] = 0;
		w[p++] = 0;                        /* RDLENGTH 0 */
		w[p++] = 0;
	}
	return p;
}

/*
 * core.dns_query(name, qtype, id [, opts]) -> wire
 * opts: rd (true), ad (true; RFC 6840 5.7), cd (false), edns (1232: an OPT record
 * with this UDP size and the DO bit; false: no OPT record).
 */
static int dns_query(lua_State *L)
{
	size_t len, wlen;
	const char *name = luaL_checklstring(L, 1, &len);
	int t = luaL_checkoption(L, 2, NULL, query_type_names);
	lua_Integer id = luaL_checkinteger(L, 3);
	struct query_opts o;
	struct dns_scratch *s;
	ldns_rdf *owner;
	ldns_status st;

	luaL_argcheck(L, id >= 0 && id <= 65535, 3, "id out of range 0..65535");
	query_opts_check(L, 4, &o);
	luaL_argcheck(L, len > 0 && strlen(name) == len, 1, "invalid name");

	{
		uint8_t w[DNS_FASTQ_MAX];
		size_t n = fast_query(name, len, (uint16_t)query_types[t],
		    (uint16_t)id, &o, w);

		if (n > 0) {
			lua_pushlstring(L, (const char *)w, n);
			return 1;
		}
	}
	s = scratch_new(L);
	s->pkt = ldns_pkt_new();
	s->rr = ldns_rr_new();
	if (s->pkt == NULL || s->rr == NULL)
		return out_of_memory(L);
	owner = ldns_dname_new_frm_str(name);
	if (owner == NULL)
		return luaL_argerror(L, 1, "invalid name");
	ldns_rr_set_owner(s->rr, owner);
	ldns_rr_set_type(s->rr, query_types[t]);
	ldns_rr_set_class(s->rr, LDNS_RR_CLASS_IN);
	ldns_rr_set_question(s->rr, true);
	if (!ldns_pkt_push_rr(s->pkt, LDNS_SECTION_QUESTION, s->rr))
		return out_of_memory(L);
	s->rr = NULL;   /* the packet owns it now */

	ldns_pkt_set_id(s->pkt, (uint16_t)id);
	ldns_pkt_set_opcode(s->pkt, LDNS_PACKET_QUERY);
	ldns_pkt_set_rd(s->pkt, o.rd != 0);
	ldns_pkt_set_ad(s->pkt, o.ad != 0);
	ldns_pkt_set_cd(s->pkt, o.cd != 0);
	if (o.edns > 0) {
		ldns_pkt_set_edns_udp_size(s->pkt, (uint16_t)o.edns);
		ldns_pkt_set_edns_do(s->pkt, true);
	}

	st = ldns_pkt2wire(&s->wire, s->pkt, &wlen);
	if (st != LDNS_STATUS_OK || s->wire == NULL)
		return luaL_error(L, "dns: building the query: %s",
		    ldns_get_errorstr_by_id(st));
	lua_pushlstring(L, (const char *)s->wire, wlen);
	scratch_release(s);
	return 1;
}

/* ---- dns_parse ------------------------------------------------------- */

static const char *const section_names[] = {
	"question", "answer", "authority", "additional"
};

/* nil, "dns: <section> record <n>: <ldns reason>", "protocol" */
static int fail_status(lua_State *L, int section, size_t n, ldns_status st)
{
	const char *why = ldns_get_errorstr_by_id(st);

	if (st == LDNS_STATUS_MEM_ERR)
		return out_of_memory(L);
	lua_pushfstring(L, "dns: %s record %d: %s", section_names[section],
	    (int)n, why != NULL ? why : "malformed");
	return mxp_push_fail(L, lua_tostring(L, -1), MXP_E_PROTOCOL);
}

/*
 * Read the owner and fixed fields of the record at *pos into a new s->rr
 * (a question stops after the class). Leaves *pos at RDLENGTH.
 */
static ldns_status read_head(struct dns_scratch *s, const uint8_t *w,
    size_t len, size_t *pos, int question, struct rr_head *h)
{
	ldns_rdf *owner = NULL;
	ldns_status st;
	size_t rdlength;

	s->rr = ldns_rr_new();
	if (s->rr == NULL)
		return LDNS_STATUS_MEM_ERR;
	st = ldns_wire2dname(&owner, w, len, pos);
	if (st != LDNS_STATUS_OK)
		return st;
	ldns_rr_set_owner(s->rr, owner);
	/* ldns_wire2dname leaves *pos <= len */
	if (len - *pos < 4)
		return LDNS_STATUS_PACKET_OVERFLOW;
	h->type = ldns_read_uint16(w + *pos);
	h->klass = ldns_read_uint16(w + *pos + 2);
	*pos += 4;
	ldns_rr_set_type(s->rr, (ldns_rr_type)h->type);
	ldns_rr_set_class(s->rr, (ldns_rr_class)h->klass);
	ldns_rr_set_question(s->rr, question != 0);
	if (question)
		return LDNS_STATUS_OK;

	if (len - *pos < 6)
		return LDNS_STATUS_PACKET_OVERFLOW;
	h->ttl = ldns_read_uint32(w + *pos);
	ldns_rr_set_ttl(s->rr, h->ttl);
	*pos += 4;
	rdlength = ldns_read_uint16(w + *pos);
	if (len - *pos - 2 < rdlength)
		return LDNS_STATUS_PACKET_OVERFLOW;
	h->rdlength_at = *pos;
	h->end = *pos + 2 + rdlength;
	return LDNS_STATUS_OK;
}

/* Decode the rdata of s->rr with ldns; it must end exactly at h->end. */
static ldns_status read_rdata(struct dns_scratch *s, const uint8_t *w,
    size_t len, const struct rr_head *h)
{
	size_t p = h->rdlength_at;
	ldns_status st = ldns_wire2rdf(s->rr, w, len, &p);

	if (st != LDNS_STATUS_OK)
		return st;
	if (p != h->end)
		return LDNS_STATUS_WIRE_RDATA_ERR;
	return LDNS_STATUS_OK;
}

/* Push a name in presentation form, lower case, without the trailing dot
 * (the root stays "."). ldns escapes every byte outside ASCII graphic
 * characters as \DDD, so lowering A-Z of the text (independent of the
 * C locale, unlike ldns_dname2canonical) lowers the name. */
/* The fast path of push_name: a name of letters, digits, '-' and '_'
 * only, whose presentation form ldns would print byte for byte (no byte
 * of it is escaped), written lower case without ldns's printf per byte.
 * Returns 0, pushing nothing, for any other name (then ldns prints it). */
static int push_plain_name(lua_State *L, const ldns_rdf *dname)
{
	const uint8_t *d = ldns_rdf_data(dname);
	size_t size = ldns_rdf_size(dname), pos = 0, n = 0, i;
	char out[LDNS_MAX_DOMAINLEN + 1];

	if (size < 2 || size > LDNS_MAX_DOMAINLEN)
		return 0;   /* the root, or what ldns refuses: ldns decides */
	while (pos < size && d[pos] != 0) {
		size_t len = d[pos];

		if (len > 63 || pos + 1 + len >= size)
			return 0;
		for (i = 0; i < len; i++) {
			uint8_t c = d[pos + 1 + i];

			if (c >= 'A' && c <= 'Z')
				c = (uint8_t)(c - 'A' + 'a');
			else if (!((c >= 'a' && c <= 'z') ||
			    (c >= '0' && c <= '9') || c == '-' || c == '_'))
				return 0;
			out[n++] = (char)c;
		}
		pos += 1 + len;
		if (d[pos] != 0)
			out[n++] = '.';
	}
	if (pos + 1 != size)
		return 0;   /* not ending at the root label where the rdf ends */
	lua_pushlstring(L, out, at_most(n, MXP_TEXT_MAX));
	return 1;
}

static void push_name(lua_State *L, struct dns_scratch *s, const ldns_rdf *dname)
{
	char *p;
	size_t n, i;

	if (push_plain_name(L, dname))
		return;
	if (s->text == NULL) {
		s->text = ldns_buffer_new(LDNS_MAX_DOMAINLEN * 4 + 2);
		if (s->text == NULL)
			out_of_memory(L);
	}
	ldns_buffer_clear(s->text);
	if (ldns_rdf2buffer_str_dname(s->text, dname) != LDNS_STATUS_OK)
		out_of_memory(L);
	p = (char *)ldns_buffer_begin(s->text);
	n = ldns_buffer_position(s->text);
	for (i = 0; i < n; i++)
		if (p[i] >= 'A' && p[i] <= 'Z')
			p[i] = (char)(p[i] - 'A' + 'a');
	if (n > 1 && p[n - 1] == '.')
		n--;
	lua_pushlstring(L, p, at_most(n, MXP_TEXT_MAX));
}

/* rdata field i of rr when it exists, is of size size (0: any) and, when
 * type is not NONE, of that ldns type; else NULL */
static const ldns_rdf *field(const ldns_rr *rr, size_t i, ldns_rdf_type type,
    size_t size)
{
	const ldns_rdf *f = i < ldns_rr_rd_count(rr) ? ldns_rr_rdf(rr, i) : NULL;

	if (f == NULL)
		return NULL;
	if (type != LDNS_RDF_TYPE_NONE && ldns_rdf_get_type(f) != type)
		return NULL;
	if (size != 0 && ldns_rdf_size(f) != size)
		return NULL;
	return f;
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
	lua_pushinteger(L, v);
	lua_setfield(L, -2, k);
}

static void set_name(lua_State *L, struct dns_scratch *s, const char *k,
    const ldns_rdf *dname)
{
	push_name(L, s, dname);
	lua_setfield(L, -2, k);
}

/* Write lower-case hex of p[0..n) at out + *len while *room allows (two
 * characters a byte, never half of one); 0 when cut. */
static int add_hex(char *out, size_t *len, const uint8_t *p, size_t n,
    size_t *room)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		if (*room < 2)
			return 0;
		out[(*len)++] = digits[p[i] >> 4];
		out[(*len)++] = digits[p[i] & 15];
		*room -= 2;
	}
	return 1;
}

/* rr[k] = hex of the rdata fields from 'from' on (names uncompressed),
 * at most MXP_TEXT_MAX characters; 0 when cut. Written straight into one
 * buffer area of that size (an RRSIG is in most signed answers). */
static int set_hex(lua_State *L, const ldns_rr *rr, size_t from, const char *k)
{
	luaL_Buffer B;
	size_t i, room = MXP_TEXT_MAX, len = 0;
	int whole = 1;
	char *out = luaL_buffinitsize(L, &B, MXP_TEXT_MAX);

	for (i = from; i < ldns_rr_rd_count(rr) && whole; i++) {
		const ldns_rdf *f = ldns_rr_rdf(rr, i);

		whole = add_hex(out, &len, ldns_rdf_data(f), ldns_rdf_size(f), &room);
	}
	luaL_pushresultsize(&B, len);
	lua_setfield(L, -2, k);
	return whole;
}

static int set_address(lua_State *L, const ldns_rdf *f, int af)
{
	char buf[INET6_ADDRSTRLEN];

	if (inet_ntop(af, ldns_rdf_data(f), buf, sizeof buf) == NULL)
		return 0;
	lua_pushstring(L, buf);
	lua_setfield(L, -2, "address");
	return 1;
}

/* TXT: strings = {character-strings}, text = their concatenation, both
 * bounded by MXP_TEXT_MAX. Returns -1 if malformed, 0 if cut, 1 if whole. */
static int set_txt(lua_State *L, const ldns_rr *rr)
{
	size_t i, n = ldns_rr_rd_count(rr), room = MXP_TEXT_MAX, l;
	const uint8_t *d;
	luaL_Buffer B;
	int whole = 1;

	lua_createtable(L, (int)n, 0);   /* n < 65536: bounded by RDLENGTH */
	for (i = 0; i < n; i++) {
		const ldns_rdf *f = field(rr, i, LDNS_RDF_TYPE_STR, 0);

		if (f == NULL || ldns_rdf_size(f) < 1)
			return -1;
		d = ldns_rdf_data(f);
		if ((size_t)d[0] + 1 != ldns_rdf_size(f))
			return -1;
		l = at_most(d[0], MXP_TEXT_MAX);
		whole &= l == d[0];
		lua_pushlstring(L, (const char *)d + 1, l);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_setfield(L, -2, "strings");

	luaL_buffinit(L, &B);
	for (i = 0; i < n; i++) {
		d = ldns_rdf_data(ldns_rr_rdf(rr, i));
		l = at_most(d[0], room);
		whole &= l == d[0];
		luaL_addlstring(&B, (const char *)d + 1, l);
		room -= l;
	}
	luaL_pushresult(&B);
	lua_setfield(L, -2, "text");
	return whole;
}

/*
 * Set the type fields of s->rr into the table on top. Returns 0 when the
 * rdata does not have the shape its type requires.
 */
static int set_rdata(lua_State *L, struct dns_scratch *s)
{
	const ldns_rr *rr = s->rr;
	size_t n = ldns_rr_rd_count(rr), i;
	const ldns_rdf *f, *g;
	int whole = 1, r;

	switch (ldns_rr_get_type(rr)) {
	case LDNS_RR_TYPE_MX:
		f = field(rr, 0, LDNS_RDF_TYPE_NONE, 2);
		g = field(rr, 1, LDNS_RDF_TYPE_DNAME, 0);
		if (n != 2 || f == NULL || g == NULL)
			return 0;
		set_int(L, "preference", ldns_read_uint16(ldns_rdf_data(f)));
		set_name(L, s, "exchange", g);
		break;
	case LDNS_RR_TYPE_A:
		f = field(rr, 0, LDNS_RDF_TYPE_NONE, 4);
		if (n != 1 || f == NULL || !set_address(L, f, AF_INET))
			return 0;
		break;
	case LDNS_RR_TYPE_AAAA:
		f = field(rr, 0, LDNS_RDF_TYPE_NONE, 16);
		if (n != 1 || f == NULL || !set_address(L, f, AF_INET6))
			return 0;
		break;
	case LDNS_RR_TYPE_CNAME:
	case LDNS_RR_TYPE_PTR:
	case LDNS_RR_TYPE_NS:
		f = field(rr, 0, LDNS_RDF_TYPE_DNAME, 0);
		if (n != 1 || f == NULL)
			return 0;
		set_name(L, s, "target", f);
		break;
	case LDNS_RR_TYPE_TXT:
		r = set_txt(L, rr);
		if (r < 0)
			return 0;
		whole = r;
		break;
	case LDNS_RR_TYPE_TLSA:
		/* usage, selector, mtype; the data may be empty (the check
		 * judges that), then ldns has no fourth field */
		if (n < 3 || n > 4)
			return 0;
		for (i = 0; i < 3; i++)
			if (field(rr, i, LDNS_RDF_TYPE_NONE, 1) == NULL)
				return 0;
		set_int(L, "usage", *ldns_rdf_data(ldns_rr_rdf(rr, 0)));
		set_int(L, "selector", *ldns_rdf_data(ldns_rr_rdf(rr, 1)));
		set_int(L, "mtype", *ldns_rdf_data(ldns_rr_rdf(rr, 2)));
		whole = set_hex(L, rr, 3, "data");
		break;
	case LDNS_RR_TYPE_SOA:
		if (n != 7 || field(rr, 0, LDNS_RDF_TYPE_DNAME, 0) == NULL ||
		    field(rr, 1, LDNS_RDF_TYPE_DNAME, 0) == NULL)
			return 0;
		for (i = 2; i < 7; i++)
			if (field(rr, i, LDNS_RDF_TYPE_NONE, 4) == NULL)
				return 0;
		set_name(L, s, "mname", ldns_rr_rdf(rr, 0));
		set_name(L, s, "rname", ldns_rr_rdf(rr, 1));
		set_int(L, "serial", ldns_read_uint32(ldns_rdf_data(ldns_rr_rdf(rr, 2))));
		set_int(L, "refresh", ldns_read_uint32(ldns_rdf_data(ldns_rr_rdf(rr, 3))));
		set_int(L, "retry", ldns_read_uint32(ldns_rdf_data(ldns_rr_rdf(rr, 4))));
		set_int(L, "expire", ldns_read_uint32(ldns_rdf_data(ldns_rr_rdf(rr, 5))));
		set_int(L, "minimum", ldns_read_uint32(ldns_rdf_data(ldns_rr_rdf(rr, 6))));
		break;
	default:
		whole = set_hex(L, rr, 0, "rdata");
		break;
	}
	if (!whole) {
		lua_pushboolean(L, 1);
		lua_setfield(L, -2, "truncated");
	}
	return 1;
}

/* Push the table of record s->rr; 0 when its rdata is malformed. */
static int push_rr(lua_State *L, struct dns_scratch *s, const struct rr_head *h)
{
	lua_createtable(L, 0, 8);
	push_name(L, s, ldns_rr_owner(s->rr));
	lua_setfield(L, -2, "name");
	push_type(L, s, h->type);
	lua_setfield(L, -2, "type");
	push_class(L, s, h->klass);
	lua_setfield(L, -2, "class");
	set_int(L, "ttl", (lua_Integer)h->ttl);
	return set_rdata(L, s);
}

static void push_rcode(lua_State *L, unsigned rcode)
{
	const ldns_lookup_table *t = ldns_lookup_by_id(ldns_rcodes, (int)rcode);

	if (t != NULL)
		lua_pushstring(L, t->name);
	else if (rcode == 16)
		lua_pushliteral(L, "BADVERS");      /* RFC 6891 */
	else if (rcode == 23)
		lua_pushliteral(L, "BADCOOKIE");    /* RFC 7873 */
	else
		lua_pushfstring(L, "RCODE%d", (int)rcode);
}

static void push_opcode(lua_State *L, unsigned opcode)
{
	const ldns_lookup_table *t = ldns_lookup_by_id(ldns_opcodes, (int)opcode);

	if (t != NULL)
		lua_pushstring(L, t->name);
	else
		lua_pushfstring(L, "OPCODE%d", (int)opcode);
}

static void set_flag(lua_State *L, const char *k, int v)
{
	lua_pushboolean(L, v);
	lua_setfield(L, -2, k);
}

/*
 * core.dns_parse(wire) -> table | nil, message, code
 *
 * The OPT pseudo-record of the additional section is not listed in
 * `additional`: it is reported as `edns = {udp_size, version, do,
 * ext_rcode}`, and its extended rcode bits are folded into `rcode`
 * (16 -> "BADVERS"). A second OPT there is "protocol" (RFC 6891 6.1.1);
 * an OPT in another section is listed like any other type. Only the
 * first question is reported; bytes after the last record are ignored.
 * `rdata` of other types is the hex of the rdata with any names in it
 * uncompressed. Hex and TXT text are cut at MXP_TEXT_MAX characters, and
 * the record then has `truncated = true`.
 */
static int dns_parse(lua_State *L)
{
	size_t len, pos, i;
	const uint8_t *w = (const uint8_t *)luaL_checklstring(L, 1, &len);
	struct dns_scratch *s;
	struct rr_head h;
	ldns_status st;
	unsigned count[4], rcode;
	int sect, result, have_edns = 0;
	uint16_t udp_size = 0;
	uint32_t opt_ttl = 0;

	if (len > MXP_DNS_MSG_MAX) {
		lua_pushfstring(L, "dns: message of %I bytes exceeds the limit of %d",
		    (lua_Integer)len, (int)MXP_DNS_MSG_MAX);
		return mxp_push_fail(L, lua_tostring(L, -1), MXP_E_TOOLONG);
	}
	if (len < LDNS_HEADER_SIZE) {
		lua_pushfstring(L, "dns: message of %I bytes is shorter than a header",
		    (lua_Integer)len);
		return mxp_push_fail(L, lua_tostring(L, -1), MXP_E_PROTOCOL);
	}
	count[0] = LDNS_QDCOUNT(w);
	count[1] = LDNS_ANCOUNT(w);
	count[2] = LDNS_NSCOUNT(w);
	count[3] = LDNS_ARCOUNT(w);
	for (sect = 0; sect < 4; sect++) {
		if (count[sect] > MXP_DNS_RR_MAX) {
			lua_pushfstring(L, "dns: %s section of %d records exceeds the limit of %d",
			    section_names[sect], (int)count[sect], (int)MXP_DNS_RR_MAX);
			return mxp_push_fail(L, lua_tostring(L, -1), MXP_E_TOOLONG);
		}
	}

	lua_settop(L, 1);
	s = scratch_new(L);
	lua_createtable(L, 0, 16);
	result = lua_gettop(L);
	set_int(L, "id", LDNS_ID_WIRE(w));
	set_flag(L, "qr", LDNS_QR_WIRE(w) != 0);
	set_flag(L, "aa", LDNS_AA_WIRE(w) != 0);
	set_flag(L, "tc", LDNS_TC_WIRE(w) != 0);
	set_flag(L, "rd", LDNS_RD_WIRE(w) != 0);
	set_flag(L, "ra", LDNS_RA_WIRE(w) != 0);
	set_flag(L, "ad", LDNS_AD_WIRE(w) != 0);
	set_flag(L, "cd", LDNS_CD_WIRE(w) != 0);
	push_opcode(L, LDNS_OPCODE_WIRE(w));
	lua_setfield(L, result, "opcode");

	pos = LDNS_HEADER_SIZE;
	for (i = 0; i < count[0]; i++) {
		st = read_head(s, w, len, &pos, 1, &h);
		if (st != LDNS_STATUS_OK)
			return fail_status(L, 0, i + 1, st);
		if (i == 0) {
			lua_createtable(L, 0, 3);
			push_name(L, s, ldns_rr_owner(s->rr));
			lua_setfield(L, -2, "name");
			push_type(L, s, h.type);
			lua_setfield(L, -2, "type");
			push_class(L, s, h.klass);
			lua_setfield(L, -2, "class");
			lua_setfield(L, result, "question");
		}
		ldns_rr_free(s->rr);
		s->rr = NULL;
	}

	for (sect = 1; sect < 4; sect++) {
		lua_Integer n = 0;

		lua_createtable(L, (int)count[sect], 0);
		for (i = 0; i < count[sect]; i++) {
			st = read_head(s, w, len, &pos, 0, &h);
			if (st == LDNS_STATUS_OK && !(sect == 3 && h.type == LDNS_RR_TYPE_OPT))
				st = read_rdata(s, w, len, &h);
			if (st != LDNS_STATUS_OK)
				return fail_status(L, sect, i + 1, st);
			pos = h.end;
			if (sect == 3 && h.type == LDNS_RR_TYPE_OPT) {
				if (have_edns) {
					lua_pushfstring(L, "dns: additional record %d: a second OPT record",
					    (int)(i + 1));
					return mxp_push_fail(L, lua_tostring(L, -1), MXP_E_PROTOCOL);
				}
				have_edns = 1;
				udp_size = h.klass;
				opt_ttl = h.ttl;
			} else {
				if (!push_rr(L, s, &h)) {
					lua_getfield(L, -1, "type");
					lua_pushfstring(L, "dns: %s record %d: malformed %s rdata",
					    section_names[sect], (int)(i + 1),
					    lua_tostring(L, -1));
					return mxp_push_fail(L, lua_tostring(L, -1), MXP_E_PROTOCOL);
				}
				lua_rawseti(L, -2, ++n);
			}
			ldns_rr_free(s->rr);
			s->rr = NULL;
		}
		lua_setfield(L, result, section_names[sect]);
	}

	rcode = LDNS_RCODE_WIRE(w);
	if (have_edns) {
		rcode |= (opt_ttl >> 24) << 4;
		lua_createtable(L, 0, 4);
		set_int(L, "udp_size", udp_size);
		set_int(L, "version", (opt_ttl >> 16) & 0xff);
		set_int(L, "ext_rcode", opt_ttl >> 24);
		set_flag(L, "do", (opt_ttl & 0x8000) != 0);
		lua_setfield(L, result, "edns");
	}
	push_rcode(L, rcode);
	lua_setfield(L, result, "rcode");
	scratch_release(s);
	lua_settop(L, result);
	return 1;
}

/* ---- dns_reverse_name ------------------------------------------------ */

/* core.dns_reverse_name(address) -> "4.3.2.1.in-addr.arpa" | "....ip6.arpa" */
static int dns_reverse_name(lua_State *L)
{
	static const char digits[] = "0123456789abcdef";
	size_t len;
	const char *addr = luaL_checklstring(L, 1, &len);
	unsigned char a[16];
	char out[16 * 4 + sizeof "ip6.arpa"];
	char *p = out;
	int i;

	luaL_argcheck(L, strlen(addr) == len, 1, "not an IPv4 or IPv6 address");
	if (inet_pton(AF_INET, addr, a) == 1) {
		lua_pushfstring(L, "%d.%d.%d.%d.in-addr.arpa",
		    (int)a[3], (int)a[2], (int)a[1], (int)a[0]);
		return 1;
	}
	if (inet_pton(AF_INET6, addr, a) != 1)
		return luaL_argerror(L, 1, "not an IPv4 or IPv6 address");
	for (i = 15; i >= 0; i--) {
		*p++ = digits[a[i] & 15];
		*p++ = '.';
		*p++ = digits[a[i] >> 4];
		*p++ = '.';
	}
	memcpy(p, "ip6.arpa", sizeof "ip6.arpa");
	lua_pushstring(L, out);
	return 1;
}

/* core.dns_tcp_frame(buf [, pos [, eof]]) -> message, next | false |
 * nil, msg, "protocol": one DNS message over TCP (RFC 1035 §4.2.2), its
 * two-byte length removed. A zero length is "protocol"; a message too
 * short for a header is dns_parse's to refuse, with the rest of what it
 * judges. eof changes nothing: an incomplete message is false, and the
 * connection says "closed". */
static int dns_tcp_frame(lua_State *L)
{
	size_t len, avail, n;
	const unsigned char *buf =
	    (const unsigned char *)luaL_checklstring(L, 1, &len);
	lua_Integer init = luaL_optinteger(L, 2, 1);

	luaL_argcheck(L, init >= 1 && (size_t)init <= len + 1, 2, "index out of range");
	avail = len - (size_t)(init - 1);
	buf += init - 1;
	if (avail < 2) {
		lua_pushboolean(L, 0);
		return 1;
	}
	n = (size_t)buf[0] << 8 | buf[1];
	if (n == 0)
		return mxp_push_fail(L, "DNS over TCP: a zero-length message",
		    MXP_E_PROTOCOL);
	if (avail < 2 + n) {
		lua_pushboolean(L, 0);
		return 1;
	}
	lua_pushlstring(L, (const char *)buf + 2, n);
	lua_pushinteger(L, init + 2 + (lua_Integer)n);
	return 2;
}

void mxp_dns_open(lua_State *L)
{
	static const luaL_Reg funcs[] = {
		{"dns_query", dns_query},
		{"dns_parse", dns_parse},
		{"dns_reverse_name", dns_reverse_name},
		{"dns_tcp_frame", dns_tcp_frame},
		{NULL, NULL}
	};

	/* the scratch metatable, shared as upvalue 1 */
	lua_createtable(L, 0, 2);
	lua_pushcfunction(L, scratch_close);
	lua_setfield(L, -2, "__gc");
	lua_pushcfunction(L, scratch_close);
	lua_setfield(L, -2, "__close");
	luaL_setfuncs(L, funcs, 1);
}
