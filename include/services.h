/* services: the agent's deployed services, driven by base's tasks (issue 4).
 *
 * Task kinds handled here (the rest go to taskrun.h):
 *
 *   deploy         {"deployment_id","blueprint" (YAML text),"rollback_of"?,
 *                  "secrets":{NAME:value}?}: run pipeline_deploy (or
 *                  pipeline_rollback) for the blueprint's service, whose
 *                  pipeline lives under DATA/services/NAME and is created on
 *                  first use. Progress is spooled as events, each with
 *                  task_id and deployment_id:
 *                    deploy_stage {stage}
 *                    deploy_log   {text}  lines, batched (at most 100 ms or
 *                                         8 KiB), scrubbed of secrets
 *                    deploy_done  {outcome (done|error|cancelled), stage,
 *                                 reason, release, runtime_version,
 *                                 revision, pid, port}
 *                  A deploy that cannot start ends at once with deploy_done
 *                  error. The secret values exist only in the task payload,
 *                  the pipeline's environment and its scrubber: never
 *                  logged, never stored, wiped after the call.
 *   deploy_cancel  {"deployment_id","service"}: pipeline_cancel when that
 *                  deployment runs (its deploy_done then says cancelled);
 *                  done at once.
 *   service_logs   {"service","lines"?,"since_ms"?,"follow"?,"raw"?}:
 *                  the service's output records (svclog_tail of `lines`
 *                  [200; 10 with follow], or svclog_since since_ms, the
 *                  last `lines` of them if given; at most 4 MiB) as
 *                  exec_output events, one line each as
 *                  "2026-11-22T01:25:00.123Z out text" (the text alone with
 *                  raw), then an exec_exit (status 0, or 1 with "error").
 *                  With follow, new records keep coming (batched: 100 ms or
 *                  8 KiB) until services_cancel (exec_exit "cancelled") or
 *                  services_stop_follows; a follower that base does not
 *                  keep up with (more than 256 events unacked) waits while
 *                  its 256 KiB queue drops the oldest records, shown on
 *                  stderr as "... --- N bytes dropped". Where a follow
 *                  is (the time of the newest record sent and how many
 *                  had that time) is saved with each batch ("meta",
 *                  "svclogf/ID"): re-delivered after an agent restart,
 *                  the follow goes on right after it, so a kill -9 of
 *                  the agent loses and repeats nothing.
 *   service_ctl    {"service","action": stop|start|restart}: act on the
 *                  serving release's supervisor (pipeline_supervisor);
 *                  done at once (a restart starts once the stop ends).
 *
 * Live state, spooled as service_status events (not tied to a task: no
 * task_id), for base to show in `dployr services`:
 *
 *   service_status {service, release ("" when none), state, pid, restarts,
 *                  health, port, since_ms, ts_ms, error}
 *     state     the serving release's supervisor (supervise_state_name:
 *               stopped, waiting, running, backoff, stopping, exited,
 *               failed); "running" for a static release (the proxy serves
 *               it); "none" when no release serves.
 *     pid       the group leader, 0 when nothing runs; restarts:
 *               supervise_restarts of that release; port: its PORT (0 if
 *               none).
 *     health    of the live check: "starting", "healthy", "unhealthy";
 *               "unhealthy" too while a release that has a check runs no
 *               process (backoff, stopped...); "none" when there is
 *               nothing to probe (worker without a command check, job,
 *               static, no release).
 *     since_ms  when state (or the release) last changed; ts_ms: when the
 *               event was made (wall clock, ms).
 *     error     why the last start failed, else how the last run ended
 *               (backoff, failed: "exited with status 1"), else the live
 *               check's last failure ("command: exit 1"); "" if none.
 *               Never a secret: these texts hold no environment.
 *   One is due on every change of the serving release (the pipeline's
 *   on_service: a supervisor state change, a switch, an adopt, a release
 *   forgotten) and of its health, at most one per STATUS_MIN_MS (200 ms)
 *   per service: changes in between are coalesced into one event sent when
 *   the interval ends, saying the state of that moment (the latest wins).
 *   At agent start every service known then (taken back by adopt) that has
 *   not sent one yet sends one.
 *
 * Live health check: the blueprint's health_check (HTTP path, TCP or
 * command, with its interval, timeout, retries and start period; health.h)
 * through pipeline_health; a web service without one: TCP on its PORT. It
 * probes the serving release's process while that runs (after the deploy's
 * health gate passed and the switch, or after an adopt), is set up afresh
 * (status "starting", start period again) when the release or its process
 * changes (a restart), and stops when the process stops. Health is
 * reported, never acted on: an unhealthy service is not restarted, since
 * the blueprint's restart policy is about exits, a restart loses whatever
 * the process was doing, and a check that fails for a reason outside the
 * process (a database down) would turn into a restart loop; the operator
 * sees "unhealthy" in `dployr services` and decides (`dployr restart`).
 *
 * At most once: a task id is recorded ("meta" database, "svctask/ID")
 * before it runs; a known id is a duplicate and runs nothing. A deploy
 * recorded as running whose pipeline is gone (the agent restarted during
 * it) is ended then with deploy_done error.
 *
 * Proxy (services_proxy): one Caddy (proxy.h) under DATA/proxy, its output
 * in DATA/proxy/caddy.log. A web service is served on its blueprint `port`
 * (and `domain`s) from 127.0.0.1:PORT of its serving release; a static one
 * on port 80 (for its domains, or every host when it has none) from the
 * release's static root. A deploy's SWITCH waits until Caddy has accepted
 * the new site; a refused config (or none within the pipeline's switch
 * timeout) fails the deploy before `current` moves, the site goes back to
 * the old release, which keeps serving. Without `caddy` (looked up in
 * /usr/local/bin:/usr/bin:/bin) a deploy of a web or static service fails
 * at once, saying to install it. Caddy is left running when the agent
 * exits: the next agent adopts it (DATA/proxy/caddy.pid).
 *
 * Releases survive an agent restart. Whenever a service's serving release
 * or its process changes, "meta" holds "svc/NAME":
 *   {"release","run" (0|1: meant to run),"port" (its PORT),
 *    "pid","pgid","start_time" (while a process runs: supervise_record),
 *    "root" (static: what the proxy serves),"secrets" (see below),
 *    "blueprint" (YAML text)}
 * services_restore (at agent start) takes each back with pipeline_restore:
 * the running process is adopted (never a second one: pid and start time
 * must match), one that died meanwhile is started again by its restart
 * policy on the same PORT, a stopped one stays stopped; its proxy site is
 * set again, then Caddy is started or adopted. A record that cannot be
 * read is logged and skipped. While a deploy runs, "svcnew/NAME" ("PID
 * PGID START_TIME") names its new release's process until the deploy
 * ends; an agent that died before then leaves it, and the next one kills
 * that group first (if the pid is still that process), so a release that
 * never became the serving one does not run on as a second process. The deploy's secrets are kept for restarts
 * sealed (AES-256-GCM, bound to service and release) with the agent-local
 * key DATA/secrets.key (32 random bytes, 0600, made on first use); never
 * logged. Without the key (or with another) the service is adopted if it
 * runs but not started: deploy it again.
 *
 * Output: each service's serving release writes to logs/RELEASE.log (a
 * file: the process outlives the agent). An svctail follows that file into
 * the service's svclog, logs/service.log (10 MiB x 5 rotated files),
 * resuming after an agent restart where it stopped (svctail.h), and
 * switches to the new release's file when the serving release changes
 * (pipeline on_service), the old one read to its end first. At start every
 * service with a `current` release is followed again.
 */
#ifndef DPLOYR_SERVICES_H
#define DPLOYR_SERVICES_H

#include <stddef.h>

#include "buf.h"
#include "loop.h"
#include "spool.h"
#include "store.h"

struct services;

enum services_status {
	SERVICES_ACCEPTED,  /* started; events report the end */
	SERVICES_DONE,	    /* done at once; result = {"status":N,...} */
	SERVICES_DUPLICATE, /* seen before; result = stored answer or empty */
	SERVICES_ERROR = -1 /* store failure: nothing recorded (err) */
};

/* notify(loop, 0, arg, 0) runs whenever events were spooled. The store
 * must hold "spool" and "meta"; store, spool and loop are borrowed.
 * data_dir is copied. NULL with err. */
struct services *services_new(struct loop *loop, struct store *s, struct spool *sp,
			      const char *data_dir, loop_fn notify, void *arg, char *err,
			      size_t errlen);
/* Stops deploys in flight (pipeline_free). Accepts NULL. */
void services_free(struct services *ss);
/* 1 when kind is handled here. */
int services_handles(const char *kind);
/* Record and run a task (see the top comment). SERVICES_DONE: answer
 * the task_ack "done" with result. */
enum services_status services_submit(struct services *ss, const char *task_id, const char *kind,
				     const char *payload, struct buf *result, char *err,
				     size_t errlen);
/* Deploys in progress. */
size_t services_busy(const struct services *ss);
/* Cancel task_id if it is a service_logs follow: its exec_exit says
 * "cancelled":true. 0, or -1 when no such task follows here. */
int services_cancel(struct services *ss, const char *task_id);
/* The agent is stopping: end every follow (exec_exit status 1, "the agent
 * stopped"). */
void services_stop_follows(struct services *ss);

/* Serve web and static services through Caddy (see above): listen_host is
 * the IP the site ports bind to (NULL: every address), caddy the program
 * (NULL: "caddy" in PATH). Call before services_restore and any task;
 * Caddy starts when a site needs it. 0, or -1 with err. */
int services_proxy(struct services *ss, const char *listen_host, const char *caddy, char *err,
		   size_t errlen);
/* At agent start: take back every persisted service, set their proxy
 * sites, then start (or adopt) Caddy. Problems are logged. */
void services_restore(struct services *ss);

#endif
