/* agent: see agent.h. */
#include "agent.h"

#include <errno.h>
#include <signal.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "backoff.h"
#include "buf.h"
#include "conn.h"
#include "crypt.h"
#include "log.h"
#include "net.h"
#include "pki.h"
#include "proto.h"
#include "services.h"
#include "spool.h"
#include "store.h"
#include "taskrun.h"
#include "tls.h"
#include "version.h"
#include "xalloc.h"

#define MOD "agent"
/* Stop sending events while this much waits for the socket. */
#define PUMP_QUEUE_MAX (256 * 1024)
#define MAX_FILE       (64 * 1024)

static const char *const store_dbs[] = {"tasks", "spool", "meta", NULL};

enum state { ST_WAIT, ST_CONNECTING, ST_HELLO, ST_ONLINE, ST_STOPPING, ST_STOPPED, ST_COUNT };
enum event { EV_TIMER, EV_UPGRADED, EV_WELCOME, EV_CLOSED, EV_STOP, EV_DONE, EV_COUNT };

static const char *const state_names[] = {"wait",   "connecting", "hello",
					  "online", "stopping",	  "stopped"};
static const char *const event_names[] = {"timer", "upgraded", "welcome", "closed", "stop", "done"};

#define NO -1 /* event ignored in this state */
/* clang-format off */
static const int transitions[ST_COUNT][EV_COUNT] = {
	/*                 timer          upgraded  welcome    closed   stop         done */
	[ST_WAIT]       = { ST_CONNECTING, NO,       NO,        NO,      ST_STOPPING, NO },
	[ST_CONNECTING] = { NO,            ST_HELLO, NO,        ST_WAIT, ST_STOPPING, NO },
	[ST_HELLO]      = { NO,            NO,       ST_ONLINE, ST_WAIT, ST_STOPPING, NO },
	[ST_ONLINE]     = { NO,            NO,       NO,        ST_WAIT, ST_STOPPING, NO },
	[ST_STOPPING]   = { NO,            NO,       NO,        NO,      NO,          ST_STOPPED },
	[ST_STOPPED]    = { NO,            NO,       NO,        NO,      NO,          NO },
};
/* clang-format on */

struct agent {
	struct loop *loop;
	char *dir;
	struct agent_identity id;
	char *ca_pem, *cert_pem, *key_pem;
	time_t cert_not_before, cert_not_after;
	struct tls_config *tls;
	struct store *store;
	struct spool *spool;
	struct taskrun *tr;
	struct services *svcs;
	struct crypt_rng *rng;
	struct backoff backoff;

	enum state state;
	struct conn *conn;
	long long wait_timer, hb_timer, token_timer, renew_timer, stop_timer, prune_timer;
	long long online_since;
	int heartbeat_ms;
	char *session;
	char *access_token; /* never logged */
	uint64_t sent_seq;
	int renew_pending;
	long long renewed_ms; /* when the last renewal was asked for, or 0 */
	int closing;	      /* stopping: our close handshake is under way */
	int hold_pump;	      /* a task is being submitted: its ack goes before its events */
	int firing;
	int queued_ev; /* an event raised while firing, or -1 */
};

static void fire(struct agent *a, enum event ev);
static void check_stopped(struct agent *a);

/* --- files ---------------------------------------------------------------- */

static char *path_in(const char *dir, const char *name)
{
	struct buf b = BUF_INIT;
	buf_printf(&b, "%s/%s", dir, name);
	return buf_detach(&b, NULL);
}

static char *read_text(const char *dir, const char *name, struct buf *why)
{
	char *p = path_in(dir, name);
	struct buf b = BUF_INIT;
	char err[512];
	if (buf_read_file(&b, p, MAX_FILE, err, sizeof(err)) < 0) {
		buf_printf(why, "; %s", err);
		buf_release(&b);
		free(p);
		return NULL;
	}
	free(p);
	return buf_detach(&b, NULL);
}

static void copy_str(char *dst, size_t cap, const struct proto_jv *obj, const char *key,
		     struct buf *why)
{
	const char *s = proto_jv_get_str(obj, key);
	if (!s || !*s || strlen(s) >= cap)
		buf_printf(why, "; agent.json: '%s' must be a string of 1 to %zu characters", key,
			   cap - 1);
	else
		snprintf(dst, cap, "%s", s);
}

/* Load and cross-check everything; on success the PEMs are returned
 * (caller frees) when the pointers are not NULL. */
static int load(const char *dir, struct agent_identity *id, char **ca_out, char **cert_out,
		char **key_out, time_t *nb, time_t *na, char *err, size_t errlen)
{
	struct buf why = BUF_INIT;
	struct agent_identity tmp;
	if (!id)
		id = &tmp;
	memset(id, 0, sizeof(*id));
	char *json = read_text(dir, "agent.json", &why);
	char *ca = read_text(dir, "ca.crt", &why);
	char *cert = read_text(dir, "agent.crt", &why);
	char *key = read_text(dir, "agent.key", &why);
	if (json) {
		char m[256];
		struct proto_json *doc = proto_json_parse(json, strlen(json), m, sizeof(m));
		if (!doc) {
			buf_printf(&why, "; agent.json: %s", m);
		} else {
			const struct proto_jv *r = proto_json_root(doc);
			copy_str(id->instance_id, sizeof(id->instance_id), r, "instance_id", &why);
			copy_str(id->name, sizeof(id->name), r, "name", &why);
			copy_str(id->base_api, sizeof(id->base_api), r, "base_api", &why);
			copy_str(id->agent_addr, sizeof(id->agent_addr), r, "agent_addr", &why);
			copy_str(id->ca_fingerprint, sizeof(id->ca_fingerprint), r,
				 "ca_fingerprint", &why);
			proto_json_free(doc);
		}
	}
	char m[512];
	if (ca) {
		char fp[PKI_FINGERPRINT_LEN + 1];
		if (pki_cert_fingerprint(ca, fp, m, sizeof(m)) < 0)
			buf_printf(&why, "; ca.crt: %s", m);
		else if (id->ca_fingerprint[0] && strcmp(fp, id->ca_fingerprint) != 0)
			buf_printf(&why, "; ca.crt does not match the pinned fingerprint %s",
				   id->ca_fingerprint);
	}
	if (cert) {
		struct pki_cert_info info;
		if (pki_cert_info(cert, &info, m, sizeof(m)) < 0) {
			buf_printf(&why, "; agent.crt: %s", m);
		} else {
			if (id->instance_id[0] && strcmp(info.cn, id->instance_id) != 0)
				buf_printf(&why, "; agent.crt is for '%s', not '%s'", info.cn,
					   id->instance_id);
			struct tm tm;
			gmtime_r(&info.not_after, &tm);
			strftime(id->cert_not_after, sizeof(id->cert_not_after),
				 "%Y-%m-%dT%H:%M:%SZ", &tm);
			if (nb)
				*nb = info.not_before;
			if (na)
				*na = info.not_after;
		}
	}
	if (ca && cert && key) {
		/* Chain and key pair; an expired certificate is not a load
		 * error (the agent says so when connecting). */
		struct tls_config *t = tls_config_new_client(ca, cert, key, m, sizeof(m));
		if (!t)
			buf_printf(&why, "; %s", m);
		tls_config_free(t);
	}
	if (why.len) {
		snprintf(err, errlen, "data dir '%s': %s", dir, why.data + 2);
		buf_release(&why);
		free(json);
		free(ca);
		free(cert);
		if (key)
			crypt_wipe(key, strlen(key));
		free(key);
		return -1;
	}
	buf_release(&why);
	free(json);
	if (ca_out)
		*ca_out = ca;
	else
		free(ca);
	if (cert_out)
		*cert_out = cert;
	else
		free(cert);
	if (key_out) {
		*key_out = key;
	} else {
		crypt_wipe(key, strlen(key));
		free(key);
	}
	return 0;
}

int agent_check(const char *data_dir, struct agent_identity *id, char *err, size_t errlen)
{
	return load(data_dir, id, NULL, NULL, NULL, NULL, NULL, err, errlen);
}

/* --- sending ---------------------------------------------------------------- */

static int send_msg(struct agent *a, const struct proto_msg *m)
{
	if (!a->conn)
		return -1;
	struct buf b = BUF_INIT;
	char err[256];
	int rc = proto_encode(&b, m, err, sizeof(err));
	if (rc < 0)
		log_error(MOD, "message not encoded", "type", proto_type_name(m->type), "error",
			  err, NULL);
	else if ((rc = conn_ws_send_text(a->conn, b.data)) < 0)
		log_warn(MOD, "message not sent", "type", proto_type_name(m->type), "error",
			 conn_error(a->conn), NULL);
	buf_release(&b);
	return rc;
}

static void send_error(struct agent *a, const char *code, const char *msg, const char *ref)
{
	struct proto_msg m = {.type = PROTO_ERROR};
	m.u.error.code = (char *)code;
	m.u.error.message = (char *)msg;
	m.u.error.ref = (char *)ref;
	send_msg(a, &m);
}

/* Send spooled events after the last one sent, while the socket keeps up;
 * the drain handler resumes. */
static void pump(struct agent *a)
{
	if (!a->conn || a->closing || a->hold_pump ||
	    (a->state != ST_ONLINE && a->state != ST_STOPPING))
		return;
	struct buf kind = BUF_INIT, body = BUF_INIT;
	char err[256];
	uint64_t seq;
	while (conn_ws_queued(a->conn) < PUMP_QUEUE_MAX) {
		buf_reset(&kind);
		buf_reset(&body);
		int rc = spool_next(a->spool, a->sent_seq, &seq, &kind, &body, err, sizeof(err));
		if (rc < 0)
			log_error(MOD, "spool unreadable", "error", err, NULL);
		if (rc != 1)
			break;
		struct proto_msg m = {.type = PROTO_EVENT};
		m.u.event.seq = (int64_t)seq;
		m.u.event.kind = kind.data;
		m.u.event.body = body.data;
		if (send_msg(a, &m) < 0)
			break;
		a->sent_seq = seq;
	}
	buf_release(&kind);
	buf_release(&body);
}

/* --- timers ------------------------------------------------------------------ */

static void cancel_timer(struct agent *a, long long *t)
{
	if (*t)
		loop_timer_cancel(a->loop, *t);
	*t = 0;
}

static void hb_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct agent *a = arg;
	a->hb_timer = 0;
	if (a->state != ST_ONLINE || !a->conn)
		return;
	conn_ws_ping(a->conn);
	a->hb_timer = loop_timer_add(a->loop, a->heartbeat_ms, hb_cb, a);
}

static void token_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct agent *a = arg;
	a->token_timer = 0;
	if (a->state != ST_ONLINE)
		return;
	struct proto_msg m = {.type = PROTO_TOKEN_REFRESH};
	m.u.token_refresh.session = a->session;
	log_debug(MOD, "refreshing the access token", NULL);
	send_msg(a, &m);
	/* If no token comes, ask again; base closes the session at expiry. */
	a->token_timer = loop_timer_add(a->loop, 30000, token_cb, a);
}

static void schedule_token(struct agent *a, int64_t expires_at)
{
	cancel_timer(a, &a->token_timer);
	long long left_ms = ((long long)expires_at - (long long)time(NULL)) * 1000;
	long long in = left_ms / 2;
	if (in < 1000)
		in = 1000;
	a->token_timer = loop_timer_add(a->loop, in, token_cb, a);
}

static void renew_now(struct agent *a)
{
	if (a->state != ST_ONLINE || a->renew_pending)
		return;
	char err[256];
	struct pki_key *key = pki_key_load_pem(a->key_pem, err, sizeof(err));
	char *csr = key ? pki_csr_create(key, a->id.instance_id, a->rng, err, sizeof(err)) : NULL;
	pki_key_free(key);
	if (!csr) {
		log_error(MOD, "certificate renewal: no csr", "error", err, NULL);
		return;
	}
	struct proto_msg m = {.type = PROTO_CERT_RENEW};
	m.u.cert_renew.csr = csr;
	log_info(MOD, "renewing the certificate", "not_after", a->id.cert_not_after, NULL);
	if (send_msg(a, &m) == 0) {
		a->renew_pending = 1;
		a->renewed_ms = loop_now_ms();
	}
	free(csr);
}

static void renew_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct agent *a = arg;
	a->renew_timer = 0;
	renew_now(a);
}

/* Renew once less than a third of the lifetime is left: now, or by a timer
 * (checked again each time a session comes online). Never more often than
 * AGENT_RENEW_GAP_MS, so a base issuing very short (or backdated)
 * certificates is not asked in a tight loop. */
static void schedule_renew(struct agent *a)
{
	cancel_timer(a, &a->renew_timer);
	if (a->state != ST_ONLINE)
		return;
	time_t life = a->cert_not_after - a->cert_not_before;
	time_t at = a->cert_not_before + life - life / 3;
	long long in = ((long long)at - (long long)time(NULL)) * 1000;
	if (a->renewed_ms && loop_now_ms() - a->renewed_ms + (in > 0 ? in : 0) < AGENT_RENEW_GAP_MS)
		in = a->renewed_ms + AGENT_RENEW_GAP_MS - loop_now_ms();
	if (in <= 0) {
		renew_now(a);
		return;
	}
	if (in > 86400000LL)
		in = 86400000LL;
	a->renew_timer = loop_timer_add(a->loop, in, renew_cb, a);
}

/* --- incoming ------------------------------------------------------------------ */

static void on_cert(struct agent *a, struct proto_cert *c)
{
	a->renew_pending = 0;
	char err[512];
	struct pki_cert_info info;
	struct tls_config *t = NULL;
	if (pki_cert_verify(a->ca_pem, c->cert, NULL, err, sizeof(err)) < 0 ||
	    pki_cert_info(c->cert, &info, err, sizeof(err)) < 0) {
		log_error(MOD, "renewed certificate refused", "error", err, NULL);
		return;
	}
	if (strcmp(info.cn, a->id.instance_id) != 0) {
		log_error(MOD, "renewed certificate refused: another instance's", "cn", info.cn,
			  NULL);
		return;
	}
	t = tls_config_new_client(a->ca_pem, c->cert, a->key_pem, err, sizeof(err));
	if (!t) {
		log_error(MOD, "renewed certificate refused", "error", err, NULL);
		return;
	}
	char *p = path_in(a->dir, "agent.crt");
	int rc = pki_write_file(p, c->cert, 0644, err, sizeof(err));
	free(p);
	if (rc < 0) {
		log_error(MOD, "renewed certificate not written", "error", err, NULL);
		tls_config_free(t);
		return;
	}
	tls_config_free(a->tls);
	a->tls = t;
	free(a->cert_pem);
	a->cert_pem = xstrdup(c->cert);
	a->cert_not_before = info.not_before;
	a->cert_not_after = info.not_after;
	struct tm tm;
	gmtime_r(&info.not_after, &tm);
	strftime(a->id.cert_not_after, sizeof(a->id.cert_not_after), "%Y-%m-%dT%H:%M:%SZ", &tm);
	log_info(MOD, "certificate renewed", "serial", info.serial, "not_after",
		 a->id.cert_not_after, NULL);
	schedule_renew(a);
}

static void on_task(struct agent *a, struct proto_msg *m)
{
	struct proto_task *t = &m->u.task;
	struct buf result = BUF_INIT;
	char err[256];
	int ack_done = 0;
	a->hold_pump = 1;
	enum taskrun_status st;
	if (services_handles(t->kind)) {
		enum services_status ss = services_submit(a->svcs, t->task_id, t->kind, t->payload,
							  &result, err, sizeof(err));
		st = ss == SERVICES_ERROR	? TASKRUN_ERROR
		     : ss == SERVICES_DUPLICATE ? TASKRUN_DUPLICATE
						: TASKRUN_ACCEPTED;
		if (ss == SERVICES_DONE)
			ack_done = 1;
		/* a deploy's payload holds the service's secrets */
		if (t->payload)
			crypt_wipe(t->payload, strlen(t->payload));
	} else {
		st = taskrun_submit(a->tr, t->task_id, t->kind, t->payload, &result, err,
				    sizeof(err));
	}
	a->hold_pump = 0;
	if (st == TASKRUN_ERROR) {
		/* Nothing recorded: no ack, so base re-delivers after the lease. */
		log_error(MOD, "task not recorded", "task", t->task_id, "error", err, NULL);
		send_error(a, "store", err, m->id);
		buf_release(&result);
		return;
	}
	struct proto_msg ack = {.type = PROTO_TASK_ACK};
	ack.id = m->id;
	ack.u.task_ack.task_id = t->task_id;
	ack.u.task_ack.status = ack_done		  ? "done"
				: st == TASKRUN_ACCEPTED  ? "accepted"
				: st == TASKRUN_DUPLICATE ? "duplicate"
							  : "failed";
	ack.u.task_ack.result = result.len ? result.data : NULL;
	send_msg(a, &ack);
	buf_release(&result);
	pump(a);
}

static void on_message(struct conn *c, void *arg, enum ws_type type, const void *data, size_t len)
{
	struct agent *a = arg;
	struct proto_msg m;
	char err[512];
	if (type != WS_TEXT) {
		send_error(a, "bad_message", "binary frames are not expected", NULL);
		return;
	}
	if (proto_decode(&m, data, len, err, sizeof(err)) < 0) {
		log_warn(MOD, "bad message from base", "error", err, NULL);
		send_error(a, "bad_message", err, m.id);
		proto_msg_release(&m);
		return;
	}
	if (a->state == ST_HELLO && m.type != PROTO_WELCOME && m.type != PROTO_ERROR &&
	    m.type != PROTO_EVENT_ACK && m.type != PROTO_PING) {
		send_error(a, "unexpected", "expected welcome", m.id);
		proto_msg_release(&m);
		return;
	}
	switch (m.type) {
	case PROTO_WELCOME: {
		if (a->state != ST_HELLO)
			break;
		struct proto_welcome *w = &m.u.welcome;
		free(a->session);
		a->session = xstrdup(w->session);
		if (a->access_token)
			crypt_wipe(a->access_token, strlen(a->access_token));
		free(a->access_token);
		a->access_token = xstrdup(w->access_token);
		a->heartbeat_ms = w->heartbeat_ms >= 100 && w->heartbeat_ms <= 600000
				      ? (int)w->heartbeat_ms
				      : AGENT_HEARTBEAT_MS;
		schedule_token(a, w->token_expires_at);
		fire(a, EV_WELCOME);
		break;
	}
	case PROTO_EVENT_ACK: {
		uint64_t up = (uint64_t)m.u.event_ack.up_to_seq;
		long n = spool_ack(a->spool, up, err, sizeof(err));
		if (n < 0)
			log_error(MOD, "event ack not applied", "error", err, NULL);
		if (up > a->sent_seq)
			a->sent_seq = up;
		pump(a);
		break;
	}
	case PROTO_TASK:
		/* Stopping: no new work; without an ack base delivers it again. */
		if (a->state == ST_ONLINE)
			on_task(a, &m);
		else
			log_info(MOD, "task left for later: stopping", "task", m.u.task.task_id,
				 NULL);
		break;
	case PROTO_CANCEL:
		if (taskrun_cancel(a->tr, m.u.cancel.task_id) < 0 &&
		    services_cancel(a->svcs, m.u.cancel.task_id) < 0)
			log_info(MOD, "cancel for a task not running", "task", m.u.cancel.task_id,
				 NULL);
		break;
	case PROTO_TOKEN:
		if (a->access_token)
			crypt_wipe(a->access_token, strlen(a->access_token));
		free(a->access_token);
		a->access_token = xstrdup(m.u.token.access_token);
		schedule_token(a, m.u.token.expires_at);
		log_debug(MOD, "access token refreshed", NULL);
		break;
	case PROTO_CERT:
		on_cert(a, &m.u.cert);
		break;
	case PROTO_PING: {
		struct proto_msg p = {.type = PROTO_PONG};
		p.id = m.id;
		p.u.pong.ts = m.u.ping.ts;
		p.u.pong.has_ts = m.u.ping.has_ts;
		send_msg(a, &p);
		break;
	}
	case PROTO_PONG:
		break;
	case PROTO_ERROR:
		log_warn(MOD, "base reported an error", "code", m.u.error.code, "message",
			 m.u.error.message, "ref", m.u.error.ref, NULL);
		break;
	default:
		send_error(a, "unexpected", "message not expected by an agent", m.id);
		break;
	}
	proto_msg_release(&m);
}

/* --- connection ------------------------------------------------------------------ */

static void on_upgraded(struct conn *c, void *arg)
{
	fire(arg, EV_UPGRADED);
}

static void on_drain(struct conn *c, void *arg)
{
	pump(arg);
}

static void on_close(struct conn *c, void *arg, int code, const char *reason)
{
	struct agent *a = arg;
	a->conn = NULL;
	char cs[16];
	snprintf(cs, sizeof(cs), "%d", code);
	if (code == 4003)
		log_error(MOD,
			  "base refused the certificate (revoked or expired): rejoin with "
			  "'dployr agent join'",
			  "reason", reason, NULL);
	else if (a->state == ST_STOPPING)
		log_info(MOD, "session closed", "code", cs, NULL);
	else
		log_warn(MOD, "disconnected", "code", cs, "reason", reason, NULL);
	if (a->state == ST_STOPPING)
		check_stopped(a);
	else
		fire(a, EV_CLOSED);
}

static const struct conn_handlers handlers = {
    .upgraded = on_upgraded,
    .message = on_message,
    .drain = on_drain,
    .close = on_close,
};

/* "host:port" / "[v6]:port" -> host (for the certificate name check). */
static void host_of(const char *addr, char *out, size_t cap)
{
	const char *colon = strrchr(addr, ':');
	size_t n = colon ? (size_t)(colon - addr) : strlen(addr);
	if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') {
		addr++;
		n -= 2;
	}
	if (n >= cap)
		n = cap - 1;
	memcpy(out, addr, n);
	out[n] = 0;
}

static int connect_now(struct agent *a)
{
	char err[512];
	struct net_addr addr;
	/* A name blocks in DNS for a moment; only while no session exists. */
	if (net_parse(a->id.agent_addr, &addr, err, sizeof(err)) < 0 &&
	    net_resolve(a->id.agent_addr, &addr, err, sizeof(err)) < 0) {
		log_warn(MOD, "agent address not resolved", "error", err, NULL);
		return -1;
	}
	char host[301];
	host_of(a->id.agent_addr, host, sizeof(host));
	log_info(MOD, "connecting", "addr", a->id.agent_addr, NULL);
	a->conn = conn_connect(a->loop, &addr, a->tls, host, AGENT_CONNECT_MS, &handlers, a, err,
			       sizeof(err));
	if (!a->conn) {
		log_warn(MOD, "connect failed", "error", err, NULL);
		return -1;
	}
	if (conn_ws_connect(a->conn, "/v1/agent", NULL) < 0) {
		log_warn(MOD, "upgrade not sent", "error", conn_error(a->conn), NULL);
		conn_free(a->conn);
		a->conn = NULL;
		return -1;
	}
	return 0;
}

static void wait_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct agent *a = arg;
	a->wait_timer = 0;
	fire(a, EV_TIMER);
}

static void stop_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct agent *a = arg;
	a->stop_timer = 0;
	log_warn(MOD, "stop deadline reached; stopping anyway", NULL);
	if (a->conn)
		conn_free(a->conn);
	a->conn = NULL;
	fire(a, EV_DONE);
}

/* Stopping: once no task runs, send what the session can still take, close
 * it with 1001, and be done when the close handshake ends. */
static void check_stopped(struct agent *a)
{
	if (taskrun_running(a->tr))
		return;
	if (a->conn && !a->closing) {
		pump(a);
		a->closing = 1;
		if (conn_ws_close(a->conn, WS_GOING_AWAY, "agent stopping") == 0)
			return;
		conn_free(a->conn);
		a->conn = NULL;
	}
	if (!a->conn)
		fire(a, EV_DONE);
}

static void notify_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct agent *a = arg;
	pump(a);
	if (a->state == ST_STOPPING)
		check_stopped(a);
}

static void end_session(struct agent *a)
{
	cancel_timer(a, &a->hb_timer);
	cancel_timer(a, &a->token_timer);
	cancel_timer(a, &a->renew_timer);
	a->renew_pending = 0;
	if (a->access_token)
		crypt_wipe(a->access_token, strlen(a->access_token));
	free(a->access_token);
	a->access_token = NULL;
	free(a->session);
	a->session = NULL;
}

static void enter(struct agent *a, enum state from)
{
	switch (a->state) {
	case ST_WAIT: {
		end_session(a);
		if (from == ST_ONLINE && loop_now_ms() - a->online_since >= AGENT_STABLE_MS)
			backoff_reset(&a->backoff);
		uint32_t r;
		crypt_random(a->rng, &r, sizeof(r));
		long long ms = backoff_next(&a->backoff, r);
		char s[24];
		snprintf(s, sizeof(s), "%lld", ms);
		log_info(MOD, "reconnecting later", "delay_ms", s, NULL);
		a->wait_timer = loop_timer_add(a->loop, ms, wait_cb, a);
		break;
	}
	case ST_CONNECTING:
		if (connect_now(a) < 0)
			a->queued_ev = EV_CLOSED;
		break;
	case ST_HELLO: {
		/* The welcome must come within the dead-peer time. */
		conn_set_idle_timeout(a->conn, 3 * AGENT_HEARTBEAT_MS);
		int64_t versions[] = {PROTO_VERSION};
		char *caps[] = {AGENT_CAPABILITIES};
		struct proto_msg m = {.type = PROTO_HELLO};
		m.u.hello.agent_version = DPLOYR_VERSION;
		m.u.hello.proto_versions = versions;
		m.u.hello.proto_versions_len = 1;
		m.u.hello.capabilities = caps;
		m.u.hello.capabilities_len = sizeof(caps) / sizeof(caps[0]);
		m.u.hello.instance_id = a->id.instance_id;
		m.u.hello.last_event_seq = (int64_t)spool_last_seq(a->spool);
		if (send_msg(a, &m) < 0) {
			conn_free(a->conn);
			a->conn = NULL;
			a->queued_ev = EV_CLOSED;
		}
		break;
	}
	case ST_ONLINE: {
		a->online_since = loop_now_ms();
		conn_set_idle_timeout(a->conn, 3 * a->heartbeat_ms);
		a->hb_timer = loop_timer_add(a->loop, a->heartbeat_ms, hb_cb, a);
		/* Resend whatever base has not acked; base ignores what it has. */
		a->sent_seq = spool_acked(a->spool);
		char hb[16];
		snprintf(hb, sizeof(hb), "%d", a->heartbeat_ms);
		log_info(MOD, "online", "instance", a->id.instance_id, "session", a->session,
			 "heartbeat_ms", hb, NULL);
		schedule_renew(a);
		pump(a);
		break;
	}
	case ST_STOPPING:
		/* A session that is online stays up to carry the results of the
		 * cancelled tasks; one still starting is dropped. */
		cancel_timer(a, &a->wait_timer);
		cancel_timer(a, &a->token_timer);
		cancel_timer(a, &a->renew_timer);
		if (a->conn && from != ST_ONLINE) {
			conn_free(a->conn);
			a->conn = NULL;
		}
		taskrun_cancel_all(a->tr);
		services_stop_follows(a->svcs);
		a->stop_timer = loop_timer_add(a->loop, AGENT_STOP_MS, stop_cb, a);
		check_stopped(a);
		break;
	case ST_STOPPED:
		cancel_timer(a, &a->stop_timer);
		cancel_timer(a, &a->prune_timer);
		end_session(a);
		log_info(MOD, "stopped", NULL);
		loop_stop(a->loop);
		break;
	default:
		break;
	}
}

/* Run the state machine. An event raised by an entry action is handled
 * after it, in the same call. */
static void fire(struct agent *a, enum event ev)
{
	if (a->firing) {
		a->queued_ev = (int)ev;
		return;
	}
	a->firing = 1;
	for (;;) {
		int next = transitions[a->state][ev];
		if (next == NO) {
			log_debug(MOD, "event ignored", "state", state_names[a->state], "event",
				  event_names[ev], NULL);
		} else {
			enum state from = a->state;
			log_debug(MOD, "transition", "from", state_names[from], "event",
				  event_names[ev], "to", state_names[next], NULL);
			a->state = (enum state)next;
			a->queued_ev = -1;
			enter(a, from);
		}
		if (a->queued_ev < 0)
			break;
		ev = (enum event)a->queued_ev;
		a->queued_ev = -1;
	}
	a->firing = 0;
}

/* --- lifecycle ------------------------------------------------------------------- */

static void prune_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct agent *a = arg;
	char err[256], n[24];
	long r = taskrun_prune(a->tr, AGENT_TASK_KEEP_S, err, sizeof(err));
	if (r < 0)
		log_warn(MOD, "old task records not pruned", "error", err, NULL);
	else if (r > 0) {
		snprintf(n, sizeof(n), "%ld", r);
		log_info(MOD, "old task records pruned", "count", n, NULL);
	}
	a->prune_timer = loop_timer_add(a->loop, 86400000LL, prune_cb, a);
}

static void signal_cb(struct loop *loop, long long signo, void *arg, int mask)
{
	struct agent *a = arg;
	if (signo == SIGHUP) {
		log_reopen();
		return;
	}
	log_info(MOD, signo == SIGTERM ? "SIGTERM: stopping" : "SIGINT: stopping", NULL);
	agent_stop(a);
}

struct agent *agent_new(struct loop *loop, const char *data_dir, char *err, size_t errlen)
{
	struct agent *a = xcalloc(1, sizeof(*a));
	a->loop = loop;
	/* Absolute: programs the agent starts (rm -rf of old releases, builds)
	 * run in other directories, so a relative path would name nothing. */
	char abs[PATH_MAX];
	a->dir = xstrdup(realpath(data_dir, abs) ? abs : data_dir);
	a->queued_ev = -1;
	a->heartbeat_ms = AGENT_HEARTBEAT_MS;
	backoff_init(&a->backoff, 500, 30000);
	a->rng = crypt_rng_new();
	if (load(data_dir, &a->id, &a->ca_pem, &a->cert_pem, &a->key_pem, &a->cert_not_before,
		 &a->cert_not_after, err, errlen) < 0)
		goto fail;
	a->tls = tls_config_new_client(a->ca_pem, a->cert_pem, a->key_pem, err, errlen);
	if (!a->tls)
		goto fail;
	char *sp = path_in(data_dir, "store");
	a->store = store_open(sp, store_dbs, 0, 0, err, errlen);
	free(sp);
	if (!a->store)
		goto fail;
	a->spool = spool_new(a->store, err, errlen);
	if (!a->spool)
		goto fail;
	a->tr = taskrun_new(loop, a->store, a->spool, NULL, notify_cb, a, err, errlen);
	if (!a->tr)
		goto fail;
	a->svcs = services_new(loop, a->store, a->spool, a->dir, notify_cb, a, err, errlen);
	if (!a->svcs)
		goto fail;
	return a;
fail:
	agent_free(a);
	return NULL;
}

void agent_start(struct agent *a)
{
	loop_signal_add(a->loop, SIGTERM, signal_cb, a);
	loop_signal_add(a->loop, SIGINT, signal_cb, a);
	loop_signal_add(a->loop, SIGHUP, signal_cb, a);
	char n[24];
	snprintf(n, sizeof(n), "%zu", taskrun_recovered(a->tr));
	log_info(MOD, "starting", "instance", a->id.instance_id, "name", a->id.name, "version",
		 DPLOYR_VERSION, "lost_tasks", n, "cert_not_after", a->id.cert_not_after, NULL);
	if (a->cert_not_after && a->cert_not_after < time(NULL))
		log_error(MOD, "the certificate has expired: rejoin with 'dployr agent join'",
			  NULL);
	prune_cb(a->loop, 0, a, 0);
	/* The services the previous agent left running, before any task. */
	services_restore(a->svcs);
	a->state = ST_WAIT;
	fire(a, EV_TIMER);
}

int agent_proxy(struct agent *a, const char *listen_host, char *err, size_t errlen)
{
	return services_proxy(a->svcs, listen_host, NULL, err, errlen);
}

void agent_stop(struct agent *a)
{
	fire(a, EV_STOP);
}

void agent_free(struct agent *a)
{
	if (!a)
		return;
	if (a->loop) {
		loop_signal_del(a->loop, SIGTERM);
		loop_signal_del(a->loop, SIGINT);
		loop_signal_del(a->loop, SIGHUP);
	}
	cancel_timer(a, &a->wait_timer);
	cancel_timer(a, &a->stop_timer);
	cancel_timer(a, &a->prune_timer);
	end_session(a);
	if (a->conn)
		conn_free(a->conn);
	services_free(a->svcs);
	taskrun_free(a->tr);
	spool_free(a->spool);
	store_close(a->store);
	tls_config_free(a->tls);
	crypt_rng_free(a->rng);
	if (a->key_pem)
		crypt_wipe(a->key_pem, strlen(a->key_pem));
	free(a->key_pem);
	free(a->cert_pem);
	free(a->ca_pem);
	free(a->dir);
	free(a);
}
