/*
 * http.c -- HTTP/1.x response framing (RFC 9112), a pure function over
 * bytes, shaped as the SMTP reply framer:
 *
 *   core.http_response(buf [, pos [, eof [, opts]]]) ->
 *     resp, next       { version, status, reason, headers = { {name,
 *                      value}, ... } (names lower-cased, order kept), body,
 *                      chunked, length = Content-Length | nil, trailers =
 *                      { ... } when chunked } and the index after it
 *     false            more bytes are needed (at eof: the response never
 *                      completed its header section; the caller says
 *                      "closed")
 *     nil, msg, code   "protocol" or "too-long"
 *   opts: { header_max = MXP_HTTP_HEADER_MAX, body_max = MXP_HTTP_BODY_MAX,
 *           head = false }   (head: the request was HEAD, no body follows)
 *
 * Body framing in the order RFC 9112 §6.3 gives: none for HEAD, 1xx, 204
 * and 304; chunked when the last transfer coding is chunked (chunk
 * extensions skipped, trailers kept); else Content-Length; else until the
 * end of the stream (eof must be true). Interim 1xx responses other than
 * 101 are skipped; their header sections count against header_max with
 * the final one's. Every line may end with CRLF or a bare LF; a CR
 * anywhere else, a control byte in a field, obsolete line folding, a bad
 * or ambiguous Content-Length or a bad chunk size is "protocol". Sizes
 * over a cap are "too-long" as soon as they are announced, before any of
 * the body arrives.
 *
 * A proper prefix of a valid response is always "need more", never a
 * different response or an error: nothing is judged before the line that
 * holds it has ended, except the "HTTP/" at the start and the first digit
 * of a chunk size.
 */
#include "mxprobe.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { R_OK, R_MORE, R_FAIL };   /* R_FAIL: nil, msg, code pushed */

struct http {
	lua_State *L;
	const char *buf;
	size_t len;
	int eof;
	size_t header_max, body_max;
	int head;
	int nheaders;
	/* framing facts from the header section */
	int have_cl, te, chunked;
	uint64_t cl;
};

static int fail(struct http *h, const char *code, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;

static int fail(struct http *h, const char *code, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	mxp_push_fail(h->L, msg, code);
	return R_FAIL;
}

static int is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* field content: HTAB, SP, VCHAR, obs-text; no other control byte */
static int is_fchar(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static unsigned char lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* The line starting at `at`: [at, *end) without its CR LF or LF, *next
 * after the LF. It must end before byte `limit` (an offset), else
 * "too-long", with `what` and the cap in the message. */
static int get_line(struct http *h, size_t at, size_t limit, size_t cap,
    const char *what, size_t *end, size_t *next)
{
	size_t stop = h->len < limit ? h->len : limit;
	const char *nl, *cr;

	nl = at < stop ? memchr(h->buf + at, '\n', stop - at) : NULL;
	if (nl == NULL) {
		if (h->len >= limit)
			return fail(h, MXP_E_TOOLONG, "HTTP %s longer than %zu bytes",
			    what, cap);
		return R_MORE;
	}
	*next = (size_t)(nl - h->buf) + 1;
	*end = *next - 1;
	if (*end > at && h->buf[*end - 1] == '\r')
		(*end)--;
	cr = *end > at ? memchr(h->buf + at, '\r', *end - at) : NULL;
	if (cr != NULL)
		return fail(h, MXP_E_PROTOCOL, "HTTP %s with a CR not followed by LF", what);
	return R_OK;
}

/* "N" or "N, N, ..." (all equal) -> *v; 1 ok, 0 bad */
static int parse_length(const char *s, size_t n, uint64_t *v, int *ambiguous)
{
	size_t i = 0;
	int have = 0;

	*ambiguous = 0;
	for (;;) {
		uint64_t x = 0;
		size_t digits = 0;

		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
		while (i < n && s[i] >= '0' && s[i] <= '9') {
			/* saturate: anything this big is over every cap */
			if (x < UINT64_C(1) << 60)
				x = x * 10 + (uint64_t)(s[i] - '0');
			i++;
			digits++;
		}
		if (digits == 0)
			return 0;
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (have && x != *v)
			*ambiguous = 1;
		*v = x;
		have = 1;
		if (i == n)
			return 1;
		if (s[i] != ',')
			return 0;
		i++;
	}
}

/* s[0..n) equals the lower-case literal lit, ignoring ASCII case */
static int ieq(const char *s, size_t n, const char *lit)
{
	size_t i;

	if (n != strlen(lit))
		return 0;
	for (i = 0; i < n; i++)
		if (lower((unsigned char)s[i]) != (unsigned char)lit[i])
			return 0;
	return 1;
}

/* is the last element of a Transfer-Encoding list "chunked"? */
static int last_is_chunked(const char *s, size_t n)
{
	size_t e = n, b;

	while (e > 0 && (s[e - 1] == ' ' || s[e - 1] == '\t'))
		e--;
	b = e;
	while (b > 0 && s[b - 1] != ',')
		b--;
	while (b < e && (s[b] == ' ' || s[b] == '\t'))
		b++;
	return ieq(s + b, e - b, "chunked");
}

/* Field lines from `at` to the empty line, into the list at stack index
 * list (0: validate only); at most `limit` (an offset) for the section.
 * *next: after the empty line. framing: note Content-Length and
 * Transfer-Encoding. */
static int fields(struct http *h, size_t at, size_t limit, int list,
    int framing, const char *what, size_t *next)
{
	lua_State *L = h->L;
	size_t end, nx;
	int r;

	for (;;) {
		const char *line = h->buf + at;
		size_t n, colon, vb, ve, i;

		if ((r = get_line(h, at, limit, h->header_max, what, &end, &nx)) != R_OK)
			return r;
		n = end - at;
		if (n == 0) {
			*next = nx;
			return R_OK;
		}
		if (line[0] == ' ' || line[0] == '\t')
			return fail(h, MXP_E_PROTOCOL, "HTTP %s: obsolete line folding", what);
		for (colon = 0; colon < n && line[colon] != ':'; colon++)
			if (!is_tchar((unsigned char)line[colon]))
				return fail(h, MXP_E_PROTOCOL,
				    "HTTP %s: bad byte 0x%02x in a field name", what,
				    (unsigned char)line[colon]);
		if (colon == n || colon == 0)
			return fail(h, MXP_E_PROTOCOL, "HTTP %s: a line that is not \"name: value\"", what);
		vb = colon + 1;
		ve = n;
		while (vb < ve && (line[vb] == ' ' || line[vb] == '\t'))
			vb++;
		while (ve > vb && (line[ve - 1] == ' ' || line[ve - 1] == '\t'))
			ve--;
		for (i = vb; i < ve; i++)
			if (!is_fchar((unsigned char)line[i]))
				return fail(h, MXP_E_PROTOCOL,
				    "HTTP %s: control byte 0x%02x in a field value", what,
				    (unsigned char)line[i]);
		if (++h->nheaders > MXP_HTTP_HEADERS_MAX)
			return fail(h, MXP_E_TOOLONG, "HTTP response with more than %d header fields",
			    MXP_HTTP_HEADERS_MAX);
		if (framing && ieq(line, colon, "content-length")) {
			uint64_t v = 0;
			int amb;
			if (!parse_length(line + vb, ve - vb, &v, &amb))
				return fail(h, MXP_E_PROTOCOL, "HTTP Content-Length is not a number");
			if (amb || (h->have_cl && v != h->cl))
				return fail(h, MXP_E_PROTOCOL,
				    "HTTP response with two different Content-Length values");
			h->have_cl = 1;
			h->cl = v;
		}
		if (framing && ieq(line, colon, "transfer-encoding")) {
			h->te = 1;
			h->chunked = last_is_chunked(line + vb, ve - vb);
		}
		if (list != 0) {
			luaL_Buffer b;
			lua_createtable(L, 0, 2);
			luaL_buffinit(L, &b);
			for (i = 0; i < colon; i++)
				luaL_addchar(&b, (char)lower((unsigned char)line[i]));
			luaL_pushresult(&b);
			lua_setfield(L, -2, "name");
			lua_pushlstring(L, line + vb, ve - vb);
			lua_setfield(L, -2, "value");
			lua_rawseti(L, list, (lua_Integer)luaL_len(L, list) + 1);
		}
		at = nx;
	}
}

/* The status line at `at`; *status, version and reason spans. */
static int status_line(struct http *h, size_t at, size_t limit, int *status,
    size_t *reason, size_t *reason_end, size_t *next)
{
	static const char magic[] = "HTTP/";
	const char *s = h->buf + at;
	size_t avail = h->len - at, end, i, n;
	int r;

	/* judged at once, so that a peer that is not HTTP is not waited for */
	for (i = 0; i < 5 && i < avail; i++)
		if (s[i] != magic[i])
			return fail(h, MXP_E_PROTOCOL, "not an HTTP response (no \"HTTP/\" at its start)");
	if ((r = get_line(h, at, limit, h->header_max, "header section", &end, next)) != R_OK)
		return r;
	n = end - at;
	if (n < 12 || s[5] < '0' || s[5] > '9' || s[6] != '.' || s[7] < '0' ||
	    s[7] > '9' || s[8] != ' ' || s[9] < '1' || s[9] > '5' ||
	    s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9' ||
	    (n > 12 && s[12] != ' '))
		return fail(h, MXP_E_PROTOCOL, "HTTP status line is not \"HTTP/d.d ddd reason\"");
	for (i = 13; i < n; i++)
		if (!is_fchar((unsigned char)s[i]))
			return fail(h, MXP_E_PROTOCOL, "HTTP status line: control byte 0x%02x in the reason",
			    (unsigned char)s[i]);
	*status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	*reason = n > 13 ? at + 13 : end;
	*reason_end = end;
	return R_OK;
}

/* The chunked body from `at`: validates it and finds where its trailer
 * section starts (*trailer) and where the whole ends (*next). With body
 * (a luaL_Buffer) not NULL, also copies the chunk data: a second walk,
 * after the first found the body complete. */
static int chunked_body(struct http *h, size_t at, luaL_Buffer *body,
    size_t *trailer, size_t *next)
{
	uint64_t total = 0;
	size_t end, nx;
	int r;

	for (;;) {
		const char *line = h->buf + at;
		uint64_t size = 0;
		size_t n, i = 0;

		if (at < h->len && hexval((unsigned char)line[0]) < 0)
			return fail(h, MXP_E_PROTOCOL, "HTTP chunk size is not hexadecimal");
		r = get_line(h, at, at + MXP_HTTP_CHUNK_LINE_MAX, MXP_HTTP_CHUNK_LINE_MAX,
		    "chunk-size line", &end, &nx);
		if (r == R_FAIL)
			return r;
		if (r == R_MORE)
			goto more;
		n = end - at;
		while (i < n && hexval((unsigned char)line[i]) >= 0) {
			size = size * 16 + (uint64_t)hexval((unsigned char)line[i]);
			if (size > h->body_max)
				return fail(h, MXP_E_TOOLONG, "HTTP chunk of more than %zu bytes",
				    h->body_max);
			i++;
		}
		while (i < n && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i < n && line[i] != ';')
			return fail(h, MXP_E_PROTOCOL, "HTTP chunk size is not hexadecimal");
		for (; i < n; i++)   /* chunk extensions: skipped */
			if (!is_fchar((unsigned char)line[i]))
				return fail(h, MXP_E_PROTOCOL, "HTTP chunk extension with a control byte");
		at = nx;
		if (size == 0)
			break;
		total += size;
		if (total > h->body_max)
			return fail(h, MXP_E_TOOLONG, "HTTP body longer than %zu bytes", h->body_max);
		if (h->len - at < size + 1)
			goto more;
		if (body != NULL)
			luaL_addlstring(body, h->buf + at, (size_t)size);
		at += (size_t)size;
		if (h->buf[at] == '\n') {
			at += 1;
		} else if (h->buf[at] == '\r') {
			if (at + 1 == h->len)
				goto more;
			if (h->buf[at + 1] != '\n')
				return fail(h, MXP_E_PROTOCOL, "HTTP chunk data not followed by CRLF");
			at += 2;
		} else {
			return fail(h, MXP_E_PROTOCOL, "HTTP chunk data not followed by CRLF");
		}
	}
	*trailer = at;
	r = fields(h, at, at + h->header_max, 0, 0, "trailer section", next);
	if (r != R_MORE)
		return r;
more:
	if (h->eof)
		return fail(h, MXP_E_PROTOCOL, "HTTP chunked body ended before its last chunk");
	return R_MORE;
}

static size_t opt_size(lua_State *L, int idx, const char *field, size_t def,
    size_t lo, size_t hi)
{
	lua_Integer v = 0;

	if (lua_getfield(L, idx, field) == LUA_TNIL) {
		lua_pop(L, 1);
		return def;
	}
	if (lua_isinteger(L, -1))
		v = lua_tointeger(L, -1);
	if (!lua_isinteger(L, -1) || v < (lua_Integer)lo || v > (lua_Integer)hi)
		luaL_argerror(L, idx, lua_pushfstring(L, "opts.%s: integer %d..%d expected",
		    field, (int)lo, (int)hi));
	lua_pop(L, 1);
	return (size_t)v;
}

/* The final response's body and framing fields into the table at resp;
 * R_OK with *next, R_MORE or R_FAIL. */
static int body(struct http *h, int resp, int status, size_t at, size_t *next)
{
	lua_State *L = h->L;
	size_t avail = h->len - at;
	int r;

	if (h->head || status < 200 || status == 204 || status == 304) {
		lua_pushliteral(L, "");
		*next = at;
	} else if (h->te && h->chunked) {
		luaL_Buffer b;
		size_t trailer, end;
		int nfields = h->nheaders;

		if ((r = chunked_body(h, at, NULL, &trailer, &end)) != R_OK)
			return r;
		luaL_buffinit(L, &b);
		(void)chunked_body(h, at, &b, &trailer, &end);
		luaL_pushresult(&b);
		lua_setfield(L, resp, "body");
		lua_createtable(L, 0, 0);
		h->nheaders = nfields;
		(void)fields(h, trailer, trailer + h->header_max, lua_gettop(L), 0,
		    "trailer section", &end);
		lua_setfield(L, resp, "trailers");
		lua_pushboolean(L, 1);
		lua_setfield(L, resp, "chunked");
		*next = end;
		return R_OK;   /* no length: Transfer-Encoding overrides it */
	} else if (h->have_cl && !h->te) {
		if (h->cl > h->body_max)
			return fail(h, MXP_E_TOOLONG, "HTTP body of %llu bytes, over the cap of %zu",
			    (unsigned long long)h->cl, h->body_max);
		if (avail < h->cl) {
			if (h->eof)
				return fail(h, MXP_E_PROTOCOL, "body ended after %zu of %llu bytes",
				    avail, (unsigned long long)h->cl);
			return R_MORE;
		}
		lua_pushlstring(L, h->buf + at, (size_t)h->cl);
		*next = at + (size_t)h->cl;
	} else {
		/* until the end of the stream */
		if (avail > h->body_max)
			return fail(h, MXP_E_TOOLONG, "HTTP body longer than %zu bytes",
			    h->body_max);
		if (!h->eof)
			return R_MORE;
		lua_pushlstring(L, h->buf + at, avail);
		*next = h->len;
		h->have_cl = 0;
	}
	lua_setfield(L, resp, "body");
	lua_pushboolean(L, 0);
	lua_setfield(L, resp, "chunked");
	if (h->have_cl) {
		lua_pushinteger(L, (lua_Integer)h->cl);
		lua_setfield(L, resp, "length");
	}
	return R_OK;
}

static int l_http_response(lua_State *L)
{
	struct http h;
	lua_Integer init = luaL_optinteger(L, 2, 1);
	size_t start, at, line, reason = 0, reason_end = 0, hdr_end = 0, next = 0;
	int status = 0, r;

	memset(&h, 0, sizeof h);
	h.L = L;
	h.buf = luaL_checklstring(L, 1, &h.len);
	luaL_argcheck(L, init >= 1 && (size_t)init <= h.len + 1, 2, "index out of range");
	h.eof = lua_toboolean(L, 3);
	h.header_max = MXP_HTTP_HEADER_MAX;
	h.body_max = MXP_HTTP_BODY_MAX;
	if (!lua_isnoneornil(L, 4)) {
		luaL_checktype(L, 4, LUA_TTABLE);
		h.header_max = opt_size(L, 4, "header_max", MXP_HTTP_HEADER_MAX, 1,
		    MXP_HTTP_HEADER_MAX);
		h.body_max = opt_size(L, 4, "body_max", MXP_HTTP_BODY_MAX, 0,
		    MXP_HTTP_BODY_MAX);
		lua_getfield(L, 4, "head");
		h.head = lua_toboolean(L, -1);
		lua_pop(L, 1);
	}
	lua_settop(L, 4);
	start = at = (size_t)init - 1;

	/* interim 1xx responses (all in one header_max with the final one),
	 * then the final response */
	for (;;) {
		h.have_cl = h.te = h.chunked = 0;
		h.nheaders = 0;
		line = at;
		lua_settop(L, 4);
		lua_createtable(L, 0, 9);                        /* 5: resp */
		lua_createtable(L, 8, 0);                        /* 6: headers */
		r = status_line(&h, at, start + h.header_max, &status, &reason,
		    &reason_end, &next);
		if (r == R_OK)
			r = fields(&h, next, start + h.header_max, 6, 1,
			    "header section", &hdr_end);
		if (r == R_FAIL)
			return 3;
		if (r == R_MORE) {
			lua_pushboolean(L, 0);
			return 1;
		}
		at = hdr_end;
		if (status >= 200 || status == 101)
			break;
	}
	lua_setfield(L, 5, "headers");
	lua_pushlstring(L, h.buf + line, 8);                 /* "HTTP/1.1" */
	lua_setfield(L, 5, "version");
	lua_pushinteger(L, status);
	lua_setfield(L, 5, "status");
	lua_pushlstring(L, h.buf + reason, reason_end - reason);
	lua_setfield(L, 5, "reason");
	r = body(&h, 5, status, at, &next);
	if (r == R_FAIL)
		return 3;
	if (r == R_MORE) {
		lua_pushboolean(L, 0);
		return 1;
	}
	lua_settop(L, 5);
	lua_pushinteger(L, (lua_Integer)next + 1);
	return 2;
}

void mxp_http_open(lua_State *L)
{
	lua_pushcfunction(L, l_http_response);
	lua_setfield(L, -2, "http_response");
}
