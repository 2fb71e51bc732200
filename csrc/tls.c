/*
 * tls.c -- a libtls client over a connected, non-blocking "mxprobe.sock"
 * (net.c) that the caller owns.
 *
 *   core.tls_client(sock, servername|nil [, opts]) -> tls | nil, msg, "tls"
 *       opts: { protocols = "all" | "tlsv1.2" | "tlsv1.2,tlsv1.3" | any
 *               libtls protocol string, ciphers = "<OpenSSL cipher list>",
 *               seclevel = 0..5 }; all optional, defaults: all protocols,
 *               MXP_TLS_CIPHERS at MXP_TLS_SECLEVEL (today's behaviour)
 *   t:handshake()   -> true | false, "wantread"|"wantwrite" | nil, msg, "tls"
 *   t:recv([max])   -> string | false, want | nil, "closed", "closed"
 *                      | nil, msg, "tls"
 *   t:send(data [, i]) -> n | false, want | nil, msg, code
 *   t:info()        -> { version, cipher, cipher_bits, servername,
 *                        protocols, chain_pem | chain_error }
 *   t:close()       -> true (idempotent; also __gc and __close)
 *
 * The TLS object keeps its socket in a user value: the socket cannot be
 * collected, and its descriptor closed and reused, under it. Using a TLS
 * object whose socket was closed raises; closing or collecting it then
 * sends nothing (the number may already be another connection's).
 *
 * The handshake never verifies: the chain is always captured and judged
 * afterwards by x509.c against a libcrypto store. Nothing here blocks or
 * loops on TLS_WANT_*; the Lua layer waits on the descriptor. The
 * descriptor is never closed here (tls_connect_socket leaves it to us).
 *
 * OpenSSL writes to the socket with write(2), not send(MSG_NOSIGNAL): a
 * write to a connection the peer has reset raises SIGPIPE, whose default
 * action kills the process. Every libtls call that may write runs with
 * SIGPIPE blocked in this thread, and a SIGPIPE it caused is consumed
 * before the mask is restored (libpq's method): the process-wide
 * disposition a host program chose is left alone.
 *
 * One struct tls_config per distinct option set and Lua state, cached in
 * a registry table keyed by the normalised options ("p=all s=0 c=...")
 * and freed by its __gc; libtls reference-counts it, so a connection that
 * outlives it (at lua_close) stays valid.
 */
#include "mxprobe.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <tls.h>

/* Broadest set libtls accepts: its "all" ("ALL:!aNULL:!eNULL") at OpenSSL
 * security level 0. At a higher level OpenSSL 3 refuses TLS 1.0/1.1
 * (SHA-1 handshake signatures) and weak DH groups, so a server that only
 * speaks those could not be seen at all. The peer's key and signature
 * strength are judged after the handshake (x509_verify, auth level 2), not
 * by refusing to talk. */
#ifndef MXP_TLS_CIPHERS
#define MXP_TLS_CIPHERS "ALL:!aNULL:!eNULL"
#endif
#ifndef MXP_TLS_SECLEVEL
#define MXP_TLS_SECLEVEL 0
#endif
#ifndef MXP_TLS_CURVES
#define MXP_TLS_CURVES "X25519,P-256,P-384,P-521,X448"
#endif

#define UV_SERVERNAME 1   /* user values of a "mxprobe.tls" */
#define UV_SOCK       2
#define UV_PROTOCOLS  3

struct mxp_tls {
	struct tls *ctx;   /* NULL when closed */
	int fd;            /* the socket's, never closed here */
	int handshaken;    /* a session exists: info() works, close_notify is due */
	int broken;        /* a fatal recv/send error: no close_notify */
};

struct mxp_tlscfg {
	struct tls_config *cfg;
};

/* ---- the configurations, one per option set ---------------------------- */

struct tls_opts {
	uint32_t protocols;
	char protocols_text[64];             /* canonical: "all" | "tlsv1.2,..." */
	const char *ciphers;                 /* on the stack or a literal */
	int seclevel;
	char key[MXP_TLS_CIPHERS_MAX + 96];  /* registry cache key */
};

static int config_gc(lua_State *L)
{
	struct mxp_tlscfg *c = luaL_checkudata(L, 1, MXP_TLS_CONFIG_MT);
	if (c->cfg != NULL) {
		tls_config_free(c->cfg);
		c->cfg = NULL;
	}
	return 0;
}

static void canon_protocols(struct tls_opts *o)
{
	static const struct { uint32_t bit; const char *name; } names[] = {
		{TLS_PROTOCOL_TLSv1_0, "tlsv1.0"},
		{TLS_PROTOCOL_TLSv1_1, "tlsv1.1"},
		{TLS_PROTOCOL_TLSv1_2, "tlsv1.2"},
		{TLS_PROTOCOL_TLSv1_3, "tlsv1.3"},
	};
	size_t i, n = 0;

	o->protocols_text[0] = '\0';
	if (o->protocols == TLS_PROTOCOLS_ALL) {
		snprintf(o->protocols_text, sizeof o->protocols_text, "all");
		return;
	}
	for (i = 0; i < sizeof names / sizeof names[0]; i++)
		if (o->protocols & names[i].bit)
			n += (size_t)snprintf(o->protocols_text + n,
			    sizeof o->protocols_text - n, "%s%s",
			    n > 0 ? "," : "", names[i].name);
}

/* opts at stack index idx (a table or nil) -> o; misuse raises. The
 * cipher string stays on the stack (it is in the table). */
static void read_opts(lua_State *L, int idx, struct tls_opts *o)
{
	const char *protocols = "all";
	size_t clen = 0;

	o->ciphers = MXP_TLS_CIPHERS;
	o->seclevel = MXP_TLS_SECLEVEL;
	if (!lua_isnoneornil(L, idx)) {
		luaL_checktype(L, idx, LUA_TTABLE);
		if (lua_getfield(L, idx, "protocols") != LUA_TNIL) {
			if (lua_type(L, -1) != LUA_TSTRING)
				luaL_argerror(L, idx, "opts.protocols: string expected");
			protocols = lua_tostring(L, -1);
		}
		if (lua_getfield(L, idx, "ciphers") != LUA_TNIL) {
			if (lua_type(L, -1) != LUA_TSTRING)
				luaL_argerror(L, idx, "opts.ciphers: string expected");
			o->ciphers = lua_tolstring(L, -1, &clen);
			if (clen == 0 || clen > MXP_TLS_CIPHERS_MAX ||
			    strlen(o->ciphers) != clen)
				luaL_argerror(L, idx, "opts.ciphers: empty, too long or NUL");
		}
		if (lua_getfield(L, idx, "seclevel") != LUA_TNIL) {
			if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 ||
			    lua_tointeger(L, -1) > 5)
				luaL_argerror(L, idx, "opts.seclevel: integer 0..5 expected");
			o->seclevel = (int)lua_tointeger(L, -1);
		}
		/* the three values stay on the stack while o points into them */
	}
	if (tls_config_parse_protocols(&o->protocols, protocols) != 0)
		luaL_argerror(L, idx, lua_pushfstring(L,
		    "opts.protocols: not a libtls protocol list: %s", protocols));
	if ((o->protocols & TLS_PROTOCOLS_ALL) == 0)
		luaL_argerror(L, idx, "opts.protocols: no protocol left");
	o->protocols &= TLS_PROTOCOLS_ALL;
	canon_protocols(o);
	snprintf(o->key, sizeof o->key, "p=%s s=%d c=%s", o->protocols_text,
	    o->seclevel, o->ciphers);
}

/* the configuration for o in this Lua state, made on first use; NULL with
 * nil, msg, code pushed when it cannot be made */
static struct tls_config *get_config(lua_State *L, const struct tls_opts *o)
{
	struct mxp_tlscfg *c;
	struct tls_config *cfg;
	const char *what = NULL;
	char ciphers[MXP_TLS_CIPHERS_MAX + 16];

	lua_getfield(L, LUA_REGISTRYINDEX, MXP_TLS_CONFIGS_KEY);   /* configs */
	lua_getfield(L, -1, o->key);
	c = luaL_testudata(L, -1, MXP_TLS_CONFIG_MT);
	if (c != NULL && c->cfg != NULL) {
		lua_pop(L, 2);   /* still referenced from the registry */
		return c->cfg;
	}
	lua_pop(L, 1);
	c = lua_newuserdatauv(L, sizeof *c, 0);          /* configs ud */
	c->cfg = NULL;
	luaL_setmetatable(L, MXP_TLS_CONFIG_MT);
	if ((c->cfg = cfg = tls_config_new()) == NULL) {
		lua_pop(L, 2);
		mxp_push_fail(L, "tls config: out of memory", MXP_E_TLS);
		return NULL;
	}
	tls_config_insecure_noverifycert(cfg);
	tls_config_insecure_noverifyname(cfg);
	tls_config_insecure_noverifytime(cfg);
	snprintf(ciphers, sizeof ciphers, "%s:@SECLEVEL=%d", o->ciphers,
	    o->seclevel);
	if (tls_config_set_protocols(cfg, o->protocols) != 0)
		what = "protocols";
	else if (tls_config_set_ciphers(cfg, ciphers) != 0 &&
	    (strcmp(o->ciphers, MXP_TLS_CIPHERS) != 0 ||
	    tls_config_set_ciphers(cfg, "all") != 0))
		what = "ciphers";   /* only the default falls back to "all" */
	else if (tls_config_set_ecdhecurves(cfg, MXP_TLS_CURVES) != 0 &&
	    tls_config_set_ecdhecurves(cfg, "default") != 0)
		what = "curves";
	if (what != NULL) {
		const char *e = tls_config_error(cfg);
		lua_pushfstring(L, "tls config %s: %s", what,
		    e != NULL ? e : "rejected");
		lua_replace(L, -3);          /* msg ud */
		lua_pop(L, 1);               /* the userdata's __gc frees cfg */
		lua_pushnil(L);
		lua_insert(L, -2);           /* nil msg */
		lua_pushstring(L, MXP_E_TLS);
		return NULL;
	}
	lua_setfield(L, -2, o->key);
	lua_pop(L, 1);
	return cfg;
}

/* ---- SIGPIPE --------------------------------------------------------- */

struct nopipe {
	sigset_t old;
	int was_pending;
};

static void nopipe_begin(struct nopipe *np)
{
	sigset_t set, pending;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, &np->old);
	np->was_pending = sigpending(&pending) == 0 &&
	    sigismember(&pending, SIGPIPE) == 1;
}

static void nopipe_end(struct nopipe *np)
{
	static const struct timespec zero = {0, 0};
	sigset_t set, pending;
	int saved = errno;

	if (!np->was_pending && sigpending(&pending) == 0 &&
	    sigismember(&pending, SIGPIPE) == 1) {
		sigemptyset(&set);
		sigaddset(&set, SIGPIPE);
		while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &np->old, NULL);
	errno = saved;
}

/* ---- the connection object -------------------------------------------- */

/* the one checked accessor */
static struct mxp_tls *checktls(lua_State *L)
{
	return luaL_checkudata(L, 1, MXP_TLS_MT);
}

/* is the socket under t still open, with the descriptor t was made on? */
static int sock_alive(lua_State *L, const struct mxp_tls *t)
{
	int alive;

	if (lua_getiuservalue(L, 1, UV_SOCK) != LUA_TUSERDATA) {
		lua_pop(L, 1);
		return 0;
	}
	alive = mxp_sock_fd(L, -1) == t->fd;
	lua_pop(L, 1);
	return alive;
}

static struct tls *checkopen(lua_State *L)
{
	struct mxp_tls *t = checktls(L);
	if (t->ctx == NULL)
		luaL_error(L, "attempt to use a closed tls connection");
	if (!sock_alive(L, t))
		luaL_error(L, "attempt to use a tls connection whose socket is closed");
	return t->ctx;
}

/* best effort, never waits: one tls_close (close_notify) when a session
 * was established and has not failed and its socket is still open,
 * whatever it returns, then free. Not the descriptor. The object is at
 * stack index 1. */
static void conn_release(lua_State *L, struct mxp_tls *t)
{
	if (t->ctx != NULL) {
		if (t->handshaken && !t->broken && sock_alive(L, t)) {
			struct nopipe np;
			nopipe_begin(&np);
			(void)tls_close(t->ctx);
			nopipe_end(&np);
		}
		tls_free(t->ctx);
		t->ctx = NULL;
	}
}

static int l_close(lua_State *L)
{
	conn_release(L, checktls(L));
	lua_pushboolean(L, 1);
	return 1;
}

static int l_gc(lua_State *L)
{
	conn_release(L, checktls(L));
	return 0;
}

static int l_tostring(lua_State *L)
{
	struct mxp_tls *t = checktls(L);
	if (t->ctx == NULL)
		lua_pushliteral(L, "mxprobe.tls (closed)");
	else
		lua_pushfstring(L, "mxprobe.tls (%p)", (void *)t);
	return 1;
}

static int push_tls_error(lua_State *L, struct tls *ctx, const char *what)
{
	const char *e = tls_error(ctx);
	lua_pushnil(L);
	lua_pushfstring(L, "%s: %s", what, e != NULL ? e : "failed");
	lua_pushstring(L, MXP_E_TLS);
	return 3;
}

static int push_want(lua_State *L, ssize_t rv)
{
	lua_pushboolean(L, 0);
	lua_pushstring(L, rv == TLS_WANT_POLLIN ? "wantread" : "wantwrite");
	return 2;
}

/* After a failed read or write: has the peer closed or reset the TCP
 * connection? libtls reports a close without close_notify as a TLS error
 * ("unexpected eof while reading"); errno of the failed call, else the
 * socket itself, tells it apart from a real TLS failure. Returns the error
 * code, or NULL. */
static const char *peer_gone(int fd, int err, const char **msg)
{
	char c;
	ssize_t n;

	if (err != EPIPE && err != ECONNRESET) {
		n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n == 0) {
			*msg = "connection closed without close_notify";
			return MXP_E_CLOSED;
		}
		err = n < 0 ? errno : 0;
		/* unread data (session tickets) can hide the end from recv;
		 * a zero-length send sends nothing, and fails with EPIPE on a
		 * connection that can no longer carry anything */
		if (err != ECONNRESET &&
		    send(fd, "", 0, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			err = errno;
	}
	if (err == EPIPE) {
		*msg = "connection closed by peer";
		return MXP_E_CLOSED;
	}
	if (err == ECONNRESET) {
		*msg = "connection reset by peer";
		return MXP_E_RESET;
	}
	return NULL;
}

/* a failed recv/send: closed/reset when the socket says so (libtls's own
 * text kept in parentheses), else "tls" */
static int push_io_error(lua_State *L, struct mxp_tls *t, int err,
    const char *what)
{
	const char *msg = NULL, *code = peer_gone(t->fd, err, &msg);
	const char *e;

	t->broken = 1;
	if (code == NULL)
		return push_tls_error(L, t->ctx, what);
	e = tls_error(t->ctx);
	lua_pushnil(L);
	if (e != NULL)
		lua_pushfstring(L, "%s: %s (%s)", what, msg, e);
	else
		lua_pushfstring(L, "%s: %s", what, msg);
	lua_pushstring(L, code);
	return 3;
}

static int l_tls_client(lua_State *L)
{
	int fd = mxp_sock_checkfd(L, 1);
	const char *servername;
	struct tls_opts o;
	struct tls_config *cfg;
	struct mxp_tls *t;

	if (!lua_isnoneornil(L, 2))
		luaL_checktype(L, 2, LUA_TSTRING);
	servername = lua_tostring(L, 2);
	lua_settop(L, 3);
	read_opts(L, 3, &o);
	if ((cfg = get_config(L, &o)) == NULL)
		return 3;
	/* created closed, before the context exists */
	t = lua_newuserdatauv(L, sizeof *t, 3);
	t->ctx = NULL;
	t->fd = fd;
	t->handshaken = 0;
	t->broken = 0;
	luaL_setmetatable(L, MXP_TLS_MT);
	lua_pushvalue(L, 2);                 /* servername, for info() */
	lua_setiuservalue(L, -2, UV_SERVERNAME);
	lua_pushvalue(L, 1);                 /* the socket, kept alive */
	lua_setiuservalue(L, -2, UV_SOCK);
	lua_pushstring(L, o.protocols_text);
	lua_setiuservalue(L, -2, UV_PROTOCOLS);
	if ((t->ctx = tls_client()) == NULL)
		return mxp_push_fail(L, "tls client: out of memory", MXP_E_TLS);
	if (tls_configure(t->ctx, cfg) != 0 ||
	    tls_connect_socket(t->ctx, fd, servername) != 0) {
		push_tls_error(L, t->ctx, "tls connect");
		tls_free(t->ctx);            /* no session: nothing to send */
		t->ctx = NULL;
		return 3;
	}
	return 1;
}

static int l_handshake(lua_State *L)
{
	struct tls *ctx = checkopen(L);
	struct nopipe np;
	int rv;

	nopipe_begin(&np);
	rv = tls_handshake(ctx);
	nopipe_end(&np);

	if (rv == 0) {
		checktls(L)->handshaken = 1;
		lua_pushboolean(L, 1);
		return 1;
	}
	if (rv == TLS_WANT_POLLIN || rv == TLS_WANT_POLLOUT)
		return push_want(L, rv);
	return push_tls_error(L, ctx, "tls handshake");
}

static int l_recv(lua_State *L)
{
	struct tls *ctx = checkopen(L);
	lua_Integer max = luaL_optinteger(L, 2, MXP_RECV_MAX);
	char buf[MXP_RECV_MAX];   /* on the stack, as net.c's recv: no 16 KiB
	                           * Lua buffer allocated and freed per read */
	struct nopipe np;
	ssize_t rv;
	int err;

	luaL_argcheck(L, max >= 1, 2, "must be positive");
	if (max > MXP_RECV_MAX)
		max = MXP_RECV_MAX;
	nopipe_begin(&np);   /* a read may write (key update, alerts) */
	errno = 0;
	rv = tls_read(ctx, buf, (size_t)max);
	err = errno;
	nopipe_end(&np);
	if (rv > 0) {
		lua_pushlstring(L, buf, (size_t)rv);
		return 1;
	}
	if (rv == TLS_WANT_POLLIN || rv == TLS_WANT_POLLOUT)
		return push_want(L, rv);
	if (rv == 0)
		return mxp_push_fail(L, MXP_E_CLOSED, MXP_E_CLOSED);
	return push_io_error(L, checktls(L), err, "tls recv");
}

static int l_send(lua_State *L)
{
	struct tls *ctx = checkopen(L);
	size_t len;
	const char *data = luaL_checklstring(L, 2, &len);
	lua_Integer i = luaL_optinteger(L, 3, 1);
	struct nopipe np;
	ssize_t rv;
	int err;

	luaL_argcheck(L, i >= 1 && (size_t)i <= len + 1, 3, "out of range");
	if ((size_t)i > len) {
		lua_pushinteger(L, 0);
		return 1;
	}
	nopipe_begin(&np);
	errno = 0;
	rv = tls_write(ctx, data + i - 1, len - (size_t)(i - 1));
	err = errno;
	nopipe_end(&np);
	if (rv >= 0) {
		lua_pushinteger(L, (lua_Integer)rv);
		return 1;
	}
	if (rv == TLS_WANT_POLLIN || rv == TLS_WANT_POLLOUT)
		return push_want(L, rv);
	return push_io_error(L, checktls(L), err, "tls send");
}

static int l_info(lua_State *L)
{
	struct tls *ctx = checkopen(L);
	const char *s;
	const uint8_t *pem;
	size_t len = 0;
	int bits;

	if (!checktls(L)->handshaken)
		return luaL_error(L, "tls info: handshake not complete");
	lua_createtable(L, 0, 7);
	if ((s = tls_conn_version(ctx)) != NULL) {
		lua_pushstring(L, s);
		lua_setfield(L, -2, "version");
	}
	if ((s = tls_conn_cipher(ctx)) != NULL) {
		lua_pushstring(L, s);
		lua_setfield(L, -2, "cipher");
	}
	if ((bits = tls_conn_cipher_strength(ctx)) > 0) {
		lua_pushinteger(L, bits);
		lua_setfield(L, -2, "cipher_bits");
	}
	if (lua_getiuservalue(L, 1, UV_SERVERNAME) == LUA_TSTRING)
		lua_setfield(L, -2, "servername");
	else
		lua_pop(L, 1);
	lua_getiuservalue(L, 1, UV_PROTOCOLS);
	lua_setfield(L, -2, "protocols");
	if ((pem = tls_peer_cert_chain_pem(ctx, &len)) != NULL && len > 0) {
		if (len > MXP_X509_PEM_MAX) {
			lua_pushstring(L, MXP_E_TOOLONG);
			lua_setfield(L, -2, "chain_error");
		} else {
			lua_pushlstring(L, (const char *)pem, len);
			lua_setfield(L, -2, "chain_pem");
		}
	}
	return 1;
}

void mxp_tls_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{"handshake", l_handshake},
		{"recv", l_recv},
		{"send", l_send},
		{"info", l_info},
		{"close", l_close},
		{NULL, NULL}
	};
	static const luaL_Reg meta[] = {
		{"__gc", l_gc},
		{"__close", l_gc},
		{"__tostring", l_tostring},
		{NULL, NULL}
	};
	static const luaL_Reg funcs[] = {
		{"tls_client", l_tls_client},
		{NULL, NULL}
	};

	if (tls_init() != 0)
		luaL_error(L, "mxprobe.core: libtls initialisation failed");
	if (luaL_newmetatable(L, MXP_TLS_CONFIG_MT)) {
		lua_pushcfunction(L, config_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_pop(L, 1);
	if (lua_getfield(L, LUA_REGISTRYINDEX, MXP_TLS_CONFIGS_KEY) != LUA_TTABLE) {
		lua_newtable(L);
		lua_setfield(L, LUA_REGISTRYINDEX, MXP_TLS_CONFIGS_KEY);
	}
	lua_pop(L, 1);
	if (luaL_newmetatable(L, MXP_TLS_MT)) {
		luaL_setfuncs(L, meta, 0);
		luaL_newlib(L, methods);
		lua_setfield(L, -2, "__index");
	}
	lua_pop(L, 1);
	luaL_setfuncs(L, funcs, 0);
}
