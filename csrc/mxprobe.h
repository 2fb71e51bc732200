/*
 * mxprobe.h -- private header of the C core (module "mxprobe.core").
 *
 * C gathers facts and never judges them. Every function here is
 * non-blocking; every buffer is bounded by one of the limits below, which a
 * build may override (-DMXP_SMTP_LINE_MAX=...). Exceeding a limit returns
 * the error code "too-long", never an unbounded allocation.
 *
 * Error convention: misuse raises (luaL_argerror); network and environment
 * failures return nil, message, code where code is one of the short words
 * below. "Would block" is not an error: it returns false, "wantread" or
 * false, "wantwrite".
 */
#ifndef MXPROBE_H
#define MXPROBE_H

#include <lua.h>
#include <lauxlib.h>

/* metatable names (visible through __name in error messages) */
#define MXP_SOCK_MT   "mxprobe.sock"
#define MXP_TLS_MT    "mxprobe.tls"
#define MXP_POLLER_MT "mxprobe.poller"
#define MXP_TLS_CONFIG_MT "mxprobe.tls.config"    /* one libtls config */
#define MXP_X509_GUARD_MT "mxprobe.x509.guard"    /* OpenSSL objects of one call */
#define MXP_X509_STORE_MT "mxprobe.x509.store"    /* one cached CA store */
#define MXP_LINES_MT  "mxprobe.lines"             /* bulk CLI: a query list reader */
#define MXP_CHANNEL_MT "mxprobe.channel"          /* workers: a line channel to a worker */

/* registry fields */
#define MXP_TLS_CONFIGS_KEY "mxprobe.tls.configs"   /* option key -> config */
#define MXP_X509_STORES_KEY "mxprobe.x509.stores"   /* CA file -> store */

/* ---- limits ---------------------------------------------------------- */
#ifndef MXP_SMTP_LINE_MAX      /* bytes in one reply line, CRLF included */
#define MXP_SMTP_LINE_MAX 2048
#endif
#ifndef MXP_SMTP_LINES_MAX     /* lines in one multi-line reply */
#define MXP_SMTP_LINES_MAX 512
#endif
#ifndef MXP_SMTP_REPLY_MAX     /* bytes in one whole reply */
#define MXP_SMTP_REPLY_MAX 65536
#endif
#ifndef MXP_RECV_MAX           /* bytes one recv() call may return */
#define MXP_RECV_MAX 16384
#endif
#ifndef MXP_DNS_MSG_MAX        /* bytes in one DNS message (TCP max) */
#define MXP_DNS_MSG_MAX 65535
#endif
#ifndef MXP_DNS_RR_MAX         /* resource records per DNS message section */
#define MXP_DNS_RR_MAX 256
#endif
#ifndef MXP_X509_CHAIN_MAX     /* certificates in one presented chain */
#define MXP_X509_CHAIN_MAX 32
#endif
#ifndef MXP_X509_SAN_MAX       /* subjectAltName entries kept per cert */
#define MXP_X509_SAN_MAX 1024
#endif
#ifndef MXP_X509_PEM_MAX       /* bytes of PEM accepted for one chain */
#define MXP_X509_PEM_MAX (1024 * 1024)
#endif
/* DANE (x509.c, core.x509_dane) */
#ifndef MXP_X509_DANE_RECORDS_MAX  /* TLSA records one x509_dane call takes */
#define MXP_X509_DANE_RECORDS_MAX 64
#endif
#ifndef MXP_X509_DANE_NAMES_MAX    /* reference identifiers per x509_dane call */
#define MXP_X509_DANE_NAMES_MAX 8
#endif
#ifndef MXP_POLL_EVENTS_MAX    /* events one poller wait may return */
#define MXP_POLL_EVENTS_MAX 256
#endif
#ifndef MXP_POLL_WAIT_MAX_MS   /* longest single poller wait */
#define MXP_POLL_WAIT_MAX_MS 3600000
#endif
#ifndef MXP_RANDOM_MAX         /* bytes one random_bytes call may return */
#define MXP_RANDOM_MAX 256
#endif
#ifndef MXP_TLS_CIPHERS_MAX    /* bytes of a cipher list in tls_client opts */
#define MXP_TLS_CIPHERS_MAX 1024
#endif
#ifndef MXP_HTTP_HEADER_MAX    /* bytes of an HTTP response's header sections */
#define MXP_HTTP_HEADER_MAX 8192
#endif
#ifndef MXP_HTTP_BODY_MAX      /* bytes of one HTTP response body */
#define MXP_HTTP_BODY_MAX 65536
#endif
#ifndef MXP_HTTP_HEADERS_MAX   /* header (and trailer) fields of one response */
#define MXP_HTTP_HEADERS_MAX 100
#endif
#ifndef MXP_HTTP_CHUNK_LINE_MAX /* bytes of one chunk-size line, extensions included */
#define MXP_HTTP_CHUNK_LINE_MAX 1024
#endif
#ifndef MXP_LIST_LINE_MAX      /* bytes of one line of a query list (bulk CLI) */
#define MXP_LIST_LINE_MAX 4096
#endif
/* workers (--workers N): the coordinator <-> worker channel */
#ifndef MXP_CHANNEL_LINE_MAX   /* bytes of one message (a query's facts) */
#define MXP_CHANNEL_LINE_MAX (16 * 1024 * 1024)
#endif
#ifndef MXP_CHANNEL_BUF_MAX    /* bytes queued to send on one channel */
#define MXP_CHANNEL_BUF_MAX (64 * 1024 * 1024)
#endif
#ifndef MXP_TEXT_MAX           /* bytes of any one name/field copied out */
#define MXP_TEXT_MAX 1024
#endif

/* ---- error codes (the fixed vocabulary callers compare against) ------ */
#define MXP_E_TIMEOUT     "timeout"
#define MXP_E_REFUSED     "refused"
#define MXP_E_UNREACHABLE "unreachable"
#define MXP_E_RESET       "reset"
#define MXP_E_CLOSED      "closed"
#define MXP_E_TLS         "tls"
#define MXP_E_PROTOCOL    "protocol"
#define MXP_E_TOOLONG     "too-long"
#define MXP_E_ERROR       "error"

/* err.c: push nil, "<context>: <strerror(err)>", code-for-errno; returns 3 */
int mxp_push_errno(lua_State *L, const char *context, int err);
/* err.c: push nil, message, code; returns 3 */
int mxp_push_fail(lua_State *L, const char *message, const char *code);

/* one open function per concern; core.c calls each into the module table
 * that is on top of the stack */
void mxp_net_open(lua_State *L);   /* net.c:  sockets, poll, clocks      */
void mxp_smtp_open(lua_State *L);  /* smtp.c: reply framing (pure)       */
void mxp_dns_open(lua_State *L);   /* dns.c:  DNS wire codec (pure)      */
void mxp_tls_open(lua_State *L);   /* tls.c:  libtls client over a fd    */
void mxp_x509_open(lua_State *L);  /* x509.c: chain parsing, verification */
void mxp_poller_open(lua_State *L); /* poller.c: epoll, one-shot arming   */
void mxp_random_open(lua_State *L); /* random.c: getrandom(2)             */
void mxp_http_open(lua_State *L);   /* http.c: HTTP response framing (pure) */
void mxp_proc_open(lua_State *L);   /* proc.c: isatty, SIGINT/SIGTERM, truncate */
void mxp_lines_open(lua_State *L);  /* lines.c: query lists, a line at a time */
/* robustness (issue 12) */
void mxp_sys_open(lua_State *L);    /* sys.c: stat, fd limit, memory-limited resume */
void mxp_spawn_open(lua_State *L);  /* spawn.c: worker processes and their channels */

/* net.c: the descriptor of a "mxprobe.sock" at stack index idx (raises on
 * anything else, or on a closed socket) */
int mxp_sock_checkfd(lua_State *L, int idx);
/* net.c: the descriptor of the "mxprobe.sock" at idx, -1 when it is
 * closed (raises on anything else) */
int mxp_sock_fd(lua_State *L, int idx);

#endif
