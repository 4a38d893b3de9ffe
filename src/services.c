/* services: see services.h. */
#include "services.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bp.h"
#include "crypt.h"
#include "diag.h"
#include "health.h"
#include "log.h"
#include "pipeline.h"
#include "proto.h"
#include "run.h"
#include "supervise.h"
#include "xalloc.h"

#define MOD	      "services"
#define LOG_FLUSH_MS  100
#define LOG_FLUSH_MAX 8192
#define TASK_PREFIX   "svctask/"
#define STATUS_MIN_MS 200 /* service_status: at most one per service this often */

struct svc {
	struct services *ss;
	char *name;
	struct pipeline *p;
	char *task;   /* the deploy task in progress, or NULL */
	char *dep;    /* its deployment id */
	char *upload; /* its archive (source: upload), removed at the end */
	struct buf log;
	long long flush_timer;
	long long restart_timer; /* restart: waiting for the stop to end */
	/* service_status events (status_*) and the live health check of the
	 * serving release (monitor_*). */
	struct health *mon; /* probing mon_rel's process mon_pid, or NULL */
	char *mon_rel;	    /* the running process mon_* was set up for */
	pid_t mon_pid;
	int mon_none;	      /* that release has nothing to probe */
	char mon_err[256];    /* why its check could not be made */
	const char *st_state; /* the state last seen (static string) */
	char *st_rel;	      /* and its release */
	long long st_since;   /* when they last changed (wall ms) */
	long long st_last;    /* loop_now_ms of the last event */
	int st_sent;	      /* an event was spooled */
	long long st_timer;   /* flushes the coalesced event */
	struct svc *next;
};

struct services {
	struct loop *loop;
	struct store *store;
	struct spool *spool;
	char *dir; /* DATA/services */
	loop_fn notify;
	void *arg;
	int meta;
	struct svc *list;
	long long status_timer; /* one service_status per service at start */
};

static void status_release(struct svc *v);
static void status_announce(struct loop *loop, long long id, void *arg, int mask);

static void notify(struct services *ss)
{
	if (ss->notify)
		ss->notify(ss->loop, 0, ss->arg, 0);
}

int services_handles(const char *kind)
{
	return !strcmp(kind, "deploy") || !strcmp(kind, "deploy_cancel") ||
	       !strcmp(kind, "service_logs") || !strcmp(kind, "service_ctl");
}

struct services *services_new(struct loop *loop, struct store *s, struct spool *sp,
			      const char *data_dir, loop_fn notify_fn, void *arg, char *err,
			      size_t errlen)
{
	int meta = store_db(s, "meta");
	if (meta < 0) {
		snprintf(err, errlen, "services: the store has no 'meta' database");
		return NULL;
	}
	struct services *ss = xcalloc(1, sizeof(*ss));
	ss->loop = loop;
	ss->store = s;
	ss->spool = sp;
	ss->dir = xasprintf("%s/services", data_dir);
	ss->notify = notify_fn;
	ss->arg = arg;
	ss->meta = meta;
	ss->status_timer = loop_timer_add(loop, 0, status_announce, ss);
	return ss;
}

static void svc_free(struct svc *v)
{
	if (v->flush_timer)
		loop_timer_cancel(v->ss->loop, v->flush_timer);
	if (v->restart_timer)
		loop_timer_cancel(v->ss->loop, v->restart_timer);
	pipeline_free(v->p);
	status_release(v);
	free(v->name);
	free(v->task);
	free(v->dep);
	if (v->upload)
		unlink(v->upload);
	free(v->upload);
	buf_release(&v->log);
	free(v);
}

void services_free(struct services *ss)
{
	if (!ss)
		return;
	while (ss->list) {
		struct svc *v = ss->list;
		ss->list = v->next;
		svc_free(v);
	}
	if (ss->status_timer)
		loop_timer_cancel(ss->loop, ss->status_timer);
	free(ss->dir);
	free(ss);
}

size_t services_busy(const struct services *ss)
{
	size_t n = 0;
	for (const struct svc *v = ss->list; v; v = v->next)
		n += v->task != NULL;
	return n;
}

/* Record task_id's state ("running", "done") and spool an event (kind may
 * be NULL) in one transaction. 0, or -1 with err. */
static int record(struct services *ss, const char *task_id, const char *state, const char *kind,
		  const char *body, char *err, size_t errlen)
{
	struct buf key = BUF_INIT;
	buf_printf(&key, TASK_PREFIX "%s", task_id);
	struct store_txn *t = store_txn_begin(ss->store, 0);
	store_put(t, ss->meta, key.data, key.len, state, strlen(state));
	if (kind)
		spool_add_txn(ss->spool, t, kind, body);
	buf_release(&key);
	return store_txn_commit(t, err, errlen);
}

/* The recorded state of task_id appended to out: 1, 0 unknown, -1. */
static int recorded(struct services *ss, const char *task_id, struct buf *out)
{
	struct buf key = BUF_INIT;
	buf_printf(&key, TASK_PREFIX "%s", task_id);
	struct store_txn *t = store_txn_begin(ss->store, 1);
	int rc = store_get_buf(t, ss->meta, key.data, key.len, out);
	int failed = store_txn_failed(t);
	store_txn_abort(t);
	buf_release(&key);
	return failed ? -1 : rc == 0 ? 1 : 0;
}

static void spool_event(struct services *ss, const char *kind, const char *body)
{
	char err[256];
	if (spool_add(ss->spool, kind, body, err, sizeof(err)) == 0)
		log_error(MOD, "event not spooled", "kind", kind, "error", err, NULL);
	notify(ss);
}

static void body_start(struct buf *b, const char *task, const char *dep)
{
	buf_puts(b, "{\"task_id\":");
	buf_json_cstr(b, task);
	buf_puts(b, ",\"deployment_id\":");
	buf_json_cstr(b, dep);
}

static void flush_log(struct svc *v)
{
	if (v->flush_timer) {
		loop_timer_cancel(v->ss->loop, v->flush_timer);
		v->flush_timer = 0;
	}
	if (!v->log.len || !v->task)
		return;
	struct buf b = BUF_INIT;
	body_start(&b, v->task, v->dep);
	buf_puts(&b, ",\"text\":");
	buf_json_str(&b, v->log.data, v->log.len);
	buf_puts(&b, "}");
	spool_event(v->ss, "deploy_log", b.data);
	buf_release(&b);
	buf_reset(&v->log);
}

static void flush_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct svc *v = arg;
	(void)loop;
	(void)id;
	(void)mask;
	v->flush_timer = 0;
	flush_log(v);
}

static void on_stage(struct pipeline *p, void *arg, int stage)
{
	struct svc *v = arg;
	(void)p;
	if (!v->task)
		return;
	flush_log(v);
	struct buf b = BUF_INIT;
	body_start(&b, v->task, v->dep);
	buf_puts(&b, ",\"stage\":");
	buf_json_cstr(&b, pipeline_stage_name((enum pipeline_stage)stage));
	buf_puts(&b, "}");
	spool_event(v->ss, "deploy_stage", b.data);
	buf_release(&b);
}

static void on_log(struct pipeline *p, void *arg, const char *line)
{
	struct svc *v = arg;
	(void)p;
	if (!v->task)
		return;
	buf_puts(&v->log, line);
	buf_putc(&v->log, '\n');
	if (v->log.len >= LOG_FLUSH_MAX)
		flush_log(v);
	else if (!v->flush_timer)
		v->flush_timer = loop_timer_add(v->ss->loop, LOG_FLUSH_MS, flush_cb, v);
}

/* The end of task/dep: deploy_done, and the task recorded done. */
static void finish(struct services *ss, const char *task, const char *dep,
		   const struct pipeline_result *r, const char *outcome, const char *reason)
{
	char err[256];
	struct buf b = BUF_INIT;
	body_start(&b, task, dep);
	buf_puts(&b, ",\"outcome\":");
	buf_json_cstr(&b, outcome);
	buf_puts(&b, ",\"reason\":");
	buf_json_cstr(&b, reason ? reason : "");
	if (r) {
		buf_puts(&b, ",\"stage\":");
		buf_json_cstr(&b, pipeline_stage_name(r->stage));
		buf_puts(&b, ",\"release\":");
		buf_json_cstr(&b, r->release ? r->release : "");
		buf_puts(&b, ",\"runtime_version\":");
		buf_json_cstr(&b, r->runtime_version ? r->runtime_version : "");
		buf_puts(&b, ",\"revision\":");
		buf_json_cstr(&b, r->revision ? r->revision : "");
		buf_printf(&b, ",\"pid\":%d,\"port\":%d", (int)r->pid, r->port);
	}
	buf_puts(&b, "}");
	if (record(ss, task, "done", "deploy_done", b.data, err, sizeof(err)) < 0)
		log_error(MOD, "deploy end not recorded", "task", task, "error", err, NULL);
	log_info(MOD, "deploy ended", "deployment", dep, "outcome", outcome, NULL);
	buf_release(&b);
	notify(ss);
}

static void on_done(struct pipeline *p, void *arg, const struct pipeline_result *r)
{
	struct svc *v = arg;
	(void)p;
	if (!v->task)
		return;
	flush_log(v);
	char *task = v->task, *dep = v->dep;
	v->task = v->dep = NULL;
	if (v->upload) {
		unlink(v->upload);
		free(v->upload);
		v->upload = NULL;
	}
	finish(v->ss, task, dep, r, pipeline_outcome_name(r->outcome), r->reason);
	free(task);
	free(dep);
}

/* --- service_status events and the live health check (status_*, monitor_*) --- */

static long long wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void monitor_stop(struct svc *v)
{
	health_free(v->mon);
	v->mon = NULL;
	free(v->mon_rel);
	v->mon_rel = NULL;
	v->mon_pid = 0;
	v->mon_none = 0;
	v->mon_err[0] = 0;
}

static void status_changed(struct svc *v);

static void monitor_changed(struct health *h, void *arg, int status)
{
	(void)h;
	(void)status;
	status_changed(arg);
}

/* Probe the serving release's process while it runs: a new check when the
 * release or its process changed, none while nothing runs. */
static void monitor_sync(struct svc *v)
{
	pid_t pid = 0;
	const char *rel = pipeline_current(v->p, &pid, NULL);
	struct supervise *sv = pipeline_supervisor(v->p);
	if (!rel || !sv || supervise_state(sv) != SUPERVISE_RUNNING) {
		monitor_stop(v);
		return;
	}
	if (v->mon_rel && !strcmp(v->mon_rel, rel) && v->mon_pid == pid)
		return;
	monitor_stop(v);
	v->mon_rel = xstrdup(rel);
	v->mon_pid = pid;
	struct health_opts ho;
	if (pipeline_health(v->p, &ho) != 1) {
		v->mon_none = 1;
		return;
	}
	ho.on_change = monitor_changed;
	ho.arg = v;
	v->mon = health_new(v->ss->loop, &ho, v->mon_err, sizeof(v->mon_err));
	if (!v->mon) {
		log_warn(MOD, "no live health check", "service", v->name, "error", v->mon_err,
			 NULL);
		return;
	}
	health_start(v->mon);
}

/* The state reported for the serving release rel (see services.h). */
static const char *status_state(struct svc *v, const char *rel)
{
	struct supervise *sv = pipeline_supervisor(v->p);
	if (!rel)
		return "none";
	if (sv)
		return supervise_state_name(supervise_state(sv));
	/* static: served while current; otherwise pipeline_stop is at work */
	return pipeline_type(v->p) == BP_TYPE_STATIC ? "running" : "stopping";
}

/* The health reported for the serving release rel (see services.h). */
static const char *status_health(struct svc *v, const char *rel)
{
	struct health_opts ho;
	if (!rel || v->mon_none)
		return "none";
	if (v->mon)
		return health_status_name(health_status(v->mon));
	if (v->mon_err[0])
		return "unhealthy";
	/* nothing runs: unhealthy when there is something to probe */
	return pipeline_health(v->p, &ho) == 1 ? "unhealthy" : "none";
}

/* Spool one service_status event with the state as it is now. */
static void status_emit(struct svc *v)
{
	pid_t pid = 0;
	int port = 0;
	const char *rel = pipeline_current(v->p, &pid, &port);
	struct supervise *sv = pipeline_supervisor(v->p);
	enum supervise_state st = sv ? supervise_state(sv) : SUPERVISE_STOPPED;
	const char *state = status_state(v, rel);
	char why[256] = "";
	if (sv && *supervise_error(sv))
		snprintf(why, sizeof(why), "%s", supervise_error(sv));
	else if (sv && (st == SUPERVISE_BACKOFF || st == SUPERVISE_FAILED) &&
		 supervise_last_status(sv) >= 0)
		run_status_str(supervise_last_status(sv), why, sizeof(why));
	else if (v->mon_err[0])
		snprintf(why, sizeof(why), "%s", v->mon_err);
	else if (v->mon)
		snprintf(why, sizeof(why), "%s", health_error(v->mon));
	if (!v->st_since)
		v->st_since = wall_ms();
	struct buf b = BUF_INIT;
	buf_puts(&b, "{\"service\":");
	buf_json_cstr(&b, v->name);
	buf_puts(&b, ",\"release\":");
	buf_json_cstr(&b, rel ? rel : "");
	buf_puts(&b, ",\"state\":");
	buf_json_cstr(&b, state);
	buf_printf(&b, ",\"pid\":%d,\"restarts\":%u,\"health\":", (int)pid,
		   sv ? supervise_restarts(sv) : 0);
	buf_json_cstr(&b, status_health(v, rel));
	buf_printf(&b, ",\"port\":%d,\"since_ms\":%lld,\"ts_ms\":%lld,\"error\":", port,
		   v->st_since, wall_ms());
	buf_json_cstr(&b, why);
	buf_puts(&b, "}");
	spool_event(v->ss, "service_status", b.data);
	buf_release(&b);
	v->st_last = loop_now_ms();
	v->st_sent = 1;
}

static void status_flush(struct loop *loop, long long id, void *arg, int mask)
{
	struct svc *v = arg;
	(void)loop;
	(void)id;
	(void)mask;
	v->st_timer = 0;
	status_emit(v);
}

/* Something changed: an event now, or when STATUS_MIN_MS have passed since
 * the last one (it then says the state of that moment: the latest wins). */
static void status_changed(struct svc *v)
{
	if (v->st_timer)
		return;
	long long wait = v->st_sent ? v->st_last + STATUS_MIN_MS - loop_now_ms() : 0;
	if (wait > 0)
		v->st_timer = loop_timer_add(v->ss->loop, wait, status_flush, v);
	else
		status_emit(v);
}

/* on_service: the serving release or its state changed. */
static void status_on_service(struct svc *v)
{
	const char *rel = pipeline_current(v->p, NULL, NULL);
	const char *state = status_state(v, rel);
	if (!v->st_state || strcmp(v->st_state, state) || !v->st_rel != !rel ||
	    (rel && strcmp(v->st_rel, rel))) {
		v->st_state = state;
		free(v->st_rel);
		v->st_rel = rel ? xstrdup(rel) : NULL;
		v->st_since = wall_ms();
	}
	monitor_sync(v);
	status_changed(v);
}

/* At agent start (after the services were taken back): one event for each
 * service that has not said anything yet. */
static void status_announce(struct loop *loop, long long id, void *arg, int mask)
{
	struct services *ss = arg;
	(void)loop;
	(void)id;
	(void)mask;
	ss->status_timer = 0;
	for (struct svc *v = ss->list; v; v = v->next)
		if (!v->st_sent)
			status_changed(v);
}

static void status_release(struct svc *v)
{
	if (v->st_timer)
		loop_timer_cancel(v->ss->loop, v->st_timer);
	v->st_timer = 0;
	monitor_stop(v);
	free(v->st_rel);
	v->st_rel = NULL;
}

static void on_service(struct pipeline *p, void *arg)
{
	struct svc *v = arg;
	(void)p;
	status_on_service(v); /* H5 */
}

/* A service name as blueprints have them (a DNS label): safe as a path
 * component. */
static int svc_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n < 1 || n > 63 || !strchr("abcdefghijklmnopqrstuvwxyz0123456789", name[0]))
		return 0;
	return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

static struct svc *find_svc(struct services *ss, const char *name)
{
	for (struct svc *v = ss->list; v; v = v->next)
		if (!strcmp(v->name, name))
			return v;
	return NULL;
}

static struct svc *get_svc(struct services *ss, const char *name, char *err, size_t errlen)
{
	struct svc *v = find_svc(ss, name);
	if (v)
		return v;
	mkdir(ss->dir, 0700);
	char *dir = xasprintf("%s/%s", ss->dir, name);
	v = xcalloc(1, sizeof(*v));
	v->ss = ss;
	v->name = xstrdup(name);
	buf_init(&v->log);
	struct pipeline_opts o = {0};
	o.name = name;
	o.dir = dir;
	o.on_stage = on_stage;
	o.on_log = on_log;
	o.on_done = on_done;
	o.on_service = on_service;
	o.arg = v;
	v->p = pipeline_new(ss->loop, &o, err, errlen);
	free(dir);
	if (!v->p) {
		svc_free(v);
		return NULL;
	}
	v->next = ss->list;
	ss->list = v;
	return v;
}

/* Secrets of the payload as "NAME=value" strings (wipe and free with
 * free_env). */
static char **secret_env(const struct proto_jv *sec, size_t *n)
{
	*n = 0;
	if (!sec || proto_jv_type(sec) != PROTO_J_OBJ)
		return NULL;
	char **env = xcalloc(proto_jv_len(sec) + 1, sizeof(*env));
	for (const struct proto_jv *m = proto_jv_first(sec); m; m = proto_jv_next(m))
		if (proto_jv_str(m))
			env[(*n)++] = xasprintf("%s=%s", proto_jv_key(m), proto_jv_str(m));
	return env;
}

static void free_env(char **env, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		crypt_wipe(env[i], strlen(env[i]));
		free(env[i]);
	}
	free(env);
}

static void deploy(struct services *ss, const char *task_id, const struct proto_jv *o)
{
	char why[1024];
	const char *dep = proto_jv_get_str(o, "deployment_id");
	const char *text = proto_jv_get_str(o, "blueprint");
	const char *rb = proto_jv_get_str(o, "rollback_of");
	struct diag_list dl;
	diag_list_init(&dl);
	struct bp_file *f = NULL;
	size_t nsec = 0;
	char **sec = NULL;
	if (!dep || !text) {
		finish(ss, task_id, dep ? dep : "", NULL, "error",
		       "deploy task: 'deployment_id' and 'blueprint' are required");
		goto out;
	}
	f = bp_parse("blueprint", text, strlen(text), &dl);
	const struct bp *bp = bp_file_count(f) == 1 ? bp_file_get(f, 0) : NULL;
	if (!bp || bp->nerrors || !bp->name) {
		finish(ss, task_id, dep, NULL, "error", "deploy task: the blueprint is not valid");
		goto out;
	}
	struct svc *v = get_svc(ss, bp->name, why, sizeof(why));
	if (!v) {
		finish(ss, task_id, dep, NULL, "error", why);
		goto out;
	}
	if (v->task) {
		snprintf(why, sizeof(why), "service '%s' is deploying '%s'", bp->name, v->dep);
		finish(ss, task_id, dep, NULL, "error", why);
		goto out;
	}
	const char *up = proto_jv_get_str(o, "upload");
	if (up) {
		struct buf raw = BUF_INIT;
		char *path = xasprintf("%s/upload-%s.tar", ss->dir, dep);
		FILE *fp = NULL;
		int ok = crypt_b64_decode(&raw, up, strlen(up), CRYPT_B64_STD) == 0 &&
			 (fp = fopen(path, "wb")) != NULL &&
			 fwrite(raw.data, 1, raw.len, fp) == raw.len;
		if (fp && fclose(fp) != 0)
			ok = 0;
		buf_release(&raw);
		if (!ok) {
			unlink(path);
			free(path);
			finish(ss, task_id, dep, NULL, "error",
			       "upload: the archive cannot be kept");
			goto out;
		}
		free(v->upload);
		v->upload = path;
	}
	sec = secret_env(proto_jv_get(o, "secrets"), &nsec);
	struct pipeline_req req = {0};
	req.upload = v->upload;
	req.id = rb && *rb ? rb : dep;
	req.bp = bp;
	req.secrets = (const char *const *)sec;
	req.nsecrets = nsec;
	v->task = xstrdup(task_id);
	v->dep = xstrdup(dep);
	int rc = rb && *rb ? pipeline_rollback(v->p, &req, why, sizeof(why))
			   : pipeline_deploy(v->p, &req, why, sizeof(why));
	if (rc < 0) {
		free(v->task);
		free(v->dep);
		v->task = v->dep = NULL;
		if (v->upload) {
			unlink(v->upload);
			free(v->upload);
			v->upload = NULL;
		}
		finish(ss, task_id, dep, NULL, "error", why);
		goto out;
	}
	log_info(MOD, "deploy started", "service", bp->name, "deployment", dep, NULL);
out:
	free_env(sec, nsec);
	bp_file_free(f);
	diag_list_release(&dl);
}

/* The last `lines` lines (of at most LOGS_MAX bytes) of the serving
 * release's output of service name, as exec_output events and an
 * exec_exit (status 0, or 1 with "error"), spooled with the task's record
 * in one transaction. */
#define LOGS_MAX ((size_t)4 << 20)
static int service_logs(struct services *ss, const char *task_id, const char *name, long long lines,
			char *err, size_t errlen)
{
	struct buf data = BUF_INIT, ev = BUF_INIT, key = BUF_INIT;
	char why[512] = "";
	char target[4096];
	ssize_t n = -1;
	if (name) {
		char *cur = xasprintf("%s/%s/current", ss->dir, name);
		n = readlink(cur, target, sizeof(target) - 1);
		free(cur);
	}
	if (n <= 0) {
		snprintf(why, sizeof(why), "service '%s' has no current release here",
			 name ? name : "");
	} else {
		target[n] = 0;
		const char *rel = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
		char *path = xasprintf("%s/%s/logs/%s.log", ss->dir, name, rel);
		FILE *f = fopen(path, "rb");
		free(path);
		if (!f) {
			snprintf(why, sizeof(why), "release '%.64s' of '%.64s' has no log", rel,
				 name);
		} else {
			fseek(f, 0, SEEK_END);
			long size = ftell(f);
			long from = size > (long)LOGS_MAX ? size - (long)LOGS_MAX : 0;
			fseek(f, from, SEEK_SET);
			buf_grow(&data, (size_t)(size - from) + 1);
			data.len = fread(data.data, 1, (size_t)(size - from), f);
			data.data[data.len] = 0;
			fclose(f);
		}
	}
	/* keep the last `lines` lines */
	size_t start = data.len, seen = 0;
	if (start && data.data[start - 1] == '\n')
		start--;
	while (start > 0) {
		if (data.data[start - 1] == '\n' && ++seen == (size_t)lines)
			break;
		start--;
	}
	struct store_txn *t = store_txn_begin(ss->store, 0);
	for (size_t off = start; off < data.len; off += 12288) {
		size_t k = data.len - off < 12288 ? data.len - off : 12288;
		buf_reset(&ev);
		buf_puts(&ev, "{\"task_id\":");
		buf_json_cstr(&ev, task_id);
		buf_puts(&ev, ",\"stream\":\"stdout\",\"data\":\"");
		crypt_b64_encode(&ev, data.data + off, k, CRYPT_B64_STD);
		buf_puts(&ev, "\"}");
		spool_add_txn(ss->spool, t, "exec_output", ev.data);
	}
	buf_reset(&ev);
	buf_puts(&ev, "{\"task_id\":");
	buf_json_cstr(&ev, task_id);
	if (why[0]) {
		buf_puts(&ev, ",\"status\":1,\"error\":");
		buf_json_cstr(&ev, why);
		buf_puts(&ev, "}");
	} else {
		buf_puts(&ev, ",\"status\":0}");
	}
	spool_add_txn(ss->spool, t, "exec_exit", ev.data);
	buf_printf(&key, TASK_PREFIX "%s", task_id);
	store_put(t, ss->meta, key.data, key.len, "done", 4);
	int rc = store_txn_commit(t, err, errlen);
	buf_release(&data);
	buf_release(&ev);
	buf_release(&key);
	notify(ss);
	return rc;
}

static void restart_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct svc *v = arg;
	(void)id;
	(void)mask;
	v->restart_timer = 0;
	struct supervise *sv = pipeline_supervisor(v->p);
	if (!sv)
		return;
	if (supervise_state(sv) == SUPERVISE_STOPPING) {
		v->restart_timer = loop_timer_add(loop, 100, restart_cb, v);
		return;
	}
	supervise_start(sv);
	log_info(MOD, "service restarted", "service", v->name, NULL);
}

/* stop, start or restart the serving release of name in place: 0, or -1
 * with why. */
static int service_ctl(struct services *ss, const char *name, const char *action, char *why,
		       size_t whylen)
{
	struct svc *v = name ? find_svc(ss, name) : NULL;
	struct supervise *sv = v ? pipeline_supervisor(v->p) : NULL;
	if (!sv) {
		snprintf(why, whylen, "service '%.64s' has no running release here",
			 name ? name : "");
		return -1;
	}
	if (!strcmp(action, "stop")) {
		supervise_stop(sv);
	} else if (!strcmp(action, "start")) {
		supervise_start(sv);
	} else if (!strcmp(action, "restart")) {
		supervise_stop(sv);
		if (!v->restart_timer)
			v->restart_timer = loop_timer_add(ss->loop, 100, restart_cb, v);
	} else {
		snprintf(why, whylen, "unknown action '%.32s'", action);
		return -1;
	}
	log_info(MOD, "service control", "service", name, "action", action, NULL);
	return 0;
}

enum services_status services_submit(struct services *ss, const char *task_id, const char *kind,
				     const char *payload, struct buf *result, char *err,
				     size_t errlen)
{
	struct buf st = BUF_INIT;
	int rc = recorded(ss, task_id, &st);
	if (rc < 0) {
		snprintf(err, errlen, "task '%s': store failure", task_id);
		buf_release(&st);
		return SERVICES_ERROR;
	}
	if (rc == 1) {
		int running = st.len && !strcmp(st.data, "running");
		buf_release(&st);
		int mine = 0;
		for (struct svc *v = ss->list; v; v = v->next)
			mine |= v->task && !strcmp(v->task, task_id);
		if (running && !mine) {
			/* recorded, but its pipeline died with an earlier agent */
			char e2[128];
			struct proto_json *doc =
			    proto_json_parse(payload, strlen(payload), e2, sizeof(e2));
			const char *dep =
			    doc ? proto_jv_get_str(proto_json_root(doc), "deployment_id") : NULL;
			finish(ss, task_id, dep ? dep : "", NULL, "error",
			       "the agent restarted during the deploy");
			proto_json_free(doc);
		}
		if (!running && result && strcmp(kind, "deploy") != 0)
			buf_puts(result, "{\"status\":0}");
		return SERVICES_DUPLICATE;
	}
	buf_release(&st);
	if (record(ss, task_id, "running", NULL, NULL, err, errlen) < 0)
		return SERVICES_ERROR;
	char why[256];
	struct proto_json *doc = proto_json_parse(payload, strlen(payload), why, sizeof(why));
	const struct proto_jv *o = doc ? proto_json_root(doc) : NULL;
	if (!strcmp(kind, "deploy")) {
		if (o)
			deploy(ss, task_id, o);
		else
			finish(ss, task_id, "", NULL, "error", "deploy task: payload is not JSON");
		proto_json_free(doc);
		return SERVICES_ACCEPTED;
	}
	if (!strcmp(kind, "service_logs")) {
		int64_t lines = 200;
		const char *name = o ? proto_jv_get_str(o, "service") : NULL;
		if (o)
			proto_jv_int(proto_jv_get(o, "lines"), &lines);
		if (lines < 1)
			lines = 1;
		int rc2 = service_logs(ss, task_id, svc_name_ok(name) ? name : NULL,
				       (long long)lines, err, errlen);
		proto_json_free(doc);
		return rc2 < 0 ? SERVICES_ERROR : SERVICES_ACCEPTED;
	}
	if (!strcmp(kind, "service_ctl")) {
		const char *name = o ? proto_jv_get_str(o, "service") : NULL;
		const char *action = o ? proto_jv_get_str(o, "action") : NULL;
		int status = service_ctl(ss, name, action ? action : "", why, sizeof(why)) < 0;
		proto_json_free(doc);
		if (record(ss, task_id, "done", NULL, NULL, err, errlen) < 0)
			return SERVICES_ERROR;
		if (result)
			buf_printf(result, "{\"status\":%d}", status);
		return SERVICES_DONE;
	}
	/* deploy_cancel */
	const char *dep = o ? proto_jv_get_str(o, "deployment_id") : NULL;
	const char *name = o ? proto_jv_get_str(o, "service") : NULL;
	struct svc *v = name ? find_svc(ss, name) : NULL;
	int status = 1;
	if (v && v->dep && dep && !strcmp(v->dep, dep))
		status = pipeline_cancel(v->p) == 0 ? 0 : 1;
	proto_json_free(doc);
	if (record(ss, task_id, "done", NULL, NULL, err, errlen) < 0)
		return SERVICES_ERROR;
	if (result)
		buf_printf(result, "{\"status\":%d}", status);
	return SERVICES_DONE;
}
