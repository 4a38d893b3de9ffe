#include "proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "net.h"
#include "proto.h"
#include "supervise.h"
#include "xalloc.h"

#define PROXY_RETRY_MIN_MS 50
#define PROXY_RETRY_MAX_MS 2000
#define PROXY_HTTPS_PORT   443
#define PROXY_HTTP_PORT	   80

struct proxy_site_own {
	char *name;
	int port;
	char **domains;
	size_t ndomains;
	int upstreams[PROXY_MAX_UPSTREAMS];
	size_t nupstreams;
	char *root;
};

struct proxy {
	struct loop *loop;
	struct proxy_opts o; /* pointers below are owned copies */
	char *dir, *sock, *conf, *pidfile, *caddy, *listen_host;
	struct supervise *sv;

	struct proxy_site_own *sites; /* sorted by name */
	size_t nsites, capsites;

	unsigned long long gen;	     /* model changes */
	unsigned long long done_gen; /* the generation Caddy last answered */
	unsigned long long sent_gen; /* the generation in flight */
	struct buf last;	     /* the config Caddy last accepted */
	long long t_apply, t_timeout;
	long long retry_ms;
	unsigned retries;

	int fd;		/* admin connection in flight, or -1 */
	struct buf req; /* head and body */
	size_t body_off, sent;
	struct http_parser *hp;

	unsigned loads;
	char error[1024];
};

static void proxy_send(struct proxy *px);

static void proxy_seterr(struct proxy *px, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void proxy_seterr(struct proxy *px, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(px->error, sizeof(px->error), fmt, ap);
	va_end(ap);
}

static char *proxy_path(const char *dir, const char *name)
{
	struct buf b = BUF_INIT;
	buf_printf(&b, "%s/%s", dir, name);
	return buf_detach(&b, NULL);
}

/* --- the model ------------------------------------------------------------ */

static void site_release(struct proxy_site_own *s)
{
	free(s->name);
	for (size_t i = 0; i < s->ndomains; i++)
		free(s->domains[i]);
	free(s->domains);
	free(s->root);
	memset(s, 0, sizeof(*s));
}

static struct proxy_site_own *site_find(const struct proxy *px, const char *name, size_t *pos)
{
	size_t lo = 0, hi = px->nsites;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(px->sites[mid].name, name);
		if (c == 0) {
			if (pos)
				*pos = mid;
			return &px->sites[mid];
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (pos)
		*pos = lo;
	return NULL;
}

static int site_check(const struct proxy *px, const struct proxy_site *s, char *err, size_t errlen)
{
	const char *name = s->name ? s->name : "";
	size_t n = strlen(name);
	if (n == 0 || n > PROXY_NAME_MAX) {
		snprintf(err, errlen, "proxy: site name '%.*s' must be 1..%d bytes", PROXY_NAME_MAX,
			 name, PROXY_NAME_MAX);
		return -1;
	}
	if (s->port < 1 || s->port > 65535) {
		snprintf(err, errlen, "proxy: site '%s': port %d is not 1..65535", name, s->port);
		return -1;
	}
	/* With https on, Caddy itself serves :443, and :80 for ACME challenges
	 * and redirects to https. */
	if (px->o.https && (s->port == PROXY_HTTPS_PORT || s->port == PROXY_HTTP_PORT)) {
		snprintf(err, errlen, "proxy: site '%s': port %d is the proxy's own with https on",
			 name, s->port);
		return -1;
	}
	if ((s->nupstreams > 0) == (s->root != NULL)) {
		snprintf(err, errlen, "proxy: site '%s': needs either upstreams or a root", name);
		return -1;
	}
	if (s->nupstreams > PROXY_MAX_UPSTREAMS) {
		snprintf(err, errlen, "proxy: site '%s': more than %d upstreams", name,
			 PROXY_MAX_UPSTREAMS);
		return -1;
	}
	for (size_t i = 0; i < s->nupstreams; i++) {
		if (s->upstreams[i] < 1 || s->upstreams[i] > 65535) {
			snprintf(err, errlen, "proxy: site '%s': upstream port %d is not 1..65535",
				 name, s->upstreams[i]);
			return -1;
		}
	}
	if (s->root && s->root[0] != '/') {
		snprintf(err, errlen, "proxy: site '%s': root '%s' is not absolute", name, s->root);
		return -1;
	}
	if (s->ndomains > PROXY_MAX_DOMAINS) {
		snprintf(err, errlen, "proxy: site '%s': more than %d domains", name,
			 PROXY_MAX_DOMAINS);
		return -1;
	}
	for (size_t i = 0; i < s->ndomains; i++) {
		const char *d = s->domains[i];
		if (!d || !d[0] || strlen(d) > PROXY_DOMAIN_MAX) {
			snprintf(err, errlen, "proxy: site '%s': domain %zu must be 1..%d bytes",
				 name, i + 1, PROXY_DOMAIN_MAX);
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcasecmp(d, s->domains[j]) == 0) {
				snprintf(err, errlen, "proxy: site '%s': domain '%s' given twice",
					 name, d);
				return -1;
			}
		}
	}
	/* Conflicts with the other sites (the one being replaced excluded). */
	for (size_t k = 0; k < px->nsites; k++) {
		const struct proxy_site_own *o = &px->sites[k];
		if (strcmp(o->name, name) == 0)
			continue;
		if (o->port == s->port && o->ndomains == 0 && s->ndomains == 0) {
			snprintf(err, errlen,
				 "proxy: site '%s': port %d already serves site '%s' for every "
				 "host; give one of them domains",
				 name, s->port, o->name);
			return -1;
		}
		for (size_t i = 0; i < s->ndomains; i++) {
			for (size_t j = 0; j < o->ndomains; j++) {
				if (strcasecmp(s->domains[i], o->domains[j]) == 0) {
					snprintf(err, errlen,
						 "proxy: site '%s': domain '%s' is served by "
						 "site '%s'",
						 name, s->domains[i], o->name);
					return -1;
				}
			}
		}
	}
	return 0;
}

static void proxy_schedule(struct proxy *px, long long ms);

/* The model changed: load it at the end of the batching window (or after
 * the load in flight, see proxy_answered). */
static void proxy_changed(struct proxy *px)
{
	px->gen++;
	if (!px->t_apply && px->fd < 0)
		proxy_schedule(px, px->o.apply_delay_ms);
}

int proxy_set_site(struct proxy *px, const struct proxy_site *s, char *err, size_t errlen)
{
	if (site_check(px, s, err, errlen) < 0)
		return -1;
	size_t pos;
	struct proxy_site_own *o = site_find(px, s->name, &pos);
	if (o) {
		site_release(o);
	} else {
		xgrow((void **)&px->sites, &px->capsites, px->nsites + 1, sizeof(*px->sites));
		memmove(&px->sites[pos + 1], &px->sites[pos],
			(px->nsites - pos) * sizeof(*px->sites));
		px->nsites++;
		o = &px->sites[pos];
		memset(o, 0, sizeof(*o));
	}
	o->name = xstrdup(s->name);
	o->port = s->port;
	o->ndomains = s->ndomains;
	o->domains = xcalloc(s->ndomains ? s->ndomains : 1, sizeof(char *));
	for (size_t i = 0; i < s->ndomains; i++)
		o->domains[i] = xstrdup(s->domains[i]);
	o->nupstreams = s->nupstreams;
	for (size_t i = 0; i < s->nupstreams; i++)
		o->upstreams[i] = s->upstreams[i];
	o->root = s->root ? xstrdup(s->root) : NULL;
	proxy_changed(px);
	return 0;
}

int proxy_remove_site(struct proxy *px, const char *name)
{
	size_t pos;
	struct proxy_site_own *o = site_find(px, name, &pos);
	if (!o)
		return -1;
	site_release(o);
	memmove(&px->sites[pos], &px->sites[pos + 1], (px->nsites - pos - 1) * sizeof(*px->sites));
	px->nsites--;
	proxy_changed(px);
	return 0;
}

size_t proxy_site_count(const struct proxy *px)
{
	return px->nsites;
}

/* --- config generation ---------------------------------------------------- */

static int ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);
	return n >= k && strncasecmp(s + n - k, suffix, k) == 0;
}

/* Whether a public CA can certify d (see proxy.h). */
static int domain_public(const char *d)
{
	static const char *const private_suffixes[] = {
	    ".localhost", ".local",   ".internal", ".test",
	    ".example",	  ".invalid", ".lan",	   ".home.arpa",
	};
	struct net_addr a;
	char tmp[PROXY_DOMAIN_MAX + 16], e[8];
	size_t n = strlen(d);
	if (n && d[n - 1] == '.')
		n--;
	if (!strchr(d, '.') || strncasecmp(d, "localhost", n) == 0)
		return 0;
	for (size_t i = 0; i < sizeof(private_suffixes) / sizeof(*private_suffixes); i++)
		if (ends_with(d, n, private_suffixes[i]))
			return 0;
	snprintf(tmp, sizeof(tmp), "%s:1", d);
	if (net_parse(tmp, &a, e, sizeof(e)) == 0)
		return 0;
	snprintf(tmp, sizeof(tmp), "[%s]:1", d);
	if (net_parse(tmp, &a, e, sizeof(e)) == 0)
		return 0;
	for (const char *p = d; *p; p++)
		if (*p == '*' || *p == ':')
			return 0;
	return 1;
}

static void conf_listen(const struct proxy *px, struct buf *out, int port)
{
	struct buf a = BUF_INIT;
	if (!px->listen_host)
		buf_printf(&a, ":%d", port);
	else if (strchr(px->listen_host, ':'))
		buf_printf(&a, "[%s]:%d", px->listen_host, port);
	else
		buf_printf(&a, "%s:%d", px->listen_host, port);
	buf_puts(out, "\"listen\":[");
	buf_json_str(out, a.data, a.len);
	buf_puts(out, "]");
	buf_release(&a);
}

static void conf_handler(struct buf *out, const struct proxy_site_own *s)
{
	if (s->root) {
		buf_puts(out, "{\"handler\":\"file_server\",\"root\":");
		buf_json_cstr(out, s->root);
		buf_puts(out, "}");
		return;
	}
	buf_puts(out, "{\"handler\":\"reverse_proxy\",\"upstreams\":[");
	for (size_t i = 0; i < s->nupstreams; i++)
		buf_printf(out, "%s{\"dial\":\"127.0.0.1:%d\"}", i ? "," : "", s->upstreams[i]);
	buf_puts(out, "]}");
}

/* One route: "@id" is "dployr.NAME" + suffix; public: only public domains. */
static void conf_route(struct buf *out, const struct proxy_site_own *s, const char *suffix,
		       int public)
{
	struct buf id = BUF_INIT;
	buf_printf(&id, "dployr.%s%s", s->name, suffix);
	buf_puts(out, "{\"@id\":");
	buf_json_str(out, id.data, id.len);
	buf_release(&id);
	if (s->ndomains) {
		buf_puts(out, ",\"match\":[{\"host\":[");
		int first = 1;
		for (size_t i = 0; i < s->ndomains; i++) {
			if (public && !domain_public(s->domains[i]))
				continue;
			if (!first)
				buf_putc(out, ',');
			first = 0;
			buf_json_cstr(out, s->domains[i]);
		}
		buf_puts(out, "]}]");
	}
	buf_puts(out, ",\"handle\":[");
	conf_handler(out, s);
	buf_puts(out, "],\"terminal\":true}");
}

static int site_has_public(const struct proxy_site_own *s)
{
	for (size_t i = 0; i < s->ndomains; i++)
		if (domain_public(s->domains[i]))
			return 1;
	return 0;
}

static void conf_admin(const struct proxy *px, struct buf *out)
{
	struct buf l = BUF_INIT;
	buf_printf(&l, "unix/%s", px->sock);
	buf_puts(out, "\"admin\":{\"listen\":");
	buf_json_str(out, l.data, l.len);
	buf_puts(out, ",\"origins\":[\"localhost\"],\"config\":{\"persist\":false}}");
	buf_release(&l);
}

static int int_cmp(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

void proxy_config(const struct proxy *px, struct buf *out)
{
	buf_putc(out, '{');
	conf_admin(px, out);
	buf_puts(out, ",\"storage\":{\"module\":\"file_system\",\"root\":");
	char *data = proxy_path(px->dir, "data");
	buf_json_cstr(out, data);
	free(data);
	buf_puts(out, "}");
	if (px->nsites == 0) {
		buf_putc(out, '}');
		return;
	}
	/* Distinct ports, ascending. */
	int *ports = xcalloc(px->nsites, sizeof(int));
	size_t nports = 0;
	for (size_t i = 0; i < px->nsites; i++)
		ports[i] = px->sites[i].port;
	qsort(ports, px->nsites, sizeof(int), int_cmp);
	for (size_t i = 0; i < px->nsites; i++)
		if (nports == 0 || ports[nports - 1] != ports[i])
			ports[nports++] = ports[i];

	buf_puts(out, ",\"apps\":{\"http\":{\"servers\":{");
	for (size_t k = 0; k < nports; k++) {
		buf_printf(out, "%s\"port-%d\":{", k ? "," : "", ports[k]);
		conf_listen(px, out, ports[k]);
		buf_puts(out, ",\"automatic_https\":{\"disable\":true},\"routes\":[");
		int first = 1;
		/* Sites with domains first, then the catch-all. */
		for (int pass = 0; pass < 2; pass++) {
			for (size_t i = 0; i < px->nsites; i++) {
				const struct proxy_site_own *s = &px->sites[i];
				if (s->port != ports[k] || (pass == 0) != (s->ndomains > 0))
					continue;
				if (!first)
					buf_putc(out, ',');
				first = 0;
				conf_route(out, s, "", 0);
			}
		}
		buf_puts(out, "]}");
	}
	free(ports);
	int any_public = 0;
	for (size_t i = 0; px->o.https && i < px->nsites; i++)
		any_public |= site_has_public(&px->sites[i]);
	if (any_public) {
		buf_puts(out, ",\"https\":{");
		conf_listen(px, out, PROXY_HTTPS_PORT);
		buf_puts(out, ",\"routes\":[");
		int first = 1;
		for (size_t i = 0; i < px->nsites; i++) {
			if (!site_has_public(&px->sites[i]))
				continue;
			if (!first)
				buf_putc(out, ',');
			first = 0;
			conf_route(out, &px->sites[i], ".https", 1);
		}
		buf_puts(out, "]}");
	}
	buf_puts(out, "}}}}");
}

/* --- the admin request ------------------------------------------------------ */

static void proxy_close(struct proxy *px)
{
	if (px->t_timeout)
		loop_timer_cancel(px->loop, px->t_timeout);
	px->t_timeout = 0;
	if (px->fd >= 0) {
		loop_del_fd(px->loop, px->fd);
		close(px->fd);
		px->fd = -1;
	}
	buf_reset(&px->req);
	px->sent = 0;
	http_reset(px->hp);
}

static void proxy_on_timer(struct loop *loop, long long id, void *arg, int mask)
{
	struct proxy *px = arg;
	px->t_apply = 0;
	proxy_send(px);
}

static void proxy_schedule(struct proxy *px, long long ms)
{
	if (px->t_apply)
		loop_timer_cancel(px->loop, px->t_apply);
	px->t_apply = loop_timer_add(px->loop, ms, proxy_on_timer, px);
}

/* The admin socket did not answer: try again while Caddy runs. Its exit
 * or restart (proxy_on_state) schedules the next attempt otherwise. */
static void proxy_transport_failed(struct proxy *px)
{
	proxy_close(px);
	px->retries++;
	if (px->retries == 20)
		log_warn("proxy", "admin socket does not answer", "error", px->error, NULL);
	else
		log_debug("proxy", "admin request failed", "error", px->error, NULL);
	if (supervise_state(px->sv) != SUPERVISE_RUNNING)
		return;
	proxy_schedule(px, px->retry_ms);
	px->retry_ms *= 2;
	if (px->retry_ms > PROXY_RETRY_MAX_MS)
		px->retry_ms = PROXY_RETRY_MAX_MS;
}

static void proxy_answered(struct proxy *px)
{
	int status = http_status(px->hp);
	size_t blen;
	const char *body = http_body(px->hp, &blen);
	int ok = status >= 200 && status < 300;
	px->done_gen = px->sent_gen;
	px->retries = 0;
	px->retry_ms = PROXY_RETRY_MIN_MS;
	if (ok) {
		px->loads++;
		px->error[0] = '\0';
		buf_reset(&px->last);
		buf_add(&px->last, px->req.data + px->body_off, px->req.len - px->body_off);
		log_info("proxy", "config loaded", NULL);
	} else {
		char jerr[8];
		const char *msg = NULL;
		struct proto_json *doc = proto_json_parse(body, blen, jerr, sizeof(jerr));
		if (doc)
			msg = proto_jv_get_str(proto_json_root(doc), "error");
		if (msg)
			proxy_seterr(px, "proxy: caddy refused the config (%d): %s", status, msg);
		else
			proxy_seterr(px, "proxy: caddy refused the config (%d %s): %.300s", status,
				     http_reason(px->hp), blen ? body : "no body");
		proto_json_free(doc);
		log_error("proxy", "config refused", "error", px->error, NULL);
	}
	proxy_close(px);
	if (px->gen != px->done_gen)
		proxy_schedule(px, 0);
	if (px->o.on_apply)
		px->o.on_apply(px, px->o.arg, ok);
}

static void proxy_on_fd(struct loop *loop, long long fd, void *arg, int mask)
{
	struct proxy *px = arg;
	if (px->sent < px->req.len) {
		if (!(mask & (LOOP_WRITE | LOOP_ERROR)))
			return;
		ssize_t n =
		    send(px->fd, px->req.data + px->sent, px->req.len - px->sent, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			proxy_seterr(px, "proxy: admin socket '%s': send: %s", px->sock,
				     strerror(errno));
			proxy_transport_failed(px);
			return;
		}
		px->sent += (size_t)n;
		if (px->sent == px->req.len)
			loop_mod_fd(loop, px->fd, LOOP_READ);
		return;
	}
	char b[4096];
	ssize_t n = recv(px->fd, b, sizeof(b), 0);
	int r;
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		proxy_seterr(px, "proxy: admin socket '%s': recv: %s", px->sock, strerror(errno));
		proxy_transport_failed(px);
		return;
	}
	if (n == 0) {
		r = http_finish(px->hp);
	} else {
		size_t used;
		r = http_parse(px->hp, b, (size_t)n, &used);
	}
	if (r == HTTP_DONE) {
		proxy_answered(px);
	} else if (r == HTTP_ERROR || n == 0) {
		proxy_seterr(px, "proxy: admin socket '%s': bad reply: %s", px->sock,
			     r == HTTP_ERROR ? http_error(px->hp) : "closed");
		proxy_transport_failed(px);
	}
}

static void proxy_on_timeout(struct loop *loop, long long id, void *arg, int mask)
{
	struct proxy *px = arg;
	px->t_timeout = 0;
	proxy_seterr(px, "proxy: admin socket '%s': no reply within %lld ms", px->sock,
		     px->o.timeout_ms);
	proxy_transport_failed(px);
}

/* Start one POST /load of the current model, unless one is in flight or
 * Caddy already has it. */
static void proxy_send(struct proxy *px)
{
	if (px->fd >= 0 || !px->sv || supervise_state(px->sv) != SUPERVISE_RUNNING)
		return;
	if (px->t_apply) {
		loop_timer_cancel(px->loop, px->t_apply);
		px->t_apply = 0;
	}
	struct buf body = BUF_INIT;
	proxy_config(px, &body);
	if (px->last.len == body.len && memcmp(px->last.data, body.data, body.len) == 0) {
		/* Caddy runs this model already: applied without a load. */
		px->done_gen = px->gen;
		px->error[0] = '\0';
		buf_release(&body);
		if (px->o.on_apply)
			px->o.on_apply(px, px->o.arg, 1);
		return;
	}
	char len[32];
	snprintf(len, sizeof(len), "%zu", body.len);
	buf_reset(&px->req);
	if (http_write_request_head(&px->req, "POST", "/load", "Host", "localhost", "Content-Type",
				    "application/json", "Content-Length", len, "Connection",
				    "close", NULL) < 0) {
		buf_release(&body);
		return; /* cannot happen: every header is ours */
	}
	px->body_off = px->req.len;
	buf_add(&px->req, body.data, body.len);
	buf_release(&body);

	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, px->sock, strlen(px->sock) + 1);
	px->sent_gen = px->gen;
	px->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (px->fd < 0) {
		proxy_seterr(px, "proxy: admin socket: %s", strerror(errno));
		proxy_transport_failed(px);
		return;
	}
	if (connect(px->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		proxy_seterr(px, "proxy: admin socket '%s': connect: %s", px->sock,
			     strerror(errno));
		proxy_transport_failed(px);
		return;
	}
	if (loop_add_fd(px->loop, px->fd, LOOP_WRITE, proxy_on_fd, px) < 0) {
		proxy_seterr(px, "proxy: admin socket: %s", loop_error(px->loop));
		proxy_transport_failed(px);
		return;
	}
	px->t_timeout = loop_timer_add(px->loop, px->o.timeout_ms, proxy_on_timeout, px);
}

void proxy_apply(struct proxy *px)
{
	if (px->fd < 0)
		proxy_send(px);
}

int proxy_pending(const struct proxy *px)
{
	return px->gen != px->done_gen || px->fd >= 0;
}

const char *proxy_error(const struct proxy *px)
{
	return px->error;
}

unsigned proxy_loads(const struct proxy *px)
{
	return px->loads;
}

pid_t proxy_pid(const struct proxy *px)
{
	struct supervise_record rec;
	if (!px->sv || supervise_record(px->sv, &rec) < 0)
		return -1;
	return rec.pid;
}

const char *proxy_admin_path(const struct proxy *px)
{
	return px->sock;
}

/* --- Caddy's process ---------------------------------------------------------- */

/* DIR/caddy.pid: "PID START_TIME\n", written when Caddy starts. */
static void proxy_write_pidfile(struct proxy *px)
{
	struct supervise_record rec;
	if (supervise_record(px->sv, &rec) < 0)
		return;
	char tmp[64];
	int n = snprintf(tmp, sizeof(tmp), "%d %llu\n", (int)rec.pid, rec.start_time);
	struct buf path = BUF_INIT;
	buf_printf(&path, "%s.tmp", px->pidfile);
	int fd = open(path.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, tmp, (size_t)n) != n || close(fd) < 0 ||
	    rename(path.data, px->pidfile) < 0) {
		log_warn("proxy", "cannot record caddy's pid", "path", px->pidfile, "error",
			 strerror(errno), NULL);
		if (fd >= 0)
			unlink(path.data);
	}
	buf_release(&path);
}

static void proxy_on_state(struct supervise *sv, void *arg, int what)
{
	struct proxy *px = arg;
	char pid[16];
	if (what == SUPERVISE_RUNNING) {
		snprintf(pid, sizeof(pid), "%d", (int)proxy_pid(px));
		log_info("proxy", "caddy running", "pid", pid, NULL);
		proxy_write_pidfile(px);
		/* A fresh (or adopted) Caddy must be given the model. */
		buf_reset(&px->last);
		px->gen++;
		px->retry_ms = PROXY_RETRY_MIN_MS;
		px->retries = 0;
		proxy_schedule(px, 0);
		return;
	}
	proxy_close(px);
	buf_reset(&px->last);
	if (what == SUPERVISE_BACKOFF || what == SUPERVISE_FAILED || what == SUPERVISE_EXITED)
		log_warn("proxy", "caddy exited", "state", supervise_state_name(what), "error",
			 supervise_error(sv), NULL);
}

static int write_file(const char *path, const struct buf *b, char *err, size_t errlen)
{
	struct buf tmp = BUF_INIT;
	buf_printf(&tmp, "%s.tmp", path);
	int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = -1;
	if (fd < 0)
		goto fail;
	if (write(fd, b->data, b->len) != (ssize_t)b->len) {
		close(fd);
		goto fail;
	}
	if (close(fd) < 0 || rename(tmp.data, path) < 0)
		goto fail;
	rc = 0;
fail:
	if (rc < 0) {
		snprintf(err, errlen, "proxy: write '%s': %s", path, strerror(errno));
		unlink(tmp.data);
	}
	buf_release(&tmp);
	return rc;
}

/* Adopt the Caddy recorded in the pid file: 0, or -1 when there is none. */
static int proxy_adopt(struct proxy *px)
{
	struct buf b = BUF_INIT;
	char e[256];
	int pid = 0;
	unsigned long long st = 0;
	int rc = -1;
	if (buf_read_file(&b, px->pidfile, 64, e, sizeof(e)) < 0)
		goto out;
	if (sscanf(b.data, "%d %llu", &pid, &st) != 2 || pid <= 1)
		goto out;
	struct supervise_record rec = {.pid = pid, .pgid = pid, .start_time = st};
	if (supervise_adopt(px->sv, &rec, e, sizeof(e)) < 0) {
		log_info("proxy", "not adopting caddy", "reason", e, NULL);
		goto out;
	}
	rc = 0;
out:
	buf_release(&b);
	return rc;
}

int proxy_start(struct proxy *px, char *err, size_t errlen)
{
	enum supervise_state st = supervise_state(px->sv);
	if (st == SUPERVISE_RUNNING || st == SUPERVISE_BACKOFF || st == SUPERVISE_STOPPING)
		return 0;
	if (proxy_adopt(px) == 0)
		return 0;
	struct buf conf = BUF_INIT;
	buf_putc(&conf, '{');
	conf_admin(px, &conf);
	buf_puts(&conf, "}\n");
	int rc = write_file(px->conf, &conf, err, errlen);
	buf_release(&conf);
	if (rc < 0)
		return -1;
	/* A socket left by a dead Caddy would make its successor fail to bind. */
	unlink(px->sock);
	supervise_start(px->sv);
	return 0;
}

void proxy_stop(struct proxy *px)
{
	if (px->t_apply)
		loop_timer_cancel(px->loop, px->t_apply);
	px->t_apply = 0;
	proxy_close(px);
	supervise_stop(px->sv);
	unlink(px->pidfile);
}

struct proxy *proxy_new(struct loop *loop, const struct proxy_opts *o, char *err, size_t errlen)
{
	char rp[PATH_MAX];
	struct net_addr a;
	if (!o->dir || !o->dir[0]) {
		snprintf(err, errlen, "proxy: no state directory");
		return NULL;
	}
	if (o->listen_host) {
		char tmp[NET_ADDR_MAX + 8], e[256];
		snprintf(tmp, sizeof(tmp), strchr(o->listen_host, ':') ? "[%s]:1" : "%s:1",
			 o->listen_host);
		if (strlen(o->listen_host) > 64 || net_parse(tmp, &a, e, sizeof(e)) < 0 ||
		    strncmp(o->listen_host, "localhost", 9) == 0) {
			snprintf(err, errlen, "proxy: listen host '%s' is not an IP address",
				 o->listen_host);
			return NULL;
		}
	}
	if (mkdir(o->dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "proxy: mkdir '%s': %s", o->dir, strerror(errno));
		return NULL;
	}
	if (!realpath(o->dir, rp) || chmod(rp, 0700) < 0) {
		snprintf(err, errlen, "proxy: directory '%s': %s", o->dir, strerror(errno));
		return NULL;
	}
	if (strlen(rp) + sizeof("/admin.sock") > sizeof(((struct sockaddr_un *)0)->sun_path)) {
		snprintf(err, errlen, "proxy: directory '%s': too long for a unix socket path", rp);
		return NULL;
	}
	struct proxy *px = xcalloc(1, sizeof(*px));
	px->loop = loop;
	px->o = *o;
	px->o.dir = px->o.caddy = px->o.listen_host = NULL;
	px->o.envp = NULL;
	if (px->o.apply_delay_ms <= 0)
		px->o.apply_delay_ms = 200;
	if (px->o.timeout_ms <= 0)
		px->o.timeout_ms = 10000;
	px->dir = xstrdup(rp);
	px->sock = proxy_path(rp, "admin.sock");
	px->conf = proxy_path(rp, "caddy.json");
	px->pidfile = proxy_path(rp, "caddy.pid");
	px->caddy = xstrdup(o->caddy ? o->caddy : "caddy");
	px->listen_host = o->listen_host ? xstrdup(o->listen_host) : NULL;
	px->fd = -1;
	px->retry_ms = PROXY_RETRY_MIN_MS;
	buf_init(&px->req);
	buf_init(&px->last);
	px->hp = http_new(HTTP_RESPONSE);

	struct buf envb[4];
	const char *envp[5] = {0};
	if (!o->envp) {
		for (int i = 0; i < 4; i++)
			buf_init(&envb[i]);
		buf_printf(&envb[0], "HOME=%s", rp);
		buf_printf(&envb[1], "XDG_CONFIG_HOME=%s/config", rp);
		buf_printf(&envb[2], "XDG_DATA_HOME=%s/data", rp);
		buf_puts(&envb[3], "PATH=/usr/local/bin:/usr/bin:/bin");
		for (int i = 0; i < 4; i++)
			envp[i] = envb[i].data;
	}
	const char *argv[] = {px->caddy, "run", "--config", px->conf, NULL};
	struct supervise_opts so = {
	    .name = "caddy",
	    .argv = argv,
	    .envp = o->envp ? o->envp : envp,
	    .cwd = rp,
	    .out = o->log_fd > 0 ? SPAWN_FD : SPAWN_NULL,
	    .err = o->log_fd > 0 ? SPAWN_STDOUT : SPAWN_NULL,
	    .out_fd = o->log_fd,
	    .restart = SUPERVISE_ALWAYS,
	    .backoff_min_ms = o->backoff_min_ms > 0 ? o->backoff_min_ms : 500,
	    .backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : 30000,
	    .stop_grace_ms = 5000,
	    .on_state = proxy_on_state,
	    .arg = px,
	};
	px->sv = supervise_new(loop, &so, err, errlen);
	if (!o->envp)
		for (int i = 0; i < 4; i++)
			buf_release(&envb[i]);
	if (!px->sv) {
		proxy_free(px);
		return NULL;
	}
	return px;
}

void proxy_free(struct proxy *px)
{
	if (!px)
		return;
	if (px->t_apply)
		loop_timer_cancel(px->loop, px->t_apply);
	proxy_close(px);
	supervise_free(px->sv);
	for (size_t i = 0; i < px->nsites; i++)
		site_release(&px->sites[i]);
	free(px->sites);
	http_free(px->hp);
	buf_release(&px->req);
	buf_release(&px->last);
	free(px->dir);
	free(px->sock);
	free(px->conf);
	free(px->pidfile);
	free(px->caddy);
	free(px->listen_host);
	free(px);
}
