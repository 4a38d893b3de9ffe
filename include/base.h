/* base: the control-plane daemon (DESIGN.md sections 2-4, contract of
 * issue 3) on the caller's loop.
 *
 * Two listeners: the API port (HTTPS, server certificate, no client
 * certificate; routes in api.h, and the task output WebSocket streams) and
 * the agent port (strict mTLS: the handshake fails without a client
 * certificate of the base CA; then the certificate's CN must be a known,
 * not removed instance and its serial the one issued last). On the agent
 * port, `GET /v1/agent` upgrades to WebSocket and carries proto messages:
 *
 *   hello -> welcome + event_ack (applied seq) + every unfinished task;
 *   heartbeats (WebSocket ping every heartbeat_ms, dead after 3x silence);
 *   token_refresh -> token (5-minute access tokens; an expired one closes
 *   the session with 4001); cert_renew -> cert; certificate expiry or
 *   `instance rm` closes with 4003; a second session of one instance
 *   replaces the first (4002);
 *   task (leased, re-sent on lease expiry and reconnect) <- task_ack;
 *   event (exactly-once apply by per-instance seq) -> event_ack;
 *   cancel.
 */
#ifndef DPLOYR_BASE_H
#define DPLOYR_BASE_H

#include <stddef.h>

#include "basedir.h"
#include "loop.h"
#include "net.h"

struct base_opts {
	const char *listen;	  /* API address (default 127.0.0.1:7443) */
	const char *agent_listen; /* agent address (default 127.0.0.1:7444) */
	int heartbeat_ms;	  /* 0: 5000 */
	int token_ttl_s;	  /* agent access tokens, 0: 300 */
	int cert_ttl_s;		  /* agent certificates, 0: 24 h */
	int lease_ms;		  /* task lease, 0: 30000 */
};

struct base;

/* Listen on both ports. dir stays the caller's and must outlive base.
 * NULL with err on failure. */
struct base *base_new(struct loop *loop, struct basedir *dir, const struct base_opts *o, char *err,
		      size_t errlen);
/* Not from a loop callback. Ends every connection at once. Accepts NULL. */
void base_free(struct base *b);
/* The bound addresses (ports after listening on port 0). */
int base_api_addr(const struct base *b, struct net_addr *out);
int base_agent_addr(const struct base *b, struct net_addr *out);
/* Connected agent sessions (after hello). */
size_t base_sessions(const struct base *b);

#endif
