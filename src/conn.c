#include "conn.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crypt.h"
#include "log.h"
#include "pki.h"
#include "xalloc.h"

/* Plaintext the conn holds for TLS beyond the ws queue: the ws write
 * handler takes at most this much, so ws_send's own bound applies. */
#define OUT_MAX (64 * 1024)
/* Plaintext per write: one TLS record. */
#define CHUNK 16384
/* Read buffer (on the stack): half a record, so a full record leaves
 * decrypted bytes behind and the loop_fd_pending path is in regular use. */
#define RBUF 8192
#define DEFAULT_CONNECT_MS 10000
#define DEFAULT_HANDSHAKE_MS 10000
#define DEFAULT_IDLE_MS 60000
#define DEFAULT_MAX_HANDSHAKES 64
#define LINGER_MS 2000
#define WS_CLOSE_MS 5000
#define SYNC_TIMEOUT_MS 30000
/* Bytes read per service call, for fairness among connections (not a
 * multiple of a record: stopping mid-record is normal). */
#define READ_BUDGET (100 * 1024)
/* Reads while lingering. */
#define READS_PER_CALL 16

/* Lifecycle:
 *   CONNECTING -> HANDSHAKE -> OPEN -> ENDING -> LINGER -> DEAD
 * any state may go to ENDING (failure) or DEAD (conn_free, broken
 * transport); ENDING tells the owner (close handler) once. */
enum state { S_CONNECTING, S_HANDSHAKE, S_OPEN, S_ENDING, S_LINGER, S_DEAD };
enum mode { M_HTTP, M_WS_WAIT, M_WS };

struct listener {
	struct loop *loop;
	int fd;
	struct tls_config *tls;
	const struct conn_handlers *h;
	void *arg;
	struct listener_opts o;
	int hs;     /* conns in handshake */
	int refs;   /* 1 for the owner + one per conn in handshake */
	int paused; /* not watching the socket */
	long long t_resume;
	unsigned long accepted;
};

struct conn {
	struct loop *loop;
	const struct conn_handlers *h;
	void *arg;
	struct tls_conn *tls;
	struct http_parser *http; /* NULL once in WebSocket mode */
	struct ws *ws;
	struct listener *lst; /* server, while in handshake */
	char *host;	      /* client: Host header value */
	char *ws_key;	      /* client: awaiting the 101 */
	char *end_reason;
	int *freed_flag; /* conn_request_sync learns the free */
	struct buf in;	 /* HTTP bytes not consumed yet */
	struct buf out;	 /* plaintext to write */
	size_t wlen;	 /* length of a tls_write to repeat */
	long long t_deadline, t_idle, t_wake, t_beat;
	long long last_rx;
	int idle_ms, beat_ms;
	int fd;
	int end_code;
	int mask;
	unsigned char state, mode, linger_phase;
	unsigned server : 1, ready_called : 1, owner_done : 1, outstanding : 1, close_after : 1,
		broken : 1, hs_done : 1, rd_wants_write : 1, wr_wants_read : 1, wr_blocked : 1,
		pending : 1, drain_pending : 1, reset_pending : 1, ping_wait : 1;
	unsigned short busy;
	char *err; /* the last failed call's reason */
	char peer[NET_ADDRSTRLEN];
};

static void service(struct conn *c);
static void listener_hs_done(struct listener *l);

/* --- helpers ---------------------------------------------------------------- */

static void set_err(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct conn *c, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	free(c->err);
	c->err = buf_detach(&b, NULL);
}

static void wake_cb(struct loop *loop, long long id, void *arg, int mask)
{
	(void)loop;
	(void)id;
	(void)mask;
	struct conn *c = arg;
	c->t_wake = 0;
	service(c);
}

/* Run service() from the loop soon (owner calls never run handlers). */
static void wake(struct conn *c)
{
	if (!c->t_wake && c->state != S_DEAD)
		c->t_wake = loop_timer_add(c->loop, 0, wake_cb, c);
}

static void cancel(struct conn *c, long long *t)
{
	if (*t)
		loop_timer_cancel(c->loop, *t);
	*t = 0;
}

static void destroy(struct conn *c)
{
	cancel(c, &c->t_deadline);
	cancel(c, &c->t_idle);
	cancel(c, &c->t_wake);
	cancel(c, &c->t_beat);
	if (c->lst) {
		listener_hs_done(c->lst);
		c->lst = NULL;
	}
	if (c->fd >= 0) {
		loop_del_fd(c->loop, c->fd);
		close(c->fd);
	}
	tls_conn_free(c->tls);
	http_free(c->http);
	ws_free(c->ws);
	buf_release(&c->in);
	buf_release(&c->out);
	free(c->host);
	free(c->ws_key);
	free(c->end_reason);
	free(c->err);
	if (c->freed_flag)
		*c->freed_flag = 1;
	free(c);
}

/* The connection ends (first reason wins). broken: the transport cannot
 * carry a goodbye, so no linger. */
static void end(struct conn *c, int broken, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void end(struct conn *c, int broken, int code, const char *fmt, ...)
{
	if (c->state >= S_ENDING)
		return;
	char m[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	free(c->end_reason);
	c->end_reason = xstrdup(m);
	c->end_code = c->mode == M_WS && !code ? WS_ABNORMAL : code;
	c->broken = broken;
	c->state = S_ENDING;
	log_debug("conn", "ending", "peer", c->peer, "reason", m, NULL);
}

static void deadline_cb(struct loop *loop, long long id, void *arg, int mask);

static void set_deadline(struct conn *c, int ms)
{
	cancel(c, &c->t_deadline);
	c->t_deadline = loop_timer_add(c->loop, ms, deadline_cb, c);
}

static void start_linger(struct conn *c)
{
	if (c->broken || !c->hs_done || c->fd < 0) {
		c->state = S_DEAD;
		return;
	}
	c->state = S_LINGER;
	c->linger_phase = 0;
	cancel(c, &c->t_idle);
	set_deadline(c, LINGER_MS);
	if (c->pending) {
		loop_fd_pending(c->loop, c->fd, 0);
		c->pending = 0;
	}
}

static int tchar(int ch)
{
	return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int header_ok(const char *name, const char *value)
{
	if (!name || !*name || !value)
		return 0;
	for (const char *p = name; *p; p++)
		if (!tchar((unsigned char)*p))
			return 0;
	for (const unsigned char *p = (const unsigned char *)value; *p; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return 0;
	return 1;
}

/* Append "name: value\r\n" for each pair; -1 (nothing appended) if one is
 * invalid. */
static int add_headers(struct conn *c, struct buf *b, const char *const *headers)
{
	if (!headers)
		return 0;
	for (size_t i = 0; headers[i]; i += 2)
		if (!header_ok(headers[i], headers[i + 1])) {
			set_err(c, "header '%s': invalid name or value", headers[i]);
			return -1;
		}
	for (size_t i = 0; headers[i]; i += 2)
		buf_printf(b, "%s: %s\r\n", headers[i], headers[i + 1]);
	return 0;
}

/* --- transport ---------------------------------------------------------------- */

static ssize_t ws_write_h(void *arg, const void *data, size_t len)
{
	struct conn *c = arg;
	if (c->state == S_DEAD)
		return -1;
	size_t room = c->out.len < OUT_MAX ? OUT_MAX - c->out.len : 0;
	if (len > room)
		len = room;
	buf_add(&c->out, data, len);
	return (ssize_t)len;
}

static void ws_message_h(void *arg, enum ws_type type, const void *data, size_t len)
{
	struct conn *c = arg;
	if (!c->owner_done && c->state == S_OPEN && c->h && c->h->message)
		c->h->message(c, c->arg, type, data, len);
}

static void ws_pong_h(void *arg, uint64_t rtt_us)
{
	struct conn *c = arg;
	c->ping_wait = 0;
	if (!c->owner_done && c->state == S_OPEN && c->h && c->h->pong)
		c->h->pong(c, c->arg, rtt_us);
}

static void ws_close_h(void *arg, int code, const char *reason)
{
	struct conn *c = arg;
	end(c, 0, code ? code : WS_NO_STATUS, "websocket closed: %d%s%s", code, *reason ? " " : "",
	    reason);
}

static void ws_drain_h(void *arg)
{
	struct conn *c = arg;
	c->drain_pending = 1;
}

static const struct ws_handlers ws_h = {
	.write = ws_write_h,
	.message = ws_message_h,
	.pong = ws_pong_h,
	.close = ws_close_h,
	.drain = ws_drain_h,
};

/* Write queued plaintext (and what ws has queued) as far as the socket
 * takes it. -1 when the transport failed (the conn is ending). */
static int flush(struct conn *c)
{
	for (;;) {
		while (c->out.len) {
			size_t n = c->wlen ? c->wlen : (c->out.len < CHUNK ? c->out.len : CHUNK);
			ssize_t r;
			if (c->tls) {
				r = tls_write(c->tls, c->out.data, n);
			} else {
				r = send(c->fd, c->out.data, n, MSG_NOSIGNAL);
				if (r < 0)
					r = errno == EAGAIN || errno == EINTR ? TLS_WANT_WRITE
									      : TLS_ERROR;
			}
			if (r > 0) {
				buf_consume(&c->out, (size_t)r);
				c->wlen = 0;
				c->wr_blocked = c->wr_wants_read = 0;
				continue;
			}
			if (r == TLS_WANT_WRITE || r == TLS_WANT_READ) {
				c->wlen = n;
				if (r == TLS_WANT_WRITE)
					c->wr_blocked = 1;
				else
					c->wr_wants_read = 1;
				return 0;
			}
			end(c, 1, 0, "%s", c->tls ? tls_error(c->tls) : strerror(errno));
			return -1;
		}
		c->wr_blocked = c->wr_wants_read = 0;
		if (c->out.cap)
			buf_release(&c->out);
		if (!c->ws || !ws_want_write(c->ws))
			return 0;
		if (ws_flush(c->ws) < 0) {
			end(c, 1, 0, "websocket write failed");
			return -1;
		}
		if (!c->out.len)
			return 0;
	}
}

/* --- input ---------------------------------------------------------------------- */

static void reply_parse_error(struct conn *c)
{
	int status = http_error_status(c->http);
	struct buf body = BUF_INIT;
	buf_puts(&body, "{\"error\":");
	buf_json_cstr(&body, http_error(c->http));
	buf_puts(&body, "}");
	buf_printf(&c->out,
		   "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		   "Connection: close\r\n\r\n",
		   status, http_status_text(status), body.len);
	buf_add(&c->out, body.data, body.len);
	buf_release(&body);
	c->close_after = 1;
	free(c->end_reason);
	c->end_reason = xstrdup(http_error(c->http));
}

static void become_ws(struct conn *c, enum ws_role role)
{
	c->ws = ws_new(role, &ws_h, c);
	c->mode = M_WS;
}

/* Feed buffered bytes to the ws after an upgrade. */
static void feed_ws(struct conn *c, const void *data, size_t len)
{
	if (ws_feed(c->ws, data, len) < 0)
		end(c, 1, WS_ABNORMAL, "websocket: %s", ws_error(c->ws));
}

/* The parser is reset only once the handler that saw the last message has
 * returned, so the owner may read it after answering. */
static void http_next(struct conn *c)
{
	if (c->reset_pending && c->http) {
		http_reset(c->http);
		c->reset_pending = 0;
	}
}

/* Parse HTTP from c->in while allowed. */
static void process_in(struct conn *c)
{
	while (c->state == S_OPEN && c->in.len && c->mode != M_WS) {
		if (c->server && (c->outstanding || c->close_after || c->out.len >= OUT_MAX))
			return;
		http_next(c);
		size_t used = 0;
		int r = http_parse(c->http, c->in.data, c->in.len, &used);
		buf_consume(&c->in, used);
		if (r == HTTP_MORE)
			return;
		if (r == HTTP_ERROR) {
			if (c->server)
				reply_parse_error(c);
			else
				end(c, 1, 0, "http response: %s", http_error(c->http));
			return;
		}
		if (c->server) {
			c->outstanding = 1;
			if (!c->owner_done && c->h && c->h->request)
				c->h->request(c, c->arg, c->http);
			else
				conn_reply_error(c, 404, "not found");
			continue;
		}
		if (!c->outstanding) {
			end(c, 1, 0, "http response: unexpected response");
			return;
		}
		c->outstanding = 0;
		if (c->mode == M_WS_WAIT) {
			char err[200];
			if (http_status(c->http) != 101) {
				size_t n;
				const char *b = http_body(c->http, &n);
				end(c, 0, 0, "websocket upgrade refused: %d %s%s%.*s",
				    http_status(c->http), http_reason(c->http), n ? ": " : "",
				    n > 200 ? 200 : (int)n, b);
				return;
			}
			if (ws_client_verify(c->http, c->ws_key, err, sizeof(err)) < 0) {
				end(c, 0, 0, "%s", err);
				return;
			}
			free(c->ws_key);
			c->ws_key = NULL;
			become_ws(c, WS_CLIENT);
			if (!c->owner_done && c->h && c->h->upgraded)
				c->h->upgraded(c, c->arg);
			continue;
		}
		int keep = http_keep_alive(c->http);
		if (!c->owner_done && c->h && c->h->response)
			c->h->response(c, c->arg, c->http);
		if (c->state != S_OPEN)
			return;
		if (!keep) {
			end(c, 0, 0, "connection closed by server after response");
			return;
		}
		c->reset_pending = 1;
	}
	if (c->state == S_OPEN && c->mode == M_WS && c->in.len) {
		struct buf b = c->in;
		buf_init(&c->in);
		feed_ws(c, b.data, b.len);
		buf_release(&b);
	}
	if (!c->in.len && c->in.cap)
		buf_release(&c->in); /* idle connections hold no buffer */
}

static void input(struct conn *c, const char *data, size_t n)
{
	if (c->mode == M_WS) {
		feed_ws(c, data, n);
		return;
	}
	buf_add(&c->in, data, n);
	process_in(c);
}

static void eof(struct conn *c)
{
	http_next(c);
	if (c->mode == M_HTTP && !c->server && c->outstanding &&
	    http_finish(c->http) == HTTP_DONE) {
		c->outstanding = 0;
		if (!c->owner_done && c->h && c->h->response)
			c->h->response(c, c->arg, c->http);
	}
	end(c, 1, 0, "connection closed by peer");
}

static int reading(const struct conn *c)
{
	if (c->state != S_OPEN)
		return 0;
	if (c->server && c->mode == M_HTTP)
		return !c->outstanding && !c->close_after && c->out.len < OUT_MAX;
	return 1;
}

static void read_some(struct conn *c)
{
	char rbuf[RBUF];
	for (size_t got = 0; got < READ_BUDGET && reading(c);) {
		ssize_t r;
		if (c->tls) {
			r = tls_read(c->tls, rbuf, sizeof(rbuf));
		} else {
			r = read(c->fd, rbuf, sizeof(rbuf));
			if (r < 0)
				r = errno == EAGAIN || errno == EINTR ? TLS_WANT_READ : TLS_ERROR;
		}
		if (r > 0) {
			got += (size_t)r;
			c->last_rx = loop_now_ms();
			c->rd_wants_write = 0;
			input(c, rbuf, (size_t)r);
			continue;
		}
		if (r == 0) {
			eof(c);
		} else if (r == TLS_WANT_WRITE) {
			c->rd_wants_write = 1;
		} else if (r == TLS_ERROR) {
			if (c->tls)
				end(c, 1, 0, "%s", tls_error(c->tls));
			else
				end(c, 1, 0, "read: %s", strerror(errno));
		}
		break;
	}
}

/* --- state machine ------------------------------------------------------------- */

static void idle_cb(struct loop *loop, long long id, void *arg, int mask)
{
	(void)id;
	(void)mask;
	struct conn *c = arg;
	c->t_idle = 0;
	if (c->state != S_OPEN || c->idle_ms <= 0)
		return;
	long long quiet = loop_now_ms() - c->last_rx;
	if (quiet < c->idle_ms) {
		c->t_idle = loop_timer_add(loop, c->idle_ms - quiet, idle_cb, c);
		return;
	}
	end(c, 1, 0, "idle timeout: nothing received for %d ms", c->idle_ms);
	service(c);
}

static void deadline_cb(struct loop *loop, long long id, void *arg, int mask)
{
	(void)loop;
	(void)id;
	(void)mask;
	struct conn *c = arg;
	c->t_deadline = 0;
	switch (c->state) {
	case S_CONNECTING:
		end(c, 1, 0, "connect: timed out");
		break;
	case S_HANDSHAKE:
		end(c, 1, 0, "tls handshake: timed out");
		break;
	case S_OPEN: /* the close handshake */
		end(c, 1, c->ws ? ws_close_code(c->ws) : 0, "websocket close handshake timed out");
		break;
	case S_LINGER:
		c->state = S_DEAD;
		break;
	default:
		break;
	}
	service(c);
}

static void do_handshake(struct conn *c)
{
	int r = c->tls ? tls_handshake(c->tls) : TLS_OK;
	if (r == TLS_WANT_READ || r == TLS_WANT_WRITE) {
		c->rd_wants_write = r == TLS_WANT_WRITE;
		return;
	}
	if (c->lst) {
		listener_hs_done(c->lst);
		c->lst = NULL;
	}
	if (r != TLS_OK) {
		end(c, 1, 0, "%s", tls_error(c->tls));
		return;
	}
	cancel(c, &c->t_deadline);
	c->hs_done = 1;
	c->rd_wants_write = 0;
	c->state = S_OPEN;
	c->last_rx = loop_now_ms();
	if (c->idle_ms > 0)
		c->t_idle = loop_timer_add(c->loop, c->idle_ms, idle_cb, c);
	c->ready_called = 1;
	if (!c->owner_done && c->h && c->h->ready)
		c->h->ready(c, c->arg);
}

static void do_open(struct conn *c)
{
	if (c->mode == M_WS && c->http) {
		http_free(c->http);
		c->http = NULL;
	}
	if (flush(c) < 0)
		return;
	process_in(c);
	if (c->state != S_OPEN)
		return;
	read_some(c);
	if (c->state != S_OPEN)
		return;
	if (flush(c) < 0)
		return;
	if (c->drain_pending) {
		c->drain_pending = 0;
		if (!c->owner_done && c->h && c->h->drain)
			c->h->drain(c, c->arg);
		if (c->state != S_OPEN)
			return;
		if (flush(c) < 0)
			return;
	}
	if (c->close_after && !c->out.len && !c->outstanding) {
		end(c, 0, 0, "%s", c->end_reason ? c->end_reason : "connection closed after reply");
		return;
	}
	/* Parsing stopped while the reply backed up, and the last flush
	 * drained it: nothing on the socket may come to resume it. */
	if (c->in.len && c->mode == M_HTTP && reading(c))
		wake(c);
	int p = c->tls && reading(c) && tls_pending(c->tls) > 0;
	if (p != c->pending) {
		loop_fd_pending(c->loop, c->fd, p);
		c->pending = (unsigned)p;
	}
}

static void do_ending(struct conn *c)
{
	if (!c->owner_done && c->h && c->h->close && (!c->server || c->ready_called)) {
		c->owner_done = 1;
		c->h->close(c, c->arg, c->end_code, c->end_reason);
	}
	c->owner_done = 1;
	if (c->state == S_ENDING)
		start_linger(c);
}

static void do_linger(struct conn *c)
{
	if (c->linger_phase == 0) {
		if (flush(c) < 0) {
			c->state = S_DEAD;
			return;
		}
		if (c->out.len)
			return;
		c->linger_phase = 1;
	}
	if (c->linger_phase == 1) {
		int r = c->tls ? tls_close_notify(c->tls) : TLS_OK;
		if (r == TLS_WANT_WRITE) {
			c->wr_blocked = 1;
			return;
		}
		if (r != TLS_OK) {
			c->state = S_DEAD;
			return;
		}
		shutdown(c->fd, SHUT_WR);
		c->wr_blocked = 0;
		c->linger_phase = 2;
	}
	char rbuf[4096];
	for (int i = 0; i < READS_PER_CALL; i++) {
		ssize_t r = read(c->fd, rbuf, sizeof(rbuf));
		if (r > 0)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		c->state = S_DEAD;
		return;
	}
}

static void update_mask(struct conn *c)
{
	int m = 0;
	switch (c->state) {
	case S_CONNECTING:
		m = LOOP_WRITE;
		break;
	case S_HANDSHAKE:
		m = c->rd_wants_write ? LOOP_WRITE : LOOP_READ;
		break;
	case S_OPEN:
		if (reading(c) || c->wr_wants_read)
			m |= LOOP_READ;
		if ((c->wr_blocked && c->out.len) || c->rd_wants_write)
			m |= LOOP_WRITE;
		break;
	case S_LINGER:
		m = c->linger_phase < 2 && c->wr_blocked ? LOOP_WRITE : LOOP_READ;
		break;
	default:
		return;
	}
	if (m != c->mask) {
		loop_mod_fd(c->loop, c->fd, m);
		c->mask = m;
	}
}

static void service(struct conn *c)
{
	c->busy++;
	for (int i = 0; i < 8; i++) {
		int st = c->state;
		switch (c->state) {
		case S_HANDSHAKE:
			do_handshake(c);
			break;
		case S_OPEN:
			do_open(c);
			break;
		case S_ENDING:
			do_ending(c);
			break;
		case S_LINGER:
			do_linger(c);
			break;
		default:
			break;
		}
		if (c->state == st)
			break;
	}
	if (c->state != S_DEAD)
		update_mask(c);
	c->busy--;
	if (c->state == S_DEAD && !c->busy)
		destroy(c);
}

static void fd_cb(struct loop *loop, long long id, void *arg, int mask)
{
	(void)loop;
	(void)id;
	(void)mask;
	struct conn *c = arg;
	if (c->state == S_CONNECTING) {
		char err[200];
		if (net_connect_result(c->fd, err, sizeof(err)) < 0) {
			end(c, 1, 0, "%s", err);
		} else {
			net_nodelay(c->fd);
			c->state = S_HANDSHAKE;
		}
	}
	service(c);
}

static struct conn *conn_alloc(struct loop *loop, int fd, const struct conn_handlers *h, void *arg)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	c->loop = loop;
	c->fd = fd;
	c->h = h;
	c->arg = arg;
	c->mask = -1;
	buf_init(&c->in);
	buf_init(&c->out);
	return c;
}

/* --- client ---------------------------------------------------------------------- */

struct conn *conn_connect(struct loop *loop, const struct net_addr *addr, struct tls_config *tls,
			  const char *server_name, int timeout_ms, const struct conn_handlers *h,
			  void *arg, char *err, size_t errlen)
{
	int fd = net_connect(addr, err, errlen);
	if (fd < 0)
		return NULL;
	struct conn *c = conn_alloc(loop, fd, h, arg);
	net_addr_str(addr, c->peer, sizeof(c->peer));
	if (loop_add_fd(loop, fd, LOOP_WRITE, fd_cb, c) < 0) {
		snprintf(err, errlen, "connect %s: %s", c->peer, loop_error(loop));
		c->fd = -1;
		close(fd);
		destroy(c);
		return NULL;
	}
	c->mask = LOOP_WRITE;
	c->state = S_CONNECTING;
	c->http = http_new(HTTP_RESPONSE);
	if (server_name) {
		int port = net_addr_port(addr);
		struct buf b = BUF_INIT;
		buf_printf(&b, strchr(server_name, ':') ? "[%s]:%d" : "%s:%d", server_name, port);
		c->host = buf_detach(&b, NULL);
	} else {
		c->host = xstrdup(c->peer);
	}
	if (tls) {
		c->tls = tls_conn_new(tls, fd);
		if (server_name && tls_conn_set_server_name(c->tls, server_name) < 0) {
			snprintf(err, errlen, "connect %s: invalid server name '%s'", c->peer,
				 server_name);
			destroy(c);
			return NULL;
		}
	}
	set_deadline(c, timeout_ms > 0 ? timeout_ms : DEFAULT_CONNECT_MS);
	return c;
}

int conn_request(struct conn *c, const char *method, const char *target,
		 const char *const *headers, const void *body, size_t len)
{
	if (c->server || c->mode != M_HTTP || c->state > S_OPEN) {
		set_err(c, "request: connection not ready for http");
		return -1;
	}
	if (c->outstanding) {
		set_err(c, "request: a request is in progress");
		return -1;
	}
	struct buf b = BUF_INIT;
	if (http_write_request_head(&b, method, target, "Host", c->host, NULL) < 0) {
		set_err(c, "request: invalid method or target '%s'", target);
		buf_release(&b);
		return -1;
	}
	buf_truncate(&b, b.len - 2);
	if (add_headers(c, &b, headers) < 0) {
		buf_release(&b);
		return -1;
	}
	if (len || (strcmp(method, "GET") && strcmp(method, "HEAD") && strcmp(method, "DELETE")))
		buf_printf(&b, "Content-Length: %zu\r\n", len);
	buf_puts(&b, "\r\n");
	if (len)
		buf_add(&b, body, len);
	buf_add(&c->out, b.data, b.len);
	buf_release(&b);
	c->reset_pending = 1;
	http_set_head_request(c->http, strcmp(method, "HEAD") == 0);
	c->outstanding = 1;
	if (c->state == S_OPEN)
		wake(c);
	return 0;
}

int conn_ws_connect(struct conn *c, const char *target, const char *const *headers)
{
	if (c->server || c->mode != M_HTTP || c->state > S_OPEN || c->outstanding) {
		set_err(c, "websocket connect: connection not ready for an upgrade");
		return -1;
	}
	struct buf b = BUF_INIT;
	char key[32];
	if (ws_client_request(&b, c->host, target, key) < 0) {
		set_err(c, "websocket connect: invalid target '%s'", target);
		buf_release(&b);
		return -1;
	}
	buf_truncate(&b, b.len - 2);
	if (add_headers(c, &b, headers) < 0) {
		buf_release(&b);
		return -1;
	}
	buf_puts(&b, "\r\n");
	buf_add(&c->out, b.data, b.len);
	buf_release(&b);
	free(c->ws_key);
	c->ws_key = xstrdup(key);
	c->reset_pending = 1;
	http_set_head_request(c->http, 0);
	c->mode = M_WS_WAIT;
	c->outstanding = 1;
	if (c->state == S_OPEN)
		wake(c);
	return 0;
}

/* --- listener ---------------------------------------------------------------------- */

static void listener_unref(struct listener *l)
{
	if (--l->refs > 0)
		return;
	tls_config_free(l->tls);
	free(l);
}

static void listener_watch(struct listener *l, int on)
{
	if (l->fd < 0 || l->paused == !on)
		return;
	loop_mod_fd(l->loop, l->fd, on ? LOOP_READ : 0);
	l->paused = !on;
}

static void listener_hs_done(struct listener *l)
{
	l->hs--;
	if (l->hs < l->o.max_handshakes && !l->t_resume)
		listener_watch(l, 1);
	listener_unref(l);
}

static void resume_cb(struct loop *loop, long long id, void *arg, int mask)
{
	(void)loop;
	(void)id;
	(void)mask;
	struct listener *l = arg;
	l->t_resume = 0;
	if (l->hs < l->o.max_handshakes)
		listener_watch(l, 1);
}

static void accept_cb(struct loop *loop, long long id, void *arg, int mask)
{
	(void)id;
	(void)mask;
	struct listener *l = arg;
	while (l->hs < l->o.max_handshakes) {
		char peer[NET_ADDRSTRLEN], err[200];
		int fd = net_accept(l->fd, peer, sizeof(peer), err, sizeof(err));
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED) {
				/* EMFILE and friends: level-triggered would spin */
				log_warn("conn", "accept failed", "error", err, NULL);
				listener_watch(l, 0);
				l->t_resume = loop_timer_add(loop, 100, resume_cb, l);
			}
			return;
		}
		net_nodelay(fd); /* small frames (pongs) must not wait for ACKs */
		struct conn *c = conn_alloc(loop, fd, l->h, l->arg);
		snprintf(c->peer, sizeof(c->peer), "%s", peer);
		c->server = 1;
		c->state = S_HANDSHAKE;
		c->http = http_new(HTTP_REQUEST);
		c->idle_ms = l->o.idle_ms;
		if (l->tls)
			c->tls = tls_conn_new(l->tls, fd);
		if (loop_add_fd(loop, fd, LOOP_READ, fd_cb, c) < 0) {
			log_warn("conn", "accept: watch failed", "error", loop_error(loop), NULL);
			destroy(c);
			continue;
		}
		c->mask = LOOP_READ;
		c->lst = l;
		l->refs++;
		l->hs++;
		l->accepted++;
		set_deadline(c, l->o.handshake_ms);
		if (!l->tls)
			wake(c);
	}
	listener_watch(l, 0);
}

struct listener *listener_new(struct loop *loop, const struct net_addr *addr,
			      struct tls_config *tls, const struct listener_opts *o,
			      const struct conn_handlers *h, void *arg, char *err, size_t errlen)
{
	struct listener_opts d = { 0 };
	if (o)
		d = *o;
	if (d.max_handshakes <= 0)
		d.max_handshakes = DEFAULT_MAX_HANDSHAKES;
	if (d.handshake_ms <= 0)
		d.handshake_ms = DEFAULT_HANDSHAKE_MS;
	if (d.idle_ms == 0)
		d.idle_ms = DEFAULT_IDLE_MS;
	int fd = net_listen(addr, d.backlog, err, errlen);
	if (fd < 0)
		return NULL;
	struct listener *l = xcalloc(1, sizeof(*l));
	l->loop = loop;
	l->fd = fd;
	l->o = d;
	l->h = h;
	l->arg = arg;
	l->refs = 1;
	if (loop_add_fd(loop, fd, LOOP_READ, accept_cb, l) < 0) {
		snprintf(err, errlen, "listen: %s", loop_error(loop));
		close(fd);
		free(l);
		return NULL;
	}
	if (tls) {
		l->tls = tls;
		tls_config_ref(tls);
	}
	return l;
}

void listener_free(struct listener *l)
{
	if (!l)
		return;
	if (l->t_resume)
		loop_timer_cancel(l->loop, l->t_resume);
	l->t_resume = 0;
	loop_del_fd(l->loop, l->fd);
	close(l->fd);
	l->fd = -1;
	l->h = NULL;
	listener_unref(l);
}

int listener_local_addr(const struct listener *l, struct net_addr *out)
{
	char err[100];
	return net_local_addr(l->fd, out, err, sizeof(err));
}

int listener_handshakes(const struct listener *l)
{
	return l->hs;
}

unsigned long listener_accepted(const struct listener *l)
{
	return l->accepted;
}

/* --- server replies ------------------------------------------------------------------ */

struct http_parser *conn_current_request(struct conn *c)
{
	return c->server && c->outstanding && c->mode == M_HTTP ? c->http : NULL;
}

static int no_body_status(int status)
{
	return (status >= 100 && status < 200) || status == 204 || status == 304;
}

int conn_reply(struct conn *c, int status, const char *const *headers,
	       const char *content_type, const void *body, size_t len)
{
	if (!conn_current_request(c) || c->state != S_OPEN) {
		set_err(c, "reply: no request awaits an answer");
		return -1;
	}
	if (status < 100 || status > 999) {
		set_err(c, "reply: invalid status %d", status);
		return -1;
	}
	struct buf b = BUF_INIT;
	buf_printf(&b, "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
	if (add_headers(c, &b, headers) < 0) {
		buf_release(&b);
		return -1;
	}
	if (content_type) {
		if (!header_ok("Content-Type", content_type)) {
			set_err(c, "reply: invalid content type");
			buf_release(&b);
			return -1;
		}
		buf_printf(&b, "Content-Type: %s\r\n", content_type);
	}
	if (!no_body_status(status))
		buf_printf(&b, "Content-Length: %zu\r\n", len);
	int keep = http_keep_alive(c->http);
	if (!keep)
		buf_puts(&b, "Connection: close\r\n");
	buf_puts(&b, "\r\n");
	if (len && !no_body_status(status) && strcmp(http_method(c->http), "HEAD") != 0)
		buf_add(&b, body, len);
	buf_add(&c->out, b.data, b.len);
	buf_release(&b);
	c->outstanding = 0;
	if (!keep)
		c->close_after = 1;
	else
		c->reset_pending = 1;
	wake(c);
	return 0;
}

int conn_reply_json(struct conn *c, int status, const char *json)
{
	return conn_reply(c, status, NULL, "application/json", json, strlen(json));
}

int conn_reply_error(struct conn *c, int status, const char *message)
{
	struct buf b = BUF_INIT;
	buf_puts(&b, "{\"error\":");
	buf_json_cstr(&b, message);
	buf_puts(&b, "}");
	int r = conn_reply_json(c, status, b.data);
	buf_release(&b);
	return r;
}

int conn_upgrade(struct conn *c)
{
	if (!conn_current_request(c) || c->state != S_OPEN) {
		set_err(c, "upgrade: no request awaits an answer");
		return -1;
	}
	char err[200];
	c->outstanding = 0;
	wake(c);
	if (ws_server_handshake(c->http, &c->out, err, sizeof(err)) < 0) {
		set_err(c, "upgrade: %s", err);
		c->close_after = 1;
		free(c->end_reason);
		c->end_reason = xstrdup(c->err);
		return -1;
	}
	/* The parser stays until the next service: the owner may still read
	 * the request in its handler. */
	become_ws(c, WS_SERVER);
	return 0;
}

/* --- both sides --------------------------------------------------------------------- */

void conn_set_handlers(struct conn *c, const struct conn_handlers *h, void *arg)
{
	c->h = h;
	c->arg = arg;
}

struct http_limits *conn_http_limits(struct conn *c)
{
	return c->http ? http_limits(c->http) : NULL;
}

void *conn_arg(const struct conn *c)
{
	return c->arg;
}

struct loop *conn_loop(const struct conn *c)
{
	return c->loop;
}

void conn_set_idle_timeout(struct conn *c, int ms)
{
	c->idle_ms = ms > 0 ? ms : 0;
	cancel(c, &c->t_idle);
	if (c->idle_ms && c->state == S_OPEN) {
		c->last_rx = loop_now_ms();
		c->t_idle = loop_timer_add(c->loop, c->idle_ms, idle_cb, c);
	}
}

const char *conn_peer_addr(const struct conn *c)
{
	return c->peer;
}

const char *conn_peer_cn(const struct conn *c)
{
	return c->tls && c->hs_done ? tls_peer_cn(c->tls) : NULL;
}

const char *conn_peer_serial(const struct conn *c)
{
	return c->tls && c->hs_done ? tls_peer_serial(c->tls) : NULL;
}

int conn_is_ws(const struct conn *c)
{
	return c->mode == M_WS;
}

const char *conn_error(const struct conn *c)
{
	return c->err ? c->err : "";
}

static int ws_ready(struct conn *c, const char *what)
{
	if (c->mode != M_WS || c->state != S_OPEN) {
		set_err(c, "%s: %s", what,
			c->mode != M_WS ? "not a websocket connection" : "connection closing");
		return 0;
	}
	return 1;
}

int conn_ws_send(struct conn *c, enum ws_type type, const void *data, size_t len)
{
	if (!ws_ready(c, "websocket send"))
		return -1;
	if (ws_send(c->ws, type, data, len) < 0) {
		set_err(c, "websocket send: %s", ws_error(c->ws));
		return -1;
	}
	wake(c);
	return 0;
}

int conn_ws_send_text(struct conn *c, const char *text)
{
	return conn_ws_send(c, WS_TEXT, text, strlen(text));
}

int conn_ws_ping(struct conn *c)
{
	if (!ws_ready(c, "websocket ping"))
		return -1;
	if (ws_ping(c->ws) < 0) {
		set_err(c, "websocket ping: %s", ws_error(c->ws));
		return -1;
	}
	c->ping_wait = 1;
	wake(c);
	return 0;
}

int conn_ws_close(struct conn *c, int code, const char *reason)
{
	if (!ws_ready(c, "websocket close"))
		return -1;
	if (ws_close(c->ws, code, reason ? reason : "") < 0) {
		set_err(c, "websocket close: %s", ws_error(c->ws));
		return -1;
	}
	set_deadline(c, WS_CLOSE_MS);
	wake(c);
	return 0;
}

static void beat_cb(struct loop *loop, long long id, void *arg, int mask)
{
	(void)id;
	(void)mask;
	struct conn *c = arg;
	c->t_beat = 0;
	if (c->state != S_OPEN)
		return;
	/* No new ping while one is unanswered (its pong would no longer
	 * count), nor when the queue is full: the idle timeout judges. */
	if (!c->ping_wait && ws_ping(c->ws) == 0) {
		c->ping_wait = 1;
		wake(c);
	}
	c->t_beat = loop_timer_add(loop, c->beat_ms, beat_cb, c);
}

int conn_ws_heartbeat(struct conn *c, int interval_ms)
{
	if (!ws_ready(c, "websocket heartbeat"))
		return -1;
	cancel(c, &c->t_beat);
	c->beat_ms = interval_ms > 0 ? interval_ms : 0;
	conn_set_idle_timeout(c, 3 * c->beat_ms);
	if (c->beat_ms)
		c->t_beat = loop_timer_add(c->loop, c->beat_ms, beat_cb, c);
	return 0;
}

size_t conn_ws_queued(const struct conn *c)
{
	return (c->ws ? ws_queued(c->ws) : 0) + c->out.len;
}

void conn_ws_set_max_message(struct conn *c, size_t n)
{
	if (c->ws)
		ws_set_max_message(c->ws, n);
}

void conn_ws_set_max_queue(struct conn *c, size_t n)
{
	if (c->ws)
		ws_set_max_queue(c->ws, n);
}

void conn_close(struct conn *c)
{
	if (!c || c->state == S_DEAD || c->state == S_LINGER)
		return;
	c->owner_done = 1;
	if (c->state == S_OPEN || c->state == S_ENDING)
		start_linger(c);
	else
		c->state = S_DEAD;
	if (c->state == S_DEAD && !c->busy)
		destroy(c);
	else
		wake(c);
}

void conn_free(struct conn *c)
{
	if (!c)
		return;
	c->owner_done = 1;
	c->state = S_DEAD;
	if (!c->busy)
		destroy(c);
}

/* --- synchronous helpers ------------------------------------------------------------- */

struct sync {
	int done, freed, status;
	struct buf *body;
	char *err;
	size_t errlen;
	struct conn *c;
};

static void sync_response(struct conn *c, void *arg, struct http_parser *msg)
{
	struct sync *s = arg;
	size_t n;
	const char *b = http_body(msg, &n);
	s->status = http_status(msg);
	if (s->body)
		buf_add(s->body, b, n);
	s->done = 1;
	conn_close(c);
}

static void sync_close(struct conn *c, void *arg, int code, const char *reason)
{
	(void)c;
	(void)code;
	struct sync *s = arg;
	snprintf(s->err, s->errlen, "%s", reason);
	s->done = -1;
}

static void sync_timeout(struct loop *loop, long long id, void *arg, int mask)
{
	(void)loop;
	(void)id;
	(void)mask;
	struct sync *s = arg;
	if (s->done)
		return;
	snprintf(s->err, s->errlen, "timed out");
	s->done = -1;
	conn_free(s->c);
}

static const struct conn_handlers sync_h = {
	.response = sync_response,
	.close = sync_close,
};

int conn_request_sync(const struct net_addr *addr, struct tls_config *tls, const char *server_name,
		      const char *method, const char *target, const char *const *headers,
		      const void *req_body, size_t req_len, int *status, struct buf *body,
		      int timeout_ms, char *err, size_t errlen)
{
	char text[NET_ADDRSTRLEN], m[300];
	struct sync s = { .body = body, .err = m, .errlen = sizeof(m) };
	net_addr_str(addr, text, sizeof(text));
	struct loop *loop = loop_new(0, m, sizeof(m));
	if (!loop) {
		snprintf(err, errlen, "%s %s: %s", method, target, m);
		return -1;
	}
	const char *scheme = tls ? "https" : "http";
	s.c = conn_connect(loop, addr, tls, server_name, timeout_ms, &sync_h, &s, m, sizeof(m));
	if (!s.c) {
		snprintf(err, errlen, "%s %s://%s%s: %s", method, scheme, text, target, m);
		loop_free(loop);
		return -1;
	}
	s.c->freed_flag = &s.freed;
	if (conn_request(s.c, method, target, headers, req_body, req_len) < 0) {
		snprintf(err, errlen, "%s %s://%s%s: %s", method, scheme, text, target,
			 conn_error(s.c));
		conn_free(s.c);
		loop_free(loop);
		return -1;
	}
	long long t = loop_timer_add(loop, timeout_ms > 0 ? timeout_ms : SYNC_TIMEOUT_MS,
				     sync_timeout, &s);
	while (!s.freed)
		if (loop_run_once(loop, -1) < 0) {
			if (!s.done) {
				snprintf(m, sizeof(m), "loop: %s", loop_error(loop));
				s.done = -1;
			}
			if (!s.freed)
				conn_free(s.c);
		}
	loop_timer_cancel(loop, t);
	loop_free(loop);
	if (s.done != 1) {
		snprintf(err, errlen, "%s %s://%s%s: %s", method, scheme, text, target, m);
		return -1;
	}
	*status = s.status;
	return 0;
}

char *conn_fetch_pinned_ca(const struct net_addr *addr, const char *pin, int timeout_ms,
			   char *err, size_t errlen)
{
	struct tls_config *tls = tls_config_new_client_insecure(err, errlen);
	if (!tls)
		return NULL;
	struct buf body = BUF_INIT;
	int status = 0;
	int r = conn_request_sync(addr, tls, NULL, "GET", "/v1/ca", NULL, NULL, 0, &status, &body,
				  timeout_ms, err, errlen);
	tls_config_free(tls);
	if (r < 0)
		goto fail;
	if (status != 200) {
		snprintf(err, errlen, "fetch ca: base answered %d", status);
		goto fail;
	}
	char fp[PKI_FINGERPRINT_LEN + 1], want[PKI_FINGERPRINT_LEN + 1] = "";
	char m[200];
	if (pki_cert_fingerprint(body.data, fp, m, sizeof(m)) < 0) {
		snprintf(err, errlen, "fetch ca: %s", m);
		goto fail;
	}
	size_t n = strlen(pin);
	for (size_t i = 0; i < n && i < PKI_FINGERPRINT_LEN; i++)
		want[i] = (char)tolower((unsigned char)pin[i]);
	want[n < PKI_FINGERPRINT_LEN ? n : PKI_FINGERPRINT_LEN] = 0;
	if (n != PKI_FINGERPRINT_LEN || !crypt_equal(want, fp, PKI_FINGERPRINT_LEN)) {
		snprintf(err, errlen, "ca fingerprint mismatch: expected %s, base presented %s", pin,
			 fp);
		goto fail;
	}
	return buf_detach(&body, NULL);
fail:
	buf_release(&body);
	return NULL;
}
