/* deploys: deployment records of base, their per-service queue and logs,
 * in LMDB (DESIGN.md sections 5 and 6).
 *
 * Databases (open them with the store, see DEPLOYS_DBS):
 *   deploys       cluster "/" service "/" u64 seq (big-endian) -> JSON
 *                 record ({"v":1,...}, struct deploys_rec): a service's
 *                 history in order, newest last, so "latest N" is the
 *                 first N of a reverse prefix scan
 *   deploy_ids    deployment id -> the record's key in deploys
 *   deploy_queue  cluster "/" service "/" u64 seq -> id: the deployments
 *                 of a service that have not ended (queued or running),
 *                 oldest first
 *   deploy_logs   id "/" u64 offset -> raw log bytes starting at that
 *                 offset (chunks of at most DEPLOYS_LOG_CHUNK bytes; raw,
 *                 not JSON, because a build log is arbitrary bytes)
 *   deploy_seq    cluster "/" service "/" -> u64 counter of seq numbers
 *
 * Ids: "d-" + 12 lowercase hex digits (48 random bits, checked unique).
 * They are not sortable on purpose: order lives in the per-service seq
 * (1, 2, 3... per service, shown to users as "#3"), and an id says nothing
 * about when or how many deployments were made.
 *
 * Status is a state machine; the table (deploys_status_allowed) is:
 *
 *   queued  -> running | cancelled
 *   running -> done | error | cancelled
 *   done, error, cancelled: final
 *
 * Per service, deployments run one at a time in submission order: a
 * deployment may start (queued -> running) only when no other deployment
 * of its service runs and it is the oldest queued one. So the running one,
 * if any, is always the first entry of the service's queue, and
 * deploys_next() is the one to start when it ends. A refused transition
 * is an error with a reason but leaves the transaction usable.
 *
 * Records are immutable history once ended: progress (stage, pid, runtime
 * version, revision, release, port) may change only while queued or
 * running; only the "release kept" flag (the agent pruned a release
 * directory, or not) may change later.
 *
 * Log: appended in chunks while the deployment runs (and after, for late
 * chunks), kept after it ends. At most DEPLOYS_LOG_MAX bytes are kept per
 * deployment; the first append that goes beyond keeps what fits, then adds
 * DEPLOYS_LOG_TRUNCATED once, and later appends are dropped. A reader
 * follows the log by reading from the offset the previous read ended at.
 *
 * Every function works inside the caller's transaction. Times are unix
 * milliseconds given by the caller. Cluster and service names are 1 to 63
 * characters of [A-Za-z0-9._-]; an instance is 1 to 63 printable ASCII
 * characters without '/'.
 */
#ifndef DPLOYR_DEPLOYS_H
#define DPLOYR_DEPLOYS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "crypt.h"
#include "store.h"

#define DEPLOYS_DBS		"deploys", "deploy_ids", "deploy_queue", "deploy_logs", "deploy_seq"
#define DEPLOYS_ID_LEN		14 /* "d-" + 12 hex */
#define DEPLOYS_ID_MAX		16
#define DEPLOYS_NAME_MAX	64 /* cluster, service, instance: 63 and the NUL */
#define DEPLOYS_BLUEPRINT_MAX	((size_t)256 << 10)
#define DEPLOYS_TITLE_MAX	200
#define DEPLOYS_DESCRIPTION_MAX 4096
#define DEPLOYS_LOG_MAX		((uint64_t)4 << 20)
#define DEPLOYS_LOG_CHUNK	16384
#define DEPLOYS_LOG_TRUNCATED	"\n[dployr: log truncated at 4 MiB]\n"
#define DEPLOYS_LIST_DEFAULT	50
#define DEPLOYS_LIST_MAX	1000

enum deploys_status {
	DEPLOYS_QUEUED,
	DEPLOYS_RUNNING,
	DEPLOYS_DONE,
	DEPLOYS_ERROR,
	DEPLOYS_CANCELLED,
};
#define DEPLOYS_STATUS_COUNT 5

/* A deployment. Filled by deploys_get & co; release it with
 * deploys_rec_release(). Fixed-size strings are NUL-terminated; "" and 0
 * mean "not known yet". */
struct deploys_rec {
	char id[DEPLOYS_ID_MAX];
	char cluster[DEPLOYS_NAME_MAX];
	char service[DEPLOYS_NAME_MAX];
	char instance[DEPLOYS_NAME_MAX];
	uint64_t seq;	   /* per service, from 1 */
	char *blueprint;   /* owned: the blueprint's YAML text */
	char *title;	   /* owned, may be "" */
	char *description; /* owned, may be "" */
	enum deploys_status status;
	char stage[32];
	char reason[256]; /* why it ended in error or was cancelled */
	int64_t created_ms, started_ms, finished_ms;
	int64_t pid;
	char runtime_version[64];
	char revision[72]; /* source revision (a git commit) */
	char release[64];  /* release id on the instance */
	int port;
	int release_kept;		  /* the release directory still exists */
	int cancel_requested;		  /* running, and asked to stop */
	char rollback_of[DEPLOYS_ID_MAX]; /* target of a rollback, else "" */
};

/* What deploys_add needs; title, description and rollback_of may be NULL. */
struct deploys_new {
	const char *cluster, *service, *instance;
	const char *blueprint;
	const char *title, *description;
	const char *rollback_of;
};

/* Progress reported while a deployment is queued or running: NULL strings
 * and zero numbers leave a field unchanged. Setting release marks it kept. */
struct deploys_progress {
	const char *stage, *runtime_version, *revision, *release;
	int64_t pid;
	int port;
};

/* Free what rec owns (it stays a valid, empty record). Accepts NULL. */
void deploys_rec_release(struct deploys_rec *rec);
/* Release and free an array from deploys_list. Accepts NULL. */
void deploys_list_free(struct deploys_rec *recs, size_t n);

/* "queued", "running", "done", "error", "cancelled" (or "unknown"). */
const char *deploys_status_name(enum deploys_status s);
/* Name -> status: 0, or -1 for an unknown name. */
int deploys_status_parse(const char *name, enum deploys_status *out);
/* 1 when the state machine allows from -> to, else 0. */
int deploys_status_allowed(enum deploys_status from, enum deploys_status to);
/* 1 for done, error and cancelled. */
int deploys_status_final(enum deploys_status s);

/* 1 when id has the form of a deployment id; 1 when name is a valid
 * cluster or service name. */
int deploys_id_valid(const char *id);
int deploys_name_valid(const char *name);

/* Record a new deployment, queued at the end of its service's queue.
 * Returns 0 (with *out filled when out is not NULL; release it), or -1
 * with every problem of in in err (or the store's reason). */
int deploys_add(struct store_txn *t, struct crypt_rng *rng, const struct deploys_new *in,
		int64_t now_ms, struct deploys_rec *out, char *err, size_t errlen);

/* 0 and *out (release it), STORE_NOTFOUND, or -1. */
int deploys_get(struct store_txn *t, const char *id, struct deploys_rec *out);
/* The deployment seq of a service ("#seq"). */
int deploys_get_seq(struct store_txn *t, const char *cluster, const char *service, uint64_t seq,
		    struct deploys_rec *out);

/* Move deployment id to status to, setting started_ms (running) or
 * finished_ms (final states) to now_ms and, for a final state, reason
 * (may be NULL; cut to fit). Returns 0 (*out, when not NULL, holds the
 * updated record), STORE_NOTFOUND, or -1 with err: a transition the state
 * machine refuses, a start out of turn (another one runs, or an older one
 * is queued) -- these leave t usable -- or a store failure. */
int deploys_set_status(struct store_txn *t, const char *id, enum deploys_status to, int64_t now_ms,
		       const char *reason, struct deploys_rec *out, char *err, size_t errlen);

/* Cancel deployment id: a queued one is cancelled at once (reason
 * "cancelled before it started"); a running one is marked
 * cancel_requested and stays running until the caller, having stopped its
 * work on the instance, sets it cancelled (or done, or error, if it ended
 * first). Returns 0 with *out (when not NULL) telling which,
 * STORE_NOTFOUND, or -1 with err (it has ended: t stays usable; store). */
int deploys_request_cancel(struct store_txn *t, const char *id, int64_t now_ms,
			   struct deploys_rec *out, char *err, size_t errlen);

/* The running deployment of a service: 0 and *out, STORE_NOTFOUND, or -1. */
int deploys_active(struct store_txn *t, const char *cluster, const char *service,
		   struct deploys_rec *out);
/* The deployment to start next: the oldest queued one when none runs.
 * 0 and *out, STORE_NOTFOUND (one runs, or none is queued), or -1. */
int deploys_next(struct store_txn *t, const char *cluster, const char *service,
		 struct deploys_rec *out);
/* deploys_next, then start it (running, started_ms = now_ms). */
int deploys_start_next(struct store_txn *t, const char *cluster, const char *service,
		       int64_t now_ms, struct deploys_rec *out);
/* Ids of every queued or running deployment of a service, oldest first
 * (at most max written to ids); returns how many there are, or -1. */
int deploys_pending(struct store_txn *t, const char *cluster, const char *service,
		    char (*ids)[DEPLOYS_ID_MAX], size_t max);

/* Record progress (see struct deploys_progress). 0, STORE_NOTFOUND, or -1
 * with err (ended deployment, value too long: t stays usable; store). */
int deploys_set_progress(struct store_txn *t, const char *id, const struct deploys_progress *p,
			 char *err, size_t errlen);
/* Mark the release of a deployment kept (1) or pruned (0). 0,
 * STORE_NOTFOUND, or -1. */
int deploys_set_release_kept(struct store_txn *t, const char *id, int kept);

/* A service's deployments, newest first: those with seq < before_seq
 * (0: from the newest), at most limit (0: DEPLOYS_LIST_DEFAULT; capped at
 * DEPLOYS_LIST_MAX). Returns 0 with *out (free it with deploys_list_free;
 * NULL when none) and *n, or -1. The next page starts before the last
 * one's seq. */
int deploys_list(struct store_txn *t, const char *cluster, const char *service, uint64_t before_seq,
		 size_t limit, struct deploys_rec **out, size_t *n);

/* Append data[0..len) to the log of deployment id (see the top comment
 * for the bound). 0, STORE_NOTFOUND, or -1. */
int deploys_log_append(struct store_txn *t, const char *id, const void *data, size_t len);
/* Append to out at most max bytes (0: DEPLOYS_LOG_CHUNK) of the log of
 * id from offset on, and set *next to the offset after them: the offset of
 * the next read. An offset past the end reads nothing and *next is the
 * end. 0, STORE_NOTFOUND, or -1. */
int deploys_log_read(struct store_txn *t, const char *id, uint64_t offset, size_t max,
		     struct buf *out, uint64_t *next);
/* Bytes in the log of id (the marker included) and whether it was
 * truncated (truncated may be NULL). 0, STORE_NOTFOUND, or -1. */
int deploys_log_size(struct store_txn *t, const char *id, uint64_t *size, int *truncated);

/* Rollback target for a service. With id NULL: the newest done
 * deployment older than the current one (the newest done one, which is
 * what serves), with a kept release that differs from the current
 * release. With an id: that deployment, if it can be a target (it exists,
 * belongs to the service, is done, and its release is kept). Returns 0 and
 * *out, STORE_NOTFOUND (id NULL: no candidate), or -1 with err saying why
 * id cannot be a target (t stays usable) or a store failure. */
int deploys_rollback_target(struct store_txn *t, const char *cluster, const char *service,
			    const char *id, struct deploys_rec *out, char *err, size_t errlen);

/* The record as JSON text ({"v":1,...}), and back (0 or -1; release out
 * after either). For the store and tests. */
void deploys_encode(struct buf *out, const struct deploys_rec *rec);
int deploys_decode(const void *data, size_t len, struct deploys_rec *out);

#endif
