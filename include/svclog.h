/* svclog: capture a service's stdout and stderr.
 *
 *   struct svclog_opts o = { .path = "/var/lib/dployr/logs/web.log" };
 *   struct svclog *lg = svclog_new(loop, &o, err, sizeof(err));
 *   svclog_attach(lg, proc.out_fd, SVCLOG_STDOUT);   (takes the fds)
 *   svclog_attach(lg, proc.err_fd, SVCLOG_STDERR);
 *
 * The pipes are read on the loop as fast as data comes, so a service never
 * blocks on its output because of dployr. Bytes are cut into records, one
 * per line: a timestamp (ms since the epoch, when the line was complete), the
 * stream, and the line without its "\n" (and without one "\r" before it, so
 * CRLF output reads as LF). A line longer than max_line is split into
 * several records, all but the last marked `cont`; nothing is lost. Other
 * bytes (NUL, invalid UTF-8, lone "\r") are kept as they are; a split never
 * cuts a UTF-8 sequence that is otherwise valid.
 *
 * Records go to three places:
 * - the log file, one text line each:
 *       2026-11-22T01:25:00.123Z out listening on :3000
 *   (stream "out" or "err", followed by "+" when the record is continued by
 *   the next one). Before a write would take the file past max_file bytes it
 *   is rotated: PATH.(keep-1) -> PATH.keep ... PATH -> PATH.1, a fresh PATH.
 *   Files already there are appended to (an agent restart keeps history).
 *   A failing write (disk full) loses those records from the file only; the
 *   count is in svclog_lost().
 * - a memory ring of the newest records, at most ring_bytes;
 * - each live follower's queue, at most its own max bytes (see below).
 *
 * No global state. Not thread-safe (nothing in dployr has threads).
 */
#ifndef DPLOYR_SVCLOG_H
#define DPLOYR_SVCLOG_H

#include <stddef.h>

#include "loop.h"

enum svclog_stream {
	SVCLOG_STDOUT = 1,
	SVCLOG_STDERR = 2,
	/* Only from svclog_follow_next: "N bytes dropped" for a slow follower. */
	SVCLOG_MARK = 3,
};

/* Zero fields take the defaults in brackets. */
struct svclog_opts {
	const char *path;  /* the log file (required); its directory must exist */
	size_t max_file;   /* rotate before a file passes this [10 MiB] */
	int keep;	   /* rotated files kept, PATH.1 .. PATH.keep [5]; -1: none */
	size_t max_line;   /* longer lines are split [16 KiB] */
	size_t ring_bytes; /* memory tail, line bytes + 16 per record [256 KiB] */
};

/* A record. line points into memory owned by whatever returned it. */
struct svclog_rec {
	long long ts_ms;
	int stream; /* enum svclog_stream */
	int cont;   /* 1: the line continues in the next record */
	const char *line;
	size_t len;
};

/* A list of records (svclog_tail, svclog_since); release with
 * svclog_list_release. Each recs[i].line is a NUL-terminated copy owned by
 * the list (a line may hold NUL bytes too: use len). */
struct svclog_list {
	struct svclog_rec *recs;
	size_t n;
	size_t cap;
};
#define SVCLOG_LIST_INIT                                                                           \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}
void svclog_list_release(struct svclog_list *l);

/* Opens (creates, 0640) the log file. NULL with a reason in err. The loop is
 * borrowed and must outlive the svclog. */
struct svclog *svclog_new(struct loop *loop, const struct svclog_opts *o, char *err, size_t errlen);
/* Closes attached pipes (removing their watchers), writes any unfinished
 * line as a record, closes the file and drops followers without calling
 * them. Not from inside a follower callback. Accepts NULL. */
void svclog_free(struct svclog *lg);

/* Read fd (a pipe's read end; made non-blocking) on the loop as `stream`.
 * The svclog owns fd from here on and closes it at end of file or error,
 * writing the unfinished last line as a record. */
int svclog_attach(struct svclog *lg, int fd, int stream);
/* Number of attached fds not yet at end of file. */
int svclog_open_pipes(const struct svclog *lg);

/* Take n bytes of `stream` output as if read at ts_ms (wall clock ms). The
 * pipe reader calls this; so can a caller with output of its own. */
void svclog_feed(struct svclog *lg, int stream, const void *data, size_t n, long long ts_ms);
/* Cut the unfinished line of stream (if any) into a record now. */
void svclog_flush(struct svclog *lg, int stream, long long ts_ms);
/* Like svclog_flush, but the record is marked continued: the line goes on
 * in the next bytes fed (a caller cutting an over-long line). */
void svclog_cut(struct svclog *lg, int stream, long long ts_ms);

/* Records lost by failing file writes. */
unsigned long long svclog_lost(const struct svclog *lg);
/* Bytes currently in the log file (PATH). */
unsigned long long svclog_file_size(const struct svclog *lg);

/* The newest n records (oldest first), appended to out: from the ring when
 * it holds n, else from the files (PATH.keep .. PATH; each file is read
 * whole, so memory use is bounded by max_file). Lines of the files that do
 * not parse as records are skipped. -1 with a reason in err if a file
 * cannot be read. */
int svclog_tail(struct svclog *lg, size_t n, struct svclog_list *out, char *err, size_t errlen);
/* Records with ts_ms >= since (oldest first, at most max of them; 0: no
 * limit), from the ring when its oldest record is older than since, else
 * from the files. */
int svclog_since(struct svclog *lg, long long since, size_t max, struct svclog_list *out, char *err,
		 size_t errlen);

/* Live followers.
 *
 * svclog_follow registers a follower with a queue of at most max_queue bytes
 * (line bytes + 16 per record; 0: 64 KiB; at least 8 KiB), primed with
 * the newest `backlog` records of the ring, and returns its id (> 0). When
 * records arrive in an empty queue, cb(loop, id, arg, LOOP_READ) is called
 * (after every 256 bytes of input at most, so a follower that drains its
 * queue in the callback loses nothing); the follower then takes records with
 * svclog_follow_next until it returns 0, and is called again only after
 * that. It may take them later (when its own peer is writable): the queue
 * holds them meanwhile.
 *
 * A queue that would pass max_queue drops its oldest records; the next
 * svclog_follow_next then first returns an SVCLOG_MARK record whose line is
 * "N bytes dropped" (N: line bytes). With SVCLOG_FOLLOW_DROP the follower is
 * dropped instead: it is removed and cb(loop, id, arg, LOOP_ERROR) is
 * called once. Either way the service and the agent never wait for a
 * follower.
 *
 * Callbacks may call svclog_follow, svclog_follow_next and svclog_unfollow
 * (of any follower) but not svclog_free.
 */
enum { SVCLOG_FOLLOW_DROP = 1 };
long long svclog_follow(struct svclog *lg, size_t backlog, size_t max_queue, int flags, loop_fn cb,
			void *arg);
/* No-op for an unknown id. */
void svclog_unfollow(struct svclog *lg, long long id);
/* 1 with the oldest queued record in *rec (its line stays valid until the
 * next call for this follower), 0 when the queue is empty, -1 for an
 * unknown id. */
int svclog_follow_next(struct svclog *lg, long long id, struct svclog_rec *rec);
/* Bytes queued for the follower (0 for an unknown id). */
size_t svclog_follow_queued(const struct svclog *lg, long long id);

/* "2026-11-22T01:25:00.123Z" (24 characters + NUL) for ms since the epoch. */
void svclog_fmt_ts(long long ts_ms, char out[25]);
/* Parse one file line (without "\n") into rec (line points into s). 0, or -1
 * if it is not a record. */
int svclog_parse_line(const char *s, size_t n, struct svclog_rec *rec);
/* A --since value: a duration before now_ms ("90s", "10m", "2h", "1d",
 * "1h30m": numbers with units s, m, h, d) or an RFC 3339 time
 * ("2026-11-22T10:00:00Z", with an optional fraction and a "Z" or
 * "+HH:MM"/"-HH:MM" offset). 0 with *out (ms since the epoch), or -1 with
 * a reason in err. */
int svclog_parse_since(const char *s, long long now_ms, long long *out, char *err, size_t errlen);

#endif
