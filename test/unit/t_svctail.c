#include "svctail.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "harness.h"
#include "loop.h"
#include "svclog.h"

static struct loop *mkloop(void)
{
	char err[256];
	struct loop *l = loop_new(0, err, sizeof(err));
	if (!l)
		harness_fail(__FILE__, __LINE__, "loop_new: %s", err);
	return l;
}

static struct svclog *mklog(struct loop *loop)
{
	char err[256];
	struct svclog_opts o = {.path = "service.log"};
	struct svclog *lg = svclog_new(loop, &o, err, sizeof(err));
	if (!lg)
		harness_fail(__FILE__, __LINE__, "svclog_new: %s", err);
	return lg;
}

static struct svctail *mktail(struct loop *loop, struct svclog *lg, int no_punch)
{
	char err[256];
	struct svctail_opts o = {.path = "raw.log", .log = lg, .no_watch = 1, .no_punch = no_punch};
	struct svctail *t = svctail_new(loop, &o, err, sizeof(err));
	if (!t)
		harness_fail(__FILE__, __LINE__, "svctail_new: %s", err);
	return t;
}

static int writer(void)
{
	int fd = open("raw.log", O_WRONLY | O_CREAT | O_APPEND, 0640);
	if (fd < 0)
		harness_fail(__FILE__, __LINE__, "open: %s", strerror(errno));
	return fd;
}

static void put(int fd, const char *s)
{
	size_t n = strlen(s);
	if (write(fd, s, n) != (ssize_t)n)
		harness_fail(__FILE__, __LINE__, "write: %s", strerror(errno));
}

/* Every record's line of service.log (as written on disk), joined with
 * "|"; continued records joined without one. */
static void lines(struct buf *out)
{
	struct buf b = BUF_INIT;
	char err[256];
	buf_reset(out);
	if (buf_read_file(&b, "service.log", 1 << 26, err, sizeof(err)) < 0)
		harness_fail(__FILE__, __LINE__, "%s", err);
	const char *p = b.data, *end = b.data + b.len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			harness_fail(__FILE__, __LINE__, "unfinished record in service.log");
		struct svclog_rec r;
		if (svclog_parse_line(p, (size_t)(nl - p), &r) < 0)
			harness_fail(__FILE__, __LINE__, "bad record '%.*s'", (int)(nl - p), p);
		buf_add(out, r.line, r.len);
		if (!r.cont)
			buf_putc(out, '|');
		p = nl + 1;
	}
	buf_putc(out, 0);
	out->len--;
	buf_release(&b);
}

TEST(svctail_off_format_round_trips_and_rejects_corruption)
{
	char line[SVCTAIL_OFF_LEN + 1];
	unsigned long long off = 0, ino = 0;
	svctail_fmt_off(1234567, 987654321ULL, line);
	CHECK_INT(strlen(line), SVCTAIL_OFF_LEN);
	CHECK_INT(svctail_parse_off(line, SVCTAIL_OFF_LEN, &off, &ino), 0);
	CHECK_INT(off, 1234567);
	CHECK_INT(ino, 987654321LL);
	svctail_fmt_off(~0ULL, ~0ULL, line);
	CHECK_INT(svctail_parse_off(line, SVCTAIL_OFF_LEN, &off, &ino), 0);
	CHECK(off == ~0ULL && ino == ~0ULL);
	/* every single-byte change is caught */
	svctail_fmt_off(4096, 77, line);
	for (int i = 0; i < SVCTAIL_OFF_LEN; i++) {
		char c[SVCTAIL_OFF_LEN + 1];
		memcpy(c, line, sizeof(c));
		c[i] = c[i] == '1' ? '2' : '1';
		CHECK_INT(svctail_parse_off(c, SVCTAIL_OFF_LEN, &off, &ino), -1);
	}
	CHECK_INT(svctail_parse_off(line, SVCTAIL_OFF_LEN - 1, &off, &ino), -1);
	CHECK_INT(svctail_parse_off("", 0, &off, &ino), -1);
	/* an offset past 2^64 in its 20 digits */
	char big[] = "off1 99999999999999999999 00000000000000000001 00000000\n";
	CHECK_INT(svctail_parse_off(big, strlen(big), &off, &ino), -1);
}

TEST(svctail_feeds_complete_lines_and_resumes_exactly)
{
	struct loop *loop = mkloop();
	struct svclog *lg = mklog(loop);
	int w = writer();
	put(w, "one\ntwo\nthr");
	struct svctail *t = mktail(loop, lg, 1);
	CHECK_INT(svctail_poll(t, 0), 11);
	CHECK_INT(svctail_offset(t), 8);
	struct buf b = BUF_INIT;
	lines(&b);
	CHECK_STR(b.data, "one|two|");
	/* the agent goes away (as after kill -9: nothing more is called) */
	svctail_free(t);
	put(w, "ee\nfour\n");
	t = mktail(loop, lg, 1);
	CHECK_INT(svctail_offset(t), 8);
	svctail_poll(t, 0);
	lines(&b);
	CHECK_STR(b.data, "one|two|three|four|");
	CHECK_INT(svctail_offset(t), 19);
	/* finishing records the unfinished line */
	put(w, "five");
	svctail_poll(t, 0);
	lines(&b);
	CHECK_STR(b.data, "one|two|three|four|");
	CHECK_INT(svctail_finish(t), 0);
	lines(&b);
	CHECK_STR(b.data, "one|two|three|four|five|");
	CHECK_INT(svctail_offset(t), 23);
	svctail_free(t);
	buf_release(&b);
	close(w);
	svclog_free(lg);
	loop_free(loop);
}

TEST(svctail_bounded_read_per_call)
{
	struct loop *loop = mkloop();
	struct svclog *lg = mklog(loop);
	int w = writer();
	for (int i = 0; i < 2000; i++)
		put(w, "0123456789012345678901234567890123456789012345678901234567890123456789\n");
	struct svctail *t = mktail(loop, lg, 1);
	long long n = svctail_poll(t, 65536);
	CHECK(n >= 65536 && n < 2000 * 71);
	long long rest = svctail_poll(t, 0);
	CHECK_INT(n + rest, 2000 * 71);
	CHECK_INT(svctail_offset(t), 2000 * 71);
	svctail_free(t);
	close(w);
	svclog_free(lg);
	loop_free(loop);
}

TEST(svctail_file_truncated_under_it)
{
	struct loop *loop = mkloop();
	struct svclog *lg = mklog(loop);
	int w = writer();
	put(w, "a long first line\nsecond\n");
	struct svctail *t = mktail(loop, lg, 1);
	svctail_poll(t, 0);
	CHECK(ftruncate(w, 0) == 0);
	put(w, "new\n");
	svctail_poll(t, 0);
	struct buf b = BUF_INIT;
	lines(&b);
	CHECK_STR(b.data, "a long first line|second|new|");
	CHECK_INT(svctail_offset(t), 4);
	svctail_free(t);
	buf_release(&b);
	close(w);
	svclog_free(lg);
	loop_free(loop);
}

static void put_off(const char *s, size_t n)
{
	int fd = open("raw.log.off", O_WRONLY | O_CREAT | O_TRUNC, 0640);
	CHECK(fd >= 0);
	CHECK(write(fd, s, n) == (ssize_t)n);
	close(fd);
}

TEST(svctail_offset_beyond_end_or_other_inode_starts_at_zero)
{
	struct loop *loop = mkloop();
	struct svclog *lg = mklog(loop);
	int w = writer();
	put(w, "x\ny\n");
	struct stat st;
	CHECK(fstat(w, &st) == 0);
	char line[SVCTAIL_OFF_LEN + 1];
	svctail_fmt_off(1000000, (unsigned long long)st.st_ino, line);
	put_off(line, SVCTAIL_OFF_LEN);
	struct svctail *t = mktail(loop, lg, 1);
	CHECK_INT(svctail_offset(t), 0);
	svctail_poll(t, 0);
	svctail_free(t);
	/* a saved offset of another inode: this file is new */
	svctail_fmt_off(2, (unsigned long long)st.st_ino + 1, line);
	put_off(line, SVCTAIL_OFF_LEN);
	t = mktail(loop, lg, 1);
	CHECK_INT(svctail_offset(t), 0);
	svctail_poll(t, 0);
	struct buf b = BUF_INIT;
	lines(&b);
	CHECK_STR(b.data, "x|y|x|y|");
	/* the offset file now names this inode */
	struct buf o = BUF_INIT;
	char err[128];
	CHECK(buf_read_file(&o, "raw.log.off", 4096, err, sizeof(err)) == 0);
	unsigned long long off, ino;
	CHECK_INT(svctail_parse_off(o.data, o.len, &off, &ino), 0);
	CHECK_INT(off, 4);
	CHECK(ino == (unsigned long long)st.st_ino);
	svctail_free(t);
	buf_release(&b);
	buf_release(&o);
	close(w);
	svclog_free(lg);
	loop_free(loop);
}

TEST(svctail_corrupt_offset_file_without_holes_reads_from_start)
{
	struct loop *loop = mkloop();
	struct svclog *lg = mklog(loop);
	int w = writer();
	put(w, "p\nq\n");
	put_off("garbage\x01\xff", 9);
	struct svctail *t = mktail(loop, lg, 1);
	CHECK_INT(svctail_offset(t), 0);
	svctail_poll(t, 0);
	struct buf b = BUF_INIT;
	lines(&b);
	CHECK_STR(b.data, "p|q|");
	svctail_free(t);
	buf_release(&b);
	close(w);
	svclog_free(lg);
	loop_free(loop);
}

/* Whether this filesystem frees blocks on PUNCH_HOLE. */
static int can_punch(void)
{
	int fd = open("probe", O_RDWR | O_CREAT | O_TRUNC, 0600);
	char z[65536] = {1};
	int ok = fd >= 0 && write(fd, z, sizeof(z)) == (ssize_t)sizeof(z) && fsync(fd) == 0 &&
		 fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 65536) == 0;
	if (fd >= 0)
		close(fd);
	unlink("probe");
	return ok;
}

TEST(svctail_frees_consumed_blocks_and_survives_a_corrupt_offset)
{
	struct loop *loop = mkloop();
	struct svclog *lg = mklog(loop);
	int w = writer();
	char line[101];
	memset(line, 'z', 99);
	line[99] = '\n';
	line[100] = 0;
	for (int i = 0; i < 4000; i++) /* 400,000 bytes */
		put(w, line);
	put(w, "last\n");
	struct svctail *t = mktail(loop, lg, 0);
	svctail_poll(t, 0);
	CHECK_INT(svctail_offset(t), 400005);
	struct stat st;
	CHECK(fstat(w, &st) == 0);
	CHECK_INT(st.st_size, 400005);
	if (!can_punch()) {
		/* documented fallback: nothing freed, nothing lost */
		CHECK_INT(svctail_freed(t), 0);
		svctail_free(t);
		close(w);
		svclog_free(lg);
		loop_free(loop);
		return;
	}
	CHECK(svctail_punching(t));
	CHECK(svctail_freed(t) >= 300000);
	CHECK(svctail_freed(t) <= 400005);
	CHECK(st.st_blocks * 512 < 200000);
	svctail_free(t);
	/* a corrupt offset file: resume after the freed part, at a line
	 * start, not in the zeros of the hole */
	put_off("off1 xx", 7);
	t = mktail(loop, lg, 0);
	CHECK(svctail_offset(t) >= 300000);
	CHECK(svctail_offset(t) <= 400000);
	CHECK_INT(svctail_offset(t) % 100, 0);
	svctail_poll(t, 0);
	struct buf b = BUF_INIT;
	lines(&b);
	CHECK(memchr(b.data, 0, b.len) == NULL);
	CHECK(b.len >= 5 && !strcmp(b.data + b.len - 5, "last|"));
	svctail_free(t);
	buf_release(&b);
	close(w);
	svclog_free(lg);
	loop_free(loop);
}

TEST(svctail_huge_line_is_cut_into_continued_records)
{
	struct loop *loop = mkloop();
	struct svclog *lg = mklog(loop);
	int w = writer();
	struct buf big = BUF_INIT;
	for (int i = 0; i < 300000; i++)
		buf_putc(&big, 'a' + i % 26);
	put(w, big.data);
	struct svctail *t = mktail(loop, lg, 1);
	svctail_poll(t, 0);
	/* cut at 64 KiB steps; the rest waits for its "\n" */
	CHECK_INT(svctail_offset(t), 4 * 65536);
	put(w, "\nnext\n");
	svctail_poll(t, 0);
	struct buf b = BUF_INIT;
	lines(&b);
	buf_puts(&big, "|next|");
	CHECK_INT(b.len, big.len);
	CHECK(memcmp(b.data, big.data, big.len) == 0);
	svctail_free(t);
	buf_release(&b);
	buf_release(&big);
	close(w);
	svclog_free(lg);
	loop_free(loop);
}

TEST(svctail_file_removed_then_replaced)
{
	struct loop *loop = mkloop();
	struct svclog *lg = mklog(loop);
	int w = writer();
	put(w, "before\n");
	struct svctail *t = mktail(loop, lg, 1);
	svctail_poll(t, 0);
	CHECK(unlink("raw.log") == 0);
	/* the writer still has it open: still followed */
	put(w, "after removal\nhalf");
	svctail_poll(t, 0);
	struct buf b = BUF_INIT;
	lines(&b);
	CHECK_STR(b.data, "before|after removal|");
	/* a new file at the path: the old one is finished first */
	int w2 = writer();
	put(w2, "new file\n");
	svctail_poll(t, 0);
	lines(&b);
	CHECK_STR(b.data, "before|after removal|half|new file|");
	CHECK_INT(svctail_offset(t), 9);
	svctail_free(t);
	buf_release(&b);
	close(w);
	close(w2);
	svclog_free(lg);
	loop_free(loop);
}

TEST(svctail_missing_file_is_picked_up_later)
{
	struct loop *loop = mkloop();
	struct svclog *lg = mklog(loop);
	struct svctail *t = mktail(loop, lg, 1);
	CHECK_INT(svctail_poll(t, 0), 0);
	int w = writer();
	put(w, "hello\n");
	CHECK_INT(svctail_poll(t, 0), 6);
	struct buf b = BUF_INIT;
	lines(&b);
	CHECK_STR(b.data, "hello|");
	svctail_free(t);
	buf_release(&b);
	close(w);
	svclog_free(lg);
	loop_free(loop);
}

TEST(svctail_offset_file_unwritable_is_an_error)
{
	struct loop *loop = mkloop();
	struct svclog *lg = mklog(loop);
	CHECK(mkdir("raw.log.off", 0700) == 0);
	char err[256] = "";
	struct svctail_opts o = {.path = "raw.log", .log = lg, .no_watch = 1};
	CHECK(svctail_new(loop, &o, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "raw.log.off") != NULL);
	struct svctail_opts none = {.path = "raw.log"};
	CHECK(svctail_new(loop, &none, err, sizeof(err)) == NULL);
	svclog_free(lg);
	loop_free(loop);
}

static void on_rec(struct loop *loop, long long id, void *arg, int mask)
{
	(void)loop;
	(void)id;
	(void)mask;
	(*(int *)arg)++;
}

TEST(svctail_on_the_loop_wakes_on_writes)
{
	struct loop *loop = mkloop();
	struct svclog *lg = mklog(loop);
	int w = writer();
	put(w, "early\n");
	char err[256];
	struct svctail_opts o = {.path = "raw.log", .log = lg, .poll_ms = 600000};
	struct svctail *t = svctail_new(loop, &o, err, sizeof(err));
	CHECK(t != NULL);
	int calls = 0;
	long long id = svclog_follow(lg, 0, 0, 0, on_rec, &calls);
	for (int i = 0; i < 50 && svctail_offset(t) < 6; i++)
		loop_run_once(loop, 100);
	CHECK_INT(svctail_offset(t), 6);
	put(w, "late\n");
	/* inotify, not the 10 min timer, brings it */
	for (int i = 0; i < 50 && svctail_offset(t) < 11; i++)
		loop_run_once(loop, 100);
	CHECK_INT(svctail_offset(t), 11);
	struct svclog_rec r;
	CHECK_INT(svclog_follow_next(lg, id, &r), 1);
	CHECK(r.len == 5 && !memcmp(r.line, "early", 5));
	CHECK_INT(svclog_follow_next(lg, id, &r), 1);
	CHECK(r.len == 4 && !memcmp(r.line, "late", 4));
	CHECK(calls >= 1);
	svctail_free(t);
	close(w);
	svclog_free(lg);
	loop_free(loop);
}
