/* core.c -- luaopen_mxprobe_core: only gathers each concern's functions
 * (each file's mxp_<concern>_open) and the compiled-in limits. */
#include "mxprobe.h"

#include <ldns/ldns.h>
#include <openssl/crypto.h>
#include <tls.h>

int luaopen_mxprobe_core(lua_State *L);

/* the libraries in use, as they name their own versions: a facts table
 * says what produced it (TLS behaviour changes between OpenSSL releases) */
static void push_library_versions(lua_State *L)
{
	lua_createtable(L, 0, 3);
	lua_pushstring(L, OpenSSL_version(OPENSSL_VERSION));
	lua_setfield(L, -2, "openssl");
	lua_pushstring(L, ldns_version());
	lua_setfield(L, -2, "ldns");
	lua_pushfstring(L, "libtls API %d", (int)TLS_API);
	lua_setfield(L, -2, "libtls");
}

/* the compiled-in limits, so Lua and the docs can show what is in force */
static void push_limits(lua_State *L)
{
	static const struct { const char *name; lua_Integer value; } limits[] = {
		{"smtp_line_max", MXP_SMTP_LINE_MAX},
		{"smtp_lines_max", MXP_SMTP_LINES_MAX},
		{"smtp_reply_max", MXP_SMTP_REPLY_MAX},
		{"recv_max", MXP_RECV_MAX},
		{"dns_msg_max", MXP_DNS_MSG_MAX},
		{"dns_rr_max", MXP_DNS_RR_MAX},
		{"x509_chain_max", MXP_X509_CHAIN_MAX},
		{"x509_san_max", MXP_X509_SAN_MAX},
		{"x509_pem_max", MXP_X509_PEM_MAX},
		{"x509_dane_records_max", MXP_X509_DANE_RECORDS_MAX}, /* DANE */
		{"text_max", MXP_TEXT_MAX},
		{"poll_events_max", MXP_POLL_EVENTS_MAX},
		{"poll_wait_max_ms", MXP_POLL_WAIT_MAX_MS},
		{"random_max", MXP_RANDOM_MAX},
		{"tls_ciphers_max", MXP_TLS_CIPHERS_MAX},
		{"http_header_max", MXP_HTTP_HEADER_MAX},
		{"http_body_max", MXP_HTTP_BODY_MAX},
		{"http_headers_max", MXP_HTTP_HEADERS_MAX},
		{"http_chunk_line_max", MXP_HTTP_CHUNK_LINE_MAX},
		{"list_line_max", MXP_LIST_LINE_MAX},   /* bulk CLI */
		{"channel_line_max", MXP_CHANNEL_LINE_MAX},   /* workers */
	};
	size_t i;

	lua_createtable(L, 0, (int)(sizeof limits / sizeof limits[0]));
	for (i = 0; i < sizeof limits / sizeof limits[0]; i++) {
		lua_pushinteger(L, limits[i].value);
		lua_setfield(L, -2, limits[i].name);
	}
}

int luaopen_mxprobe_core(lua_State *L)
{
	lua_newtable(L);
	mxp_net_open(L);
	mxp_smtp_open(L);
	mxp_dns_open(L);
	mxp_tls_open(L);
	mxp_x509_open(L);
	mxp_poller_open(L);
	mxp_random_open(L);
	mxp_http_open(L);
	mxp_proc_open(L);   /* bulk CLI: tty, signals, truncate */
	mxp_lines_open(L);  /* bulk CLI: query lists */
	mxp_sys_open(L);       /* robustness (issue 12) */
	mxp_spawn_open(L);  /* workers: processes, channels */
	push_limits(L);
	lua_setfield(L, -2, "limits");
	push_library_versions(L);
	lua_setfield(L, -2, "library_versions");
	lua_pushliteral(L, "0.2.0");
	lua_setfield(L, -2, "version");
	return 1;
}
