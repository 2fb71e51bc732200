/*
 * sys.c -- the process's environment: what kind of file a path names, the
 * open-file limit, and a memory limit around one coroutine run (the policy
 * sandbox).
 *
 *   core.file_kind(path) -> "file" | "directory" | "fifo" | "char-device" |
 *                           "block-device" | "socket" | "other", size
 *                           | nil, msg, code        (stat(2), follows links)
 *   core.raise_fd_limit() -> soft, hard   (RLIMIT_NOFILE: the soft limit
 *                           raised to the hard one when it can be; the
 *                           limits in force after; "unlimited" -> math.maxinteger)
 *   core.resume_limited(co, max_bytes, ...) -> like coroutine.resume, with
 *                           every allocation of the Lua state that makes it
 *                           grow past max_bytes more than when it started
 *                           refused; then -> false, "memory limit exceeded",
 *                           "memory" (even if the coroutine caught the error)
 *
 * resume_limited swaps the state's allocator for one that counts, for the
 * time of one lua_resume only; its bookkeeping lives on this C stack
 * frame, so nothing outlives the call (no mutable C globals).
 */
#include "mxprobe.h"

#include <errno.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/stat.h>

static int l_file_kind(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	struct stat st;
	const char *kind;

	if (stat(path, &st) != 0) {
		int err = errno;
		lua_pushfstring(L, "stat %s", path);
		return mxp_push_errno(L, lua_tostring(L, -1), err);
	}
	if (S_ISREG(st.st_mode))
		kind = "file";
	else if (S_ISDIR(st.st_mode))
		kind = "directory";
	else if (S_ISFIFO(st.st_mode))
		kind = "fifo";
	else if (S_ISCHR(st.st_mode))
		kind = "char-device";
	else if (S_ISBLK(st.st_mode))
		kind = "block-device";
	else if (S_ISSOCK(st.st_mode))
		kind = "socket";
	else
		kind = "other";
	lua_pushstring(L, kind);
	lua_pushinteger(L, (lua_Integer)st.st_size);
	return 2;
}

static lua_Integer rlim_int(rlim_t r)
{
	if (r == RLIM_INFINITY || r > (rlim_t)LUA_MAXINTEGER)
		return LUA_MAXINTEGER;
	return (lua_Integer)r;
}

static int l_raise_fd_limit(lua_State *L)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return mxp_push_errno(L, "getrlimit", errno);
	if (rl.rlim_cur != rl.rlim_max) {
		struct rlimit want = rl;
		want.rlim_cur = rl.rlim_max;
		/* an unlimited hard limit is not a valid soft one for
		 * NOFILE (above nr_open): keep the soft limit then */
		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			rl = want;
	}
	lua_pushinteger(L, rlim_int(rl.rlim_cur));
	lua_pushinteger(L, rlim_int(rl.rlim_max));
	return 2;
}

struct alloc_limit {
	lua_Alloc f;
	void *ud;
	ptrdiff_t used;       /* bytes more than at the start (may go below 0) */
	ptrdiff_t max;
	int exceeded;
};

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct alloc_limit *a = (struct alloc_limit *)ud;
	size_t old = ptr != NULL ? osize : 0;
	void *r;

	if (nsize > old && a->used + (ptrdiff_t)(nsize - old) > a->max) {
		a->exceeded = 1;
		return NULL;
	}
	r = a->f(a->ud, ptr, osize, nsize);
	if (r != NULL || nsize == 0)
		a->used += (ptrdiff_t)nsize - (ptrdiff_t)old;
	return r;
}

static int l_resume_limited(lua_State *L)
{
	lua_State *co = lua_tothread(L, 1);
	lua_Integer max = luaL_checkinteger(L, 2);
	int nargs = lua_gettop(L) - 2;
	int status, nres = 0;
	struct alloc_limit a;

	luaL_argexpected(L, co != NULL, 1, "coroutine");
	luaL_argcheck(L, max > 0 && max <= (lua_Integer)(PTRDIFF_MAX / 2), 2, "out of range");
	if (co == L || (lua_status(co) != LUA_OK && lua_status(co) != LUA_YIELD) ||
	    (lua_status(co) == LUA_OK && lua_gettop(co) == 0)) {
		lua_pushboolean(L, 0);
		lua_pushliteral(L, "cannot resume this coroutine");
		return 2;
	}
	if (!lua_checkstack(co, nargs))
		return luaL_error(L, "too many arguments to resume");
	lua_xmove(L, co, nargs);
	a.f = lua_getallocf(L, &a.ud);
	a.used = 0;
	a.max = (ptrdiff_t)max;
	a.exceeded = 0;
	lua_setallocf(L, limited_alloc, &a);
	status = lua_resume(co, L, nargs, &nres);
	lua_setallocf(L, a.f, a.ud);
	if (a.exceeded) {
		lua_pushboolean(L, 0);
		lua_pushliteral(L, "memory limit exceeded");
		lua_pushliteral(L, "memory");
		return 3;
	}
	if (status == LUA_OK || status == LUA_YIELD) {
		if (!lua_checkstack(L, nres + 1))
			return luaL_error(L, "too many results to resume");
		lua_pushboolean(L, 1);
		lua_xmove(co, L, nres);
		return nres + 1;
	}
	lua_pushboolean(L, 0);
	lua_xmove(co, L, 1);
	return 2;
}

void mxp_sys_open(lua_State *L)
{
	static const luaL_Reg funcs[] = {
		{"file_kind", l_file_kind},
		{"raise_fd_limit", l_raise_fd_limit},
		{"resume_limited", l_resume_limited},
		{NULL, NULL}
	};
	luaL_setfuncs(L, funcs, 0);
}
