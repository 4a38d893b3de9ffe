/* The daemon end to end in one process: base on 127.0.0.1 port 0, a fake
 * agent (conn client with a certificate) and an API client on the same
 * loop. */
#include "base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "conn.h"
#include "deploys.h"
#include "fleet.h"
#include "harness.h"
#include "log.h"
#include "proto.h"
#include "queue.h"
#include "svcstatus.h"
#include "xalloc.h"

#define MAXMSG 64

struct agent {
	struct conn *c;
	int upgraded, closed, close_code;
	struct proto_msg msgs[MAXMSG];
	int n;
	int http_status;
	struct buf http_body;
};

static void a_upgraded(struct conn *c, void *arg)
{
	(void)c;
	((struct agent *)arg)->upgraded = 1;
}

static void a_message(struct conn *c, void *arg, enum ws_type type, const void *data, size_t len)
{
	struct agent *a = arg;
	char err[512];
	(void)c;
	(void)type;
	if (a->n >= MAXMSG)
		harness_fail(__FILE__, __LINE__, "too many messages");
	if (proto_decode(&a->msgs[a->n], data, len, err, sizeof err) < 0)
		harness_fail(__FILE__, __LINE__, "base sent a bad message: %s", err);
	a->n++;
}

static void a_close(struct conn *c, void *arg, int code, const char *reason)
{
	struct agent *a = arg;
	(void)c;
	(void)reason;
	a->closed = 1;
	a->close_code = code;
	a->c = NULL;
}

static void a_response(struct conn *c, void *arg, struct http_parser *msg)
{
	struct agent *a = arg;
	size_t n;
	const char *b = http_body(msg, &n);
	(void)c;
	a->http_status = http_status(msg);
	buf_add(&a->http_body, b, n);
}

static const struct conn_handlers agent_h = {
    .upgraded = a_upgraded,
    .message = a_message,
    .close = a_close,
    .response = a_response,
};

/* A stream subscriber on the API port: raw text messages, one per line. */
struct watcher {
	struct conn *c;
	int upgraded, closed, close_code, n;
	struct buf text;
};

static void w_upgraded(struct conn *c, void *arg)
{
	(void)c;
	((struct watcher *)arg)->upgraded = 1;
}

static void w_message(struct conn *c, void *arg, enum ws_type type, const void *data, size_t len)
{
	struct watcher *x = arg;
	(void)c;
	(void)type;
	buf_add(&x->text, data, len);
	buf_putc(&x->text, '\n');
	x->n++;
}

static void w_close(struct conn *c, void *arg, int code, const char *reason)
{
	struct watcher *x = arg;
	(void)c;
	(void)reason;
	x->closed = 1;
	x->close_code = code;
	x->c = NULL;
}

static const struct conn_handlers watcher_h = {
    .upgraded = w_upgraded,
    .message = w_message,
    .close = w_close,
};

struct world {
	struct loop *loop;
	struct basedir *dir;
	struct base *base;
	struct crypt_rng *rng;
	char owner[128];
	struct api_config api; /* to issue certificates the way join does */
};

static void world_init(struct world *w, int lease_ms, int token_ttl_s)
{
	char err[512], fp[PKI_FINGERPRINT_LEN + 1], *tok;
	memset(w, 0, sizeof *w);
	w->rng = crypt_rng_new();
	log_set_level(LOG_LVL_OFF);
	if (basedir_init("d", "base", NULL, 0, w->rng, fp, &tok, err, sizeof err) < 0)
		harness_fail(__FILE__, __LINE__, "init: %s", err);
	snprintf(w->owner, sizeof w->owner, "Bearer %s", tok);
	free(tok);
	w->dir = basedir_open("d", err, sizeof err);
	CHECK(w->dir);
	w->loop = loop_new(0, err, sizeof err);
	struct base_opts o = {"127.0.0.1:0", "127.0.0.1:0", 2000, token_ttl_s, 0, lease_ms};
	w->base = base_new(w->loop, w->dir, &o, err, sizeof err);
	if (!w->base)
		harness_fail(__FILE__, __LINE__, "base_new: %s", err);
	w->api.store = w->dir->store;
	w->api.rng = w->rng;
	w->api.ca_pem = w->dir->ca_pem;
	w->api.ca_key = w->dir->ca_key;
}

/* Let connections the clients left end (sessions close, server conns
 * linger until EOF), bounded, so nothing is left for base_free to drop. */
static void world_free(struct world *w)
{
	long long end = loop_now_ms() + 3000;
	while (loop_timer_count(w->loop) > 0 && loop_now_ms() < end)
		loop_run_once(w->loop, 50);
	base_free(w->base);
	loop_free(w->loop);
	basedir_free(w->dir);
	crypt_rng_free(w->rng);
}

/* An instance with a certificate: its id, cert and key PEM. */
struct ident {
	char id[FLEET_ID_MAX];
	char *cert, *key;
};

static void enroll(struct world *w, const char *name, struct ident *id)
{
	char err[512], *tok;
	struct fleet_instance in;
	struct store_txn *t = store_txn_begin(w->dir->store, 0);
	CHECK_INT(fleet_add(t, w->rng, name, 1, &in, &tok, err, sizeof err), 0);
	free(tok);
	struct pki_key *k = pki_key_generate(w->rng);
	char *csr = pki_csr_create(k, "x", w->rng, err, sizeof err);
	id->cert = api_issue_agent_cert(&w->api, t, in.id, csr, err, sizeof err);
	CHECK(id->cert);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	id->key = pki_key_pem(k);
	snprintf(id->id, sizeof id->id, "%s", in.id);
	free(csr);
	pki_key_free(k);
}

static void ident_free(struct ident *id)
{
	free(id->cert);
	free(id->key);
}

static void run_until(struct world *w, int *flag, int want)
{
	long long end = loop_now_ms() + 10000;
	while (*flag < want && loop_now_ms() < end)
		loop_run_once(w->loop, 50);
	if (*flag < want)
		harness_fail(__FILE__, __LINE__, "timed out waiting (%d < %d)", *flag, want);
}

static void connect_agent(struct world *w, struct agent *a, const struct ident *id)
{
	char err[512];
	struct net_addr addr;
	memset(a, 0, sizeof *a);
	buf_init(&a->http_body);
	struct tls_config *cfg = tls_config_new_client(w->dir->ca_pem, id ? id->cert : NULL,
						       id ? id->key : NULL, err, sizeof err);
	CHECK(cfg);
	base_agent_addr(w->base, &addr);
	a->c = conn_connect(w->loop, &addr, cfg, "127.0.0.1", 5000, &agent_h, a, err, sizeof err);
	tls_config_free(cfg);
	CHECK(a->c);
	CHECK_INT(conn_ws_connect(a->c, "/v1/agent", NULL), 0);
}

static void watch(struct world *w, struct watcher *x, const char *task)
{
	char err[512], target[128];
	struct net_addr addr;
	memset(x, 0, sizeof *x);
	buf_init(&x->text);
	struct tls_config *cfg = tls_config_new_client(w->dir->ca_pem, NULL, NULL, err, sizeof err);
	base_api_addr(w->base, &addr);
	x->c = conn_connect(w->loop, &addr, cfg, "127.0.0.1", 5000, &watcher_h, x, err, sizeof err);
	tls_config_free(cfg);
	CHECK(x->c);
	snprintf(target, sizeof target, "/v1/tasks/%s/stream", task);
	const char *hdr[] = {"Authorization", w->owner, NULL};
	CHECK_INT(conn_ws_connect(x->c, target, hdr), 0);
}

static void watcher_release(struct watcher *x)
{
	buf_release(&x->text);
	conn_free(x->c);
}

static void send_text(struct agent *a, struct buf *m)
{
	CHECK_INT(conn_ws_send(a->c, WS_TEXT, m->data, m->len), 0);
	buf_reset(m);
}

static void hello(struct agent *a, const char *id, int64_t last_seq)
{
	char err[256];
	struct buf m = BUF_INIT;
	int64_t v[] = {1};
	char *caps[] = {"exec"};
	struct proto_hello h = {"test/1", v, 1, caps, 1, (char *)id, last_seq};
	CHECK_INT(proto_encode_hello(&m, "h1", &h, err, sizeof err), 0);
	send_text(a, &m);
	buf_release(&m);
}

static void event(struct agent *a, int64_t seq, const char *kind, const char *body)
{
	char err[256];
	struct buf m = BUF_INIT;
	struct proto_event e = {seq, (char *)kind, (char *)body};
	CHECK_INT(proto_encode_event(&m, NULL, &e, err, sizeof err), 0);
	send_text(a, &m);
	buf_release(&m);
}

static void agent_release(struct agent *a)
{
	for (int i = 0; i < a->n; i++)
		proto_msg_release(&a->msgs[i]);
	buf_release(&a->http_body);
	conn_free(a->c);
}

static enum queue_state task_state(struct world *w, const char *id, struct queue_task *out)
{
	struct store_txn *t = store_txn_begin(w->dir->store, 1);
	int rc = queue_get(t, id, out);
	store_txn_abort(t);
	if (rc != 0)
		harness_fail(__FILE__, __LINE__, "task '%s' missing", id);
	return out->state;
}

TEST(base_agent_session_tasks_events_tokens_certs)
{
	struct world w;
	struct ident id;
	struct agent a;
	char err[512], task[QUEUE_ID_MAX];
	world_init(&w, 0, 0);
	enroll(&w, "web-1", &id);
	/* a task queued while the agent is away */
	struct store_txn *t = store_txn_begin(w.dir->store, 0);
	CHECK_INT(queue_add(t, w.rng, id.id, "exec", "{\"argv\":[\"true\"]}", 1, task), 0);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);

	connect_agent(&w, &a, &id);
	run_until(&w, &a.upgraded, 1);
	hello(&a, id.id, 0);
	run_until(&w, &a.n, 3);
	CHECK_INT(a.msgs[0].type, PROTO_WELCOME);
	CHECK_STR(a.msgs[0].id, "h1");
	CHECK_INT(a.msgs[0].u.welcome.heartbeat_ms, 2000);
	CHECK(strncmp(a.msgs[0].u.welcome.access_token, "dpya_", 5) == 0);
	CHECK_INT(a.msgs[1].type, PROTO_EVENT_ACK);
	CHECK_INT(a.msgs[1].u.event_ack.up_to_seq, 0);
	CHECK_INT(a.msgs[2].type, PROTO_TASK);
	CHECK_STR(a.msgs[2].u.task.task_id, task);
	CHECK_STR(a.msgs[2].u.task.payload, "{\"argv\":[\"true\"]}");
	CHECK_INT(base_sessions(w.base), 1);

	struct buf m = BUF_INIT;
	struct proto_task_ack ack = {task, "accepted", NULL};
	CHECK_INT(proto_encode_task_ack(&m, NULL, &ack, err, sizeof err), 0);
	send_text(&a, &m);
	event(&a, 1, "exec_output", "{\"task_id\":\"x\"}"); /* unknown task: acked, ignored */
	char body[256];
	snprintf(body, sizeof body, "{\"task_id\":\"%s\",\"stream\":\"stdout\",\"data\":\"aGk=\"}",
		 task);
	event(&a, 2, "exec_output", body);
	event(&a, 2, "exec_output", body); /* a resend: acked, not applied twice */
	run_until(&w, &a.n, 6);
	CHECK_INT(a.msgs[3].type, PROTO_EVENT_ACK);
	CHECK_INT(a.msgs[4].u.event_ack.up_to_seq, 2);
	CHECK_INT(a.msgs[5].u.event_ack.up_to_seq, 2);
	struct queue_task k;
	CHECK_INT(task_state(&w, task, &k), QUEUE_RUNNING);
	CHECK_INT(k.output_bytes, 2);
	queue_task_release(&k);
	/* a stream subscriber gets the stored output, then live output, then
	 * the exit and a normal close */
	struct watcher x;
	watch(&w, &x, task);
	run_until(&w, &x.n, 1);
	CHECK_STR(x.text.data, "{\"type\":\"output\",\"stream\":\"stdout\",\"data\":\"aGk=\"}\n");
	snprintf(body, sizeof body, "{\"task_id\":\"%s\",\"stream\":\"stderr\",\"data\":\"AA==\"}",
		 task);
	event(&a, 3, "exec_output", body);
	run_until(&w, &x.n, 2);
	CHECK(
	    strstr(x.text.data, "{\"type\":\"output\",\"stream\":\"stderr\",\"data\":\"AA==\"}\n"));
	snprintf(body, sizeof body, "{\"task_id\":\"%s\",\"status\":7}", task);
	event(&a, 4, "exec_exit", body);
	run_until(&w, &x.closed, 1);
	CHECK_INT(x.close_code, 1000);
	CHECK_INT(x.n, 3);
	CHECK(strstr(x.text.data,
		     "{\"type\":\"exit\",\"state\":\"done\",\"status\":7,\"signal\":0}\n"));
	watcher_release(&x);
	run_until(&w, &a.n, 8);
	/* a late subscriber gets everything and the exit at once */
	watch(&w, &x, task);
	run_until(&w, &x.closed, 1);
	CHECK_INT(x.n, 3);
	CHECK_INT(x.close_code, 1000);
	watcher_release(&x);
	CHECK_INT(a.msgs[6].u.event_ack.up_to_seq, 3);
	CHECK_INT(a.msgs[7].u.event_ack.up_to_seq, 4);
	CHECK_INT(task_state(&w, task, &k), QUEUE_DONE);
	CHECK_INT(k.exit_status, 7);
	queue_task_release(&k);

	/* access token refresh, certificate renewal */
	struct proto_token_refresh tr = {a.msgs[0].u.welcome.session};
	CHECK_INT(proto_encode_token_refresh(&m, "r1", &tr, err, sizeof err), 0);
	send_text(&a, &m);
	struct pki_key *nk = pki_key_generate(w.rng);
	char *csr = pki_csr_create(nk, "x", w.rng, err, sizeof err);
	struct proto_cert_renew cr = {csr};
	CHECK_INT(proto_encode_cert_renew(&m, "c1", &cr, err, sizeof err), 0);
	send_text(&a, &m);
	run_until(&w, &a.n, 10);
	CHECK_INT(a.msgs[8].type, PROTO_TOKEN);
	CHECK_STR(a.msgs[8].id, "r1");
	CHECK(strcmp(a.msgs[8].u.token.access_token, a.msgs[0].u.welcome.access_token) != 0);
	CHECK_INT(a.msgs[9].type, PROTO_CERT);
	struct pki_cert_info info;
	CHECK_INT(pki_cert_info(a.msgs[9].u.cert.cert, &info, err, sizeof err), 0);
	CHECK_STR(info.cn, id.id);
	struct fleet_instance in;
	t = store_txn_begin(w.dir->store, 1);
	CHECK_INT(fleet_get(t, id.id, &in), 0);
	store_txn_abort(t);
	CHECK_STR(in.cert_serial, info.serial);
	CHECK_INT(in.applied_seq, 4);
	CHECK_STR(in.agent_version, "test/1");
	free(csr);
	pki_key_free(nk);

	/* garbage gets an error reply, not a crash */
	buf_puts(&m, "{\"v\":1,\"type\":\"nope\"}");
	send_text(&a, &m);
	run_until(&w, &a.n, 11);
	CHECK_INT(a.msgs[10].type, PROTO_ERROR);

	/* the old certificate (serial replaced) is refused now: the TLS
	 * handshake passes, then base drops the connection */
	struct agent old;
	connect_agent(&w, &old, &id);
	run_until(&w, &old.closed, 1);
	CHECK_INT(old.upgraded, 0);
	agent_release(&old);

	/* instance rm over the API closes the live session with 4003 */
	struct agent api;
	struct net_addr addr;
	memset(&api, 0, sizeof api);
	buf_init(&api.http_body);
	struct tls_config *cfg = tls_config_new_client(w.dir->ca_pem, NULL, NULL, err, sizeof err);
	base_api_addr(w.base, &addr);
	api.c =
	    conn_connect(w.loop, &addr, cfg, "127.0.0.1", 5000, &agent_h, &api, err, sizeof err);
	tls_config_free(cfg);
	const char *hdr[] = {"Authorization", w.owner, NULL};
	CHECK_INT(conn_request(api.c, "DELETE", "/v1/instances/web-1", hdr, NULL, 0), 0);
	run_until(&w, &a.closed, 1);
	CHECK_INT(a.close_code, 4003);
	CHECK_INT(api.http_status, 200);
	CHECK(strstr(api.http_body.data, "\"revoked\":true") != NULL);
	CHECK_INT(base_sessions(w.base), 0);
	agent_release(&api);
	buf_release(&m);
	agent_release(&a);
	ident_free(&id);
	world_free(&w);
}

TEST(base_redelivers_after_lease_expiry_and_reconnect)
{
	struct world w;
	struct ident id;
	struct agent a;
	char err[512], task[QUEUE_ID_MAX];
	world_init(&w, 50, 0); /* 50 ms leases */
	enroll(&w, "web-1", &id);
	struct store_txn *t = store_txn_begin(w.dir->store, 0);
	CHECK_INT(queue_add(t, w.rng, id.id, "exec", "{}", 1, task), 0);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	connect_agent(&w, &a, &id);
	run_until(&w, &a.upgraded, 1);
	hello(&a, id.id, 0);
	run_until(&w, &a.n, 3);
	CHECK_INT(a.msgs[2].type, PROTO_TASK);
	/* no task_ack: the lease runs out and the task comes again */
	run_until(&w, &a.n, 4);
	CHECK_INT(a.msgs[3].type, PROTO_TASK);
	CHECK_STR(a.msgs[3].u.task.task_id, task);
	struct buf m = BUF_INIT;
	struct proto_task_ack ack = {task, "accepted", NULL};
	CHECK_INT(proto_encode_task_ack(&m, NULL, &ack, err, sizeof err), 0);
	send_text(&a, &m);
	buf_release(&m);
	/* a second session of the same instance replaces the first (4002)
	 * and gets the unfinished task again */
	struct agent b;
	connect_agent(&w, &b, &id);
	run_until(&w, &b.upgraded, 1);
	hello(&b, id.id, 0);
	run_until(&w, &b.n, 3);
	run_until(&w, &a.closed, 1);
	CHECK_INT(a.close_code, 4002);
	CHECK_INT(b.msgs[2].type, PROTO_TASK);
	CHECK_STR(b.msgs[2].u.task.task_id, task);
	CHECK_INT(base_sessions(w.base), 1);
	agent_release(&a);
	agent_release(&b);
	ident_free(&id);
	world_free(&w);
}

TEST(base_refuses_agents_without_a_known_certificate)
{
	struct world w;
	struct ident id, other;
	struct agent a;
	world_init(&w, 0, 0);
	enroll(&w, "web-1", &id);
	enroll(&w, "web-2", &other);
	/* no client certificate: the handshake fails */
	connect_agent(&w, &a, NULL);
	run_until(&w, &a.closed, 1);
	CHECK_INT(a.upgraded, 0);
	agent_release(&a);
	/* a hello naming another instance than the certificate */
	connect_agent(&w, &a, &id);
	run_until(&w, &a.upgraded, 1);
	hello(&a, other.id, 0);
	run_until(&w, &a.closed, 1);
	CHECK_INT(a.close_code, 4003);
	if (a.n < 1)
		harness_fail(__FILE__, __LINE__, "no error reply before the close");
	CHECK_INT(a.msgs[0].type, PROTO_ERROR);
	CHECK_INT(base_sessions(w.base), 0);
	agent_release(&a);
	/* anything but hello first */
	connect_agent(&w, &a, &id);
	run_until(&w, &a.upgraded, 1);
	event(&a, 1, "exec_exit", "{}");
	run_until(&w, &a.closed, 1);
	CHECK_INT(a.close_code, 1008);
	agent_release(&a);
	ident_free(&id);
	ident_free(&other);
	world_free(&w);
}

TEST(base_closes_a_session_whose_access_token_expired)
{
	struct world w;
	struct ident id;
	struct agent a;
	char err[256];
	world_init(&w, 0, 1); /* 1 s access tokens */
	enroll(&w, "web-1", &id);
	connect_agent(&w, &a, &id);
	run_until(&w, &a.upgraded, 1);
	hello(&a, id.id, 0);
	run_until(&w, &a.n, 2);
	CHECK_INT(a.msgs[0].type, PROTO_WELCOME);
	/* a refresh with another session id is refused */
	struct buf m = BUF_INIT;
	struct proto_token_refresh tr = {"s-other"};
	CHECK_INT(proto_encode_token_refresh(&m, "r1", &tr, err, sizeof err), 0);
	send_text(&a, &m);
	buf_release(&m);
	run_until(&w, &a.n, 3);
	CHECK_INT(a.msgs[2].type, PROTO_ERROR);
	/* no refresh: the session ends with 4001 */
	run_until(&w, &a.closed, 1);
	CHECK_INT(a.close_code, 4001);
	CHECK_INT(base_sessions(w.base), 0);
	agent_release(&a);
	ident_free(&id);
	world_free(&w);
}

/* A deployment of service to instance (queued): its id in id. */
static void add_deploy(struct world *w, const char *service, const char *instance,
		       char id[DEPLOYS_ID_MAX])
{
	char err[512];
	struct deploys_rec d;
	struct deploys_new n = {"default", service, instance, "name: x\n", NULL, NULL, NULL};
	struct store_txn *t = store_txn_begin(w->dir->store, 0);
	CHECK_INT(deploys_add(t, w->rng, &n, 1, &d, err, sizeof err), 0);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	memcpy(id, d.id, DEPLOYS_ID_MAX);
	deploys_rec_release(&d);
}

static int status_of(struct world *w, const char *service, const char *instance,
		     struct svcstatus *st)
{
	struct store_txn *t = store_txn_begin(w->dir->store, 1);
	int rc = svcstatus_get(t, "default", service, instance, st);
	store_txn_abort(t);
	return rc;
}

/* Send a service_status event. */
static void status_event(struct agent *a, int64_t seq, const char *svc, const char *release,
			 const char *state, int64_t ts)
{
	char body[512];
	snprintf(body, sizeof body,
		 "{\"service\":\"%s\",\"release\":\"%s\",\"state\":\"%s\",\"pid\":77,"
		 "\"restarts\":2,\"health\":\"healthy\",\"port\":40001,\"since_ms\":1,"
		 "\"ts_ms\":%lld,\"error\":\"\"}",
		 svc, release, state, (long long)ts);
	event(a, seq, "service_status", body);
}

TEST(base_applies_service_status_events_and_drops_bad_ones)
{
	struct world w;
	struct ident id, other;
	struct agent a;
	struct svcstatus st;
	char api[DEPLOYS_ID_MAX], db[DEPLOYS_ID_MAX];
	world_init(&w, 0, 0);
	enroll(&w, "web-1", &id);
	enroll(&w, "web-2", &other);
	add_deploy(&w, "api", id.id, api);
	add_deploy(&w, "db", other.id, db);
	connect_agent(&w, &a, &id);
	run_until(&w, &a.upgraded, 1);
	hello(&a, id.id, 0);
	run_until(&w, &a.n, 2);
	CHECK_INT(a.msgs[1].type, PROTO_EVENT_ACK);
	/* fresh: stored, though no task names it */
	status_event(&a, 1, "api", api, "running", 1000);
	run_until(&w, &a.n, 3);
	CHECK_INT(a.msgs[2].u.event_ack.up_to_seq, 1);
	CHECK_INT(status_of(&w, "api", id.id, &st), 0);
	CHECK_STR(st.state, "running");
	CHECK_STR(st.release, api);
	CHECK_STR(st.instance, id.id);
	CHECK_INT(st.pid, 77);
	CHECK_INT(st.restarts, 2);
	CHECK_INT(st.port, 40001);
	CHECK(st.ts_ms == 1000 && st.received_ms > 0);
	/* older than the stored one: acked, ignored */
	status_event(&a, 2, "api", api, "stopped", 999);
	/* hostile or wrong: acked, dropped, the session goes on */
	status_event(&a, 3, "../../x", api, "stopped", 2000);
	status_event(&a, 4, "api", api, "st\\u00e9pped", 2000);
	event(&a, 5, "service_status", "{}");
	event(&a, 6, "service_status", "{\"service\":[1]}");
	event(&a, 7, "service_status", "{\"service\":\"api\",\"state\":\"stopped\"}");
	/* a release of another service, of another instance, or unknown */
	status_event(&a, 8, "api", db, "stopped", 2000);
	status_event(&a, 9, "db", db, "stopped", 2000);
	status_event(&a, 10, "api", "d-000000000000", "stopped", 2000);
	/* no release, of a service not deployed here or not at all */
	status_event(&a, 11, "db", "", "none", 2000);
	status_event(&a, 12, "ghost", "", "none", 2000);
	run_until(&w, &a.n, 14);
	for (int i = 3; i < 14; i++) {
		CHECK_INT(a.msgs[i].type, PROTO_EVENT_ACK);
		CHECK_INT(a.msgs[i].u.event_ack.up_to_seq, i - 1);
	}
	CHECK_INT(status_of(&w, "api", id.id, &st), 0);
	CHECK_STR(st.state, "running");
	CHECK(st.ts_ms == 1000);
	CHECK_INT(status_of(&w, "db", id.id, &st), STORE_NOTFOUND);
	CHECK_INT(status_of(&w, "db", other.id, &st), STORE_NOTFOUND);
	CHECK_INT(status_of(&w, "ghost", id.id, &st), STORE_NOTFOUND);
	/* newer: replaces it; a resend of the same seq is not applied twice */
	status_event(&a, 13, "api", api, "backoff", 3000);
	status_event(&a, 13, "api", api, "stopped", 4000);
	run_until(&w, &a.n, 16);
	CHECK_INT(a.msgs[14].u.event_ack.up_to_seq, 13);
	CHECK_INT(a.msgs[15].u.event_ack.up_to_seq, 13);
	CHECK_INT(status_of(&w, "api", id.id, &st), 0);
	CHECK_STR(st.state, "backoff");
	/* no serving release any more: taken for a service deployed here */
	status_event(&a, 14, "api", "", "none", 5000);
	run_until(&w, &a.n, 17);
	CHECK_INT(status_of(&w, "api", id.id, &st), 0);
	CHECK_STR(st.state, "none");
	CHECK_STR(st.release, "");
	CHECK_INT(base_sessions(w.base), 1);
	agent_release(&a);
	ident_free(&id);
	ident_free(&other);
	world_free(&w);
}
