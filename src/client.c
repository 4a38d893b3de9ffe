#include "client.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "conn.h"
#include "crypt.h"
#include "http.h"
#include "loop.h"
#include "net.h"
#include "pki.h"
#include "tls.h"
#include "xalloc.h"

#define DEFAULT_TIMEOUT_MS   30000
#define DEFAULT_RECONNECT_MS 60000
/* Stream liveness: a ping every PING_MS; silence for IDLE_MS ends it. */
#define PING_MS 10000
#define IDLE_MS 35000
/* Longest wait for a closed conn to finish lingering. */
#define LINGER_WAIT_MS 2500

/* --- the context file ------------------------------------------------------- */

static int set(const char *s)
{
	return s && *s;
}

char *client_config_path_from(const char *flag, const char *env_config, const char *xdg,
			      const char *home, char *err, size_t errlen)
{
	if (set(flag))
		return xstrdup(flag);
	if (set(env_config))
		return xstrdup(env_config);
	if (set(xdg) && xdg[0] == '/')
		return xasprintf("%s/dployr/config.json", xdg);
	if (set(home))
		return xasprintf("%s/.config/dployr/config.json", home);
	snprintf(err, errlen,
		 "no context path: set HOME, XDG_CONFIG_HOME or DPLOYR_CONFIG, "
		 "or pass --config FILE");
	return NULL;
}

char *client_config_path(const char *flag, char *err, size_t errlen)
{
	return client_config_path_from(flag, getenv("DPLOYR_CONFIG"), getenv("XDG_CONFIG_HOME"),
				       getenv("HOME"), err, errlen);
}

static void wipe_free(char *s)
{
	if (s) {
		crypt_wipe(s, strlen(s));
		free(s);
	}
}

void client_ctx_release(struct client_ctx *ctx)
{
	free(ctx->base);
	free(ctx->ca);
	wipe_free(ctx->token);
	ctx->base = ctx->ca = ctx->token = NULL;
}

/* Append "; " between problems. */
static void problem(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	if (b->len)
		buf_puts(b, "; ");
	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

static const char *ctx_keys[] = {"base", "ca", "token"};

int client_ctx_parse(struct client_ctx *ctx, const char *text, size_t len, const char *path,
		     char *err, size_t errlen)
{
	char m[256];
	struct buf probs = BUF_INIT;
	memset(ctx, 0, sizeof(*ctx));
	struct proto_json *doc = proto_json_parse(text, len, m, sizeof(m));
	if (!doc) {
		snprintf(err, errlen, "context '%s': %s", path, m);
		return -1;
	}
	const struct proto_jv *root = proto_json_root(doc);
	if (proto_jv_type(root) != PROTO_J_OBJ) {
		problem(&probs, "not a JSON object");
		goto out;
	}
	char *vals[3] = {NULL, NULL, NULL};
	for (size_t i = 0; i < 3; i++) {
		const struct proto_jv *v = proto_jv_get(root, ctx_keys[i]);
		if (!v)
			problem(&probs, "'%s' is missing", ctx_keys[i]);
		else if (!proto_jv_str(v))
			problem(&probs, "'%s' must be a string", ctx_keys[i]);
		else
			vals[i] = xstrdup(proto_jv_str(v));
	}
	ctx->base = vals[0];
	ctx->ca = vals[1];
	ctx->token = vals[2];
	char canon[CLIENT_URL_MAX];
	if (ctx->base) {
		if (client_base_parse(ctx->base, canon, NULL, NULL, m, sizeof(m)) < 0) {
			problem(&probs, "'base': %s", m);
		} else {
			free(ctx->base);
			ctx->base = xstrdup(canon);
		}
	}
	struct pki_cert_info info;
	if (ctx->ca && pki_cert_info(ctx->ca, &info, m, sizeof(m)) < 0)
		problem(&probs, "'ca': %s", m);
	if (ctx->token && client_token_check(ctx->token, m, sizeof(m)) < 0)
		problem(&probs, "'token': %s", m);
out:
	proto_json_free(doc);
	if (probs.len) {
		snprintf(err, errlen, "context '%s': %s", path, probs.data);
		buf_release(&probs);
		return -1;
	}
	return 0;
}

int client_ctx_load(struct client_ctx *ctx, const char *path, char *err, size_t errlen)
{
	struct buf text = BUF_INIT;
	char m[512];
	memset(ctx, 0, sizeof(*ctx));
	if (buf_read_file(&text, path, CLIENT_CTX_MAX, m, sizeof(m)) < 0) {
		if (errno == ENOENT)
			snprintf(err, errlen,
				 "not logged in: run dployr login (no context at '%s')", path);
		else if (errno == E2BIG)
			snprintf(err, errlen, "context '%s': larger than %d bytes", path,
				 CLIENT_CTX_MAX);
		else
			snprintf(err, errlen, "context: %s", m);
		crypt_wipe(text.data, text.len);
		buf_release(&text);
		return -1;
	}
	int rc = client_ctx_parse(ctx, text.data, text.len, path, err, errlen);
	crypt_wipe(text.data, text.len);
	buf_release(&text);
	return rc;
}

/* mkdir -p for the directories above path's last component; the ones made
 * here get mode 0700 whatever the umask. */
static int make_parents(const char *path, char *err, size_t errlen)
{
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	int rc = 0;
	if (!slash || slash == dir)
		goto out;
	*slash = '\0';
	for (char *p = dir + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(dir, 0700) == 0) {
			if (chmod(dir, 0700) < 0) {
				snprintf(err, errlen, "chmod '%s': %s", dir, strerror(errno));
				rc = -1;
				goto out;
			}
		} else if (errno != EEXIST) {
			snprintf(err, errlen, "create directory '%s': %s", dir, strerror(errno));
			rc = -1;
			goto out;
		}
		*p = c;
		if (c == '\0')
			break;
	}
out:
	free(dir);
	return rc;
}

int client_ctx_save(const struct client_ctx *ctx, const char *path, char *err, size_t errlen)
{
	if (!ctx->base || !ctx->ca || !ctx->token) {
		snprintf(err, errlen, "context '%s': incomplete (base, ca and token are needed)",
			 path);
		return -1;
	}
	if (make_parents(path, err, errlen) < 0)
		return -1;
	struct buf b = BUF_INIT;
	buf_puts(&b, "{\n  \"base\": ");
	buf_json_cstr(&b, ctx->base);
	buf_puts(&b, ",\n  \"ca\": ");
	buf_json_cstr(&b, ctx->ca);
	buf_puts(&b, ",\n  \"token\": ");
	buf_json_cstr(&b, ctx->token);
	buf_puts(&b, "\n}\n");
	int rc = pki_write_file(path, b.data, 0600, err, errlen);
	crypt_wipe(b.data, b.len);
	buf_release(&b);
	return rc;
}

/* --- checks ---------------------------------------------------------------------- */

static int host_char(int c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_';
}

int client_base_parse(const char *url, char *canon, char *addr, char *host, char *err,
		      size_t errlen)
{
	const char *p = url;
	if (strlen(url) >= CLIENT_URL_MAX - 16) {
		snprintf(err, errlen, "base URL is too long");
		return -1;
	}
	if (strncmp(p, "https://", 8) == 0) {
		p += 8;
	} else if (strstr(p, "://")) {
		snprintf(err, errlen, "base URL '%s': must start with https://", url);
		return -1;
	}
	char h[256];
	size_t hn = 0;
	int v6 = 0;
	if (*p == '[') {
		const char *e = strchr(p, ']');
		if (!e || e == p + 1) {
			snprintf(err, errlen, "base URL '%s': unclosed '[' in the host", url);
			return -1;
		}
		for (const char *q = p + 1; q < e; q++)
			if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.') {
				snprintf(err, errlen, "base URL '%s': bad IPv6 address", url);
				return -1;
			}
		hn = (size_t)(e - p - 1);
		if (hn >= sizeof(h))
			goto too_long;
		memcpy(h, p + 1, hn);
		p = e + 1;
		v6 = 1;
	} else {
		while (host_char((unsigned char)p[hn]))
			hn++;
		if (hn >= sizeof(h))
			goto too_long;
		memcpy(h, p, hn);
		p += hn;
	}
	h[hn] = '\0';
	if (hn == 0) {
		snprintf(err, errlen, "base URL '%s': no host", url);
		return -1;
	}
	long port = 443;
	if (*p == ':') {
		p++;
		if (!isdigit((unsigned char)*p)) {
			snprintf(err, errlen, "base URL '%s': bad port", url);
			return -1;
		}
		port = 0;
		while (isdigit((unsigned char)*p) && port <= 65535)
			port = port * 10 + (*p++ - '0');
		if (port < 1 || port > 65535 || isdigit((unsigned char)*p)) {
			snprintf(err, errlen, "base URL '%s': port out of range", url);
			return -1;
		}
	}
	if (*p == '/')
		p++;
	if (*p) {
		snprintf(err, errlen, "base URL '%s': unexpected '%s' (expected https://HOST:PORT)",
			 url, p);
		return -1;
	}
	const char *lb = v6 ? "[" : "", *rb = v6 ? "]" : "";
	if (canon)
		snprintf(canon, CLIENT_URL_MAX, "https://%s%s%s:%ld", lb, h, rb, port);
	if (addr)
		snprintf(addr, CLIENT_URL_MAX, "%s%s%s:%ld", lb, h, rb, port);
	if (host)
		snprintf(host, CLIENT_URL_MAX, "%s", h);
	return 0;
too_long:
	snprintf(err, errlen, "base URL: host is longer than 255 characters");
	return -1;
}

int client_pin_check(const char *pin, char *err, size_t errlen)
{
	size_t n = strlen(pin);
	int ok = n == PKI_FINGERPRINT_LEN && strncmp(pin, "sha256:", 7) == 0;
	for (size_t i = 7; ok && i < n; i++)
		ok = isxdigit((unsigned char)pin[i]) != 0;
	if (!ok) {
		snprintf(err, errlen,
			 "ca fingerprint '%.80s' is not sha256: followed by 64 hex digits", pin);
		return -1;
	}
	return 0;
}

int client_token_check(const char *token, char *err, size_t errlen)
{
	size_t n = strlen(token);
	int ok = n >= 8 && n <= 256;
	for (size_t i = 0; ok && i < n; i++)
		ok = isalnum((unsigned char)token[i]) || token[i] == '_' || token[i] == '-';
	/* never echo the token itself: it is a secret */
	if (!ok) {
		snprintf(err, errlen, "not a token (8 to 256 characters of A-Z a-z 0-9 _ -)");
		return -1;
	}
	return 0;
}

int client_name_check(const char *name, char *err, size_t errlen)
{
	size_t n = strlen(name);
	int ok = n >= 2 && n <= 63 && name[0] >= 'a' && name[0] <= 'z' && name[n - 1] != '-' &&
		 !strstr(name, "--");
	for (size_t i = 0; ok && i < n; i++)
		ok = (name[i] >= 'a' && name[i] <= 'z') || isdigit((unsigned char)name[i]) ||
		     name[i] == '-';
	if (!ok) {
		snprintf(
		    err, errlen,
		    "instance name '%.80s' is not a DNS label (2 to 63 characters of a-z 0-9 -, "
		    "starting with a letter, not ending with '-', no '--')",
		    name);
		return -1;
	}
	return 0;
}

/* --- talking to base ------------------------------------------------------------ */

struct client {
	char base[CLIENT_URL_MAX];
	char host[CLIENT_URL_MAX];
	struct net_addr addr;
	struct tls_config *tls;
	char *auth; /* "Bearer dpy_...", wiped on free */
	int timeout_ms;
	int reconnect_ms;
};

char *client_fetch_ca(const char *url, const char *pin, int timeout_ms, char *err, size_t errlen)
{
	char addrtext[CLIENT_URL_MAX];
	struct net_addr addr;
	if (client_pin_check(pin, err, errlen) < 0 ||
	    client_base_parse(url, NULL, addrtext, NULL, err, errlen) < 0 ||
	    net_resolve(addrtext, &addr, err, errlen) < 0)
		return NULL;
	return conn_fetch_pinned_ca(&addr, pin, timeout_ms, err, errlen);
}

struct client *client_new(const char *url, const char *ca_pem, const char *token, char *err,
			  size_t errlen)
{
	char addrtext[CLIENT_URL_MAX], m[256];
	struct client *cl = xcalloc(1, sizeof(*cl));
	cl->timeout_ms = DEFAULT_TIMEOUT_MS;
	cl->reconnect_ms = DEFAULT_RECONNECT_MS;
	if (client_base_parse(url, cl->base, addrtext, cl->host, err, errlen) < 0)
		goto fail;
	if (token && client_token_check(token, m, sizeof(m)) < 0) {
		snprintf(err, errlen, "token: %s", m);
		goto fail;
	}
	if (net_resolve(addrtext, &cl->addr, err, errlen) < 0)
		goto fail;
	cl->tls = tls_config_new_client(ca_pem, NULL, NULL, m, sizeof(m));
	if (!cl->tls) {
		snprintf(err, errlen, "ca: %s", m);
		goto fail;
	}
	if (token)
		cl->auth = xasprintf("Bearer %s", token);
	return cl;
fail:
	client_free(cl);
	return NULL;
}

struct client *client_new_ctx(const struct client_ctx *ctx, char *err, size_t errlen)
{
	return client_new(ctx->base, ctx->ca, ctx->token, err, errlen);
}

void client_free(struct client *cl)
{
	if (!cl)
		return;
	tls_config_free(cl->tls);
	wipe_free(cl->auth);
	free(cl);
}

void client_set_timeout(struct client *cl, int ms)
{
	cl->timeout_ms = ms > 0 ? ms : DEFAULT_TIMEOUT_MS;
}

void client_set_reconnect(struct client *cl, int ms)
{
	cl->reconnect_ms = ms > 0 ? ms : 0;
}

const char *client_base(const struct client *cl)
{
	return cl->base;
}

/* The message of an error reply, sanitised to one printable line. */
static void error_message(const struct buf *body, int status, char *err, size_t errlen)
{
	char m[128];
	const char *msg = NULL;
	struct proto_json *doc = proto_json_parse(body->data, body->len, m, sizeof(m));
	if (doc)
		msg = proto_jv_get_str(proto_json_root(doc), "error");
	if (msg && *msg) {
		size_t i = 0;
		for (; msg[i] && i + 1 < errlen; i++)
			err[i] = (unsigned char)msg[i] < 0x20 || msg[i] == 0x7f ? '?' : msg[i];
		if (errlen)
			err[i] = '\0';
	} else {
		snprintf(err, errlen, "base answered %d %s", status, http_status_text(status));
	}
	proto_json_free(doc);
}

int client_call(struct client *cl, const char *method, const char *path, const char *body,
		int *status, struct proto_json **reply, struct buf *raw, char *err, size_t errlen)
{
	const char *headers[7];
	size_t h = 0;
	if (cl->auth) {
		headers[h++] = "Authorization";
		headers[h++] = cl->auth;
	}
	headers[h++] = "Accept";
	headers[h++] = "application/json";
	if (body) {
		headers[h++] = "Content-Type";
		headers[h++] = "application/json";
	}
	headers[h] = NULL;
	struct buf resp = BUF_INIT;
	int st = 0, rc = -1;
	char m[512];
	if (reply)
		*reply = NULL;
	if (status)
		*status = 0;
	if (conn_request_sync(&cl->addr, cl->tls, cl->host, method, path, headers, body,
			      body ? strlen(body) : 0, &st, &resp, cl->timeout_ms, m,
			      sizeof(m)) < 0) {
		snprintf(err, errlen, "base %s: %s", cl->base, m);
		goto out;
	}
	if (status)
		*status = st;
	if (raw)
		buf_add(raw, resp.data, resp.len);
	if (st < 200 || st > 299) {
		error_message(&resp, st, err, errlen);
		goto out;
	}
	if (reply && resp.len) {
		*reply = proto_json_parse(resp.data, resp.len, m, sizeof(m));
		if (!*reply) {
			snprintf(err, errlen, "%s %s: bad reply from base: %s", method, path, m);
			goto out;
		}
	}
	rc = 0;
out:
	buf_release(&resp);
	return rc;
}

/* --- the task stream ---------------------------------------------------------------- */

struct stream {
	struct client *cl;
	struct loop *loop;
	struct conn *c;
	client_output_fn output;
	client_interrupt_fn interrupt;
	void *arg;
	struct client_task_exit *ex;
	long long t_ping;
	size_t seen[2];	  /* bytes of stdout, stderr passed on so far */
	size_t replay[2]; /* bytes received on this connection */
	int upgraded, cancel_pending, interrupts;
	int exited; /* the exit message arrived */
	int failed; /* a reason is in err */
	char err[512];
};

static void stream_fail(struct stream *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void stream_fail(struct stream *s, const char *fmt, ...)
{
	if (s->failed)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	s->failed = 1;
}

static void send_cancel(struct stream *s)
{
	if (!s->c || !s->upgraded) {
		s->cancel_pending = 1;
		return;
	}
	s->cancel_pending = 0;
	conn_ws_send_text(s->c, "{\"type\":\"cancel\"}");
}

static void ping_cb(struct loop *loop, long long id, void *arg, int mask)
{
	(void)id;
	(void)mask;
	struct stream *s = arg;
	s->t_ping = 0;
	if (!s->c)
		return;
	conn_ws_ping(s->c);
	s->t_ping = loop_timer_add(loop, PING_MS, ping_cb, s);
}

static void on_upgraded(struct conn *c, void *arg)
{
	(void)c;
	struct stream *s = arg;
	s->upgraded = 1;
	conn_set_idle_timeout(c, IDLE_MS);
	s->t_ping = loop_timer_add(s->loop, PING_MS, ping_cb, s);
	if (s->cancel_pending)
		send_cancel(s);
}

static void on_message(struct conn *c, void *arg, enum ws_type type, const void *data, size_t len)
{
	struct stream *s = arg;
	char m[200];
	if (type != WS_TEXT || s->exited)
		return;
	struct proto_json *doc = proto_json_parse(data, len, m, sizeof(m));
	if (!doc) {
		stream_fail(s, "stream: bad message from base: %s", m);
		conn_ws_close(c, WS_INVALID_DATA, "bad message");
		return;
	}
	const struct proto_jv *root = proto_json_root(doc);
	const char *t = proto_jv_get_str(root, "type");
	if (t && strcmp(t, "output") == 0) {
		const char *which = proto_jv_get_str(root, "stream");
		const char *d = proto_jv_get_str(root, "data");
		struct buf bytes = BUF_INIT;
		int k = which && strcmp(which, "stderr") == 0;
		if (!d || proto_b64_decode(&bytes, d, strlen(d)) < 0) {
			stream_fail(s, "stream: output message without valid base64 data");
		} else {
			/* after a reconnect: skip what was shown already */
			size_t pos = s->replay[k];
			s->replay[k] += bytes.len;
			if (s->replay[k] > s->seen[k]) {
				size_t skip = s->seen[k] > pos ? s->seen[k] - pos : 0;
				if (s->output)
					s->output(s->arg, k ? 2 : 1, bytes.data + skip,
						  bytes.len - skip);
				s->seen[k] = s->replay[k];
			}
		}
		buf_release(&bytes);
	} else if (t && strcmp(t, "exit") == 0) {
		int64_t st = 0, sig = 0;
		const struct proto_jv *vs = proto_jv_get(root, "status");
		const struct proto_jv *vg = proto_jv_get(root, "signal");
		if (!vs || proto_jv_int(vs, &st) < 0)
			st = -1;
		if (vg && proto_jv_type(vg) != PROTO_J_NULL && proto_jv_int(vg, &sig) < 0)
			sig = 0;
		s->ex->ran = st >= 0 && st <= 255;
		s->ex->status = s->ex->ran ? (int)st : 1;
		s->ex->signal = sig < 0 || sig > 127 ? 0 : (int)sig;
		s->exited = 1;
		conn_ws_close(c, WS_NORMAL, "");
	} else if (t && strcmp(t, "error") == 0) {
		const char *e = proto_jv_get_str(root, "error");
		stream_fail(s, "%s", e ? e : "base reported an error");
		conn_ws_close(c, WS_NORMAL, "");
	}
	/* other types (a newer base's progress notes) are ignored */
	proto_json_free(doc);
}

static void on_close(struct conn *c, void *arg, int code, const char *reason)
{
	(void)c;
	struct stream *s = arg;
	s->c = NULL;
	if (s->t_ping)
		loop_timer_cancel(s->loop, s->t_ping);
	s->t_ping = 0;
	if (!s->exited)
		stream_fail(s, "stream ended before the task's exit (%d%s%s)", code,
			    reason && *reason ? ": " : "", reason ? reason : "");
}

static const struct conn_handlers stream_h = {
    .upgraded = on_upgraded,
    .message = on_message,
    .close = on_close,
};

static void on_signal(struct loop *loop, long long signo, void *arg, int mask)
{
	(void)loop;
	(void)signo;
	(void)mask;
	struct stream *s = arg;
	s->interrupts++;
	if (s->interrupts == 1)
		send_cancel(s);
	if (s->interrupt)
		s->interrupt(s->arg, s->interrupts);
}

/* After a broken stream: the task's result from GET /v1/tasks/ID, if it
 * has one. */
static int task_result(struct client *cl, const char *task_id, struct client_task_exit *ex)
{
	char path[256], m[256];
	struct proto_json *doc = NULL;
	snprintf(path, sizeof(path), "/v1/tasks/%s", task_id);
	if (client_call(cl, "GET", path, NULL, NULL, &doc, NULL, m, sizeof(m)) < 0 || !doc)
		return -1;
	const struct proto_jv *root = proto_json_root(doc);
	const char *state = proto_jv_get_str(root, "state");
	int64_t st = 0, sig = 0;
	int rc = -1;
	if (state && (strcmp(state, "done") == 0 || strcmp(state, "failed") == 0 ||
		      strcmp(state, "cancelled") == 0)) {
		const struct proto_jv *vs = proto_jv_get(root, "exit_status");
		const struct proto_jv *vg = proto_jv_get(root, "signal");
		if (vs && proto_jv_int(vs, &st) == 0) {
			if (vg)
				proto_jv_int(vg, &sig);
			ex->ran = st >= 0 && st <= 255;
			ex->status = ex->ran ? (int)st : 1;
			ex->signal = sig < 0 || sig > 127 ? 0 : (int)sig;
			ex->lost = 1;
			rc = 0;
		}
	}
	proto_json_free(doc);
	return rc;
}

static int task_id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > 128)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)id[i]) && id[i] != '-' && id[i] != '_')
			return 0;
	return 1;
}

/* One connection of the stream: until the exit, a break or a second
 * interrupt. The reason of a break is in s->err. */
static void stream_once(struct stream *s, const char *target)
{
	struct client *cl = s->cl;
	char m[256];
	s->upgraded = 0;
	s->failed = 0;
	s->replay[0] = s->replay[1] = 0;
	s->c = conn_connect(s->loop, &cl->addr, cl->tls, cl->host, cl->timeout_ms, &stream_h, s, m,
			    sizeof(m));
	if (!s->c) {
		stream_fail(s, "base %s: %s", cl->base, m);
		return;
	}
	const char *headers[] = {"Authorization", cl->auth, NULL};
	if (conn_ws_connect(s->c, target, cl->auth ? headers : NULL) < 0) {
		stream_fail(s, "stream: %s", conn_error(s->c));
		conn_free(s->c);
		s->c = NULL;
		return;
	}
	while (s->c && s->interrupts < 2)
		if (loop_run_once(s->loop, -1) < 0) {
			stream_fail(s, "loop: %s", loop_error(s->loop));
			break;
		}
	if (s->c) {
		conn_free(s->c);
		s->c = NULL;
	}
	if (s->t_ping)
		loop_timer_cancel(s->loop, s->t_ping);
	s->t_ping = 0;
	/* after its close handler a conn still lingers (flush, close_notify,
	 * drain; at most LINGER_MS in conn.c) and frees itself from a timer */
	long long until = loop_now_ms() + LINGER_WAIT_MS;
	while (loop_timer_count(s->loop) > 0 && loop_now_ms() < until)
		loop_run_once(s->loop, 50);
}

static void wake_cb(struct loop *loop, long long id, void *arg, int mask)
{
	(void)loop;
	(void)id;
	(void)mask;
	*(int *)arg = 1;
}

/* Sleep ms on the loop, so that signals are still seen. */
static void stream_pause(struct stream *s, int ms)
{
	int woke = 0;
	long long t = loop_timer_add(s->loop, ms, wake_cb, &woke);
	while (!woke && s->interrupts < 2)
		if (loop_run_once(s->loop, -1) < 0)
			break;
	if (!woke)
		loop_timer_cancel(s->loop, t);
}

int client_task_stream(struct client *cl, const char *task_id, client_output_fn output,
		       client_interrupt_fn interrupt, void *arg, struct client_task_exit *ex,
		       char *err, size_t errlen)
{
	struct stream s = {
	    .cl = cl, .output = output, .interrupt = interrupt, .arg = arg, .ex = ex};
	char target[256], path[256], m[512];
	int rc = -1, refused = 0;
	memset(ex, 0, sizeof(*ex));
	if (!task_id_ok(task_id)) {
		snprintf(err, errlen, "task id '%.80s' is not valid", task_id);
		return -1;
	}
	snprintf(target, sizeof(target), "/v1/tasks/%s/stream", task_id);
	snprintf(path, sizeof(path), "/v1/tasks/%s", task_id);
	s.loop = loop_new(0, m, sizeof(m));
	if (!s.loop) {
		snprintf(err, errlen, "loop: %s", m);
		return -1;
	}
	if (loop_signal_add(s.loop, SIGINT, on_signal, &s) < 0 ||
	    loop_signal_add(s.loop, SIGTERM, on_signal, &s) < 0) {
		snprintf(err, errlen, "signals: %s", loop_error(s.loop));
		goto out;
	}
	/* A broken stream (base restarted, network cut) is opened again while
	 * the task exists, for up to reconnect_ms: base replays the task's
	 * stored output from its start, and what was shown already is skipped
	 * by its offset per stream. */
	long long give_up = loop_now_ms() + cl->reconnect_ms;
	int delay = 250;
	for (;;) {
		stream_once(&s, target);
		if (s.exited || s.interrupts >= 2)
			break;
		int status = 0;
		if (client_call(cl, "GET", path, NULL, &status, NULL, NULL, m, sizeof(m)) < 0 &&
		    status != 0) {
			snprintf(s.err, sizeof(s.err), "%s", m);
			refused = 1;
			break;
		}
		if (loop_now_ms() + delay > give_up)
			break;
		stream_pause(&s, delay);
		if (s.interrupts >= 2)
			break;
		delay = delay * 2 > 5000 ? 5000 : delay * 2;
	}
	if (s.exited) {
		rc = 0;
	} else if (s.interrupts >= 2) {
		snprintf(err, errlen, "interrupted: stopped waiting for task '%s'", task_id);
		rc = CLIENT_INTERRUPTED;
	} else if (!refused && task_result(cl, task_id, ex) == 0) {
		rc = 0;
	} else {
		snprintf(err, errlen, "task '%s': %s", task_id, s.err);
	}
out:
	loop_free(s.loop);
	return rc;
}

/* --- presentation ------------------------------------------------------------------ */

static int digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (!isdigit((unsigned char)**p))
			return -1;
		v = v * 10 + (**p - '0');
	}
	*out = v;
	return 0;
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static long long days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	long long yoe = y - era * 400;
	long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int client_time(const struct proto_jv *v, time_t *out)
{
	int64_t n;
	if (!v)
		return -1;
	if (proto_jv_int(v, &n) == 0) {
		*out = (time_t)n;
		return 0;
	}
	const char *s = proto_jv_str(v);
	if (!s)
		return -1;
	int Y, M, D, h, mi, se;
	const char *p = s;
	if (digits(&p, 4, &Y) < 0 || *p++ != '-' || digits(&p, 2, &M) < 0 || *p++ != '-' ||
	    digits(&p, 2, &D) < 0 || (*p != 'T' && *p != 't' && *p != ' '))
		return -1;
	p++;
	if (digits(&p, 2, &h) < 0 || *p++ != ':' || digits(&p, 2, &mi) < 0 || *p++ != ':' ||
	    digits(&p, 2, &se) < 0)
		return -1;
	if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || mi > 59 || se > 60)
		return -1;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		while (isdigit((unsigned char)*p))
			p++;
	}
	long long off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;
		if (digits(&p, 2, &oh) < 0 || *p++ != ':' || digits(&p, 2, &om) < 0)
			return -1;
		off = sign * (oh * 3600LL + om * 60LL);
	} else {
		return -1;
	}
	if (*p)
		return -1;
	*out = (time_t)(days_from_civil(Y, M, D) * 86400 + h * 3600LL + mi * 60LL + se - off);
	return 0;
}

void client_reltime(time_t then, time_t now, char *out, size_t outlen)
{
	long long d = (long long)now - (long long)then;
	int future = d < 0;
	if (future)
		d = -d;
	long long v;
	char unit;
	if (d < 60) {
		v = d;
		unit = 's';
	} else if (d < 3600) {
		v = d / 60;
		unit = 'm';
	} else if (d < 86400) {
		v = d / 3600;
		unit = 'h';
	} else {
		v = d / 86400;
		unit = 'd';
	}
	if (future)
		snprintf(out, outlen, "in %lld%c", v, unit);
	else
		snprintf(out, outlen, "%lld%c ago", v, unit);
}

void client_utc(time_t t, char *out, size_t outlen)
{
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, outlen, "%lld", (long long)t);
}
