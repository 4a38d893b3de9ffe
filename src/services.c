/* services: see services.h. */
#include "services.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bp.h"
#include "crypt.h"
#include "diag.h"
#include "log.h"
#include "pipeline.h"
#include "proto.h"
#include "supervise.h"
#include "svclog.h"
#include "svctail.h"
#include "xalloc.h"

#define MOD	      "services"
#define LOG_FLUSH_MS  100
#define LOG_FLUSH_MAX 8192
#define TASK_PREFIX   "svctask/"
#define LOGF_PREFIX   "svclogf/"

struct svc {
	struct services *ss;
	char *name;
	struct pipeline *p;
	char *task;   /* the deploy task in progress, or NULL */
	char *dep;    /* its deployment id */
	char *upload; /* its archive (source: upload), removed at the end */
	struct buf log;
	long long flush_timer;
	long long restart_timer;  /* restart: waiting for the stop to end */
	struct svclog *slog;	  /* logs/service.log, the service's output */
	struct svctail *tail;	  /* following the serving release's raw file */
	char *tail_rel;		  /* that release */
	struct svctail *old_tail; /* the release before, while it stops */
	long long old_timer;
	struct svc *next;
};

/* A service_logs task with follow: streaming until cancelled. */
struct logf {
	struct services *ss;
	struct svc *v;
	char *task;
	long long fid; /* svclog follower */
	int raw;
	/* The newest record sent (in out or spooled): its time, and how many
	 * records with that time were sent; saved with every batch as
	 * LOGF_PREFIX TASK, so a follow resumed after an agent restart goes
	 * on right after it. */
	long long last_ts, last_n;
	struct buf out, err; /* formatted, not yet spooled */
	long long timer;
	struct logf *next;
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
	struct logf *follows;
};

static void logs_start_all(struct services *ss);
static void logs_release(struct svc *v);
static void logs_end_follows(struct services *ss, int stopping);

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
	logs_start_all(ss);
	return ss;
}

static void svc_free(struct svc *v)
{
	if (v->flush_timer)
		loop_timer_cancel(v->ss->loop, v->flush_timer);
	if (v->restart_timer)
		loop_timer_cancel(v->ss->loop, v->restart_timer);
	pipeline_free(v->p);
	logs_release(v);
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
	logs_end_follows(ss, -1);
	while (ss->list) {
		struct svc *v = ss->list;
		ss->list = v->next;
		svc_free(v);
	}
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

static void logs_on_service(struct svc *v);

static void on_service(struct pipeline *p, void *arg)
{
	struct svc *v = arg;
	(void)p;
	logs_on_service(v); /* H2 */
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

/* --- logs (H2) --------------------------------------------------------------
 *
 * Each service has an svclog (logs/service.log, rotated LOGS_FILE_MAX x
 * LOGS_KEEP) fed by an svctail following the serving release's raw file
 * (logs/RELEASE.log). service_logs tasks read it back (svclog_tail,
 * svclog_since) and, with follow, stream new records until cancelled. */

#define LOGS_MAX	  ((size_t)4 << 20) /* output of one answer (base keeps 4 MiB) */
#define LOGS_FILE_MAX	  ((size_t)10 << 20)
#define LOGS_KEEP	  5
#define LOGS_FOLLOW_QUEUE ((size_t)256 << 10) /* a follower's svclog queue */
#define LOGS_SPOOL_MAX	  256		      /* unacked events above which followers wait */
#define LOGS_CHUNK	  12288		      /* output bytes per exec_output event */
/* How long the release switched away from is still followed: what it
 * prints while it stops (STOP_OLD: TERM, KILL after 10 s) is kept too. */
#define LOGS_OLD_MS 15000

/* The serving release of v: the pipeline's, else the one `current` names
 * (after an agent restart, before or without an adopt). NULL if none; the
 * string is owned by the pipeline or lives in buf. */
static const char *logs_serving(struct svc *v, char *buf, size_t cap)
{
	const char *rel = pipeline_current(v->p, NULL, NULL);
	if (rel)
		return rel;
	char *cur = xasprintf("%s/%s/current", v->ss->dir, v->name);
	ssize_t n = readlink(cur, buf, cap - 1);
	free(cur);
	if (n <= 0)
		return NULL;
	buf[n] = 0;
	const char *slash = strrchr(buf, '/');
	return slash ? slash + 1 : buf;
}

/* Offset files whose raw file is gone (the release was pruned). */
static void logs_prune_offsets(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (n < 9 || strcmp(e->d_name + n - 8, ".log.off") != 0)
			continue;
		char *off = xasprintf("%s/%s", dir, e->d_name);
		char *raw = xasprintf("%.*s", (int)strlen(off) - 4, off);
		if (access(raw, F_OK) < 0)
			unlink(off);
		free(raw);
		free(off);
	}
	closedir(d);
}

/* The release switched away from is done: read to its end. */
static void logs_old_done(struct svc *v)
{
	if (v->old_timer)
		loop_timer_cancel(v->ss->loop, v->old_timer);
	v->old_timer = 0;
	if (v->old_tail)
		svctail_finish(v->old_tail);
	svctail_free(v->old_tail);
	v->old_tail = NULL;
}

static void logs_old_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct svc *v = arg;
	(void)loop;
	(void)id;
	(void)mask;
	v->old_timer = 0;
	logs_old_done(v);
}

/* Follow the serving release's raw file. The previous one is read to its
 * end and still followed for LOGS_OLD_MS (its last words as it stops). */
static void logs_on_service(struct svc *v)
{
	char target[4096], err[512];
	const char *rel = logs_serving(v, target, sizeof(target));
	if (!rel || !*rel || !strcmp(rel, ".") || !strcmp(rel, ".."))
		return;
	if (v->tail_rel && !strcmp(v->tail_rel, rel))
		return;
	char *dir = xasprintf("%s/%s/logs", v->ss->dir, v->name);
	mkdir(dir, 0750);
	if (!v->slog) {
		char *path = xasprintf("%s/service.log", dir);
		struct svclog_opts o = {.path = path, .max_file = LOGS_FILE_MAX, .keep = LOGS_KEEP};
		v->slog = svclog_new(v->ss->loop, &o, err, sizeof(err));
		free(path);
		if (!v->slog) {
			log_error(MOD, "service log not opened", "service", v->name, "error", err,
				  NULL);
			free(dir);
			return;
		}
	}
	char *relcopy = xstrdup(rel); /* rel may live in the pipeline */
	char *raw = xasprintf("%s/%s.log", dir, relcopy);
	/* never two tailers on one file (a rollback to it within LOGS_OLD_MS) */
	if (v->old_tail && !strcmp(svctail_path(v->old_tail), raw))
		logs_old_done(v);
	if (v->tail) {
		logs_old_done(v);
		svctail_poll(v->tail, 0);
		v->old_tail = v->tail;
		v->old_timer = loop_timer_add(v->ss->loop, LOGS_OLD_MS, logs_old_cb, v);
		v->tail = NULL;
	}
	free(v->tail_rel);
	v->tail_rel = relcopy;
	struct svctail_opts to = {.path = raw, .log = v->slog};
	v->tail = svctail_new(v->ss->loop, &to, err, sizeof(err));
	if (!v->tail)
		log_error(MOD, "release output not followed", "service", v->name, "error", err,
			  NULL);
	else
		log_info(MOD, "following the release's output", "service", v->name, "release",
			 relcopy, NULL);
	free(raw);
	logs_prune_offsets(dir);
	free(dir);
}

/* At start: every service with a `current` release is followed again (the
 * release kept running while the agent was away). */
static void logs_start_all(struct services *ss)
{
	DIR *d = opendir(ss->dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!svc_name_ok(e->d_name))
			continue;
		char *cur = xasprintf("%s/%s/current", ss->dir, e->d_name);
		struct stat st;
		int has = lstat(cur, &st) == 0;
		free(cur);
		if (!has)
			continue;
		char err[512];
		struct svc *v = get_svc(ss, e->d_name, err, sizeof(err));
		if (v)
			logs_on_service(v);
		else
			log_warn(MOD, "service not followed", "service", e->d_name, "error", err,
				 NULL);
	}
	closedir(d);
}

static void logs_release(struct svc *v)
{
	if (v->old_timer)
		loop_timer_cancel(v->ss->loop, v->old_timer);
	svctail_free(v->old_tail);
	v->old_tail = NULL;
	svctail_free(v->tail);
	svclog_free(v->slog);
	free(v->tail_rel);
	v->tail = NULL;
	v->slog = NULL;
	v->tail_rel = NULL;
}

/* A record as the CLI shows it: "2026-11-22T01:25:00.123Z out text\n"
 * (out+ for a continued record), or with raw the text alone. */
static void logs_fmt(struct buf *b, const struct svclog_rec *r, int raw)
{
	char ts[25];
	svclog_fmt_ts(r->ts_ms, ts);
	if (r->stream == SVCLOG_MARK) {
		buf_printf(b, "%s --- %.*s\n", ts, (int)r->len, r->line);
		return;
	}
	if (!raw) {
		buf_add(b, ts, 24);
		buf_puts(b, r->stream == SVCLOG_STDERR ? " err" : " out");
		buf_puts(b, r->cont ? "+ " : " ");
	}
	buf_add(b, r->line, r->len);
	if (!raw || !r->cont)
		buf_putc(b, '\n');
}

/* data as exec_output events of task in t. */
static void logs_output_txn(struct services *ss, struct store_txn *t, const char *task,
			    const char *stream, const char *data, size_t len)
{
	struct buf ev = BUF_INIT;
	for (size_t off = 0; off < len; off += LOGS_CHUNK) {
		size_t k = len - off < LOGS_CHUNK ? len - off : LOGS_CHUNK;
		buf_reset(&ev);
		buf_puts(&ev, "{\"task_id\":");
		buf_json_cstr(&ev, task);
		buf_printf(&ev, ",\"stream\":\"%s\",\"data\":\"", stream);
		crypt_b64_encode(&ev, data + off, k, CRYPT_B64_STD);
		buf_puts(&ev, "\"}");
		spool_add_txn(ss->spool, t, "exec_output", ev.data);
	}
	buf_release(&ev);
}

/* The task's exit (extra: ",\"status\":0...") and its record, in t. */
static void logs_exit_txn(struct services *ss, struct store_txn *t, const char *task,
			  const char *extra)
{
	struct buf ev = BUF_INIT, key = BUF_INIT;
	buf_puts(&ev, "{\"task_id\":");
	buf_json_cstr(&ev, task);
	buf_puts(&ev, extra);
	buf_putc(&ev, '}');
	spool_add_txn(ss->spool, t, "exec_exit", ev.data);
	buf_printf(&key, TASK_PREFIX "%s", task);
	store_put(t, ss->meta, key.data, key.len, "done", 4);
	buf_release(&ev);
	buf_release(&key);
}

/* Count r as sent (see struct logf). */
static void logs_sent(long long *last_ts, long long *last_n, const struct svclog_rec *r)
{
	if (r->stream == SVCLOG_MARK)
		return;
	if (r->ts_ms == *last_ts) {
		(*last_n)++;
	} else {
		*last_ts = r->ts_ms;
		*last_n = 1;
	}
}

/* The records asked for (since >= 0: since then, but for the first `skip`
 * of time `since`, the last `lines` of them if lines > 0; else the last
 * `lines`) formatted into out, the newest LOGS_MAX bytes at most; the
 * newest is counted in *last_ts, *last_n. -1 with why. */
static int logs_collect(struct svc *v, long long lines, long long since, long long skip, int raw,
			struct buf *out, long long *last_ts, long long *last_n, char *why,
			size_t whylen)
{
	struct svclog_list l = SVCLOG_LIST_INIT;
	char err[512];
	int rc = since >= 0 ? svclog_since(v->slog, since, 0, &l, err, sizeof(err))
			    : svclog_tail(v->slog, (size_t)lines, &l, err, sizeof(err));
	if (rc < 0) {
		snprintf(why, whylen, "service '%s': %.400s", v->name, err);
		svclog_list_release(&l);
		return -1;
	}
	size_t first = 0;
	while (first < l.n && skip > 0 && l.recs[first].ts_ms == since) {
		first++;
		skip--;
	}
	size_t from =
	    since >= 0 && lines > 0 && l.n - first > (size_t)lines ? l.n - (size_t)lines : first;
	size_t i = l.n, bytes = 0;
	while (i > from && bytes + l.recs[i - 1].len + 32 <= LOGS_MAX)
		bytes += l.recs[--i].len + 32;
	for (; i < l.n; i++) {
		logs_fmt(out, &l.recs[i], raw);
		logs_sent(last_ts, last_n, &l.recs[i]);
	}
	svclog_list_release(&l);
	return 0;
}

static struct logf *logs_find(struct services *ss, const char *task)
{
	for (struct logf *lf = ss->follows; lf; lf = lf->next)
		if (!strcmp(lf->task, task))
			return lf;
	return NULL;
}

/* Where a follow is (struct logf), in t; -1 deletes it. */
static void logs_mark_txn(struct services *ss, struct store_txn *t, const char *task,
			  long long last_ts, long long last_n)
{
	struct buf key = BUF_INIT, val = BUF_INIT;
	buf_printf(&key, LOGF_PREFIX "%s", task);
	if (last_n < 0) {
		store_del(t, ss->meta, key.data, key.len);
	} else {
		buf_printf(&val, "%lld %lld", last_ts, last_n);
		store_put(t, ss->meta, key.data, key.len, val.data, val.len);
	}
	buf_release(&key);
	buf_release(&val);
}

/* Spool what lf has formatted. */
static void logs_flush(struct logf *lf)
{
	if (!lf->out.len && !lf->err.len)
		return;
	char err[256];
	struct store_txn *t = store_txn_begin(lf->ss->store, 0);
	logs_output_txn(lf->ss, t, lf->task, "stdout", lf->out.data, lf->out.len);
	logs_output_txn(lf->ss, t, lf->task, "stderr", lf->err.data, lf->err.len);
	if (lf->last_n > 0)
		logs_mark_txn(lf->ss, t, lf->task, lf->last_ts, lf->last_n);
	if (store_txn_commit(t, err, sizeof(err)) < 0)
		log_error(MOD, "log output not spooled", "task", lf->task, "error", err, NULL);
	buf_reset(&lf->out);
	buf_reset(&lf->err);
	notify(lf->ss);
}

static void logs_drain(struct logf *lf);

static void logs_follow_timer(struct loop *loop, long long id, void *arg, int mask)
{
	struct logf *lf = arg;
	(void)id;
	(void)mask;
	lf->timer = 0;
	/* Base is not taking events (offline, slow): wait, and let the svclog
	 * queue drop its oldest records meanwhile; never grow without bound. */
	if (spool_last_seq(lf->ss->spool) - spool_acked(lf->ss->spool) > LOGS_SPOOL_MAX) {
		lf->timer = loop_timer_add(loop, LOG_FLUSH_MS, logs_follow_timer, lf);
		return;
	}
	logs_flush(lf);
	logs_drain(lf);
}

/* Take records from the follower queue into lf's batch (at most
 * LOG_FLUSH_MAX bytes); the timer spools the batch within LOG_FLUSH_MS,
 * at once when full. Never spools here: this runs inside svclog_feed. */
static void logs_drain(struct logf *lf)
{
	struct svclog_rec r;
	int full = 0;
	for (;;) {
		if (lf->out.len + lf->err.len >= LOG_FLUSH_MAX) {
			full = 1;
			break;
		}
		if (svclog_follow_next(lf->v->slog, lf->fid, &r) <= 0)
			break;
		logs_fmt(r.stream == SVCLOG_MARK ? &lf->err : &lf->out, &r, lf->raw);
		logs_sent(&lf->last_ts, &lf->last_n, &r);
	}
	if (full && lf->timer) {
		loop_timer_cancel(lf->ss->loop, lf->timer);
		lf->timer = 0;
	}
	if (!lf->timer && (full || lf->out.len || lf->err.len))
		lf->timer =
		    loop_timer_add(lf->ss->loop, full ? 0 : LOG_FLUSH_MS, logs_follow_timer, lf);
}

static void logs_follow_cb(struct loop *loop, long long id, void *arg, int mask)
{
	(void)loop;
	(void)id;
	(void)mask;
	logs_drain(arg);
}

/* End a follow: its batch, a last stderr message (may be NULL), its
 * exec_exit (extra) and its record, in one transaction; then free it. */
static void logs_end(struct logf *lf, const char *extra, const char *msg)
{
	struct services *ss = lf->ss;
	char err[256];
	/* what is still queued in the svclog goes with the follower */
	if (msg)
		buf_puts(&lf->err, msg);
	struct store_txn *t = store_txn_begin(ss->store, 0);
	logs_output_txn(ss, t, lf->task, "stdout", lf->out.data, lf->out.len);
	logs_output_txn(ss, t, lf->task, "stderr", lf->err.data, lf->err.len);
	logs_exit_txn(ss, t, lf->task, extra);
	logs_mark_txn(ss, t, lf->task, 0, -1);
	if (store_txn_commit(t, err, sizeof(err)) < 0)
		log_error(MOD, "log follow end not recorded", "task", lf->task, "error", err, NULL);
	svclog_unfollow(lf->v->slog, lf->fid);
	if (lf->timer)
		loop_timer_cancel(ss->loop, lf->timer);
	struct logf **pp = &ss->follows;
	while (*pp != lf)
		pp = &(*pp)->next;
	*pp = lf->next;
	log_info(MOD, "log follow ended", "task", lf->task, NULL);
	free(lf->task);
	buf_release(&lf->out);
	buf_release(&lf->err);
	free(lf);
	notify(ss);
}

/* stopping 1: end each follow with an exec_exit saying so; -1: free them
 * silently (their tasks stay recorded running: re-delivered after a
 * restart, they resume). */
static void logs_end_follows(struct services *ss, int stopping)
{
	while (ss->follows) {
		struct logf *lf = ss->follows;
		if (stopping > 0) {
			logs_end(lf, ",\"status\":1,\"error\":\"the agent stopped\"",
				 "dployr: the agent stopped; the follow ended\n");
			continue;
		}
		ss->follows = lf->next;
		svclog_unfollow(lf->v->slog, lf->fid);
		if (lf->timer)
			loop_timer_cancel(ss->loop, lf->timer);
		free(lf->task);
		buf_release(&lf->out);
		buf_release(&lf->err);
		free(lf);
	}
}

void services_stop_follows(struct services *ss)
{
	logs_end_follows(ss, 1);
}

int services_cancel(struct services *ss, const char *task_id)
{
	struct logf *lf = logs_find(ss, task_id);
	if (!lf)
		return -1;
	logs_flush(lf);
	logs_end(lf, ",\"status\":0,\"cancelled\":true", NULL);
	return 0;
}

/* service_logs {"service","lines"?,"since_ms"?,"follow"?,"raw"?}: the
 * records asked for as exec_output events, then with follow new records as
 * they come until cancelled, else the exec_exit (status 0, or 1 with
 * "error") at once. resume: the task was following when the agent died;
 * it goes on right after the last record it sent (LOGF_PREFIX TASK), or
 * from the start if it sent none. */
static int service_logs(struct services *ss, const char *task_id, const struct proto_jv *o,
			int resume, char *err, size_t errlen)
{
	const char *name = o ? proto_jv_get_str(o, "service") : NULL;
	int64_t lines = -1, since = -1;
	int follow = 0, raw = 0;
	if (o) {
		proto_jv_int(proto_jv_get(o, "lines"), &lines);
		proto_jv_int(proto_jv_get(o, "since_ms"), &since);
		proto_jv_bool(proto_jv_get(o, "follow"), &follow);
		proto_jv_bool(proto_jv_get(o, "raw"), &raw);
	}
	if (lines < 1)
		lines = since >= 0 ? 0 : follow ? 10 : 200;
	long long skip = 0, last_ts = 0, last_n = 0;
	if (follow && resume) {
		struct buf key = BUF_INIT, val = BUF_INIT;
		buf_printf(&key, LOGF_PREFIX "%s", task_id);
		struct store_txn *rt = store_txn_begin(ss->store, 1);
		long long ts, n;
		if (store_get_buf(rt, ss->meta, key.data, key.len, &val) == 0 &&
		    sscanf(val.data, "%lld %lld", &ts, &n) == 2 && ts >= 0 && n > 0) {
			since = ts;
			skip = n;
			lines = 0;
		}
		store_txn_abort(rt);
		buf_release(&key);
		buf_release(&val);
	}
	char why[512] = "";
	struct buf data = BUF_INIT;
	struct svc *v = svc_name_ok(name) ? find_svc(ss, name) : NULL;
	if (!v || !v->slog)
		snprintf(why, sizeof(why), "service '%.64s' has no output here", name ? name : "");
	else
		logs_collect(v, lines, since, skip, raw, &data, &last_ts, &last_n, why,
			     sizeof(why));
	struct store_txn *t = store_txn_begin(ss->store, 0);
	logs_output_txn(ss, t, task_id, "stdout", data.data, data.len);
	buf_release(&data);
	if (follow && !why[0]) {
		if (last_n > 0)
			logs_mark_txn(ss, t, task_id, last_ts, last_n);
		if (store_txn_commit(t, err, errlen) < 0)
			return -1;
		struct logf *lf = xcalloc(1, sizeof(*lf));
		lf->ss = ss;
		lf->v = v;
		lf->task = xstrdup(task_id);
		lf->raw = raw;
		lf->last_ts = last_ts;
		lf->last_n = last_n;
		buf_init(&lf->out);
		buf_init(&lf->err);
		lf->fid = svclog_follow(v->slog, 0, LOGS_FOLLOW_QUEUE, 0, logs_follow_cb, lf);
		lf->next = ss->follows;
		ss->follows = lf;
		log_info(MOD, "log follow started", "task", task_id, "service", v->name, NULL);
		notify(ss);
		return 0;
	}
	struct buf extra = BUF_INIT;
	if (why[0]) {
		buf_puts(&extra, ",\"status\":1,\"error\":");
		buf_json_cstr(&extra, why);
	} else {
		buf_puts(&extra, ",\"status\":0");
	}
	logs_exit_txn(ss, t, task_id, extra.data);
	logs_mark_txn(ss, t, task_id, 0, -1);
	buf_release(&extra);
	int rc = store_txn_commit(t, err, errlen);
	notify(ss);
	return rc;
}

/* A service_logs task delivered again. Following here: a duplicate.
 * Recorded running but not following: the agent restarted while it ran;
 * it goes on after the last record it sent. Done: a duplicate. */
static enum services_status logs_redelivered(struct services *ss, const char *task_id, int running,
					     const char *payload, struct buf *result, char *err,
					     size_t errlen)
{
	if (logs_find(ss, task_id) || !running) {
		if (!running && result)
			buf_puts(result, "{\"status\":0}");
		return SERVICES_DUPLICATE;
	}
	char why[256];
	struct proto_json *doc = proto_json_parse(payload, strlen(payload), why, sizeof(why));
	int rc = service_logs(ss, task_id, doc ? proto_json_root(doc) : NULL, 1, err, errlen);
	proto_json_free(doc);
	return rc < 0 ? SERVICES_ERROR : SERVICES_ACCEPTED;
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
		if (!strcmp(kind, "service_logs"))
			return logs_redelivered(ss, task_id, running, payload, result, err, errlen);
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
		int rc2 = service_logs(ss, task_id, o, 0, err, errlen);
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
