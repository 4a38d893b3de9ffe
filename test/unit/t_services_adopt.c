/* services: persistence of the serving release and its re-adoption by a
 * restarted agent (a new struct services over the same store and data
 * directory), with real git (file://), /bin/sh and sleep; the proxy check
 * for a missing Caddy. */
#include "services.h"

#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "harness.h"
#include "log.h"
#include "proto.h"
#include "spool.h"
#include "store.h"
#include "supervise.h"
#include "xalloc.h"

#define SECRET "planted-s3cr3t-4711"

struct env {
	struct loop *loop;
	struct store *store;
	struct spool *spool;
	struct services *ss;
	int meta;
};

static const char *const dbs[] = {"spool", "meta", NULL};

static void env_open(struct env *e)
{
	char err[256];
	log_set_level(LOG_LVL_OFF);
	e->loop = loop_new(0, err, sizeof(err));
	CHECK(e->loop);
	e->store = store_open("st", dbs, 0, 0, err, sizeof(err));
	if (!e->store)
		harness_fail(__FILE__, __LINE__, "%s", err);
	e->spool = spool_new(e->store, err, sizeof(err));
	CHECK(e->spool);
	e->meta = store_db(e->store, "meta");
	mkdir("data", 0700);
	e->ss = services_new(e->loop, e->store, e->spool, "data", NULL, NULL, err, sizeof(err));
	if (!e->ss)
		harness_fail(__FILE__, __LINE__, "%s", err);
}

/* As at an agent restart: services freed (processes keep running) and made
 * again over the same store. */
static void env_restart(struct env *e)
{
	char err[256];
	services_free(e->ss);
	e->ss = services_new(e->loop, e->store, e->spool, "data", NULL, NULL, err, sizeof(err));
	CHECK(e->ss);
}

static void env_close(struct env *e)
{
	services_free(e->ss);
	spool_free(e->spool);
	store_close(e->store);
	loop_free(e->loop);
}

static void sh(const char *cmd)
{
	if (system(cmd) != 0)
		harness_fail(__FILE__, __LINE__, "command failed: %s", cmd);
}

static void make_repo(void)
{
	sh("git init -q --bare -b main origin.git && git init -q -b main work && "
	   "echo hi > work/readme && cd work && git add . && "
	   "git -c user.name=t -c user.email=t@t commit -qm one && "
	   "git push -q ../origin.git main 2>/dev/null");
}

/* A worker that writes its secret to a file and sleeps. */
static char *worker_payload(const char *dep, int with_secret)
{
	struct buf bp = BUF_INIT, p = BUF_INIT;
	buf_printf(&bp,
		   "name: wk\ntype: worker\nsource: remote\nruntime: python\n"
		   "remote: {url: 'file://%s/origin.git', branch: main}\n"
		   "run_cmd: echo \"$TOKEN\" > %s/seen; exec sleep 60\n",
		   harness_tmpdir, harness_tmpdir);
	buf_puts(&p, "{\"deployment_id\":");
	buf_json_cstr(&p, dep);
	buf_puts(&p, ",\"blueprint\":");
	buf_json_cstr(&p, bp.data);
	if (with_secret)
		buf_puts(&p, ",\"secrets\":{\"TOKEN\":\"" SECRET "\"}");
	buf_puts(&p, "}");
	buf_release(&bp);
	return buf_detach(&p, NULL);
}

/* The body of the last spooled event of kind (appended to out): 1, or 0. */
static int last_event(struct env *e, const char *kind, struct buf *out)
{
	uint64_t seq = 0, s;
	struct buf k = BUF_INIT, b = BUF_INIT;
	char err[256];
	int found = 0;
	while (spool_next(e->spool, seq, &s, &k, &b, err, sizeof(err)) == 1) {
		seq = s;
		if (!strcmp(k.data, kind)) {
			buf_reset(out);
			buf_add(out, b.data, b.len);
			found = 1;
		}
		buf_reset(&k);
		buf_reset(&b);
	}
	buf_release(&k);
	buf_release(&b);
	return found;
}

static void deploy(struct env *e, const char *task, const char *payload, int line)
{
	struct buf res = BUF_INIT;
	char err[256];
	CHECK_INT(services_submit(e->ss, task, "deploy", payload, &res, err, sizeof(err)),
		  SERVICES_ACCEPTED);
	long long end = loop_now_ms() + 30000;
	while (services_busy(e->ss)) {
		if (loop_now_ms() > end)
			harness_fail(__FILE__, line, "deploy did not end");
		loop_run_once(e->loop, 50);
	}
	buf_release(&res);
}

/* The persisted record of service wk, parsed (NULL if none). */
static struct proto_json *record(struct env *e, struct buf *raw)
{
	char err[256];
	struct store_txn *t = store_txn_begin(e->store, 1);
	buf_reset(raw);
	int rc = store_get_buf(t, e->meta, "svc/wk", 6, raw);
	store_txn_abort(t);
	if (rc != 0)
		return NULL;
	return proto_json_parse(raw->data, raw->len, err, sizeof(err));
}

static int64_t rec_int(struct proto_json *d, const char *k)
{
	int64_t n = -1;
	proto_jv_int(proto_jv_get(proto_json_root(d), k), &n);
	return n;
}

static void put_record(struct env *e, const char *key, const char *val)
{
	char err[256];
	struct store_txn *t = store_txn_begin(e->store, 0);
	store_put(t, e->meta, key, strlen(key), val, strlen(val));
	CHECK_INT(store_txn_commit(t, err, sizeof(err)), 0);
}

static int alive(pid_t pid)
{
	unsigned long long st;
	return supervise_proc_start_time(pid, &st) == 0;
}

static int wait_gone(struct env *e, pid_t pid)
{
	long long end = loop_now_ms() + 5000;
	while (alive(pid)) {
		if (loop_now_ms() > end)
			return 0;
		loop_run_once(e->loop, 20);
	}
	return 1;
}

static void spin(struct env *e, long long ms)
{
	long long end = loop_now_ms() + ms;
	while (loop_now_ms() < end)
		loop_run_once(e->loop, 20);
}

static int file_has(const char *path, const char *needle)
{
	struct buf b = BUF_INIT;
	char err[256];
	int hit = buf_read_file(&b, path, 1 << 24, err, sizeof(err)) == 0 && b.len &&
		  memmem(b.data, b.len, needle, strlen(needle)) != NULL;
	buf_release(&b);
	return hit;
}

/* 1 when any file under dir holds needle. */
static int tree_has(const char *dir, const char *needle)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "grep -rqF '%s' %s", needle, dir);
	return system(cmd) == 0;
}

TEST(record_is_kept_and_the_running_process_adopted)
{
	make_repo();
	struct env e;
	env_open(&e);
	char *pl = worker_payload("d-1", 1);
	deploy(&e, "t1", pl, __LINE__);
	struct buf raw = BUF_INIT, ev = BUF_INIT;
	CHECK(last_event(&e, "deploy_done", &ev));
	CHECK(strstr(ev.data, "\"outcome\":\"done\""));
	struct proto_json *d = record(&e, &raw);
	CHECK(d != NULL);
	CHECK_STR(proto_jv_get_str(proto_json_root(d), "release"), "d-1");
	CHECK(strstr(proto_jv_get_str(proto_json_root(d), "blueprint"), "name: wk"));
	CHECK_INT(rec_int(d, "run"), 1);
	pid_t pid = (pid_t)rec_int(d, "pid");
	CHECK(pid > 1 && alive(pid));
	/* Sealed at rest: the key file is private, the value nowhere in clear. */
	CHECK(proto_jv_get_str(proto_json_root(d), "secrets") != NULL);
	CHECK(!strstr(raw.data, SECRET));
	struct stat st;
	CHECK_INT(stat("data/secrets.key", &st), 0);
	CHECK_INT(st.st_mode & 0777, 0600);
	CHECK_INT((int)st.st_size, 32);
	CHECK(!tree_has("st", SECRET));
	CHECK(file_has("seen", SECRET));
	proto_json_free(d);

	/* The agent restarts: the same process is taken back, not another. */
	env_restart(&e);
	services_restore(e.ss);
	spin(&e, 300);
	d = record(&e, &raw);
	CHECK(d != NULL);
	CHECK_INT(rec_int(d, "pid"), pid);
	proto_json_free(d);
	CHECK(alive(pid));
	/* service_ctl works on it: stop holds, start runs it again with its
	 * secret (opened from the sealed record). */
	struct buf res = BUF_INIT;
	char err[256];
	unlink("seen");
	CHECK_INT(services_submit(e.ss, "t2", "service_ctl",
				  "{\"service\":\"wk\",\"action\":\"stop\"}", &res, err,
				  sizeof(err)),
		  SERVICES_DONE);
	CHECK_STR(res.data, "{\"status\":0}");
	CHECK(wait_gone(&e, pid));
	spin(&e, 300);
	d = record(&e, &raw);
	CHECK_INT(rec_int(d, "run"), 0);
	CHECK_INT(rec_int(d, "pid"), -1);
	proto_json_free(d);
	/* Stopped survives a restart too. */
	env_restart(&e);
	services_restore(e.ss);
	spin(&e, 500);
	CHECK(access("seen", F_OK) != 0);
	buf_reset(&res);
	CHECK_INT(services_submit(e.ss, "t3", "service_ctl",
				  "{\"service\":\"wk\",\"action\":\"start\"}", &res, err,
				  sizeof(err)),
		  SERVICES_DONE);
	spin(&e, 500);
	CHECK(file_has("seen", SECRET));
	d = record(&e, &raw);
	pid_t pid2 = (pid_t)rec_int(d, "pid");
	CHECK(pid2 > 1 && pid2 != pid && alive(pid2));
	proto_json_free(d);
	kill(-pid2, SIGKILL);
	buf_release(&res);
	buf_release(&raw);
	buf_release(&ev);
	free(pl);
	env_close(&e);
}

TEST(dead_process_is_started_again_but_not_without_its_key)
{
	make_repo();
	struct env e;
	env_open(&e);
	char *pl = worker_payload("d-1", 1);
	deploy(&e, "t1", pl, __LINE__);
	struct buf raw = BUF_INIT;
	struct proto_json *d = record(&e, &raw);
	CHECK(d != NULL);
	pid_t pid = (pid_t)rec_int(d, "pid");
	proto_json_free(d);
	/* Died while the agent was away: started again, with its secret. */
	services_free(e.ss);
	e.ss = NULL;
	kill(-pid, SIGKILL);
	CHECK(wait_gone(&e, pid));
	unlink("seen");
	env_restart(&e);
	services_restore(e.ss);
	spin(&e, 500);
	CHECK(file_has("seen", SECRET));
	d = record(&e, &raw);
	pid_t pid2 = (pid_t)rec_int(d, "pid");
	CHECK(pid2 > 1 && pid2 != pid && alive(pid2));
	proto_json_free(d);

	/* Again, but the key is gone: not started (it would lack its
	 * secrets); the record stays, not running. */
	services_free(e.ss);
	e.ss = NULL;
	kill(-pid2, SIGKILL);
	CHECK(wait_gone(&e, pid2));
	unlink("seen");
	CHECK_INT(unlink("data/secrets.key"), 0);
	env_restart(&e);
	services_restore(e.ss);
	spin(&e, 500);
	CHECK(access("seen", F_OK) != 0);
	d = record(&e, &raw);
	CHECK(d != NULL);
	CHECK_INT(rec_int(d, "run"), 0);
	CHECK_INT(rec_int(d, "pid"), -1);
	proto_json_free(d);

	/* Another key (32 bytes, wrong): the same. */
	sh("head -c 32 /dev/urandom > data/secrets.key && chmod 600 data/secrets.key");
	env_restart(&e);
	services_restore(e.ss);
	spin(&e, 500);
	CHECK(access("seen", F_OK) != 0);
	/* A redeploy works and seals with the key there is. */
	free(pl);
	pl = worker_payload("d-2", 1);
	deploy(&e, "t2", pl, __LINE__);
	d = record(&e, &raw);
	CHECK_STR(proto_jv_get_str(proto_json_root(d), "release"), "d-2");
	pid_t pid3 = (pid_t)rec_int(d, "pid");
	CHECK(pid3 > 1 && alive(pid3));
	proto_json_free(d);
	CHECK(file_has("seen", SECRET));
	kill(-pid3, SIGKILL);
	buf_release(&raw);
	free(pl);
	env_close(&e);
}

TEST(corrupt_records_are_skipped)
{
	make_repo();
	struct env e;
	env_open(&e);
	char *pl = worker_payload("d-1", 0);
	deploy(&e, "t1", pl, __LINE__);
	struct buf raw = BUF_INIT;
	struct proto_json *d = record(&e, &raw);
	pid_t pid = (pid_t)rec_int(d, "pid");
	proto_json_free(d);
	char *good = xstrdup(raw.data);
	services_free(e.ss);
	e.ss = NULL;
	/* Hostile records next to the good one. */
	put_record(&e, "svc/aa", "not json {");
	put_record(&e, "svc/bb", "{\"release\":\"d-1\"}");
	put_record(&e, "svc/cc", "{\"release\":\"../../x\",\"blueprint\":\"name: cc\\n\"}");
	put_record(&e, "svc/../dd", "{\"release\":\"d-1\",\"blueprint\":\"x\"}");
	put_record(&e, "svc/ee",
		   "{\"release\":\"d-1\",\"run\":1,\"pid\":1,\"pgid\":1,\"start_time\":1,"
		   "\"blueprint\":\"name: wk\\ntype: worker\\nruntime: python\\n"
		   "source: upload\\nrun_cmd: sleep 1\\n\"}");
	put_record(&e, "svc/ff",
		   "{\"release\":\"d-9\",\"secrets\":\"!!!\",\"blueprint\":\"name: ff\\n"
		   "type: worker\\nruntime: python\\nsource: upload\\nrun_cmd: x\\n\"}");
	env_restart(&e);
	services_restore(e.ss);
	spin(&e, 300);
	/* The good one is adopted, the others left as they were. */
	d = record(&e, &raw);
	CHECK(d != NULL);
	CHECK_INT(rec_int(d, "pid"), pid);
	proto_json_free(d);
	CHECK(alive(pid));
	CHECK(alive(1));
	struct store_txn *t = store_txn_begin(e.store, 1);
	buf_reset(&raw);
	CHECK_INT(store_get_buf(t, e.meta, "svc/aa", 6, &raw), 0);
	CHECK_STR(raw.data, "not json {");
	store_txn_abort(t);
	/* A record whose pid names another process (pid reused, here our own
	 * pid with the good record's start time): never adopted or signalled;
	 * the release is started instead. */
	services_free(e.ss);
	e.ss = NULL;
	kill(-pid, SIGKILL);
	CHECK(wait_gone(&e, pid));
	struct buf b = BUF_INIT;
	char *at = strstr(good, "\"pid\":");
	CHECK(at != NULL);
	buf_add(&b, good, (size_t)(at - good));
	buf_printf(&b, "\"pid\":%d,\"pgid\":%d,", (int)getpid(), (int)getpgrp());
	at = strstr(at, "\"start_time\"");
	buf_puts(&b, at);
	put_record(&e, "svc/wk", b.data);
	env_restart(&e);
	services_restore(e.ss);
	spin(&e, 300);
	d = record(&e, &raw);
	pid_t pid2 = (pid_t)rec_int(d, "pid");
	CHECK(pid2 > 1 && pid2 != getpid() && alive(pid2));
	proto_json_free(d);
	kill(-pid2, SIGKILL);
	buf_release(&b);
	buf_release(&raw);
	free(good);
	free(pl);
	env_close(&e);
}

TEST(web_deploy_without_caddy_fails_at_once_naming_the_fix)
{
	struct env e;
	env_open(&e);
	char err[256];
	CHECK_INT(services_proxy(e.ss, "127.0.0.1", "/nonexistent/caddy", err, sizeof(err)), 0);
	const char *pl = "{\"deployment_id\":\"d-1\",\"blueprint\":\"name: web\\ntype: web\\n"
			 "source: upload\\nruntime: python\\nrun_cmd: x\\nport: 8080\\n\","
			 "\"upload\":\"\"}";
	deploy(&e, "t1", pl, __LINE__);
	struct buf ev = BUF_INIT;
	CHECK(last_event(&e, "deploy_done", &ev));
	CHECK(strstr(ev.data, "\"outcome\":\"error\""));
	CHECK(strstr(ev.data, "apt-get install caddy"));
	CHECK(strstr(ev.data, "/nonexistent/caddy"));
	/* Nothing was started, nothing persisted. */
	struct buf raw = BUF_INIT;
	struct store_txn *t = store_txn_begin(e.store, 1);
	CHECK_INT(store_get_buf(t, e.meta, "svc/web", 7, &raw), 1);
	store_txn_abort(t);
	/* A bad listen address is refused. */
	CHECK_INT(services_proxy(e.ss, "localhost", NULL, err, sizeof(err)), -1);
	CHECK(strstr(err, "not an IP address"));
	buf_release(&raw);
	buf_release(&ev);
	env_close(&e);
}

TEST(new_release_left_by_a_dead_agent_is_ended)
{
	make_repo();
	struct env e;
	env_open(&e);
	/* A finished deploy leaves no such record. */
	char *pl = worker_payload("d-1", 0);
	deploy(&e, "t1", pl, __LINE__);
	struct buf raw = BUF_INIT;
	struct store_txn *t = store_txn_begin(e.store, 1);
	CHECK_INT(store_get_buf(t, e.meta, "svcnew/wk", 9, &raw), 1);
	store_txn_abort(t);
	struct proto_json *d = record(&e, &raw);
	pid_t serving = (pid_t)rec_int(d, "pid");
	proto_json_free(d);
	/* A process of an unfinished deploy (its own group), and a record
	 * naming our own pid with another start time (a reused pid). */
	pid_t child = fork();
	if (child == 0) {
		setpgid(0, 0);
		execl("/bin/sleep", "sleep", "60", (char *)NULL);
		_exit(127);
	}
	CHECK(child > 0);
	setpgid(child, child);
	unsigned long long st = 0;
	long long end = loop_now_ms() + 5000;
	char cmd[64] = "";
	while (loop_now_ms() < end) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)child);
		FILE *f = fopen(path, "r");
		if (f && fgets(cmd, sizeof(cmd), f) && !strncmp(cmd, "sleep", 5)) {
			fclose(f);
			break;
		}
		if (f)
			fclose(f);
		spin(&e, 20);
	}
	CHECK_INT(supervise_proc_start_time(child, &st), 0);
	char val[96];
	snprintf(val, sizeof(val), "%d %d %llu", (int)child, (int)child, st);
	services_free(e.ss);
	e.ss = NULL;
	put_record(&e, "svcnew/zz", val);
	/* The serving process itself (an agent that died between the switch
	 * and the end of the deploy): never killed. */
	unsigned long long sst = 0;
	CHECK_INT(supervise_proc_start_time(serving, &sst), 0);
	snprintf(val, sizeof(val), "%d %d %llu", (int)serving, (int)serving, sst);
	put_record(&e, "svcnew/wk", val);
	unsigned long long me = 0;
	CHECK_INT(supervise_proc_start_time(getpid(), &me), 0);
	snprintf(val, sizeof(val), "%d %d %llu", (int)getpid(), (int)getpgrp(), me + 1);
	put_record(&e, "svcnew/other", val);
	put_record(&e, "svcnew/junk", "x y z");
	env_restart(&e);
	services_restore(e.ss);
	int status = 0;
	CHECK_INT(waitpid(child, &status, 0), child);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	/* The serving one is adopted, untouched; the records are gone. */
	CHECK(alive(serving));
	t = store_txn_begin(e.store, 1);
	CHECK_INT(store_get_buf(t, e.meta, "svcnew/wk", 9, &raw), 1);
	CHECK_INT(store_get_buf(t, e.meta, "svcnew/zz", 9, &raw), 1);
	CHECK_INT(store_get_buf(t, e.meta, "svcnew/other", 12, &raw), 1);
	CHECK_INT(store_get_buf(t, e.meta, "svcnew/junk", 11, &raw), 1);
	store_txn_abort(t);
	kill(-serving, SIGKILL);
	buf_release(&raw);
	free(pl);
	env_close(&e);
}
