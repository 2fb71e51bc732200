/*
 * proc.c -- the process around the probes, for the command-line tool:
 * terminals, signals, and cutting a file back to a length.
 *
 *   core.isatty(fd)          -> boolean
 *   core.fd_valid(fd)        -> boolean: fd is an open descriptor (a
 *                               closed stdout must not be written to: the
 *                               next socket would get its number)
 *   core.signal_catch()      -> fd | nil, msg, code
 *                               catches SIGINT and SIGTERM from now on
 *                               (SA_RESTART): each one is counted and
 *                               wakes the returned descriptor (the read
 *                               end of a self-pipe, non-blocking), which
 *                               an event loop watches so it wakes at
 *                               once. From the second signal on, the
 *                               default action is restored, so a third
 *                               Ctrl-C ends a stuck process the usual way.
 *                               Idempotent: later calls return the same fd.
 *   core.signal_caught()     -> signo, count
 *                               the first signal caught (0: none yet)
 *                               and how many; drains the self-pipe
 *   core.truncate(path, len) -> true | nil, msg, code
 *   core.fnv1a32(s)          -> the 32-bit FNV-1a hash of s (the shard
 *                               of a query: the same on every machine)
 *
 * A signal handler can only talk to the program through static storage:
 * the three variables below are this module's only mutable globals, set
 * in the handler (sig_atomic_t, async-signal-safe calls only) and read by
 * signal_caught().
 */
#include "mxprobe.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static volatile sig_atomic_t caught_first = 0;
static volatile sig_atomic_t caught_count = 0;
static int wake_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
	int saved = errno;
	struct sigaction dfl;

	if (caught_first == 0)
		caught_first = sig;
	caught_count++;
	if (caught_count >= 2) {
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		sigemptyset(&dfl.sa_mask);
		(void)sigaction(SIGINT, &dfl, NULL);
		(void)sigaction(SIGTERM, &dfl, NULL);
	}
	if (wake_pipe[1] >= 0) {
		ssize_t r = write(wake_pipe[1], "!", 1);   /* full pipe: awake anyway */
		(void)r;
	}
	errno = saved;
}

static int l_isatty(lua_State *L)
{
	lua_Integer fd = luaL_checkinteger(L, 1);
	luaL_argcheck(L, fd >= 0 && fd <= 0x7fffffff, 1, "invalid descriptor");
	lua_pushboolean(L, isatty((int)fd) == 1);
	return 1;
}

static int l_fd_valid(lua_State *L)
{
	lua_Integer fd = luaL_checkinteger(L, 1);
	luaL_argcheck(L, fd >= 0 && fd <= 0x7fffffff, 1, "invalid descriptor");
	lua_pushboolean(L, fcntl((int)fd, F_GETFD) != -1);
	return 1;
}

static int set_flags(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static int l_signal_catch(lua_State *L)
{
	struct sigaction sa;
	int err;

	if (wake_pipe[0] < 0) {
		int fds[2];
		if (pipe(fds) != 0)
			return mxp_push_errno(L, "pipe", errno);
		if (set_flags(fds[0]) != 0 || set_flags(fds[1]) != 0) {
			err = errno;
			close(fds[0]);
			close(fds[1]);
			return mxp_push_errno(L, "fcntl", err);
		}
		wake_pipe[0] = fds[0];
		wake_pipe[1] = fds[1];
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_signal;
		sa.sa_flags = SA_RESTART;
		sigemptyset(&sa.sa_mask);
		sigaddset(&sa.sa_mask, SIGINT);
		sigaddset(&sa.sa_mask, SIGTERM);
		if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
			return mxp_push_errno(L, "sigaction", errno);
	}
	lua_pushinteger(L, wake_pipe[0]);
	return 1;
}

static int l_signal_caught(lua_State *L)
{
	char buf[64];

	if (wake_pipe[0] >= 0)
		while (read(wake_pipe[0], buf, sizeof buf) > 0)
			;
	lua_pushinteger(L, caught_first);
	lua_pushinteger(L, caught_count);
	return 2;
}

static int l_truncate(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	lua_Integer len = luaL_checkinteger(L, 2);
	char ctx[64];

	luaL_argcheck(L, len >= 0, 2, "negative length");
	if (truncate(path, (off_t)len) != 0) {
		int err = errno;
		snprintf(ctx, sizeof ctx, "truncate %.40s", path);
		return mxp_push_errno(L, ctx, err);
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int l_fnv1a32(lua_State *L)
{
	size_t n, i;
	const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
	uint32_t h = 0x811c9dc5u;

	for (i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x01000193u;
	}
	lua_pushinteger(L, (lua_Integer)h);
	return 1;
}

void mxp_proc_open(lua_State *L)
{
	static const luaL_Reg fns[] = {
		{"isatty", l_isatty},
		{"fd_valid", l_fd_valid},
		{"signal_catch", l_signal_catch},
		{"signal_caught", l_signal_caught},
		{"truncate", l_truncate},
		{"fnv1a32", l_fnv1a32},
		{NULL, NULL}
	};
	luaL_setfuncs(L, fns, 0);
}
