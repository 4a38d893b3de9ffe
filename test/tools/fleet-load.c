/* fleet-load: N simulated agents against a running base (issue 3's
 * benchmark; driven by scripts/bench-fleet). A benchmark tool: it prints
 * figures and asserts nothing.
 *
 *   fleet-load --api HOST:PORT --agent HOST:PORT --ca CA.PEM --token-file F
 *              --cache DIR [-n N] [--prefix sim] [--inflight K] [--enrollers E]
 *
 * 1. Enrollment: for each name PREFIX-NNNNN without an identity in the
 *    cache directory: POST /v1/instances {"name"} with the owner token,
 *    then POST /v1/join {"token","csr","name"} with a fresh P-256 key (the
 *    requests of `dployr agent join`, over E keep-alive API connections).
 *    The key and certificate go to DIR/NAME.key and DIR/NAME.crt, so a
 *    second run against the same base skips this step.
 * 2. Sessions: N mTLS WebSocket sessions to the agent port speaking the
 *    real protocol: hello -> welcome; WebSocket ping every heartbeat_ms and
 *    a dead peer after 3 x silence (conn_ws_heartbeat); token_refresh at
 *    half the token's life; reconnection after a lost session with the
 *    agent's jittered backoff (backoff.h, 0.5 s doubling to 30 s, reset
 *    after AGENT_STABLE_MS online). At most K connects are in flight during
 *    the initial start (a fleet does not boot in one millisecond);
 *    reconnects are not paced beyond the backoff, like real agents.
 *    A task is answered at once with task_ack "accepted" and an event
 *    exec_exit {status 0} WITHOUT running anything (no process, no agent
 *    LMDB), so the exec round trip measures the platform, not process
 *    start or the agent's disk.
 *
 * Output lines on stdout (key=value, for the script):
 *   enrolled new=N cached=M ms=T
 *   all_online n=N ms=T              every time the count of sessions past
 *                                    welcome reaches N; ms since the start,
 *                                    or since the first loss after the last
 *                                    all_online
 *   lost n=N                         the first session lost after all_online
 *   base_view online=X total=Y       GET /v1/instances (after "count")
 *   exec n=K mode=M p50_ms= p90_ms= p99_ms= max_ms= mean_ms= failed=F
 * Commands on stdin, one a line:
 *   count                  GET /v1/instances and print base_view
 *   exec NAME K stream|poll  K sequential execs of ["true"] on instance NAME:
 *                          POST /v1/instances/NAME/exec, then either the
 *                          stream WebSocket (a new TLS connection, as
 *                          `dployr exec` does) until its exit message, or
 *                          GET /v1/tasks/ID on the kept-alive connection
 *                          until done; time from sending the POST to the end
 *   quit                   exit
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "backoff.h"
#include "buf.h"
#include "conn.h"
#include "crypt.h"
#include "loop.h"
#include "net.h"
#include "pki.h"
#include "proto.h"
#include "tls.h"
#include "version.h"
#include "xalloc.h"

enum sstate { S_WAIT, S_CONNECTING, S_HELLO, S_ONLINE };

struct fleet;

struct sim {
	struct fleet *f;
	int idx;
	char name[64];
	char id[72];
	struct tls_config *tls;
	struct conn *c;
	enum sstate st;
	int initial; /* counted in f->inflight */
	struct backoff bo;
	long long wait_timer, token_timer;
	long long online_since;
	char session[130];
	int64_t seq; /* last event seq sent or acked */
	unsigned long tasks;
};

struct enroller {
	struct fleet *f;
	struct conn *c;
	int idx;  /* -1: idle */
	int step; /* 0: instance, 1: join */
	struct pki_key *key;
	char *csr;
};

struct bench {
	struct conn *api;  /* kept alive */
	struct conn *strm; /* per task, stream mode */
	char name[64];
	int poll;
	int count, done, failed;
	long long t0;
	char task[130];
	int phase; /* 0: POST, 1: GET */
	double *ms;
};

struct fleet {
	struct loop *loop;
	struct net_addr api_addr, agent_addr;
	char api_host[64], agent_host[64];
	char *ca_pem, *token, *cache, *prefix;
	char auth[600];
	struct tls_config *api_tls;
	struct crypt_rng *rng;
	int n, inflight, max_inflight, next_start;
	struct sim *sims;
	int online;
	long long t_start, t_lost;
	int reached;
	unsigned long sessions_lost, connect_failures, tasks;
	/* enrollment */
	struct enroller *enr;
	int nenr, next_enroll, enrolled_new, enroll_active;
	long long t_enroll;
	struct bench bench;
	struct buf in;
	/* why connects failed: the first 48 characters of each reason */
	char why[16][49];
	unsigned long why_n[16];
};

static void count_why(struct fleet *f, int code, const char *reason)
{
	char key[49];
	snprintf(key, sizeof key, "%d %s", code, reason);
	for (char *p = key; *p; p++)
		if (*p >= '0' && *p <= '9' && p > key + 5)
			*p = '#'; /* ports, pids: one bucket */
	int i;
	for (i = 0; i < 16 && f->why[i][0]; i++)
		if (strcmp(f->why[i], key) == 0)
			break;
	if (i == 16)
		i = 15;
	if (!f->why[i][0])
		snprintf(f->why[i], sizeof f->why[i], "%s", key);
	f->why_n[i]++;
}

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "fleet-load: %s: %s\n", what, why);
	exit(1);
}

static char *path_of(const struct fleet *f, const char *name, const char *ext)
{
	struct buf b = BUF_INIT;
	buf_printf(&b, "%s/%s.%s", f->cache, name, ext);
	return buf_detach(&b, NULL);
}

static void host_of(const char *addr, char *out, size_t cap)
{
	const char *colon = strrchr(addr, ':');
	size_t n = colon ? (size_t)(colon - addr) : strlen(addr);
	if (n >= cap)
		n = cap - 1;
	memcpy(out, addr, n);
	out[n] = 0;
}

/* --- simulated agents ------------------------------------------------------- */

static void sim_connect(struct sim *s);
static void start_more(struct fleet *f);

static void cancel(struct fleet *f, long long *t)
{
	if (*t)
		loop_timer_cancel(f->loop, *t);
	*t = 0;
}

static void send_text(struct sim *s, const struct proto_msg *m)
{
	struct buf b = BUF_INIT;
	char err[256];
	if (proto_encode(&b, m, err, sizeof err) < 0)
		fprintf(stderr, "fleet-load: %s: encode: %s\n", s->name, err);
	else if (s->c && conn_ws_send_text(s->c, b.data) < 0)
		fprintf(stderr, "fleet-load: %s: send: %s\n", s->name, conn_error(s->c));
	buf_release(&b);
}

static void wait_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct sim *s = arg;
	s->wait_timer = 0;
	sim_connect(s);
}

static void initial_done(struct sim *s)
{
	if (!s->initial)
		return;
	s->initial = 0;
	s->f->inflight--;
	start_more(s->f);
}

/* The session ended: back to WAIT with the agent's backoff. */
static void sim_lost(struct sim *s)
{
	struct fleet *f = s->f;
	cancel(f, &s->token_timer);
	if (s->st == S_ONLINE) {
		f->online--;
		f->sessions_lost++;
		if (loop_now_ms() - s->online_since >= AGENT_STABLE_MS)
			backoff_reset(&s->bo);
		if (f->reached && !f->t_lost) {
			f->t_lost = loop_now_ms();
			printf("lost n=%d\n", f->n - f->online);
			fflush(stdout);
		}
	} else {
		f->connect_failures++;
	}
	s->st = S_WAIT;
	s->c = NULL;
	initial_done(s);
	uint32_t r;
	crypt_random(f->rng, &r, sizeof r);
	s->wait_timer = loop_timer_add(f->loop, backoff_next(&s->bo, r), wait_cb, s);
}

static void token_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct sim *s = arg;
	s->token_timer = 0;
	if (s->st != S_ONLINE)
		return;
	struct proto_msg m = {.type = PROTO_TOKEN_REFRESH};
	m.u.token_refresh.session = s->session;
	send_text(s, &m);
	s->token_timer = loop_timer_add(s->f->loop, 30000, token_cb, s);
}

static void schedule_token(struct sim *s, int64_t expires_at)
{
	cancel(s->f, &s->token_timer);
	long long in = ((long long)expires_at - (long long)time(NULL)) * 1000 / 2;
	s->token_timer = loop_timer_add(s->f->loop, in < 1000 ? 1000 : in, token_cb, s);
}

static void all_online(struct fleet *f)
{
	long long from = f->reached ? f->t_lost : f->t_start;
	printf("all_online n=%d ms=%lld\n", f->n, loop_now_ms() - from);
	fflush(stdout);
	f->reached = 1;
	f->t_lost = 0;
}

/* A task: acknowledged and finished at once, nothing run (see the top). */
static void on_task(struct sim *s, struct proto_msg *m)
{
	struct proto_msg ack = {.type = PROTO_TASK_ACK};
	ack.id = m->id;
	ack.u.task_ack.task_id = m->u.task.task_id;
	ack.u.task_ack.status = "accepted";
	send_text(s, &ack);
	struct buf body = BUF_INIT;
	buf_puts(&body, "{\"task_id\":");
	buf_json_cstr(&body, m->u.task.task_id);
	buf_puts(&body, ",\"status\":0}");
	struct proto_msg ev = {.type = PROTO_EVENT};
	ev.u.event.seq = ++s->seq;
	ev.u.event.kind = "exec_exit";
	ev.u.event.body = body.data;
	send_text(s, &ev);
	buf_release(&body);
	s->tasks++;
	s->f->tasks++;
}

static void sim_message(struct conn *c, void *arg, enum ws_type type, const void *data, size_t len)
{
	struct sim *s = arg;
	struct fleet *f = s->f;
	struct proto_msg m;
	char err[512];
	if (type != WS_TEXT)
		return;
	if (proto_decode(&m, data, len, err, sizeof err) < 0) {
		fprintf(stderr, "fleet-load: %s: bad message: %s\n", s->name, err);
		proto_msg_release(&m);
		return;
	}
	switch (m.type) {
	case PROTO_WELCOME:
		if (s->st != S_HELLO)
			break;
		snprintf(s->session, sizeof s->session, "%s", m.u.welcome.session);
		s->st = S_ONLINE;
		s->online_since = loop_now_ms();
		int hb = m.u.welcome.heartbeat_ms >= 100 && m.u.welcome.heartbeat_ms <= 600000
			     ? (int)m.u.welcome.heartbeat_ms
			     : AGENT_HEARTBEAT_MS;
		conn_ws_heartbeat(s->c, hb);
		schedule_token(s, m.u.welcome.token_expires_at);
		f->online++;
		initial_done(s);
		if (f->online == f->n)
			all_online(f);
		break;
	case PROTO_EVENT_ACK:
		if (m.u.event_ack.up_to_seq > s->seq)
			s->seq = m.u.event_ack.up_to_seq;
		break;
	case PROTO_TASK:
		on_task(s, &m);
		break;
	case PROTO_TOKEN:
		schedule_token(s, m.u.token.expires_at);
		break;
	case PROTO_PING: {
		struct proto_msg p = {.type = PROTO_PONG};
		p.id = m.id;
		p.u.pong.ts = m.u.ping.ts;
		p.u.pong.has_ts = m.u.ping.has_ts;
		send_text(s, &p);
		break;
	}
	case PROTO_ERROR:
		fprintf(stderr, "fleet-load: %s: base error %s: %s\n", s->name, m.u.error.code,
			m.u.error.message);
		break;
	default:
		break;
	}
	proto_msg_release(&m);
}

static void sim_upgraded(struct conn *c, void *arg)
{
	struct sim *s = arg;
	s->st = S_HELLO;
	conn_set_idle_timeout(c, 3 * AGENT_HEARTBEAT_MS);
	int64_t versions[] = {PROTO_VERSION};
	char *caps[] = {AGENT_CAPABILITIES};
	struct proto_msg m = {.type = PROTO_HELLO};
	m.u.hello.agent_version = DPLOYR_VERSION "-sim";
	m.u.hello.proto_versions = versions;
	m.u.hello.proto_versions_len = 1;
	m.u.hello.capabilities = caps;
	m.u.hello.capabilities_len = 1;
	m.u.hello.instance_id = s->id;
	m.u.hello.last_event_seq = s->seq;
	send_text(s, &m);
}

static void sim_close(struct conn *c, void *arg, int code, const char *reason)
{
	struct sim *s = arg;
	if (code == 4003 || (s->st == S_ONLINE && code != 1006 && code != 1001))
		fprintf(stderr, "fleet-load: %s: closed %d: %s\n", s->name, code, reason);
	if (s->st != S_ONLINE)
		count_why(s->f, code, reason);
	sim_lost(s);
}

static const struct conn_handlers sim_handlers = {
    .upgraded = sim_upgraded,
    .message = sim_message,
    .close = sim_close,
};

static void sim_connect(struct sim *s)
{
	struct fleet *f = s->f;
	char err[256];
	s->st = S_CONNECTING;
	s->c = conn_connect(f->loop, &f->agent_addr, s->tls, f->agent_host, AGENT_CONNECT_MS,
			    &sim_handlers, s, err, sizeof err);
	if (s->c && conn_ws_connect(s->c, "/v1/agent", NULL) < 0) {
		snprintf(err, sizeof err, "%s", conn_error(s->c));
		conn_free(s->c);
		s->c = NULL;
	}
	if (!s->c)
		sim_lost(s);
}

static void start_more(struct fleet *f)
{
	while (f->inflight < f->max_inflight && f->next_start < f->n) {
		struct sim *s = &f->sims[f->next_start++];
		s->initial = 1;
		f->inflight++;
		sim_connect(s);
	}
}

/* Load the cached identity of s; 0, or -1 when there is none. */
static int sim_load(struct fleet *f, struct sim *s)
{
	char *kp = path_of(f, s->name, "key"), *cp = path_of(f, s->name, "crt");
	struct buf k = BUF_INIT, c = BUF_INIT;
	char err[512];
	int rc = -1;
	if (buf_read_file(&k, kp, 65536, err, sizeof err) < 0 ||
	    buf_read_file(&c, cp, 65536, err, sizeof err) < 0)
		goto out;
	struct pki_cert_info info;
	if (pki_cert_info(c.data, &info, err, sizeof err) < 0)
		die(cp, err);
	if (info.not_after < time(NULL) + 600)
		die(cp, "certificate expires in less than 10 minutes: start with an empty cache");
	snprintf(s->id, sizeof s->id, "%s", info.cn);
	s->tls = tls_config_new_client(f->ca_pem, c.data, k.data, err, sizeof err);
	if (!s->tls)
		die(cp, err);
	rc = 0;
out:
	if (k.len)
		crypt_wipe(k.data, k.len);
	buf_release(&k);
	buf_release(&c);
	free(kp);
	free(cp);
	return rc;
}

/* --- enrollment -------------------------------------------------------------- */

static void enroll_next(struct enroller *e);
static void sessions_start(struct fleet *f);

static void enroll_send(struct enroller *e)
{
	struct fleet *f = e->f;
	struct sim *s = &f->sims[e->idx];
	const char *hdrs[] = {"Authorization", f->auth, "Content-Type", "application/json", NULL};
	struct buf b = BUF_INIT;
	int rc;
	if (e->step == 0) {
		buf_puts(&b, "{\"name\":");
		buf_json_cstr(&b, s->name);
		buf_putc(&b, '}');
		rc = conn_request(e->c, "POST", "/v1/instances", hdrs, b.data, b.len);
	} else {
		rc = 0; /* sent from the response handler */
	}
	buf_release(&b);
	if (rc < 0)
		die("enroll request", conn_error(e->c));
}

static void enroll_response(struct conn *c, void *arg, struct http_parser *msg)
{
	struct enroller *e = arg;
	struct fleet *f = e->f;
	struct sim *s = &f->sims[e->idx];
	size_t len;
	const char *body = http_body(msg, &len);
	int status = http_status(msg);
	char err[512];
	struct proto_json *doc = proto_json_parse(body, len, err, sizeof err);
	const struct proto_jv *r = doc ? proto_json_root(doc) : NULL;
	if (status != 200 && status != 201) {
		const char *m = r ? proto_jv_get_str(r, "error") : NULL;
		snprintf(err, sizeof err, "%s: %s answered %d: %s", s->name,
			 e->step ? "POST /v1/join" : "POST /v1/instances", status,
			 m ? m : "(no reason)");
		die("enrollment", err);
	}
	if (e->step == 0) {
		const char *tok = r ? proto_jv_get_str(r, "join_token") : NULL;
		if (!tok)
			die("enrollment", "no join_token in the reply");
		e->key = pki_key_generate(f->rng);
		e->csr = pki_csr_create(e->key, "dployr-agent", f->rng, err, sizeof err);
		if (!e->csr)
			die("csr", err);
		struct buf b = BUF_INIT;
		buf_puts(&b, "{\"token\":");
		buf_json_cstr(&b, tok);
		buf_puts(&b, ",\"csr\":");
		buf_json_cstr(&b, e->csr);
		buf_puts(&b, ",\"name\":");
		buf_json_cstr(&b, s->name);
		buf_putc(&b, '}');
		static const char *const hdrs[] = {"Content-Type", "application/json", NULL};
		e->step = 1;
		if (conn_request(c, "POST", "/v1/join", hdrs, b.data, b.len) < 0)
			die("join request", conn_error(c));
		buf_release(&b);
	} else {
		const char *cert = r ? proto_jv_get_str(r, "cert") : NULL;
		if (!cert)
			die("enrollment", "no cert in the join reply");
		char *kp = path_of(f, s->name, "key"), *cp = path_of(f, s->name, "crt");
		if (pki_key_write_file(e->key, kp, err, sizeof err) < 0 ||
		    pki_write_file(cp, cert, 0644, err, sizeof err) < 0)
			die("cache", err);
		free(kp);
		free(cp);
		pki_key_free(e->key);
		e->key = NULL;
		free(e->csr);
		e->csr = NULL;
		if (sim_load(f, s) < 0)
			die(s->name, "enrolled identity not readable");
		f->enrolled_new++;
		enroll_next(e);
	}
	proto_json_free(doc);
}

static void enroll_close(struct conn *c, void *arg, int code, const char *reason)
{
	struct enroller *e = arg;
	/* A kept-alive connection may end between requests; redo the step. */
	e->c = NULL;
	if (e->idx < 0)
		return;
	fprintf(stderr, "fleet-load: enrollment connection closed (%s); retrying %s\n", reason,
		e->f->sims[e->idx].name);
	pki_key_free(e->key);
	e->key = NULL;
	free(e->csr);
	e->csr = NULL;
	/* The instance may exist now: a retry of step 0 would get 409. */
	if (e->step == 1)
		die("enrollment", "connection lost during join; start with an empty cache");
	e->f->next_enroll = e->idx;
	e->idx = -1;
	enroll_next(e);
}

static const struct conn_handlers enroll_handlers = {
    .response = enroll_response,
    .close = enroll_close,
};

static void enroll_next(struct enroller *e)
{
	struct fleet *f = e->f;
	e->idx = -1;
	while (f->next_enroll < f->n && f->sims[f->next_enroll].tls)
		f->next_enroll++;
	if (f->next_enroll >= f->n) {
		if (e->c)
			conn_close(e->c);
		e->c = NULL;
		if (--f->enroll_active == 0) {
			printf("enrolled new=%d cached=%d ms=%lld\n", f->enrolled_new,
			       f->n - f->enrolled_new, loop_now_ms() - f->t_enroll);
			fflush(stdout);
			sessions_start(f);
		}
		return;
	}
	e->idx = f->next_enroll++;
	e->step = 0;
	if (!e->c) {
		char err[256];
		e->c = conn_connect(f->loop, &f->api_addr, f->api_tls, f->api_host, 10000,
				    &enroll_handlers, e, err, sizeof err);
		if (!e->c)
			die("api connect", err);
	}
	enroll_send(e);
}

/* --- exec benchmark and commands -------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *v, int n, double p)
{
	int i = (int)(p * (n - 1) + 0.5);
	return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static void bench_step(struct fleet *f);

static void bench_report(struct fleet *f)
{
	struct bench *b = &f->bench;
	int n = b->done;
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += b->ms[i];
	qsort(b->ms, (size_t)n, sizeof *b->ms, cmp_double);
	if (n)
		printf("exec n=%d mode=%s p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f "
		       "mean_ms=%.3f failed=%d\n",
		       n, b->poll ? "poll" : "stream", pct(b->ms, n, 0.5), pct(b->ms, n, 0.9),
		       pct(b->ms, n, 0.99), b->ms[n - 1], sum / n, b->failed);
	else
		printf("exec n=0 failed=%d\n", b->failed);
	fflush(stdout);
	free(b->ms);
	b->ms = NULL;
	b->count = 0;
}

static void bench_sample(struct fleet *f)
{
	struct bench *b = &f->bench;
	b->ms[b->done++] = (double)(now_us() - b->t0) / 1000.0;
	if (b->done >= b->count)
		bench_report(f);
	else
		bench_step(f);
}

static void bench_fail(struct fleet *f, const char *why)
{
	struct bench *b = &f->bench;
	fprintf(stderr, "fleet-load: exec: %s\n", why);
	b->failed++;
	if (b->failed > 10 || b->done + b->failed >= b->count)
		bench_report(f);
	else
		bench_step(f);
}

static void strm_message(struct conn *c, void *arg, enum ws_type type, const void *data, size_t len)
{
	struct fleet *f = arg;
	struct proto_json *doc = proto_json_parse(data, len, NULL, 0);
	const char *t = doc ? proto_jv_get_str(proto_json_root(doc), "type") : NULL;
	int exit_msg = t && strcmp(t, "exit") == 0;
	proto_json_free(doc);
	if (!exit_msg)
		return;
	conn_close(c);
	f->bench.strm = NULL;
	bench_sample(f);
}

static void strm_close(struct conn *c, void *arg, int code, const char *reason)
{
	struct fleet *f = arg;
	f->bench.strm = NULL;
	bench_fail(f, reason);
}

static const struct conn_handlers strm_handlers = {
    .message = strm_message,
    .close = strm_close,
};

static void api_response(struct conn *c, void *arg, struct http_parser *msg)
{
	struct fleet *f = arg;
	struct bench *b = &f->bench;
	size_t len;
	const char *body = http_body(msg, &len);
	char err[256];
	struct proto_json *doc = proto_json_parse(body, len, err, sizeof err);
	const struct proto_jv *r = doc ? proto_json_root(doc) : NULL;
	if (http_status(msg) / 100 != 2) {
		const char *m = r ? proto_jv_get_str(r, "error") : NULL;
		snprintf(err, sizeof err, "answered %d: %s", http_status(msg), m ? m : "");
		proto_json_free(doc);
		bench_fail(f, err);
		return;
	}
	if (b->phase == 0) {
		const char *id = r ? proto_jv_get_str(r, "task_id") : NULL;
		snprintf(b->task, sizeof b->task, "%s", id ? id : "");
		proto_json_free(doc);
		if (!id) {
			bench_fail(f, "no task_id");
			return;
		}
		struct buf t = BUF_INIT;
		if (b->poll) {
			b->phase = 1;
			buf_printf(&t, "/v1/tasks/%s", b->task);
			const char *hdrs[] = {"Authorization", f->auth, NULL};
			conn_request(c, "GET", t.data, hdrs, NULL, 0);
		} else {
			buf_printf(&t, "/v1/tasks/%s/stream", b->task);
			const char *hdrs[] = {"Authorization", f->auth, NULL};
			b->strm = conn_connect(f->loop, &f->api_addr, f->api_tls, f->api_host,
					       10000, &strm_handlers, f, err, sizeof err);
			if (!b->strm || conn_ws_connect(b->strm, t.data, hdrs) < 0) {
				buf_release(&t);
				bench_fail(f, "stream connect failed");
				return;
			}
		}
		buf_release(&t);
		return;
	}
	const char *st = r ? proto_jv_get_str(r, "state") : NULL;
	int fin = st && (strcmp(st, "done") == 0 || strcmp(st, "failed") == 0 ||
			 strcmp(st, "cancelled") == 0);
	proto_json_free(doc);
	if (fin) {
		bench_sample(f);
	} else {
		struct buf t = BUF_INIT;
		buf_printf(&t, "/v1/tasks/%s", b->task);
		const char *hdrs[] = {"Authorization", f->auth, NULL};
		conn_request(c, "GET", t.data, hdrs, NULL, 0);
		buf_release(&t);
	}
}

static void api_close(struct conn *c, void *arg, int code, const char *reason)
{
	struct fleet *f = arg;
	f->bench.api = NULL;
	if (f->bench.count)
		bench_fail(f, reason);
}

static const struct conn_handlers api_handlers = {
    .response = api_response,
    .close = api_close,
};

static void bench_step(struct fleet *f)
{
	struct bench *b = &f->bench;
	char err[256];
	if (!b->api) {
		b->api = conn_connect(f->loop, &f->api_addr, f->api_tls, f->api_host, 10000,
				      &api_handlers, f, err, sizeof err);
		if (!b->api)
			die("api connect", err);
	}
	struct buf t = BUF_INIT;
	buf_printf(&t, "/v1/instances/%s/exec", b->name);
	static const char body[] = "{\"argv\":[\"true\"],\"timeout_s\":30,\"queue\":false}";
	const char *hdrs[] = {"Authorization", f->auth, "Content-Type", "application/json", NULL};
	b->phase = 0;
	b->t0 = now_us();
	if (conn_request(b->api, "POST", t.data, hdrs, body, sizeof body - 1) < 0)
		die("exec request", conn_error(b->api));
	buf_release(&t);
}

/* GET /v1/instances on its own connection, with room for a large fleet
 * (the default client limit, 1 MiB, holds about 7,000 instances). */
static void count_response(struct conn *c, void *arg, struct http_parser *msg)
{
	struct fleet *f = arg;
	size_t len;
	const char *body = http_body(msg, &len);
	int online = 0, total = 0;
	/* Counted in the text: proto_json_parse stops at PROTO_MAX_MSG (1 MiB),
	 * and 10,000 instances take 1.5 MB. The values are base's own. */
	if (http_status(msg) == 200) {
		static const char id_key[] = "\"id\":", on_key[] = "\"state\":\"online\"";
		for (const char *p = body, *e = body + len;
		     (p = memmem(p, (size_t)(e - p), id_key, sizeof id_key - 1)); p++)
			total++;
		for (const char *p = body, *e = body + len;
		     (p = memmem(p, (size_t)(e - p), on_key, sizeof on_key - 1)); p++)
			online++;
	}
	printf("base_view online=%d total=%d status=%d bytes=%zu sim_online=%d sessions_lost=%lu "
	       "connect_failures=%lu tasks=%lu\n",
	       online, total, http_status(msg), len, f->online, f->sessions_lost,
	       f->connect_failures, f->tasks);
	fflush(stdout);
	for (int i = 0; i < 16 && f->why[i][0]; i++)
		printf("connect_failure count=%lu reason=\"%s\"\n", f->why_n[i], f->why[i]);
	fflush(stdout);
	conn_close(c);
}

static void count_close(struct conn *c, void *arg, int code, const char *reason)
{
	printf("base_view online=-1 total=-1 error=\"%s\"\n", reason);
	fflush(stdout);
}

static const struct conn_handlers count_handlers = {
    .response = count_response,
    .close = count_close,
};

static void cmd_count(struct fleet *f)
{
	char err[256];
	const char *hdrs[] = {"Authorization", f->auth, NULL};
	struct conn *c = conn_connect(f->loop, &f->api_addr, f->api_tls, f->api_host, 30000,
				      &count_handlers, f, err, sizeof err);
	if (!c)
		die("api connect", err);
	conn_http_limits(c)->body = (size_t)256 << 20;
	if (conn_request(c, "GET", "/v1/instances", hdrs, NULL, 0) < 0)
		die("count request", conn_error(c));
}

static void command(struct fleet *f, char *line)
{
	char name[64], mode[16];
	int k;
	if (strcmp(line, "quit") == 0) {
		loop_stop(f->loop);
	} else if (strcmp(line, "count") == 0) {
		cmd_count(f);
	} else if (sscanf(line, "exec %63s %d %15s", name, &k, mode) == 3 && k > 0) {
		struct bench *b = &f->bench;
		if (b->count) {
			printf("exec busy\n");
			fflush(stdout);
			return;
		}
		snprintf(b->name, sizeof b->name, "%s", name);
		b->poll = strcmp(mode, "poll") == 0;
		b->count = k;
		b->done = b->failed = 0;
		b->ms = xcalloc((size_t)k, sizeof *b->ms);
		bench_step(f);
	} else {
		fprintf(stderr, "fleet-load: unknown command '%s'\n", line);
	}
}

static void stdin_cb(struct loop *loop, long long fd, void *arg, int mask)
{
	struct fleet *f = arg;
	char tmp[4096];
	ssize_t n = read((int)fd, tmp, sizeof tmp);
	if (n <= 0) {
		if (n < 0 && errno == EAGAIN)
			return;
		loop_del_fd(loop, (int)fd);
		loop_stop(loop);
		return;
	}
	buf_add(&f->in, tmp, (size_t)n);
	char *nl;
	while (f->in.len && (nl = memchr(f->in.data, '\n', f->in.len))) {
		*nl = 0;
		char *line = xstrdup(f->in.data);
		buf_consume(&f->in, (size_t)(nl - f->in.data) + 1);
		command(f, line);
		free(line);
	}
}

/* --- main --------------------------------------------------------------------- */

static void sessions_start(struct fleet *f)
{
	f->t_start = loop_now_ms();
	start_more(f);
}

static char *read_all(const char *path)
{
	struct buf b = BUF_INIT;
	char err[512];
	if (buf_read_file(&b, path, 1 << 20, err, sizeof err) < 0)
		die(path, err);
	return buf_detach(&b, NULL);
}

static void usage(void)
{
	fputs("usage: fleet-load --api HOST:PORT --agent HOST:PORT --ca CA.PEM --token-file F\n"
	      "                  --cache DIR [-n N] [--prefix P] [--inflight K] [--enrollers E]\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *api = NULL, *agent = NULL, *ca = NULL, *tokfile = NULL, *cache = NULL;
	const char *prefix = "sim";
	int n = 1000, inflight = 100, nenr = 4;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (i + 1 >= argc)
			usage();
		const char *v = argv[++i];
		if (strcmp(a, "--api") == 0)
			api = v;
		else if (strcmp(a, "--agent") == 0)
			agent = v;
		else if (strcmp(a, "--ca") == 0)
			ca = v;
		else if (strcmp(a, "--token-file") == 0)
			tokfile = v;
		else if (strcmp(a, "--cache") == 0)
			cache = v;
		else if (strcmp(a, "--prefix") == 0)
			prefix = v;
		else if (strcmp(a, "-n") == 0)
			n = atoi(v);
		else if (strcmp(a, "--inflight") == 0)
			inflight = atoi(v);
		else if (strcmp(a, "--enrollers") == 0)
			nenr = atoi(v);
		else
			usage();
	}
	if (!api || !agent || !ca || !tokfile || !cache || n < 1 || inflight < 1 || nenr < 1)
		usage();
	signal(SIGPIPE, SIG_IGN);

	/* One fd per session, plus the cache files and the API connections. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rlim_t want = (rlim_t)n + 256;
		if (rl.rlim_cur < want) {
			rl.rlim_cur =
			    rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
			getrlimit(RLIMIT_NOFILE, &rl);
		}
		if (rl.rlim_cur < (rlim_t)n + 64)
			fprintf(stderr,
				"fleet-load: warning: RLIMIT_NOFILE is %llu for %d sessions\n",
				(unsigned long long)rl.rlim_cur, n);
	}

	struct fleet *f = xcalloc(1, sizeof *f);
	char err[512];
	f->n = n;
	f->max_inflight = inflight;
	f->prefix = xstrdup(prefix);
	f->cache = xstrdup(cache);
	f->ca_pem = read_all(ca);
	f->token = read_all(tokfile);
	f->token[strcspn(f->token, "\r\n")] = 0;
	snprintf(f->auth, sizeof f->auth, "Bearer %s", f->token);
	f->rng = crypt_rng_new();
	f->in = (struct buf)BUF_INIT;
	if (net_parse(api, &f->api_addr, err, sizeof err) < 0)
		die(api, err);
	if (net_parse(agent, &f->agent_addr, err, sizeof err) < 0)
		die(agent, err);
	host_of(api, f->api_host, sizeof f->api_host);
	host_of(agent, f->agent_host, sizeof f->agent_host);
	if (mkdir(cache, 0700) < 0 && errno != EEXIST)
		die(cache, strerror(errno));
	f->api_tls = tls_config_new_client(f->ca_pem, NULL, NULL, err, sizeof err);
	if (!f->api_tls)
		die("ca", err);
	f->loop = loop_new(0, err, sizeof err);
	if (!f->loop)
		die("loop", err);

	f->sims = xcalloc((size_t)n, sizeof *f->sims);
	int cached = 0;
	for (int i = 0; i < n; i++) {
		struct sim *s = &f->sims[i];
		s->f = f;
		s->idx = i;
		snprintf(s->name, sizeof s->name, "%s-%05d", prefix, i);
		backoff_init(&s->bo, 500, 30000);
		cached += sim_load(f, s) == 0;
	}
	fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
	loop_add_fd(f->loop, 0, LOOP_READ, stdin_cb, f);

	f->t_enroll = loop_now_ms();
	if (cached == n) {
		printf("enrolled new=0 cached=%d ms=0\n", n);
		fflush(stdout);
		sessions_start(f);
	} else {
		f->nenr = nenr;
		f->enr = xcalloc((size_t)nenr, sizeof *f->enr);
		f->enroll_active = nenr;
		for (int i = 0; i < nenr; i++) {
			f->enr[i].f = f;
			f->enr[i].idx = -1;
			enroll_next(&f->enr[i]);
		}
	}
	loop_run(f->loop);
	/* Exit without tearing the sessions down one by one: the process
	 * ending closes every socket. */
	return 0;
}
