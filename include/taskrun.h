/* taskrun: the agent's exec tasks, run at most once each.
 *
 * A task is {task_id, kind "exec", payload}; the payload is a JSON object
 *
 *   {"argv":["make","-C","/srv/app"],"timeout_s":60,"env":{"K":"V"},"cwd":"/srv"}
 *
 * argv (1..TASKRUN_MAX_ARGS strings, required) is run with spawn (execve,
 * never a shell) in a process group of its own, stdin /dev/null, stdout and
 * stderr on pipes, working directory cwd (default "/"), environment
 * PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin plus env
 * (an object of strings, or an array of "NAME=value"; names are
 * [A-Za-z_][A-Za-z0-9_]*). timeout_s (default 600, at most 86400; 0 means the
 * default) bounds the run: then the group gets SIGTERM, and SIGKILL after
 * the grace period (5 s). Cancel does the same. When the leader exits, what
 * is left of its group is killed (an exec task leaves no daemons behind).
 *
 * Output is read as it comes and spooled (spool.h) as exec_output events
 * {task_id, stream, data (base64)}, at most TASKRUN_CHUNK bytes each,
 * coalesced for up to 100 ms, at most max_output bytes per task (the rest
 * is read and dropped; exec_exit then says "truncated":true). The end is an
 * exec_exit event {task_id, status, signal?, error?, timed_out?,
 * cancelled?, truncated?}: status is the exit status, or 128 + signal with
 * signal set when a signal killed it, or -1 with error when the task could
 * not run (bad payload, unknown kind, spawn failure, or lost, below).
 *
 * At most once, even across crashes: the task id is recorded in the
 * "tasks" database and committed BEFORE the program starts. A task whose
 * id is already recorded is a duplicate: taskrun_submit returns its stored
 * record and runs nothing. A record still "started"/"running" when
 * taskrun_new opens the store means the agent died (kill -9, power cut)
 * while the task ran: it is never re-run but finished as lost (status -1,
 * "lost":true, error), its exec_exit spooled, and its orphaned process
 * group killed if its leader is verifiably still the same process (pid and
 * start time recorded at spawn). The record and its exec_exit event commit
 * in one transaction, so base learns every result exactly once.
 */
#ifndef DPLOYR_TASKRUN_H
#define DPLOYR_TASKRUN_H

#include <stddef.h>

#include "buf.h"
#include "loop.h"
#include "spool.h"
#include "store.h"

#define TASKRUN_MAX_ARGS 1024
#define TASKRUN_CHUNK	 (16 * 1024)

struct taskrun;

/* Zero fields take the defaults. */
struct taskrun_opts {
	long long grace_ms;    /* SIGTERM -> SIGKILL: 5000 */
	size_t max_output;     /* output bytes spooled per task: 1 MiB */
	int default_timeout_s; /* 600 */
};

/* notify(loop, 0, arg, 0) runs whenever events were spooled or a task
 * ended (the agent then sends them, or finishes stopping). The store must
 * hold the databases "tasks", "spool" and "meta"; sp is borrowed. Recovers
 * tasks left by a crash (see above). NULL with err on failure. */
struct taskrun *taskrun_new(struct loop *loop, struct store *s, struct spool *sp,
			    const struct taskrun_opts *o, loop_fn notify, void *arg, char *err,
			    size_t errlen);
/* Kill every running group with SIGKILL and free. Their records stay
 * "running" (the next taskrun_new reports them lost). Accepts NULL. */
void taskrun_free(struct taskrun *tr);
/* Tasks found lost by taskrun_new. */
size_t taskrun_recovered(const struct taskrun *tr);

enum taskrun_status {
	TASKRUN_ACCEPTED,  /* recorded and started */
	TASKRUN_DUPLICATE, /* seen before: nothing run; result = stored record */
	TASKRUN_FAILED,	   /* recorded, could not run; result = {"error":...} */
	TASKRUN_ERROR = -1 /* store failure: nothing recorded (err) */
};

/* Record and start task_id. payload: JSON text. result (may be NULL) gets
 * the record JSON for DUPLICATE and FAILED. */
enum taskrun_status taskrun_submit(struct taskrun *tr, const char *task_id, const char *kind,
				   const char *payload, struct buf *result, char *err,
				   size_t errlen);
/* SIGTERM the task's group, SIGKILL after the grace period; exec_exit says
 * "cancelled":true. 0, or -1 when task_id is not running. */
int taskrun_cancel(struct taskrun *tr, const char *task_id);
/* Cancel every running task (stopping the agent). */
void taskrun_cancel_all(struct taskrun *tr);
size_t taskrun_running(const struct taskrun *tr);
/* Forget finished tasks that ended more than max_age_s ago and whose
 * exec_exit event base has acked (so base has their result and will not
 * deliver them again); the "tasks" database would grow forever otherwise.
 * Returns how many were dropped, or -1 with err. */
long taskrun_prune(struct taskrun *tr, long long max_age_s, char *err, size_t errlen);
/* The stored record of task_id appended to out: 1, 0 unknown, -1 error. */
int taskrun_record(struct taskrun *tr, const char *task_id, struct buf *out);

#endif
