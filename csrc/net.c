/*
 * net.c -- non-blocking TCP and UDP sockets, poll(2), clocks.
 *
 * Nothing here blocks: connect() returns at once with the connection in
 * progress, recv/send return false, "wantread"/"wantwrite" when they would
 * block, and the Lua loop waits on the descriptor with its own deadline.
 */
#include "mxprobe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef MXP_POLL_MAX            /* descriptors in one poll() call */
#define MXP_POLL_MAX 65536
#endif

typedef struct {
	int fd;          /* -1 once closed */
	int type;        /* SOCK_STREAM or SOCK_DGRAM */
	char peer[INET6_ADDRSTRLEN + 8];  /* "addr:port" / "[addr]:port" for messages */
} mxp_sock;

static mxp_sock *sock_check(lua_State *L, int idx)
{
	return (mxp_sock *)luaL_checkudata(L, idx, MXP_SOCK_MT);
}

static mxp_sock *sock_checkopen(lua_State *L, int idx)
{
	mxp_sock *s = sock_check(L, idx);
	if (s->fd < 0)
		luaL_argerror(L, idx, "socket is closed");
	return s;
}

int mxp_sock_checkfd(lua_State *L, int idx)
{
	return sock_checkopen(L, idx)->fd;
}

int mxp_sock_fd(lua_State *L, int idx)
{
	return sock_check(L, idx)->fd;
}

/* Fills *ss from a textual IPv4/IPv6 address; returns the family or 0. */
static int parse_addr(const char *text, int port, struct sockaddr_storage *ss,
		      socklen_t *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof *sin;
		return AF_INET;
	}
	if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof *sin6;
		return AF_INET6;
	}
	return 0;
}

/* core.connect(addr, port [, "udp"]) -> sock | nil, msg, code */
static int l_connect(lua_State *L)
{
	const char *addr = luaL_checkstring(L, 1);
	lua_Integer port = luaL_checkinteger(L, 2);
	const char *proto = luaL_optstring(L, 3, "tcp");
	struct sockaddr_storage ss;
	socklen_t len = 0;
	int family, type, err;
	mxp_sock *s;

	luaL_argcheck(L, port > 0 && port <= 65535, 2, "port out of range");
	if (strcmp(proto, "tcp") == 0)
		type = SOCK_STREAM;
	else if (strcmp(proto, "udp") == 0)
		type = SOCK_DGRAM;
	else
		return luaL_argerror(L, 3, "expected \"tcp\" or \"udp\"");
	family = parse_addr(addr, (int)port, &ss, &len);
	luaL_argcheck(L, family != 0, 1, "not an IPv4 or IPv6 address");

	/* the userdata exists, closed, before the descriptor does */
	s = (mxp_sock *)lua_newuserdatauv(L, sizeof *s, 0);
	s->fd = -1;
	s->type = type;
	snprintf(s->peer, sizeof s->peer, family == AF_INET6 ? "[%s]:%d" : "%s:%d",
		 addr, (int)port);
	luaL_setmetatable(L, MXP_SOCK_MT);

	s->fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		err = errno;
		lua_pushfstring(L, "socket %s", s->peer);
		return mxp_push_errno(L, lua_tostring(L, -1), err);
	}
	if (connect(s->fd, (struct sockaddr *)&ss, len) != 0 && errno != EINPROGRESS) {
		err = errno;
		close(s->fd);
		s->fd = -1;
		lua_pushfstring(L, "connect %s", s->peer);
		return mxp_push_errno(L, lua_tostring(L, -1), err);
	}
	return 1;
}

/* s:finish_connect() -> true | false, "wantwrite" | nil, msg, code */
static int l_finish_connect(lua_State *L)
{
	mxp_sock *s = sock_checkopen(L, 1);
	int soerr = 0;
	socklen_t slen = sizeof soerr;
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char ctx[sizeof s->peer + 16];

	snprintf(ctx, sizeof ctx, "connect %s", s->peer);
	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) != 0)
		return mxp_push_errno(L, ctx, errno);
	if (soerr != 0)
		return mxp_push_errno(L, ctx, soerr);
	if (getpeername(s->fd, (struct sockaddr *)&ss, &len) != 0) {
		if (errno == ENOTCONN) {
			lua_pushboolean(L, 0);
			lua_pushliteral(L, "wantwrite");
			return 2;
		}
		return mxp_push_errno(L, ctx, errno);
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* s:send(data [, i]) -> bytes written from byte i | false, "wantwrite" |
 * nil, msg, code */
static int l_send(lua_State *L)
{
	mxp_sock *s = sock_checkopen(L, 1);
	size_t len;
	const char *data = luaL_checklstring(L, 2, &len);
	lua_Integer i = luaL_optinteger(L, 3, 1);
	ssize_t n;

	luaL_argcheck(L, i >= 1 && (size_t)i <= len + 1, 3, "index out of range");
	if ((size_t)i > len) {
		lua_pushinteger(L, 0);
		return 1;
	}
	n = send(s->fd, data + i - 1, len - (size_t)(i - 1), MSG_NOSIGNAL);
	if (n < 0) {
		int err = errno;
		if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
			lua_pushboolean(L, 0);
			lua_pushliteral(L, "wantwrite");
			return 2;
		}
		lua_pushfstring(L, "send %s", s->peer);
		return mxp_push_errno(L, lua_tostring(L, -1), err);
	}
	lua_pushinteger(L, (lua_Integer)n);
	return 1;
}

/* s:recv([max]) -> string | false, "wantread" | nil, "closed", "closed" |
 * nil, msg, code */
static int l_recv(lua_State *L)
{
	mxp_sock *s = sock_checkopen(L, 1);
	lua_Integer max = luaL_optinteger(L, 2, MXP_RECV_MAX);
	char buf[MXP_RECV_MAX];
	ssize_t n;

	luaL_argcheck(L, max >= 1, 2, "must be positive");
	if (max > MXP_RECV_MAX)
		max = MXP_RECV_MAX;
	n = recv(s->fd, buf, (size_t)max, 0);
	if (n < 0) {
		int err = errno;
		if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
			lua_pushboolean(L, 0);
			lua_pushliteral(L, "wantread");
			return 2;
		}
		lua_pushfstring(L, "recv %s", s->peer);
		return mxp_push_errno(L, lua_tostring(L, -1), err);
	}
	if (n == 0 && s->type == SOCK_STREAM)
		return mxp_push_fail(L, "closed", MXP_E_CLOSED);
	lua_pushlstring(L, buf, (size_t)n);
	return 1;
}

/* s:local_address() -> address, port (our end, getsockname) |
 * nil, msg, code */
static int l_local_address(lua_State *L)
{
	mxp_sock *s = sock_checkopen(L, 1);
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char text[INET6_ADDRSTRLEN];
	int port;

	memset(&ss, 0, sizeof ss);
	if (getsockname(s->fd, (struct sockaddr *)&ss, &len) != 0) {
		int err = errno;
		lua_pushfstring(L, "getsockname %s", s->peer);
		return mxp_push_errno(L, lua_tostring(L, -1), err);
	}
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text);
		port = ntohs(sin->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof text);
		port = ntohs(sin6->sin6_port);
	} else {
		lua_pushfstring(L, "getsockname %s: not an IP socket", s->peer);
		return mxp_push_fail(L, lua_tostring(L, -1), MXP_E_ERROR);
	}
	lua_pushstring(L, text);
	lua_pushinteger(L, port);
	return 2;
}

static int l_fd(lua_State *L)
{
	lua_pushinteger(L, sock_checkopen(L, 1)->fd);
	return 1;
}

/* __gc, __close and :close() in one idempotent function */
static int l_close(lua_State *L)
{
	mxp_sock *s = sock_check(L, 1);
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int l_tostring(lua_State *L)
{
	mxp_sock *s = sock_check(L, 1);
	lua_pushfstring(L, "%s (%s%s%s)", MXP_SOCK_MT,
			s->type == SOCK_STREAM ? "tcp " : "udp ", s->peer,
			s->fd < 0 ? ", closed" : "");
	return 1;
}

/* core.poll(fds, events, timeout_ms) -> revents list
 * events: 1 = readable, 2 = writable; revents adds 4 = error/hangup. */
static int l_poll(lua_State *L)
{
	lua_Integer n, i;
	lua_Number timeout = luaL_checknumber(L, 3);
	struct pollfd *pfd;
	int rc, ms;

	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_checktype(L, 2, LUA_TTABLE);
	n = luaL_len(L, 1);
	luaL_argcheck(L, n <= MXP_POLL_MAX, 1, "too many descriptors");
	luaL_argcheck(L, luaL_len(L, 2) == n, 2, "must have one entry per descriptor");
	luaL_argcheck(L, n >= 0, 1, "negative length");
	luaL_argcheck(L, timeout == timeout, 3, "timeout is NaN");
	if (timeout < 0)
		timeout = 0;
	ms = timeout > 3600000 ? 3600000 : (int)timeout;
	pfd = (struct pollfd *)lua_newuserdatauv(L, sizeof *pfd * (size_t)(n > 0 ? n : 1), 0);
	for (i = 0; i < n; i++) {
		lua_Integer ev;
		lua_geti(L, 1, i + 1);
		pfd[i].fd = (int)luaL_checkinteger(L, -1);
		lua_geti(L, 2, i + 1);
		ev = luaL_checkinteger(L, -1);
		lua_pop(L, 2);
		pfd[i].events = (short)(((ev & 1) ? POLLIN : 0) | ((ev & 2) ? POLLOUT : 0));
		pfd[i].revents = 0;
	}
	rc = poll(pfd, (nfds_t)n, ms);
	if (rc < 0 && errno != EINTR)
		return mxp_push_errno(L, "poll", errno);
	lua_createtable(L, (int)n, 0);
	for (i = 0; i < n; i++) {
		int r = 0;
		if (rc > 0) {
			if (pfd[i].revents & POLLIN)
				r |= 1;
			if (pfd[i].revents & POLLOUT)
				r |= 2;
			if (pfd[i].revents & (POLLERR | POLLHUP | POLLNVAL))
				r |= 4;
		}
		lua_pushinteger(L, r);
		lua_seti(L, -2, i + 1);
	}
	return 1;
}

/* core.now() -> monotonic milliseconds (float) */
static int l_now(lua_State *L)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	lua_pushnumber(L, (lua_Number)ts.tv_sec * 1000.0 + (lua_Number)ts.tv_nsec / 1e6);
	return 1;
}

/* core.time() -> wall clock, epoch seconds (float) */
static int l_time(lua_State *L)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
	return 1;
}

/* core.parse_address(text) -> "ipv4"|"ipv6", canonical text | nil */
static int l_parse_address(lua_State *L)
{
	const char *text = luaL_checkstring(L, 1);
	unsigned char buf[sizeof(struct in6_addr)];
	char out[INET6_ADDRSTRLEN];

	if (inet_pton(AF_INET, text, buf) == 1) {
		inet_ntop(AF_INET, buf, out, sizeof out);
		lua_pushliteral(L, "ipv4");
	} else if (inet_pton(AF_INET6, text, buf) == 1) {
		inet_ntop(AF_INET6, buf, out, sizeof out);
		lua_pushliteral(L, "ipv6");
	} else {
		lua_pushnil(L);
		return 1;
	}
	lua_pushstring(L, out);
	return 2;
}


/* ---- address classes (issue 12: which addresses from DNS may be probed) */

/* the class of an IPv4 address in network byte order */
static const char *class_v4(const unsigned char *a)
{
	uint32_t x = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 |
	    (uint32_t)a[2] << 8 | (uint32_t)a[3];

	if (x == 0)
		return "unspecified";
	if (x == 0xFFFFFFFFu)
		return "broadcast";
	if (a[0] == 0)                                   /* 0/8 "this network" */
		return "reserved";
	if (a[0] == 127)
		return "loopback";
	if (a[0] == 10 || (x & 0xFFF00000u) == 0xAC100000u ||   /* 172.16/12 */
	    (x & 0xFFFF0000u) == 0xC0A80000u ||                /* 192.168/16 */
	    (x & 0xFFC00000u) == 0x64400000u)                  /* 100.64/10 */
		return "private";
	if ((x & 0xFFFF0000u) == 0xA9FE0000u)                  /* 169.254/16 */
		return "link-local";
	if ((x & 0xF0000000u) == 0xE0000000u)                  /* 224/4 */
		return "multicast";
	if ((x & 0xF0000000u) == 0xF0000000u)                  /* 240/4 */
		return "reserved";
	if ((x & 0xFFFFFF00u) == 0xC0000200u ||                /* 192.0.2/24 */
	    (x & 0xFFFFFF00u) == 0xC6336400u ||                /* 198.51.100/24 */
	    (x & 0xFFFFFF00u) == 0xCB007100u)                  /* 203.0.113/24 */
		return "documentation";
	if ((x & 0xFFFFFF00u) == 0xC0000000u ||                /* 192.0.0/24 */
	    (x & 0xFFFE0000u) == 0xC6120000u)                  /* 198.18/15 */
		return "reserved";
	return "global";
}

static int all_zero(const unsigned char *a, int n)
{
	int i;
	for (i = 0; i < n; i++)
		if (a[i] != 0)
			return 0;
	return 1;
}

/* core.address_class(text) -> class, family, canonical | nil
 * class: "unspecified" "loopback" "private" "link-local" "multicast"
 * "broadcast" "reserved" "documentation" "global". An IPv4-mapped IPv6
 * address (::ffff:a.b.c.d) is the IPv4 address it maps: family "ipv4",
 * canonical "a.b.c.d". Pure. */
static int l_address_class(lua_State *L)
{
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);
	unsigned char a[sizeof(struct in6_addr)];
	char out[INET6_ADDRSTRLEN];
	const char *cls;

	/* "1.2.3.4\0junk" is not 1.2.3.4: inet_pton would stop at the NUL */
	if (strlen(text) != len) {
		lua_pushnil(L);
		return 1;
	}
	if (inet_pton(AF_INET, text, a) == 1) {
		inet_ntop(AF_INET, a, out, sizeof out);
		lua_pushstring(L, class_v4(a));
		lua_pushliteral(L, "ipv4");
		lua_pushstring(L, out);
		return 3;
	}
	if (inet_pton(AF_INET6, text, a) != 1) {
		lua_pushnil(L);
		return 1;
	}
	if (all_zero(a, 10) && a[10] == 0xFF && a[11] == 0xFF) {
		inet_ntop(AF_INET, a + 12, out, sizeof out);
		lua_pushstring(L, class_v4(a + 12));
		lua_pushliteral(L, "ipv4");
		lua_pushstring(L, out);
		return 3;
	}
	if (all_zero(a, 16))
		cls = "unspecified";
	else if (all_zero(a, 15) && a[15] == 1)
		cls = "loopback";
	else if (a[0] == 0xFF)
		cls = "multicast";
	else if (a[0] == 0xFE && (a[1] & 0xC0) == 0x80)        /* fe80::/10 */
		cls = "link-local";
	else if ((a[0] & 0xFE) == 0xFC)                        /* fc00::/7 */
		cls = "private";
	else if ((a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0D && a[3] == 0xB8) ||
	    (a[0] == 0x3F && a[1] == 0xFF && (a[2] & 0xF0) == 0))  /* 2001:db8::/32, 3fff::/20 */
		cls = "documentation";
	else if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xFF && a[3] == 0x9B &&
	    all_zero(a + 4, 8))                                /* 64:ff9b::/96 NAT64 */
		cls = class_v4(a + 12);
	else if ((a[0] & 0xE0) == 0x20)                        /* 2000::/3 */
		cls = "global";
	else
		cls = "reserved";       /* ::/96 compat, 100::/64, fec0::/10, ... */
	inet_ntop(AF_INET6, a, out, sizeof out);
	lua_pushstring(L, cls);
	lua_pushliteral(L, "ipv6");
	lua_pushstring(L, out);
	return 3;
}

static const luaL_Reg sock_methods[] = {
	{"fd", l_fd},
	{"finish_connect", l_finish_connect},
	{"send", l_send},
	{"recv", l_recv},
	{"local_address", l_local_address},
	{"close", l_close},
	{NULL, NULL}
};

static const luaL_Reg net_funcs[] = {
	{"connect", l_connect},
	{"poll", l_poll},
	{"now", l_now},
	{"time", l_time},
	{"parse_address", l_parse_address},
	{"address_class", l_address_class},
	{NULL, NULL}
};

void mxp_net_open(lua_State *L)
{
	if (luaL_newmetatable(L, MXP_SOCK_MT)) {
		luaL_newlib(L, sock_methods);
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, l_close);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, l_close);
		lua_setfield(L, -2, "__close");
		lua_pushcfunction(L, l_tostring);
		lua_setfield(L, -2, "__tostring");
	}
	lua_pop(L, 1);
	luaL_setfuncs(L, net_funcs, 0);
}
