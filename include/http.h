/* http: a bounded, incremental HTTP/1.1 message parser and head writers.
 *
 * A pure codec (no sockets, no loop): the owner feeds bytes as they arrive
 * with http_parse(), which consumes what it can and says whether a whole
 * message (head and body) is ready. One parser reads either requests (the
 * API server, WebSocket upgrades) or responses (the CLI client, the
 * agent's upgrade reply). After a message, http_reset() readies the parser
 * for the next one; bytes not consumed belong to it (pipelining) or, after
 * a 101 response or an upgrade request, to the new protocol.
 *
 * Strictness (smuggling defence, RFC 9112): lines end in CRLF (a bare LF or
 * a bare CR is an error); obsolete line folding, whitespace before a
 * header's colon, control characters and NUL are errors; request targets are
 * origin-form ("/path?query"), or "*" for OPTIONS; versions are HTTP/1.1
 * and HTTP/1.0 only; Content-Length is digits only, repeated only with the
 * same value; Transfer-Encoding is "chunked" alone and never together with
 * Content-Length; an HTTP/1.1 request has exactly one Host header. The
 * parser stops at the first error, which carries the status to answer with
 * (400, 413, 414, 431, 501, 505) and a reason; the connection must then be
 * closed, since the stream's framing is no longer known.
 */
#ifndef DPLOYR_HTTP_H
#define DPLOYR_HTTP_H

#include <stddef.h>

#include "buf.h"

enum http_kind {
	HTTP_REQUEST,
	HTTP_RESPONSE,
};

/* Results of http_parse(). */
enum {
	HTTP_ERROR = -1, /* see http_error() and http_error_status() */
	HTTP_MORE = 0,   /* every byte was consumed; feed more */
	HTTP_DONE = 1,   /* a whole message is ready; *used says how far */
};

/* Limits, in bytes unless said otherwise. http_new() sets the defaults;
 * the owner may change them before the first http_parse(). */
struct http_limits {
	size_t start_line;  /* request or status line, CRLF excluded: 8 KiB (414) */
	size_t header_line; /* one header line, CRLF excluded: 8 KiB (431) */
	size_t head;        /* whole head, start line and headers: 32 KiB (431) */
	size_t headers;     /* number of header fields: 100 (431) */
	size_t body;        /* decoded body: 1 MiB (413) */
	size_t trailers;    /* chunked trailer section, discarded: 8 KiB (431) */
};

struct http_parser;

/* A parser for messages of the given kind, with default limits. */
struct http_parser *http_new(enum http_kind kind);
void http_free(struct http_parser *p);
/* The parser's limits, to adjust before parsing. */
struct http_limits *http_limits(struct http_parser *p);
/* For responses: the request was HEAD, so the response has no body. Kept
 * across http_reset(); set it for each exchange. */
void http_set_head_request(struct http_parser *p, int head);

/* Feed len bytes. Stores in *used how many were consumed (all of them
 * unless HTTP_DONE) and returns HTTP_MORE, HTTP_DONE or HTTP_ERROR. After
 * HTTP_DONE further calls consume nothing and return HTTP_DONE until
 * http_reset(); after HTTP_ERROR they return HTTP_ERROR. */
int http_parse(struct http_parser *p, const void *data, size_t len, size_t *used);
/* The peer closed its side. A response without length ends here
 * (HTTP_DONE); anything else in progress is truncated (HTTP_ERROR, 400).
 * With nothing started, returns HTTP_MORE: a clean close between messages. */
int http_finish(struct http_parser *p);
/* Forget the message, keeping limits and allocations, for the next one. */
void http_reset(struct http_parser *p);

/* After HTTP_ERROR: the reason ("header 'x' has no colon") and the status
 * a server should answer with. */
const char *http_error(const struct http_parser *p);
int http_error_status(const struct http_parser *p);

/* The parsed message. Strings are owned by the parser and valid until
 * http_reset() or http_free(). */
const char *http_method(const struct http_parser *p);  /* requests */
const char *http_target(const struct http_parser *p);  /* raw, "/a%20b?x=1" */
const char *http_path(const struct http_parser *p);    /* raw target before '?' */
const char *http_query(const struct http_parser *p);   /* raw after '?', or "" */
int http_status(const struct http_parser *p);          /* responses */
const char *http_reason(const struct http_parser *p);  /* responses */
int http_minor(const struct http_parser *p);           /* 1 or 0: HTTP/1.x */
size_t http_header_count(const struct http_parser *p);
/* Header i in arrival order: its name as sent, and its value trimmed. */
const char *http_header_name(const struct http_parser *p, size_t i);
const char *http_header_value(const struct http_parser *p, size_t i);
/* The first value of the header named name (any case), or NULL. */
const char *http_header(const struct http_parser *p, const char *name);
/* Whether some header named name holds token among its comma-separated
 * elements, both compared in any case ("Connection", "upgrade"). */
int http_header_has_token(const struct http_parser *p, const char *name, const char *token);
/* The decoded body (de-chunked), NUL-terminated after len bytes. */
const char *http_body(const struct http_parser *p, size_t *len);
/* Whether the connection may carry another message after this one:
 * HTTP/1.1 unless "Connection: close", HTTP/1.0 only with "keep-alive",
 * never after a body read until close. */
int http_keep_alive(const struct http_parser *p);

/* Percent-decode s[0..n) into out (appended). plus_space turns '+' into
 * ' ' (query strings). Returns -1, leaving out as it was, on an invalid
 * escape or on %00. */
int http_pct_decode(struct buf *out, const char *s, size_t n, int plus_space);
/* Look up name in a raw query string ("a=1&b=x%20y"): appends the decoded
 * value of the first match to out and returns 1; returns 0 when absent and
 * -1 when the query holds an invalid escape. A name without '=' has the
 * empty value. */
int http_query_param(struct buf *out, const char *query, const char *name);

/* The standard reason phrase for status ("Not Found"), "Unknown" if none. */
const char *http_status_text(int status);

/* Append a response head: status line, then the name/value pairs given as
 * arguments up to a NULL name, then the blank line. Returns -1, leaving out
 * as it was, when a name is not a token or a value holds CR, LF or another
 * control character (header injection). */
int http_write_response_head(struct buf *out, int status, ...) __attribute__((sentinel));
/* Same for a request head: "METHOD target HTTP/1.1". The target must be
 * origin-form without spaces or control characters. */
int http_write_request_head(struct buf *out, const char *method, const char *target, ...)
	__attribute__((sentinel));

#endif
