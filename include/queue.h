/* queue: the durable per-instance task queue of base, in LMDB.
 *
 * Databases (see QUEUE_DBS):
 *   tasks        task id -> JSON record (struct queue_task), kept after the
 *                task ended so GET /v1/tasks/ID can answer
 *   queue        instance id "/" + u64 (big-endian) -> task id: the tasks
 *                not finished yet, in order of submission
 *   task_output  task id "/" + u64 -> stream byte ('o' stdout, 'e' stderr)
 *                + output bytes, kept up to QUEUE_OUTPUT_MAX per task so a
 *                stream subscriber that comes late misses nothing
 *   queue_meta   counters
 *
 * Life of a task: queue_add writes it (state "queued") before anything is
 * sent. queue_lease picks the tasks to send to a connected agent and marks
 * them leased until now + lease_ms. The agent's task_ack "accepted" makes
 * it "running" (queue_accept). Unaccepted tasks whose lease ran out are
 * leased again by the next queue_lease; after a reconnect the session
 * leases with force, so every unfinished task is re-sent (the agent answers
 * duplicates without running them twice). queue_finish records the result
 * and deletes the queue entry. Times are milliseconds given by the caller
 * (wall clock: leases survive a restart).
 */
#ifndef DPLOYR_QUEUE_H
#define DPLOYR_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "crypt.h"
#include "store.h"

#define QUEUE_DBS	 "tasks", "queue", "task_output", "queue_meta"
#define QUEUE_ID_MAX	 24		   /* "t-" + 16 hex and the NUL */
#define QUEUE_OUTPUT_MAX ((size_t)4 << 20) /* stored output per task */

enum queue_state { QUEUE_QUEUED, QUEUE_RUNNING, QUEUE_DONE, QUEUE_FAILED, QUEUE_CANCELLED };

struct queue_task {
	char id[QUEUE_ID_MAX];
	char instance[24];
	char kind[32];
	char *payload; /* JSON object text, owned (queue_task_release) */
	enum queue_state state;
	int64_t created_ms;
	int64_t lease_until_ms; /* 0: never delivered */
	int cancel_requested;
	int has_exit;
	int64_t exit_status, signal;
	int64_t output_bytes;
	uint64_t qseq; /* its key in the queue database */
};

/* "queued", "running", ... */
const char *queue_state_name(enum queue_state s);
void queue_task_release(struct queue_task *task);

/* Add a task for instance; its id goes to id_out. 0 or -1. */
int queue_add(struct store_txn *t, struct crypt_rng *rng, const char *instance, const char *kind,
	      const char *payload, int64_t now_ms, char id_out[QUEUE_ID_MAX]);
/* 0 and *out (release it), STORE_NOTFOUND, or -1. */
int queue_get(struct store_txn *t, const char *id, struct queue_task *out);

/* Called for each task to send; the task is borrowed for the call. */
typedef void (*queue_send_fn)(const struct queue_task *task, void *arg);
/* Lease instance's unfinished tasks for lease_ms and call fn for each: the
 * queued ones whose lease is free or ran out, and with force (a new
 * session) every unfinished one. Returns the number leased, or -1. */
int queue_lease(struct store_txn *t, const char *instance, int64_t now_ms, int64_t lease_ms,
		int force, queue_send_fn fn, void *arg);
/* Earliest lease end among instance's queued (unaccepted) leased tasks,
 * or 0 when none: when to call queue_lease again. */
int64_t queue_next_expiry(struct store_txn *t, const char *instance);
/* The agent recorded the task: "running". 0, STORE_NOTFOUND or -1. */
int queue_accept(struct store_txn *t, const char *id);
/* The task ended (state QUEUE_DONE, QUEUE_FAILED or QUEUE_CANCELLED;
 * a task with cancel_requested ends as cancelled): record the result and
 * drop it from the queue. has_exit 0: no status. 0, STORE_NOTFOUND or -1.
 * Finishing an ended task changes nothing (returns 0). */
int queue_finish(struct store_txn *t, const char *id, enum queue_state state, int has_exit,
		 int64_t status, int64_t sig);
/* Cancel: a task never delivered (or whose agent is away, offline set)
 * ends as cancelled at once (*sent_cancel 0); a delivered one gets
 * cancel_requested and *sent_cancel 1: the caller sends cancel to the
 * agent. Ended tasks are left alone. 0, STORE_NOTFOUND or -1. */
int queue_cancel(struct store_txn *t, const char *id, int offline, int *need_cancel);

/* End every unfinished task of instance as cancelled (the instance was
 * removed). Returns the number ended, or -1. */
int queue_cancel_instance(struct store_txn *t, const char *instance);

/* Append output (stream 'o' or 'e'); silently dropped past
 * QUEUE_OUTPUT_MAX. 0 or -1. */
int queue_output_add(struct store_txn *t, const char *id, char stream, const void *data,
		     size_t len);
/* Called per stored chunk in order; return non-zero to stop. */
typedef int (*queue_output_fn)(char stream, const void *data, size_t len, void *arg);
int queue_output_scan(struct store_txn *t, const char *id, queue_output_fn fn, void *arg);

#endif
