/* client: the CLI's side of the base API (layer 4).
 *
 * The CLI context is one JSON file, written by `dployr login`:
 *
 *   {"base":"https://HOST:PORT","ca":"-----BEGIN CERTIFICATE-----...","token":"dpy_..."}
 *
 * found at `--config FILE`, else $DPLOYR_CONFIG, else
 * $XDG_CONFIG_HOME/dployr/config.json (an absolute XDG_CONFIG_HOME only, as
 * the XDG spec says), else ~/.config/dployr/config.json. It is written
 * atomically (temporary file, fsync, rename) with mode 0600; a directory
 * the write has to create is made 0700.
 *
 * Trust: the CA is fetched once, at login (client_fetch_ca: GET /v1/ca
 * over TLS without verification, accepted only when its fingerprint equals
 * the pin given out of band), and every later connection verifies the
 * base's certificate against it and against the host of the base URL.
 *
 * API calls (struct client) are synchronous: the CLI blocks while it waits.
 * Errors of the base ({"error":"message"} with a 4xx/5xx status) become
 * the message itself, so the applet can print "dployr VERB: message".
 * The token is sent only in the Authorization header; nothing here prints
 * or logs it.
 */
#ifndef DPLOYR_CLIENT_H
#define DPLOYR_CLIENT_H

#include <stddef.h>
#include <time.h>

#include "proto.h"

/* The context. Members are malloc'ed strings owned by the struct. */
struct client_ctx {
	char *base;  /* canonical "https://HOST:PORT" */
	char *ca;    /* CA certificate PEM pinned at login */
	char *token; /* API token "dpy_..." */
};

/* Largest context file read. */
#define CLIENT_CTX_MAX (64 * 1024)
/* Longest base URL accepted. */
#define CLIENT_URL_MAX 300

/* --- the context file ------------------------------------------------------- */

/* The context path from the sources in order of precedence: flag (the
 * --config value), env_config ($DPLOYR_CONFIG), xdg ($XDG_CONFIG_HOME),
 * home ($HOME); NULL or "" means unset, a relative xdg is ignored.
 * Returns a malloc'ed path, or NULL with a reason when none applies. */
char *client_config_path_from(const char *flag, const char *env_config, const char *xdg,
			      const char *home, char *err, size_t errlen);
/* The same with the process environment. */
char *client_config_path(const char *flag, char *err, size_t errlen);

/* Free the members and zero ctx (the token is wiped first). Safe twice. */
void client_ctx_release(struct client_ctx *ctx);
/* Parse the file's text into ctx (overwritten; release it in any case).
 * Checks every member (base a valid https URL, ca a certificate, token a
 * token) and reports every problem: "context 'PATH': 'token' is missing;
 * 'base' must be ...". */
int client_ctx_parse(struct client_ctx *ctx, const char *text, size_t len, const char *path,
		     char *err, size_t errlen);
/* Read and parse path. A missing file gives "not logged in: run dployr
 * login (no context at 'PATH')". */
int client_ctx_load(struct client_ctx *ctx, const char *path, char *err, size_t errlen);
/* Write ctx to path atomically with mode 0600, creating missing
 * directories with mode 0700. */
int client_ctx_save(const struct client_ctx *ctx, const char *path, char *err, size_t errlen);

/* --- checks of user input ----------------------------------------------------- */

/* Parse a base URL: "https://HOST:PORT", "https://HOST" (port 443) or
 * "HOST:PORT" (https implied); HOST is a name, an IPv4 literal or an IPv6
 * literal in brackets; a trailing "/" is allowed, nothing else after the
 * authority. Writes the canonical URL ("https://HOST:PORT"), the address
 * text for net_resolve ("HOST:PORT") and the TLS server name (HOST without
 * brackets), each at most CLIENT_URL_MAX bytes with the terminator; any
 * output pointer may be NULL. */
int client_base_parse(const char *url, char *canon, char *addr, char *host, char *err,
		      size_t errlen);
/* A CA pin: "sha256:" and 64 hex digits (either case). */
int client_pin_check(const char *pin, char *err, size_t errlen);
/* An API or join token as it may travel in a header or a JSON string:
 * 8 to 256 characters of [A-Za-z0-9_-]. */
int client_token_check(const char *token, char *err, size_t errlen);

/* An instance name: a DNS label as blueprint names are (2 to 63
 * characters of [a-z0-9-], starting with a letter, not ending with '-',
 * no "--"). */
int client_name_check(const char *name, char *err, size_t errlen);

/* --- talking to base ------------------------------------------------------------ */

/* CA pinning (contract "CA pinning"): fetch GET /v1/ca from the base at
 * url without verifying the server, compare the certificate's fingerprint
 * with pin in constant time and return the CA PEM (caller frees). NULL
 * with err otherwise, in particular "ca fingerprint mismatch: expected
 * sha256:..., base presented sha256:...". Used by login and agent join. */
char *client_fetch_ca(const char *url, const char *pin, int timeout_ms, char *err, size_t errlen);

struct client;

/* A client for base url trusting ca_pem, sending token (may be NULL for
 * unauthenticated calls). Resolves the host (blocks on DNS). NULL with
 * err on a bad URL, CA or address. */
struct client *client_new(const char *url, const char *ca_pem, const char *token, char *err,
			  size_t errlen);
/* Convenience: a client from a context. */
struct client *client_new_ctx(const struct client_ctx *ctx, char *err, size_t errlen);
void client_free(struct client *cl);
/* Per-request timeout (default 30 s). */
void client_set_timeout(struct client *cl, int ms);
/* How long client_task_stream retries a broken stream (default 60 s;
 * 0: not at all). */
void client_set_reconnect(struct client *cl, int ms);
/* The canonical base URL. */
const char *client_base(const struct client *cl);

/* One JSON request: method, path ("/v1/..."), body (JSON text or NULL).
 * *status (may be NULL) gets the HTTP status, or 0 when no answer came.
 * On a 2xx answer returns 0 and, when reply is not NULL, the parsed body
 * (caller frees with proto_json_free; an empty body gives NULL). Else -1
 * with err: the base's "error" message for a 4xx/5xx ("instance 'web-1'
 * is offline"), "base answered 404 Not Found" without one, or the
 * transport's reason. raw (may be NULL) gets the body as received. */
int client_call(struct client *cl, const char *method, const char *path, const char *body,
		int *status, struct proto_json **reply, struct buf *raw, char *err, size_t errlen);

/* Streaming a task's output (GET /v1/tasks/ID/stream, a WebSocket). */
struct client_task_exit {
	int status; /* exit status (1 when the task never ran) */
	int ran;    /* whether it has an exit status: 0 when cancelled or
		       failed before it started */
	int signal; /* 0, or the signal that killed the task */
	int lost;   /* the stream broke: status came from GET /v1/tasks/ID and
		       output may be missing */
};

/* stream: 1 stdout, 2 stderr; data is borrowed for the call. */
typedef void (*client_output_fn)(void *arg, int stream, const void *data, size_t len);
/* SIGINT or SIGTERM arrived the count-th time (1: cancel was sent). */
typedef void (*client_interrupt_fn)(void *arg, int count);

enum {
	CLIENT_INTERRUPTED = -2, /* client_task_stream: given up on a second interrupt */
};

/* Follow task_id until its exit, passing output as it arrives. While it
 * runs SIGINT and SIGTERM are taken over: the first sends a cancel to the
 * task and keeps waiting for its exit; the second stops waiting and
 * returns CLIENT_INTERRUPTED. Returns 0 with *ex filled, or -1 with err.
 * interrupt may be NULL.
 *
 * A stream that breaks before the exit is opened again (backoff 0.25 s
 * doubling to 5 s, for the reconnect time) as long as GET /v1/tasks/ID
 * does not refuse: base replays a task's stored output from its start to
 * every new subscriber, so output already passed on is skipped by its
 * byte offset per stream and nothing is shown twice. After that time the
 * task's result from GET /v1/tasks/ID is used if it has one (ex->lost). */
int client_task_stream(struct client *cl, const char *task_id, client_output_fn output,
		       client_interrupt_fn interrupt, void *arg, struct client_task_exit *ex,
		       char *err, size_t errlen);

/* --- presentation ------------------------------------------------------------------ */

/* A time from the API: a number of seconds since the epoch or an RFC 3339
 * text ("2026-11-22T01:25:00Z", fractions and offsets allowed). -1 when v
 * is neither (or NULL). */
int client_time(const struct proto_jv *v, time_t *out);
/* "12s ago", "5m ago", "3h ago", "2d ago" ("in 5m" for the future), for
 * then relative to now. */
void client_reltime(time_t then, time_t now, char *out, size_t outlen);
/* "2026-11-22T01:25:00Z". */
void client_utc(time_t t, char *out, size_t outlen);

#endif
