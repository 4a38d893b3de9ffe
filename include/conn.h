/* conn: one network connection driven by the loop, and a listener.
 *
 * A struct conn stacks TCP, TLS (tls.h; a NULL config means plain TCP,
 * for tests), HTTP/1.1 messages (http.h) and, after an upgrade, WebSocket
 * messages (ws.h). Server conns come from a struct listener; client conns
 * from conn_connect(). conn_request_sync() runs one request on a private
 * loop for the CLI and `agent join`.
 *
 * Handlers (struct conn_handlers; every one optional) run only from loop
 * dispatch (fd events and timers), never from inside a conn_* call made by
 * the owner. Inside a handler the owner may call any conn_* function,
 * conn_close() and conn_free() included.
 *
 *   ready     client: TCP connected and TLS handshake done; server: TLS
 *             handshake done (peer CN/serial known). Requests may be queued
 *             on a client before ready.
 *   request   server: a whole request; answer with conn_reply*() or
 *             conn_upgrade(), now or later (no further request is read
 *             until then; pipelined requests are served in order; the
 *             idle timeout keeps running while an answer is deferred). The
 *             parser (also conn_current_request) stays valid until the
 *             handler that answers has returned.
 *   response  client: the whole response to conn_request() (the parser
 *             is valid during the call; a new conn_request may be made
 *             from it).
 *   upgraded  client: the 101 to conn_ws_connect() was verified.
 *   message, pong, drain: WebSocket (ws.h). drain: everything queued was
 *             handed to TLS after conn_ws_send() had been refused with
 *             "write queue full" or the queue had backed up.
 *   close     the connection ended by itself (peer, error, timeout, close
 *             handshake): code is the WebSocket close code (1006 when the
 *             transport failed) or 0 outside WebSocket; reason says why.
 *             Called once; for server conns only if ready was called. It
 *             is NOT called after the owner's conn_close()/conn_free():
 *             the owner knows then. After it returns, c is gone.
 *
 * Ending:
 *   conn_close(): orderly. No handler runs any more; queued output (a reply,
 *             a WebSocket close frame) is flushed, TLS close_notify sent,
 *             writing shut down and input drained for up to 2 s so the peer
 *             reads everything, then the module frees c.
 *   conn_free(): abortive, at once (from a handler: when it returns).
 *   After either call the owner must not use c again.
 *
 * Timers: connect+handshake deadline (client: timeout_ms of conn_connect;
 * server: listener_opts.handshake_ms); idle timeout (conn_set_idle_timeout:
 * no byte received for ms ends the connection with "idle timeout", the
 * building block of conn_ws_heartbeat); WebSocket close handshake
 * (5 s after conn_ws_close the connection ends anyway).
 *
 * TLS: after each read, while tls_pending() > 0 the fd is marked with
 * loop_fd_pending(); want-read/want-write are honoured in every direction.
 * Output is plaintext queued in the conn and written as the socket allows.
 *
 * A server, in outline (error handling left out):
 *
 *   static void on_request(struct conn *c, void *arg, struct http_parser *req)
 *   {
 *           if (!strcmp(http_path(req), "/v1/agent"))
 *                   conn_upgrade(c);          // then on_message for frames
 *           else
 *                   conn_reply_json(c, 200, "{\"ok\":true}");
 *   }
 *   static const struct conn_handlers h = { .ready = on_ready,
 *           .request = on_request, .message = on_message, .close = on_close };
 *   l = listener_new(loop, &addr, tls_server_cfg, NULL, &h, state, err, n);
 *
 * and a client:
 *
 *   c = conn_connect(loop, &addr, tls_client_cfg, "base.example", 0, &h2,
 *                    state, err, n);
 *   conn_ws_connect(c, "/v1/agent", NULL);   // upgraded, message, close
 *
 * Memory: sizeof(struct conn) is 280 bytes (x86-64) plus the TLS state (about
 * 37 KiB, tls.h) and, while in HTTP mode, the HTTP parser (freed after an
 * upgrade). Input and output buffers are released whenever they empty.
 */
#ifndef DPLOYR_CONN_H
#define DPLOYR_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http.h"
#include "loop.h"
#include "net.h"
#include "tls.h"
#include "ws.h"

struct conn;
struct listener;

typedef void (*conn_fn)(struct conn *c, void *arg);
typedef void (*conn_http_fn)(struct conn *c, void *arg, struct http_parser *msg);
typedef void (*conn_message_fn)(struct conn *c, void *arg, enum ws_type type, const void *data,
				size_t len);
typedef void (*conn_pong_fn)(struct conn *c, void *arg, uint64_t rtt_us);
typedef void (*conn_close_fn)(struct conn *c, void *arg, int code, const char *reason);

/* The conn keeps the pointer: the struct must outlive it (static const). */
struct conn_handlers {
	conn_fn ready;
	conn_http_fn request;
	conn_http_fn response;
	conn_fn upgraded;
	conn_message_fn message;
	conn_pong_fn pong;
	conn_fn drain;
	conn_close_fn close;
};

/* --- client ------------------------------------------------------------------ */

/* Connect to addr (numeric; net_resolve beforehand for names). tls NULL:
 * plain TCP (tests only). server_name: the name or IP literal the server
 * certificate must be valid for (also the Host header); NULL: the
 * address's text, and no name check. timeout_ms bounds connect + TLS
 * handshake (<= 0: 10 s). Returns NULL with err only for immediate
 * failures; later ones reach the close handler. */
struct conn *conn_connect(struct loop *loop, const struct net_addr *addr, struct tls_config *tls,
			  const char *server_name, int timeout_ms, const struct conn_handlers *h,
			  void *arg, char *err, size_t errlen);
/* Send a request (one at a time: -1 while one awaits its response).
 * headers: NULL, or name, value, ..., NULL (Host and Content-Length are
 * added). body may be NULL with len 0. -1 with conn_error() on a bad
 * method, target or header, or a conn not in HTTP mode. */
int conn_request(struct conn *c, const char *method, const char *target,
		 const char *const *headers, const void *body, size_t len);
/* Send a WebSocket upgrade request for target with extra headers (e.g.
 * Authorization); the upgraded handler follows, or close on refusal
 * (reason quotes the status). */
int conn_ws_connect(struct conn *c, const char *target, const char *const *headers);

/* --- server ------------------------------------------------------------------ */

struct listener_opts {
	/* TLS handshakes in flight (0: 64). While the cap is reached the
	 * listener stops accepting: further clients wait in the kernel's
	 * backlog (then their SYNs are dropped and they retry), so a
	 * reconnect storm costs queue space, not CPU. */
	int max_handshakes;
	int handshake_ms; /* accept to handshake done (0: 10 s) */
	int idle_ms;      /* idle timeout of new conns (0: 60 s, -1: none) */
	int backlog;      /* listen backlog (0: SOMAXCONN) */
};

/* Listen on addr; every accepted connection becomes a server conn with
 * handlers h and arg (change them in ready with conn_set_handlers). tls
 * NULL: plain TCP (tests only). o may be NULL for defaults. */
struct listener *listener_new(struct loop *loop, const struct net_addr *addr,
			      struct tls_config *tls, const struct listener_opts *o,
			      const struct conn_handlers *h, void *arg, char *err, size_t errlen);
/* Stop listening and close the socket. Conns already accepted live on
 * (those in their handshake keep the listener's memory until they finish).
 * Accepts NULL. */
void listener_free(struct listener *l);
/* The bound address (to learn the port after listening on port 0). */
int listener_local_addr(const struct listener *l, struct net_addr *out);
/* Accepted connections still in their TLS handshake. */
int listener_handshakes(const struct listener *l);
/* Connections accepted so far. */
unsigned long listener_accepted(const struct listener *l);

/* The request being answered (NULL when none). */
struct http_parser *conn_current_request(struct conn *c);
/* Answer the current request: status, extra headers (NULL, or name,
 * value, ..., NULL), content type (NULL: none) and body. Content-Length
 * is added; "Connection: close" too when the request did not allow
 * keep-alive, and the connection is then closed after the reply (close
 * handler with reason "connection closed after reply"). -1 with
 * conn_error() when no request awaits or a header is invalid. */
int conn_reply(struct conn *c, int status, const char *const *headers,
	       const char *content_type, const void *body, size_t len);
/* application/json body (text, NUL-terminated). */
int conn_reply_json(struct conn *c, int status, const char *json);
/* {"error":"<message>"} with status. */
int conn_reply_error(struct conn *c, int status, const char *message);
/* Accept the current request as a WebSocket upgrade (ws_server_handshake):
 * 0, and message handlers follow. -1 when the request is not a valid
 * upgrade: the 400/426 reply is sent and the connection closed after it
 * (close handler follows). */
int conn_upgrade(struct conn *c);

/* --- both sides -------------------------------------------------------------- */

/* The HTTP parser's limits (http.h: 1 MiB body, 32 KiB head), to adjust
 * before the first message; NULL after an upgrade. */
struct http_limits *conn_http_limits(struct conn *c);
/* Replace handlers and arg. */
void conn_set_handlers(struct conn *c, const struct conn_handlers *h, void *arg);
void *conn_arg(const struct conn *c);
struct loop *conn_loop(const struct conn *c);
/* Idle timeout: ms without a received byte ends the connection; 0 none. */
void conn_set_idle_timeout(struct conn *c, int ms);
/* Peer address text ("127.0.0.1:5555"); the peer certificate's subject CN
 * and serial (lowercase hex) after the handshake, else NULL. Owned by c. */
const char *conn_peer_addr(const struct conn *c);
const char *conn_peer_cn(const struct conn *c);
const char *conn_peer_serial(const struct conn *c);
/* Whether the conn carries WebSocket messages. */
int conn_is_ws(const struct conn *c);
/* The reason for the last failed call ("" if none). */
const char *conn_error(const struct conn *c);

/* WebSocket (after upgrade). -1 with conn_error() ("write queue full":
 * wait for drain) as ws.h says. */
int conn_ws_send(struct conn *c, enum ws_type type, const void *data, size_t len);
int conn_ws_send_text(struct conn *c, const char *text);
int conn_ws_ping(struct conn *c);
/* Start the close handshake; the close handler reports its end. */
int conn_ws_close(struct conn *c, int code, const char *reason);
/* Heartbeat (DESIGN.md section 3): a ping every interval_ms, and an idle
 * timeout of 3 x interval_ms, so a silent peer ends the connection ("idle
 * timeout: ..."); the pong handler gets each round trip. No ping is sent
 * while the last one is unanswered. 0 stops both. */
int conn_ws_heartbeat(struct conn *c, int interval_ms);
/* Bytes queued for the peer (ws queue plus plaintext not yet encrypted). */
size_t conn_ws_queued(const struct conn *c);
/* Limits (ws.h defaults: 1 MiB message, 4 MiB queue). */
void conn_ws_set_max_message(struct conn *c, size_t n);
void conn_ws_set_max_queue(struct conn *c, size_t n);

void conn_close(struct conn *c);
void conn_free(struct conn *c);

/* --- synchronous helpers (CLI, agent join; they block) ------------------------ */

/* One request on a private loop: connect, TLS with tls (NULL: plain),
 * send, wait for the response or timeout_ms (<= 0: 30 s). On success
 * returns 0 with *status and the body appended to body (may be NULL).
 * headers as for conn_request. */
int conn_request_sync(const struct net_addr *addr, struct tls_config *tls, const char *server_name,
		      const char *method, const char *target, const char *const *headers,
		      const void *req_body, size_t req_len, int *status, struct buf *body,
		      int timeout_ms, char *err, size_t errlen);
/* CA pinning: GET /v1/ca over TLS WITHOUT verification, then compare the
 * returned certificate's fingerprint (pki_cert_fingerprint) with pin
 * ("sha256:<hex>") in constant time. Returns the CA PEM (caller frees) or
 * NULL with err, e.g. "ca fingerprint mismatch: expected sha256:...,
 * base presented sha256:...". Only trust the result because it matched. */
char *conn_fetch_pinned_ca(const struct net_addr *addr, const char *pin, int timeout_ms,
			   char *err, size_t errlen);

#endif
