/*
 * spawn.c -- the worker processes of a bulk run (--workers N, issue 10
 * part 2): start a process with one end of a socketpair, talk to it a line
 * at a time without ever blocking the event loop, reap it, signal it.
 *
 *   core.spawn(argv)   -> pid, channel | nil, msg, code
 *                          argv = {file, arg1, ...}; file is looked up on
 *                          PATH (posix_spawnp). The child gets stdin from
 *                          /dev/null, stdout onto its stderr (the
 *                          coordinator alone writes results), stderr as
 *                          ours, descriptor 3 = its end of the socketpair,
 *                          and a process group of its own: a terminal's
 *                          Ctrl-C reaches the coordinator only, which ends
 *                          its workers itself. Every other descriptor of
 *                          ours is close-on-exec.
 *   core.channel(fd)   -> channel over an inherited socket (fd 3 in a worker)
 *   ch:send(s)         -> true | nil, msg, "too-long"   (appends to the
 *                          output buffer, at most MXP_CHANNEL_BUF_MAX bytes)
 *   ch:flush()         -> true (all sent) | false (would block: wait until
 *                          ch:wfd() is writable) | nil, msg, code
 *   ch:fill()          -> n bytes read by one recv (0: nothing ready, or
 *                          the end -- ch:line() tells) | nil, msg, code
 *   ch:line()          -> s without its "\n" | false (no complete line yet)
 *                          | nil (the end) | nil, msg, "too-long" (a line
 *                          over MXP_CHANNEL_LINE_MAX: the peer is broken)
 *   ch:rfd(), ch:wfd() -> the descriptors to wait on for reading and for
 *                          writing (two, a dup: one loop task may read
 *                          while another waits to write)
 *   ch:pending()       -> bytes not sent yet
 *   ch:close()         -> true (idempotent; also __gc and __close)
 *   core.waitpid(pid [, block]) -> false (still running) | "exited", status
 *                          | "signaled", signo | nil, msg, code
 *   core.kill(pid, sig) -> true | nil, msg, code   (sig: "INT", "TERM", "KILL")
 *   core.ncpu()         -> processors online (at least 1)
 *
 * Buffers grow as needed up to their limits, never past them.
 */
#include "mxprobe.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define SPAWN_ARGS_MAX 64
#define CHILD_FD 3

struct channel {
	int rfd, wfd;       /* -1 when closed */
	int eof;
	char *in;           /* received bytes: in[ihead .. ilen) unread */
	size_t ihead, ilen, icap, iscan;   /* iscan: no "\n" before in[iscan] */
	char *out;          /* bytes to send: out[ohead .. olen) */
	size_t ohead, olen, ocap;
};

static struct channel *ch_check(lua_State *L)
{
	return luaL_checkudata(L, 1, MXP_CHANNEL_MT);
}

static struct channel *ch_checkopen(lua_State *L)
{
	struct channel *c = ch_check(L);
	if (c->rfd < 0)
		luaL_error(L, "attempt to use a closed channel");
	return c;
}

/* a new closed channel on the stack (closed before anything is acquired) */
static struct channel *ch_new(lua_State *L)
{
	struct channel *c = lua_newuserdatauv(L, sizeof *c, 0);
	memset(c, 0, sizeof *c);
	c->rfd = c->wfd = -1;
	luaL_setmetatable(L, MXP_CHANNEL_MT);
	return c;
}

static int nonblock_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* fd becomes c's; a dup of it is the write side. 0 or -1 (errno set) */
static int ch_attach(struct channel *c, int fd)
{
	int w;
	if (nonblock_cloexec(fd) != 0)
		return -1;
	w = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (w < 0)
		return -1;
	c->rfd = fd;
	c->wfd = w;
	return 0;
}

static int l_close(lua_State *L)
{
	struct channel *c = ch_check(L);
	if (c->rfd >= 0)
		close(c->rfd);
	if (c->wfd >= 0)
		close(c->wfd);
	c->rfd = c->wfd = -1;
	free(c->in);
	free(c->out);
	c->in = c->out = NULL;
	c->ihead = c->ilen = c->icap = c->iscan = 0;
	c->ohead = c->olen = c->ocap = 0;
	lua_pushboolean(L, 1);
	return 1;
}

static int l_channel(lua_State *L)
{
	lua_Integer fd = luaL_checkinteger(L, 1);
	struct channel *c;
	luaL_argcheck(L, fd >= 0 && fd <= 0x7fffffff, 1, "invalid descriptor");
	c = ch_new(L);
	if (ch_attach(c, (int)fd) != 0)
		return mxp_push_errno(L, "channel", errno);
	return 1;
}

static int l_send(lua_State *L)
{
	struct channel *c = ch_checkopen(L);
	size_t n;
	const char *s = luaL_checklstring(L, 2, &n);
	size_t used;

	if (c->ohead > 0 && c->ohead == c->olen)
		c->ohead = c->olen = 0;
	used = c->olen - c->ohead;
	if (n > MXP_CHANNEL_BUF_MAX - used)
		return mxp_push_fail(L, "channel: output buffer full", MXP_E_TOOLONG);
	if (c->olen + n > c->ocap) {
		char *nb;
		size_t cap;
		/* compact first, then grow */
		if (c->ohead > 0) {
			memmove(c->out, c->out + c->ohead, used);
			c->ohead = 0;
			c->olen = used;
		}
		cap = c->ocap ? c->ocap : 4096;
		while (cap < used + n)
			cap *= 2;
		if (cap > MXP_CHANNEL_BUF_MAX)
			cap = MXP_CHANNEL_BUF_MAX;
		if (cap > c->ocap) {
			nb = realloc(c->out, cap);
			if (!nb)
				return mxp_push_fail(L, "channel: out of memory", MXP_E_ERROR);
			c->out = nb;
			c->ocap = cap;
		}
	}
	memcpy(c->out + c->olen, s, n);
	c->olen += n;
	lua_pushboolean(L, 1);
	return 1;
}

static int l_flush(lua_State *L)
{
	struct channel *c = ch_checkopen(L);
	while (c->ohead < c->olen) {
		ssize_t w = send(c->wfd, c->out + c->ohead, c->olen - c->ohead, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				lua_pushboolean(L, 0);
				return 1;
			}
			return mxp_push_errno(L, "channel send", errno);
		}
		c->ohead += (size_t)w;
	}
	c->ohead = c->olen = 0;
	lua_pushboolean(L, 1);
	return 1;
}

static int l_fill(lua_State *L)
{
	struct channel *c = ch_checkopen(L);
	ssize_t n;
	size_t unread = c->ilen - c->ihead;

	if (c->eof) {
		lua_pushinteger(L, 0);
		return 1;
	}
	/* compact, then make room for one recv of MXP_RECV_MAX */
	if (c->ihead > 0) {
		memmove(c->in, c->in + c->ihead, unread);
		c->iscan -= c->ihead;
		c->ihead = 0;
		c->ilen = unread;
	}
	if (c->ilen + MXP_RECV_MAX > c->icap) {
		size_t cap = c->icap ? c->icap : 16384;
		char *nb;
		while (cap < c->ilen + MXP_RECV_MAX)
			cap *= 2;
		if (cap > MXP_CHANNEL_LINE_MAX + MXP_RECV_MAX + 1)
			cap = MXP_CHANNEL_LINE_MAX + MXP_RECV_MAX + 1;
		if (c->ilen + MXP_RECV_MAX > cap)
			return mxp_push_fail(L, "channel: line too long", MXP_E_TOOLONG);
		nb = realloc(c->in, cap);
		if (!nb)
			return mxp_push_fail(L, "channel: out of memory", MXP_E_ERROR);
		c->in = nb;
		c->icap = cap;
	}
	do
		n = recv(c->rfd, c->in + c->ilen, MXP_RECV_MAX, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			lua_pushinteger(L, 0);
			return 1;
		}
		if (errno == ECONNRESET) {
			c->eof = 1;   /* the peer died with bytes unread: an end */
			lua_pushinteger(L, 0);
			return 1;
		}
		return mxp_push_errno(L, "channel recv", errno);
	}
	if (n == 0)
		c->eof = 1;
	c->ilen += (size_t)n;
	lua_pushinteger(L, n);
	return 1;
}

static int l_line(lua_State *L)
{
	struct channel *c = ch_checkopen(L);
	char *nl = NULL;

	if (c->iscan < c->ihead)
		c->iscan = c->ihead;
	if (c->iscan < c->ilen)
		nl = memchr(c->in + c->iscan, '\n', c->ilen - c->iscan);
	if (nl) {
		size_t n = (size_t)(nl - (c->in + c->ihead));
		if (n > MXP_CHANNEL_LINE_MAX)
			return mxp_push_fail(L, "channel: line too long", MXP_E_TOOLONG);
		lua_pushlstring(L, c->in + c->ihead, n);
		c->ihead += n + 1;
		c->iscan = c->ihead;
		return 1;
	}
	c->iscan = c->ilen;
	if (c->ilen - c->ihead > MXP_CHANNEL_LINE_MAX)
		return mxp_push_fail(L, "channel: line too long", MXP_E_TOOLONG);
	if (c->eof) {
		if (c->ilen > c->ihead)
			return mxp_push_fail(L, "channel: the last line has no end", MXP_E_CLOSED);
		lua_pushnil(L);
		return 1;
	}
	lua_pushboolean(L, 0);
	return 1;
}

static int l_rfd(lua_State *L)
{
	lua_pushinteger(L, ch_checkopen(L)->rfd);
	return 1;
}

static int l_wfd(lua_State *L)
{
	lua_pushinteger(L, ch_checkopen(L)->wfd);
	return 1;
}

static int l_pending(lua_State *L)
{
	struct channel *c = ch_checkopen(L);
	lua_pushinteger(L, (lua_Integer)(c->olen - c->ohead));
	return 1;
}

static int l_spawn(lua_State *L)
{
	const char *argv[SPAWN_ARGS_MAX + 1];
	lua_Integer i, n;
	int sv[2], err, child;
	pid_t pid;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t def;
	struct channel *c;

	luaL_checktype(L, 1, LUA_TTABLE);
	n = (lua_Integer)lua_rawlen(L, 1);
	luaL_argcheck(L, n >= 1 && n <= SPAWN_ARGS_MAX, 1, "1 to 64 arguments");
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, 1, i);
		argv[i - 1] = lua_tostring(L, -1);
		luaL_argcheck(L, argv[i - 1] != NULL && lua_type(L, -1) == LUA_TSTRING, 1, "arguments must be strings");
		lua_pop(L, 1);   /* the string stays alive in the table */
	}
	argv[n] = NULL;

	c = ch_new(L);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return mxp_push_errno(L, "socketpair", errno);
	/* the child's end must not already be CHILD_FD: dup2 onto itself
	 * would leave it close-on-exec */
	child = sv[1];
	if (child == CHILD_FD) {
		child = fcntl(sv[1], F_DUPFD_CLOEXEC, CHILD_FD + 1);
		err = errno;
		close(sv[1]);
		if (child < 0) {
			close(sv[0]);
			return mxp_push_errno(L, "spawn", err);
		}
	}
	if (ch_attach(c, sv[0]) != 0) {
		err = errno;
		close(sv[0]);
		close(child);
		return mxp_push_errno(L, "spawn", err);
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, 2, 1);
	posix_spawn_file_actions_adddup2(&fa, child, CHILD_FD);
	posix_spawnattr_init(&attr);
	sigemptyset(&def);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGTERM);
	sigaddset(&def, SIGPIPE);
	posix_spawnattr_setsigdefault(&attr, &def);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
	err = posix_spawnp(&pid, argv[0], &fa, &attr, (char *const *)(uintptr_t)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(child);
	if (err != 0) {
		char ctx[96];
		snprintf(ctx, sizeof ctx, "spawn %.80s", argv[0]);
		return mxp_push_errno(L, ctx, err);
	}
	lua_pushinteger(L, (lua_Integer)pid);
	lua_insert(L, -2);
	return 2;
}

static int l_waitpid(lua_State *L)
{
	lua_Integer pid = luaL_checkinteger(L, 1);
	int block = lua_toboolean(L, 2);
	int status;
	pid_t r;

	luaL_argcheck(L, pid > 0 && pid <= 0x7fffffff, 1, "invalid pid");
	do
		r = waitpid((pid_t)pid, &status, block ? 0 : WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return mxp_push_errno(L, "waitpid", errno);
	if (r == 0) {
		lua_pushboolean(L, 0);
		return 1;
	}
	if (WIFSIGNALED(status)) {
		lua_pushliteral(L, "signaled");
		lua_pushinteger(L, WTERMSIG(status));
	} else {
		lua_pushliteral(L, "exited");
		lua_pushinteger(L, WEXITSTATUS(status));
	}
	return 2;
}

static int l_kill(lua_State *L)
{
	static const char *const names[] = {"INT", "TERM", "KILL", NULL};
	static const int sigs[] = {SIGINT, SIGTERM, SIGKILL};
	lua_Integer pid = luaL_checkinteger(L, 1);
	int which = luaL_checkoption(L, 2, NULL, names);

	luaL_argcheck(L, pid > 0 && pid <= 0x7fffffff, 1, "invalid pid");
	if (kill((pid_t)pid, sigs[which]) != 0)
		return mxp_push_errno(L, "kill", errno);
	lua_pushboolean(L, 1);
	return 1;
}

static int l_ncpu(lua_State *L)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	lua_pushinteger(L, n >= 1 ? (lua_Integer)n : 1);
	return 1;
}

void mxp_spawn_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{"send", l_send},
		{"flush", l_flush},
		{"fill", l_fill},
		{"line", l_line},
		{"rfd", l_rfd},
		{"wfd", l_wfd},
		{"pending", l_pending},
		{"close", l_close},
		{NULL, NULL}
	};
	static const luaL_Reg meta[] = {
		{"__gc", l_close},
		{"__close", l_close},
		{NULL, NULL}
	};
	static const luaL_Reg fns[] = {
		{"spawn", l_spawn},
		{"channel", l_channel},
		{"waitpid", l_waitpid},
		{"kill", l_kill},
		{"ncpu", l_ncpu},
		{NULL, NULL}
	};

	if (luaL_newmetatable(L, MXP_CHANNEL_MT)) {
		luaL_setfuncs(L, meta, 0);
		luaL_newlib(L, methods);
		lua_setfield(L, -2, "__index");
	}
	lua_pop(L, 1);
	luaL_setfuncs(L, fns, 0);
}
