/* ws: a WebSocket connection (RFC 6455) over an abstract byte transport.
 *
 * The owner moves bytes: it feeds what it receives with ws_feed() and ws
 * writes through the owner's write handler, which may accept fewer bytes
 * than offered (backpressure: the rest stays queued until ws_flush(), to
 * call when the transport is writable again). So the same object works over
 * plain TCP, TLS, or another ws in memory. Server and client sides; frames
 * from a client are masked with random keys, frames from a server are not,
 * and a frame masked the wrong way closes with 1002.
 *
 * Received messages are reassembled from fragments and bounded (default
 * 1 MiB: larger closes with 1009); text must be UTF-8 (else 1007). Pings
 * are answered automatically. Outgoing bytes are bounded per connection
 * (default 4 MiB queued): ws_send() refuses more with "write queue full"
 * so a slow peer cannot grow memory without bound.
 *
 * Handlers run from inside ws_feed(), ws_flush(), ws_send(), ws_ping() and
 * ws_close(). They may call ws_send(), ws_ping() and ws_close(), but never
 * ws_free().
 *
 * The handshake helpers use http.h: the server checks a parsed upgrade
 * request and writes the 101 response; the client writes the request and
 * checks the 101. Bytes after either head belong to ws_feed().
 */
#ifndef DPLOYR_WS_H
#define DPLOYR_WS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "http.h"

enum ws_role {
	WS_SERVER,
	WS_CLIENT,
};

enum ws_type {
	WS_TEXT,
	WS_BINARY,
};

/* Close codes of RFC 6455 section 7.4 that ws itself uses. */
enum {
	WS_NORMAL = 1000,
	WS_GOING_AWAY = 1001,
	WS_PROTOCOL_ERROR = 1002,
	WS_NO_STATUS = 1005,   /* the peer's close had no code */
	WS_ABNORMAL = 1006,    /* the transport failed: no close frame */
	WS_INVALID_DATA = 1007,
	WS_POLICY = 1008,
	WS_TOO_BIG = 1009,
	WS_INTERNAL = 1011,
};

/* Write up to len bytes to the transport; return how many were taken
 * (0 when it would block) or -1 when the transport failed. */
typedef ssize_t (*ws_write_fn)(void *arg, const void *data, size_t len);
/* A complete message; data is borrowed for the call (copy to keep it) and
 * NUL-terminated after len bytes. */
typedef void (*ws_message_fn)(void *arg, enum ws_type type, const void *data, size_t len);
/* The pong answering the last ws_ping(), rtt_us microseconds later. */
typedef void (*ws_pong_fn)(void *arg, uint64_t rtt_us);
/* The connection is over (close handshake done, protocol error sent, or
 * transport failed): code and reason as received from the peer, or as
 * sent by us when we closed first or failed. Called once; the owner then
 * closes the transport and frees the ws. After a protocol error the peer
 * may still be sending: shut down writing and drain input for a while
 * before closing a TCP socket, or the kernel's reset may destroy the close
 * frame in flight. */
typedef void (*ws_close_fn)(void *arg, int code, const char *reason);
/* Everything queued has been handed to the transport, after the transport
 * had refused bytes (so the owner can stop waiting for writability). */
typedef void (*ws_drain_fn)(void *arg);

/* Only write is required. */
struct ws_handlers {
	ws_write_fn write;
	ws_message_fn message;
	ws_pong_fn pong;
	ws_close_fn close;
	ws_drain_fn drain;
};

struct ws;

/* A connection whose handshake is done. h is copied; arg is passed to
 * every handler. */
struct ws *ws_new(enum ws_role role, const struct ws_handlers *h, void *arg);
void ws_free(struct ws *ws);
/* Largest received message (default 1 MiB). */
void ws_set_max_message(struct ws *ws, size_t n);
/* Most bytes queued for writing (default 4 MiB). */
void ws_set_max_queue(struct ws *ws, size_t n);

/* Process received bytes. Returns 0, or -1 when the transport failed
 * while answering or the peer's pings overflowed the write queue (the
 * close handler has run). Protocol errors in the input close the
 * connection with the matching code and return 0. Bytes after the close
 * handshake or a protocol error are ignored. */
int ws_feed(struct ws *ws, const void *data, size_t len);
/* Hand queued bytes to the transport, to call when it is writable.
 * Returns 0 (some may stay queued) or -1 when the transport failed. */
int ws_flush(struct ws *ws);
/* Queue a message (data is copied) and start writing it. Returns -1 with
 * the reason in ws_error() when the connection is closing, text is not
 * valid UTF-8, or the queue would exceed its limit ("write queue full");
 * nothing is queued then. */
int ws_send(struct ws *ws, enum ws_type type, const void *data, size_t len);
/* Send a ping; the pong handler learns the round trip. */
int ws_ping(struct ws *ws);
/* Start the close handshake with code (1000-4999) and a reason of at most
 * 123 bytes. The close handler runs when the peer answers. */
int ws_close(struct ws *ws, int code, const char *reason);

/* Whether bytes wait for the transport (poll for writability). */
int ws_want_write(const struct ws *ws);
/* Bytes of queued messages not yet handed to the transport. */
size_t ws_queued(const struct ws *ws);
/* Whether the connection is over (the close handler has run). */
int ws_closed(const struct ws *ws);
/* The close code and reason reported to the close handler (0 and "" before). */
int ws_close_code(const struct ws *ws);
const char *ws_close_reason(const struct ws *ws);
/* The reason for the last failure. */
const char *ws_error(const struct ws *ws);

/* Sec-WebSocket-Accept for key: base64(SHA-1(key + RFC 6455 GUID)). out
 * holds 29 bytes. */
void ws_accept_key(char *out, const char *key);

/* Check an upgrade request parsed to HTTP_DONE. On success appends the 101 response to
 * out and returns 0. Otherwise appends an error response (400, or 426
 * with Sec-WebSocket-Version: 13 for another version), writes the reason
 * to err and returns -1. */
int ws_server_handshake(const struct http_parser *req, struct buf *out, char *err, size_t errlen);
/* Append an upgrade request for host and target (origin-form), with a new
 * random key written to key (25 bytes) for ws_client_verify(). Returns -1
 * on a target or host that cannot be written. */
int ws_client_request(struct buf *out, const char *host, const char *target, char *key);
/* Check a parsed response to that request: 101, Upgrade and Connection
 * tokens, the accept value for key, and no extension or subprotocol
 * (none were offered). Returns 0, or -1 with the reason in err. */
int ws_client_verify(const struct http_parser *resp, const char *key, char *err, size_t errlen);

#endif
