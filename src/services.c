/* services: see services.h. */
#include "services.h"

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
#include "xalloc.h"

#define MOD	      "services"
#define LOG_FLUSH_MS  100
#define LOG_FLUSH_MAX 8192
#define TASK_PREFIX   "svctask/"

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
};

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
	return ss;
}

static void svc_free(struct svc *v)
{
	if (v->flush_timer)
		loop_timer_cancel(v->ss->loop, v->flush_timer);
	if (v->restart_timer)
		loop_timer_cancel(v->ss->loop, v->restart_timer);
	pipeline_free(v->p);
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
