#include "svclog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "harness.h"
#include "loop.h"
#include "spawn.h"

#define T0 1795000000000LL /* 2026-11-18T...Z, any fixed wall clock */

static struct loop *mkloop(void)
{
	char err[256];
	struct loop *l = loop_new(0, err, sizeof(err));
	if (!l)
		harness_fail(__FILE__, __LINE__, "loop_new: %s", err);
	return l;
}

static struct svclog *mklog(struct loop *loop, const struct svclog_opts *o)
{
	char err[256];
	struct svclog *lg = svclog_new(loop, o, err, sizeof(err));
	if (!lg)
		harness_fail(__FILE__, __LINE__, "svclog_new: %s", err);
	return lg;
}

static void slurp(const char *path, struct buf *b)
{
	char err[256];
	buf_reset(b);
	if (buf_read_file(b, path, 1 << 26, err, sizeof(err)) < 0)
		harness_fail(__FILE__, __LINE__, "%s", err);
}

static off_t fsize(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

static void feeds(struct svclog *lg, int stream, const char *s, long long ts)
{
	svclog_feed(lg, stream, s, strlen(s), ts);
}

TEST(svclog_ts_format_round_trips)
{
	char ts[25];
	svclog_fmt_ts(T0 + 123, ts);
	CHECK_INT(strlen(ts), 24);
	char line[64];
	snprintf(line, sizeof(line), "%s err+ hi", ts);
	struct svclog_rec r;
	CHECK_INT(svclog_parse_line(line, strlen(line), &r), 0);
	CHECK_INT(r.ts_ms, T0 + 123);
	CHECK_INT(r.stream, SVCLOG_STDERR);
	CHECK_INT(r.cont, 1);
	CHECK_INT(r.len, 2);
	CHECK(!memcmp(r.line, "hi", 2));
	svclog_fmt_ts(0, ts);
	CHECK_STR(ts, "1970-01-01T00:00:00.000Z");
	const char *bad[] = {"",
			     "junk",
			     "2026-13-01T00:00:00.000Z out x",
			     "2026-01-01T00:00:00.000Z bad x",
			     "2026-01-01T00:00:00.000Z out",
			     "2026-01-01 00:00:00.000Z out x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(svclog_parse_line(bad[i], strlen(bad[i]), &r), -1);
}

TEST(svclog_partial_lines_and_crlf)
{
	struct loop *loop = mkloop();
	struct svclog_opts o = {.path = "svc.log"};
	struct svclog *lg = mklog(loop, &o);
	feeds(lg, SVCLOG_STDOUT, "a\r\nb", T0);
	feeds(lg, SVCLOG_STDERR, "E1", T0 + 1);
	feeds(lg, SVCLOG_STDOUT, "c\r", T0 + 2);
	feeds(lg, SVCLOG_STDOUT, "\nmid\rdle\n\n", T0 + 3);
	feeds(lg, SVCLOG_STDERR, "\n", T0 + 4);
	feeds(lg, SVCLOG_STDOUT, "tail-no-newline", T0 + 5);
	struct buf b = BUF_INIT;
	slurp("svc.log", &b);
	CHECK_STR(b.data, "2026-11-18T11:06:40.000Z out a\n"
			  "2026-11-18T11:06:40.003Z out bc\n"
			  "2026-11-18T11:06:40.003Z out mid\rdle\n"
			  "2026-11-18T11:06:40.003Z out \n"
			  "2026-11-18T11:06:40.004Z err E1\n");
	svclog_flush(lg, SVCLOG_STDOUT, T0 + 6);
	struct svclog_list l = SVCLOG_LIST_INIT;
	char err[256];
	CHECK_INT(svclog_tail(lg, 2, &l, err, sizeof(err)), 0);
	CHECK_INT(l.n, 2);
	CHECK_STR(l.recs[0].line, "E1");
	CHECK_INT(l.recs[0].stream, SVCLOG_STDERR);
	CHECK_STR(l.recs[1].line, "tail-no-newline");
	CHECK_INT(l.recs[1].ts_ms, T0 + 6);
	svclog_list_release(&l);
	svclog_free(lg);
	/* An unfinished line is written at free too. */
	lg = mklog(loop, &o);
	feeds(lg, SVCLOG_STDERR, "last words", T0 + 7);
	svclog_free(lg);
	slurp("svc.log", &b);
	CHECK(b.len > 12 && !memcmp(b.data + b.len - 12, " last words\n", 12));
	buf_release(&b);
	loop_free(loop);
}

TEST(svclog_long_lines_are_split_not_lost)
{
	struct loop *loop = mkloop();
	struct svclog_opts o = {.path = "svc.log", .max_line = 10};
	struct svclog *lg = mklog(loop, &o);
	/* 25 bytes, fed in pieces smaller and larger than the limit. */
	feeds(lg, SVCLOG_STDOUT, "0123", T0);
	feeds(lg, SVCLOG_STDOUT, "456789abcdefghij", T0);
	feeds(lg, SVCLOG_STDOUT, "klmno\n", T0);
	/* Exactly the limit, with CRLF split across feeds: one record. */
	feeds(lg, SVCLOG_STDOUT, "ABCDEFGHIJ\r", T0);
	feeds(lg, SVCLOG_STDOUT, "\n", T0);
	/* A 2-byte UTF-8 sequence across the cut at 10 stays whole. */
	feeds(lg, SVCLOG_STDOUT, "123456789\xc3\xa9xyz\n", T0);
	struct svclog_list l = SVCLOG_LIST_INIT;
	char err[256];
	CHECK_INT(svclog_tail(lg, 100, &l, err, sizeof(err)), 0);
	CHECK_INT(l.n, 6);
	CHECK_STR(l.recs[0].line, "0123456789");
	CHECK_INT(l.recs[0].cont, 1);
	CHECK_STR(l.recs[1].line, "abcdefghij");
	CHECK_INT(l.recs[1].cont, 1);
	CHECK_STR(l.recs[2].line, "klmno");
	CHECK_INT(l.recs[2].cont, 0);
	CHECK_STR(l.recs[3].line, "ABCDEFGHIJ");
	CHECK_INT(l.recs[3].cont, 0);
	CHECK_STR(l.recs[4].line, "123456789");
	CHECK_INT(l.recs[4].cont, 1);
	CHECK_STR(l.recs[5].line, "\xc3\xa9xyz");
	svclog_list_release(&l);
	struct buf b = BUF_INIT;
	slurp("svc.log", &b);
	CHECK(strstr(b.data, " out+ 0123456789\n"));
	CHECK(strstr(b.data, " out klmno\n"));
	/* The file reads back the same (cont marks included). */
	svclog_free(lg);
	o.ring_bytes = 1;
	lg = mklog(loop, &o);
	CHECK_INT(svclog_tail(lg, 3, &l, err, sizeof(err)), 0);
	CHECK_INT(l.n, 3);
	CHECK_STR(l.recs[0].line, "ABCDEFGHIJ");
	CHECK_INT(l.recs[1].cont, 1);
	CHECK_INT(l.recs[2].cont, 0);
	svclog_list_release(&l);
	svclog_free(lg);
	buf_release(&b);
	loop_free(loop);
}

TEST(svclog_binary_junk_is_kept)
{
	struct loop *loop = mkloop();
	struct svclog_opts o = {.path = "svc.log", .ring_bytes = 1};
	struct svclog *lg = mklog(loop, &o);
	unsigned char junk[256 + 1];
	size_t n = 0;
	for (int c = 0; c < 256; c++)
		if (c != '\n')
			junk[n++] = (unsigned char)c;
	junk[n++] = '\n';
	svclog_feed(lg, SVCLOG_STDOUT, junk, n, T0);
	svclog_feed(lg, SVCLOG_STDOUT, "\xff\xfe\x00ok\n", 6, T0);
	/* ring_bytes 1 keeps only the newest record: tail(2) reads the file. */
	struct svclog_list l = SVCLOG_LIST_INIT;
	char err[256];
	CHECK_INT(svclog_tail(lg, 2, &l, err, sizeof(err)), 0);
	CHECK_INT(l.n, 2);
	CHECK_INT(l.recs[0].len, 255); /* every byte but "\n" */
	CHECK(!memcmp(l.recs[0].line, junk, 255));
	CHECK_INT(l.recs[1].len, 5);
	CHECK(!memcmp(l.recs[1].line, "\xff\xfe\x00ok", 5));
	svclog_list_release(&l);
	svclog_free(lg);
	loop_free(loop);
}

/* Records of 100 bytes each in the file: 30 bytes of frame + 70. */
static void put100(struct svclog *lg, int i, long long ts)
{
	char line[80];
	snprintf(line, sizeof(line), "%-70d\n", i);
	feeds(lg, SVCLOG_STDOUT, line, ts);
}

TEST(svclog_rotation_boundaries)
{
	struct loop *loop = mkloop();
	struct svclog_opts o = {.path = "svc.log", .max_file = 200, .keep = 2};
	struct svclog *lg = mklog(loop, &o);
	put100(lg, 0, T0);
	put100(lg, 1, T0);
	CHECK_INT(fsize("svc.log"), 200); /* exactly full: no rotation yet */
	CHECK_INT(fsize("svc.log.1"), -1);
	put100(lg, 2, T0);
	CHECK_INT(fsize("svc.log"), 100);
	CHECK_INT(fsize("svc.log.1"), 200);
	for (int i = 3; i < 9; i++)
		put100(lg, i, T0);
	CHECK_INT(fsize("svc.log"), 100);
	CHECK_INT(fsize("svc.log.1"), 200);
	CHECK_INT(fsize("svc.log.2"), 200);
	CHECK_INT(fsize("svc.log.3"), -1);
	struct buf b = BUF_INIT;
	slurp("svc.log.2", &b);
	CHECK(strstr(b.data, " out 4 ") && strstr(b.data, " out 5 "));
	slurp("svc.log", &b);
	CHECK(strstr(b.data, " out 8 "));
	CHECK_INT(svclog_file_size(lg), 100);
	CHECK_INT(svclog_lost(lg), 0);
	svclog_free(lg);

	/* keep = -1: no rotated files, the file starts over. */
	struct svclog_opts o2 = {.path = "solo.log", .max_file = 200, .keep = -1};
	lg = mklog(loop, &o2);
	for (int i = 0; i < 5; i++)
		put100(lg, i, T0);
	CHECK_INT(fsize("solo.log"), 100);
	CHECK_INT(fsize("solo.log.1"), -1);
	svclog_free(lg);
	buf_release(&b);
	loop_free(loop);
}

TEST(svclog_tail_and_since_after_rotation)
{
	struct loop *loop = mkloop();
	/* A ring of about three records: older ones come from the files. */
	struct svclog_opts o = {
	    .path = "svc.log", .max_file = 1000, .keep = 3, .ring_bytes = 3 * (16 + 70)};
	struct svclog *lg = mklog(loop, &o);
	for (int i = 0; i < 50; i++)
		put100(lg, i, T0 + i * 1000);
	/* The files keep 4 x 10 records: 10 .. 49. */
	struct svclog_list l = SVCLOG_LIST_INIT;
	char err[256];
	CHECK_INT(svclog_tail(lg, 3, &l, err, sizeof(err)), 0);
	CHECK_INT(l.n, 3);
	CHECK_INT(atoi(l.recs[0].line), 47);
	svclog_list_release(&l);
	CHECK_INT(svclog_tail(lg, 25, &l, err, sizeof(err)), 0);
	CHECK_INT(l.n, 25);
	for (size_t i = 0; i < l.n; i++)
		CHECK_INT(atoi(l.recs[i].line), 25 + (int)i);
	svclog_list_release(&l);
	CHECK_INT(svclog_tail(lg, 1000, &l, err, sizeof(err)), 0);
	CHECK_INT(l.n, 40);
	CHECK_INT(atoi(l.recs[0].line), 10);
	CHECK_INT(atoi(l.recs[39].line), 49);
	svclog_list_release(&l);

	/* since: from the ring, then from the files, with a limit. */
	CHECK_INT(svclog_since(lg, T0 + 48000, 0, &l, err, sizeof(err)), 0);
	CHECK_INT(l.n, 2);
	CHECK_INT(atoi(l.recs[0].line), 48);
	svclog_list_release(&l);
	CHECK_INT(svclog_since(lg, T0 + 15500, 5, &l, err, sizeof(err)), 0);
	CHECK_INT(l.n, 5);
	CHECK_INT(atoi(l.recs[0].line), 16);
	CHECK_INT(l.recs[0].ts_ms, T0 + 16000);
	svclog_list_release(&l);
	CHECK_INT(svclog_since(lg, 0, 0, &l, err, sizeof(err)), 0);
	CHECK_INT(l.n, 40);
	svclog_list_release(&l);
	svclog_free(lg);

	/* A restarted agent appends to the files and reads their history. */
	lg = mklog(loop, &o);
	put100(lg, 50, T0 + 50000);
	CHECK_INT(svclog_tail(lg, 5, &l, err, sizeof(err)), 0);
	CHECK_INT(l.n, 5);
	CHECK_INT(atoi(l.recs[0].line), 46);
	CHECK_INT(atoi(l.recs[4].line), 50);
	svclog_list_release(&l);
	svclog_free(lg);
	loop_free(loop);
}

TEST(svclog_unwritable_file_is_an_error)
{
	struct loop *loop = mkloop();
	char err[256];
	struct svclog_opts o = {.path = "no/such/dir/svc.log"};
	CHECK(svclog_new(loop, &o, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "open 'no/such/dir/svc.log'"));
	struct svclog_opts o2 = {.path = NULL};
	CHECK(svclog_new(loop, &o2, err, sizeof(err)) == NULL);
	loop_free(loop);
}

struct fol {
	struct svclog *lg;
	long long id;
	int calls, errors;
	int drain; /* take everything in the callback */
	int next;  /* expected next line number */
	int bad;
	unsigned long long bytes, marked;
	int unfollow_after;
};

static void take(struct fol *f)
{
	struct svclog_rec r;
	int rc;
	while ((rc = svclog_follow_next(f->lg, f->id, &r)) == 1) {
		if (r.stream == SVCLOG_MARK) {
			unsigned long long n = strtoull(r.line, NULL, 10);
			if (!strstr(r.line, " bytes dropped") || n == 0)
				f->bad++;
			f->marked += n;
			continue;
		}
		f->bytes += r.len;
		if (r.stream == SVCLOG_STDERR) {
			f->bad += strcmp(r.line, "bye") != 0;
			continue;
		}
		int v = -1;
		if (sscanf(r.line, "line %d", &v) != 1 || (f->drain && v != f->next))
			f->bad++;
		f->next = v + 1;
	}
	if (rc < 0)
		f->bad++;
}

static void on_follow(struct loop *loop, long long id, void *arg, int mask)
{
	struct fol *f = arg;
	if (id != f->id)
		f->bad++;
	if (mask & LOOP_ERROR) {
		f->errors++;
		return;
	}
	f->calls++;
	if (f->drain)
		take(f);
	if (f->unfollow_after && f->calls == f->unfollow_after)
		svclog_unfollow(f->lg, f->id);
}

struct child {
	int done;
	int status;
};

static void on_exit_(struct loop *loop, long long id, void *arg, int mask)
{
	struct child *c = arg;
	c->done = 1;
	c->status = mask;
}

#define NLINES 20000

TEST(svclog_real_child_many_lines_with_followers)
{
	struct loop *loop = mkloop();
	struct svclog_opts o = {.path = "svc.log", .max_file = 64 << 10, .keep = 20};
	struct svclog *lg = mklog(loop, &o);
	struct fol fast = {.lg = lg, .drain = 1}, slow = {.lg = lg}, drop = {.lg = lg};
	fast.id = svclog_follow(lg, 0, 0, 0, on_follow, &fast);
	slow.id = svclog_follow(lg, 0, 4096, 0, on_follow, &slow);
	drop.id = svclog_follow(lg, 0, 4096, SVCLOG_FOLLOW_DROP, on_follow, &drop);
	CHECK(fast.id > 0 && slow.id > fast.id && drop.id > slow.id);

	const char *argv[] = {"sh", "-c",
			      "i=0; while [ $i -lt 20000 ]; do echo line $i; i=$((i+1)); done; "
			      "echo bye >&2",
			      NULL};
	const char *envp[] = {"PATH=/usr/bin:/bin", NULL};
	struct spawn_opts so = {.argv = argv, .envp = envp, .out = SPAWN_PIPE, .err = SPAWN_PIPE};
	struct spawn_proc p;
	char err[256];
	CHECK(spawn_start(&so, &p, err, sizeof(err)) == 0);
	CHECK_INT(svclog_attach(lg, p.out_fd, SVCLOG_STDOUT), 0);
	CHECK_INT(svclog_attach(lg, p.err_fd, SVCLOG_STDERR), 0);
	CHECK_INT(svclog_open_pipes(lg), 2);
	struct child c = {0, 0};
	CHECK_INT(loop_child_add(loop, p.pid, on_exit_, &c), 0);
	for (int i = 0; i < 200000 && (!c.done || svclog_open_pipes(lg) > 0); i++)
		CHECK(loop_run_once(loop, 5000) >= 0);
	CHECK(c.done && WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
	CHECK_INT(svclog_open_pipes(lg), 0);

	/* The fast follower saw every line, in order. */
	CHECK_INT(fast.bad, 0);
	CHECK_INT(fast.next, NLINES);
	CHECK(fast.calls >= 1);
	/* The slow one never read: its queue stayed bounded, and reading now
	 * gives a drop marker, then the newest lines; nothing is unaccounted. */
	CHECK(svclog_follow_queued(lg, slow.id) <= 8192);
	CHECK_INT(slow.calls, 1);
	take(&slow);
	CHECK_INT(slow.bad, 0);
	CHECK(slow.marked > 0);
	CHECK_INT(slow.next, NLINES);
	CHECK_INT(slow.bytes + slow.marked, fast.bytes);
	/* The dropping follower was removed once, with LOOP_ERROR. */
	CHECK_INT(drop.errors, 1);
	struct svclog_rec r;
	CHECK_INT(svclog_follow_next(lg, drop.id, &r), -1);

	/* Every line is in the files, in order, with the stderr line. */
	struct svclog_list l = SVCLOG_LIST_INIT;
	CHECK_INT(svclog_since(lg, 0, 0, &l, err, sizeof(err)), 0);
	CHECK_INT(l.n, NLINES + 1);
	int out = 0, bad = 0;
	for (size_t i = 0; i < l.n; i++) {
		if (l.recs[i].stream == SVCLOG_STDERR) {
			bad += strcmp(l.recs[i].line, "bye") != 0;
			continue;
		}
		char want[32];
		snprintf(want, sizeof(want), "line %d", out++);
		bad += strcmp(l.recs[i].line, want) != 0;
	}
	CHECK_INT(bad, 0);
	CHECK_INT(out, NLINES);
	svclog_list_release(&l);
	CHECK_INT(svclog_tail(lg, 1, &l, err, sizeof(err)), 0);
	CHECK_INT(l.n, 1);
	CHECK(!strcmp(l.recs[0].line, "bye") || !strcmp(l.recs[0].line, "line 19999"));
	svclog_list_release(&l);
	CHECK(fsize("svc.log.1") > 0);
	svclog_free(lg);
	loop_free(loop);
}

TEST(svclog_follower_backlog_and_unfollow_in_callback)
{
	struct loop *loop = mkloop();
	struct svclog_opts o = {.path = "svc.log"};
	struct svclog *lg = mklog(loop, &o);
	char line[32];
	for (int i = 0; i < 10; i++) {
		snprintf(line, sizeof(line), "line %d\n", i);
		feeds(lg, SVCLOG_STDOUT, line, T0);
	}
	struct fol f = {.lg = lg, .drain = 1, .next = 7, .unfollow_after = 2};
	f.id = svclog_follow(lg, 3, 0, 0, on_follow, &f);
	/* Primed with the newest 3; taken without a callback. */
	CHECK_INT(f.calls, 0);
	take(&f);
	CHECK_INT(f.next, 10);
	CHECK_INT(f.bad, 0);
	feeds(lg, SVCLOG_STDOUT, "line 10\nline 11\n", T0);
	CHECK_INT(f.calls, 1);
	CHECK_INT(f.next, 12);
	feeds(lg, SVCLOG_STDOUT, "line 12\n", T0);
	CHECK_INT(f.calls, 2);
	/* Unfollowed by its own callback: no more calls, id unknown. */
	feeds(lg, SVCLOG_STDOUT, "line 13\n", T0);
	CHECK_INT(f.calls, 2);
	struct svclog_rec r;
	CHECK_INT(svclog_follow_next(lg, f.id, &r), -1);
	CHECK_INT(svclog_follow_queued(lg, f.id), 0);
	svclog_unfollow(lg, f.id);
	svclog_unfollow(lg, 12345);
	/* A follower left undrained is not called again until it drains. */
	struct fol g = {.lg = lg};
	g.id = svclog_follow(lg, 0, 0, 0, on_follow, &g);
	feeds(lg, SVCLOG_STDOUT, "line 14\n", T0);
	feeds(lg, SVCLOG_STDOUT, "line 15\n", T0);
	CHECK_INT(g.calls, 1);
	take(&g);
	CHECK_INT(g.next, 16);
	feeds(lg, SVCLOG_STDOUT, "line 16\n", T0);
	CHECK_INT(g.calls, 2);
	CHECK_INT(g.bad, 0);
	/* Freed with a live follower: no leak, no call. */
	svclog_free(lg);
	CHECK_INT(g.calls, 2);
	loop_free(loop);
}

TEST(svclog_attach_rejects_bad_stream)
{
	struct loop *loop = mkloop();
	struct svclog_opts o = {.path = "svc.log"};
	struct svclog *lg = mklog(loop, &o);
	int fds[2];
	CHECK(pipe(fds) == 0);
	CHECK_INT(svclog_attach(lg, fds[0], 7), -1);
	CHECK_INT(errno, EINVAL);
	/* yes | head: a pipe closed by the writer ends in a final flush. */
	CHECK_INT(svclog_attach(lg, fds[0], SVCLOG_STDERR), 0);
	CHECK(write(fds[1], "y\ny\npartial", 11) == 11);
	close(fds[1]);
	for (int i = 0; i < 100 && svclog_open_pipes(lg); i++)
		CHECK(loop_run_once(loop, 1000) >= 0);
	CHECK_INT(svclog_open_pipes(lg), 0);
	struct svclog_list l = SVCLOG_LIST_INIT;
	char err[256];
	CHECK_INT(svclog_tail(lg, 10, &l, err, sizeof(err)), 0);
	CHECK_INT(l.n, 3);
	CHECK_STR(l.recs[2].line, "partial");
	CHECK_INT(l.recs[2].stream, SVCLOG_STDERR);
	svclog_list_release(&l);
	svclog_free(lg);
	loop_free(loop);
}

TEST(svclog_history_in_rotated_files_only)
{
	/* The agent restarted right after a rotation: PATH is empty, PATH.1
	 * holds the history, which tail still finds. */
	FILE *f = fopen("svc.log.1", "w");
	CHECK(f != NULL);
	fputs("2026-11-18T11:06:40.000Z out old line\nnot a record\n", f);
	fclose(f);
	struct loop *loop = mkloop();
	struct svclog_opts o = {.path = "svc.log"};
	struct svclog *lg = mklog(loop, &o);
	feeds(lg, SVCLOG_STDOUT, "new line\n", T0 + 5);
	struct svclog_list l = SVCLOG_LIST_INIT;
	char err[256];
	CHECK_INT(svclog_tail(lg, 5, &l, err, sizeof(err)), 0);
	CHECK_INT(l.n, 2);
	CHECK_STR(l.recs[0].line, "old line");
	CHECK_INT(l.recs[0].ts_ms, T0);
	CHECK_STR(l.recs[1].line, "new line");
	svclog_list_release(&l);
	CHECK_INT(svclog_since(lg, T0 + 1, 0, &l, err, sizeof(err)), 0);
	CHECK_INT(l.n, 1);
	svclog_list_release(&l);
	svclog_free(lg);
	loop_free(loop);
}

TEST(svclog_cut_marks_the_record_continued)
{
	struct loop *loop = mkloop();
	struct svclog_opts o = {.path = "svc.log"};
	struct svclog *lg = mklog(loop, &o);
	feeds(lg, SVCLOG_STDOUT, "first half", T0);
	svclog_cut(lg, SVCLOG_STDOUT, T0);
	feeds(lg, SVCLOG_STDOUT, " second half\n", T0 + 1);
	svclog_cut(lg, SVCLOG_STDOUT, T0 + 2); /* nothing pending: no record */
	struct svclog_list l = SVCLOG_LIST_INIT;
	char err[256];
	CHECK_INT(svclog_tail(lg, 10, &l, err, sizeof(err)), 0);
	CHECK_INT(l.n, 2);
	CHECK_STR(l.recs[0].line, "first half");
	CHECK_INT(l.recs[0].cont, 1);
	CHECK_STR(l.recs[1].line, " second half");
	CHECK_INT(l.recs[1].cont, 0);
	svclog_list_release(&l);
	struct buf b = BUF_INIT;
	svclog_free(lg);
	slurp("svc.log", &b);
	CHECK(strstr(b.data, " out+ first half\n") != NULL);
	buf_release(&b);
	loop_free(loop);
}

TEST(svclog_parse_since_durations_and_times)
{
	long long v = 0;
	char err[256];
	long long now = 1795000000000LL;
	CHECK_INT(svclog_parse_since("10m", now, &v, err, sizeof(err)), 0);
	CHECK_INT(v, now - 600000);
	CHECK_INT(svclog_parse_since("2h", now, &v, err, sizeof(err)), 0);
	CHECK_INT(v, now - 7200000);
	CHECK_INT(svclog_parse_since("1d", now, &v, err, sizeof(err)), 0);
	CHECK_INT(v, now - 86400000);
	CHECK_INT(svclog_parse_since("1h30m5s", now, &v, err, sizeof(err)), 0);
	CHECK_INT(v, now - 5405000);
	CHECK_INT(svclog_parse_since("0s", now, &v, err, sizeof(err)), 0);
	CHECK_INT(v, now);
	CHECK_INT(svclog_parse_since("2026-11-22T10:00:00Z", now, &v, err, sizeof(err)), 0);
	CHECK_INT(v, 1795341600000LL);
	CHECK_INT(svclog_parse_since("2026-11-22T10:00:00.5Z", now, &v, err, sizeof(err)), 0);
	CHECK_INT(v, 1795341600500LL);
	CHECK_INT(svclog_parse_since("2026-11-22T12:00:00.123456+02:00", now, &v, err, sizeof(err)),
		  0);
	CHECK_INT(v, 1795341600123LL);
	CHECK_INT(svclog_parse_since("2026-11-22T05:00:00-05:00", now, &v, err, sizeof(err)), 0);
	CHECK_INT(v, 1795341600000LL);
	/* what svclog_fmt_ts writes reads back */
	char ts[25];
	svclog_fmt_ts(T0 + 789, ts);
	CHECK_INT(svclog_parse_since(ts, now, &v, err, sizeof(err)), 0);
	CHECK_INT(v, T0 + 789);
	const char *bad[] = {"",
			     "10",
			     "m",
			     "10q",
			     "-5m",
			     "1h 30m",
			     "99999999999d",
			     "2026-11-22",
			     "2026-11-22T10:00:00",
			     "2026-13-22T10:00:00Z",
			     "2026-02-30T10:00:00Z",
			     "2026-11-22T24:00:00Z",
			     "2026-11-22T10:00:00.Z",
			     "2026-11-22T10:00:00+2:00",
			     "2026-11-22T10:00:00Zjunk",
			     "1969-12-31T23:59:59Z"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		if (svclog_parse_since(bad[i], now, &v, err, sizeof(err)) != -1)
			harness_fail(__FILE__, __LINE__, "'%s' accepted", bad[i]);
		CHECK(strstr(err, "is neither a duration") != NULL);
	}
}
