#include "taskrun.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypt.h"
#include "harness.h"
#include "loop.h"
#include "proto.h"
#include "spawn.h"
#include "spool.h"
#include "store.h"

static const char *const dbs[] = {"tasks", "spool", "meta", NULL};

struct env {
	struct loop *loop;
	struct store *s;
	struct spool *sp;
	struct taskrun *tr;
	int notified;
};

static void notify_cb(struct loop *loop, long long id, void *arg, int mask)
{
	((struct env *)arg)->notified++;
}

static void env_open(struct env *e, const struct taskrun_opts *o)
{
	char err[256];
	memset(e, 0, sizeof(*e));
	e->loop = loop_new(0, err, sizeof(err));
	if (!e->loop)
		harness_fail(__FILE__, __LINE__, "loop_new: %s", err);
	e->s = store_open("store", dbs, 0, 0, err, sizeof(err));
	if (!e->s)
		harness_fail(__FILE__, __LINE__, "store_open: %s", err);
	e->sp = spool_new(e->s, err, sizeof(err));
	e->tr = taskrun_new(e->loop, e->s, e->sp, o, notify_cb, e, err, sizeof(err));
	if (!e->tr)
		harness_fail(__FILE__, __LINE__, "taskrun_new: %s", err);
}

static void env_close(struct env *e)
{
	taskrun_free(e->tr);
	spool_free(e->sp);
	store_close(e->s);
	loop_free(e->loop);
}

/* Run the loop until no task runs (bounded, so a hang fails the test). */
static void run_all(struct env *e)
{
	for (int i = 0; i < 3000 && taskrun_running(e->tr); i++)
		loop_run_once(e->loop, 10);
	if (taskrun_running(e->tr))
		harness_fail(__FILE__, __LINE__, "tasks still running");
}

/* Everything spooled for task: decoded stdout, stderr, and the exec_exit
 * bodies (one per line). */
struct seen {
	struct buf out, err, exits;
	int nexit;
};

static void collect(struct env *e, const char *task, struct seen *sn)
{
	char err[256];
	memset(sn, 0, sizeof(*sn));
	buf_init(&sn->out);
	buf_init(&sn->err);
	buf_init(&sn->exits);
	uint64_t after = 0, seq;
	struct buf kind = BUF_INIT, body = BUF_INIT;
	while (spool_next(e->sp, after, &seq, &kind, &body, err, sizeof(err)) == 1) {
		CHECK(seq > after);
		after = seq;
		struct proto_json *doc = proto_json_parse(body.data, body.len, err, sizeof(err));
		CHECK(doc);
		const struct proto_jv *r = proto_json_root(doc);
		if (strcmp(proto_jv_get_str(r, "task_id"), task) == 0) {
			if (strcmp(kind.data, "exec_output") == 0) {
				/* No output may follow the exit. */
				CHECK_INT(sn->nexit, 0);
				const char *d = proto_jv_get_str(r, "data");
				const char *st = proto_jv_get_str(r, "stream");
				CHECK(strlen(d) <= (TASKRUN_CHUNK + 2) / 3 * 4);
				struct buf *to = strcmp(st, "stdout") == 0 ? &sn->out : &sn->err;
				CHECK_INT(crypt_b64_decode(to, d, strlen(d), CRYPT_B64_STD), 0);
			} else {
				CHECK_STR(kind.data, "exec_exit");
				buf_add(&sn->exits, body.data, body.len);
				buf_putc(&sn->exits, '\n');
				sn->nexit++;
			}
		}
		proto_json_free(doc);
		buf_reset(&kind);
		buf_reset(&body);
	}
	buf_release(&kind);
	buf_release(&body);
}

static void seen_release(struct seen *sn)
{
	buf_release(&sn->out);
	buf_release(&sn->err);
	buf_release(&sn->exits);
}

static enum taskrun_status submit(struct env *e, const char *id, const char *payload,
				  struct buf *res)
{
	char err[256];
	return taskrun_submit(e->tr, id, "exec", payload, res, err, sizeof(err));
}

TEST(taskrun_captures_output_and_exit_status)
{
	struct env e;
	env_open(&e, NULL);
	CHECK_INT(submit(&e, "t-1",
			 "{\"argv\":[\"/bin/sh\",\"-c\",\"echo out; echo err >&2; exit 3\"]}",
			 NULL),
		  TASKRUN_ACCEPTED);
	CHECK_INT(taskrun_running(e.tr), 1);
	run_all(&e);
	CHECK(e.notified > 0);
	struct seen sn;
	collect(&e, "t-1", &sn);
	CHECK_STR(sn.out.data, "out\n");
	CHECK_STR(sn.err.data, "err\n");
	CHECK_INT(sn.nexit, 1);
	CHECK_STR(sn.exits.data, "{\"task_id\":\"t-1\",\"status\":3}\n");
	struct buf rec = BUF_INIT;
	CHECK_INT(taskrun_record(e.tr, "t-1", &rec), 1);
	CHECK(strstr(rec.data, "\"state\":\"done\"") && strstr(rec.data, "\"status\":3"));
	buf_release(&rec);
	seen_release(&sn);
	env_close(&e);
}

TEST(taskrun_reports_the_killing_signal)
{
	struct env e;
	env_open(&e, NULL);
	CHECK_INT(submit(&e, "t-sig", "{\"argv\":[\"/bin/sh\",\"-c\",\"kill -KILL $$\"]}", NULL),
		  TASKRUN_ACCEPTED);
	run_all(&e);
	struct seen sn;
	collect(&e, "t-sig", &sn);
	CHECK_STR(sn.exits.data, "{\"task_id\":\"t-sig\",\"status\":137,\"signal\":9}\n");
	seen_release(&sn);
	env_close(&e);
}

/* Alive and not a zombie. */
static int alive(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static pid_t read_pid(const char *path)
{
	FILE *f = fopen(path, "r");
	int pid = 0;
	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return pid;
}

TEST(taskrun_timeout_kills_the_group_with_grandchildren)
{
	struct env e;
	env_open(&e, NULL);
	char payload[512];
	snprintf(payload, sizeof(payload),
		 "{\"argv\":[\"/bin/sh\",\"-c\",\"sleep 100 & echo $! >%s/gc.pid; wait\"],"
		 "\"timeout_s\":1}",
		 harness_tmpdir);
	CHECK_INT(submit(&e, "t-to", payload, NULL), TASKRUN_ACCEPTED);
	run_all(&e);
	pid_t gc = read_pid("gc.pid");
	CHECK(gc > 1);
	for (int i = 0; i < 200 && alive(gc); i++)
		usleep(10000);
	CHECK(!alive(gc));
	struct seen sn;
	collect(&e, "t-to", &sn);
	CHECK_STR(sn.exits.data,
		  "{\"task_id\":\"t-to\",\"status\":143,\"signal\":15,\"timed_out\":true}\n");
	seen_release(&sn);
	env_close(&e);
}

TEST(taskrun_sigkill_follows_an_ignored_sigterm)
{
	struct taskrun_opts o = {.grace_ms = 200};
	struct env e;
	env_open(&e, &o);
	CHECK_INT(
	    submit(&e, "t-ign",
		   "{\"argv\":[\"/bin/sh\",\"-c\",\"trap '' TERM; sleep 100\"],\"timeout_s\":1}",
		   NULL),
	    TASKRUN_ACCEPTED);
	run_all(&e);
	struct seen sn;
	collect(&e, "t-ign", &sn);
	CHECK_STR(sn.exits.data,
		  "{\"task_id\":\"t-ign\",\"status\":137,\"signal\":9,\"timed_out\":true}\n");
	seen_release(&sn);
	env_close(&e);
}

TEST(taskrun_cancel_stops_a_running_task)
{
	struct env e;
	env_open(&e, NULL);
	CHECK_INT(taskrun_cancel(e.tr, "nope"), -1);
	CHECK_INT(submit(&e, "t-c", "{\"argv\":[\"sleep\",\"100\"]}", NULL), TASKRUN_ACCEPTED);
	loop_run_once(e.loop, 0);
	CHECK_INT(taskrun_cancel(e.tr, "t-c"), 0);
	run_all(&e);
	CHECK_INT(taskrun_cancel(e.tr, "t-c"), -1);
	struct seen sn;
	collect(&e, "t-c", &sn);
	CHECK_STR(sn.exits.data,
		  "{\"task_id\":\"t-c\",\"status\":143,\"signal\":15,\"cancelled\":true}\n");
	seen_release(&sn);
	env_close(&e);
}

TEST(taskrun_duplicate_is_not_run_again_after_reopen)
{
	struct env e;
	env_open(&e, NULL);
	char p[512];
	snprintf(p, sizeof(p), "{\"argv\":[\"/bin/sh\",\"-c\",\"echo run >>runs\"],\"cwd\":\"%s\"}",
		 harness_tmpdir);
	CHECK_INT(submit(&e, "t-d", p, NULL), TASKRUN_ACCEPTED);
	struct buf res = BUF_INIT;
	/* While it runs, and after it ended. */
	CHECK_INT(submit(&e, "t-d", p, &res), TASKRUN_DUPLICATE);
	run_all(&e);
	env_close(&e);

	env_open(&e, NULL);
	CHECK_INT(taskrun_recovered(e.tr), 0);
	buf_reset(&res);
	CHECK_INT(submit(&e, "t-d", p, &res), TASKRUN_DUPLICATE);
	CHECK(strstr(res.data, "\"state\":\"done\"") && strstr(res.data, "\"status\":0"));
	CHECK_INT(taskrun_running(e.tr), 0);
	run_all(&e);
	struct buf runs = BUF_INIT;
	char err[256];
	CHECK_INT(buf_read_file(&runs, "runs", 1000, err, sizeof(err)), 0);
	CHECK_STR(runs.data, "run\n");
	struct seen sn;
	collect(&e, "t-d", &sn);
	CHECK_INT(sn.nexit, 1);
	seen_release(&sn);
	buf_release(&runs);
	buf_release(&res);
	env_close(&e);
}

static unsigned long long start_time(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')') + 1;
	for (int i = 3; i < 22; i++)
		p = strchr(p + 1, ' ');
	return strtoull(p + 1, NULL, 10);
}

static void put_raw(struct store *s, const char *id, const char *rec)
{
	char err[256];
	struct store_txn *t = store_txn_begin(s, 0);
	store_put(t, store_db(s, "tasks"), id, strlen(id), rec, strlen(rec));
	CHECK_INT(store_txn_commit(t, err, sizeof(err)), 0);
}

TEST(taskrun_task_lost_in_a_crash_is_reported_not_rerun)
{
	char err[256];
	/* A store as a killed agent leaves it: one task recorded before it
	 * started, one running whose orphaned group still lives, one running
	 * whose pid now names another process (start time differs). */
	struct store *s = store_open("store", dbs, 0, 0, err, sizeof(err));
	CHECK(s);
	const char *argv[] = {"sleep", "100", NULL};
	struct spawn_opts o = {.argv = argv, .pgroup = SPAWN_PGROUP};
	struct spawn_proc orphan, other;
	CHECK_INT(spawn_start(&o, &orphan, err, sizeof(err)), 0);
	CHECK_INT(spawn_start(&o, &other, err, sizeof(err)), 0);
	char rec[128];
	put_raw(s, "t-started", "{\"state\":\"started\"}");
	snprintf(rec, sizeof(rec), "{\"state\":\"running\",\"pid\":%d,\"start\":%llu}",
		 (int)orphan.pid, start_time(orphan.pid));
	put_raw(s, "t-orphan", rec);
	snprintf(rec, sizeof(rec), "{\"state\":\"running\",\"pid\":%d,\"start\":%llu}",
		 (int)other.pid, start_time(other.pid) + 1);
	put_raw(s, "t-reused", rec);
	put_raw(s, "t-done", "{\"state\":\"done\",\"status\":0}");
	store_close(s);

	struct env e;
	env_open(&e, NULL);
	CHECK_INT(taskrun_recovered(e.tr), 3);
	int ws;
	CHECK_INT(waitpid(orphan.pid, &ws, 0), orphan.pid);
	CHECK(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
	CHECK(alive(other.pid));
	kill(other.pid, SIGKILL);
	waitpid(other.pid, NULL, 0);

	const char *ids[] = {"t-started", "t-orphan", "t-reused"};
	for (int i = 0; i < 3; i++) {
		struct seen sn;
		collect(&e, ids[i], &sn);
		CHECK_INT(sn.nexit, 1);
		CHECK(strstr(sn.exits.data, "\"status\":-1") &&
		      strstr(sn.exits.data, "\"lost\":true"));
		seen_release(&sn);
		struct buf res = BUF_INIT;
		CHECK_INT(submit(&e, ids[i], "{\"argv\":[\"true\"]}", &res), TASKRUN_DUPLICATE);
		CHECK(strstr(res.data, "\"lost\":true"));
		buf_release(&res);
	}
	struct seen sn;
	collect(&e, "t-done", &sn);
	CHECK_INT(sn.nexit, 0);
	seen_release(&sn);
	CHECK_INT(taskrun_running(e.tr), 0);
	env_close(&e);

	/* Recovery happens once: a second restart finds nothing lost. */
	env_open(&e, NULL);
	CHECK_INT(taskrun_recovered(e.tr), 0);
	env_close(&e);
}

TEST(taskrun_refuses_bad_tasks_once_and_remembers)
{
	struct env e;
	env_open(&e, NULL);
	char err[256];
	struct buf res = BUF_INIT;
	static const struct {
		const char *id, *kind, *payload, *why;
	} bad[] = {
	    {"b-kind", "deploy", "{\"argv\":[\"true\"]}", "unknown task kind 'deploy'"},
	    {"b-json", "exec", "{\"argv\":", "exec payload: json"},
	    {"b-noargv", "exec", "{}", "'argv' must be an array"},
	    {"b-empty", "exec", "{\"argv\":[]}", "'argv' must be an array"},
	    {"b-num", "exec", "{\"argv\":[1]}", "'argv' must hold strings only"},
	    {"b-arg0", "exec", "{\"argv\":[\"\"]}", "'argv[0]' is empty"},
	    {"b-env", "exec", "{\"argv\":[\"true\"],\"env\":{\"A-B\":\"x\"}}", "'env' must map"},
	    {"b-env2", "exec", "{\"argv\":[\"true\"],\"env\":[\"=x\"]}", "'env' entries"},
	    {"b-to", "exec", "{\"argv\":[\"true\"],\"timeout_s\":-1}", "'timeout_s'"},
	    {"b-to2", "exec", "{\"argv\":[\"true\"],\"timeout_s\":1.5}", "'timeout_s'"},
	    {"b-cwd", "exec", "{\"argv\":[\"true\"],\"cwd\":\"rel\"}", "'cwd'"},
	    {"b-many", "exec", "{\"argv\":[1],\"timeout_s\":\"x\",\"cwd\":2}", "'cwd'"},
	    {"b-spawn", "exec", "{\"argv\":[\"/nonexistent/prog\"]}", "spawn '/nonexistent/prog'"},
	    {"b-cwd2", "exec", "{\"argv\":[\"true\"],\"cwd\":\"/nonexistent\"}", "spawn 'true'"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_reset(&res);
		CHECK_INT(taskrun_submit(e.tr, bad[i].id, bad[i].kind, bad[i].payload, &res, err,
					 sizeof(err)),
			  TASKRUN_FAILED);
		if (!strstr(res.data, bad[i].why))
			harness_fail(__FILE__, __LINE__, "%s: '%s' lacks '%s'", bad[i].id, res.data,
				     bad[i].why);
		struct seen sn;
		collect(&e, bad[i].id, &sn);
		CHECK_INT(sn.nexit, 1);
		CHECK(strstr(sn.exits.data, "\"status\":-1,\"error\":"));
		seen_release(&sn);
		buf_reset(&res);
		CHECK_INT(taskrun_submit(e.tr, bad[i].id, "exec", "{\"argv\":[\"true\"]}", &res,
					 err, sizeof(err)),
			  TASKRUN_DUPLICATE);
	}
	CHECK_INT(taskrun_running(e.tr), 0);
	/* Every problem of a payload is listed. */
	buf_reset(&res);
	taskrun_submit(e.tr, "b-all", "exec", "{\"argv\":[1],\"timeout_s\":\"x\",\"cwd\":2}", &res,
		       err, sizeof(err));
	CHECK(strstr(res.data, "argv") && strstr(res.data, "timeout_s") && strstr(res.data, "cwd"));
	CHECK_INT(taskrun_submit(e.tr, "", "exec", "{}", &res, err, sizeof(err)), TASKRUN_ERROR);
	buf_release(&res);
	env_close(&e);
}

TEST(taskrun_environment_is_exactly_path_and_env)
{
	struct env e;
	env_open(&e, NULL);
	CHECK_INT(
	    submit(&e, "t-env",
		   "{\"argv\":[\"env\"],\"env\":{\"FOO\":\"bar baz\",\"PATH\":\"/bin:/usr/bin\"},"
		   "\"cwd\":\"/tmp\"}",
		   NULL),
	    TASKRUN_ACCEPTED);
	CHECK_INT(
	    submit(&e, "t-env2", "{\"argv\":[\"pwd\"],\"env\":[\"A=1=2\"],\"cwd\":\"/tmp\"}", NULL),
	    TASKRUN_ACCEPTED);
	run_all(&e);
	struct seen sn;
	collect(&e, "t-env", &sn);
	CHECK_STR(sn.out.data, "PATH=/bin:/usr/bin\nFOO=bar baz\n");
	seen_release(&sn);
	collect(&e, "t-env2", &sn);
	CHECK_STR(sn.out.data, "/tmp\n");
	seen_release(&sn);
	env_close(&e);
}

TEST(taskrun_output_is_chunked_and_bounded)
{
	struct taskrun_opts o = {.max_output = 100000};
	struct env e;
	env_open(&e, &o);
	CHECK_INT(
	    submit(&e, "t-big",
		   "{\"argv\":[\"/bin/sh\",\"-c\",\"head -c 300000 /dev/zero; echo tail >&2\"]}",
		   NULL),
	    TASKRUN_ACCEPTED);
	CHECK_INT(submit(&e, "t-mid", "{\"argv\":[\"head\",\"-c\",\"50000\",\"/dev/zero\"]}", NULL),
		  TASKRUN_ACCEPTED);
	run_all(&e);
	struct seen sn;
	collect(&e, "t-big", &sn);
	CHECK_INT(sn.out.len + sn.err.len, 100000);
	CHECK(strstr(sn.exits.data, "\"truncated\":true"));
	seen_release(&sn);
	collect(&e, "t-mid", &sn);
	CHECK_INT(sn.out.len, 50000);
	CHECK_STR(sn.exits.data, "{\"task_id\":\"t-mid\",\"status\":0}\n");
	seen_release(&sn);
	env_close(&e);
}

TEST(taskrun_prune_forgets_only_old_results_base_has)
{
	struct env e;
	env_open(&e, NULL);
	char err[256];
	CHECK_INT(submit(&e, "p-1", "{\"argv\":[\"true\"]}", NULL), TASKRUN_ACCEPTED);
	run_all(&e);
	uint64_t acked = spool_last_seq(e.sp);
	CHECK_INT(submit(&e, "p-2", "{\"argv\":[\"true\"]}", NULL), TASKRUN_ACCEPTED);
	run_all(&e);
	CHECK_INT(submit(&e, "p-3", "{\"argv\":[\"sleep\",\"100\"]}", NULL), TASKRUN_ACCEPTED);
	/* Nothing acked yet: nothing goes, however old. */
	CHECK_INT(taskrun_prune(e.tr, -10, err, sizeof(err)), 0);
	CHECK(spool_ack(e.sp, acked, err, sizeof(err)) > 0);
	/* Acked but recent: kept. */
	CHECK_INT(taskrun_prune(e.tr, 3600, err, sizeof(err)), 0);
	/* Acked and old enough: p-1 only (p-2 not acked, p-3 running). */
	CHECK_INT(taskrun_prune(e.tr, -10, err, sizeof(err)), 1);
	struct buf rec = BUF_INIT;
	CHECK_INT(taskrun_record(e.tr, "p-1", &rec), 0);
	CHECK_INT(taskrun_record(e.tr, "p-2", &rec), 1);
	buf_reset(&rec);
	CHECK_INT(taskrun_record(e.tr, "p-3", &rec), 1);
	CHECK(strstr(rec.data, "\"state\":\"running\""));
	buf_release(&rec);
	CHECK_INT(taskrun_cancel(e.tr, "p-3"), 0);
	run_all(&e);
	env_close(&e);
}

TEST(taskrun_leaves_no_process_behind)
{
	struct env e;
	env_open(&e, NULL);
	char payload[512];
	/* The program exits at once, its background child would live on. */
	snprintf(payload, sizeof(payload),
		 "{\"argv\":[\"/bin/sh\",\"-c\",\"sleep 100 & echo $! >%s/bg.pid\"]}", harness_tmpdir);
	CHECK_INT(submit(&e, "t-bg", payload, NULL), TASKRUN_ACCEPTED);
	run_all(&e);
	pid_t bg = read_pid("bg.pid");
	CHECK(bg > 1);
	for (int i = 0; i < 200 && alive(bg); i++)
		usleep(10000);
	CHECK(!alive(bg));
	struct seen sn;
	collect(&e, "t-bg", &sn);
	CHECK_STR(sn.exits.data, "{\"task_id\":\"t-bg\",\"status\":0}\n");
	seen_release(&sn);
	env_close(&e);
}
