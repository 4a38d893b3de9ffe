#include "base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "conn.h"
#include "crypt.h"
#include "deploys.h"
#include "fleet.h"
#include "log.h"
#include "proto.h"
#include "queue.h"
#include "secrets.h"
#include "svcstatus.h"
#include "tls.h"
#include "xalloc.h"

#define DEFAULT_HEARTBEAT_MS 5000
#define DEFAULT_TOKEN_TTL    300
#define DEFAULT_CERT_TTL     (24 * 3600)
#define DEFAULT_LEASE_MS     30000
#define NBUCKETS	     4096
/* One cluster until clusters exist (DESIGN.md section 4), as in api.c. */
#define CLUSTER "default"
/* A service_status event without a release is taken for a service with
 * one of its latest STATUS_DEPLOYS_SEEN deployments on the reporting
 * instance. */
#define STATUS_DEPLOYS_SEEN 20

/* WebSocket close codes of the agent session (contract). */
enum { CLOSE_TOKEN_EXPIRED = 4001, CLOSE_REPLACED = 4002, CLOSE_REFUSED = 4003 };

struct sess {
	struct base *b;
	struct conn *c;
	char id[FLEET_ID_MAX]; /* certificate CN: the instance id */
	char session[24];
	int registered; /* in the table: hello done, not closing */
	uint8_t token_hash[CRYPT_SHA256_LEN];
	long long t_ping, t_token, t_cert, t_lease, t_close;
	int close_code, close_tries;
	char close_reason[124];
	struct sess *hnext;	  /* bucket chain */
	struct sess *prev, *next; /* every session */
};

struct sub {
	struct base *b;
	struct conn *c;
	char task[QUEUE_ID_MAX];
	long long t_close;
	int close_tries;
	struct sub *prev, *next;
};

/* An API connection in HTTP mode (tracked so base_free can end it). */
struct apiconn {
	struct base *b;
	struct conn *c;
	struct apiconn *prev, *next;
};

struct base {
	struct loop *loop;
	struct basedir *dir;
	struct crypt_rng *rng;
	struct tls_config *api_tls, *agent_tls;
	struct listener *api_l, *agent_l;
	struct api_config api;
	char agent_addr[NET_ADDR_MAX];
	int heartbeat_ms, token_ttl_s, lease_ms;
	struct sess *buckets[NBUCKETS];
	struct sess *sessions; /* every session, pre-hello too */
	size_t nregistered;
	struct sub *subs;
	struct apiconn *apiconns;
	uint8_t master[CRYPT_KEY_LEN]; /* secrets (wiped on free) */
};


static unsigned bucket(const char *id)
{
	unsigned h = 2166136261u;
	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h % NBUCKETS;
}

static struct sess *find(struct base *b, const char *id)
{
	for (struct sess *s = b->buckets[bucket(id)]; s; s = s->hnext)
		if (strcmp(s->id, id) == 0)
			return s;
	return NULL;
}

static void unregister(struct sess *s)
{
	if (!s->registered)
		return;
	struct sess **pp = &s->b->buckets[bucket(s->id)];
	while (*pp && *pp != s)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = s->hnext;
	s->hnext = NULL;
	s->registered = 0;
	s->b->nregistered--;
}

static void stop_timers(struct sess *s)
{
	long long *ts[] = {&s->t_ping, &s->t_token, &s->t_cert, &s->t_lease, &s->t_close};
	for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) {
		if (*ts[i])
			loop_timer_cancel(s->b->loop, *ts[i]);
		*ts[i] = 0;
	}
}

/* Forget s (its conn is the caller's to end). */
static void sess_destroy(struct sess *s)
{
	unregister(s);
	stop_timers(s);
	if (s->prev)
		s->prev->next = s->next;
	else
		s->b->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s);
}

/* wslay sends control frames ahead of queued messages, so a close right
 * after a message would overtake it: the close waits (polling every
 * CLOSE_POLL_MS, at most CLOSE_POLLS times) until the queue is empty. */
#define CLOSE_POLL_MS 10
#define CLOSE_POLLS   200

static void sess_close_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct sess *s = arg;
	(void)id;
	(void)mask;
	s->t_close = 0;
	if (conn_ws_queued(s->c) > 0 && s->close_tries++ < CLOSE_POLLS) {
		s->t_close = loop_timer_add(loop, CLOSE_POLL_MS, sess_close_cb, s);
		return;
	}
	if (conn_ws_close(s->c, s->close_code, s->close_reason) < 0) {
		struct conn *c = s->c;
		sess_destroy(s);
		conn_free(c);
	}
}

/* Close the session with a WebSocket code once what was sent is out; it
 * leaves the table at once, the close handler frees it. */
static void sess_close(struct sess *s, int code, const char *reason)
{
	if (s->close_code)
		return; /* closing already */
	log_info("session", "closing", "instance", s->id, "reason", reason, NULL);
	unregister(s);
	stop_timers(s);
	s->close_code = code;
	snprintf(s->close_reason, sizeof s->close_reason, "%s", reason);
	s->t_close = loop_timer_add(s->b->loop, 0, sess_close_cb, s);
}

static void send_msg(struct sess *s, struct buf *m)
{
	if (conn_ws_send(s->c, WS_TEXT, m->data, m->len) < 0)
		log_warn("session", "send failed", "instance", s->id, "error", conn_error(s->c),
			 NULL);
}

static void send_error(struct sess *s, const char *ref, const char *code, const char *msg)
{
	struct buf m = BUF_INIT;
	char err[128];
	struct proto_error e = {(char *)code, (char *)msg, (char *)ref};
	if (proto_encode_error(&m, NULL, &e, err, sizeof err) == 0)
		send_msg(s, &m);
	else
		log_error("session", "error reply does not encode", "error", err, NULL);
	buf_release(&m);
}

/* --- stream subscribers ------------------------------------------------------------ */

static void sub_remove(struct sub *u)
{
	if (u->t_close)
		loop_timer_cancel(u->b->loop, u->t_close);
	if (u->prev)
		u->prev->next = u->next;
	else
		u->b->subs = u->next;
	if (u->next)
		u->next->prev = u->prev;
	free(u);
}

static void sub_send(struct sub *u, const char *stream, const void *data, size_t len)
{
	struct buf m = BUF_INIT;
	buf_printf(&m, "{\"type\":\"output\",\"stream\":\"%s\",\"data\":\"", stream);
	proto_b64_encode(&m, data, len);
	buf_puts(&m, "\"}");
	if (conn_ws_send(u->c, WS_TEXT, m.data, m.len) < 0 && u->task[0]) {
		/* a subscriber too slow to keep up loses its stream, not base
		 * its memory: it can read the result with GET /v1/tasks/ID */
		log_warn("api", "stream subscriber too slow", "task", u->task, NULL);
		u->task[0] = 0;
		conn_ws_close(u->c, WS_POLICY, "too slow");
	}
	buf_release(&m);
}

static void sub_close_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct sub *u = arg;
	(void)id;
	(void)mask;
	u->t_close = 0;
	if (conn_ws_queued(u->c) > 0 && u->close_tries++ < CLOSE_POLLS) {
		u->t_close = loop_timer_add(loop, CLOSE_POLL_MS, sub_close_cb, u);
		return;
	}
	/* the close handler removes u once the client answers */
	if (conn_ws_close(u->c, WS_NORMAL, "task ended") < 0) {
		struct conn *c = u->c;
		sub_remove(u);
		conn_free(c);
	}
}

static void sub_exit(struct sub *u, const struct queue_task *k)
{
	struct buf m = BUF_INIT;
	buf_printf(&m, "{\"type\":\"exit\",\"state\":\"%s\",\"status\":%lld,\"signal\":%lld}",
		   queue_state_name(k->state), (long long)(k->has_exit ? k->exit_status : -1),
		   (long long)k->signal);
	conn_ws_send(u->c, WS_TEXT, m.data, m.len);
	buf_release(&m);
	/* no more output for it; the close follows the exit message */
	u->task[0] = 0;
	u->t_close = loop_timer_add(u->b->loop, 0, sub_close_cb, u);
}

static void relay_output(struct base *b, const char *task, const char *stream, const void *data,
			 size_t len)
{
	for (struct sub *u = b->subs; u; u = u->next)
		if (strcmp(u->task, task) == 0)
			sub_send(u, stream, data, len);
}

static void relay_exit(struct base *b, const struct queue_task *k)
{
	struct sub *u = b->subs, *next;
	for (; u; u = next) {
		next = u->next;
		if (strcmp(u->task, k->id) == 0)
			sub_exit(u, k);
	}
}

static void send_cancel(struct base *b, const char *instance, const char *task)
{
	struct sess *s = find(b, instance);
	if (!s)
		return;
	struct buf m = BUF_INIT;
	char err[128];
	struct proto_cancel c = {(char *)task};
	if (proto_encode_cancel(&m, NULL, &c, err, sizeof err) == 0)
		send_msg(s, &m);
	buf_release(&m);
}

static void sub_message(struct conn *c, void *arg, enum ws_type type, const void *data, size_t len)
{
	struct sub *u = arg;
	char err[128];
	(void)c;
	if (type != WS_TEXT)
		return;
	struct proto_json *doc = proto_json_parse(data, len, err, sizeof err);
	const char *t = doc ? proto_jv_get_str(proto_json_root(doc), "type") : NULL;
	if (t && strcmp(t, "cancel") == 0) {
		struct store_txn *txn = store_txn_begin(u->b->dir->store, 0);
		struct queue_task k;
		int need = 0;
		if (queue_get(txn, u->task, &k) == 0) {
			int on = find(u->b, k.instance) != NULL;
			queue_cancel(txn, u->task, !on, &need);
			if (store_txn_commit(txn, err, sizeof err) == 0 && need)
				send_cancel(u->b, k.instance, k.id);
			txn = NULL;
			queue_task_release(&k);
		}
		store_txn_abort(txn);
		log_info("api", "cancel requested over stream", "task", u->task, NULL);
	}
	proto_json_free(doc);
}

static void sub_close(struct conn *c, void *arg, int code, const char *reason)
{
	(void)c;
	(void)code;
	(void)reason;
	sub_remove(arg);
}

static const struct conn_handlers sub_handlers = {
    .message = sub_message,
    .close = sub_close,
};

static int replay_cb(char stream, const void *data, size_t len, void *arg)
{
	sub_send(arg, stream == 'e' ? "stderr" : "stdout", data, len);
	return 0;
}

static void sub_start(struct base *b, struct conn *c, const char *task)
{
	struct sub *u = xcalloc(1, sizeof *u);
	struct queue_task k;
	u->b = b;
	u->c = c;
	snprintf(u->task, sizeof u->task, "%s", task);
	u->next = b->subs;
	if (b->subs)
		b->subs->prev = u;
	b->subs = u;
	conn_set_handlers(c, &sub_handlers, u);
	conn_set_idle_timeout(c, 0);
	/* Stored output first, so a late subscriber misses nothing; the loop
	 * is single-threaded, so no event slips in between. */
	struct store_txn *t = store_txn_begin(b->dir->store, 1);
	queue_output_scan(t, task, replay_cb, u);
	int rc = queue_get(t, task, &k);
	store_txn_abort(t);
	if (rc == 0 && k.state > QUEUE_RUNNING && u->task[0])
		sub_exit(u, &k);
	queue_task_release(&k);
}

/* --- API port ------------------------------------------------------------------ */

static void apiconn_remove(struct apiconn *ac)
{
	if (ac->prev)
		ac->prev->next = ac->next;
	else
		ac->b->apiconns = ac->next;
	if (ac->next)
		ac->next->prev = ac->prev;
	free(ac);
}

static void api_request_cb(struct conn *c, void *arg, struct http_parser *msg)
{
	struct apiconn *ac = arg;
	struct base *b = ac->b;
	struct api_response r;
	struct api_request req = {0};
	req.method = http_method(msg);
	req.path = http_path(msg);
	req.query = http_query(msg);
	req.authorization = http_header(msg, "Authorization");
	req.body = http_body(msg, &req.body_len);
	api_response_init(&r);
	api_handle(&b->api, &req, &r);
	if (r.status == 101) {
		char task[QUEUE_ID_MAX];
		memcpy(task, r.stream_task, sizeof task);
		if (conn_upgrade(c) == 0) {
			apiconn_remove(ac);
			sub_start(b, c, task);
		}
	} else {
		const char *allow[] = {"Allow", r.allow, NULL};
		conn_reply(c, r.status, r.allow[0] ? allow : NULL, r.content_type, r.body.data,
			   r.body.len);
	}
	char st[8];
	snprintf(st, sizeof st, "%d", r.status);
	log_write(r.status >= 500 ? LOG_LVL_WARN : LOG_LVL_INFO, "api", "request", "method",
		  req.method, "path", req.path, "status", st, "peer", conn_peer_addr(c), NULL);
	api_response_release(&r);
}

static void api_close_cb(struct conn *c, void *arg, int code, const char *reason)
{
	(void)c;
	(void)code;
	(void)reason;
	apiconn_remove(arg);
}

static const struct conn_handlers api_handlers = {
    .request = api_request_cb,
    .close = api_close_cb,
};

static void api_ready_cb(struct conn *c, void *arg)
{
	struct base *b = arg;
	struct apiconn *ac = xcalloc(1, sizeof *ac);
	ac->b = b;
	ac->c = c;
	ac->next = b->apiconns;
	if (b->apiconns)
		b->apiconns->prev = ac;
	b->apiconns = ac;
	conn_set_handlers(c, &api_handlers, ac);
}

static const struct conn_handlers api_listen_handlers = {
    .ready = api_ready_cb,
};

/* --- API hooks ------------------------------------------------------------------- */

static void deliver(struct base *b, struct sess *s, int force);

static int hook_online(void *arg, const char *id)
{
	return find(arg, id) != NULL;
}

static void hook_deliver(void *arg, const char *id)
{
	struct sess *s = find(arg, id);
	if (s)
		deliver(arg, s, 0);
}

static void hook_revoked(void *arg, const char *id)
{
	struct sess *s = find(arg, id);
	if (s)
		sess_close(s, CLOSE_REFUSED, "instance removed");
}

static void hook_cancel(void *arg, const char *instance, const char *task)
{
	send_cancel(arg, instance, task);
}

/* --- task delivery ------------------------------------------------------------- */

struct collect {
	struct base *b;
	struct store_txn *t;
	struct buf msgs; /* NUL-separated encoded messages (may hold secrets) */
};

/* The payload of a "deploy" task as sent: the stored one (which holds no
 * secret) plus "secrets":{NAME:value} of its service, opened here, inside
 * the lease transaction, for this mTLS session only. Wipe out after use. */
static void deploy_payload(struct collect *co, const struct queue_task *k, struct buf *out)
{
	char err[256];
	struct deploys_rec d = {0};
	struct secrets_pair *pairs = NULL;
	size_t n = 0, len = strlen(k->payload);
	struct proto_json *doc = proto_json_parse(k->payload, len, err, sizeof err);
	const char *id = doc ? proto_jv_get_str(proto_json_root(doc), "deployment_id") : NULL;
	buf_puts(out, k->payload);
	if (!id || len < 2 || k->payload[len - 1] != '}' || deploys_get(co->t, id, &d) != 0)
		goto out;
	if (secrets_open_for_agent(co->t, co->b->master, d.cluster, d.service, &pairs, &n, err,
				   sizeof err) < 0) {
		log_error("deploy", "secrets not opened", "deployment", id, "error", err, NULL);
		goto out;
	}
	buf_truncate(out, len - 1);
	buf_puts(out, ",\"secrets\":{");
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_putc(out, ',');
		buf_json_cstr(out, pairs[i].name);
		buf_putc(out, ':');
		buf_json_str(out, pairs[i].value, pairs[i].len);
	}
	buf_puts(out, "}}");
out:
	secrets_pairs_free(pairs, n);
	deploys_rec_release(&d);
	proto_json_free(doc);
}

static void collect_task(const struct queue_task *k, void *arg)
{
	struct collect *co = arg;
	char err[256];
	struct buf pl = BUF_INIT;
	if (strcmp(k->kind, "deploy") == 0)
		deploy_payload(co, k, &pl);
	else
		buf_puts(&pl, k->payload);
	struct proto_task m = {(char *)k->id, (char *)k->kind, pl.data, co->b->lease_ms};
	size_t before = co->msgs.len;
	if (proto_encode_task(&co->msgs, k->id, &m, err, sizeof err) == 0)
		buf_putc(&co->msgs, 0);
	else
		buf_truncate(&co->msgs, before);
	crypt_wipe(pl.data, pl.len);
	buf_release(&pl);
}

static void lease_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct sess *s = arg;
	(void)loop;
	(void)id;
	(void)mask;
	s->t_lease = 0;
	deliver(s->b, s, 0);
}

/* Lease and send s's due tasks (all unfinished ones with force), then
 * arm the lease timer for the next expiry. */
static void deliver(struct base *b, struct sess *s, int force)
{
	struct collect co = {b, NULL, BUF_INIT};
	char err[256];
	int64_t now = loop_wall_ms();
	struct store_txn *t = store_txn_begin(b->dir->store, 0);
	co.t = t;
	queue_lease(t, s->id, now, b->lease_ms, force, collect_task, &co);
	int64_t next = queue_next_expiry(t, s->id);
	if (store_txn_commit(t, err, sizeof err) < 0) {
		log_error("queue", "lease failed", "instance", s->id, "error", err, NULL);
		crypt_wipe(co.msgs.data, co.msgs.len);
		buf_release(&co.msgs);
		return;
	}
	for (size_t off = 0; off < co.msgs.len;) {
		size_t n = strlen(co.msgs.data + off);
		conn_ws_send(s->c, WS_TEXT, co.msgs.data + off, n);
		off += n + 1;
	}
	crypt_wipe(co.msgs.data, co.msgs.len);
	buf_release(&co.msgs);
	if (s->t_lease)
		loop_timer_cancel(b->loop, s->t_lease);
	s->t_lease = next ? loop_timer_add(b->loop, next - now + 1, lease_cb, s) : 0;
}

/* --- agent sessions ------------------------------------------------------------ */

static void ping_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct sess *s = arg;
	(void)id;
	(void)mask;
	conn_ws_ping(s->c);
	s->t_ping = loop_timer_add(loop, s->b->heartbeat_ms, ping_cb, s);
}

static void token_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct sess *s = arg;
	(void)loop;
	(void)id;
	(void)mask;
	s->t_token = 0;
	sess_close(s, CLOSE_TOKEN_EXPIRED, "access token expired");
}

static void cert_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct sess *s = arg;
	(void)loop;
	(void)id;
	(void)mask;
	s->t_cert = 0;
	sess_close(s, CLOSE_REFUSED, "certificate expired");
}

static void arm_cert_timer(struct sess *s, int64_t not_after)
{
	if (s->t_cert)
		loop_timer_cancel(s->b->loop, s->t_cert);
	int64_t ms = not_after * 1000 - loop_wall_ms();
	s->t_cert = loop_timer_add(s->b->loop, ms > 0 ? ms : 0, cert_cb, s);
}

/* A fresh access token: only its hash stays here; the text goes out once. */
static char *new_token(struct sess *s, int64_t *expires_at)
{
	char *tok = crypt_token_new(s->b->rng, "dpya_");
	crypt_sha256(tok, strlen(tok), s->token_hash);
	*expires_at = (int64_t)time(NULL) + s->b->token_ttl_s;
	if (s->t_token)
		loop_timer_cancel(s->b->loop, s->t_token);
	s->t_token = loop_timer_add(s->b->loop, (long long)s->b->token_ttl_s * 1000, token_cb, s);
	return tok;
}

static void free_token(char *tok)
{
	crypt_wipe(tok, strlen(tok));
	free(tok);
}

static void on_hello(struct sess *s, struct proto_msg *m)
{
	struct base *b = s->b;
	struct proto_hello *h = &m->u.hello;
	struct fleet_instance in;
	char err[256];
	int v1 = 0;
	for (size_t i = 0; i < h->proto_versions_len; i++)
		v1 |= h->proto_versions[i] == PROTO_VERSION;
	if (!v1) {
		send_error(s, m->id, "version", "no common protocol version (base speaks 1)");
		sess_close(s, WS_POLICY, "no common protocol version");
		return;
	}
	if (strcmp(h->instance_id, s->id) != 0) {
		send_error(s, m->id, "identity", "instance_id differs from the certificate");
		sess_close(s, CLOSE_REFUSED, "instance_id differs from the certificate");
		return;
	}
	struct store_txn *t = store_txn_begin(b->dir->store, 0);
	int rc = fleet_get(t, s->id, &in);
	const char *serial = conn_peer_serial(s->c);
	if (rc != 0 || in.revoked || !serial || strcmp(serial, in.cert_serial) != 0) {
		store_txn_abort(t);
		send_error(s, m->id, "identity", "certificate refused");
		sess_close(s, CLOSE_REFUSED, "certificate revoked or replaced");
		return;
	}
	in.last_seen = (int64_t)time(NULL);
	snprintf(in.agent_version, sizeof in.agent_version, "%s", h->agent_version);
	snprintf(in.addr, sizeof in.addr, "%s", conn_peer_addr(s->c));
	fleet_put(t, &in);
	if (store_txn_commit(t, err, sizeof err) < 0) {
		log_error("session", "store failed", "instance", s->id, "error", err, NULL);
		sess_close(s, WS_INTERNAL, "store failed");
		return;
	}
	struct sess *old = find(b, s->id);
	if (old)
		sess_close(old, CLOSE_REPLACED, "replaced by a new session");
	s->hnext = b->buckets[bucket(s->id)];
	b->buckets[bucket(s->id)] = s;
	s->registered = 1;
	b->nregistered++;

	uint8_t r[8];
	crypt_random(b->rng, r, sizeof r);
	snprintf(s->session, sizeof s->session, "s-%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1],
		 r[2], r[3], r[4], r[5], r[6], r[7]);
	struct proto_welcome w = {s->session, b->heartbeat_ms, NULL, 0};
	w.access_token = new_token(s, &w.token_expires_at);
	struct buf out = BUF_INIT;
	if (proto_encode_welcome(&out, m->id, &w, err, sizeof err) == 0)
		send_msg(s, &out);
	free_token(w.access_token);
	buf_reset(&out);
	struct proto_event_ack a = {in.applied_seq};
	if (proto_encode_event_ack(&out, NULL, &a, err, sizeof err) == 0)
		send_msg(s, &out);
	buf_release(&out);
	arm_cert_timer(s, in.cert_not_after);
	s->t_ping = loop_timer_add(b->loop, b->heartbeat_ms, ping_cb, s);
	conn_set_idle_timeout(s->c, 3 * b->heartbeat_ms);
	log_info("session", "agent online", "instance", s->id, "name", in.name, "addr", in.addr,
		 "agent_version", in.agent_version, NULL);
	deliver(b, s, 1);
}

static void on_token_refresh(struct sess *s, struct proto_msg *m)
{
	char err[128];
	if (strcmp(m->u.token_refresh.session, s->session) != 0) {
		send_error(s, m->id, "session", "unknown session");
		return;
	}
	struct proto_token tk = {NULL, 0};
	tk.access_token = new_token(s, &tk.expires_at);
	struct buf out = BUF_INIT;
	if (proto_encode_token(&out, m->id, &tk, err, sizeof err) == 0)
		send_msg(s, &out);
	buf_release(&out);
	free_token(tk.access_token);
}

static void on_cert_renew(struct sess *s, struct proto_msg *m)
{
	char err[512];
	struct store_txn *t = store_txn_begin(s->b->dir->store, 0);
	char *pem =
	    api_issue_agent_cert(&s->b->api, t, s->id, m->u.cert_renew.csr, err, sizeof err);
	if (!pem) {
		store_txn_abort(t);
		send_error(s, m->id, "cert", err);
		return;
	}
	if (store_txn_commit(t, err, sizeof err) < 0) {
		free(pem);
		send_error(s, m->id, "cert", "store failed");
		return;
	}
	struct pki_cert_info info;
	if (pki_cert_info(pem, &info, err, sizeof err) == 0)
		arm_cert_timer(s, (int64_t)info.not_after);
	struct proto_cert c = {pem, s->b->dir->ca_pem};
	struct buf out = BUF_INIT;
	if (proto_encode_cert(&out, m->id, &c, err, sizeof err) == 0)
		send_msg(s, &out);
	buf_release(&out);
	free(pem);
	log_info("session", "certificate renewed", "instance", s->id, "serial", info.serial, NULL);
}

/* Result {"status","signal"} of a finished duplicate. */
static void result_exit(const char *raw, int *has, int64_t *status, int64_t *sig)
{
	char err[64];
	*has = 0;
	*status = *sig = 0;
	struct proto_json *doc = raw ? proto_json_parse(raw, strlen(raw), err, sizeof err) : NULL;
	if (doc && proto_jv_int(proto_jv_get(proto_json_root(doc), "status"), status) == 0) {
		*has = 1;
		proto_jv_int(proto_jv_get(proto_json_root(doc), "signal"), sig);
	}
	proto_json_free(doc);
}

static void on_task_ack(struct sess *s, struct proto_msg *m)
{
	struct proto_task_ack *a = &m->u.task_ack;
	struct queue_task k;
	char err[256];
	int finished = 0;
	struct store_txn *t = store_txn_begin(s->b->dir->store, 0);
	if (queue_get(t, a->task_id, &k) != 0 || strcmp(k.instance, s->id) != 0) {
		queue_task_release(&k);
		store_txn_abort(t);
		send_error(s, m->id, "task", "unknown task");
		return;
	}
	queue_task_release(&k);
	int has;
	int64_t st, sig;
	result_exit(a->result, &has, &st, &sig);
	if (strcmp(a->status, "done") == 0 || strcmp(a->status, "failed") == 0 ||
	    (strcmp(a->status, "duplicate") == 0 && has)) {
		queue_finish(t, a->task_id,
			     strcmp(a->status, "failed") == 0 ? QUEUE_FAILED : QUEUE_DONE, has, st,
			     sig);
		finished = 1;
	} else {
		queue_accept(t, a->task_id);
	}
	if (store_txn_commit(t, err, sizeof err) < 0) {
		log_error("queue", "task_ack failed", "task", a->task_id, "error", err, NULL);
		return;
	}
	if (finished) {
		t = store_txn_begin(s->b->dir->store, 1);
		if (queue_get(t, a->task_id, &k) == 0)
			relay_exit(s->b, &k);
		queue_task_release(&k);
		store_txn_abort(t);
	}
}

/* Apply one event inside t; *exit_task names a task that ended. */
/* A deploy event of the instance's agent, inside t (task known). Progress
 * and log of an ended deployment are refused by deploys.c: then they are
 * dropped (late chunks of a cancelled deploy). A final status also ends
 * the task and starts the service's next queued deployment. */
static void apply_deploy_event(struct sess *s, struct store_txn *t, const char *kind,
			       const struct proto_jv *o, const char *task, char *exit_task,
			       char *deliver_to)
{
	char err[256];
	struct deploys_rec d = {0};
	const char *id = proto_jv_get_str(o, "deployment_id");
	if (!id || deploys_get(t, id, &d) != 0 || strcmp(d.instance, s->id) != 0) {
		log_warn("deploy", "event for an unknown deployment", "instance", s->id, "kind",
			 kind, NULL);
		deploys_rec_release(&d);
		return;
	}
	if (strcmp(kind, "deploy_log") == 0) {
		const char *text = proto_jv_get_str(o, "text");
		if (text)
			deploys_log_append(t, id, text, strlen(text));
	} else if (strcmp(kind, "deploy_stage") == 0) {
		struct deploys_progress p = {0};
		p.stage = proto_jv_get_str(o, "stage");
		if (deploys_set_progress(t, id, &p, err, sizeof err) < 0 && !store_txn_failed(t))
			log_info("deploy", "stage dropped", "deployment", id, "error", err, NULL);
	} else if (strcmp(kind, "deploy_done") == 0) {
		const char *outcome = proto_jv_get_str(o, "outcome");
		const char *reason = proto_jv_get_str(o, "reason");
		enum deploys_status to = DEPLOYS_ERROR;
		if (outcome)
			deploys_status_parse(outcome, &to);
		if (!deploys_status_final(to))
			to = DEPLOYS_ERROR;
		int64_t pid = 0, port = 0;
		proto_jv_int(proto_jv_get(o, "pid"), &pid);
		proto_jv_int(proto_jv_get(o, "port"), &port);
		struct deploys_progress p = {0};
		p.stage = proto_jv_get_str(o, "stage");
		p.runtime_version = proto_jv_get_str(o, "runtime_version");
		p.revision = proto_jv_get_str(o, "revision");
		if (to == DEPLOYS_DONE) {
			p.release = proto_jv_get_str(o, "release");
			p.pid = pid;
			p.port = (int)port;
		}
		if (!deploys_status_final(d.status)) {
			if (deploys_set_progress(t, id, &p, err, sizeof err) < 0)
				log_warn("deploy", "progress not recorded", "deployment", id,
					 "error", err, NULL);
			if (deploys_set_status(t, id, to, loop_wall_ms(), reason && *reason ? reason : NULL,
					       NULL, err, sizeof err) < 0)
				log_warn("deploy", "status not recorded", "deployment", id,
					 "error", err, NULL);
		}
		queue_finish(t, task, QUEUE_DONE, 1, to == DEPLOYS_DONE ? 0 : 1, 0);
		api_deploy_upload_drop(t, id);
		snprintf(exit_task, QUEUE_ID_MAX, "%s", task);
		api_deploy_start_next(&s->b->api, t, d.cluster, d.service, deliver_to);
		log_info("deploy", "deployment ended", "deployment", id, "service", d.service,
			 "status", deploys_status_name(to), NULL);
	}
	deploys_rec_release(&d);
}

/* 1 when the agent of instance may report on release (a deployment id,
 * or "" for none) of cluster/service: the release is a deployment of that
 * service to that instance, or with none, one of the service's latest
 * deployments went there. So an agent reports only on what it was given,
 * and the reports stored stay bounded by the deployments made. */
static int reportable(struct store_txn *t, const char *cluster, const char *service,
		      const char *instance, const char *release)
{
	struct deploys_rec *all = NULL, d = {0};
	size_t n = 0;
	int found = 0;
	if (release[0]) {
		found = deploys_get(t, release, &d) == 0 && strcmp(d.cluster, cluster) == 0 &&
			strcmp(d.service, service) == 0 && strcmp(d.instance, instance) == 0;
		deploys_rec_release(&d);
		return found;
	}
	if (deploys_list(t, cluster, service, 0, STATUS_DEPLOYS_SEEN, &all, &n) == 0)
		for (size_t i = 0; i < n && !found; i++)
			found = strcmp(all[i].instance, instance) == 0;
	deploys_list_free(all, n);
	return found;
}

/* A service_status event (no task, contract of issue 4) inside t: the
 * latest report of the service on this instance, unless it is older than
 * the stored one. The agent is not trusted: a report that does not check
 * out, or names a service not deployed here, is dropped with a warning. */
static void apply_service_status(struct sess *s, struct store_txn *t, const struct proto_event *e)
{
	char err[1024];
	struct svcstatus st;
	if (svcstatus_parse_event(e->body, strlen(e->body), CLUSTER, s->id, loop_wall_ms(), &st, err,
				  sizeof err) < 0) {
		log_warn("session", "event dropped", "instance", s->id, "kind", e->kind, "error",
			 err, NULL);
		return;
	}
	if (!reportable(t, st.cluster, st.service, s->id, st.release)) {
		if (!store_txn_failed(t))
			log_warn("session", "event dropped", "instance", s->id, "kind", e->kind,
				 "error", "no such deployment of the service to this instance",
				 "service", st.service, "release", st.release, NULL);
		return;
	}
	if (svcstatus_put(t, &st) == SVCSTATUS_STALE)
		log_debug("session", "older service_status ignored", "instance", s->id, "service",
			  st.service, NULL);
}

static void apply_event(struct sess *s, struct store_txn *t, const struct proto_event *e,
			char *exit_task, struct buf *out_data, char *out_task,
			const char **out_stream, char *deliver_to)
{
	char err[128];
	if (strcmp(e->kind, "service_status") == 0) {
		apply_service_status(s, t, e);
		return;
	}
	struct proto_json *doc = proto_json_parse(e->body, strlen(e->body), err, sizeof err);
	if (!doc)
		return;
	const struct proto_jv *o = proto_json_root(doc);
	const char *task = proto_jv_get_str(o, "task_id");
	struct queue_task k;
	if (!task || queue_get(t, task, &k) != 0 || strcmp(k.instance, s->id) != 0) {
		if (task)
			queue_task_release(&k);
		log_warn("session", "event for an unknown task", "instance", s->id, "kind", e->kind,
			 NULL);
		proto_json_free(doc);
		return;
	}
	queue_task_release(&k);
	if (strncmp(e->kind, "deploy_", 7) == 0) {
		apply_deploy_event(s, t, e->kind, o, task, exit_task, deliver_to);
	} else if (strcmp(e->kind, "exec_output") == 0) {
		const char *stream = proto_jv_get_str(o, "stream"),
			   *data = proto_jv_get_str(o, "data");
		int err_stream = stream && strcmp(stream, "stderr") == 0;
		if (stream && data && (err_stream || strcmp(stream, "stdout") == 0) &&
		    proto_b64_decode(out_data, data, strlen(data)) == 0) {
			queue_output_add(t, task, err_stream ? 'e' : 'o', out_data->data,
					 out_data->len);
			snprintf(out_task, QUEUE_ID_MAX, "%s", task);
			*out_stream = err_stream ? "stderr" : "stdout";
		}
	} else if (strcmp(e->kind, "exec_exit") == 0) {
		int64_t st = 0, sig = 0;
		int has = proto_jv_int(proto_jv_get(o, "status"), &st) == 0;
		proto_jv_int(proto_jv_get(o, "signal"), &sig);
		/* killed or not, the exec ran: "done" (or "cancelled") */
		queue_finish(t, task, QUEUE_DONE, has, st, sig);
		snprintf(exit_task, QUEUE_ID_MAX, "%s", task);
	}
	proto_json_free(doc);
}

static void on_event(struct sess *s, struct proto_msg *m)
{
	struct proto_event *e = &m->u.event;
	struct fleet_instance in;
	char err[256], exit_task[QUEUE_ID_MAX] = "", out_task[QUEUE_ID_MAX] = "";
	char deliver_to[FLEET_ID_MAX] = "";
	const char *out_stream = NULL;
	struct buf data = BUF_INIT, out = BUF_INIT;
	struct store_txn *t = store_txn_begin(s->b->dir->store, 0);
	if (fleet_get(t, s->id, &in) != 0) {
		store_txn_abort(t);
		return;
	}
	int64_t applied = in.applied_seq;
	if (e->seq > applied) {
		apply_event(s, t, e, exit_task, &data, out_task, &out_stream, deliver_to);
		in.applied_seq = e->seq;
		in.last_seen = (int64_t)time(NULL);
		fleet_put(t, &in);
		if (store_txn_commit(t, err, sizeof err) < 0) {
			log_error("session", "event not applied", "instance", s->id, "error", err,
				  NULL);
			buf_release(&data);
			return; /* not acked: the agent sends it again */
		}
		applied = e->seq;
		if (out_task[0])
			relay_output(s->b, out_task, out_stream, data.data, data.len);
		if (exit_task[0]) {
			struct queue_task k;
			t = store_txn_begin(s->b->dir->store, 1);
			if (queue_get(t, exit_task, &k) == 0)
				relay_exit(s->b, &k);
			queue_task_release(&k);
			store_txn_abort(t);
		}
		if (deliver_to[0]) {
			struct sess *to = find(s->b, deliver_to);
			if (to)
				deliver(s->b, to, 0);
		}
	} else {
		store_txn_abort(t);
	}
	struct proto_event_ack a = {applied};
	if (proto_encode_event_ack(&out, NULL, &a, err, sizeof err) == 0)
		send_msg(s, &out);
	buf_release(&out);
	buf_release(&data);
}

static void agent_message(struct conn *c, void *arg, enum ws_type type, const void *data,
			  size_t len)
{
	struct sess *s = arg;
	struct proto_msg m;
	char err[1024];
	(void)c;
	if (s->close_code)
		return; /* closing: nothing more is read */
	if (type != WS_TEXT) {
		send_error(s, NULL, "bad_message", "binary frames are not expected");
		return;
	}
	if (proto_decode(&m, data, len, err, sizeof err) < 0) {
		send_error(s, m.id, "bad_message", err);
		proto_msg_release(&m);
		return;
	}
	if (!s->registered && m.type != PROTO_HELLO) {
		send_error(s, m.id, "bad_message", "expected hello first");
		sess_close(s, WS_POLICY, "expected hello first");
		proto_msg_release(&m);
		return;
	}
	switch (m.type) {
	case PROTO_HELLO:
		if (s->registered)
			send_error(s, m.id, "bad_message", "hello was already sent");
		else
			on_hello(s, &m);
		break;
	case PROTO_PING: {
		struct buf out = BUF_INIT;
		struct proto_pong p = {m.u.ping.ts, m.u.ping.has_ts};
		if (proto_encode_pong(&out, m.id, &p, err, sizeof err) == 0)
			send_msg(s, &out);
		buf_release(&out);
		break;
	}
	case PROTO_PONG:
		break;
	case PROTO_ERROR:
		log_warn("session", "agent reported an error", "instance", s->id, "code",
			 m.u.error.code, "message", m.u.error.message, NULL);
		break;
	case PROTO_TOKEN_REFRESH:
		on_token_refresh(s, &m);
		break;
	case PROTO_CERT_RENEW:
		on_cert_renew(s, &m);
		break;
	case PROTO_TASK_ACK:
		on_task_ack(s, &m);
		break;
	case PROTO_EVENT:
		on_event(s, &m);
		break;
	default:
		send_error(s, m.id, "bad_message", "unexpected message type");
		break;
	}
	proto_msg_release(&m);
}

static void agent_close(struct conn *c, void *arg, int code, const char *reason)
{
	struct sess *s = arg;
	char cs[16];
	(void)c;
	snprintf(cs, sizeof cs, "%d", code);
	log_info("session", "agent connection closed", "instance", s->id, "code", cs, "reason",
		 reason, NULL);
	if (s->session[0]) {
		/* the last time it was seen is now */
		struct fleet_instance in;
		struct store_txn *t = store_txn_begin(s->b->dir->store, 0);
		if (fleet_get(t, s->id, &in) == 0) {
			in.last_seen = (int64_t)time(NULL);
			fleet_put(t, &in);
		}
		store_txn_commit(t, NULL, 0);
	}
	sess_destroy(s);
}

static const struct conn_handlers agent_ws_handlers = {
    .message = agent_message,
    .close = agent_close,
};

static void agent_request(struct conn *c, void *arg, struct http_parser *msg)
{
	struct sess *s = arg;
	if (strcmp(http_path(msg), "/v1/agent") != 0) {
		conn_reply_error(c, 404, "no route (the agent port serves only /v1/agent)");
		return;
	}
	if (strcmp(http_method(msg), "GET") != 0) {
		conn_reply_error(c, 405, "method not allowed");
		return;
	}
	if (conn_upgrade(c) == 0)
		conn_set_handlers(c, &agent_ws_handlers, s);
}

static void agent_http_close(struct conn *c, void *arg, int code, const char *reason)
{
	(void)c;
	(void)code;
	(void)reason;
	sess_destroy(arg);
}

static const struct conn_handlers agent_http_handlers = {
    .request = agent_request,
    .close = agent_http_close,
};

/* TLS done: the chain was verified; check the CN is a live instance and
 * the serial the one issued last before reading anything. */
static void agent_ready(struct conn *c, void *arg)
{
	struct base *b = arg;
	struct fleet_instance in;
	const char *cn = conn_peer_cn(c), *serial = conn_peer_serial(c);
	struct store_txn *t = store_txn_begin(b->dir->store, 1);
	int rc = cn ? fleet_get(t, cn, &in) : STORE_NOTFOUND;
	store_txn_abort(t);
	if (rc != 0 || in.revoked || !serial || strcmp(serial, in.cert_serial) != 0) {
		log_warn("session", "agent certificate refused", "cn", cn, "addr",
			 conn_peer_addr(c), "reason",
			 rc != 0      ? "unknown instance"
			 : in.revoked ? "revoked"
				      : "old serial",
			 NULL);
		conn_free(c);
		return;
	}
	struct sess *s = xcalloc(1, sizeof *s);
	s->b = b;
	s->c = c;
	snprintf(s->id, sizeof s->id, "%s", cn);
	s->next = b->sessions;
	if (b->sessions)
		b->sessions->prev = s;
	b->sessions = s;
	conn_set_handlers(c, &agent_http_handlers, s);
}

static const struct conn_handlers agent_listen_handlers = {
    .ready = agent_ready,
};

/* --- lifecycle ------------------------------------------------------------------- */

struct base *base_new(struct loop *loop, struct basedir *dir, const struct base_opts *o, char *err,
		      size_t errlen)
{
	struct base *b = xcalloc(1, sizeof *b);
	struct net_addr api_addr, agent_addr;
	char e2[256];
	b->loop = loop;
	b->dir = dir;
	b->rng = crypt_rng_new();
	b->heartbeat_ms = o->heartbeat_ms > 0 ? o->heartbeat_ms : DEFAULT_HEARTBEAT_MS;
	b->token_ttl_s = o->token_ttl_s > 0 ? o->token_ttl_s : DEFAULT_TOKEN_TTL;
	b->lease_ms = o->lease_ms > 0 ? o->lease_ms : DEFAULT_LEASE_MS;
	const char *la = o->listen ? o->listen : "127.0.0.1:7443";
	const char *aa = o->agent_listen ? o->agent_listen : "127.0.0.1:7444";
	if (net_parse(la, &api_addr, err, errlen) < 0 ||
	    net_parse(aa, &agent_addr, err, errlen) < 0)
		goto fail;
	b->api_tls =
	    tls_config_new_server(NULL, dir->server_pem, dir->server_key_pem, 0, e2, sizeof e2);
	if (b->api_tls)
		b->agent_tls = tls_config_new_server(dir->ca_pem, dir->server_pem,
						     dir->server_key_pem, 1, e2, sizeof e2);
	if (!b->api_tls || !b->agent_tls) {
		snprintf(err, errlen, "tls: %s", e2);
		goto fail;
	}
	struct listener_opts lo = {0};
	b->api_l =
	    listener_new(loop, &api_addr, b->api_tls, &lo, &api_listen_handlers, b, err, errlen);
	if (!b->api_l)
		goto fail;
	lo.idle_ms = 3 * b->heartbeat_ms;
	b->agent_l = listener_new(loop, &agent_addr, b->agent_tls, &lo, &agent_listen_handlers, b,
				  err, errlen);
	if (!b->agent_l)
		goto fail;
	/* What joining agents are told: the bound address, or with a
	 * wildcard the name in base's certificate. */
	struct net_addr bound;
	char txt[NET_ADDRSTRLEN];
	listener_local_addr(b->agent_l, &bound);
	net_addr_str(&bound, txt, sizeof txt);
	if (strncmp(txt, "0.0.0.0:", 8) == 0 || strncmp(txt, "[::]:", 5) == 0) {
		struct pki_cert_info info;
		if (pki_cert_info(dir->server_pem, &info, e2, sizeof e2) == 0)
			snprintf(b->agent_addr, sizeof b->agent_addr, "%s:%d", info.cn,
				 net_addr_port(&bound));
	}
	if (!b->agent_addr[0])
		snprintf(b->agent_addr, sizeof b->agent_addr, "%s", txt);

	b->api.store = dir->store;
	b->api.rng = b->rng;
	b->api.ca_pem = dir->ca_pem;
	b->api.ca_key = dir->ca_key;
	b->api.agent_addr = b->agent_addr;
	b->api.cert_ttl_s = o->cert_ttl_s > 0 ? o->cert_ttl_s : DEFAULT_CERT_TTL;
	{
		struct buf mp = BUF_INIT;
		buf_printf(&mp, "%s/master.key", dir->path);
		if (secrets_master_load(mp.data, b->master, e2, sizeof e2) == 0)
			b->api.master = b->master;
		else
			log_warn("base", "secrets disabled", "error", e2, NULL);
		buf_release(&mp);
	}
	b->api.hooks.online = hook_online;
	b->api.hooks.deliver = hook_deliver;
	b->api.hooks.revoked = hook_revoked;
	b->api.hooks.cancel = hook_cancel;
	b->api.hooks.arg = b;
	return b;
fail:
	base_free(b);
	return NULL;
}

void base_free(struct base *b)
{
	if (!b)
		return;
	listener_free(b->api_l);
	listener_free(b->agent_l);
	while (b->sessions) {
		struct conn *c = b->sessions->c;
		sess_destroy(b->sessions);
		conn_free(c);
	}
	while (b->apiconns) {
		struct conn *c = b->apiconns->c;
		apiconn_remove(b->apiconns);
		conn_free(c);
	}
	while (b->subs) {
		struct conn *c = b->subs->c;
		sub_remove(b->subs);
		conn_free(c);
	}
	tls_config_free(b->api_tls);
	tls_config_free(b->agent_tls);
	crypt_rng_free(b->rng);
	crypt_wipe(b->master, sizeof b->master);
	free(b);
}

int base_api_addr(const struct base *b, struct net_addr *out)
{
	return listener_local_addr(b->api_l, out);
}

int base_agent_addr(const struct base *b, struct net_addr *out)
{
	return listener_local_addr(b->agent_l, out);
}

size_t base_sessions(const struct base *b)
{
	return b->nregistered;
}
