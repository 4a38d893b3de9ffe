/* POST /v1/services/S/logs: the body's lines, since_ms, follow and raw
 * checked and passed to the agent's service_logs task. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "deploys.h"
#include "fleet.h"
#include "harness.h"
#include "proto.h"

static const char *const dbs[] = {FLEET_DBS, QUEUE_DBS, AUTH_DBS, DEPLOYS_DBS, NULL};

struct fake {
	char online[FLEET_ID_MAX];
	char delivered[FLEET_ID_MAX];
};

static int f_online(void *arg, const char *id)
{
	return strcmp(((struct fake *)arg)->online, id) == 0;
}
static void f_deliver(void *arg, const char *id)
{
	snprintf(((struct fake *)arg)->delivered, FLEET_ID_MAX, "%s", id);
}
static void f_revoked(void *arg, const char *id)
{
	(void)arg;
	(void)id;
}
static void f_cancel(void *arg, const char *inst, const char *task)
{
	(void)arg;
	(void)inst;
	(void)task;
}

/* The status, and the reply's member key (or the whole body) in out. */
static int post(struct api_config *cfg, const char *auth, const char *path, const char *body,
		const char *key, char *out, size_t outlen)
{
	struct api_request req = {"POST", path, auth, body, body ? strlen(body) : 0, NULL};
	struct api_response r;
	char err[128];
	api_response_init(&r);
	api_handle(cfg, &req, &r);
	struct proto_json *doc = proto_json_parse(r.body.data, r.body.len, err, sizeof err);
	const char *v = doc && key ? proto_jv_get_str(proto_json_root(doc), key) : NULL;
	snprintf(out, outlen, "%s", v ? v : r.body.data ? r.body.data : "");
	proto_json_free(doc);
	int st = r.status;
	api_response_release(&r);
	return st;
}

static void payload_of(struct api_config *cfg, const char *task, char *out, size_t outlen)
{
	struct queue_task k;
	struct store_txn *t = store_txn_begin(cfg->store, 1);
	CHECK_INT(queue_get(t, task, &k), 0);
	store_txn_abort(t);
	CHECK_STR(k.kind, "service_logs");
	snprintf(out, outlen, "%s", k.payload);
	queue_task_release(&k);
}

TEST(api_logs_route_passes_lines_since_follow_raw)
{
	char err[256], v[512], id[64], task[64], pl[512];
	struct fake fake = {{0}, {0}};
	struct api_config cfg = {0};
	cfg.store = store_open("st", dbs, 0, 0, err, sizeof err);
	CHECK(cfg.store);
	cfg.rng = crypt_rng_new();
	cfg.agent_addr = "127.0.0.1:7444";
	cfg.hooks = (struct api_hooks){f_online, f_deliver, f_revoked, f_cancel, &fake};
	struct store_txn *t = store_txn_begin(cfg.store, 0);
	char *tok = auth_token_create(t, cfg.rng, "owner", AUTH_OWNER);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	char auth[128];
	snprintf(auth, sizeof auth, "Bearer %s", tok);
	free(tok);
	CHECK_INT(post(&cfg, auth, "/v1/instances", "{\"name\":\"web-1\"}", "id", id, sizeof id),
		  201);
	/* no deployment of it: not found */
	CHECK_INT(post(&cfg, auth, "/v1/services/api/logs", "{}", "error", v, sizeof v), 404);
	t = store_txn_begin(cfg.store, 0);
	struct deploys_new in = {.cluster = "default",
				 .service = "api",
				 .instance = id,
				 .blueprint = "name: api\n",
				 .title = "t"};
	CHECK_INT(deploys_add(t, cfg.rng, &in, 1000, NULL, err, sizeof err), 0);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	CHECK_INT(
	    post(&cfg, auth, "/v1/services/api/logs", "{\"follow\":true}", "error", v, sizeof v),
	    409);
	snprintf(fake.online, sizeof fake.online, "%.20s", id);

	/* every bad field is named */
	CHECK_INT(post(&cfg, auth, "/v1/services/api/logs",
		       "{\"lines\":0,\"since_ms\":-5,\"follow\":\"yes\"}", "error", v, sizeof v),
		  400);
	CHECK(strstr(v, "'lines'") && strstr(v, "'since_ms'") && strstr(v, "'follow'"));
	CHECK_INT(post(&cfg, auth, "/v1/services/api/logs", "{\"raw\":1}", "error", v, sizeof v),
		  400);
	CHECK_STR(fake.delivered, "");

	/* no body: the agent's defaults */
	CHECK_INT(post(&cfg, auth, "/v1/services/api/logs", NULL, "task_id", task, sizeof task),
		  201);
	CHECK_STR(fake.delivered, id);
	payload_of(&cfg, task, pl, sizeof pl);
	CHECK_STR(pl, "{\"service\":\"api\"}");
	CHECK_INT(post(&cfg, auth, "/v1/services/api/logs",
		       "{\"lines\":20,\"since_ms\":1795000000000,\"follow\":true,\"raw\":true}",
		       "task_id", task, sizeof task),
		  201);
	payload_of(&cfg, task, pl, sizeof pl);
	CHECK_STR(pl, "{\"service\":\"api\",\"lines\":20,\"since_ms\":1795000000000,"
		      "\"follow\":true,\"raw\":true}");
	CHECK_INT(post(&cfg, auth, "/v1/services/api/logs", "{\"follow\":false,\"lines\":7}",
		       "task_id", task, sizeof task),
		  201);
	payload_of(&cfg, task, pl, sizeof pl);
	CHECK_STR(pl, "{\"service\":\"api\",\"lines\":7}");
	store_close(cfg.store);
	crypt_rng_free(cfg.rng);
}
