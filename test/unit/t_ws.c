#include "ws.h"

#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "http.h"
#include "xalloc.h"

/* One side of an in-memory connection: what it writes lands in out. */
struct end {
	struct ws *ws;
	struct buf out;
	size_t accept_max; /* per write call; 0: unlimited */
	int blocked;       /* the transport takes nothing */
	int echo;          /* send every message back */
	int nmsg, last_type;
	struct buf last;
	int nclose, close_code;
	char close_reason[128];
	int npong, ndrain;
};

static ssize_t end_write(void *arg, const void *data, size_t len)
{
	struct end *e = arg;
	if (e->blocked)
		return 0;
	if (e->accept_max && len > e->accept_max)
		len = e->accept_max;
	buf_add(&e->out, data, len);
	return (ssize_t)len;
}

static void end_message(void *arg, enum ws_type type, const void *data, size_t len)
{
	struct end *e = arg;
	e->nmsg++;
	e->last_type = type;
	buf_reset(&e->last);
	buf_add(&e->last, data, len);
	if (((const char *)data)[len] != 0)
		harness_fail(__FILE__, __LINE__, "message not terminated");
	if (e->echo)
		ws_send(e->ws, type, data, len);
}

static void end_pong(void *arg, uint64_t rtt_us)
{
	struct end *e = arg;
	e->npong++;
}

static void end_close(void *arg, int code, const char *reason)
{
	struct end *e = arg;
	e->nclose++;
	e->close_code = code;
	snprintf(e->close_reason, sizeof(e->close_reason), "%s", reason);
}

static void end_drain(void *arg)
{
	struct end *e = arg;
	e->ndrain++;
}

static const struct ws_handlers handlers = {end_write, end_message, end_pong, end_close, end_drain};

static void end_init(struct end *e, enum ws_role role)
{
	memset(e, 0, sizeof(*e));
	buf_init(&e->out);
	buf_init(&e->last);
	e->ws = ws_new(role, &handlers, e);
}

static void end_release(struct end *e)
{
	ws_free(e->ws);
	buf_release(&e->out);
	buf_release(&e->last);
}

/* Deliver what each side wrote to the other until both are quiet. */
static void pump(struct end *a, struct end *b)
{
	for (int round = 0; round < 100000; round++) {
		if (a->out.len == 0 && b->out.len == 0)
			return;
		struct buf t = a->out;
		buf_init(&a->out);
		ws_feed(b->ws, t.data, t.len);
		buf_release(&t);
		t = b->out;
		buf_init(&b->out);
		ws_feed(a->ws, t.data, t.len);
		buf_release(&t);
	}
	harness_fail(__FILE__, __LINE__, "pump did not settle");
}

/* Append one frame; mask (client to server) with a fixed key when masked. */
static void frame(struct buf *b, int fin, int opcode, int masked, const void *data, size_t len)
{
	const unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};
	buf_putc(b, (fin ? 0x80 : 0) | opcode);
	int m = masked ? 0x80 : 0;
	if (len < 126) {
		buf_putc(b, m | (int)len);
	} else {
		buf_putc(b, m | 126);
		buf_putc(b, (int)(len >> 8));
		buf_putc(b, (int)(len & 0xff));
	}
	if (masked)
		buf_add(b, key, 4);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = ((const unsigned char *)data)[i];
		buf_putc(b, masked ? c ^ key[i % 4] : c);
	}
}

/* The close code in the first close frame (unmasked) found in b, or -1. */
static int sent_close_code(const struct buf *b)
{
	const unsigned char *p = (const unsigned char *)b->data;
	size_t i = 0;
	while (i + 2 <= b->len) {
		int op = p[i] & 0x0f;
		size_t len = p[i + 1] & 0x7f, hdr = 2;
		if (len == 126) {
			len = (size_t)p[i + 2] << 8 | p[i + 3];
			hdr = 4;
		}
		if (op == 8 && len >= 2)
			return p[i + hdr] << 8 | p[i + hdr + 1];
		i += hdr + len;
	}
	return -1;
}

TEST(ws_accept_key_rfc6455_example)
{
	char out[29];
	ws_accept_key(out, "dGhlIHNhbXBsZSBub25jZQ==");
	CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	/* a key long enough to need a second SHA-1 padding block */
	ws_accept_key(out, "x3JJHMbDL1EzLkh9GBhXDw==");
	CHECK_STR(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

static void parse_whole(struct http_parser *p, const struct buf *b)
{
	size_t used;
	int r = http_parse(p, b->data, b->len, &used);
	if (r != HTTP_DONE || used != b->len)
		harness_fail(__FILE__, __LINE__, "parse: r=%d used=%zu of %zu: %s", r, used, b->len,
			     http_error(p));
}

TEST(ws_handshake_round_trip)
{
	struct buf req = BUF_INIT, resp = BUF_INIT;
	char key[25], err[128];
	CHECK_INT(ws_client_request(&req, "base.example", "/agent", key), 0);
	CHECK_INT(strlen(key), 24);
	CHECK(strstr(req.data, "GET /agent HTTP/1.1\r\n") == req.data);
	struct http_parser *p = http_new(HTTP_REQUEST);
	parse_whole(p, &req);
	CHECK_INT(ws_server_handshake(p, &resp, err, sizeof(err)), 0);
	CHECK(strstr(resp.data, "HTTP/1.1 101 Switching Protocols\r\n") == resp.data);
	struct http_parser *q = http_new(HTTP_RESPONSE);
	parse_whole(q, &resp);
	CHECK_INT(ws_client_verify(q, key, err, sizeof(err)), 0);
	/* another key does not verify */
	CHECK_INT(ws_client_verify(q, "dGhlIHNhbXBsZSBub25jZQ==", err, sizeof(err)), -1);
	CHECK(strstr(err, "does not match"));
	/* two random keys differ */
	char key2[25];
	buf_reset(&req);
	CHECK_INT(ws_client_request(&req, "h", "/", key2), 0);
	CHECK(strcmp(key, key2) != 0);
	CHECK_INT(ws_client_request(&req, "h", "no-slash", key2), -1);
	CHECK_INT(ws_client_request(&req, "bad\r\nhost", "/", key2), -1);
	http_free(p);
	http_free(q);
	buf_release(&req);
	buf_release(&resp);
}

static void expect_bad_upgrade(const char *req, int status, const char *why)
{
	struct http_parser *p = http_new(HTTP_REQUEST);
	size_t used;
	struct buf out = BUF_INIT;
	char err[128] = "";
	if (http_parse(p, req, strlen(req), &used) != HTTP_DONE)
		harness_fail(__FILE__, __LINE__, "parse %s: %s", req, http_error(p));
	int r = ws_server_handshake(p, &out, err, sizeof(err));
	char line[32];
	snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
	if (r != -1 || strstr(out.data, line) != out.data || !strstr(err, why))
		harness_fail(__FILE__, __LINE__, "upgrade %s: r=%d err='%s' out='%s'", req, r, err,
			     out.data);
	http_free(p);
	buf_release(&out);
}

TEST(ws_server_handshake_rejects)
{
	const char *ok_tail = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
	char req[512];
	snprintf(req, sizeof(req),
		 "POST / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		 "Sec-WebSocket-Version: 13\r\n%s",
		 ok_tail);
	expect_bad_upgrade(req, 400, "not GET");
	snprintf(req, sizeof(req),
		 "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n%s",
		 ok_tail);
	expect_bad_upgrade(req, 400, "Upgrade");
	snprintf(req, sizeof(req),
		 "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
		 "Sec-WebSocket-Version: 13\r\n%s",
		 ok_tail);
	expect_bad_upgrade(req, 400, "Connection");
	snprintf(req, sizeof(req),
		 "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		 "Sec-WebSocket-Version: 8\r\n%s",
		 ok_tail);
	expect_bad_upgrade(req, 426, "version");
	expect_bad_upgrade("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n\r\n",
			   400, "16 bytes");
	expect_bad_upgrade("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			   "Sec-WebSocket-Version: 13\r\n\r\n",
			   400, "16 bytes");
	/* token matching is case-insensitive and within lists */
	struct http_parser *p = http_new(HTTP_REQUEST);
	const char *good = "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\n"
			   "Connection: keep-alive, UPGRADE\r\nSec-WebSocket-Version: 13\r\n"
			   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
	size_t used;
	CHECK_INT(http_parse(p, good, strlen(good), &used), HTTP_DONE);
	struct buf out = BUF_INIT;
	char err[128];
	CHECK_INT(ws_server_handshake(p, &out, err, sizeof(err)), 0);
	CHECK(strstr(out.data, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
	http_free(p);
	buf_release(&out);
}

TEST(ws_client_verify_rejects)
{
	char err[128];
	const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
	const char *cases[][2] = {
		{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "status 200"},
		{"HTTP/1.1 101 x\r\nConnection: Upgrade\r\n"
		 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
		 "Upgrade"},
		{"HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "accept"},
		{"HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
		 "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
		 "not offered"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct http_parser *p = http_new(HTTP_RESPONSE);
		size_t used;
		int r = http_parse(p, cases[i][0], strlen(cases[i][0]), &used);
		CHECK_INT(r, HTTP_DONE);
		if (ws_client_verify(p, key, err, sizeof(err)) != -1 || !strstr(err, cases[i][1]))
			harness_fail(__FILE__, __LINE__, "case %zu: err='%s'", i, err);
		http_free(p);
	}
}

TEST(ws_pair_messages)
{
	struct end c, s;
	end_init(&c, WS_CLIENT);
	end_init(&s, WS_SERVER);
	s.echo = 1;
	CHECK_INT(ws_send(c.ws, WS_TEXT, "hello", 5), 0);
	/* client frames are masked: the text is not visible on the wire */
	CHECK(c.out.len == 2 + 4 + 5);
	CHECK((unsigned char)c.out.data[1] & 0x80);
	pump(&c, &s);
	CHECK_INT(s.nmsg, 1);
	CHECK_STR(s.last.data, "hello");
	CHECK_INT(s.last_type, WS_TEXT);
	CHECK_INT(c.nmsg, 1);
	CHECK_STR(c.last.data, "hello");

	unsigned char *big = xmalloc(300000);
	for (size_t i = 0; i < 300000; i++)
		big[i] = (unsigned char)(i * 7);
	CHECK_INT(ws_send(c.ws, WS_BINARY, big, 300000), 0);
	CHECK_INT(ws_send(c.ws, WS_BINARY, "", 0), 0);
	pump(&c, &s);
	CHECK_INT(s.nmsg, 3);
	CHECK_INT(c.nmsg, 3);
	CHECK_INT(c.last_type, WS_BINARY);
	CHECK_INT(c.last.len, 0);
	CHECK_INT(s.last.len, 0);
	free(big);
	/* text must be UTF-8 on the way out too */
	CHECK_INT(ws_send(c.ws, WS_TEXT, "\xc3", 1), -1);
	CHECK(strstr(ws_error(c.ws), "utf-8"));
	CHECK_INT(ws_send(c.ws, WS_TEXT, "\xed\xa0\x80", 3), -1); /* a surrogate */
	CHECK_INT(ws_send(c.ws, WS_TEXT, "\xc0\xaf", 2), -1);     /* overlong */
	CHECK_INT(ws_send(c.ws, WS_TEXT, "\xf4\x90\x80\x80", 4), -1); /* > U+10FFFF */
	CHECK_INT(ws_send(c.ws, WS_TEXT, "\xf0\x9f\x98\x80 \xe2\x98\x83", 8), 0);
	CHECK_INT(ws_send(c.ws, WS_BINARY, "\xc3", 1), 0);
	pump(&c, &s);
	CHECK_INT(s.nmsg, 5);
	CHECK(!ws_closed(c.ws) && !ws_closed(s.ws));
	end_release(&c);
	end_release(&s);
}

TEST(ws_fragmented_message_with_ping_between)
{
	struct end s;
	end_init(&s, WS_SERVER);
	struct buf in = BUF_INIT;
	frame(&in, 0, 1, 1, "Hel", 3);
	frame(&in, 1, 9, 1, "pp", 2); /* a ping between fragments */
	frame(&in, 0, 0, 1, "lo, ", 4);
	frame(&in, 1, 0, 1, "w\xc3\xb6rld", 6);
	/* byte by byte: frames split anywhere */
	for (size_t i = 0; i < in.len; i++)
		CHECK_INT(ws_feed(s.ws, in.data + i, 1), 0);
	CHECK_INT(s.nmsg, 1);
	CHECK_STR(s.last.data, "Hello, w\xc3\xb6rld");
	/* the pong answer: unmasked, opcode 10, same payload */
	CHECK_INT(s.out.len, 4);
	CHECK(memcmp(s.out.data, "\x8a\x02pp", 4) == 0);
	end_release(&s);
	buf_release(&in);
}

TEST(ws_ping_pong_latency)
{
	struct end c, s;
	end_init(&c, WS_CLIENT);
	end_init(&s, WS_SERVER);
	CHECK_INT(ws_ping(c.ws), 0);
	pump(&c, &s);
	CHECK_INT(c.npong, 1);
	/* an unsolicited pong reports nothing */
	struct buf in = BUF_INIT;
	frame(&in, 1, 10, 0, "12345678", 8);
	ws_feed(c.ws, in.data, in.len);
	CHECK_INT(c.npong, 1);
	CHECK_INT(ws_ping(s.ws), 0);
	pump(&c, &s);
	CHECK_INT(s.npong, 1);
	buf_release(&in);
	end_release(&c);
	end_release(&s);
}

TEST(ws_close_handshake)
{
	struct end c, s;
	end_init(&c, WS_CLIENT);
	end_init(&s, WS_SERVER);
	CHECK_INT(ws_close(c.ws, 4000, "x\ny"), 0); /* reasons are opaque bytes */
	CHECK_INT(ws_send(c.ws, WS_TEXT, "late", 4), -1);
	CHECK(strstr(ws_error(c.ws), "closing"));
	CHECK(!ws_closed(c.ws));
	pump(&c, &s);
	CHECK_INT(s.nclose, 1);
	CHECK_INT(s.close_code, 4000);
	CHECK_STR(s.close_reason, "x\ny");
	CHECK_INT(c.nclose, 1);
	CHECK_INT(c.close_code, 4000);
	CHECK(ws_closed(c.ws) && ws_closed(s.ws));
	CHECK_INT(ws_close_code(s.ws), 4000);
	CHECK_INT(ws_send(s.ws, WS_TEXT, "late", 4), -1);
	CHECK_INT(ws_close(s.ws, 1000, NULL), -1);
	/* bytes after the close are ignored */
	CHECK_INT(ws_feed(s.ws, "\x81\x80zzzz", 6), 0);
	CHECK_INT(s.nmsg, 0);
	CHECK_INT(s.nclose, 1);
	end_release(&c);
	end_release(&s);

	/* bad close arguments */
	end_init(&c, WS_CLIENT);
	CHECK_INT(ws_close(c.ws, 999, ""), -1);
	CHECK_INT(ws_close(c.ws, 1005, ""), -1);
	char lng[200];
	memset(lng, 'a', sizeof(lng) - 1);
	lng[199] = 0;
	CHECK_INT(ws_close(c.ws, 1000, lng), -1);
	end_release(&c);

	/* a close frame without a code reports 1005 */
	end_init(&s, WS_SERVER);
	struct buf in = BUF_INIT;
	frame(&in, 1, 8, 1, "", 0);
	ws_feed(s.ws, in.data, in.len);
	CHECK_INT(s.nclose, 1);
	CHECK_INT(s.close_code, WS_NO_STATUS);
	buf_release(&in);
	end_release(&s);
}

TEST(ws_oversize_message_closes_1009)
{
	struct end c, s;
	end_init(&c, WS_CLIENT);
	end_init(&s, WS_SERVER);
	ws_set_max_message(s.ws, 1000);
	char data[1001];
	memset(data, 'x', sizeof(data));
	CHECK_INT(ws_send(c.ws, WS_BINARY, data, 1000), 0);
	pump(&c, &s);
	CHECK_INT(s.nmsg, 1);
	CHECK_INT(ws_send(c.ws, WS_BINARY, data, 1001), 0);
	pump(&c, &s);
	CHECK_INT(s.nmsg, 1);
	CHECK_INT(s.nclose, 1);
	CHECK_INT(s.close_code, WS_TOO_BIG);
	CHECK_INT(c.nclose, 1);
	CHECK_INT(c.close_code, WS_TOO_BIG);
	end_release(&c);
	end_release(&s);

	/* fragments add up */
	end_init(&s, WS_SERVER);
	ws_set_max_message(s.ws, 10);
	struct buf in = BUF_INIT;
	frame(&in, 0, 2, 1, "123456", 6);
	frame(&in, 1, 0, 1, "789012", 6);
	ws_feed(s.ws, in.data, in.len);
	CHECK_INT(s.nmsg, 0);
	CHECK_INT(s.close_code, WS_TOO_BIG);
	CHECK_INT(sent_close_code(&s.out), 1009);
	buf_release(&in);
	end_release(&s);
}

TEST(ws_bad_utf8_closes_1007)
{
	struct end s;
	end_init(&s, WS_SERVER);
	struct buf in = BUF_INIT;
	frame(&in, 1, 1, 1, "ok\xff", 3);
	ws_feed(s.ws, in.data, in.len);
	CHECK_INT(s.nmsg, 0);
	CHECK_INT(sent_close_code(&s.out), 1007);
	CHECK(ws_closed(s.ws));
	CHECK_INT(s.close_code, WS_INVALID_DATA);
	CHECK(strstr(ws_error(s.ws), "utf-8"));
	end_release(&s);

	/* a truncated sequence at the end of the message */
	end_init(&s, WS_SERVER);
	buf_reset(&in);
	frame(&in, 1, 1, 1, "ok\xc3", 3);
	ws_feed(s.ws, in.data, in.len);
	CHECK_INT(s.nmsg, 0);
	CHECK_INT(s.close_code, WS_INVALID_DATA);
	end_release(&s);

	/* binary is not checked */
	end_init(&s, WS_SERVER);
	buf_reset(&in);
	frame(&in, 1, 2, 1, "ok\xff", 3);
	ws_feed(s.ws, in.data, in.len);
	CHECK_INT(s.nmsg, 1);
	end_release(&s);
	buf_release(&in);
}

TEST(ws_masking_rules_1002)
{
	struct end s, c;
	end_init(&s, WS_SERVER);
	struct buf in = BUF_INIT;
	frame(&in, 1, 1, 0, "hi", 2); /* unmasked from a client */
	ws_feed(s.ws, in.data, in.len);
	CHECK_INT(s.nmsg, 0);
	CHECK_INT(sent_close_code(&s.out), 1002);
	CHECK_INT(s.close_code, WS_PROTOCOL_ERROR);
	end_release(&s);

	end_init(&c, WS_CLIENT);
	buf_reset(&in);
	frame(&in, 1, 1, 1, "hi", 2); /* masked from a server */
	ws_feed(c.ws, in.data, in.len);
	CHECK_INT(c.nmsg, 0);
	CHECK_INT(c.close_code, WS_PROTOCOL_ERROR);
	end_release(&c);

	/* unknown opcode, continuation without a start, reserved bits */
	const unsigned char bad[][2] = {{0x83, 0x80}, {0x80, 0x80}, {0xc1, 0x80}};
	for (int i = 0; i < 3; i++) {
		end_init(&s, WS_SERVER);
		unsigned char f[6] = {bad[i][0], bad[i][1], 1, 2, 3, 4};
		ws_feed(s.ws, f, sizeof(f));
		CHECK_INT(s.close_code, WS_PROTOCOL_ERROR);
		end_release(&s);
	}
	buf_release(&in);
}

TEST(ws_backpressure_and_queue_limit)
{
	struct end c, s;
	end_init(&c, WS_CLIENT);
	end_init(&s, WS_SERVER);
	/* a transport taking one byte per call still gets everything out */
	c.accept_max = 1;
	char data[5000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)('a' + i % 26);
	CHECK_INT(ws_send(c.ws, WS_TEXT, data, sizeof(data)), 0);
	CHECK_INT(ws_queued(c.ws), 0);
	CHECK_INT(c.ndrain, 0); /* never refused: nothing to report */
	pump(&c, &s);
	CHECK_INT(s.nmsg, 1);
	CHECK_INT(s.last.len, sizeof(data));
	CHECK(memcmp(s.last.data, data, sizeof(data)) == 0);

	/* a blocked transport: the queue fills up to its limit */
	c.accept_max = 0;
	c.blocked = 1;
	ws_set_max_queue(c.ws, 1000);
	CHECK_INT(ws_send(c.ws, WS_BINARY, data, 600), 0);
	CHECK(ws_want_write(c.ws));
	CHECK_INT(ws_queued(c.ws), 600);
	CHECK_INT(ws_send(c.ws, WS_BINARY, data, 400), 0);
	CHECK_INT(ws_send(c.ws, WS_BINARY, data, 1), -1);
	CHECK(strstr(ws_error(c.ws), "write queue full"));
	CHECK_INT(ws_send(c.ws, WS_BINARY, data, 5000), -1);
	CHECK_INT(ws_queued(c.ws), 1000);
	int drained = c.ndrain;
	CHECK_INT(ws_flush(c.ws), 0);
	CHECK_INT(c.ndrain, drained);
	c.blocked = 0;
	c.accept_max = 7;
	CHECK_INT(ws_flush(c.ws), 0);
	CHECK_INT(ws_queued(c.ws), 0);
	CHECK(!ws_want_write(c.ws));
	CHECK_INT(c.ndrain, drained + 1);
	CHECK_INT(ws_send(c.ws, WS_BINARY, data, 1000), 0);
	pump(&c, &s);
	CHECK_INT(s.nmsg, 4);
	end_release(&c);
	end_release(&s);
}

static ssize_t failing_write(void *arg, const void *data, size_t len)
{
	return -1;
}

TEST(ws_transport_failure)
{
	struct end e;
	memset(&e, 0, sizeof(e));
	struct ws_handlers h = handlers;
	h.write = failing_write;
	struct ws *ws = ws_new(WS_SERVER, &h, &e);
	CHECK_INT(ws_send(ws, WS_TEXT, "x", 1), -1);
	CHECK(ws_closed(ws));
	CHECK_INT(e.nclose, 1);
	CHECK_INT(e.close_code, WS_ABNORMAL);
	CHECK_INT(ws_send(ws, WS_TEXT, "x", 1), -1);
	ws_free(ws);
	ws_free(NULL);
}

TEST(ws_ping_flood_without_reading_is_bounded)
{
	struct end s;
	end_init(&s, WS_SERVER);
	s.blocked = 1;
	ws_set_max_queue(s.ws, 1000);
	struct buf in = BUF_INIT;
	char payload[100];
	memset(payload, 'p', sizeof(payload));
	for (int i = 0; i < 20; i++)
		frame(&in, 1, 9, 1, payload, sizeof(payload));
	CHECK_INT(ws_feed(s.ws, in.data, in.len), -1);
	CHECK(ws_closed(s.ws));
	CHECK_INT(s.close_code, WS_POLICY);
	buf_release(&in);
	end_release(&s);
}
