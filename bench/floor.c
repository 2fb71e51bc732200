/*
 * bench/floor.c -- the FLOOR of `make bench`: a minimal blocking SMTP client
 * doing, per target, the dialog mxprobe does, so that mxprobe's client CPU
 * per probe can be printed next to what the same work costs with no event
 * loop, no coroutines and no Lua at all.
 *
 *   floor [-n N] [-c CA_FILE] [-e EHLO_NAME] [-t SECONDS] TARGETS
 *
 * TARGETS has one target a line: "ADDRESS MX_NAME DOMAIN" (# comments).
 * N probes (default: one per line) go through the lines in turn, one
 * after the other. Per probe: connect ADDRESS:25; the complete 220 banner
 * (multi-line); EHLO; STARTTLS; TLS handshake with verification off (as
 * mxprobe: the chain is judged afterwards); the peer chain as PEM, decoded
 * once and verified once against CA_FILE (one X509_STORE for the whole
 * run; auth level 2, purpose ssl_server, X509_check_host on MX_NAME, as
 * mxprobe); EHLO again; MAIL FROM; RCPT TO an external address; RCPT TO
 * postmaster@DOMAIN; RSET; QUIT. A target without STARTTLS goes on in
 * plaintext, as mxprobe does.
 *
 * Prints one line:
 *   floor probes=N complete=K verified=V cpu_us=U cpu_us_per_probe=X wall_ms=W maxrss_kib=R
 * CPU is getrusage(RUSAGE_SELF) user+sys around the N probes only (after
 * the CA store is loaded). Exit status 0 when every probe completed.
 *
 * Loopback only: any ADDRESS outside 127.0.0.0/8 and ::1 is refused.
 * Every socket has SO_RCVTIMEO/SO_SNDTIMEO (connect included); every
 * buffer is bounded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <tls.h>

#define FLOOR_TARGETS_MAX 256
#define FLOOR_NAME_MAX    256
#define FLOOR_BUF_MAX     16384   /* one reply, all its lines */
#define FLOOR_LINE_MAX    1024
#define FLOOR_CMD_MAX     600

/* as mxprobe's defaults (lua/mxprobe/probe.lua, csrc/tls.c) */
#define FLOOR_MAIL_FROM   "mxprobe@example.net"
#define FLOOR_RELAY_RCPT  "mxprobe-relay-test@example.net"
#define FLOOR_CIPHERS     "ALL:!aNULL:!eNULL:@SECLEVEL=0"
#define FLOOR_CURVES      "X25519,P-256,P-384,P-521,X448"

struct target {
	char address[FLOOR_NAME_MAX];
	char mx[FLOOR_NAME_MAX];
	char domain[FLOOR_NAME_MAX];
};

struct conn {
	int fd;
	struct tls *tls;            /* NULL before STARTTLS */
	char buf[FLOOR_BUF_MAX];
	size_t len;                 /* bytes in buf */
};

static const char *ehlo_name = "bench.mxprobe.test";
static int timeout_s = 15;

static void warnx_(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("floor: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static int is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return 0;
}

static int conn_open(struct conn *c, const char *address)
{
	struct addrinfo hints, *ai = NULL;
	struct timeval tv;
	int r;

	memset(&hints, 0, sizeof hints);
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	hints.ai_socktype = SOCK_STREAM;
	if ((r = getaddrinfo(address, "25", &hints, &ai)) != 0) {
		warnx_("%s: %s", address, gai_strerror(r));
		return -1;
	}
	if (!is_loopback(ai->ai_addr)) {
		warnx_("%s: not a loopback address, refused", address);
		freeaddrinfo(ai);
		return -1;
	}
	c->tls = NULL;
	c->len = 0;
	if ((c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		warnx_("socket: %s", strerror(errno));
		freeaddrinfo(ai);
		return -1;
	}
	tv.tv_sec = timeout_s;
	tv.tv_usec = 0;
	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
	    connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		warnx_("connect %s:25: %s", address, strerror(errno));
		freeaddrinfo(ai);
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	freeaddrinfo(ai);
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->tls != NULL) {
		/* blocking socket: close_notify goes out once; a peer that
		 * already hung up is no error of ours */
		(void)tls_close(c->tls);
		tls_free(c->tls);
		c->tls = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* Reads more bytes into c->buf; 0 on success, -1 on error, eof or timeout. */
static int conn_fill(struct conn *c)
{
	size_t room = sizeof c->buf - c->len;
	ssize_t n;
	int tries;

	if (room == 0) {
		warnx_("reply longer than %d bytes", FLOOR_BUF_MAX);
		return -1;
	}
	if (c->tls == NULL) {
		do
			n = recv(c->fd, c->buf + c->len, room, 0);
		while (n < 0 && errno == EINTR);
		if (n <= 0) {
			warnx_("recv: %s", n == 0 ? "closed" : strerror(errno));
			return -1;
		}
	} else {
		/* a blocking socket: WANT_POLL* only around post-handshake
		 * messages (TLS 1.3 tickets); bounded retries */
		tries = 0;
		do
			n = tls_read(c->tls, c->buf + c->len, room);
		while ((n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) && ++tries < 100);
		if (n <= 0) {
			warnx_("tls_read: %s", n == 0 ? "closed" : tls_error(c->tls));
			return -1;
		}
	}
	c->len += (size_t)n;
	return 0;
}

/* One complete reply (RFC 5321 4.2: "NNN-" lines, then "NNN "); returns
 * its code, or -1. The reply's bytes are consumed; what follows it stays.
 * starttls (may be NULL): set when a line after the first is "STARTTLS"
 * (an EHLO keyword). */
static int read_reply(struct conn *c, int *starttls)
{
	size_t start = 0;
	char *nl;

	if (starttls != NULL)
		*starttls = 0;
	for (;;) {
		while ((nl = memchr(c->buf + start, '\n', c->len - start)) != NULL) {
			size_t linelen = (size_t)(nl - (c->buf + start)) + 1;
			const char *l = c->buf + start;

			if (linelen > FLOOR_LINE_MAX || linelen < 4 ||
			    l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' ||
			    l[2] < '0' || l[2] > '9') {
				warnx_("malformed reply line");
				return -1;
			}
			if (starttls != NULL && start > 0 && linelen >= 12 &&
			    strncasecmp(l + 4, "STARTTLS", 8) == 0 &&
			    (l[12] == '\r' || l[12] == '\n' || l[12] == ' '))
				*starttls = 1;
			start += linelen;
			if (l[3] != '-') {
				int code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
				memmove(c->buf, c->buf + start, c->len - start);
				c->len -= start;
				return code;
			}
		}
		if (conn_fill(c) != 0)
			return -1;
	}
}

static int send_all(struct conn *c, const char *p, size_t len)
{
	ssize_t n;
	int tries = 0;

	while (len > 0) {
		if (c->tls == NULL) {
			n = send(c->fd, p, len, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
		} else {
			n = tls_write(c->tls, p, len);
			if ((n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) && ++tries < 100)
				continue;
		}
		if (n <= 0) {
			warnx_("send: %s", c->tls ? tls_error(c->tls) : strerror(errno));
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Sends "fmt\r\n" and returns the reply's code, or -1. */
static int command(struct conn *c, const char *fmt, ...)
{
	char line[FLOOR_CMD_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof line - 2) {
		warnx_("command too long");
		return -1;
	}
	line[n++] = '\r';
	line[n++] = '\n';
	if (send_all(c, line, (size_t)n) != 0)
		return -1;
	return read_reply(c, NULL);
}

/* EHLO; *starttls set when the reply offers STARTTLS. */
static int ehlo(struct conn *c, int *starttls)
{
	char line[FLOOR_CMD_MAX];
	int n;

	n = snprintf(line, sizeof line, "EHLO %s\r\n", ehlo_name);
	if (n < 0 || (size_t)n >= sizeof line || send_all(c, line, (size_t)n) != 0)
		return -1;
	return read_reply(c, starttls);
}

/* The chain as mxprobe judges it: one decode, one verification. */
static int verify_chain(const char *pem, size_t len, X509_STORE *store, const char *name)
{
	STACK_OF(X509) *chain = NULL, *untrusted = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509_VERIFY_PARAM *param;
	BIO *bio;
	X509 *x;
	int ok = 0, i;

	if (len > (size_t)0x7fffffff || (bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
		return 0;
	if ((chain = sk_X509_new_null()) == NULL)
		goto done;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (sk_X509_push(chain, x) <= 0) {
			X509_free(x);
			goto done;
		}
	}
	ERR_clear_error();
	if (sk_X509_num(chain) == 0)
		goto done;
	if ((untrusted = sk_X509_new_null()) == NULL || (ctx = X509_STORE_CTX_new()) == NULL)
		goto done;
	for (i = 1; i < sk_X509_num(chain); i++)
		if (sk_X509_push(untrusted, sk_X509_value(chain, i)) <= 0)
			goto done;
	if (X509_STORE_CTX_init(ctx, store, sk_X509_value(chain, 0), untrusted) != 1 ||
	    X509_STORE_CTX_set_default(ctx, "ssl_server") != 1)
		goto done;
	param = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_auth_level(param, 2);
	ok = X509_verify_cert(ctx) == 1;
	ok = ok && X509_check_host(sk_X509_value(chain, 0), name, strlen(name),
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1;
done:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	sk_X509_free(untrusted);
	sk_X509_pop_free(chain, X509_free);
	BIO_free(bio);
	return ok;
}

/* One probe; returns 1 complete, 0 not; *verified set when the chain verified. */
static int probe(const struct target *t, struct tls_config *cfg, X509_STORE *store, int *verified)
{
	struct conn c;
	int code, starttls, complete = 0;
	int tries;

	*verified = 0;
	if (conn_open(&c, t->address) != 0)
		return 0;
	if ((code = read_reply(&c, NULL)) != 220)
		goto out;
	if ((code = ehlo(&c, &starttls)) < 200 || code > 299)
		goto out;
	if (starttls) {
		const char *pem;
		size_t pemlen = 0;

		if ((code = command(&c, "STARTTLS")) != 220)
			goto out;
		c.len = 0;   /* plaintext after "220 ready" is dropped, as mxprobe does */
		if ((c.tls = tls_client()) == NULL ||
		    tls_configure(c.tls, cfg) != 0 ||
		    tls_connect_socket(c.tls, c.fd, t->mx) != 0) {
			warnx_("tls setup: %s", c.tls ? tls_error(c.tls) : "out of memory");
			goto out;
		}
		tries = 0;
		while ((code = tls_handshake(c.tls)) == TLS_WANT_POLLIN || code == TLS_WANT_POLLOUT)
			if (++tries >= 100)
				break;
		if (code != 0) {
			warnx_("handshake %s: %s", t->address, tls_error(c.tls));
			goto out;
		}
		if ((pem = (const char *)tls_peer_cert_chain_pem(c.tls, &pemlen)) != NULL)
			*verified = verify_chain(pem, pemlen, store, t->mx);
		if ((code = ehlo(&c, &starttls)) < 200 || code > 299)
			goto out;
	}
	if ((code = command(&c, "MAIL FROM:<%s>", FLOOR_MAIL_FROM)) < 200 || code > 299)
		goto out;
	if (command(&c, "RCPT TO:<%s>", FLOOR_RELAY_RCPT) < 0 ||
	    command(&c, "RCPT TO:<postmaster@%s>", t->domain) < 0 ||
	    command(&c, "RSET") < 0)
		goto out;
	complete = command(&c, "QUIT") == 221;
out:
	conn_close(&c);
	return complete;
}

static int read_targets(const char *path, struct target *ts, int max)
{
	char line[3 * FLOOR_NAME_MAX];
	FILE *f;
	int n = 0;

	if ((f = fopen(path, "r")) == NULL) {
		warnx_("%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		char *a, *m, *d, *save = NULL;

		if ((a = strtok_r(line, " \t\r\n", &save)) == NULL || a[0] == '#')
			continue;
		m = strtok_r(NULL, " \t\r\n", &save);
		d = strtok_r(NULL, " \t\r\n", &save);
		if (m == NULL || d == NULL || strlen(a) >= FLOOR_NAME_MAX ||
		    strlen(m) >= FLOOR_NAME_MAX || strlen(d) >= FLOOR_NAME_MAX) {
			warnx_("%s: want \"ADDRESS MX_NAME DOMAIN\" per line", path);
			fclose(f);
			return -1;
		}
		if (n == max) {
			warnx_("%s: more than %d targets", path, max);
			fclose(f);
			return -1;
		}
		strcpy(ts[n].address, a);
		strcpy(ts[n].mx, m);
		strcpy(ts[n].domain, d);
		n++;
	}
	fclose(f);
	return n;
}

static double cpu_us(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return -1;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
	    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static long maxrss_kib(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return -1;
	return ru.ru_maxrss;   /* Linux: KiB */
}

static double wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void usage(void)
{
	fputs("usage: floor [-n N] [-c CA_FILE] [-e EHLO_NAME] [-t SECONDS] TARGETS\n", stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	static struct target ts[FLOOR_TARGETS_MAX];
	const char *ca_file = NULL;
	struct tls_config *cfg;
	X509_STORE *store;
	double c0, c1, w0, w1;
	long n = -1;
	int opt, nt, i, complete = 0, verified = 0;

	while ((opt = getopt(argc, argv, "n:c:e:t:")) != -1) {
		switch (opt) {
		case 'n': n = strtol(optarg, NULL, 10); if (n < 1 || n > 1000000) usage(); break;
		case 'c': ca_file = optarg; break;
		case 'e': ehlo_name = optarg; break;
		case 't': timeout_s = atoi(optarg); if (timeout_s < 1 || timeout_s > 600) usage(); break;
		default: usage();
		}
	}
	if (optind != argc - 1)
		usage();
	if ((nt = read_targets(argv[optind], ts, FLOOR_TARGETS_MAX)) <= 0) {
		if (nt == 0)
			warnx_("%s: no targets", argv[optind]);
		return 2;
	}
	if (n < 0)
		n = nt;

	if ((cfg = tls_config_new()) == NULL)
		return 2;
	tls_config_insecure_noverifycert(cfg);
	tls_config_insecure_noverifyname(cfg);
	tls_config_insecure_noverifytime(cfg);
	if (tls_config_set_protocols(cfg, TLS_PROTOCOLS_ALL) != 0 ||
	    (tls_config_set_ciphers(cfg, FLOOR_CIPHERS) != 0 &&
	    tls_config_set_ciphers(cfg, "all") != 0) ||
	    (tls_config_set_ecdhecurves(cfg, FLOOR_CURVES) != 0 &&
	    tls_config_set_ecdhecurves(cfg, "default") != 0)) {
		warnx_("tls config: %s", tls_config_error(cfg));
		return 2;
	}
	if ((store = X509_STORE_new()) == NULL ||
	    (ca_file != NULL ? X509_STORE_load_file(store, ca_file)
	    : X509_STORE_set_default_paths(store)) != 1) {
		warnx_("cannot load CA %s", ca_file ? ca_file : "(system store)");
		return 2;
	}

	c0 = cpu_us();
	w0 = wall_ms();
	for (i = 0; i < n; i++) {
		int v;

		complete += probe(&ts[i % nt], cfg, store, &v);
		verified += v;
	}
	c1 = cpu_us();
	w1 = wall_ms();
	printf("floor probes=%ld complete=%d verified=%d cpu_us=%.0f cpu_us_per_probe=%.1f wall_ms=%.0f"
	    " maxrss_kib=%ld\n", n, complete, verified, c1 - c0, (c1 - c0) / (double)n, w1 - w0, maxrss_kib());
	X509_STORE_free(store);
	tls_config_free(cfg);
	return complete == n ? 0 : 1;
}
