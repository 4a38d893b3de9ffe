/* supervise: run one service instance (a process group) on the loop, and
 * restart it by its policy.
 *
 *   struct supervise_opts o = { .name = "web", .argv = argv, .envp = env,
 *                               .restart = SUPERVISE_ALWAYS, ... };
 *   struct supervise *sv = supervise_new(loop, &o, err, sizeof(err));
 *   supervise_start(sv);  ... later ...  supervise_stop(sv);
 *
 * A state machine (STYLE.md rule 10), one transition table; every
 * transition is logged at debug level ("supervise: transition"):
 *
 *   state \ event  START    STOP      EXIT       RETRY    DUE       GRACE  DEADLINE  ADOPT
 *   STOPPED        launch*  -         .          .        .         .      .         RUNNING
 *   WAITING        -        STOPPED   .          .        launch*   .      .         .
 *   RUNNING        -        STOPPING  policy**   .        skip      .      STOPPING  .
 *   BACKOFF        launch*  STOPPED   .          launch*  .         .      .         .
 *   STOPPING       -        -         STOPPED*** .        skip      KILL   .         .
 *   EXITED/FAILED  launch*  -         .          .        .         .      .         RUNNING
 *
 *   *  launch: spawn -> RUNNING; a spawn failure counts as a failed run (**).
 *      START on a scheduled job goes to WAITING for the next cron time.
 *   ** policy on exit: a scheduled job waits for its next time (WAITING);
 *      ALWAYS, or ON_FAILURE after a failure -> BACKOFF; otherwise EXITED
 *      (status 0) or FAILED. A job killed at its deadline failed.
 *   *** STOPPED after a stop; after a deadline, the policy as for **.
 *   -  nothing to do; .  cannot happen (logged and ignored).
 *
 * Process group: the service is started with SPAWN_PGROUP; stop sends
 * SIGTERM to the whole group, then SIGKILL after stop_grace_ms. When the
 * group leader exits, what is left of its group gets SIGKILL, so a restart
 * never races its predecessor's children (for a port, a lock file).
 *
 * Backoff, throttled by deadlines as in s6/runit: a run that lasted
 * stable_ms or more resets the delay to backoff_min_ms; each shorter run
 * doubles it up to backoff_max_ms.
 *
 * Agent restarts: supervise_record() gives what to persist (pid, pgid,
 * start time, ports); after a restart supervise_adopt() takes the running
 * group back if the pid still names the same process (its start time in
 * /proc/PID/stat defeats pid reuse). An adopted process is not our child:
 * its exit is seen through pidfd_open (or, when the loop itself watches
 * children without pidfds, by polling /proc/PID/stat every 500 ms) and its
 * status is unknown (-1), which counts as a failure.
 *
 * supervise_free() forgets the service but leaves it running: an agent that
 * exits or upgrades re-adopts its services instead of restarting them. So
 * a service meant to outlive the agent writes its output to files or FIFOs
 * (SPAWN_FD) that the next agent can reopen, not to SPAWN_PIPE pipes, whose
 * read ends die with the agent (the service would then get SIGPIPE/EPIPE).
 */
#ifndef DPLOYR_SUPERVISE_H
#define DPLOYR_SUPERVISE_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "cgroup.h"
#include "loop.h"
#include "spawn.h"

struct supervise;

enum supervise_restart { SUPERVISE_ALWAYS = 0, SUPERVISE_ON_FAILURE, SUPERVISE_NEVER };

enum supervise_state {
	SUPERVISE_STOPPED = 0, /* not running; nothing will start it */
	SUPERVISE_WAITING,     /* a scheduled job between runs */
	SUPERVISE_RUNNING,
	SUPERVISE_BACKOFF, /* exited; a restart is due after the delay */
	SUPERVISE_STOPPING,
	SUPERVISE_EXITED, /* ran to completion with status 0, not restarted */
	SUPERVISE_FAILED, /* exited otherwise (or could not start), not restarted */
	SUPERVISE_NSTATES
};

/* Callbacks: what is the new state (on_state) or 0 (on_output). The
 * callbacks must not call supervise_free. */
typedef void (*supervise_fn)(struct supervise *sv, void *arg, int what);

#define SUPERVISE_MAX_PORTS 8

/* Filled by the caller; copied by supervise_new (nothing is borrowed).
 * Zero means the default. */
struct supervise_opts {
	const char *name; /* for logs and messages */
	const char *const *argv;
	const char *const *envp; /* the exact environment */
	const char *cwd;
	int set_ids;
	uid_t uid;
	gid_t gid;
	const struct spawn_rlimit *rlimits;
	size_t nrlimits;
	/* Output: SPAWN_NULL, SPAWN_FD (out_fd/err_fd, kept open by the
	 * caller, e.g. log files) or SPAWN_PIPE (after each start on_output is
	 * called; take the read ends with supervise_take_output, else they are
	 * closed). err may be SPAWN_STDOUT. */
	enum spawn_io out, err;
	int out_fd, err_fd;
	enum supervise_restart restart;
	long long backoff_min_ms; /* default 1000 */
	long long backoff_max_ms; /* default 60000 */
	long long stable_ms;	  /* default 10000 */
	long long stop_grace_ms;  /* default 10000 */
	long long timeout_ms;	  /* a run's deadline (jobs); 0: none */
	const char *schedule;	  /* cron expression: a periodic job */
	const char *cgroup_root;  /* NULL: no cgroup; else e.g. "/sys/fs/cgroup" */
	const char *cgroup_path;  /* e.g. "dployr/web-1" */
	struct cgroup_limits limits;
	int ports[SUPERVISE_MAX_PORTS]; /* recorded for re-adoption */
	size_t nports;
	supervise_fn on_state, on_output;
	void *arg;
};

/* What to persist to re-adopt a running service after an agent restart. */
struct supervise_record {
	pid_t pid;
	pid_t pgid;
	unsigned long long start_time; /* /proc/PID/stat field 22, clock ticks since boot */
	int ports[SUPERVISE_MAX_PORTS];
	size_t nports;
};

/* NULL with a reason in err for bad options (no argv, bad schedule,
 * schedule without restart never...). */
struct supervise *supervise_new(struct loop *loop, const struct supervise_opts *o, char *err,
				size_t errlen);
/* Stops watching (timers, child watch) and frees; the processes keep
 * running. Accepts NULL. */
void supervise_free(struct supervise *sv);

/* Event START: from STOPPED, EXITED, FAILED or BACKOFF. No effect in the
 * other states. */
void supervise_start(struct supervise *sv);
/* Event STOP: no restart afterwards until the next start. */
void supervise_stop(struct supervise *sv);
/* Event DUE now, as if the schedule fired: a waiting scheduled job runs at
 * once (its next scheduled time is unchanged); one still running counts a
 * skipped run. No effect on unscheduled services. */
void supervise_trigger(struct supervise *sv);
/* Event ADOPT: take over the running group described by rec (from
 * STOPPED only). -1 with "adopt 'NAME': reason" in err when pid is gone,
 * is another process (start time differs), or is not in group pgid. */
int supervise_adopt(struct supervise *sv, const struct supervise_record *rec, char *err,
		    size_t errlen);

enum supervise_state supervise_state(const struct supervise *sv);
/* "stopped", "waiting", "running", ... (static strings). */
const char *supervise_state_name(enum supervise_state st);
/* 0 and the running group's record, or -1 when nothing runs. */
int supervise_record(const struct supervise *sv, struct supervise_record *rec);
/* The last run's wait status (WIFEXITED ...), or -1 when unknown (adopted,
 * never ran, could not start). */
int supervise_last_status(const struct supervise *sv);
/* Why the last start failed ("spawn 'x': ..."), or "" ; owned by sv. */
const char *supervise_error(const struct supervise *sv);
/* Runs started, restarts done, scheduled runs skipped because the previous
 * run was still going. */
unsigned supervise_runs(const struct supervise *sv);
unsigned supervise_restarts(const struct supervise *sv);
unsigned supervise_skipped(const struct supervise *sv);
/* Delay before the pending restart (BACKOFF), in ms. */
long long supervise_backoff_ms(const struct supervise *sv);
/* Next scheduled run (wall clock), or -1. */
time_t supervise_next_run(const struct supervise *sv);
/* In on_output: take the pipe read ends (non-blocking; -1 where not a
 * pipe). The caller owns and closes them. */
void supervise_take_output(struct supervise *sv, int *out_fd, int *err_fd);

/* Remove the service's cgroup (when it has one and nothing runs): the
 * last step of removing a service or an old release. 0 when there is
 * nothing to remove; -1 with the reason in err (EBUSY while processes
 * remain). */
int supervise_remove_cgroup(struct supervise *sv, char *err, size_t errlen);

/* Start time of pid (field 22 of /proc/PID/stat), 0 on success; -1 if the
 * process does not exist or is a zombie. */
int supervise_proc_start_time(pid_t pid, unsigned long long *start);

#endif
