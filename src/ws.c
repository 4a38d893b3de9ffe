#include "ws.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <wslay/wslay.h>

#include "b64.h"
#include "crypt.h"
#include "xalloc.h"

struct ws {
	wslay_event_context_ptr ctx;
	struct ws_handlers h;
	void *arg;
	size_t max_queue;

	const unsigned char *in; /* bytes of the current ws_feed() */
	size_t inlen;
	int in_feed;       /* inside wslay_event_recv: defer writing */
	size_t progress;   /* bytes the transport took in one wslay_event_send */
	int write_failed;
	int blocked; /* the transport refused bytes since the queue last drained */

	uint64_t ping_id, ping_ns;
	int ping_out;

	int closed, close_code;
	int close_recv_code; /* code and reason of the peer's close frame */
	char close_recv_reason[124];
	char close_reason[124];
	char err[128];
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Unpredictable bytes for masks and handshake keys. */
static int random_bytes(void *out, size_t n)
{
	unsigned char *p = out;
	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		p += r;
		n -= (size_t)r;
	}
	if (n == 0)
		return 0;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		p += r;
		n -= (size_t)r;
	}
	close(fd);
	return n == 0 ? 0 : -1;
}

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
		       void *user)
{
	struct ws *ws = user;
	if (ws->inlen == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	size_t n = len < ws->inlen ? len : ws->inlen;
	memcpy(buf, ws->in, n);
	ws->in += n;
	ws->inlen -= n;
	return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
		       void *user)
{
	struct ws *ws = user;
	ssize_t r = ws->h.write(ws->arg, data, len);
	if (r < 0) {
		ws->write_failed = 1;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	if (r == 0) {
		ws->blocked = 1;
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if ((size_t)r > len)
		r = (ssize_t)len;
	ws->progress += (size_t)r;
	return r;
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
	if (random_bytes(buf, len) == 0)
		return 0;
	wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

static void msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
		   void *user)
{
	struct ws *ws = user;
	switch (a->opcode) {
	case WSLAY_TEXT_FRAME:
	case WSLAY_BINARY_FRAME:
		if (ws->h.message) {
			/* wslay's buffer has no terminator: copy to add one */
			char *copy = xmalloc(a->msg_length + 1);
			if (a->msg_length)
				memcpy(copy, a->msg, a->msg_length);
			copy[a->msg_length] = 0;
			ws->h.message(ws->arg, a->opcode == WSLAY_TEXT_FRAME ? WS_TEXT : WS_BINARY,
				      copy, a->msg_length);
			free(copy);
		}
		break;
	case WSLAY_PONG:
		if (ws->ping_out && a->msg_length == 8) {
			uint64_t id = 0;
			for (int i = 0; i < 8; i++)
				id = id << 8 | a->msg[i];
			if (id == ws->ping_id) {
				ws->ping_out = 0;
				if (ws->h.pong)
					ws->h.pong(ws->arg, (now_ns() - ws->ping_ns) / 1000);
			}
		}
		break;
	case WSLAY_CONNECTION_CLOSE: {
		ws->close_recv_code = a->status_code ? a->status_code : WS_NO_STATUS;
		size_t n = a->msg_length > 2 ? a->msg_length - 2 : 0;
		if (n >= sizeof(ws->close_recv_reason))
			n = sizeof(ws->close_recv_reason) - 1;
		if (n)
			memcpy(ws->close_recv_reason, a->msg + 2, n);
		ws->close_recv_reason[n] = 0;
		break;
	}
	default:
		break;
	}
}

static const char *local_reason(int code)
{
	switch (code) {
	case WS_PROTOCOL_ERROR:
		return "protocol error";
	case WS_INVALID_DATA:
		return "invalid utf-8 in a text message";
	case WS_TOO_BIG:
		return "message too big";
	default:
		return "";
	}
}

/* Run the close handler once the connection is over. */
static void finish(struct ws *ws, int code, const char *reason)
{
	if (ws->closed)
		return;
	ws->closed = 1;
	ws->close_code = code;
	snprintf(ws->close_reason, sizeof(ws->close_reason), "%s", reason);
	if (ws->h.close)
		ws->h.close(ws->arg, code, ws->close_reason);
}

static void check_closed(struct ws *ws)
{
	if (ws->closed || wslay_event_want_read(ws->ctx) || wslay_event_want_write(ws->ctx))
		return;
	/* wslay_event_want_write is 0 once the close frame went out; a close
	 * still queued behind a blocked transport keeps us open. */
	if (!wslay_event_get_close_sent(ws->ctx) && wslay_event_get_queued_msg_count(ws->ctx))
		return;
	if (ws->close_recv_code)
		finish(ws, ws->close_recv_code, ws->close_recv_reason);
	else {
		int code = wslay_event_get_status_code_sent(ws->ctx);
		if (code == WS_PROTOCOL_ERROR || code == WS_INVALID_DATA || code == WS_TOO_BIG)
			snprintf(ws->err, sizeof(ws->err), "peer sent bad data: %s",
				 local_reason(code));
		finish(ws, code ? code : WS_NO_STATUS, ws->close_reason[0] ? ws->close_reason
									   : local_reason(code));
	}
}

static int transport_failed(struct ws *ws)
{
	snprintf(ws->err, sizeof(ws->err), "websocket write failed");
	wslay_event_shutdown_read(ws->ctx);
	wslay_event_shutdown_write(ws->ctx);
	finish(ws, WS_ABNORMAL, "write failed");
	return -1;
}

struct ws *ws_new(enum ws_role role, const struct ws_handlers *h, void *arg)
{
	struct ws *ws = xcalloc(1, sizeof(*ws));
	struct wslay_event_callbacks cb = {
		.recv_callback = recv_cb,
		.send_callback = send_cb,
		.genmask_callback = genmask_cb,
		.on_msg_recv_callback = msg_cb,
	};
	int r = role == WS_SERVER ? wslay_event_context_server_init(&ws->ctx, &cb, ws)
				  : wslay_event_context_client_init(&ws->ctx, &cb, ws);
	if (r != 0) {
		fprintf(stderr, "out of memory\n");
		abort();
	}
	ws->h = *h;
	ws->arg = arg;
	ws->max_queue = 4u << 20;
	wslay_event_config_set_max_recv_msg_length(ws->ctx, 1u << 20);
	return ws;
}

void ws_free(struct ws *ws)
{
	if (!ws)
		return;
	wslay_event_context_free(ws->ctx);
	free(ws);
}

void ws_set_max_message(struct ws *ws, size_t n)
{
	wslay_event_config_set_max_recv_msg_length(ws->ctx, n);
}

void ws_set_max_queue(struct ws *ws, size_t n)
{
	ws->max_queue = n;
}

int ws_flush(struct ws *ws)
{
	if (ws->in_feed || ws->closed)
		return 0;
	while (wslay_event_want_write(ws->ctx)) {
		ws->progress = 0;
		int r = wslay_event_send(ws->ctx);
		if (r != 0 || ws->write_failed)
			return transport_failed(ws);
		if (ws->progress == 0)
			break;
	}
	if (ws->blocked && !wslay_event_want_write(ws->ctx)) {
		ws->blocked = 0;
		if (ws->h.drain)
			ws->h.drain(ws->arg);
	}
	check_closed(ws);
	return 0;
}

int ws_feed(struct ws *ws, const void *data, size_t len)
{
	if (ws->closed)
		return 0;
	ws->in = data;
	ws->inlen = len;
	ws->in_feed = 1;
	int r = wslay_event_recv(ws->ctx);
	ws->in_feed = 0;
	ws->in = NULL;
	ws->inlen = 0;
	if (r != 0)
		return transport_failed(ws);
	if (wslay_event_get_queued_msg_length(ws->ctx) > ws->max_queue) {
		/* only automatic answers (pongs) pass the limit: the peer sends
		 * pings without reading */
		snprintf(ws->err, sizeof(ws->err), "peer does not read its pongs");
		wslay_event_shutdown_read(ws->ctx);
		wslay_event_shutdown_write(ws->ctx);
		finish(ws, WS_POLICY, "write queue full");
		return -1;
	}
	return ws_flush(ws);
}

static int closing(struct ws *ws)
{
	if (ws->closed || !wslay_event_get_write_enabled(ws->ctx) ||
	    wslay_event_get_close_sent(ws->ctx) || ws->close_recv_code) {
		snprintf(ws->err, sizeof(ws->err), "websocket is closing");
		return 1;
	}
	return 0;
}

static int queue(struct ws *ws, uint8_t opcode, const void *data, size_t len)
{
	struct wslay_event_msg m = {.opcode = opcode, .msg = data, .msg_length = len};
	if (wslay_event_queue_msg(ws->ctx, &m) != 0) {
		snprintf(ws->err, sizeof(ws->err), "websocket is closing");
		return -1;
	}
	return ws_flush(ws);
}

static int utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t len;
		uint32_t cp, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return 0;
		}
		if (n - i < len)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

int ws_send(struct ws *ws, enum ws_type type, const void *data, size_t len)
{
	if (closing(ws))
		return -1;
	if (type == WS_TEXT && !utf8_valid(data, len)) {
		snprintf(ws->err, sizeof(ws->err), "websocket text message is not valid utf-8");
		return -1;
	}
	size_t q = wslay_event_get_queued_msg_length(ws->ctx);
	if (len > ws->max_queue || q > ws->max_queue - len) {
		snprintf(ws->err, sizeof(ws->err), "websocket write queue full (%zu bytes queued)", q);
		return -1;
	}
	return queue(ws, type == WS_TEXT ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME, data, len);
}

int ws_ping(struct ws *ws)
{
	if (closing(ws))
		return -1;
	uint8_t p[8];
	ws->ping_id++;
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(ws->ping_id >> (56 - 8 * i));
	ws->ping_ns = now_ns();
	ws->ping_out = 1;
	return queue(ws, WSLAY_PING, p, sizeof(p));
}

int ws_close(struct ws *ws, int code, const char *reason)
{
	size_t n = reason ? strlen(reason) : 0;
	if (code < 1000 || code > 4999 || code == WS_NO_STATUS || code == WS_ABNORMAL ||
	    n > 123) {
		snprintf(ws->err, sizeof(ws->err), "websocket close code %d or reason is invalid",
			 code);
		return -1;
	}
	if (closing(ws))
		return -1;
	if (wslay_event_queue_close(ws->ctx, (uint16_t)code, (const uint8_t *)reason, n) != 0) {
		snprintf(ws->err, sizeof(ws->err), "websocket is closing");
		return -1;
	}
	snprintf(ws->close_reason, sizeof(ws->close_reason), "%s", reason ? reason : "");
	return ws_flush(ws);
}

int ws_want_write(const struct ws *ws)
{
	return !ws->closed && wslay_event_want_write(ws->ctx);
}

size_t ws_queued(const struct ws *ws)
{
	return wslay_event_get_queued_msg_length(ws->ctx);
}

int ws_closed(const struct ws *ws)
{
	return ws->closed;
}

int ws_close_code(const struct ws *ws)
{
	return ws->close_code;
}

const char *ws_close_reason(const struct ws *ws)
{
	return ws->closed ? ws->close_reason : "";
}

const char *ws_error(const struct ws *ws)
{
	return ws->err;
}

static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void ws_accept_key(char *out, const char *key)
{
	struct buf b = BUF_INIT;
	uint8_t d[CRYPT_SHA1_LEN];
	buf_puts(&b, key);
	buf_puts(&b, guid);
	crypt_sha1(b.data, b.len, d);
	buf_release(&b);
	b64_encode(out, d, sizeof(d));
}

static int valid_key(const char *key)
{
	unsigned char raw[18];
	size_t n;
	return key && strlen(key) == 24 && b64_decode(raw, sizeof(raw), key, 24, &n) == 0 && n == 16;
}

int ws_server_handshake(const struct http_parser *req, struct buf *out, char *err, size_t errlen)
{
	const char *why = NULL;
	int status = 400;
	const char *key = http_header(req, "sec-websocket-key");
	const char *version = http_header(req, "sec-websocket-version");
	const char *method = http_method(req);
	if (!method || strcmp(method, "GET") != 0)
		why = "method is not GET";
	else if (http_minor(req) != 1)
		why = "http version is not 1.1";
	else if (!http_header_has_token(req, "upgrade", "websocket"))
		why = "no 'Upgrade: websocket' header";
	else if (!http_header_has_token(req, "connection", "upgrade"))
		why = "no 'upgrade' token in the Connection header";
	else if (!version || strcmp(version, "13") != 0) {
		why = "sec-websocket-version is not 13";
		status = 426;
	} else if (!valid_key(key))
		why = "sec-websocket-key is not 16 bytes of base64";
	if (why) {
		snprintf(err, errlen, "websocket upgrade: %s", why);
		if (status == 426)
			http_write_response_head(out, 426, "Sec-WebSocket-Version", "13", "Connection",
						 "close", "Content-Length", "0", NULL);
		else
			http_write_response_head(out, 400, "Connection", "close", "Content-Length",
						 "0", NULL);
		return -1;
	}
	char accept[29];
	ws_accept_key(accept, key);
	http_write_response_head(out, 101, "Upgrade", "websocket", "Connection", "Upgrade",
				 "Sec-WebSocket-Accept", accept, NULL);
	return 0;
}

int ws_client_request(struct buf *out, const char *host, const char *target, char *key)
{
	unsigned char raw[16];
	if (random_bytes(raw, sizeof(raw)) != 0)
		return -1;
	b64_encode(key, raw, sizeof(raw));
	return http_write_request_head(out, "GET", target, "Host", host, "Upgrade", "websocket",
				       "Connection", "Upgrade", "Sec-WebSocket-Key", key,
				       "Sec-WebSocket-Version", "13", NULL);
}

int ws_client_verify(const struct http_parser *resp, const char *key, char *err, size_t errlen)
{
	char want[29];
	const char *accept = http_header(resp, "sec-websocket-accept");
	const char *why = NULL;
	ws_accept_key(want, key);
	if (http_status(resp) != 101)
		why = "status is not 101";
	else if (!http_header_has_token(resp, "upgrade", "websocket"))
		why = "no 'Upgrade: websocket' header";
	else if (!http_header_has_token(resp, "connection", "upgrade"))
		why = "no 'upgrade' token in the Connection header";
	else if (!accept || strcmp(accept, want) != 0)
		why = "sec-websocket-accept does not match the key";
	else if (http_header(resp, "sec-websocket-extensions") ||
		 http_header(resp, "sec-websocket-protocol"))
		why = "server chose an extension or subprotocol that was not offered";
	if (!why)
		return 0;
	if (http_status(resp) != 101 && !strcmp(why, "status is not 101"))
		snprintf(err, errlen, "websocket upgrade: status %d is not 101", http_status(resp));
	else
		snprintf(err, errlen, "websocket upgrade: %s", why);
	return -1;
}
