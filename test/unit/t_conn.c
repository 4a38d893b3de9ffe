#include "conn.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crypt.h"
#include "harness.h"
#include "pki.h"
#include "xalloc.h"

/* A CA, a server certificate for localhost and 127.0.0.1, a client
 * certificate with CN i-1, made by pki in the test. */
struct certs {
	char *ca, *srv, *srv_key, *cli, *cli_key;
};

static void certs_make(struct certs *k)
{
	char err[256];
	time_t now = time(NULL);
	struct crypt_rng *rng = crypt_rng_new();
	struct pki_key *ca_key = pki_key_generate(rng), *sk = pki_key_generate(rng),
		       *ck = pki_key_generate(rng);
	struct pki_cert_opts o = { .cn = "test CA", .not_before = now - 60, .not_after = now + 3600 };
	k->ca = pki_ca_create(ca_key, &o, rng, err, sizeof(err));
	const char *dns[] = { "localhost" }, *ips[] = { "127.0.0.1" };
	struct pki_cert_opts s = { .cn = "base", .not_before = now - 60, .not_after = now + 3600,
				   .dns = dns, .ndns = 1, .ips = ips, .nips = 1 };
	k->srv = pki_server_cert(k->ca, ca_key, sk, &s, rng, err, sizeof(err));
	char *csr = pki_csr_create(ck, "x", rng, err, sizeof(err));
	struct pki_cert_opts c = { .cn = "i-1", .not_before = now - 60, .not_after = now + 3600 };
	k->cli = pki_csr_sign(k->ca, ca_key, csr, &c, rng, err, sizeof(err));
	if (!k->ca || !k->srv || !k->cli)
		harness_fail(__FILE__, __LINE__, "%s", err);
	k->srv_key = pki_key_pem(sk);
	k->cli_key = pki_key_pem(ck);
	free(csr);
	pki_key_free(ca_key);
	pki_key_free(sk);
	pki_key_free(ck);
	crypt_rng_free(rng);
}

static void certs_free(struct certs *k)
{
	free(k->ca);
	free(k->srv);
	free(k->srv_key);
	free(k->cli);
	free(k->cli_key);
}

static struct tls_config *server_cfg(struct certs *k, int require)
{
	char err[256];
	struct tls_config *c = tls_config_new_server(k->ca, k->srv, k->srv_key, require, err,
						     sizeof(err));
	if (!c)
		harness_fail(__FILE__, __LINE__, "%s", err);
	return c;
}

static struct tls_config *client_cfg(struct certs *k, int with_cert)
{
	char err[256];
	struct tls_config *c = tls_config_new_client(k->ca, with_cert ? k->cli : NULL,
						     with_cert ? k->cli_key : NULL, err, sizeof(err));
	if (!c)
		harness_fail(__FILE__, __LINE__, "%s", err);
	return c;
}

/* --- the test server ---------------------------------------------------------------- */

struct srv {
	struct listener *l;
	struct net_addr addr;
	const char *ca_pem;
	int nready, nreq, nclose, close_code, nmsg;
	char cn[80], serial[80], close_reason[300];
};

static void srv_ready(struct conn *c, void *arg)
{
	struct srv *s = arg;
	s->nready++;
	snprintf(s->cn, sizeof(s->cn), "%s", conn_peer_cn(c) ? conn_peer_cn(c) : "");
	snprintf(s->serial, sizeof(s->serial), "%s", conn_peer_serial(c) ? conn_peer_serial(c) : "");
	CHECK(strncmp(conn_peer_addr(c), "127.0.0.1:", 10) == 0);
}

static void srv_request(struct conn *c, void *arg, struct http_parser *req)
{
	struct srv *s = arg;
	const char *path = http_path(req);
	s->nreq++;
	CHECK(conn_current_request(c) == req);
	if (!strcmp(path, "/hello")) {
		char json[200];
		snprintf(json, sizeof(json), "{\"n\":%d,\"cn\":\"%s\"}", s->nreq, s->cn);
		CHECK_INT(conn_reply_json(c, 200, json), 0);
		CHECK_INT(conn_reply_json(c, 200, json), -1); /* answered already */
		CHECK_STR(http_path(req), "/hello");           /* still readable */
	} else if (!strcmp(path, "/echo")) {
		size_t n;
		const char *b = http_body(req, &n);
		const char *h[] = { "X-Method", http_method(req), NULL };
		CHECK_INT(conn_reply(c, 200, h, "application/octet-stream", b, n), 0);
	} else if (!strcmp(path, "/big")) {
		char *b = xmalloc(1024 * 1024);
		memset(b, 'b', 1024 * 1024);
		CHECK_INT(conn_reply(c, 200, NULL, "text/plain", b, 1024 * 1024), 0);
		free(b);
	} else if (!strcmp(path, "/v1/ca")) {
		CHECK_INT(conn_reply(c, 200, NULL, "text/plain", s->ca_pem, strlen(s->ca_pem)), 0);
	} else if (!strcmp(path, "/ws")) {
		CHECK_INT(conn_upgrade(c), 0);
		CHECK(conn_is_ws(c));
	} else if (!strcmp(path, "/ws-beat")) {
		CHECK_INT(conn_upgrade(c), 0);
		CHECK_INT(conn_ws_heartbeat(c, 50), 0);
	} else if (!strcmp(path, "/close")) {
		conn_close(c);
	} else if (!strcmp(path, "/badheader")) {
		const char *h[] = { "X-Evil", "a\r\nSet-Cookie: x", NULL };
		CHECK_INT(conn_reply(c, 200, h, NULL, "", 0), -1);
		CHECK(strstr(conn_error(c), "X-Evil") != NULL);
		CHECK_INT(conn_reply_error(c, 404, "no \"such\" thing"), 0);
	} else {
		CHECK_INT(conn_reply_error(c, 404, "not found"), 0);
	}
}

/* Echo every message; "free" frees the conn from inside the handler. */
static void srv_message(struct conn *c, void *arg, enum ws_type type, const void *data, size_t len)
{
	struct srv *s = arg;
	s->nmsg++;
	if (len == 4 && !memcmp(data, "free", 4)) {
		conn_free(c);
		return;
	}
	CHECK_INT(conn_ws_send(c, type, data, len), 0);
}

static void srv_close(struct conn *c, void *arg, int code, const char *reason)
{
	(void)c;
	struct srv *s = arg;
	s->nclose++;
	s->close_code = code;
	snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason);
}

static const struct conn_handlers srv_h = {
	.ready = srv_ready,
	.request = srv_request,
	.message = srv_message,
	.close = srv_close,
};

static void srv_start(struct srv *s, struct loop *loop, struct tls_config *tls,
		      const struct listener_opts *o)
{
	char err[256];
	struct net_addr a;
	CHECK_INT(net_parse("127.0.0.1:0", &a, err, sizeof(err)), 0);
	s->l = listener_new(loop, &a, tls, o, &srv_h, s, err, sizeof(err));
	if (!s->l)
		harness_fail(__FILE__, __LINE__, "%s", err);
	CHECK_INT(listener_local_addr(s->l, &s->addr), 0);
	CHECK(net_addr_port(&s->addr) > 0);
}

/* --- the test client ------------------------------------------------------------------- */

struct cli {
	struct conn *c;
	int nready, nresp, status, nup, nmsg, nclose, close_code, ndrain, npong;
	int last_type;
	struct buf body, msg;
	char close_reason[300];
};

static void cli_ready(struct conn *c, void *arg)
{
	(void)c;
	struct cli *k = arg;
	k->nready++;
}

static void cli_response(struct conn *c, void *arg, struct http_parser *resp)
{
	(void)c;
	struct cli *k = arg;
	size_t n;
	const char *b = http_body(resp, &n);
	k->nresp++;
	k->status = http_status(resp);
	buf_reset(&k->body);
	buf_add(&k->body, b, n);
}

static void cli_upgraded(struct conn *c, void *arg)
{
	(void)c;
	struct cli *k = arg;
	k->nup++;
}

static void cli_message(struct conn *c, void *arg, enum ws_type type, const void *data, size_t len)
{
	(void)c;
	struct cli *k = arg;
	k->nmsg++;
	k->last_type = type;
	buf_reset(&k->msg);
	buf_add(&k->msg, data, len);
}

static void cli_pong(struct conn *c, void *arg, uint64_t rtt_us)
{
	(void)c;
	(void)rtt_us;
	struct cli *k = arg;
	k->npong++;
}

static void cli_drain(struct conn *c, void *arg)
{
	(void)c;
	struct cli *k = arg;
	k->ndrain++;
}

static void cli_close(struct conn *c, void *arg, int code, const char *reason)
{
	(void)c;
	struct cli *k = arg;
	k->nclose++;
	k->close_code = code;
	k->c = NULL;
	snprintf(k->close_reason, sizeof(k->close_reason), "%s", reason);
}

static const struct conn_handlers cli_h = {
	.ready = cli_ready,
	.response = cli_response,
	.upgraded = cli_upgraded,
	.message = cli_message,
	.pong = cli_pong,
	.drain = cli_drain,
	.close = cli_close,
};

static void cli_connect(struct cli *k, struct loop *loop, struct srv *s, struct tls_config *tls,
			const char *name)
{
	char err[256];
	memset(k, 0, sizeof(*k));
	buf_init(&k->body);
	buf_init(&k->msg);
	k->c = conn_connect(loop, &s->addr, tls, name, 5000, &cli_h, k, err, sizeof(err));
	if (!k->c)
		harness_fail(__FILE__, __LINE__, "%s", err);
}

static void cli_release(struct cli *k)
{
	buf_release(&k->body);
	buf_release(&k->msg);
}

/* Run the loop until *flag reaches want (fail after 10 s). */
#define RUN_UNTIL(loop, cond) \
	do { \
		long long until_ = loop_now_ms() + 10000; \
		while (!(cond)) { \
			if (loop_now_ms() > until_) \
				harness_fail(__FILE__, __LINE__, "timed out waiting for %s", #cond); \
			loop_run_once(loop, 100); \
		} \
	} while (0)

/* Let every conn finish its linger so LeakSanitizer sees nothing. */
static void drain_loop(struct loop *loop)
{
	long long until = loop_now_ms() + 3000;
	while (loop_timer_count(loop) && loop_now_ms() < until)
		loop_run_once(loop, 50);
}

static struct loop *new_loop(void)
{
	char err[256];
	struct loop *l = loop_new(0, err, sizeof(err));
	if (!l)
		harness_fail(__FILE__, __LINE__, "%s", err);
	return l;
}

/* --- tests ---------------------------------------------------------------------------- */

TEST(http_round_trip_over_tls_with_keep_alive)
{
	struct certs k;
	certs_make(&k);
	struct loop *loop = new_loop();
	struct tls_config *st = server_cfg(&k, 0), *ct = client_cfg(&k, 0);
	struct srv s = { 0 };
	srv_start(&s, loop, st, NULL);
	tls_config_free(st); /* the listener holds a reference */
	struct cli c;
	cli_connect(&c, loop, &s, ct, "127.0.0.1");
	tls_config_free(ct);
	/* queued before the handshake is done */
	CHECK_INT(conn_request(c.c, "GET", "/hello", NULL, NULL, 0), 0);
	CHECK_INT(conn_request(c.c, "GET", "/hello", NULL, NULL, 0), -1);
	CHECK(strstr(conn_error(c.c), "in progress") != NULL);
	RUN_UNTIL(loop, c.nresp == 1);
	CHECK_INT(c.nready, 1);
	CHECK_INT(c.status, 200);
	CHECK_STR(c.body.data, "{\"n\":1,\"cn\":\"\"}");
	CHECK(conn_peer_cn(c.c) && !strcmp(conn_peer_cn(c.c), "base"));

	/* keep-alive: a second request on the same connection, with a body */
	const char *h[] = { "Content-Type", "application/octet-stream", NULL };
	CHECK_INT(conn_request(c.c, "POST", "/echo", h, "a\0b", 3), 0);
	RUN_UNTIL(loop, c.nresp == 2);
	CHECK_INT(c.status, 200);
	CHECK_INT(c.body.len, 3);
	CHECK(memcmp(c.body.data, "a\0b", 3) == 0);
	CHECK_INT(conn_request(c.c, "GET", "/nowhere", NULL, NULL, 0), 0);
	RUN_UNTIL(loop, c.nresp == 3);
	CHECK_INT(c.status, 404);
	CHECK_STR(c.body.data, "{\"error\":\"not found\"}");
	/* header injection refused on both sides */
	const char *bad[] = { "X-A", "1\r\nX-B: 2", NULL };
	CHECK_INT(conn_request(c.c, "GET", "/hello", bad, NULL, 0), -1);
	CHECK_INT(conn_request(c.c, "GET", "/bad target", NULL, NULL, 0), -1);
	CHECK_INT(conn_request(c.c, "GET", "/badheader", NULL, NULL, 0), 0);
	RUN_UNTIL(loop, c.nresp == 4);
	CHECK_INT(c.status, 404);
	CHECK_STR(c.body.data, "{\"error\":\"no \\\"such\\\" thing\"}");
	CHECK_INT(listener_accepted(s.l), 1);
	CHECK_INT(s.nready, 1);

	/* the client leaves: the server learns it once */
	conn_close(c.c);
	RUN_UNTIL(loop, s.nclose == 1);
	CHECK_INT(c.nclose, 0);
	CHECK_STR(s.close_reason, "connection closed by peer");
	listener_free(s.l);
	drain_loop(loop);
	loop_free(loop);
	cli_release(&c);
	certs_free(&k);
}

TEST(oversized_header_gets_431_then_close)
{
	struct certs k;
	certs_make(&k);
	struct loop *loop = new_loop();
	struct tls_config *st = server_cfg(&k, 0), *ct = client_cfg(&k, 0);
	struct srv s = { 0 };
	srv_start(&s, loop, st, NULL);
	struct cli c;
	cli_connect(&c, loop, &s, ct, "localhost");
	char *big = xmalloc(9000);
	memset(big, 'x', 8999);
	big[8999] = 0;
	const char *h[] = { "X-Big", big, NULL };
	CHECK_INT(conn_request(c.c, "GET", "/hello", h, NULL, 0), 0);
	RUN_UNTIL(loop, c.nclose == 1 && s.nclose == 1);
	CHECK_INT(c.nresp, 1);
	CHECK_INT(c.status, 431);
	CHECK(strstr(c.body.data, "\"error\"") != NULL);
	CHECK_INT(s.nreq, 0);
	CHECK(strstr(s.close_reason, "header") != NULL);
	free(big);
	listener_free(s.l);
	tls_config_free(st);
	tls_config_free(ct);
	drain_loop(loop);
	loop_free(loop);
	cli_release(&c);
	certs_free(&k);
}

TEST(websocket_echo_text_binary_and_200k)
{
	struct certs k;
	certs_make(&k);
	struct loop *loop = new_loop();
	struct tls_config *st = server_cfg(&k, 0), *ct = client_cfg(&k, 0);
	struct srv s = { 0 };
	srv_start(&s, loop, st, NULL);
	struct cli c;
	cli_connect(&c, loop, &s, ct, "localhost");
	CHECK_INT(conn_ws_send_text(c.c, "early"), -1); /* not upgraded yet */
	const char *h[] = { "Authorization", "Bearer dpy_x", NULL };
	CHECK_INT(conn_ws_connect(c.c, "/ws", h), 0);
	RUN_UNTIL(loop, c.nup == 1);
	CHECK(conn_is_ws(c.c));
	CHECK_INT(conn_request(c.c, "GET", "/hello", NULL, NULL, 0), -1);

	CHECK_INT(conn_ws_send_text(c.c, "héllo"), 0);
	RUN_UNTIL(loop, c.nmsg == 1);
	CHECK_INT(c.last_type, WS_TEXT);
	CHECK_STR(c.msg.data, "héllo");
	CHECK_INT(conn_ws_send(c.c, WS_BINARY, "\0\1\2", 3), 0);
	RUN_UNTIL(loop, c.nmsg == 2);
	CHECK_INT(c.last_type, WS_BINARY);
	CHECK_INT(c.msg.len, 3);
	CHECK(memcmp(c.msg.data, "\0\1\2", 3) == 0);
	/* 200 KiB: many TLS records, partial writes, pending decrypted data */
	size_t n = 200 * 1024;
	unsigned char *big = xmalloc(n);
	for (size_t i = 0; i < n; i++)
		big[i] = (unsigned char)(i * 7 + i / 251);
	CHECK_INT(conn_ws_send(c.c, WS_BINARY, big, n), 0);
	CHECK(conn_ws_queued(c.c) > 0);
	RUN_UNTIL(loop, c.nmsg == 3);
	CHECK_INT(c.msg.len, n);
	CHECK(memcmp(c.msg.data, big, n) == 0);
	/* several at once */
	for (int i = 0; i < 5; i++)
		CHECK_INT(conn_ws_send(c.c, WS_BINARY, big, n), 0);
	RUN_UNTIL(loop, c.nmsg == 8);
	CHECK(memcmp(c.msg.data, big, n) == 0);
	/* backpressure: a small queue refuses, then drains */
	conn_ws_set_max_queue(c.c, 64 * 1024);
	int refused = 0;
	for (int i = 0; i < 20 && !refused; i++)
		if (conn_ws_send(c.c, WS_BINARY, big, 16 * 1024) < 0)
			refused = 1;
	CHECK(refused);
	CHECK(strstr(conn_error(c.c), "write queue full") != NULL);
	RUN_UNTIL(loop, c.ndrain >= 1);
	CHECK_INT(conn_ws_ping(c.c), 0);
	RUN_UNTIL(loop, c.npong == 1);
	/* heartbeats: pings go out on their own and pongs come back */
	CHECK_INT(conn_ws_heartbeat(c.c, 30), 0);
	RUN_UNTIL(loop, c.npong >= 3);
	CHECK_INT(conn_ws_heartbeat(c.c, 0), 0);
	/* orderly close: both sides learn the code */
	CHECK_INT(conn_ws_close(c.c, 1000, "bye"), 0);
	RUN_UNTIL(loop, c.nclose == 1 && s.nclose == 1);
	CHECK_INT(c.close_code, 1000);
	CHECK_INT(s.close_code, 1000);
	CHECK(strstr(s.close_reason, "bye") != NULL);
	free(big);
	listener_free(s.l);
	tls_config_free(st);
	tls_config_free(ct);
	drain_loop(loop);
	loop_free(loop);
	cli_release(&c);
	certs_free(&k);
}

TEST(mtls_peer_cn_and_serial_seen_by_server)
{
	struct certs k;
	certs_make(&k);
	struct loop *loop = new_loop();
	struct tls_config *st = server_cfg(&k, 1), *ct = client_cfg(&k, 1), *nt = client_cfg(&k, 0);
	struct srv s = { 0 };
	srv_start(&s, loop, st, NULL);
	struct cli c, d;
	cli_connect(&c, loop, &s, ct, "127.0.0.1");
	CHECK_INT(conn_request(c.c, "GET", "/hello", NULL, NULL, 0), 0);
	RUN_UNTIL(loop, c.nresp == 1);
	CHECK_STR(c.body.data, "{\"n\":1,\"cn\":\"i-1\"}");
	CHECK_STR(s.cn, "i-1");
	struct pki_cert_info in;
	char err[256];
	CHECK_INT(pki_cert_info(k.cli, &in, err, sizeof(err)), 0);
	CHECK_STR(s.serial, in.serial);

	/* no client certificate: refused in the handshake; the server's owner
	 * never hears of it */
	cli_connect(&d, loop, &s, nt, "127.0.0.1");
	CHECK_INT(conn_request(d.c, "GET", "/hello", NULL, NULL, 0), 0);
	RUN_UNTIL(loop, d.nclose == 1);
	CHECK_INT(d.nready, 0);
	CHECK_INT(d.nresp, 0);
	CHECK(d.close_reason[0] != 0);
	RUN_UNTIL(loop, listener_handshakes(s.l) == 0);
	CHECK_INT(s.nready, 1);
	CHECK_INT(s.nclose, 0);
	CHECK_INT(listener_accepted(s.l), 2);

	conn_close(c.c);
	listener_free(s.l);
	tls_config_free(st);
	tls_config_free(ct);
	tls_config_free(nt);
	drain_loop(loop);
	loop_free(loop);
	cli_release(&c);
	cli_release(&d);
	certs_free(&k);
}

TEST(wrong_server_name_refused_by_client)
{
	struct certs k;
	certs_make(&k);
	struct loop *loop = new_loop();
	struct tls_config *st = server_cfg(&k, 0), *ct = client_cfg(&k, 0);
	struct srv s = { 0 };
	srv_start(&s, loop, st, NULL);
	struct cli c;
	cli_connect(&c, loop, &s, ct, "example.com");
	RUN_UNTIL(loop, c.nclose == 1);
	CHECK_INT(c.nready, 0);
	CHECK(strstr(c.close_reason, "not valid for 'example.com'") != NULL);
	listener_free(s.l);
	tls_config_free(st);
	tls_config_free(ct);
	drain_loop(loop);
	loop_free(loop);
	cli_release(&c);
	certs_free(&k);
}

TEST(handshake_cap_and_deadline)
{
	struct certs k;
	certs_make(&k);
	struct loop *loop = new_loop();
	struct tls_config *st = server_cfg(&k, 0), *ct = client_cfg(&k, 0);
	struct srv s = { 0 };
	struct listener_opts o = { .max_handshakes = 2, .handshake_ms = 500 };
	srv_start(&s, loop, st, &o);
	char err[256];
	int raw[5];
	for (int i = 0; i < 5; i++) {
		raw[i] = net_connect(&s.addr, err, sizeof(err));
		CHECK(raw[i] >= 0);
	}
	RUN_UNTIL(loop, listener_accepted(s.l) >= 2);
	for (int i = 0; i < 10; i++)
		loop_run_once(loop, 0);
	/* the cap holds: the others wait in the backlog */
	CHECK_INT(listener_accepted(s.l), 2);
	CHECK_INT(listener_handshakes(s.l), 2);
	/* the deadline drops the silent ones, letting the others in, and so on */
	RUN_UNTIL(loop, listener_accepted(s.l) == 5 && listener_handshakes(s.l) == 0);
	char b[16];
	for (int i = 0; i < 5; i++) {
		ssize_t r = read(raw[i], b, sizeof(b));
		CHECK(r == 0 || (r < 0 && errno == ECONNRESET));
		close(raw[i]);
	}
	CHECK_INT(s.nready, 0);
	CHECK_INT(s.nclose, 0);
	/* a real client still gets through */
	struct cli c;
	cli_connect(&c, loop, &s, ct, "localhost");
	CHECK_INT(conn_request(c.c, "GET", "/hello", NULL, NULL, 0), 0);
	RUN_UNTIL(loop, c.nresp == 1);
	CHECK_INT(c.status, 200);
	conn_close(c.c);
	listener_free(s.l);
	tls_config_free(st);
	tls_config_free(ct);
	drain_loop(loop);
	loop_free(loop);
	cli_release(&c);
	certs_free(&k);
}

TEST(close_and_free_from_inside_callbacks)
{
	struct certs k;
	certs_make(&k);
	struct loop *loop = new_loop();
	struct tls_config *st = server_cfg(&k, 0), *ct = client_cfg(&k, 0);
	struct srv s = { 0 };
	srv_start(&s, loop, st, NULL);
	struct cli c, d;
	/* conn_close in the request handler: no reply, the client sees the end */
	cli_connect(&c, loop, &s, ct, "localhost");
	CHECK_INT(conn_request(c.c, "GET", "/close", NULL, NULL, 0), 0);
	RUN_UNTIL(loop, c.nclose == 1);
	CHECK_INT(c.nresp, 0);
	CHECK_INT(s.nclose, 0); /* the owner closed: no close handler */
	/* conn_free in a message handler */
	cli_connect(&d, loop, &s, ct, "localhost");
	CHECK_INT(conn_ws_connect(d.c, "/ws", NULL), 0);
	RUN_UNTIL(loop, d.nup == 1);
	CHECK_INT(conn_ws_send_text(d.c, "free"), 0);
	CHECK_INT(conn_ws_send_text(d.c, "after"), 0);
	RUN_UNTIL(loop, d.nclose == 1);
	CHECK_INT(d.close_code, WS_ABNORMAL);
	CHECK_INT(s.nmsg, 1);
	CHECK_INT(s.nclose, 0);
	/* an upgrade the server answers with 404: the reason says so */
	struct cli f;
	cli_connect(&f, loop, &s, ct, "localhost");
	CHECK_INT(conn_ws_connect(f.c, "/nowhere", NULL), 0);
	RUN_UNTIL(loop, f.nclose == 1);
	CHECK_INT(f.nup, 0);
	CHECK_STR(f.close_reason,
		  "websocket upgrade refused: 404 Not Found: {\"error\":\"not found\"}");
	cli_release(&f);
	/* client side: free inside its own response handler is covered by
	 * conn_request_sync; a client freed before connecting is fine too */
	char err[256];
	struct conn *e = conn_connect(loop, &s.addr, ct, NULL, 0, &cli_h, &c, err, sizeof(err));
	CHECK(e != NULL);
	conn_free(e);
	listener_free(s.l);
	tls_config_free(st);
	tls_config_free(ct);
	drain_loop(loop);
	loop_free(loop);
	cli_release(&c);
	cli_release(&d);
	certs_free(&k);
}

TEST(idle_timeout_drops_silent_client)
{
	struct loop *loop = new_loop();
	struct srv s = { 0 };
	struct listener_opts o = { .idle_ms = 100 };
	srv_start(&s, loop, NULL, &o);
	struct cli c;
	cli_connect(&c, loop, &s, NULL, NULL);
	RUN_UNTIL(loop, c.nclose == 1 && s.nclose == 1);
	CHECK(strstr(s.close_reason, "idle timeout") != NULL);
	CHECK_STR(c.close_reason, "connection closed by peer");
	listener_free(s.l);
	drain_loop(loop);
	loop_free(loop);
	cli_release(&c);
}

TEST(plain_pipelined_requests_answered_in_order)
{
	struct loop *loop = new_loop();
	struct srv s = { 0 };
	srv_start(&s, loop, NULL, NULL);
	char err[256];
	int fd = net_connect(&s.addr, err, sizeof(err));
	CHECK(fd >= 0);
	RUN_UNTIL(loop, listener_accepted(s.l) == 1);
	const char *req = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
			  "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
			  "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	CHECK_INT(write(fd, req, strlen(req)), (long long)strlen(req));
	struct buf got = BUF_INIT;
	long long until = loop_now_ms() + 10000;
	for (;;) {
		char b[4096];
		ssize_t r = read(fd, b, sizeof(b));
		if (r == 0)
			break;
		if (r > 0)
			buf_add(&got, b, (size_t)r);
		CHECK(loop_now_ms() < until);
		loop_run_once(loop, 50);
	}
	const char *a = strstr(got.data, "{\"n\":1,");
	const char *e = strstr(got.data, "X-Method: POST");
	const char *z = strstr(got.data, "{\"n\":3,");
	CHECK(a && e && z && a < e && e < z);
	CHECK(strstr(got.data, "Connection: close") != NULL);
	RUN_UNTIL(loop, s.nclose == 1);
	CHECK_STR(s.close_reason, "connection closed after reply");
	/* a malformed request: 400 and close */
	buf_reset(&got);
	close(fd);
	fd = net_connect(&s.addr, err, sizeof(err));
	const char *bad = "GET /x HTTP/1.1\nHost: x\r\n\r\n";
	RUN_UNTIL(loop, listener_accepted(s.l) == 2);
	CHECK_INT(write(fd, bad, strlen(bad)), (long long)strlen(bad));
	for (;;) {
		char b[4096];
		ssize_t r = read(fd, b, sizeof(b));
		if (r == 0)
			break;
		if (r > 0)
			buf_add(&got, b, (size_t)r);
		CHECK(loop_now_ms() < until);
		loop_run_once(loop, 50);
	}
	CHECK(strncmp(got.data, "HTTP/1.1 400 ", 13) == 0);
	close(fd);
	/* a body over the limit: 413 and close */
	buf_reset(&got);
	fd = net_connect(&s.addr, err, sizeof(err));
	const char *huge = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n";
	RUN_UNTIL(loop, listener_accepted(s.l) == 3);
	CHECK_INT(write(fd, huge, strlen(huge)), (long long)strlen(huge));
	for (;;) {
		char b[4096];
		ssize_t r = read(fd, b, sizeof(b));
		if (r == 0)
			break;
		if (r > 0)
			buf_add(&got, b, (size_t)r);
		CHECK(loop_now_ms() < until);
		loop_run_once(loop, 50);
	}
	CHECK(strncmp(got.data, "HTTP/1.1 413 ", 13) == 0);
	CHECK(strstr(got.data, "Connection: close") != NULL);
	close(fd);
	buf_release(&got);
	listener_free(s.l);
	drain_loop(loop);
	loop_free(loop);
}

/* A server in a child process, for the blocking helpers. */
static pid_t fork_server(struct certs *k, struct net_addr *addr)
{
	int p[2];
	CHECK_INT(pipe(p), 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		struct loop *loop = new_loop();
		struct tls_config *st = server_cfg(k, 0);
		struct srv s = { .ca_pem = k->ca };
		srv_start(&s, loop, st, NULL);
		if (write(p[1], &s.addr, sizeof(s.addr)) != sizeof(s.addr))
			_exit(1);
		close(p[1]);
		loop_run(loop);
		_exit(0);
	}
	close(p[1]);
	CHECK_INT(read(p[0], addr, sizeof(*addr)), (long long)sizeof(*addr));
	close(p[0]);
	return pid;
}

TEST(sync_request_and_pinned_ca_fetch)
{
	struct certs k;
	certs_make(&k);
	struct net_addr addr;
	pid_t pid = fork_server(&k, &addr);
	struct tls_config *ct = client_cfg(&k, 0);
	char err[256];
	int status = 0;
	struct buf body = BUF_INIT;
	CHECK_INT(conn_request_sync(&addr, ct, "127.0.0.1", "POST", "/echo", NULL, "{\"a\":1}", 7,
				    &status, &body, 5000, err, sizeof(err)),
		  0);
	CHECK_INT(status, 200);
	CHECK_STR(body.data, "{\"a\":1}");
	buf_reset(&body);
	CHECK_INT(conn_request_sync(&addr, ct, "127.0.0.1", "GET", "/nope", NULL, NULL, 0, &status,
				    &body, 5000, err, sizeof(err)),
		  0);
	CHECK_INT(status, 404);
	/* a name the certificate is not for */
	CHECK_INT(conn_request_sync(&addr, ct, "example.com", "GET", "/hello", NULL, NULL, 0,
				    &status, &body, 5000, err, sizeof(err)),
		  -1);
	CHECK(strstr(err, "not valid for 'example.com'") != NULL);

	/* CA pinning: right pin gives the CA, wrong pin an error */
	char fp[PKI_FINGERPRINT_LEN + 1];
	CHECK_INT(pki_cert_fingerprint(k.ca, fp, err, sizeof(err)), 0);
	char *ca = conn_fetch_pinned_ca(&addr, fp, 5000, err, sizeof(err));
	if (!ca)
		harness_fail(__FILE__, __LINE__, "%s", err);
	CHECK_STR(ca, k.ca);
	free(ca);
	char bad[PKI_FINGERPRINT_LEN + 1];
	memcpy(bad, fp, sizeof(bad));
	bad[10] = bad[10] == '0' ? '1' : '0';
	CHECK(conn_fetch_pinned_ca(&addr, bad, 5000, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "ca fingerprint mismatch: expected sha256:") == err);
	CHECK(strstr(err, fp) != NULL);
	CHECK(conn_fetch_pinned_ca(&addr, "sha256:00", 5000, err, sizeof(err)) == NULL);

	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	/* nothing listening now */
	CHECK_INT(conn_request_sync(&addr, ct, NULL, "GET", "/hello", NULL, NULL, 0, &status, &body,
				    5000, err, sizeof(err)),
		  -1);
	CHECK(strstr(err, "refused") != NULL);
	buf_release(&body);
	tls_config_free(ct);
	certs_free(&k);
}

/* Server and client on separate loops, so the client's bytes all sit in
 * the server's socket before the server reads: 7 full TLS records (one
 * 114674-byte message, 14 bytes of frame header). The server's read budget
 * ends in the middle of the seventh record with the socket empty: only
 * the loop_fd_pending mark gets the rest read. */
TEST(tls_pending_data_is_read_without_new_socket_input)
{
	struct certs k;
	certs_make(&k);
	struct loop *ls = new_loop(), *lc = new_loop();
	struct tls_config *st = server_cfg(&k, 0), *ct = client_cfg(&k, 0);
	struct srv s = { 0 };
	srv_start(&s, ls, st, NULL);
	struct cli c;
	cli_connect(&c, lc, &s, ct, "localhost");
	CHECK_INT(conn_ws_connect(c.c, "/ws", NULL), 0);
	long long until = loop_now_ms() + 10000;
	while (!c.nup) {
		CHECK(loop_now_ms() < until);
		loop_run_once(ls, 5);
		loop_run_once(lc, 5);
	}
	size_t n = 7 * 16384 - 14;
	char *big = xmalloc(n);
	memset(big, 'p', n);
	CHECK_INT(conn_ws_send(c.c, WS_BINARY, big, n), 0);
	RUN_UNTIL(lc, conn_ws_queued(c.c) == 0);
	RUN_UNTIL(ls, s.nmsg == 1);
	while (c.nmsg < 1) {
		CHECK(loop_now_ms() < until);
		loop_run_once(ls, 5);
		loop_run_once(lc, 5);
	}
	CHECK_INT(c.msg.len, n);
	conn_free(c.c);
	listener_free(s.l);
	tls_config_free(st);
	tls_config_free(ct);
	drain_loop(ls);
	drain_loop(lc);
	loop_free(ls);
	loop_free(lc);
	free(big);
	cli_release(&c);
	certs_free(&k);
}

/* Run argv, capturing standard output; returns the exit status. */
static int run_capture(char *const argv[], struct buf *out)
{
	int p[2];
	CHECK_INT(pipe(p), 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	CHECK_INT(buf_read_fd(out, p[0], 1 << 20), 0);
	close(p[0]);
	int st;
	CHECK_INT(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A real client: curl verifies our chain and name, reuses the connection
 * for two requests and posts a body. */
TEST(curl_talks_to_the_server)
{
	if (access("/usr/bin/curl", X_OK) != 0)
		return; /* curl is not installed: nothing to compare with */
	struct certs k;
	certs_make(&k);
	char err[256];
	CHECK_INT(pki_write_file("ca.pem", k.ca, 0644, err, sizeof(err)), 0);
	struct net_addr addr;
	pid_t pid = fork_server(&k, &addr);
	char url[100], url2[100], url3[100];
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/hello", net_addr_port(&addr));
	snprintf(url2, sizeof(url2), "https://localhost:%d/hello", net_addr_port(&addr));
	snprintf(url3, sizeof(url3), "https://127.0.0.1:%d/echo", net_addr_port(&addr));
	struct buf out = BUF_INIT;
	char *a1[] = { "/usr/bin/curl", "-sS", "--cacert", "ca.pem", url, url, NULL };
	CHECK_INT(run_capture(a1, &out), 0);
	CHECK_STR(out.data, "{\"n\":1,\"cn\":\"\"}{\"n\":2,\"cn\":\"\"}");
	buf_reset(&out);
	char *a2[] = { "/usr/bin/curl", "-sS", "--cacert", "ca.pem", "--data-binary", "hello body",
		       url3, NULL };
	CHECK_INT(run_capture(a2, &out), 0);
	CHECK_STR(out.data, "hello body");
	buf_reset(&out);
	char *a3[] = { "/usr/bin/curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
		       "--cacert", "ca.pem", url2, NULL };
	CHECK_INT(run_capture(a3, &out), 0);
	CHECK_STR(out.data, "200");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	buf_release(&out);
	certs_free(&k);
}

/* Pipelined requests whose answers back up: the server stops parsing while
 * its output is full and resumes as the client reads. */
TEST(pipelined_big_replies_resume_after_backpressure)
{
	struct loop *loop = new_loop();
	struct srv s = { 0 };
	srv_start(&s, loop, NULL, NULL);
	char err[256];
	int fd = net_connect(&s.addr, err, sizeof(err));
	CHECK(fd >= 0);
	RUN_UNTIL(loop, listener_accepted(s.l) == 1);
	struct buf req = BUF_INIT;
	for (int i = 0; i < 19; i++)
		buf_puts(&req, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
	buf_puts(&req, "GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	CHECK_INT(write(fd, req.data, req.len), (long long)req.len);
	/* let the server fill the socket before anyone reads */
	for (int i = 0; i < 20; i++)
		loop_run_once(loop, 10);
	CHECK(s.nreq < 20);
	struct buf got = BUF_INIT;
	long long until = loop_now_ms() + 10000;
	for (;;) {
		char b[65536];
		ssize_t r = read(fd, b, sizeof(b));
		if (r == 0)
			break;
		if (r > 0)
			buf_add(&got, b, (size_t)r);
		CHECK(loop_now_ms() < until);
		loop_run_once(loop, r > 0 ? 0 : 10);
	}
	CHECK_INT(s.nreq, 20);
	int n = 0;
	for (const char *p = got.data; (p = strstr(p, "HTTP/1.1 200 OK")); p++)
		n++;
	CHECK_INT(n, 20);
	close(fd);
	buf_release(&req);
	buf_release(&got);
	listener_free(s.l);
	drain_loop(loop);
	loop_free(loop);
}

/* A peer that upgrades and then goes silent (answers no ping) is dropped
 * by the heartbeat's idle timeout. */
TEST(heartbeat_drops_a_silent_websocket_peer)
{
	struct loop *loop = new_loop();
	struct srv s = { 0 };
	srv_start(&s, loop, NULL, NULL);
	char err[256];
	int fd = net_connect(&s.addr, err, sizeof(err));
	CHECK(fd >= 0);
	const char *req = "GET /ws-beat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
			  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			  "Sec-WebSocket-Version: 13\r\n\r\n";
	RUN_UNTIL(loop, listener_accepted(s.l) == 1);
	CHECK_INT(write(fd, req, strlen(req)), (long long)strlen(req));
	RUN_UNTIL(loop, s.nclose == 1);
	CHECK(strstr(s.close_reason, "idle timeout") != NULL);
	CHECK_INT(s.close_code, WS_ABNORMAL);
	/* it did receive the 101 and pings (opcode 0x9) meanwhile */
	char b[4096];
	ssize_t n = read(fd, b, sizeof(b) - 1);
	CHECK(n > 0);
	b[n] = 0;
	CHECK(strncmp(b, "HTTP/1.1 101 ", 13) == 0);
	char *body = strstr(b, "\r\n\r\n");
	CHECK(body && (unsigned char)body[4] == 0x89);
	close(fd);
	listener_free(s.l);
	drain_loop(loop);
	loop_free(loop);
}

/* A protocol error (an unmasked client frame): the server answers with a
 * close frame 1002 that reaches the peer before the connection ends. */
TEST(websocket_protocol_error_sends_close_frame)
{
	struct loop *loop = new_loop();
	struct srv s = { 0 };
	srv_start(&s, loop, NULL, NULL);
	char err[256];
	int fd = net_connect(&s.addr, err, sizeof(err));
	CHECK(fd >= 0);
	const char *req = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
			  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			  "Sec-WebSocket-Version: 13\r\n\r\n"
			  "\x81\x02hi"; /* unmasked text frame, in the same write */
	RUN_UNTIL(loop, listener_accepted(s.l) == 1);
	CHECK_INT(write(fd, req, strlen(req)), (long long)strlen(req));
	RUN_UNTIL(loop, s.nclose == 1);
	CHECK_INT(s.close_code, WS_PROTOCOL_ERROR);
	CHECK_INT(s.nmsg, 0);
	struct buf got = BUF_INIT;
	long long until = loop_now_ms() + 10000;
	for (;;) {
		char b[4096];
		ssize_t r = read(fd, b, sizeof(b));
		if (r == 0)
			break;
		if (r > 0)
			buf_add(&got, b, (size_t)r);
		CHECK(loop_now_ms() < until);
		loop_run_once(loop, r > 0 ? 0 : 10);
	}
	char *body = strstr(got.data, "\r\n\r\n");
	CHECK(body != NULL);
	body += 4;
	CHECK((unsigned char)body[0] == 0x88);
	CHECK((unsigned char)body[2] == 0x03 && (unsigned char)body[3] == 0xea); /* 1002 */
	close(fd);
	buf_release(&got);
	listener_free(s.l);
	drain_loop(loop);
	loop_free(loop);
}
