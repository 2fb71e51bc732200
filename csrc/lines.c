/*
 * lines.c -- a list of queries read a line at a time from a descriptor
 * without ever blocking the event loop (a slow producer on stdin must not
 * stall the probes in flight, nor inflate what they measure).
 *
 *   core.line_reader(path | fd) -> r | nil, msg, code
 *                               a path is opened read-only; an integer
 *                               (0: stdin) is used as it is and not closed
 *   r:line()  -> s        a line, without its "\n" (nor "\r\n"); a line
 *                         longer than MXP_LIST_LINE_MAX comes back cut to
 *                         MXP_LIST_LINE_MAX + 1 bytes (its rest dropped),
 *                         so the caller can tell it was too long
 *              | false    no complete line buffered: wait until r:fd() is
 *                         readable, then r:fill()
 *              | nil      the end (the last line needs no "\n")
 *   r:fill()  -> n        bytes read by one read(2) (0: end of file, or
 *                         nothing ready on a non-blocking descriptor --
 *                         r:line() tells which) | nil, msg, code
 *   r:fd()    -> the descriptor
 *   r:regular() -> true when it is a regular file (which can be counted
 *                  ahead, or drained after the loop, without blocking)
 *   r:close() -> true     (idempotent; also __gc and __close)
 *
 * fill() makes one read(2) and is called only once the loop saw the
 * descriptor readable (or it is a regular file, which epoll refuses and
 * which never blocks long), so the descriptor's flags are left as they
 * are: O_NONBLOCK on a shared stdin would outlive this process.
 */
#include "mxprobe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct line_reader {
	int fd;           /* -1 when closed */
	int own;          /* the reader opened fd: it closes it */
	int eof;
	int skipping;     /* inside a too-long line: drop until "\n" */
	size_t len;       /* bytes buffered from buf[0] */
	char buf[MXP_LIST_LINE_MAX + 2 + MXP_RECV_MAX];
};

static struct line_reader *lr_check(lua_State *L)
{
	return luaL_checkudata(L, 1, MXP_LINES_MT);
}

static struct line_reader *lr_checkopen(lua_State *L)
{
	struct line_reader *r = lr_check(L);
	if (r->fd < 0)
		luaL_error(L, "attempt to use a closed line reader");
	return r;
}

static int l_line_reader(lua_State *L)
{
	struct line_reader *r = lua_newuserdatauv(L, sizeof *r, 0);
	r->fd = -1;
	r->own = 0;
	r->eof = 0;
	r->skipping = 0;
	r->len = 0;
	luaL_setmetatable(L, MXP_LINES_MT);
	if (lua_type(L, 1) == LUA_TNUMBER) {
		lua_Integer fd = luaL_checkinteger(L, 1);
		luaL_argcheck(L, fd >= 0 && fd <= 0x7fffffff, 1, "invalid descriptor");
		r->fd = (int)fd;
	} else {
		const char *path = luaL_checkstring(L, 1);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			char ctx[80];
			int err = errno;
			snprintf(ctx, sizeof ctx, "open %.60s", path);
			return mxp_push_errno(L, ctx, err);
		}
		r->fd = fd;
		r->own = 1;
	}
	return 1;
}

/* drops the first n bytes of the buffer */
static void consume(struct line_reader *r, size_t n)
{
	memmove(r->buf, r->buf + n, r->len - n);
	r->len -= n;
}

static void push_line(lua_State *L, const char *s, size_t n)
{
	if (n > 0 && s[n - 1] == '\r')
		n--;
	lua_pushlstring(L, s, n);
}

static int l_line(lua_State *L)
{
	struct line_reader *r = lr_checkopen(L);
	char *nl;

	for (;;) {
		nl = memchr(r->buf, '\n', r->len);
		if (r->skipping) {
			if (!nl) {
				r->len = 0;
				break;
			}
			consume(r, (size_t)(nl - r->buf) + 1);
			r->skipping = 0;
			continue;
		}
		if (nl) {
			size_t n = (size_t)(nl - r->buf);
			push_line(L, r->buf, n);
			consume(r, n + 1);
			return 1;
		}
		if (r->len > MXP_LIST_LINE_MAX) {
			/* too long: what the caller needs to say so, then skip */
			lua_pushlstring(L, r->buf, MXP_LIST_LINE_MAX + 1);
			r->len = 0;
			r->skipping = 1;
			return 1;
		}
		break;
	}
	if (r->eof) {
		if (r->len > 0 && !r->skipping) {
			push_line(L, r->buf, r->len);
			r->len = 0;
			return 1;
		}
		lua_pushnil(L);
		return 1;
	}
	lua_pushboolean(L, 0);
	return 1;
}

static int l_fill(lua_State *L)
{
	struct line_reader *r = lr_checkopen(L);
	size_t room = sizeof r->buf - r->len;
	ssize_t n;

	if (r->eof) {
		lua_pushinteger(L, 0);
		return 1;
	}
	if (room > MXP_RECV_MAX)
		room = MXP_RECV_MAX;
	do
		n = read(r->fd, r->buf + r->len, room);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			lua_pushinteger(L, 0);   /* nothing yet: not the end */
			return 1;
		}
		return mxp_push_errno(L, "read", errno);
	}
	if (n == 0)
		r->eof = 1;
	r->len += (size_t)n;
	lua_pushinteger(L, n);
	return 1;
}

static int l_fd(lua_State *L)
{
	lua_pushinteger(L, lr_checkopen(L)->fd);
	return 1;
}

static int l_regular(lua_State *L)
{
	struct line_reader *r = lr_checkopen(L);
	struct stat st;
	lua_pushboolean(L, fstat(r->fd, &st) == 0 && S_ISREG(st.st_mode));
	return 1;
}

/* __gc, __close and :close() in one idempotent function */
static int l_close(lua_State *L)
{
	struct line_reader *r = lr_check(L);
	if (r->fd >= 0 && r->own)
		close(r->fd);
	r->fd = -1;
	lua_pushboolean(L, 1);
	return 1;
}

void mxp_lines_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{"line", l_line},
		{"fill", l_fill},
		{"fd", l_fd},
		{"regular", l_regular},
		{"close", l_close},
		{NULL, NULL}
	};
	static const luaL_Reg meta[] = {
		{"__gc", l_close},
		{"__close", l_close},
		{NULL, NULL}
	};

	if (luaL_newmetatable(L, MXP_LINES_MT)) {
		luaL_setfuncs(L, meta, 0);
		luaL_newlib(L, methods);
		lua_setfield(L, -2, "__index");
	}
	lua_pop(L, 1);
	lua_pushcfunction(L, l_line_reader);
	lua_setfield(L, -2, "line_reader");
}
