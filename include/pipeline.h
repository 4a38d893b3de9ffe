/* pipeline: deploy one service on this VM, on the agent's loop.
 *
 *   struct pipeline_opts o = { .name = "web", .dir = "/var/lib/dployr/svc/web",
 *                              .on_stage = ..., .on_log = ..., .on_done = ...,
 *                              .on_proxy = ..., .arg = ctx };
 *   struct pipeline *p = pipeline_new(loop, &o, err, sizeof(err));
 *   struct pipeline_req r = { .id = "d-42", .bp = bp, .secrets = env, .nsecrets = 1 };
 *   pipeline_deploy(p, &r, err, sizeof(err));     ... on_done reports the end
 *   pipeline_cancel(p);                            ... at any stage before the switch
 *   pipeline_rollback(p, &r_of_kept, err, sizeof(err));
 *
 * Layout under dir:
 *   releases/ID/src/        the sources of deployment ID (git clone or archive)
 *   releases/ID/bin/        the resolved runtime's program (first in PATH)
 *   releases/ID/release     what the release resolved ("revision=...", "runtime=...",
 *                           "activated=MS"): read back by rollback and pruning
 *   logs/ID.log             the release's stdout and stderr (a file, so a service
 *                           outlives the agent; kept when a deploy fails)
 *   current -> releases/ID  replaced atomically (rename of a temporary link)
 *
 * Stages, a state machine (STYLE.md rule 10) with events OK, FAIL, CANCEL:
 *
 *   stage \ event  OK            FAIL          CANCEL
 *   FETCH          RUNTIME       CLEANUP       CLEANUP
 *   RUNTIME        BUILD         CLEANUP       CLEANUP
 *   BUILD          PRE_DEPLOY    CLEANUP       CLEANUP
 *   PRE_DEPLOY     START         CLEANUP       CLEANUP
 *   START          HEALTH        CLEANUP       CLEANUP
 *   HEALTH         SWITCH        CLEANUP       CLEANUP
 *   SWITCH         STOP_OLD      CLEANUP       -
 *   STOP_OLD       POST_DEPLOY   POST_DEPLOY   -
 *   POST_DEPLOY    PRUNE         PRUNE         -
 *   PRUNE          END           END           -
 *   CLEANUP        END           END           -
 *
 * A stage that does not apply (no build_cmd, no hook, no process for
 * static, everything before START on a rollback) passes at once and is not
 * reported. Once SWITCH has passed the deploy is committed: cancel is
 * refused, and a failing post_deploy hook or prune is a warning in the
 * deploy log (the result is still done). A failure or cancel before then
 * goes through CLEANUP: the stage's process group is killed, the new release
 * (if started) is stopped, releases/ID is removed (not on a rollback: the
 * release is kept), and the previous release was never touched: it keeps
 * serving. Every stage has a deadline (see struct pipeline_opts).
 *
 *   FETCH    remote: `git clone` (+ `git checkout --detach COMMIT`,
 *            `git rev-parse HEAD`) into releases/ID/src, with fetch.h's
 *            policy (URL, branch and commit checked by fetch_check_*; argv,
 *            never a shell; no prompts; protocols https, ssh, file; the user
 *            part of an https URL masked in every line). upload: the archive
 *            (req.upload) unpacked by fetch_untar_fd. image: the engine
 *            resolved first (RUNTIME's work, done here; podman preferred
 *            to docker: no daemon), then `ENGINE image inspect`, and
 *            `ENGINE pull` if that fails, by argv; the image id is the
 *            revision; releases/ID/src is left empty.
 *   RUNTIME  the blueprint's runtime resolved by runtime.h against the
 *            programs on search_path; the version is in the result. The
 *            resolved program is linked as releases/ID/bin/python3 (and
 *            python; node; go; else its own name), and that bin/ comes first
 *            in PATH for the build, hooks and service, so `python3` is the
 *            version resolved.
 *   BUILD    `/bin/sh -c build_cmd` in the working dir, as the service user,
 *            with the service's environment (no PORT); deadline: the
 *            blueprint's timeout, else build_timeout_ms.
 *   PRE_DEPLOY, POST_DEPLOY  the hooks, the same way (hook_timeout_ms).
 *   START    run_cmd supervised (supervise.h): a process group, the
 *            blueprint's restart policy, resources as cgroup limits when
 *            cgroup_root is set, output to logs/ID.log. Environment: PATH,
 *            HOME, LANG, env_vars, the caller's secrets, and for web
 *            PORT=a free port on 127.0.0.1 chosen for this release.
 *            image: `ENGINE run --rm --init --name dployr-NAME-ID --network
 *            host -e NAME... IMAGE [/bin/sh -c run_cmd]` supervised the
 *            same way; values only in the engine's environment (see
 *            image_argv in pipeline.c for podman's extra options).
 *   HEALTH   web: the blueprint's health check (HTTP path, TCP or command)
 *            or else TCP on PORT, probed every gate_interval_ms at most,
 *            must pass within the start period plus `retries` times the
 *            blueprint's interval (3 x 10 s by default; at least 5 s,
 *            at most health_timeout_ms, plus the start period). worker: its command check
 *            if it has one, else still running after settle_ms. job without
 *            schedule: runs to completion, must exit 0 (deadline: the
 *            blueprint's timeout, else build_timeout_ms). job with schedule
 *            and static: nothing to wait for. The new process exiting
 *            during START or HEALTH fails the deploy at once, with the tail
 *            of its output in the deploy log.
 *   SWITCH   on_proxy (web: the new port; static: the static root), and
 *            once the proxy has taken it `current` is renamed to the new
 *            release. on_proxy may answer "pending" (1): the switch then
 *            waits for pipeline_proxy_done (ok: go on; refused: the deploy
 *            fails here, `current` unchanged, the old release serving) for
 *            at most switch_timeout_ms.
 *   STOP_OLD the previous release's group: TERM, KILL after stop_grace_ms.
 *   PRUNE    releases beyond the newest `keep` (by activation) removed,
 *            never the current or the previous one.
 *
 * Slow work never blocks the caller's loop. Programs (git, the build, the
 * hooks, rm -rf) are spawned as process groups watched by the loop (child
 * exit, output pipe, deadline timer), so cancel kills exactly their group.
 * The two library calls that block (runtime_resolve's version probes and
 * fetch_untar_fd) run in a forked worker process (its own process group)
 * that reports through a pipe and _exit()s: it never touches LMDB or the
 * loop (DESIGN.md's "children exec" rule is about LMDB; this child uses
 * none), and cancel kills its group. What the worker itself starts (a
 * version probe, `gzip -dc`) has a group of its own: a probe ends by its own
 * 5 s deadline, gzip at its next write once the worker is gone.
 *
 * Secrets: values are passed to processes only through the environment,
 * never in argv; every deploy log line is scrubbed of secret values (of 3
 * bytes or more: "[secret]") before it reaches on_log, so a build that
 * echoes one does not leak it.
 *
 * Not thread-safe; callbacks must not call pipeline_free.
 */
#ifndef DPLOYR_PIPELINE_H
#define DPLOYR_PIPELINE_H

#include <stddef.h>
#include <sys/types.h>

#include "bp.h"
#include "health.h"
#include "loop.h"
#include "supervise.h"

struct pipeline;

enum pipeline_stage {
	PIPELINE_IDLE = 0, /* no deploy in progress */
	PIPELINE_FETCH,
	PIPELINE_RUNTIME,
	PIPELINE_BUILD,
	PIPELINE_PRE_DEPLOY,
	PIPELINE_START,
	PIPELINE_HEALTH,
	PIPELINE_SWITCH,
	PIPELINE_STOP_OLD,
	PIPELINE_POST_DEPLOY,
	PIPELINE_PRUNE,
	PIPELINE_CLEANUP,
	PIPELINE_END,
	PIPELINE_NSTAGES
};

enum pipeline_outcome { PIPELINE_DONE = 0, PIPELINE_ERROR, PIPELINE_CANCELLED };

/* The end of a deploy or rollback. Strings are owned by the pipeline and
 * valid during the on_done call only. */
struct pipeline_result {
	enum pipeline_outcome outcome;
	enum pipeline_stage stage;   /* the stage that failed or was cancelled */
	const char *reason;	     /* "" when done; else "build: exited with status 2: ..." */
	const char *release;	     /* the deployment id */
	const char *runtime_version; /* "3.11.2"; "" when none (static, not resolved) */
	const char *revision;	     /* commit (40 hex) for git, the image id for an
					image, "" otherwise */
	pid_t pid;		     /* the new release's process group leader, 0 if none */
	int port;		     /* web: its PORT, else 0 */
};

/* The release the proxy should now send traffic to: web gives port, static
 * gives root (the absolute static_dir of the release). */
struct pipeline_target {
	const char *release;
	enum bp_type type;
	int port;
	const char *root;
};

typedef void (*pipeline_stage_fn)(struct pipeline *p, void *arg, int stage);
/* One line of the deploy log, without "\n", scrubbed of secrets. */
typedef void (*pipeline_log_fn)(struct pipeline *p, void *arg, const char *line);
typedef void (*pipeline_done_fn)(struct pipeline *p, void *arg, const struct pipeline_result *r);
/* The serving release changed: a state change of its supervisor (started,
 * exited, backing off, stopped...), the SWITCH to a new release, an adopt,
 * or the release forgotten after pipeline_stop. Read the new state with
 * pipeline_current and pipeline_supervisor. Must not call pipeline_free. */
typedef void (*pipeline_service_fn)(struct pipeline *p, void *arg);
/* Point the proxy at t. 0: done; 1: pending, the caller answers later
 * with pipeline_proxy_done (it may do so from inside this call); -1 with a
 * reason in err: the deploy then fails and nothing is switched. */
typedef int (*pipeline_proxy_fn)(struct pipeline *p, void *arg, const struct pipeline_target *t,
				 char *err, size_t errlen);

/* Filled in by the caller, copied by pipeline_new; zero means the default. */
struct pipeline_opts {
	const char *name;	 /* the service, for messages and cgroup names */
	const char *dir;	 /* the service's directory (created if missing) */
	const char *search_path; /* PATH for git, runtimes, build and service
				    [/usr/local/bin:/usr/bin:/bin] */
	const char *home;	 /* HOME for git, build and service [dir] */
	int set_ids;		 /* run build, hooks and service as uid/gid */
	uid_t uid;
	gid_t gid;
	const char *cgroup_root;     /* NULL: no cgroups */
	int keep;		     /* releases kept [5], at least 2 */
	long long fetch_timeout_ms;  /* [600000] */
	long long build_timeout_ms;  /* when the blueprint has no timeout [1800000] */
	long long hook_timeout_ms;   /* [300000] */
	long long health_timeout_ms; /* the health gate [120000] */
	long long gate_interval_ms;  /* fastest probe interval during the gate [100];
					command checks at most every 500 ms */
	long long settle_ms;	     /* worker: running this long is healthy [3000] */
	long long stop_grace_ms;     /* TERM to KILL [10000] */
	long long switch_timeout_ms; /* a pending on_proxy's answer [30000] */
	pipeline_stage_fn on_stage;
	pipeline_log_fn on_log;
	pipeline_done_fn on_done;
	pipeline_proxy_fn on_proxy; /* NULL: no proxy */
	pipeline_service_fn on_service; /* NULL: not told */
	void *arg;
};

/* A deploy or rollback request. Everything is copied by the call. */
struct pipeline_req {
	const char *id;	     /* deployment id: 1-64 of [A-Za-z0-9._-], not "." or ".." */
	const struct bp *bp; /* a valid blueprint (nerrors == 0) */
	const char *upload;  /* source: upload: path of the tar or tar.gz archive */
	/* Decrypted secrets as "NAME=value", passed to the build, hooks and
	 * service through the environment; never logged. */
	const char *const *secrets;
	size_t nsecrets;
};

/* NULL with a reason in err (no dir, cannot create it). The loop is
 * borrowed and must outlive the pipeline. */
struct pipeline *pipeline_new(struct loop *loop, const struct pipeline_opts *o, char *err,
			      size_t errlen);
/* Kills a deploy in flight (its process groups, and its new release if
 * started) without cleaning up; the current release keeps running (take it
 * back with pipeline_adopt). Accepts NULL. */
void pipeline_free(struct pipeline *p);

/* Start a deploy of req->bp as release req->id. -1 with a reason in err if
 * a deploy is in progress, the id is invalid or already used, or the
 * blueprint cannot be deployed here (source: image without an image or
 * runtime docker, or an image name starting with '-'). on_done is always
 * called later, never from inside this call. */
int pipeline_deploy(struct pipeline *p, const struct pipeline_req *req, char *err, size_t errlen);
/* Re-activate the kept release req->id (its blueprint in req->bp): START,
 * HEALTH, SWITCH, STOP_OLD, no fetch or build. -1 if it is the current
 * release or not kept. */
int pipeline_rollback(struct pipeline *p, const struct pipeline_req *req, char *err, size_t errlen);
/* After an agent restart: take back the running release req->id (its
 * blueprint and secrets in req, so restarts run it the same way) from the
 * record the caller persisted (pipeline_record; NULL for static). Nothing
 * is started or stopped. -1 with a reason in err if a release is already
 * current, the release is not kept, or the record no longer names the
 * running process (supervise_adopt). */
int pipeline_adopt(struct pipeline *p, const struct pipeline_req *req,
		   const struct supervise_record *rec, char *err, size_t errlen);
/* After an agent restart: make the kept release req->id the serving one
 * again, whatever became of its process while the agent was away. rec: its
 * persisted record (pipeline_record), or NULL when it was not running
 * (stopped, exited; static). port: its PORT (web), used again if it has
 * to be started. run: 1 if it was meant to run (running, backing off,
 * waiting for its schedule), 0 if it was stopped or had ended.
 *   rec names the running process (supervise_adopt): adopted (and stopped
 *     if !run);
 *   else, run and a policy that restarts it (always, on-failure: an unknown
 *     exit counts as a failure; a scheduled job): started again;
 *   else: kept as the serving release, not running (start it with
 *     pipeline_supervisor).
 * Never a second process: a record whose pid is alive but another process
 * (pid reused) is not adopted and the release is started. 0 and the outcome
 * in *how ("adopted", "started", "stopped": static strings), or -1 with a
 * reason in err (a current release exists, release not kept, bad request). */
int pipeline_restore(struct pipeline *p, const struct pipeline_req *req,
		     const struct supervise_record *rec, int port, int run, const char **how,
		     char *err, size_t errlen);
/* The current release's record to persist for pipeline_adopt: 0, or -1
 * when nothing runs (static, none, stopped). */
int pipeline_record(const struct pipeline *p, struct supervise_record *rec);
/* The new release a deploy started and has not switched to (yet): its
 * record (0), or -1 when there is none or nothing runs. Persist it while
 * the deploy runs: an agent that dies then leaves that process behind, and
 * the next one must end it (it is nobody's serving release). */
int pipeline_new_record(const struct pipeline *p, struct supervise_record *rec);
/* The answer to an on_proxy that said pending: ok 1 (the proxy serves the
 * new release), or 0 with reason (the switch fails with it). Ignored when
 * no switch waits. Acts from the loop, never inside this call. */
void pipeline_proxy_done(struct pipeline *p, int ok, const char *reason);
/* 1 when the serving release is meant to run (its supervisor is running,
 * backing off or waiting), 0 otherwise (none, static, stopped, ended). */
int pipeline_running(const struct pipeline *p);
/* Cancel the deploy in progress: 0, or -1 when there is none or it has
 * passed SWITCH. The result (on_done) follows once cleaned up. */
int pipeline_cancel(struct pipeline *p);
/* Stop the current release (TERM, then KILL) and forget it; `current`
 * stays. */
void pipeline_stop(struct pipeline *p);

/* The serving release's supervisor, owned by p (NULL when none runs, or
 * static): for stopping, starting and restarting the service in place. */
struct supervise *pipeline_supervisor(const struct pipeline *p);

enum pipeline_stage pipeline_stage(const struct pipeline *p);
/* "fetch", "runtime", ... (static strings). */
const char *pipeline_stage_name(enum pipeline_stage st);
const char *pipeline_outcome_name(enum pipeline_outcome o);

/* The serving release: its id (owned by p; NULL if none), and its group
 * leader and port (0 if none). */
const char *pipeline_current(const struct pipeline *p, pid_t *pid, int *port);

/* The serving release's type, BP_TYPE_NONE when none serves. */
enum bp_type pipeline_type(const struct pipeline *p);
/* The serving release's live health check, for a monitor after the deploy
 * (the health gate has its own): *o filled with the blueprint's check
 * (kind, path or command; interval, timeout, start period and retries, 0
 * where the blueprint gives none: health.h's defaults) against the
 * release: its PORT, and for a command the release's environment, working
 * directory and user. A web service without a check gets TCP on PORT.
 * on_change and arg are the caller's to set. The strings are owned by p
 * and valid until the serving release changes (health_new copies them).
 * 1 when filled; 0 when the release has nothing to probe (a worker
 * without a command check, job, static); -1 when none serves. */
int pipeline_health(const struct pipeline *p, struct health_opts *o);

#endif
