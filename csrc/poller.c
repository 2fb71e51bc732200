/*
 * poller.c -- an epoll(7) set with one-shot arming, for mxprobe.loop.
 *
 *   core.poller()           -> p            (raises only on misuse; an
 *                                            epoll_create1 failure is
 *                                            nil, msg, code)
 *   p:arm(fd, events)       -> true | nil, msg, code
 *                              events: 1 read, 2 write (3 both, 0 only
 *                              error/hangup). EPOLLONESHOT: once it has
 *                              fired the fd stays in the set, disarmed,
 *                              until armed again.
 *   p:disarm(fd)            -> true (best effort; ENOENT/EBADF ignored)
 *   p:wait(timeout_ms [, max]) -> fds, revs, n | nil, msg, code
 *                              two arrays reused from call to call (read
 *                              them before the next wait): the ready
 *                              descriptors and their revents (1 read,
 *                              2 write, 4 error/hangup); n their count.
 *                              EINTR is n = 0.
 *   p:fd()                  -> the epoll descriptor
 *   p:close()               -> true (idempotent; also __gc and __close)
 *
 * Arming is EPOLL_CTL_MOD, falling back to ADD on ENOENT (and ADD back to
 * MOD on EEXIST): a descriptor closed and reused under the same number has
 * left the set with its close and is simply added again, and a descriptor
 * that fired is still in the set and is modified. No state is kept per
 * descriptor, so the C side has nothing that can go stale.
 */
#include "mxprobe.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define UV_FDS  1   /* user value: the reused table of ready descriptors */
#define UV_REVS 2   /* user value: the reused table of their revents */

struct poller {
	int epfd;     /* -1 when closed */
	int last_n;   /* entries filled by the previous wait */
};

static struct poller *poller_check(lua_State *L)
{
	return luaL_checkudata(L, 1, MXP_POLLER_MT);
}

static struct poller *poller_checkopen(lua_State *L)
{
	struct poller *p = poller_check(L);
	if (p->epfd < 0)
		luaL_error(L, "attempt to use a closed poller");
	return p;
}

static int checkfd(lua_State *L, int idx)
{
	lua_Integer fd = luaL_checkinteger(L, idx);
	luaL_argcheck(L, fd >= 0 && fd <= 0x7fffffff, idx, "invalid descriptor");
	return (int)fd;
}

/* core.poller() */
static int l_poller(lua_State *L)
{
	/* created closed, before the descriptor exists */
	struct poller *p = lua_newuserdatauv(L, sizeof *p, 2);
	p->epfd = -1;
	p->last_n = 0;
	luaL_setmetatable(L, MXP_POLLER_MT);
	lua_createtable(L, 16, 0);
	lua_setiuservalue(L, -2, UV_FDS);
	lua_createtable(L, 16, 0);
	lua_setiuservalue(L, -2, UV_REVS);
	if ((p->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return mxp_push_errno(L, "epoll_create1", errno);
	return 1;
}

static int l_arm(lua_State *L)
{
	struct poller *p = poller_checkopen(L);
	int fd = checkfd(L, 2);
	lua_Integer events = luaL_checkinteger(L, 3);
	struct epoll_event ev;
	char ctx[48];
	int rc;

	luaL_argcheck(L, events >= 0 && events <= 3, 3, "expected 0..3");
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLONESHOT | ((events & 1) ? EPOLLIN : 0) |
	    ((events & 2) ? EPOLLOUT : 0);
	ev.data.fd = fd;
	rc = epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev);
	if (rc != 0 && errno == ENOENT) {
		rc = epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev);
		if (rc != 0 && errno == EEXIST)
			rc = epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev);
	}
	if (rc != 0) {
		int err = errno;
		snprintf(ctx, sizeof ctx, "epoll arm %d", fd);
		return mxp_push_errno(L, ctx, err);
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int l_disarm(lua_State *L)
{
	struct poller *p = poller_checkopen(L);
	int fd = checkfd(L, 2);
	struct epoll_event ev;   /* non-NULL for kernels before 2.6.9 */

	memset(&ev, 0, sizeof ev);
	(void)epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, &ev);
	lua_pushboolean(L, 1);
	return 1;
}

static int l_wait(lua_State *L)
{
	struct poller *p = poller_checkopen(L);
	lua_Number timeout = luaL_checknumber(L, 2);
	lua_Integer max = luaL_optinteger(L, 3, MXP_POLL_EVENTS_MAX);
	struct epoll_event evs[MXP_POLL_EVENTS_MAX];
	int ms, n, i;

	luaL_argcheck(L, timeout == timeout, 2, "timeout is NaN");
	luaL_argcheck(L, max >= 1, 3, "must be positive");
	if (max > MXP_POLL_EVENTS_MAX)
		max = MXP_POLL_EVENTS_MAX;
	/* rounded up: a wait never ends before its timeout, so a caller
	 * waiting for a deadline does not spin on zero-length waits */
	if (timeout <= 0)
		ms = 0;
	else if (timeout >= MXP_POLL_WAIT_MAX_MS)
		ms = MXP_POLL_WAIT_MAX_MS;
	else {
		ms = (int)timeout;
		if ((lua_Number)ms < timeout)
			ms++;
	}
	n = epoll_wait(p->epfd, evs, (int)max, ms);
	if (n < 0) {
		if (errno != EINTR)
			return mxp_push_errno(L, "epoll_wait", errno);
		n = 0;
	}
	lua_settop(L, 1);
	lua_getiuservalue(L, 1, UV_FDS);    /* 2 */
	lua_getiuservalue(L, 1, UV_REVS);   /* 3 */
	for (i = 0; i < n; i++) {
		uint32_t e = evs[i].events;
		lua_Integer r = ((e & EPOLLIN) ? 1 : 0) | ((e & EPOLLOUT) ? 2 : 0) |
		    ((e & (EPOLLERR | EPOLLHUP)) ? 4 : 0);
		lua_pushinteger(L, evs[i].data.fd);
		lua_rawseti(L, 2, i + 1);
		lua_pushinteger(L, r);
		lua_rawseti(L, 3, i + 1);
	}
	/* what the previous wait left beyond n goes, so the arrays are
	 * proper sequences of length n */
	for (i = n; i < p->last_n; i++) {
		lua_pushnil(L);
		lua_rawseti(L, 2, i + 1);
		lua_pushnil(L);
		lua_rawseti(L, 3, i + 1);
	}
	p->last_n = n;
	lua_pushinteger(L, n);
	return 3;
}

static int l_fd(lua_State *L)
{
	lua_pushinteger(L, poller_checkopen(L)->epfd);
	return 1;
}

static void poller_release(struct poller *p)
{
	if (p->epfd >= 0) {
		close(p->epfd);
		p->epfd = -1;
	}
}

/* __gc, __close and :close() in one idempotent function */
static int l_close(lua_State *L)
{
	poller_release(poller_check(L));
	lua_pushboolean(L, 1);
	return 1;
}

static int l_tostring(lua_State *L)
{
	struct poller *p = poller_check(L);
	if (p->epfd < 0)
		lua_pushfstring(L, "%s (closed)", MXP_POLLER_MT);
	else
		lua_pushfstring(L, "%s (fd %d)", MXP_POLLER_MT, p->epfd);
	return 1;
}

void mxp_poller_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{"arm", l_arm},
		{"disarm", l_disarm},
		{"wait", l_wait},
		{"fd", l_fd},
		{"close", l_close},
		{NULL, NULL}
	};
	static const luaL_Reg meta[] = {
		{"__gc", l_close},
		{"__close", l_close},
		{"__tostring", l_tostring},
		{NULL, NULL}
	};

	if (luaL_newmetatable(L, MXP_POLLER_MT)) {
		luaL_setfuncs(L, meta, 0);
		luaL_newlib(L, methods);
		lua_setfield(L, -2, "__index");
	}
	lua_pop(L, 1);
	lua_pushcfunction(L, l_poller);
	lua_setfield(L, -2, "poller");
}
