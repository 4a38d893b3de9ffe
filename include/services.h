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
 * At most once: a task id is recorded ("meta" database, "svctask/ID")
 * before it runs; a known id is a duplicate and runs nothing. A deploy
 * recorded as running whose pipeline is gone (the agent restarted during
 * it) is ended then with deploy_done error. Releases do not survive an
 * agent restart yet (no pipeline_adopt).
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

#endif
