/* svctail: follow a raw output file that a detached process appends to,
 * into an svclog.
 *
 *   struct svctail_opts o = { .path = "DATA/services/web/logs/d-42.log", .log = lg };
 *   struct svctail *t = svctail_new(loop, &o, err, sizeof(err));
 *   ...                              records reach lg as the service writes
 *   svctail_finish(t); svctail_free(t);   switching to another release
 *
 * A service's stdout and stderr go straight to one file (it outlives the
 * agent, so no pipe to the agent). The tailer reads what is appended, on the
 * loop: woken by inotify (IN_MODIFY) on the file, and by a fallback timer
 * every poll_ms (when inotify is unavailable or out of watches, and to see
 * a file replaced). Every complete line read is fed to the svclog as
 * stdout (both streams share the file) with the read time as its
 * timestamp. An unfinished last line stays in the file until its "\n"
 * comes (or svctail_finish); a line longer than max_line is cut into
 * records marked continued (svclog_cut).
 *
 * Resuming: the consumed offset (the end of the last line fed) is kept in
 * PATH.off, written with pwrite right after each feed, so an agent killed
 * with -9 and started again resumes exactly there: nothing lost and
 * nothing twice (the one window is between the svclog's write and that
 * pwrite, a few microseconds). PATH.off holds one fixed-size line
 * (svctail_fmt_off) with the file's inode: a different inode (the file was
 * replaced) or an offset beyond the end (truncated) starts at 0; a corrupt
 * PATH.off starts at the next line after the first byte not yet freed
 * (SEEK_DATA, see below): nothing is lost, and what was consumed but not
 * freed (the last 64 KiB at least; all of it where nothing is freed) is
 * fed again. (A new file that reuses the old inode number is taken for
 * the old one; the pipeline never replaces a release's file.)
 *
 * Freeing: whole blocks before the consumed offset (but for its last 64
 * KiB, which pipeline.h may still show as a release's last output) are
 * given back with fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
 * once punch_min bytes more can go (after PATH.off is written, so a
 * restart never reads a hole). The file keeps its size (the writer's O_APPEND offset is
 * unchanged); its disk use stays bounded. Where the filesystem cannot punch
 * (EOPNOTSUPP: some network and older filesystems) or the file cannot be
 * opened for writing, nothing is freed: the file then grows until the
 * release is pruned (pipeline.h PRUNE removes logs/ID.log); one warning is
 * logged and svctail_punching() says 0.
 *
 * Hostile cases: a file truncated under the tailer starts again at 0; a
 * file removed is still read through the open descriptor (its writer may
 * still append); a new file at the path (another inode) is switched to
 * after the old one is read to its end; a missing file is looked for on
 * every poll.
 *
 * Reads are bounded per loop turn (max_read) so one chatty service cannot
 * starve the loop; the rest is read on the next turn. No global state.
 */
#ifndef DPLOYR_SVCTAIL_H
#define DPLOYR_SVCTAIL_H

#include <stddef.h>

#include "loop.h"
#include "svclog.h"

/* Zero fields take the defaults in brackets. */
struct svctail_opts {
	const char *path;   /* the raw file (required) */
	struct svclog *log; /* where records go (required, borrowed) */
	long long poll_ms;  /* fallback check interval [1000] */
	size_t max_line;    /* a line is cut after this many bytes [64 KiB] */
	size_t max_read;    /* bytes read per loop turn [256 KiB] */
	size_t punch_min;   /* free consumed blocks by at least this much [64 KiB] */
	int no_punch;	    /* 1: never free consumed bytes */
	int no_watch;	    /* 1: no inotify and no timer (drive with svctail_poll) */
};

/* Opens PATH.off (creating it, 0640) and PATH if it exists, and starts
 * watching. NULL with a reason in err (no path or log, PATH.off cannot be
 * opened). loop and log are borrowed and must outlive the tailer. */
struct svctail *svctail_new(struct loop *loop, const struct svctail_opts *o, char *err,
			    size_t errlen);
/* Stops watching and closes the files; an unfinished last line stays in
 * the file for the next tailer. Accepts NULL. */
void svctail_free(struct svctail *t);

/* Read what is there now, at most max_read bytes (0: no limit). Returns
 * the bytes read, or -1 (a read error, logged). */
long long svctail_poll(struct svctail *t, size_t max_read);
/* Read to the end and record the unfinished last line: the file is done
 * (its release no longer serves). 0, or -1 on a read error. */
int svctail_finish(struct svctail *t);

const char *svctail_path(const struct svctail *t);
/* The consumed offset (what PATH.off says). */
unsigned long long svctail_offset(const struct svctail *t);
/* Bytes given back with PUNCH_HOLE so far (by this tailer). */
unsigned long long svctail_freed(const struct svctail *t);
/* 1 while freeing consumed bytes works here, 0 after it failed or when
 * disabled. */
int svctail_punching(const struct svctail *t);

/* PATH.off's content: "off1 OFFSET INODE CHECK\n", OFFSET and INODE with
 * 20 digits, CHECK 8 hex digits (FNV-1a of what precedes it), 56 bytes. */
#define SVCTAIL_OFF_LEN 56
void svctail_fmt_off(unsigned long long off, unsigned long long ino, char out[SVCTAIL_OFF_LEN + 1]);
/* 0 with *off and *ino, or -1 if s (n bytes) is not exactly such a line. */
int svctail_parse_off(const char *s, size_t n, unsigned long long *off, unsigned long long *ino);

#endif
