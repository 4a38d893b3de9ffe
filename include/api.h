/* api: the HTTPS JSON API of base (contract: issue 3), apart from sockets.
 *
 * api_handle() takes a request already parsed (method, path, the
 * Authorization header, the body) and fills a response (status, content
 * type, body). It routes through the permission table of auth.h (unknown
 * path 404, wrong method 405, missing or bad token 401, too small a role
 * 403), reads and writes the store in one transaction per request, and
 * reaches the live agent sessions only through the hooks, so tests drive
 * it with plain structs. Errors are {"error":"message"}.
 *
 * GET /v1/tasks/ID/stream answers 101 with stream_task set: the caller
 * upgrades the connection to WebSocket and streams the task's output.
 *
 * Deployments (issue 4; one cluster, "default", for now):
 *   POST /v1/deployments {instance, blueprint, title?, upload?}  lint
 *        again, record (deploys.h), start it when its service is idle
 *   GET  /v1/deployments/ID, GET /v1/deployments/ID/log?offset=N
 *        ({status, stage, reason, offset, next, data})
 *   POST /v1/deployments/ID/cancel
 *   GET  /v1/services[?instance=NAME] (each service's serving release,
 *        merged with its agent's latest service_status report: state,
 *        pid, restarts, health, upstream_port, error, since_ms,
 *        updated_ms; "port" is the blueprint's; "online" tells whether
 *        the instance's agent is connected, see svcstatus.h),
 *        GET /v1/services/S/deployments [?limit=N&before=SEQ]
 *   POST /v1/services/S/rollback {to?}, POST /v1/services/S/logs {lines},
 *        POST /v1/services/S/stop|start|restart  (the last two answer a
 *        task id: its output and exit status tell the result)
 *   GET  /v1/services/S/secrets, PUT|DELETE /v1/services/S/secrets/NAME
 *        ({value}: never echoed, logged or listed)
 * A started deployment is a "deploy" task for its instance; base adds the
 * service's secrets to it only when sending it on the agent session.
 */
#ifndef DPLOYR_API_H
#define DPLOYR_API_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "crypt.h"
#include "pki.h"
#include "queue.h"
#include "store.h"

/* What the API asks of the daemon; every hook may be NULL. */
struct api_hooks {
	/* 1 when the instance has a live agent session. */
	int (*online)(void *arg, const char *instance_id);
	/* A task was queued for the instance: deliver it now if online. */
	void (*deliver)(void *arg, const char *instance_id);
	/* The instance was removed: close its session (4003). */
	void (*revoked)(void *arg, const char *instance_id);
	/* Ask the instance's agent to cancel the task. */
	void (*cancel)(void *arg, const char *instance_id, const char *task_id);
	void *arg;
};

struct api_config {
	struct store *store;
	struct crypt_rng *rng;
	const char *ca_pem;
	const struct pki_key *ca_key;
	const char *agent_addr; /* told to joining agents ("host:port") */
	const uint8_t *master;	/* CRYPT_KEY_LEN bytes: secrets' master key */
	int cert_ttl_s;		/* agent certificates (0: 24 h) */
	struct api_hooks hooks;
};

struct api_request {
	const char *method;
	const char *path;	   /* raw path, without the query */
	const char *authorization; /* header value or NULL */
	const char *body;
	size_t body_len;
	const char *query; /* raw query after '?', or NULL */
};

struct api_response {
	int status;
	const char *content_type; /* static string */
	struct buf body;
	char stream_task[QUEUE_ID_MAX]; /* set with 101: upgrade and stream */
	char allow[64];			/* set with 405: the Allow header */
};

void api_response_init(struct api_response *r);
void api_response_release(struct api_response *r);

void api_handle(const struct api_config *cfg, const struct api_request *req,
		struct api_response *resp);

/* Issue an agent certificate for csr_pem with CN id, valid now - 5 min to
 * now + cfg->cert_ttl_s, and record its serial and end in the instance
 * (inside t). Returns the PEM (caller frees) or NULL with err. */
char *api_issue_agent_cert(const struct api_config *cfg, struct store_txn *t, const char *id,
			   const char *csr_pem, char *err, size_t errlen);

/* Largest archive of a source: upload deployment (it travels base64 in
 * one API request and one task message, both at most 1 MiB). */
#define API_UPLOAD_MAX ((size_t)512 << 10)

/* Deployments (deploys.h) run one at a time per service: when none of
 * cluster/service runs, start the oldest queued one and queue its "deploy"
 * task ({"deployment_id","blueprint"}; base adds the service's secrets
 * when it sends the task) for its instance. Sets deliver_to (FLEET_ID_MAX
 * bytes) to that instance when one was queued. 0, or -1 with t poisoned. */
int api_deploy_start_next(const struct api_config *cfg, struct store_txn *t, const char *cluster,
			  const char *service, char *deliver_to);
/* Forget the upload archive kept for deployment id (it ended). */
void api_deploy_upload_drop(struct store_txn *t, const char *id);

#endif
