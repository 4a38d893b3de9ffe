/* svctail: see svctail.h. */
#include "svctail.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "xalloc.h"

#define MOD   "svctail"
#define CHUNK 65536
/* Never freed: the newest consumed bytes, which the pipeline shows as the
 * tail of a release's output when a (rollback) start fails. */
#define KEEP_TAIL 65536

struct svctail {
	struct loop *loop;
	struct svclog *log;
	char *path;
	char *offpath;
	long long poll_ms;
	size_t max_line, max_read, punch_min;
	int fd;			    /* the raw file, -1 while missing */
	int rw;			    /* fd is open for writing (punching possible) */
	unsigned long long ino;	    /* of fd */
	int offfd;		    /* PATH.off */
	unsigned long long off;	    /* consumed: the end of the last line fed */
	unsigned long long rd;	    /* read up to here: pend holds off..rd */
	unsigned long long punched; /* freed up to here (block aligned) */
	unsigned long long freed;
	unsigned long long blk;
	int punch;
	int in_fd, in_wd; /* inotify, -1 when none */
	long long timer, again;
	struct buf pend;
	char *rbuf;
};


/* --- the offset file ------------------------------------------------------ */

static uint32_t fnv1a(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

void svctail_fmt_off(unsigned long long off, unsigned long long ino, char out[SVCTAIL_OFF_LEN + 1])
{
	snprintf(out, SVCTAIL_OFF_LEN + 1, "off1 %020llu %020llu ", off, ino);
	snprintf(out + 47, SVCTAIL_OFF_LEN + 1 - 47, "%08x\n", (unsigned)fnv1a(out, 46));
}

static int num20(const char *s, unsigned long long *v)
{
	unsigned long long x = 0;
	for (int i = 0; i < 20; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (x > (~0ULL - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

int svctail_parse_off(const char *s, size_t n, unsigned long long *off, unsigned long long *ino)
{
	if (n != SVCTAIL_OFF_LEN || memcmp(s, "off1 ", 5) != 0 || s[25] != ' ' || s[46] != ' ' ||
	    s[55] != '\n')
		return -1;
	unsigned long long o, i;
	if (num20(s + 5, &o) < 0 || num20(s + 26, &i) < 0)
		return -1;
	uint32_t want = 0;
	for (int k = 47; k < 55; k++) {
		char c = s[k];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return -1;
		want = want << 4 | (uint32_t)d;
	}
	if (fnv1a(s, 46) != want)
		return -1;
	*off = o;
	*ino = i;
	return 0;
}

static void save_off(struct svctail *t)
{
	char line[SVCTAIL_OFF_LEN + 1];
	svctail_fmt_off(t->off, t->ino, line);
	ssize_t w;
	do
		w = pwrite(t->offfd, line, SVCTAIL_OFF_LEN, 0);
	while (w < 0 && errno == EINTR);
	if (w != SVCTAIL_OFF_LEN)
		log_warn(MOD, "offset not saved", "path", t->offpath, "error",
			 w < 0 ? strerror(errno) : "short write", NULL);
}

/* --- freeing ---------------------------------------------------------------- */

static void punch(struct svctail *t)
{
	if (!t->punch || t->fd < 0)
		return;
	if (t->off < KEEP_TAIL)
		return;
	unsigned long long end = (t->off - KEEP_TAIL) / t->blk * t->blk;
	if (end <= t->punched || end - t->punched < t->punch_min)
		return;
	if (fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)t->punched,
		      (off_t)(end - t->punched)) < 0) {
		log_warn(MOD,
			 "consumed output cannot be freed here; the file grows until its "
			 "release is pruned",
			 "path", t->path, "error", strerror(errno), NULL);
		t->punch = 0;
		return;
	}
	t->freed += end - t->punched;
	t->punched = end;
}

/* --- reading ------------------------------------------------------------------ */

/* Feed what pend holds up to its last "\n", and over-long lines in
 * max_line cuts; advance off and save it. */
static void consume(struct svctail *t, long long ts)
{
	int moved = 0;
	const char *nl = t->pend.len ? memrchr(t->pend.data, '\n', t->pend.len) : NULL;
	if (nl) {
		size_t n = (size_t)(nl - t->pend.data) + 1;
		svclog_feed(t->log, SVCLOG_STDOUT, t->pend.data, n, ts);
		buf_consume(&t->pend, n);
		t->off += n;
		moved = 1;
	}
	while (t->pend.len >= t->max_line) {
		svclog_feed(t->log, SVCLOG_STDOUT, t->pend.data, t->max_line, ts);
		svclog_cut(t->log, SVCLOG_STDOUT, ts);
		buf_consume(&t->pend, t->max_line);
		t->off += t->max_line;
		moved = 1;
	}
	if (moved) {
		save_off(t);
		punch(t);
	}
}

/* Everything read so far becomes records, the unfinished line too. */
static void flush_all(struct svctail *t, long long ts)
{
	consume(t, ts);
	if (t->pend.len) {
		svclog_feed(t->log, SVCLOG_STDOUT, t->pend.data, t->pend.len, ts);
		svclog_flush(t->log, SVCLOG_STDOUT, ts);
		t->off += t->pend.len;
		buf_reset(&t->pend);
		save_off(t);
	}
}

static void close_file(struct svctail *t)
{
	if (t->in_fd >= 0 && t->in_wd >= 0)
		inotify_rm_watch(t->in_fd, t->in_wd);
	t->in_wd = -1;
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

/* Open PATH if it is there (fd -1 if not), and watch it. */
static void open_file(struct svctail *t)
{
	t->rw = 1;
	t->fd = open(t->path, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (t->fd < 0 && (errno == EACCES || errno == EPERM || errno == EROFS)) {
		t->rw = 0;
		t->fd = open(t->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	}
	if (t->fd < 0)
		return;
	struct stat st;
	if (fstat(t->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_warn(MOD, "not a regular file: not followed", "path", t->path, NULL);
		close(t->fd);
		t->fd = -1;
		return;
	}
	t->ino = (unsigned long long)st.st_ino;
	t->blk = st.st_blksize > 0 ? (unsigned long long)st.st_blksize : 4096;
	if (!t->rw && t->punch) {
		log_warn(MOD, "file not writable: consumed output is not freed", "path", t->path,
			 NULL);
		t->punch = 0;
	}
	if (t->in_fd >= 0)
		t->in_wd = inotify_add_watch(t->in_fd, t->path,
					     IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF);
}

/* Where a tailer with a corrupt offset file starts: after the freed blocks,
 * at the start of the next line. */
static unsigned long long first_unfreed(struct svctail *t)
{
	off_t d = lseek(t->fd, 0, SEEK_DATA);
	if (d <= 0)
		return 0;
	char b[4096];
	ssize_t n = pread(t->fd, b, sizeof(b), d);
	const char *nl = n > 0 ? memchr(b, '\n', (size_t)n) : NULL;
	return (unsigned long long)d + (nl ? (unsigned long long)(nl - b) + 1 : 0);
}

/* At start: where to resume in the open file (see svctail.h). */
static void resume(struct svctail *t, unsigned long long size)
{
	char b[SVCTAIL_OFF_LEN + 8];
	ssize_t n = pread(t->offfd, b, sizeof(b), 0);
	unsigned long long off = 0, ino = 0;
	t->off = 0;
	if (n <= 0) {
		/* none yet: from the start */
	} else if (svctail_parse_off(b, (size_t)n, &off, &ino) < 0) {
		t->off = first_unfreed(t);
		log_warn(MOD, "offset file corrupt, resuming after the freed part", "path",
			 t->offpath, NULL);
	} else if (ino != t->ino) {
		log_info(MOD, "file replaced, reading it from the start", "path", t->path, NULL);
	} else if (off > size) {
		log_warn(MOD, "file shorter than the saved offset, reading it from the start",
			 "path", t->path, NULL);
	} else {
		t->off = off;
	}
	t->rd = t->off;
	t->punched = t->off / t->blk * t->blk;
	save_off(t);
}

/* Read from rd, at most max bytes (0: to the end). Returns bytes read or
 * -1. */
static long long read_some(struct svctail *t, size_t max)
{
	long long total = 0;
	while (t->fd >= 0 && (max == 0 || (size_t)total < max)) {
		ssize_t n = pread(t->fd, t->rbuf, CHUNK, (off_t)t->rd);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_warn(MOD, "read failed", "path", t->path, "error", strerror(errno),
				 NULL);
			return -1;
		}
		if (n == 0)
			break;
		buf_add(&t->pend, t->rbuf, (size_t)n);
		t->rd += (unsigned long long)n;
		total += n;
		consume(t, loop_wall_ms());
	}
	return total;
}

long long svctail_poll(struct svctail *t, size_t max_read)
{
	if (t->fd < 0) {
		open_file(t);
		if (t->fd < 0)
			return 0;
		struct stat st0;
		resume(t, fstat(t->fd, &st0) == 0 ? (unsigned long long)st0.st_size : 0);
	}
	struct stat st, pst;
	if (fstat(t->fd, &st) == 0 && (unsigned long long)st.st_size < t->rd) {
		log_warn(MOD, "file truncated, reading it from the start", "path", t->path, NULL);
		flush_all(t, loop_wall_ms());
		t->off = t->rd = t->punched = 0;
		save_off(t);
	}
	long long n = read_some(t, max_read);
	if (n < 0 || (max_read && (size_t)n >= max_read))
		return n;
	/* At the end of this inode: a new file at the path takes over. */
	if (stat(t->path, &pst) == 0 && (unsigned long long)pst.st_ino != t->ino) {
		flush_all(t, loop_wall_ms());
		log_info(MOD, "file replaced, following the new one", "path", t->path, NULL);
		close_file(t);
		open_file(t);
		t->off = t->rd = t->punched = 0;
		if (t->fd >= 0) {
			save_off(t);
			long long m = read_some(t, max_read ? max_read - (size_t)n : 0);
			n = m < 0 ? -1 : n + m;
		}
	}
	return n;
}

int svctail_finish(struct svctail *t)
{
	long long n = svctail_poll(t, 0);
	flush_all(t, loop_wall_ms());
	return n < 0 ? -1 : 0;
}

/* --- the loop ------------------------------------------------------------------- */

static void again_cb(struct loop *loop, long long id, void *arg, int mask);

static void run(struct svctail *t)
{
	long long n = svctail_poll(t, t->max_read);
	if (n >= (long long)t->max_read && !t->again)
		t->again = loop_timer_add(t->loop, 0, again_cb, t);
}

static void again_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct svctail *t = arg;
	(void)loop;
	(void)id;
	(void)mask;
	t->again = 0;
	run(t);
}

static void timer_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct svctail *t = arg;
	(void)id;
	(void)mask;
	t->timer = loop_timer_add(loop, t->poll_ms, timer_cb, t);
	run(t);
}

static void inotify_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct svctail *t = arg;
	char b[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	(void)loop;
	(void)id;
	(void)mask;
	while (read(t->in_fd, b, sizeof(b)) > 0)
		;
	run(t);
}

/* --- lifecycle -------------------------------------------------------------------- */

struct svctail *svctail_new(struct loop *loop, const struct svctail_opts *o, char *err,
			    size_t errlen)
{
	if (!o->path || !*o->path || !o->log) {
		snprintf(err, errlen, "svctail: a path and a log are required");
		return NULL;
	}
	struct svctail *t = xcalloc(1, sizeof(*t));
	t->loop = loop;
	t->log = o->log;
	t->path = xstrdup(o->path);
	t->offpath = xasprintf("%s.off", o->path);
	t->poll_ms = o->poll_ms > 0 ? o->poll_ms : 1000;
	t->max_line = o->max_line ? o->max_line : 64u << 10;
	t->max_read = o->max_read ? o->max_read : 256u << 10;
	t->punch_min = o->punch_min ? o->punch_min : 64u << 10;
	t->punch = !o->no_punch;
	t->blk = 4096;
	t->fd = t->in_fd = t->in_wd = -1;
	buf_init(&t->pend);
	t->offfd = open(t->offpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (t->offfd < 0) {
		snprintf(err, errlen, "open '%s': %s", t->offpath, strerror(errno));
		free(t->offpath);
		free(t->path);
		free(t);
		return NULL;
	}
	t->rbuf = xmalloc(CHUNK);
	if (!o->no_watch) {
		t->in_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (t->in_fd >= 0 && loop_add_fd(loop, t->in_fd, LOOP_READ, inotify_cb, t) < 0) {
			close(t->in_fd);
			t->in_fd = -1;
		}
		if (t->in_fd < 0)
			log_info(MOD, "no inotify: polling", "path", t->path, "error",
				 strerror(errno), NULL);
	}
	open_file(t);
	if (t->fd >= 0) {
		struct stat st;
		resume(t, fstat(t->fd, &st) == 0 ? (unsigned long long)st.st_size : 0);
	}
	if (!o->no_watch) {
		t->timer = loop_timer_add(loop, t->poll_ms, timer_cb, t);
		t->again = loop_timer_add(loop, 0, again_cb, t);
	}
	return t;
}

void svctail_free(struct svctail *t)
{
	if (!t)
		return;
	if (t->timer)
		loop_timer_cancel(t->loop, t->timer);
	if (t->again)
		loop_timer_cancel(t->loop, t->again);
	close_file(t);
	if (t->in_fd >= 0) {
		loop_del_fd(t->loop, t->in_fd);
		close(t->in_fd);
	}
	close(t->offfd);
	buf_release(&t->pend);
	free(t->rbuf);
	free(t->offpath);
	free(t->path);
	free(t);
}

const char *svctail_path(const struct svctail *t)
{
	return t->path;
}

unsigned long long svctail_offset(const struct svctail *t)
{
	return t->off;
}

unsigned long long svctail_freed(const struct svctail *t)
{
	return t->freed;
}

int svctail_punching(const struct svctail *t)
{
	return t->punch;
}
