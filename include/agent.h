/* agent: the daemon on a VM (dployr agent, dployrd; DESIGN.md sections 2-4).
 *
 * One outbound mTLS WebSocket to base's agent port (GET /v1/agent), never a
 * listening socket. The session, as a state machine:
 *
 *   WAIT --timer--> CONNECTING --upgraded--> HELLO --welcome--> ONLINE
 *     ^                 |                      |                  |
 *     +----closed-------+----------------------+------------------+
 *   any --stop--> STOPPING --tasks done--> STOPPED (loop_stop)
 *
 * WAIT lasts a jittered exponential backoff (backoff.h: 0.5 s doubling to
 * 30 s), reset after a session that stayed online for AGENT_STABLE_MS.
 * ONLINE: WebSocket ping every heartbeat_ms (from welcome), and a peer
 * silent for 3 x heartbeat_ms is dead (the connection's idle timeout);
 * access token refreshed at half its remaining life; the certificate
 * renewed (same key, a new CSR) once less than a third of its lifetime is
 * left, written atomically and used from the next connection on; spooled
 * events (spool.h) sent in seq order and dropped when acked; tasks run by
 * taskrun.h and answered with task_ack accepted / duplicate / failed.
 *
 * Data directory: agent.key, agent.crt, ca.crt, agent.json (written by
 * join.h), store/ (LMDB: tasks, spool, meta), services/ (releases, see
 * services.h), proxy/ (Caddy's state) and secrets.key. Logs never carry
 * tokens or keys.
 */
#ifndef DPLOYR_AGENT_H
#define DPLOYR_AGENT_H

#include <stddef.h>

#include "loop.h"

#define AGENT_STABLE_MS	   10000
#define AGENT_HEARTBEAT_MS 5000 /* until welcome says otherwise */
#define AGENT_CONNECT_MS   10000
#define AGENT_STOP_MS	   8000	       /* bound on waiting for tasks when stopping */
#define AGENT_RENEW_GAP_MS 60000       /* least time between certificate renewals */
#define AGENT_TASK_KEEP_S  (7 * 86400) /* results kept for duplicate answers */
#define AGENT_CAPABILITIES "exec", "deploy"

struct agent;

/* The identity read from a data directory. */
struct agent_identity {
	char instance_id[129];
	char name[64];
	char base_api[301];
	char agent_addr[301];
	char ca_fingerprint[72];
	char cert_not_after[32]; /* ISO 8601 UTC */
};

/* Check a data directory: agent.json, key, certificate (for this instance,
 * chaining to ca.crt, matching the key) and the CA pin. 0 with id filled
 * (id may be NULL), or -1 with every problem in err. */
int agent_check(const char *data_dir, struct agent_identity *id, char *err, size_t errlen);

/* Load the data directory and open the store (recovering tasks a crash
 * left). Nothing is connected until agent_start. NULL with err. */
struct agent *agent_new(struct loop *loop, const char *data_dir, char *err, size_t errlen);
/* Serve web and static services through Caddy, binding their ports to
 * listen_host (an IP; NULL: every address): services_proxy. Before
 * agent_start; without it services answer on their own PORT only. 0, or
 * -1 with err. */
int agent_proxy(struct agent *a, const char *listen_host, char *err, size_t errlen);
/* Take back the services the previous agent left (services_restore), then
 * start connecting; SIGTERM/SIGINT are handled (agent_stop), SIGHUP
 * reopens the log file. */
void agent_start(struct agent *a);
/* Stop: cancel running tasks (their results are spooled), close the
 * session with 1001, then loop_stop(). */
void agent_stop(struct agent *a);
/* Not from a callback. Accepts NULL. */
void agent_free(struct agent *a);

#endif
