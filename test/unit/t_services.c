/* services: service_status events and the live health check, with real
 * deploys (an uploaded archive, /usr/bin/python3 as the runtime and the
 * web server, /bin/sh checks) on a loop with a real store and spool. */
#include "services.h"

#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "crypt.h"
#include "harness.h"
#include "log.h"
#include "proto.h"
#include "xalloc.h"

static const char *const dbs[] = {"tasks", "spool", "meta", NULL};

struct ev {
	char state[32], health[32], release[80], error[512];
	long long pid, restarts, port, since, ts;
	int has_task_id;
};

struct t {
	struct loop *loop;
	struct store *st;
	struct spool *sp;
	struct services *ss;
	uint64_t seen;	   /* spool seq read up to */
	struct ev ev[512]; /* the service_status events, in order */
	size_t nev;
	int done;	  /* deploy_done events */
	char outcome[32]; /* of the last one */
	char rel_at_done[80]; /* release of the last service_status before it */
	char reason[1024];
};

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *cmd = xvasprintf(fmt, ap);
	va_end(ap);
	int rc = system(cmd);
	if (rc != 0)
		harness_fail(__FILE__, __LINE__, "command failed (%d): %s", rc, cmd);
	free(cmd);
}

static void t_init(struct t *t)
{
	char err[256];
	memset(t, 0, sizeof(*t));
	log_set_level(LOG_LVL_ERROR);
	t->loop = loop_new(0, err, sizeof(err));
	CHECK(t->loop);
	t->st = store_open("store", dbs, 0, 0, err, sizeof(err));
	if (!t->st)
		harness_fail(__FILE__, __LINE__, "store_open: %s", err);
	t->sp = spool_new(t->st, err, sizeof(err));
	CHECK(t->sp);
	t->ss = services_new(t->loop, t->st, t->sp, harness_tmpdir, NULL, NULL, err, sizeof(err));
	if (!t->ss)
		harness_fail(__FILE__, __LINE__, "services_new: %s", err);
}

static void t_free(struct t *t)
{
	services_free(t->ss);
	for (size_t i = 0; i < t->nev; i++)
		if (t->ev[i].pid > 0)
			kill(-(pid_t)t->ev[i].pid, SIGKILL);
	spool_free(t->sp);
	store_close(t->st);
	loop_free(t->loop);
}

static void copy_str(char *out, size_t n, const struct proto_jv *o, const char *key)
{
	const char *s = proto_jv_get_str(o, key);
	snprintf(out, n, "%s", s ? s : "(missing)");
}

static long long get_int(const struct proto_jv *o, const char *key)
{
	int64_t v = -1;
	if (proto_jv_int(proto_jv_get(o, key), &v) < 0)
		return -1;
	return (long long)v;
}

/* Read the events spooled since the last call. */
static void drain(struct t *t)
{
	char err[256];
	for (;;) {
		struct buf kind = BUF_INIT, body = BUF_INIT;
		uint64_t seq;
		int rc = spool_next(t->sp, t->seen, &seq, &kind, &body, err, sizeof(err));
		CHECK(rc >= 0);
		if (rc == 0) {
			buf_release(&kind);
			buf_release(&body);
			return;
		}
		t->seen = seq;
		struct proto_json *doc = proto_json_parse(body.data, body.len, err, sizeof(err));
		CHECK(doc);
		const struct proto_jv *o = proto_json_root(doc);
		if (!strcmp(kind.data, "service_status")) {
			CHECK(t->nev < sizeof(t->ev) / sizeof(t->ev[0]));
			struct ev *e = &t->ev[t->nev++];
			CHECK_STR(proto_jv_get_str(o, "service"), "web");
			copy_str(e->state, sizeof(e->state), o, "state");
			copy_str(e->health, sizeof(e->health), o, "health");
			copy_str(e->release, sizeof(e->release), o, "release");
			copy_str(e->error, sizeof(e->error), o, "error");
			e->pid = get_int(o, "pid");
			e->restarts = get_int(o, "restarts");
			e->port = get_int(o, "port");
			e->since = get_int(o, "since_ms");
			e->ts = get_int(o, "ts_ms");
			e->has_task_id = proto_jv_get(o, "task_id") != NULL;
		} else if (!strcmp(kind.data, "deploy_done")) {
			t->done++;
			snprintf(t->rel_at_done, sizeof(t->rel_at_done), "%s",
				 t->nev ? t->ev[t->nev - 1].release : "");
			copy_str(t->outcome, sizeof(t->outcome), o, "outcome");
			copy_str(t->reason, sizeof(t->reason), o, "reason");
		}
		proto_json_free(doc);
		buf_release(&kind);
		buf_release(&body);
	}
}

/* The last service_status event, or NULL. */
static const struct ev *last_or_null(struct t *t)
{
	return t->nev ? &t->ev[t->nev - 1] : NULL;
}

/* The last service_status event (there must be one). */
static const struct ev *last(struct t *t)
{
	if (!t->nev)
		harness_fail(__FILE__, __LINE__, "no service_status event");
	return &t->ev[t->nev - 1];
}

/* Run the loop until cond(t) holds (at most 20 s). */
static void run_until(struct t *t, int (*cond)(struct t *t), const char *what, int line)
{
	long long end = loop_now_ms() + 20000;
	for (;;) {
		drain(t);
		if (cond(t))
			return;
		if (loop_now_ms() > end) {
			const struct ev *e = last_or_null(t);
			harness_fail(
			    __FILE__, line,
			    "waited for %s; %zu events, last: state %s health %s error '%s'", what,
			    t->nev, e ? e->state : "-", e ? e->health : "-", e ? e->error : "-");
		}
		loop_run_once(t->loop, 20);
	}
}
#define RUN_UNTIL(t, cond) run_until(t, cond, #cond, __LINE__)

/* Run the loop for ms. */
static void run_for(struct t *t, long long ms)
{
	long long end = loop_now_ms() + ms;
	while (loop_now_ms() < end)
		loop_run_once(t->loop, 20);
	drain(t);
}

static void submit(struct t *t, const char *kind, const char *payload)
{
	static int ntask; /* unique across the stores a test opens again */
	char err[256], id[32];
	snprintf(id, sizeof(id), "t-%d", ++ntask);
	struct buf res = BUF_INIT;
	enum services_status st = services_submit(t->ss, id, kind, payload, &res, err, sizeof(err));
	CHECK(st == SERVICES_ACCEPTED || st == SERVICES_DONE);
	if (st == SERVICES_DONE)
		CHECK_STR(res.data, "{\"status\":0}");
	buf_release(&res);
}

static int deployed(struct t *t)
{
	return t->done > 0;
}

/* Deploy blueprint text (a service "web" from an uploaded archive) as
 * deployment dep; the deploy must succeed. */
static void deploy(struct t *t, const char *dep, const char *yaml)
{
	sh("mkdir -p app && echo hello > app/index.html && tar -C app -cf app.tar .");
	FILE *f = fopen("app.tar", "rb");
	CHECK(f);
	char raw[65536];
	size_t n = fread(raw, 1, sizeof(raw), f);
	fclose(f);
	struct buf p = BUF_INIT;
	buf_puts(&p, "{\"deployment_id\":");
	buf_json_cstr(&p, dep);
	buf_puts(&p, ",\"blueprint\":");
	buf_json_cstr(&p, yaml);
	buf_puts(&p, ",\"upload\":\"");
	crypt_b64_encode(&p, raw, n, CRYPT_B64_STD);
	buf_puts(&p, "\"}");
	t->done = 0;
	submit(t, "deploy", p.data);
	buf_release(&p);
	RUN_UNTIL(t, deployed);
	if (strcmp(t->outcome, "done") != 0)
		harness_fail(__FILE__, __LINE__, "deploy %s: %s", t->outcome, t->reason);
}

static void ctl(struct t *t, const char *action)
{
	char payload[128];
	snprintf(payload, sizeof(payload), "{\"service\":\"web\",\"action\":\"%s\"}", action);
	submit(t, "service_ctl", payload);
}

#define WEB_TCP                                                                                    \
	"name: web\ntype: web\nsource: upload\nruntime: python\n"                                  \
	"run_cmd: exec python3 -m http.server $PORT --bind 127.0.0.1\n"

static int running_healthy(struct t *t)
{
	const struct ev *e = last_or_null(t);
	return e && !strcmp(e->state, "running") && !strcmp(e->health, "healthy");
}

static int backoff_seen(struct t *t)
{
	for (size_t i = 0; i < t->nev; i++)
		if (!strcmp(t->ev[i].state, "backoff"))
			return 1;
	return 0;
}

static int restarted_healthy(struct t *t)
{
	return running_healthy(t) && last(t)->restarts == 1;
}

static int stopped(struct t *t)
{
	const struct ev *e = last_or_null(t);
	return e && !strcmp(e->state, "stopped");
}

TEST(deploy_reports_running_healthy_then_restarts_and_stop)
{
	struct t t;
	t_init(&t);
	deploy(&t, "d-1", WEB_TCP);
	RUN_UNTIL(&t, running_healthy);
	struct ev e = *last(&t);
	CHECK_STR(e.release, "d-1");
	CHECK(e.pid > 0);
	CHECK_INT(kill((pid_t)e.pid, 0), 0);
	CHECK(e.port > 0 && e.port < 65536);
	CHECK_INT(e.restarts, 0);
	CHECK_STR(e.error, "");
	CHECK(e.since > 0 && e.ts >= e.since);
	CHECK(!e.has_task_id);
	/* One event at the switch says starting or healthy, never unhealthy. */
	for (size_t i = 0; i < t.nev; i++)
		CHECK(strcmp(t.ev[i].health, "unhealthy") != 0);

	/* The process dies: backoff, then running again with a restart
	 * counted, a new process, probed again. */
	size_t before = t.nev;
	CHECK_INT(kill(-(pid_t)e.pid, SIGKILL), 0);
	RUN_UNTIL(&t, backoff_seen);
	CHECK(t.nev > before);
	const struct ev *b = last(&t);
	CHECK_STR(b->state, "backoff");
	CHECK_INT(b->pid, 0);
	CHECK_STR(b->health, "unhealthy");
	CHECK(strstr(b->error, "signal 9"));
	CHECK(b->since >= e.since);
	RUN_UNTIL(&t, restarted_healthy);
	const struct ev *r = last(&t);
	CHECK(r->pid > 0 && r->pid != e.pid);
	CHECK_INT(r->port, e.port);
	CHECK_STR(r->release, "d-1");

	/* stop holds: stopped, no process, nothing probed. */
	ctl(&t, "stop");
	RUN_UNTIL(&t, stopped);
	CHECK_INT(last(&t)->pid, 0);
	CHECK_INT(last(&t)->restarts, 1);
	size_t n = t.nev;
	run_for(&t, 600);
	CHECK_INT(t.nev, n);
	CHECK_INT(kill(-(pid_t)r->pid, 0), -1);
	t_free(&t);
}

/* A command check on a file the test removes and puts back. */
static int unhealthy_running(struct t *t)
{
	const struct ev *e = last_or_null(t);
	return e && !strcmp(e->state, "running") && !strcmp(e->health, "unhealthy");
}

TEST(health_turns_unhealthy_when_the_check_fails_and_healthy_again)
{
	struct t t;
	t_init(&t);
	sh("touch ok");
	char *yaml = xasprintf(WEB_TCP "health_check: {command: 'test -e %s/ok', interval: 50ms, "
				       "timeout: 2s, retries: 2}\n",
			       harness_tmpdir);
	deploy(&t, "d-1", yaml);
	free(yaml);
	RUN_UNTIL(&t, running_healthy);
	long long pid = last(&t)->pid;
	sh("rm ok");
	RUN_UNTIL(&t, unhealthy_running);
	CHECK(strstr(last(&t)->error, "exit 1"));
	CHECK_INT(last(&t)->pid, pid);
	CHECK_INT(last(&t)->restarts, 0); /* reported, not restarted */
	sh("touch ok");
	RUN_UNTIL(&t, running_healthy);
	CHECK_STR(last(&t)->error, "");
	CHECK_INT(last(&t)->pid, pid);
	t_free(&t);
}

static int probes(void)
{
	FILE *f = fopen("probes", "r");
	int n = 0, c;
	if (!f)
		return 0;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static int many_probes(struct t *t)
{
	(void)t;
	return probes() >= 40;
}

TEST(status_changes_in_a_burst_are_coalesced_and_the_last_is_true)
{
	struct t t;
	t_init(&t);
	/* Every probe flips the status (retries 1): healthy, unhealthy, ... */
	char *yaml = xasprintf(
	    "name: web\ntype: worker\nsource: upload\nruntime: python\nrun_cmd: exec sleep 600\n"
	    "health_check: {command: 'cd %s && if [ -e stable ]; then exit 0; fi; "
	    "if [ -e down ]; then exit 1; fi; echo >> probes; "
	    "if [ -e flip ]; then rm flip; exit 1; fi; touch flip', interval: 10ms, timeout: 2s, "
	    "retries: 1}\n",
	    harness_tmpdir);
	deploy(&t, "d-1", yaml);
	free(yaml);
	size_t n0 = t.nev;
	int p0 = probes();
	long long t0 = loop_now_ms();
	RUN_UNTIL(&t, many_probes);
	long long elapsed = loop_now_ms() - t0;
	int changes = probes() - p0;
	size_t events = t.nev - n0;
	/* at most one event per 200 ms (one may be due at the start) */
	CHECK(events >= 1);
	CHECK((long long)events <= elapsed / 200 + 2);
	CHECK((int)events < changes);
	for (size_t i = n0; i < t.nev; i++)
		CHECK(!strcmp(t.ev[i].health, "healthy") || !strcmp(t.ev[i].health, "unhealthy"));
	/* The flapping stops on unhealthy, then on healthy: each time the
	 * last event says so, whatever the one before said. */
	sh("touch down");
	RUN_UNTIL(&t, unhealthy_running);
	size_t n = t.nev;
	run_for(&t, 500);
	CHECK(t.nev <= n + 1);
	CHECK_STR(last(&t)->health, "unhealthy");
	sh("rm down && touch stable");
	RUN_UNTIL(&t, running_healthy);
	n = t.nev;
	run_for(&t, 500);
	CHECK(t.nev <= n + 1);
	CHECK_STR(last(&t)->health, "healthy");
	CHECK_STR(last(&t)->state, "running");
	t_free(&t);
}

TEST(worker_without_a_check_reports_health_none)
{
	struct t t;
	t_init(&t);
	deploy(
	    &t, "d-1",
	    "name: web\ntype: worker\nsource: upload\nruntime: python\nrun_cmd: exec sleep 600\n");
	run_for(&t, 300);
	const struct ev *e = last(&t);
	CHECK(e);
	CHECK_STR(e->state, "running");
	CHECK_STR(e->health, "none");
	CHECK_INT(e->port, 0);
	CHECK(e->pid > 0);
	for (size_t i = 0; i < t.nev; i++)
		CHECK_STR(t.ev[i].health, "none");
	t_free(&t);
}

TEST(command_check_runs_in_the_release_with_its_environment)
{
	struct t t;
	t_init(&t);
	deploy(&t, "d-1",
	       WEB_TCP "env_vars: {GREETING: hi}\n"
		       "health_check: {command: 'test \"$GREETING\" = hi && test -n \"$PORT\" && "
		       "test -e index.html', interval: 50ms, retries: 1}\n");
	RUN_UNTIL(&t, running_healthy);
	/* The file is in the release's working dir, not in the test's. */
	sh("rm services/web/releases/d-1/src/index.html");
	RUN_UNTIL(&t, unhealthy_running);
	CHECK(strstr(last(&t)->error, "command: exit 1"));
	t_free(&t);
}

TEST(http_check_follows_the_page_and_static_reports_none)
{
	struct t t;
	t_init(&t);
	deploy(&t, "d-1",
	       WEB_TCP "health_check: {path: /index.html, interval: 50ms, retries: 1}\n");
	RUN_UNTIL(&t, running_healthy);
	sh("mv services/web/releases/d-1/src/index.html services/web/releases/d-1/src/x.html");
	RUN_UNTIL(&t, unhealthy_running);
	CHECK(strstr(last(&t)->error, "status 404"));
	sh("mv services/web/releases/d-1/src/x.html services/web/releases/d-1/src/index.html");
	RUN_UNTIL(&t, running_healthy);
	long long pid = last(&t)->pid;
	t_free(&t);
	kill(-(pid_t)pid, SIGKILL);

	/* A static site: served while current, nothing to probe. */
	t_init(&t);
	deploy(&t, "s-1",
	       "name: web\ntype: static\nsource: upload\nruntime: static\nstatic_dir: .\n");
	run_for(&t, 300);
	const struct ev *e = last(&t);
	CHECK_STR(e->state, "running");
	CHECK_STR(e->health, "none");
	CHECK_STR(e->release, "s-1");
	CHECK_INT(e->pid, 0);
	CHECK_INT(e->port, 0);
	t_free(&t);
}

/* Base must know the serving release when it learns a deploy ended: a
 * coalesced service_status is spooled before deploy_done, even when the
 * switch came right after another event. */
TEST(status_of_the_new_release_comes_before_deploy_done)
{
	struct t t;
	t_init(&t);
	deploy(&t, "d-1", WEB_TCP);
	CHECK_STR(t.rel_at_done, "d-1");
	for (int i = 2; i <= 4; i++) {
		char dep[16];
		snprintf(dep, sizeof(dep), "d-%d", i);
		deploy(&t, dep, WEB_TCP);
		CHECK_STR(t.rel_at_done, dep);
	}
	t_free(&t);
}
