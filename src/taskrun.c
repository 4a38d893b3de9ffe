/* taskrun: see taskrun.h. */
#include "taskrun.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crypt.h"
#include "log.h"
#include "proto.h"
#include "spawn.h"
#include "xalloc.h"

#define DEFAULT_PATH  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define FLUSH_MS      100
#define MAX_TIMEOUT_S 86400

struct task;

struct stream {
	struct task *task;
	const char *name; /* "stdout" / "stderr" */
	int fd;		  /* -1 once at end of file */
	struct buf pending;
};

struct task {
	struct taskrun *tr;
	struct task *next;
	char *id;
	pid_t pid;
	struct stream out, err;
	long long timeout_timer, kill_timer, flush_timer;
	size_t spooled; /* output bytes spooled so far */
	int truncated, timed_out, cancelled, killing;
};

struct taskrun {
	struct loop *loop;
	struct store *s;
	struct spool *sp;
	int db_tasks;
	long long grace_ms;
	size_t max_output;
	int default_timeout_s;
	loop_fn notify;
	void *arg;
	struct task *tasks;
	size_t running, recovered;
};

static void notify(struct taskrun *tr)
{
	if (tr->notify)
		tr->notify(tr->loop, 0, tr->arg, 0);
}

/* --- records ---------------------------------------------------------------- */

/* Field 22 of /proc/PID/stat (start time in clock ticks since boot), 0 if
 * the process does not exist: with the pid it names one process for good. */
static unsigned long long proc_start_time(pid_t pid)
{
	char path[64], data[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	size_t n = fread(data, 1, sizeof(data) - 1, f);
	fclose(f);
	data[n] = 0;
	char *p = strrchr(data, ')');
	if (!p)
		return 0;
	p++;
	/* After ')': field 3 (state) is first; start time is field 22. */
	for (int field = 3; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return 0;
	}
	return strtoull(p + 1, NULL, 10);
}

struct put_arg {
	struct taskrun *tr;
	const char *id;
	const char *record; /* JSON */
	const char *event;  /* exec_exit body JSON, or NULL */
	int noover;
	int exists;
};

/* In t: spool the exec_exit event and store the final record (a JSON
 * object) with the event's seq added as "exit_seq", which tells
 * taskrun_prune when base has the result. */
static void finish_txn(struct taskrun *tr, struct store_txn *t, const char *id, const char *record,
		       const char *event)
{
	uint64_t seq = spool_add_txn(tr->sp, t, "exec_exit", event);
	struct buf rec = BUF_INIT;
	size_t n = strlen(record);
	buf_add(&rec, record, n ? n - 1 : 0);
	buf_printf(&rec, ",\"exit_seq\":%llu}", (unsigned long long)seq);
	store_put(t, tr->db_tasks, id, strlen(id), rec.data, rec.len);
	buf_release(&rec);
}

static int put_fn(struct store_txn *t, void *arg)
{
	struct put_arg *a = arg;
	size_t klen = strlen(a->id);
	a->exists = 0;
	if (a->event) {
		finish_txn(a->tr, t, a->id, a->record, a->event);
	} else if (a->noover) {
		int rc =
		    store_put_noover(t, a->tr->db_tasks, a->id, klen, a->record, strlen(a->record));
		if (rc == STORE_EXISTS) {
			a->exists = 1;
			return 0;
		}
	} else {
		store_put(t, a->tr->db_tasks, a->id, klen, a->record, strlen(a->record));
	}
	return store_txn_failed(t) ? -1 : 0;
}

static int put_record(struct taskrun *tr, const char *id, const char *record, const char *event,
		      int noover, int *exists, char *err, size_t errlen)
{
	struct put_arg a = {tr, id, record, event, noover, 0};
	int rc = store_update(tr->s, put_fn, &a, err, errlen);
	if (exists)
		*exists = a.exists;
	return rc;
}

int taskrun_record(struct taskrun *tr, const char *task_id, struct buf *out)
{
	struct store_txn *t = store_txn_begin(tr->s, 1);
	int rc = store_get_buf(t, tr->db_tasks, task_id, strlen(task_id), out);
	store_txn_abort(t);
	return rc == 0 ? 1 : rc == STORE_NOTFOUND ? 0 : -1;
}

/* The exec_exit body and the final record of a task that could not run. */
static void failure_json(struct buf *event, struct buf *record, const char *id, const char *why,
			 int lost)
{
	buf_puts(event, "{\"task_id\":");
	buf_json_cstr(event, id);
	buf_puts(event, ",\"status\":-1,\"error\":");
	buf_json_cstr(event, why);
	if (lost)
		buf_puts(event, ",\"lost\":true");
	buf_putc(event, '}');
	buf_printf(record, "{\"state\":\"done\",\"ended\":%lld,\"status\":-1,\"error\":",
		   (long long)time(NULL));
	buf_json_cstr(record, why);
	if (lost)
		buf_puts(record, ",\"lost\":true");
	buf_putc(record, '}');
}

/* --- recovery ---------------------------------------------------------------- */

struct lost {
	char *id;
	pid_t pid;
	unsigned long long start;
};

static int recover_fn(struct store_txn *t, void *arg)
{
	struct taskrun *tr = arg;
	struct lost *lost = NULL;
	size_t n = 0;
	struct store_iter *it = store_iter_range(t, tr->db_tasks, NULL, 0, NULL, 0, 0);
	while (store_iter_next(it) == 1) {
		size_t klen, vlen;
		const char *k = store_iter_key(it, &klen);
		const char *v = store_iter_val(it, &vlen);
		struct proto_json *doc = proto_json_parse(v, vlen, NULL, 0);
		const char *state = doc ? proto_jv_get_str(proto_json_root(doc), "state") : NULL;
		if (state && strcmp(state, "done") != 0) {
			lost = xrealloc(lost, (n + 1) * sizeof(*lost));
			lost[n].id = xmalloc(klen + 1);
			memcpy(lost[n].id, k, klen);
			lost[n].id[klen] = 0;
			int64_t pid = 0, start = 0;
			const struct proto_jv *root = proto_json_root(doc);
			proto_jv_int(proto_jv_get(root, "pid"), &pid);
			proto_jv_int(proto_jv_get(root, "start"), &start);
			lost[n].pid = (pid_t)pid;
			lost[n].start = (unsigned long long)start;
			n++;
		}
		proto_json_free(doc);
	}
	store_iter_free(it);
	for (size_t i = 0; i < n; i++) {
		struct buf ev = BUF_INIT, rec = BUF_INIT;
		failure_json(&ev, &rec, lost[i].id,
			     "lost: the agent stopped while the task ran; it is not run again", 1);
		finish_txn(tr, t, lost[i].id, rec.data, ev.data);
		buf_release(&ev);
		buf_release(&rec);
	}
	int failed = store_txn_failed(t);
	/* Kill orphans only once: a retry of this function after a map-full
	 * finds them again, and killing twice is harmless. */
	for (size_t i = 0; i < n; i++) {
		if (!failed && lost[i].pid > 1 && lost[i].start &&
		    proc_start_time(lost[i].pid) == lost[i].start) {
			log_warn("taskrun", "killing the process group of a lost task", "task",
				 lost[i].id, NULL);
			spawn_kill_group(lost[i].pid, SIGKILL);
		}
		log_warn("taskrun", "task lost by an agent restart, reported failed", "task",
			 lost[i].id, NULL);
		free(lost[i].id);
	}
	free(lost);
	tr->recovered = n;
	return failed ? -1 : 0;
}

struct taskrun *taskrun_new(struct loop *loop, struct store *s, struct spool *sp,
			    const struct taskrun_opts *o, loop_fn notify_fn, void *arg, char *err,
			    size_t errlen)
{
	int db = store_db(s, "tasks");
	if (db < 0) {
		snprintf(err, errlen, "taskrun: store has no 'tasks' database");
		return NULL;
	}
	struct taskrun *tr = xcalloc(1, sizeof(*tr));
	tr->loop = loop;
	tr->s = s;
	tr->sp = sp;
	tr->db_tasks = db;
	tr->grace_ms = o && o->grace_ms > 0 ? o->grace_ms : 5000;
	tr->max_output = o && o->max_output ? o->max_output : (size_t)1 << 20;
	tr->default_timeout_s = o && o->default_timeout_s > 0 ? o->default_timeout_s : 600;
	tr->notify = notify_fn;
	tr->arg = arg;
	if (store_update(s, recover_fn, tr, err, errlen) < 0) {
		free(tr);
		return NULL;
	}
	return tr;
}

size_t taskrun_recovered(const struct taskrun *tr)
{
	return tr->recovered;
}

size_t taskrun_running(const struct taskrun *tr)
{
	return tr->running;
}

/* --- running ------------------------------------------------------------------ */

static void stream_close(struct taskrun *tr, struct stream *st)
{
	if (st->fd >= 0) {
		loop_del_fd(tr->loop, st->fd);
		close(st->fd);
		st->fd = -1;
	}
}

static void task_free(struct task *t)
{
	struct taskrun *tr = t->tr;
	stream_close(tr, &t->out);
	stream_close(tr, &t->err);
	buf_release(&t->out.pending);
	buf_release(&t->err.pending);
	loop_timer_cancel(tr->loop, t->timeout_timer);
	loop_timer_cancel(tr->loop, t->kill_timer);
	loop_timer_cancel(tr->loop, t->flush_timer);
	free(t->id);
	free(t);
}

static void unlink_task(struct task *t)
{
	struct task **pp = &t->tr->tasks;
	while (*pp != t)
		pp = &(*pp)->next;
	*pp = t->next;
	t->tr->running--;
}

/* Spool what a stream has buffered, in chunks. */
static void flush_stream(struct stream *st)
{
	struct task *t = st->task;
	struct taskrun *tr = t->tr;
	size_t off = 0;
	while (off < st->pending.len) {
		size_t n = st->pending.len - off;
		if (n > TASKRUN_CHUNK)
			n = TASKRUN_CHUNK;
		struct buf ev = BUF_INIT;
		buf_puts(&ev, "{\"task_id\":");
		buf_json_cstr(&ev, t->id);
		buf_printf(&ev, ",\"stream\":\"%s\",\"data\":\"", st->name);
		crypt_b64_encode(&ev, st->pending.data + off, n, CRYPT_B64_STD);
		buf_puts(&ev, "\"}");
		char err[256];
		if (spool_add(tr->sp, "exec_output", ev.data, err, sizeof(err)) == 0)
			log_error("taskrun", "output not spooled", "task", t->id, "error", err,
				  NULL);
		buf_release(&ev);
		off += n;
	}
	buf_reset(&st->pending);
}

static void flush_all(struct task *t)
{
	loop_timer_cancel(t->tr->loop, t->flush_timer);
	t->flush_timer = 0;
	int any = t->out.pending.len || t->err.pending.len;
	flush_stream(&t->out);
	flush_stream(&t->err);
	if (any)
		notify(t->tr);
}

static void flush_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct task *t = arg;
	t->flush_timer = 0;
	flush_all(t);
}

/* Read what is there (at most one chunk per call: the loop comes back while
 * more is ready, so one chatty task cannot starve the others). */
static void stream_read(struct stream *st)
{
	struct task *t = st->task;
	struct taskrun *tr = t->tr;
	char data[TASKRUN_CHUNK];
	ssize_t n = read(st->fd, data, sizeof(data));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		stream_close(tr, st);
		return;
	}
	size_t room = tr->max_output > t->spooled ? tr->max_output - t->spooled : 0;
	size_t keep = (size_t)n < room ? (size_t)n : room;
	if (keep < (size_t)n)
		t->truncated = 1;
	buf_add(&st->pending, data, keep);
	t->spooled += keep;
	if (st->pending.len >= TASKRUN_CHUNK)
		flush_all(t);
	else if (st->pending.len && !t->flush_timer)
		t->flush_timer = loop_timer_add(tr->loop, FLUSH_MS, flush_cb, t);
}

static void stream_cb(struct loop *loop, long long fd, void *arg, int mask)
{
	stream_read(arg);
}

static void kill_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct task *t = arg;
	t->kill_timer = 0;
	log_warn("taskrun", "task did not stop after SIGTERM, sending SIGKILL", "task", t->id,
		 NULL);
	spawn_kill_group(t->pid, SIGKILL);
}

static void stop_task(struct task *t)
{
	if (t->killing)
		return;
	t->killing = 1;
	spawn_kill_group(t->pid, SIGTERM);
	t->kill_timer = loop_timer_add(t->tr->loop, t->tr->grace_ms, kill_cb, t);
}

static void timeout_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct task *t = arg;
	t->timeout_timer = 0;
	t->timed_out = 1;
	log_warn("taskrun", "task timed out, stopping its process group", "task", t->id, NULL);
	stop_task(t);
}

static void exit_cb(struct loop *loop, long long pid, void *arg, int wstatus)
{
	struct task *t = arg;
	struct taskrun *tr = t->tr;
	/* What is left of the group goes too; its output is read first. */
	spawn_kill_group(t->pid, SIGKILL);
	for (int i = 0; i < 64 && t->out.fd >= 0; i++)
		stream_read(&t->out);
	for (int i = 0; i < 64 && t->err.fd >= 0; i++)
		stream_read(&t->err);
	flush_all(t);

	struct buf ev = BUF_INIT, rec = BUF_INIT;
	buf_puts(&ev, "{\"task_id\":");
	buf_json_cstr(&ev, t->id);
	char extra[160] = "";
	int status, sig = 0;
	if (wstatus == -1) {
		status = -1;
	} else if (WIFSIGNALED(wstatus)) {
		sig = WTERMSIG(wstatus);
		status = 128 + sig;
	} else {
		status = WEXITSTATUS(wstatus);
	}
	snprintf(extra, sizeof(extra), ",\"status\":%d%s%.0d%s%s%s%s", status,
		 sig ? ",\"signal\":" : "", sig, t->timed_out ? ",\"timed_out\":true" : "",
		 t->cancelled ? ",\"cancelled\":true" : "",
		 t->truncated ? ",\"truncated\":true" : "",
		 wstatus == -1 ? ",\"error\":\"the exit status was lost\"" : "");
	buf_puts(&ev, extra);
	buf_putc(&ev, '}');
	buf_printf(&rec, "{\"state\":\"done\",\"ended\":%lld%s}", (long long)time(NULL), extra);
	char err[256];
	if (put_record(tr, t->id, rec.data, ev.data, 0, NULL, err, sizeof(err)) < 0)
		log_error("taskrun", "task result not stored", "task", t->id, "error", err, NULL);
	char st[16], sg[16];
	snprintf(st, sizeof(st), "%d", status);
	snprintf(sg, sizeof(sg), "%d", sig);
	log_info("taskrun", "task ended", "task", t->id, "status", st, "signal", sg, NULL);
	buf_release(&ev);
	buf_release(&rec);
	unlink_task(t);
	task_free(t);
	notify(tr);
}

/* --- submit ------------------------------------------------------------------- */

static int env_name_ok(const char *s, size_t n)
{
	if (n == 0 || isdigit((unsigned char)s[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return 0;
	return 1;
}

struct exec_spec {
	char **argv;
	char **envp;
	size_t argc, envc;
	const char *cwd;
	int64_t timeout_s;
};

static void spec_release(struct exec_spec *x)
{
	for (size_t i = 0; i < x->argc; i++)
		free(x->argv[i]);
	for (size_t i = 0; i < x->envc; i++)
		free(x->envp[i]);
	free(x->argv);
	free(x->envp);
}

static void env_add(struct exec_spec *x, const char *name, size_t nlen, const char *value)
{
	/* A later value of the same name replaces an earlier one. */
	struct buf e = BUF_INIT;
	buf_add(&e, name, nlen);
	buf_putc(&e, '=');
	buf_puts(&e, value);
	for (size_t i = 0; i < x->envc; i++)
		if (strncmp(x->envp[i], e.data, nlen + 1) == 0) {
			free(x->envp[i]);
			x->envp[i] = buf_detach(&e, NULL);
			return;
		}
	x->envp[x->envc++] = buf_detach(&e, NULL);
	x->envp[x->envc] = NULL;
}

/* Parse an exec payload into x; -1 with every problem in err. */
static int parse_exec(struct taskrun *tr, const char *payload, struct exec_spec *x, char *cwd,
		      size_t cwdlen, char *err, size_t errlen)
{
	memset(x, 0, sizeof(*x));
	struct buf why = BUF_INIT;
	char perr[256];
	struct proto_json *doc = proto_json_parse(payload, strlen(payload), perr, sizeof(perr));
	if (!doc) {
		snprintf(err, errlen, "exec payload: %s", perr);
		return -1;
	}
	const struct proto_jv *root = proto_json_root(doc);
	const struct proto_jv *argv = proto_jv_get(root, "argv");
	const struct proto_jv *env = proto_jv_get(root, "env");
	const struct proto_jv *timeout = proto_jv_get(root, "timeout_s");
	const struct proto_jv *dir = proto_jv_get(root, "cwd");
	if (proto_jv_type(root) != PROTO_J_OBJ)
		buf_puts(&why, "; not an object");
	size_t n = argv ? proto_jv_len(argv) : 0;
	if (!argv || proto_jv_type(argv) != PROTO_J_ARR || n == 0 || n > TASKRUN_MAX_ARGS) {
		buf_printf(&why, "; 'argv' must be an array of 1 to %d strings", TASKRUN_MAX_ARGS);
	} else {
		x->argv = xcalloc(n + 1, sizeof(char *));
		for (const struct proto_jv *a = proto_jv_first(argv); a; a = proto_jv_next(a)) {
			const char *s = proto_jv_str(a);
			if (!s) {
				buf_puts(&why, "; 'argv' must hold strings only");
				break;
			}
			x->argv[x->argc++] = xstrdup(s);
		}
		if (x->argc && !x->argv[0][0])
			buf_puts(&why, "; 'argv[0]' is empty");
	}
	size_t en = env ? proto_jv_len(env) : 0;
	x->envp = xcalloc(en + 2, sizeof(char *));
	x->envp[x->envc++] = xstrdup(DEFAULT_PATH);
	if (env && proto_jv_type(env) == PROTO_J_OBJ) {
		for (const struct proto_jv *e = proto_jv_first(env); e; e = proto_jv_next(e)) {
			const char *k = proto_jv_key(e), *v = proto_jv_str(e);
			if (!v || !env_name_ok(k, strlen(k))) {
				buf_puts(
				    &why,
				    "; 'env' must map names ([A-Za-z_][A-Za-z0-9_]*) to strings");
				break;
			}
			env_add(x, k, strlen(k), v);
		}
	} else if (env && proto_jv_type(env) == PROTO_J_ARR) {
		for (const struct proto_jv *e = proto_jv_first(env); e; e = proto_jv_next(e)) {
			const char *s = proto_jv_str(e);
			const char *eq = s ? strchr(s, '=') : NULL;
			if (!eq || !env_name_ok(s, (size_t)(eq - s))) {
				buf_puts(&why, "; 'env' entries must be \"NAME=value\"");
				break;
			}
			env_add(x, s, (size_t)(eq - s), eq + 1);
		}
	} else if (env && proto_jv_type(env) != PROTO_J_NULL) {
		buf_puts(&why, "; 'env' must be an object or an array");
	}
	x->timeout_s = 0;
	if (timeout && proto_jv_type(timeout) != PROTO_J_NULL &&
	    (proto_jv_int(timeout, &x->timeout_s) < 0 || x->timeout_s < 0 ||
	     x->timeout_s > MAX_TIMEOUT_S))
		buf_printf(&why, "; 'timeout_s' must be an integer from 0 to %d", MAX_TIMEOUT_S);
	if (x->timeout_s == 0)
		x->timeout_s = tr->default_timeout_s;
	snprintf(cwd, cwdlen, "/");
	if (dir && proto_jv_type(dir) != PROTO_J_NULL) {
		const char *d = proto_jv_str(dir);
		if (!d || d[0] != '/' || strlen(d) >= cwdlen)
			buf_puts(&why, "; 'cwd' must be an absolute path");
		else
			snprintf(cwd, cwdlen, "%s", d);
	}
	x->cwd = cwd;
	proto_json_free(doc);
	if (why.len) {
		snprintf(err, errlen, "exec payload: %s", why.data + 2);
		buf_release(&why);
		spec_release(x);
		memset(x, 0, sizeof(*x));
		return -1;
	}
	buf_release(&why);
	return 0;
}

/* Finish a recorded task that cannot run: failed record and exec_exit. */
static enum taskrun_status fail_task(struct taskrun *tr, const char *id, const char *why,
				     struct buf *result, char *err, size_t errlen)
{
	struct buf ev = BUF_INIT, rec = BUF_INIT;
	failure_json(&ev, &rec, id, why, 0);
	int rc = put_record(tr, id, rec.data, ev.data, 0, NULL, err, errlen);
	if (rc == 0 && result)
		buf_add(result, rec.data, rec.len);
	buf_release(&ev);
	buf_release(&rec);
	log_warn("taskrun", "task failed", "task", id, "error", why, NULL);
	notify(tr);
	return rc == 0 ? TASKRUN_FAILED : TASKRUN_ERROR;
}

enum taskrun_status taskrun_submit(struct taskrun *tr, const char *task_id, const char *kind,
				   const char *payload, struct buf *result, char *err,
				   size_t errlen)
{
	size_t idlen = strlen(task_id);
	if (idlen == 0 || idlen > PROTO_ID_MAX) {
		snprintf(err, errlen, "task id must be 1 to %d characters", PROTO_ID_MAX);
		return TASKRUN_ERROR;
	}
	int exists = 0;
	if (put_record(tr, task_id, "{\"state\":\"started\"}", NULL, 1, &exists, err, errlen) < 0)
		return TASKRUN_ERROR;
	if (exists) {
		if (result && taskrun_record(tr, task_id, result) < 0) {
			snprintf(err, errlen, "task '%s': stored record unreadable", task_id);
			return TASKRUN_ERROR;
		}
		log_info("taskrun", "duplicate task not run again", "task", task_id, NULL);
		return TASKRUN_DUPLICATE;
	}
	char why[512];
	if (strcmp(kind, "exec") != 0) {
		snprintf(why, sizeof(why), "unknown task kind '%.64s'", kind);
		return fail_task(tr, task_id, why, result, err, errlen);
	}
	struct exec_spec x;
	char cwd[4096];
	if (parse_exec(tr, payload, &x, cwd, sizeof(cwd), why, sizeof(why)) < 0)
		return fail_task(tr, task_id, why, result, err, errlen);

	struct spawn_opts o = {
	    .argv = (const char *const *)x.argv,
	    .envp = (const char *const *)x.envp,
	    .cwd = x.cwd,
	    .pgroup = SPAWN_PGROUP,
	    .in = SPAWN_NULL,
	    .out = SPAWN_PIPE,
	    .err = SPAWN_PIPE,
	};
	struct spawn_proc p;
	int rc = spawn_start(&o, &p, why, sizeof(why));
	int64_t timeout_s = x.timeout_s;
	spec_release(&x);
	if (rc < 0)
		return fail_task(tr, task_id, why, result, err, errlen);

	struct task *t = xcalloc(1, sizeof(*t));
	t->tr = tr;
	t->id = xstrdup(task_id);
	t->pid = p.pid;
	t->out = (struct stream){t, "stdout", p.out_fd, BUF_INIT};
	t->err = (struct stream){t, "stderr", p.err_fd, BUF_INIT};
	t->next = tr->tasks;
	tr->tasks = t;
	tr->running++;
	loop_add_fd(tr->loop, p.out_fd, LOOP_READ, stream_cb, &t->out);
	loop_add_fd(tr->loop, p.err_fd, LOOP_READ, stream_cb, &t->err);
	loop_child_add(tr->loop, p.pid, exit_cb, t);
	t->timeout_timer = loop_timer_add(tr->loop, timeout_s * 1000, timeout_cb, t);

	/* The pid and start time let a restarted agent kill this group if the
	 * agent dies first. Not fatal: the task is recorded as started anyway. */
	char rec[128];
	snprintf(rec, sizeof(rec), "{\"state\":\"running\",\"pid\":%d,\"start\":%llu}", (int)p.pid,
		 proc_start_time(p.pid));
	char perr[256];
	if (put_record(tr, task_id, rec, NULL, 0, NULL, perr, sizeof(perr)) < 0)
		log_warn("taskrun", "task pid not recorded", "task", task_id, "error", perr, NULL);
	char pid[16];
	snprintf(pid, sizeof(pid), "%d", (int)p.pid);
	log_info("taskrun", "task started", "task", task_id, "pid", pid, NULL);
	return TASKRUN_ACCEPTED;
}

struct prune_arg {
	struct taskrun *tr;
	int64_t before, acked;
	long n;
};

static int prune_fn(struct store_txn *t, void *arg)
{
	struct prune_arg *a = arg;
	a->n = 0;
	struct store_iter *it = store_iter_range(t, a->tr->db_tasks, NULL, 0, NULL, 0, 0);
	while (store_iter_next(it) == 1) {
		size_t vlen;
		const char *v = store_iter_val(it, &vlen);
		struct proto_json *doc = proto_json_parse(v, vlen, NULL, 0);
		const struct proto_jv *r = doc ? proto_json_root(doc) : NULL;
		const char *state = r ? proto_jv_get_str(r, "state") : NULL;
		int64_t ended, seq;
		if (state && strcmp(state, "done") == 0 &&
		    proto_jv_int(proto_jv_get(r, "ended"), &ended) == 0 && ended < a->before &&
		    proto_jv_int(proto_jv_get(r, "exit_seq"), &seq) == 0 && seq > 0 &&
		    seq <= a->acked) {
			if (store_iter_del(it) == 0)
				a->n++;
		}
		proto_json_free(doc);
	}
	store_iter_free(it);
	return store_txn_failed(t) ? -1 : 0;
}

long taskrun_prune(struct taskrun *tr, long long max_age_s, char *err, size_t errlen)
{
	struct prune_arg a = {tr, (int64_t)time(NULL) - max_age_s, (int64_t)spool_acked(tr->sp), 0};
	if (store_update(tr->s, prune_fn, &a, err, errlen) < 0)
		return -1;
	return a.n;
}

static struct task *find(struct taskrun *tr, const char *id)
{
	for (struct task *t = tr->tasks; t; t = t->next)
		if (strcmp(t->id, id) == 0)
			return t;
	return NULL;
}

int taskrun_cancel(struct taskrun *tr, const char *task_id)
{
	struct task *t = find(tr, task_id);
	if (!t)
		return -1;
	t->cancelled = 1;
	log_info("taskrun", "cancelling task", "task", task_id, NULL);
	stop_task(t);
	return 0;
}

void taskrun_cancel_all(struct taskrun *tr)
{
	for (struct task *t = tr->tasks; t; t = t->next) {
		t->cancelled = 1;
		stop_task(t);
	}
}

void taskrun_free(struct taskrun *tr)
{
	if (!tr)
		return;
	while (tr->tasks) {
		struct task *t = tr->tasks;
		tr->tasks = t->next;
		spawn_kill_group(t->pid, SIGKILL);
		loop_child_del(tr->loop, t->pid);
		waitpid(t->pid, NULL, 0);
		task_free(t);
	}
	free(tr);
}
