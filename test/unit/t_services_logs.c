/* services: service output followed into logs/service.log, and the
 * service_logs task (lines, follow, cancel, resume after a restart). */
#include "services.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "crypt.h"
#include "harness.h"
#include "loop.h"
#include "proto.h"
#include "spool.h"
#include "store.h"

static const char *const dbs[] = {"tasks", "spool", "meta", NULL};

struct env {
	struct loop *loop;
	struct store *st;
	struct spool *sp;
	struct services *ss;
	uint64_t after; /* spool events read so far */
};

static void nop(struct loop *loop, long long id, void *arg, int mask)
{
	(void)loop;
	(void)id;
	(void)arg;
	(void)mask;
}

static void env_up(struct env *e)
{
	char err[256];
	e->ss = services_new(e->loop, e->st, e->sp, "data", nop, NULL, err, sizeof(err));
	if (!e->ss)
		harness_fail(__FILE__, __LINE__, "services_new: %s", err);
}

static void env_init(struct env *e)
{
	char err[256];
	memset(e, 0, sizeof(*e));
	CHECK(mkdir("data", 0700) == 0 && mkdir("data/services", 0700) == 0 &&
	      mkdir("data/services/web", 0700) == 0 &&
	      mkdir("data/services/web/releases", 0700) == 0 &&
	      mkdir("data/services/web/releases/r1", 0700) == 0 &&
	      mkdir("data/services/web/logs", 0700) == 0 &&
	      symlink("releases/r1", "data/services/web/current") == 0);
	e->loop = loop_new(0, err, sizeof(err));
	CHECK(e->loop);
	e->st = store_open("st", dbs, 0, 0, err, sizeof(err));
	CHECK(e->st);
	e->sp = spool_new(e->st, err, sizeof(err));
	CHECK(e->sp);
}

static void env_release(struct env *e)
{
	services_free(e->ss);
	spool_free(e->sp);
	store_close(e->st);
	loop_free(e->loop);
}

static void out(const char *s)
{
	int fd = open("data/services/web/logs/r1.log", O_WRONLY | O_CREAT | O_APPEND, 0640);
	CHECK(fd >= 0);
	CHECK(write(fd, s, strlen(s)) == (ssize_t)strlen(s));
	close(fd);
}

/* New events of task: output text appended to text, the exec_exit body (if
 * one came) to exitb. */
static void events(struct env *e, const char *task, struct buf *text, struct buf *exitb)
{
	struct buf kind = BUF_INIT, body = BUF_INIT;
	uint64_t seq;
	char err[256];
	for (;;) {
		buf_reset(&kind);
		buf_reset(&body);
		int rc = spool_next(e->sp, e->after, &seq, &kind, &body, err, sizeof(err));
		CHECK(rc >= 0);
		if (rc == 0)
			break;
		e->after = seq;
		struct proto_json *doc = proto_json_parse(body.data, body.len, err, sizeof(err));
		CHECK(doc);
		const struct proto_jv *o = proto_json_root(doc);
		const char *id = proto_jv_get_str(o, "task_id");
		if (id && !strcmp(id, task)) {
			if (!strcmp(kind.data, "exec_output")) {
				const char *d = proto_jv_get_str(o, "data");
				CHECK(crypt_b64_decode(text, d, strlen(d), CRYPT_B64_STD) == 0);
			} else if (!strcmp(kind.data, "exec_exit") && exitb) {
				buf_puts(exitb, body.data);
			}
		}
		proto_json_free(doc);
	}
	buf_putc(text, 0);
	text->len--;
	buf_release(&kind);
	buf_release(&body);
}

/* Run the loop until task's output holds want (at most ~5 s). */
static void wait_text(struct env *e, const char *task, struct buf *text, const char *want)
{
	for (int i = 0; i < 50 && !(text->data && strstr(text->data, want)); i++) {
		loop_run_once(e->loop, 100);
		events(e, task, text, NULL);
	}
	if (!text->data || !strstr(text->data, want))
		harness_fail(__FILE__, __LINE__, "'%s' not in '%s'", want,
			     text->data ? text->data : "");
}

static enum services_status submit(struct env *e, const char *task, const char *payload)
{
	char err[256];
	struct buf res = BUF_INIT;
	enum services_status s =
	    services_submit(e->ss, task, "service_logs", payload, &res, err, sizeof(err));
	buf_release(&res);
	return s;
}

TEST(services_logs_tail_follow_cancel)
{
	struct env e;
	env_init(&e);
	out("alpha\nbeta\n");
	env_up(&e);
	struct buf text = BUF_INIT, ex = BUF_INIT, f = BUF_INIT;
	/* followed at start (no deploy: `current` names the release) */
	for (int i = 0; i < 50; i++) {
		struct stat st;
		if (stat("data/services/web/logs/service.log", &st) == 0 && st.st_size > 60)
			break;
		loop_run_once(e.loop, 100);
	}
	CHECK_INT(submit(&e, "t-1", "{\"service\":\"web\",\"lines\":1}"), SERVICES_ACCEPTED);
	events(&e, "t-1", &text, &ex);
	CHECK(text.len == 34 && strstr(text.data, "Z out beta\n") == text.data + 23);
	CHECK(strstr(ex.data, "\"status\":0") != NULL);
	/* a duplicate runs nothing */
	CHECK_INT(submit(&e, "t-1", "{\"service\":\"web\",\"lines\":1}"), SERVICES_DUPLICATE);
	/* an unknown service */
	buf_reset(&ex);
	CHECK_INT(submit(&e, "t-2", "{\"service\":\"nope\"}"), SERVICES_ACCEPTED);
	buf_reset(&text);
	events(&e, "t-2", &text, &ex);
	CHECK(strstr(ex.data, "\"status\":1") && strstr(ex.data, "has no output here"));

	/* follow: the backlog, then new lines; cancel ends it */
	CHECK_INT(
	    submit(&e, "t-3", "{\"service\":\"web\",\"lines\":1,\"follow\":true,\"raw\":true}"),
	    SERVICES_ACCEPTED);
	buf_reset(&ex);
	events(&e, "t-3", &f, &ex);
	CHECK_STR(f.data, "beta\n");
	CHECK_INT(ex.len, 0);
	CHECK_INT(submit(&e, "t-3", "{\"service\":\"web\",\"follow\":true}"), SERVICES_DUPLICATE);
	out("gamma\n");
	wait_text(&e, "t-3", &f, "gamma\n");
	CHECK_STR(f.data, "beta\ngamma\n");
	CHECK_INT(services_cancel(e.ss, "t-3"), 0);
	CHECK_INT(services_cancel(e.ss, "t-3"), -1);
	events(&e, "t-3", &f, &ex);
	CHECK(strstr(ex.data, "\"cancelled\":true") != NULL);
	CHECK_INT(services_cancel(e.ss, "t-nope"), -1);

	/* the agent stopping ends a follow with status 1 */
	CHECK_INT(submit(&e, "t-4", "{\"service\":\"web\",\"follow\":true}"), SERVICES_ACCEPTED);
	buf_reset(&ex);
	buf_reset(&text);
	services_stop_follows(e.ss);
	events(&e, "t-4", &text, &ex);
	CHECK(strstr(ex.data, "\"status\":1") && strstr(text.data, "the agent stopped"));
	buf_release(&text);
	buf_release(&ex);
	buf_release(&f);
	env_release(&e);
}

TEST(services_logs_follow_resumes_after_restart_without_repeats)
{
	struct env e;
	env_init(&e);
	out("one\n");
	env_up(&e);
	struct buf f = BUF_INIT, ex = BUF_INIT;
	const char *pl = "{\"service\":\"web\",\"lines\":5,\"follow\":true,\"raw\":true}";
	CHECK_INT(submit(&e, "t-9", pl), SERVICES_ACCEPTED);
	out("two\n");
	wait_text(&e, "t-9", &f, "two\n");
	/* the agent goes away without a word (as kill -9: the task stays
	 * recorded running); output goes on meanwhile */
	services_free(e.ss);
	out("three\n");
	env_up(&e);
	/* base delivers the task again: it goes on after "two" */
	CHECK_INT(submit(&e, "t-9", pl), SERVICES_ACCEPTED);
	out("four\n");
	wait_text(&e, "t-9", &f, "four\n");
	CHECK_STR(f.data, "one\ntwo\nthree\nfour\n");
	CHECK_INT(services_cancel(e.ss, "t-9"), 0);
	events(&e, "t-9", &f, &ex);
	CHECK(strstr(ex.data, "\"cancelled\":true") != NULL);
	/* delivered again once done: a duplicate */
	CHECK_INT(submit(&e, "t-9", pl), SERVICES_DUPLICATE);
	buf_release(&f);
	buf_release(&ex);
	env_release(&e);
}

/* Events base has not acked yet, beyond a bound: a follower waits, and its
 * bounded queue drops the oldest lines (said on stderr) instead of growing
 * the spool or blocking the service. */
TEST(services_logs_slow_follower_drops_oldest)
{
	struct env e;
	char err[256];
	env_init(&e);
	out("start\n");
	env_up(&e);
	struct buf f = BUF_INIT, ex = BUF_INIT;
	CHECK_INT(
	    submit(&e, "t-5", "{\"service\":\"web\",\"lines\":1,\"follow\":true,\"raw\":true}"),
	    SERVICES_ACCEPTED);
	for (int i = 0; i < 300; i++)
		CHECK(spool_add(e.sp, "filler", "{}", err, sizeof(err)) > 0);
	uint64_t last = spool_last_seq(e.sp);
	/* 2 MiB of output while base takes nothing */
	struct buf big = BUF_INIT;
	for (int i = 0; i < 20000; i++)
		buf_printf(&big, "line %06d %s\n", i,
			   "................................................................"
			   "..........................");
	out(big.data);
	for (int i = 0; i < 30; i++)
		loop_run_once(e.loop, 50);
	/* nothing spooled for the follower meanwhile, beyond one batch */
	CHECK(spool_last_seq(e.sp) - last <= 2);
	/* base catches up: what is left comes, with the gap said */
	CHECK(spool_ack(e.sp, spool_last_seq(e.sp), err, sizeof(err)) >= 0);
	struct buf text = BUF_INIT;
	for (int i = 0; i < 100 && !(text.data && strstr(text.data, "line 019999 ")); i++) {
		loop_run_once(e.loop, 50);
		events(&e, "t-5", &text, NULL);
	}
	if (!strstr(text.data, "line 019999 "))
		harness_fail(__FILE__, __LINE__, "%zu bytes, ending '%s'", text.len,
			     text.len > 200 ? text.data + text.len - 200 : text.data);
	CHECK(strstr(text.data, "line 000100 ") == NULL);
	CHECK(strstr(text.data, " bytes dropped\n") != NULL);
	CHECK(text.len < 600000);
	CHECK_INT(services_cancel(e.ss, "t-5"), 0);
	buf_release(&big);
	buf_release(&text);
	buf_release(&f);
	buf_release(&ex);
	env_release(&e);
}
