#include "svclog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "xalloc.h"

#define SVCLOG_READ_CHUNK 65536
/* Reads per readiness callback: bounded so that one chatty service cannot
 * starve the rest of the loop (the fd is level-triggered: the loop comes
 * back to it). */
#define SVCLOG_READS_PER_EVENT 8
#define SVCLOG_MIN_READ_LIMIT  (1u << 20)
/* Input between follower callbacks, and the smallest follower queue: a
 * slice makes at most SLICE records of RHDR bytes plus SLICE line bytes. */
#define SVCLOG_SLICE	 256
#define SVCLOG_MIN_QUEUE (8u << 10)

/* A record inside a queue: this header, then len line bytes. */
struct rhdr {
	long long ts;
	uint32_t len;
	uint8_t stream;
	uint8_t cont;
};
#define RHDR sizeof(struct rhdr)

/* A FIFO of records in one buffer; head is the offset of the oldest. */
struct recq {
	struct buf b;
	size_t head;
	size_t nrec;
	size_t bound;
};

struct follower {
	long long id;
	int flags;
	loop_fn cb;
	void *arg;
	struct recq q;
	unsigned long long dropped; /* line bytes dropped since the last mark */
	int armed;		    /* call cb when the next record arrives */
	int notify;		    /* records arrived while armed */
	int dead;		    /* overflowed with SVCLOG_FOLLOW_DROP */
	struct buf cur;		    /* the line last returned */
};

struct pipe {
	int fd;
	int stream;
};

struct svclog {
	struct loop *loop;
	char *path;
	size_t max_file;
	int keep;
	size_t max_line;
	int fd;
	unsigned long long size;
	struct buf out; /* formatted records not yet written */
	size_t out_nrec;
	unsigned long long lost;
	struct buf pend[2]; /* unfinished line per stream */
	struct recq ring;
	int ring_complete; /* the ring holds every record the files hold */
	struct pipe *pipes;
	size_t npipes, cap_pipes;
	int open_pipes;
	struct follower **fl;
	size_t nfl, cap_fl;
	long long next_id;
	int depth; /* > 0 while follower callbacks run */
	char *rbuf;
};


/* --- record queues ---------------------------------------------------- */

static size_t recq_bytes(const struct recq *q)
{
	return q->b.len - q->head;
}

static void recq_get(const struct recq *q, size_t off, struct svclog_rec *rec)
{
	struct rhdr h;
	memcpy(&h, q->b.data + off, RHDR);
	rec->ts_ms = h.ts;
	rec->stream = h.stream;
	rec->cont = h.cont;
	rec->len = h.len;
	rec->line = q->b.data + off + RHDR;
}

/* Remove the oldest record; returns its line length. */
static size_t recq_drop(struct recq *q)
{
	struct svclog_rec r;
	recq_get(q, q->head, &r);
	q->head += RHDR + r.len;
	q->nrec--;
	if (q->nrec == 0) {
		buf_reset(&q->b);
		q->head = 0;
	}
	return r.len;
}

/* Append rec, first dropping the oldest records while the queue would pass
 * its bound (a record larger than the bound is kept alone). Returns the line
 * bytes dropped. */
static size_t recq_push(struct recq *q, const struct svclog_rec *rec)
{
	size_t need = RHDR + rec->len, dropped = 0;
	while (q->nrec && recq_bytes(q) + need > q->bound)
		dropped += recq_drop(q);
	if (q->head && q->head >= q->b.len / 2) {
		memmove(q->b.data, q->b.data + q->head, q->b.len - q->head);
		buf_truncate(&q->b, q->b.len - q->head);
		q->head = 0;
	}
	struct rhdr h = {.ts = rec->ts_ms,
			 .len = (uint32_t)rec->len,
			 .stream = (uint8_t)rec->stream,
			 .cont = (uint8_t)rec->cont};
	buf_add(&q->b, &h, RHDR);
	buf_add(&q->b, rec->line, rec->len);
	q->nrec++;
	return dropped;
}

/* --- file ------------------------------------------------------------- */

static void put_num(char *p, unsigned v, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
}

void svclog_fmt_ts(long long ts_ms, char out[25])
{
	time_t t = (time_t)(ts_ms / 1000);
	int ms = (int)(ts_ms % 1000);
	if (ms < 0) {
		ms += 1000;
		t--;
	}
	struct tm tm;
	if (!gmtime_r(&t, &tm))
		memset(&tm, 0, sizeof(tm));
	memcpy(out, "0000-00-00T00:00:00.000Z", 25);
	put_num(out, (unsigned)(tm.tm_year + 1900) % 10000, 4);
	put_num(out + 5, (unsigned)tm.tm_mon + 1, 2);
	put_num(out + 8, (unsigned)tm.tm_mday, 2);
	put_num(out + 11, (unsigned)tm.tm_hour, 2);
	put_num(out + 14, (unsigned)tm.tm_min, 2);
	put_num(out + 17, (unsigned)tm.tm_sec, 2);
	put_num(out + 20, (unsigned)ms, 3);
}

static int digits(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int svclog_parse_line(const char *s, size_t n, struct svclog_rec *rec)
{
	if (n < 28 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
	    s[19] != '.' || s[23] != 'Z' || s[24] != ' ')
		return -1;
	int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
	int h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
	int ms = digits(s + 20, 3);
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
	    mi > 59 || se < 0 || se > 60 || ms < 0)
		return -1;
	struct tm tm = {.tm_year = y - 1900,
			.tm_mon = mo - 1,
			.tm_mday = d,
			.tm_hour = h,
			.tm_min = mi,
			.tm_sec = se};
	const char *p = s + 25, *end = s + n;
	if (end - p < 4)
		return -1;
	if (!memcmp(p, "out", 3))
		rec->stream = SVCLOG_STDOUT;
	else if (!memcmp(p, "err", 3))
		rec->stream = SVCLOG_STDERR;
	else
		return -1;
	p += 3;
	rec->cont = 0;
	if (*p == '+') {
		rec->cont = 1;
		p++;
	}
	if (p >= end || *p != ' ')
		return -1;
	p++;
	rec->ts_ms = (long long)timegm(&tm) * 1000 + ms;
	rec->line = p;
	rec->len = (size_t)(end - p);
	return 0;
}

/* "1h30m" -> ms; -1 if s is not such a duration. */
static long long parse_duration(const char *s)
{
	long long total = 0;
	if (!*s)
		return -1;
	while (*s) {
		long long v = 0;
		int nd = 0;
		for (; *s >= '0' && *s <= '9'; s++, nd++) {
			if (v > 1000000000LL)
				return -1;
			v = v * 10 + (*s - '0');
		}
		long long unit = *s == 's'   ? 1000
				 : *s == 'm' ? 60000
				 : *s == 'h' ? 3600000
				 : *s == 'd' ? 86400000
					     : 0;
		if (!nd || !unit)
			return -1;
		s++;
		total += v * unit;
		if (total > 100LL * 365 * 86400000)
			return -1;
	}
	return total;
}

/* RFC 3339 -> ms since the epoch; -1 if s is not one. */
static long long parse_rfc3339(const char *s)
{
	size_t n = strlen(s);
	if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
	    s[13] != ':' || s[16] != ':')
		return -1;
	int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
	int h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h < 0 || h > 23 ||
	    mi < 0 || mi > 59 || se < 0 || se > 60)
		return -1;
	const char *p = s + 19;
	long long ms = 0;
	if (*p == '.') {
		p++;
		int nd = 0;
		for (; *p >= '0' && *p <= '9'; p++, nd++)
			if (nd < 3)
				ms = ms * 10 + (*p - '0');
		if (!nd)
			return -1;
		for (; nd < 3; nd++)
			ms *= 10;
	}
	long long off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
		int oh = digits(p + 1, 2), om = digits(p + 4, 2);
		if (oh < 0 || oh > 23 || om < 0 || om > 59)
			return -1;
		off = ((long long)oh * 60 + om) * 60000 * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return -1;
	}
	if (*p)
		return -1;
	struct tm tm = {.tm_year = y - 1900,
			.tm_mon = mo - 1,
			.tm_mday = d,
			.tm_hour = h,
			.tm_min = mi,
			.tm_sec = se};
	return (long long)timegm(&tm) * 1000 + ms - off;
}

int svclog_parse_since(const char *s, long long now_ms, long long *out, char *err, size_t errlen)
{
	long long v = parse_duration(s);
	if (v >= 0) {
		*out = now_ms - v;
		return 0;
	}
	v = parse_rfc3339(s);
	if (v >= 0) {
		*out = v;
		return 0;
	}
	snprintf(err, errlen,
		 "'%.64s' is neither a duration (10m, 2h, 1d, 1h30m) nor an RFC 3339 time "
		 "(2026-11-22T10:00:00Z)",
		 s);
	return -1;
}

static int open_file(struct svclog *lg, int trunc, char *err, size_t errlen)
{
	int fd =
	    open(lg->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | (trunc ? O_TRUNC : 0), 0640);
	if (fd < 0) {
		if (err)
			snprintf(err, errlen, "open '%s': %s", lg->path, strerror(errno));
		return -1;
	}
	struct stat st;
	lg->size = fstat(fd, &st) == 0 ? (unsigned long long)st.st_size : 0;
	lg->fd = fd;
	return 0;
}

static void flush_out(struct svclog *lg)
{
	if (lg->out.len == 0)
		return;
	if (lg->fd < 0 && open_file(lg, 0, NULL, 0) < 0)
		goto lost;
	size_t off = 0;
	while (off < lg->out.len) {
		ssize_t w = write(lg->fd, lg->out.data + off, lg->out.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (lg->lost == 0)
				log_warn("svclog", "write failed, records lost", "path", lg->path,
					 "error", strerror(w < 0 ? errno : EIO), NULL);
			lg->size += off;
			goto lost;
		}
		off += (size_t)w;
	}
	lg->size += off;
	buf_reset(&lg->out);
	lg->out_nrec = 0;
	return;
lost:
	lg->lost += lg->out_nrec;
	buf_reset(&lg->out);
	lg->out_nrec = 0;
}

static char *rotated_name(const struct svclog *lg, int i)
{
	return xasprintf("%s.%d", lg->path, i);
}

static void rotate(struct svclog *lg)
{
	flush_out(lg);
	if (lg->keep > 0) {
		for (int i = lg->keep - 1; i >= 1; i--) {
			char *a = rotated_name(lg, i), *b = rotated_name(lg, i + 1);
			if (rename(a, b) < 0 && errno != ENOENT)
				log_warn("svclog", "rotate failed", "path", a, "error",
					 strerror(errno), NULL);
			free(a);
			free(b);
		}
		char *one = rotated_name(lg, 1);
		if (rename(lg->path, one) < 0 && errno != ENOENT)
			log_warn("svclog", "rotate failed", "path", lg->path, "error",
				 strerror(errno), NULL);
		free(one);
	}
	if (lg->fd >= 0)
		close(lg->fd);
	lg->fd = -1;
	lg->size = 0;
	char err[256];
	if (open_file(lg, 1, err, sizeof(err)) < 0)
		log_warn("svclog", "reopen failed", "error", err, NULL);
	lg->ring_complete = 0;
}

/* --- records ------------------------------------------------------------ */

static void emit(struct svclog *lg, int stream, const char *line, size_t len, int cont,
		 long long ts)
{
	size_t reclen = 24 + 1 + 3 + (cont ? 1 : 0) + 1 + len + 1;
	if (lg->size + lg->out.len + reclen > lg->max_file && lg->size + lg->out.len > 0)
		rotate(lg);
	char tsbuf[25];
	svclog_fmt_ts(ts, tsbuf);
	buf_add(&lg->out, tsbuf, 24);
	buf_puts(&lg->out, stream == SVCLOG_STDERR ? " err" : " out");
	buf_puts(&lg->out, cont ? "+ " : " ");
	buf_add(&lg->out, line, len);
	buf_putc(&lg->out, '\n');
	lg->out_nrec++;

	struct svclog_rec rec = {
	    .ts_ms = ts, .stream = stream, .cont = cont, .line = line, .len = len};
	if (recq_push(&lg->ring, &rec))
		lg->ring_complete = 0;
	for (size_t i = 0; i < lg->nfl; i++) {
		struct follower *f = lg->fl[i];
		if (!f || f->dead)
			continue;
		if ((f->flags & SVCLOG_FOLLOW_DROP) && f->q.nrec &&
		    recq_bytes(&f->q) + RHDR + len > f->q.bound) {
			f->dead = 1;
			continue;
		}
		f->dropped += recq_push(&f->q, &rec);
		if (f->armed) {
			f->armed = 0;
			f->notify = 1;
		}
	}
}

/* Where to split a line of n > max bytes: at max, moved back (at most 3
 * bytes) to the start of a UTF-8 sequence so that one is not cut. */
static size_t cut_at(const char *s, size_t n, size_t max)
{
	(void)n; /* n > max: s[max] exists */
	size_t c = max;
	for (int k = 0; k < 3 && c > 0 && ((unsigned char)s[c] & 0xC0) == 0x80; k++)
		c--;
	if (c < max && c > 0 && (unsigned char)s[c] >= 0xC0)
		return c;
	return max;
}

static void split_long(struct svclog *lg, int stream, struct buf *p, size_t keep_extra,
		       long long ts)
{
	size_t off = 0;
	while (p->len - off > lg->max_line + keep_extra) {
		size_t c = cut_at(p->data + off, p->len - off, lg->max_line);
		emit(lg, stream, p->data + off, c, 1, ts);
		off += c;
	}
	buf_consume(p, off);
}

static void notify(struct svclog *lg)
{
	lg->depth++;
	for (size_t i = 0; i < lg->nfl; i++) {
		struct follower *f = lg->fl[i];
		if (!f)
			continue;
		long long id = f->id;
		loop_fn cb = f->cb;
		void *arg = f->arg;
		if (f->dead) {
			lg->fl[i] = NULL;
			buf_release(&f->q.b);
			buf_release(&f->cur);
			free(f);
			if (cb)
				cb(lg->loop, id, arg, LOOP_ERROR);
		} else if (f->notify) {
			f->notify = 0;
			if (cb)
				cb(lg->loop, id, arg, LOOP_READ);
		}
	}
	if (--lg->depth == 0) {
		size_t j = 0;
		for (size_t i = 0; i < lg->nfl; i++)
			if (lg->fl[i])
				lg->fl[j++] = lg->fl[i];
		lg->nfl = j;
	}
}

static void feed(struct svclog *lg, int stream, const char *d, size_t n, long long ts)
{
	struct buf *p = &lg->pend[stream - 1];
	while (n > 0) {
		const char *nl = memchr(d, '\n', n);
		size_t take = nl ? (size_t)(nl - d) : n;
		buf_add(p, d, take);
		if (nl) {
			if (p->len && p->data[p->len - 1] == '\r')
				buf_truncate(p, p->len - 1);
			split_long(lg, stream, p, 0, ts);
			emit(lg, stream, p->data, p->len, 0, ts);
			buf_reset(p);
			take++;
		} else {
			/* One byte more may stay: a final "\r" still to be
			 * stripped when its "\n" comes. */
			split_long(lg, stream, p, 1, ts);
		}
		d += take;
		n -= take;
	}
}

void svclog_feed(struct svclog *lg, int stream, const void *data, size_t n, long long ts_ms)
{
	if (stream != SVCLOG_STDOUT && stream != SVCLOG_STDERR)
		return;
	/* Followers are called every SVCLOG_SLICE bytes of input, so one big
	 * read cannot overflow a queue that is drained in its callback. */
	const char *d = data;
	while (n > 0) {
		size_t c = n < SVCLOG_SLICE ? n : SVCLOG_SLICE;
		feed(lg, stream, d, c, ts_ms);
		d += c;
		n -= c;
		notify(lg);
	}
	flush_out(lg);
}

static void flush_pend(struct svclog *lg, int stream, int cont, long long ts_ms)
{
	if (stream != SVCLOG_STDOUT && stream != SVCLOG_STDERR)
		return;
	struct buf *p = &lg->pend[stream - 1];
	if (p->len == 0)
		return;
	split_long(lg, stream, p, 0, ts_ms);
	emit(lg, stream, p->data, p->len, cont, ts_ms);
	buf_reset(p);
	flush_out(lg);
	notify(lg);
}

void svclog_flush(struct svclog *lg, int stream, long long ts_ms)
{
	flush_pend(lg, stream, 0, ts_ms);
}

void svclog_cut(struct svclog *lg, int stream, long long ts_ms)
{
	flush_pend(lg, stream, 1, ts_ms);
}

/* --- pipes ---------------------------------------------------------------- */

static void close_pipe(struct svclog *lg, size_t i)
{
	loop_del_fd(lg->loop, lg->pipes[i].fd);
	close(lg->pipes[i].fd);
	int stream = lg->pipes[i].stream;
	lg->pipes[i] = lg->pipes[--lg->npipes];
	lg->open_pipes--;
	svclog_flush(lg, stream, loop_wall_ms());
}

static void on_pipe(struct loop *loop, long long id, void *arg, int mask)
{
	struct svclog *lg = arg;
	int fd = (int)id;
	size_t i;
	for (i = 0; i < lg->npipes && lg->pipes[i].fd != fd; i++)
		;
	if (i == lg->npipes)
		return;
	int stream = lg->pipes[i].stream;
	for (int k = 0; k < SVCLOG_READS_PER_EVENT; k++) {
		ssize_t n = read(fd, lg->rbuf, SVCLOG_READ_CHUNK);
		if (n > 0) {
			svclog_feed(lg, stream, lg->rbuf, (size_t)n, loop_wall_ms());
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		close_pipe(lg, i);
		return;
	}
}

int svclog_attach(struct svclog *lg, int fd, int stream)
{
	if (stream != SVCLOG_STDOUT && stream != SVCLOG_STDERR) {
		errno = EINVAL;
		return -1;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	if (loop_add_fd(lg->loop, fd, LOOP_READ, on_pipe, lg) < 0)
		return -1;
	XGROW(lg->pipes, lg->cap_pipes, lg->npipes + 1);
	lg->pipes[lg->npipes++] = (struct pipe){fd, stream};
	lg->open_pipes++;
	return 0;
}

int svclog_open_pipes(const struct svclog *lg)
{
	return lg->open_pipes;
}

/* --- lifecycle ------------------------------------------------------------ */

struct svclog *svclog_new(struct loop *loop, const struct svclog_opts *o, char *err, size_t errlen)
{
	if (!o->path || !*o->path) {
		snprintf(err, errlen, "svclog: no log file path");
		return NULL;
	}
	struct svclog *lg = xcalloc(1, sizeof(*lg));
	lg->loop = loop;
	lg->path = xstrdup(o->path);
	lg->max_file = o->max_file ? o->max_file : 10u << 20;
	lg->keep = o->keep ? (o->keep < 0 ? 0 : o->keep) : 5;
	lg->max_line = o->max_line ? o->max_line : 16u << 10;
	/* A record must fit in a file. */
	if (lg->max_line + 64 > lg->max_file)
		lg->max_line = lg->max_file > 128 ? lg->max_file - 64 : 64;
	if (lg->max_file < 128)
		lg->max_file = 128;
	buf_init(&lg->out);
	buf_init(&lg->pend[0]);
	buf_init(&lg->pend[1]);
	buf_init(&lg->ring.b);
	lg->ring.bound = o->ring_bytes ? o->ring_bytes : 256u << 10;
	lg->fd = -1;
	lg->next_id = 1;
	if (open_file(lg, 0, err, errlen) < 0) {
		free(lg->path);
		free(lg);
		return NULL;
	}
	/* The ring holds all history only if there is none on disk yet. */
	char *one = rotated_name(lg, 1);
	lg->ring_complete = lg->size == 0 && access(one, F_OK) < 0;
	free(one);
	lg->rbuf = xmalloc(SVCLOG_READ_CHUNK);
	return lg;
}

static void follower_free(struct follower *f)
{
	if (!f)
		return;
	buf_release(&f->q.b);
	buf_release(&f->cur);
	free(f);
}

void svclog_free(struct svclog *lg)
{
	if (!lg)
		return;
	for (size_t i = 0; i < lg->nfl; i++)
		follower_free(lg->fl[i]);
	lg->nfl = 0;
	while (lg->npipes) {
		loop_del_fd(lg->loop, lg->pipes[0].fd);
		close(lg->pipes[0].fd);
		lg->pipes[0] = lg->pipes[--lg->npipes];
	}
	long long ts = loop_wall_ms();
	for (int s = SVCLOG_STDOUT; s <= SVCLOG_STDERR; s++)
		svclog_flush(lg, s, ts);
	flush_out(lg);
	if (lg->fd >= 0)
		close(lg->fd);
	free(lg->fl);
	free(lg->pipes);
	buf_release(&lg->out);
	buf_release(&lg->pend[0]);
	buf_release(&lg->pend[1]);
	buf_release(&lg->ring.b);
	free(lg->rbuf);
	free(lg->path);
	free(lg);
}

unsigned long long svclog_lost(const struct svclog *lg)
{
	return lg->lost;
}

unsigned long long svclog_file_size(const struct svclog *lg)
{
	return lg->size;
}

/* --- reading back ---------------------------------------------------------- */

void svclog_list_release(struct svclog_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free((char *)l->recs[i].line);
	free(l->recs);
	l->recs = NULL;
	l->n = l->cap = 0;
}

static void list_add(struct svclog_list *l, const struct svclog_rec *r)
{
	XGROW(l->recs, l->cap, l->n + 1);
	l->recs[l->n] = *r;
	char *c = xmalloc(r->len + 1);
	memcpy(c, r->line, r->len);
	c[r->len] = 0;
	l->recs[l->n].line = c;
	l->n++;
}

/* Read file i (0: PATH, k: PATH.k) whole into b. 1 if read, 0 if it does
 * not exist, -1 on error. */
static int read_file(const struct svclog *lg, int i, struct buf *b, char *err, size_t errlen)
{
	char *name = i ? rotated_name(lg, i) : xstrdup(lg->path);
	size_t limit =
	    lg->max_file * 2 > SVCLOG_MIN_READ_LIMIT ? lg->max_file * 2 : SVCLOG_MIN_READ_LIMIT;
	int fd = open(name, O_RDONLY | O_CLOEXEC);
	int rc = 1;
	if (fd < 0) {
		rc = errno == ENOENT ? 0 : -1;
		if (rc < 0)
			snprintf(err, errlen, "read '%s': %s", name, strerror(errno));
	} else if (buf_read_fd(b, fd, limit) < 0) {
		snprintf(err, errlen, "read '%s': %s", name,
			 errno == E2BIG ? "file too large" : strerror(errno));
		rc = -1;
	}
	if (fd >= 0)
		close(fd);
	free(name);
	return rc;
}

/* Call fn for each record of the file's text, in order; stops early when
 * fn returns nonzero. Returns the number of records seen. */
static size_t each_line(const struct buf *b, int (*fn)(const struct svclog_rec *, void *),
			void *arg)
{
	size_t count = 0;
	const char *p = b->data, *end = b->data + b->len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break; /* an unfinished last line is not a record yet */
		struct svclog_rec r;
		if (svclog_parse_line(p, (size_t)(nl - p), &r) == 0) {
			count++;
			if (fn && fn(&r, arg))
				break;
		}
		p = nl + 1;
	}
	return count;
}

struct tail_ctx {
	size_t skip;
	struct svclog_list *out;
};

static int tail_add(const struct svclog_rec *r, void *arg)
{
	struct tail_ctx *c = arg;
	if (c->skip) {
		c->skip--;
		return 0;
	}
	list_add(c->out, r);
	return 0;
}

int svclog_tail(struct svclog *lg, size_t n, struct svclog_list *out, char *err, size_t errlen)
{
	if (n == 0)
		return 0;
	if (lg->ring.nrec >= n || lg->ring_complete) {
		size_t skip = lg->ring.nrec > n ? lg->ring.nrec - n : 0;
		for (size_t off = lg->ring.head; off < lg->ring.b.len;) {
			struct svclog_rec r;
			recq_get(&lg->ring, off, &r);
			off += RHDR + r.len;
			if (skip) {
				skip--;
				continue;
			}
			list_add(out, &r);
		}
		return 0;
	}
	flush_out(lg);
	/* Newest file first: count records until n are found; then read the
	 * needed files again, oldest first, skipping what is older. */
	struct buf b = BUF_INIT;
	size_t have = 0, first_skip = 0;
	int first = 0;
	for (int i = 0; i <= lg->keep && have < n; i++) {
		buf_reset(&b);
		int rc = read_file(lg, i, &b, err, errlen);
		if (rc < 0)
			goto fail;
		if (rc == 0)
			continue;
		size_t c = each_line(&b, NULL, NULL);
		first = i;
		first_skip = have + c > n ? have + c - n : 0;
		have += c;
	}
	for (int i = first; i >= 0; i--) {
		buf_reset(&b);
		int rc = read_file(lg, i, &b, err, errlen);
		if (rc < 0)
			goto fail;
		struct tail_ctx c = {i == first ? first_skip : 0, out};
		each_line(&b, tail_add, &c);
	}
	buf_release(&b);
	return 0;
fail:
	buf_release(&b);
	return -1;
}

struct since_ctx {
	long long since;
	size_t max;
	struct svclog_list *out;
};

static int since_add(const struct svclog_rec *r, void *arg)
{
	struct since_ctx *c = arg;
	if (c->max && c->out->n >= c->max)
		return 1;
	if (r->ts_ms >= c->since)
		list_add(c->out, r);
	return 0;
}

int svclog_since(struct svclog *lg, long long since, size_t max, struct svclog_list *out, char *err,
		 size_t errlen)
{
	struct since_ctx c = {since, max ? out->n + max : 0, out};
	struct svclog_rec r;
	if (lg->ring.nrec) {
		recq_get(&lg->ring, lg->ring.head, &r);
		if (r.ts_ms < since || lg->ring_complete) {
			for (size_t off = lg->ring.head; off < lg->ring.b.len;) {
				recq_get(&lg->ring, off, &r);
				off += RHDR + r.len;
				if (since_add(&r, &c))
					break;
			}
			return 0;
		}
	} else if (lg->ring_complete) {
		return 0;
	}
	flush_out(lg);
	struct buf b = BUF_INIT;
	for (int i = lg->keep; i >= 0; i--) {
		buf_reset(&b);
		int rc = read_file(lg, i, &b, err, errlen);
		if (rc < 0) {
			buf_release(&b);
			return -1;
		}
		if (rc > 0)
			each_line(&b, since_add, &c);
		if (c.max && out->n >= c.max)
			break;
	}
	buf_release(&b);
	return 0;
}

/* --- followers ------------------------------------------------------------- */

static struct follower *find(const struct svclog *lg, long long id)
{
	for (size_t i = 0; i < lg->nfl; i++)
		if (lg->fl[i] && lg->fl[i]->id == id && !lg->fl[i]->dead)
			return lg->fl[i];
	return NULL;
}

long long svclog_follow(struct svclog *lg, size_t backlog, size_t max_queue, int flags, loop_fn cb,
			void *arg)
{
	struct follower *f = xcalloc(1, sizeof(*f));
	f->id = lg->next_id++;
	f->flags = flags;
	f->cb = cb;
	f->arg = arg;
	buf_init(&f->q.b);
	buf_init(&f->cur);
	f->q.bound = max_queue ? max_queue : 64u << 10;
	if (f->q.bound < SVCLOG_MIN_QUEUE)
		f->q.bound = SVCLOG_MIN_QUEUE;
	size_t skip = lg->ring.nrec > backlog ? lg->ring.nrec - backlog : 0;
	for (size_t off = lg->ring.head; backlog && off < lg->ring.b.len;) {
		struct svclog_rec r;
		recq_get(&lg->ring, off, &r);
		off += RHDR + r.len;
		if (skip) {
			skip--;
			continue;
		}
		f->dropped += recq_push(&f->q, &r);
	}
	f->armed = f->q.nrec == 0;
	XGROW(lg->fl, lg->cap_fl, lg->nfl + 1);
	lg->fl[lg->nfl++] = f;
	return f->id;
}

void svclog_unfollow(struct svclog *lg, long long id)
{
	for (size_t i = 0; i < lg->nfl; i++) {
		if (lg->fl[i] && lg->fl[i]->id == id) {
			follower_free(lg->fl[i]);
			lg->fl[i] = NULL;
			if (lg->depth == 0)
				lg->fl[i] = lg->fl[--lg->nfl];
			return;
		}
	}
}

int svclog_follow_next(struct svclog *lg, long long id, struct svclog_rec *rec)
{
	struct follower *f = find(lg, id);
	if (!f)
		return -1;
	if (f->dropped) {
		buf_reset(&f->cur);
		buf_printf(&f->cur, "%llu bytes dropped", f->dropped);
		f->dropped = 0;
		rec->stream = SVCLOG_MARK;
		rec->cont = 0;
		rec->ts_ms = loop_wall_ms();
		if (f->q.nrec) {
			struct svclog_rec r;
			recq_get(&f->q, f->q.head, &r);
			rec->ts_ms = r.ts_ms;
		}
		rec->line = f->cur.data;
		rec->len = f->cur.len;
		return 1;
	}
	if (f->q.nrec == 0) {
		f->armed = 1;
		return 0;
	}
	struct svclog_rec r;
	recq_get(&f->q, f->q.head, &r);
	buf_reset(&f->cur);
	buf_add(&f->cur, r.line, r.len);
	*rec = r;
	rec->line = f->cur.data;
	recq_drop(&f->q);
	return 1;
}

size_t svclog_follow_queued(const struct svclog *lg, long long id)
{
	const struct follower *f = find(lg, id);
	return f ? recq_bytes(&f->q) : 0;
}
