/* The deployment, service and secret routes of api.c, with a fake daemon. */
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
#include "secrets.h"
#include "svcstatus.h"
#include "xalloc.h"

static const char *const dbs[] = {FLEET_DBS,   QUEUE_DBS,     AUTH_DBS, DEPLOYS_DBS,
				  SECRETS_DBS, SVCSTATUS_DBS, "meta",	NULL};

struct env {
	struct api_config cfg;
	uint8_t master[CRYPT_KEY_LEN];
	char auth[128];
	char instance[FLEET_ID_MAX];
	char online[FLEET_ID_MAX];
	char delivered[FLEET_ID_MAX];
};

static int f_online(void *arg, const char *id)
{
	return strcmp(((struct env *)arg)->online, id) == 0;
}
static void f_deliver(void *arg, const char *id)
{
	snprintf(((struct env *)arg)->delivered, FLEET_ID_MAX, "%s", id);
}

static void env_init(struct env *e)
{
	char err[256], *tok = NULL;
	struct fleet_instance in;
	memset(e, 0, sizeof *e);
	e->cfg.store = store_open("st", dbs, 0, 0, err, sizeof err);
	CHECK(e->cfg.store);
	e->cfg.rng = crypt_rng_new();
	crypt_random(e->cfg.rng, e->master, sizeof e->master);
	e->cfg.master = e->master;
	e->cfg.hooks.online = f_online;
	e->cfg.hooks.deliver = f_deliver;
	e->cfg.hooks.arg = e;
	struct store_txn *t = store_txn_begin(e->cfg.store, 0);
	char *owner = auth_token_create(t, e->cfg.rng, "owner", AUTH_OWNER);
	CHECK_INT(
	    fleet_add(t, e->cfg.rng, "web-1", (int64_t)time(NULL), &in, &tok, err, sizeof err), 0);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	snprintf(e->auth, sizeof e->auth, "Bearer %s", owner);
	snprintf(e->instance, sizeof e->instance, "%s", in.id);
	snprintf(e->online, sizeof e->online, "%s", in.id);
	free(owner);
	free(tok);
}

static void env_release(struct env *e)
{
	store_close(e->cfg.store);
	crypt_rng_free(e->cfg.rng);
}

/* One request; the reply body (NUL-terminated) goes to body (free it). */
static int call(struct env *e, const char *method, const char *path, const char *query,
		const char *reqbody, char **body)
{
	struct api_response r;
	struct api_request req = {method, path, e->auth, reqbody, reqbody ? strlen(reqbody) : 0,
				  query};
	api_response_init(&r);
	api_handle(&e->cfg, &req, &r);
	int st = r.status;
	*body = xstrdup(r.body.data ? r.body.data : "");
	api_response_release(&r);
	return st;
}

static char *field(const char *json, const char *key)
{
	char err[128];
	struct proto_json *doc = proto_json_parse(json, strlen(json), err, sizeof err);
	CHECK(doc);
	const char *v = proto_jv_get_str(proto_json_root(doc), key);
	char *out = xstrdup(v ? v : "");
	proto_json_free(doc);
	return out;
}

static char *deploy_body(const char *instance, const char *bp)
{
	struct buf b = BUF_INIT;
	buf_puts(&b, "{\"instance\":");
	buf_json_cstr(&b, instance);
	buf_puts(&b, ",\"blueprint\":");
	buf_json_cstr(&b, bp);
	buf_puts(&b, ",\"title\":\"t\"}");
	return buf_detach(&b, NULL);
}

struct found {
	int n;
	char kind[32];
	struct buf payload;
};

static void collect(const struct queue_task *k, void *arg)
{
	struct found *f = arg;
	f->n++;
	snprintf(f->kind, sizeof f->kind, "%s", k->kind);
	buf_reset(&f->payload);
	buf_puts(&f->payload, k->payload);
}

TEST(apideploy_lints_then_queues_one_task_per_service)
{
	struct env e;
	char *out, *b;
	env_init(&e);

	b = deploy_body("web-1", "name: api\ntype: webb\n");
	CHECK_INT(call(&e, "POST", "/v1/deployments", NULL, b, &out), 400);
	CHECK(strstr(out, "blueprint: "));
	free(b);
	free(out);

	b = deploy_body("nope", "name: api\ntype: web\nsource: remote\nremote:\n  url: "
				"file:///r.git\nruntime: python\nrun_cmd: python3 a.py\n");
	CHECK_INT(call(&e, "POST", "/v1/deployments", NULL, b, &out), 404);
	free(b);
	free(out);

	b = deploy_body("web-1", "name: api\ntype: web\nsource: remote\nremote:\n  url: "
				 "file:///r.git\nruntime: python\nrun_cmd: python3 a.py\n");
	CHECK_INT(call(&e, "POST", "/v1/deployments", NULL, b, &out), 201);
	char *id1 = field(out, "id"), *st = field(out, "status");
	CHECK_STR(st, "running");
	CHECK_STR(e.delivered, e.instance);
	free(st);
	free(out);

	/* a second one of the same service waits */
	CHECK_INT(call(&e, "POST", "/v1/deployments", NULL, b, &out), 201);
	char *id2 = field(out, "id");
	st = field(out, "status");
	CHECK_STR(st, "queued");
	free(st);
	free(out);
	free(b);

	/* exactly one deploy task, carrying the blueprint and no secrets */
	struct found f = {0, "", BUF_INIT};
	struct store_txn *t = store_txn_begin(e.cfg.store, 0);
	queue_lease(t, e.instance, (int64_t)time(NULL) * 1000 + 1, 1000, 1, collect, &f);
	store_txn_abort(t);
	CHECK_INT(f.n, 1);
	CHECK_STR(f.kind, "deploy");
	CHECK(strstr(f.payload.data, id1));
	CHECK(strstr(f.payload.data, "run_cmd"));
	CHECK(!strstr(f.payload.data, "secrets"));
	buf_release(&f.payload);

	/* cancel the queued one: at once */
	char path[128];
	snprintf(path, sizeof path, "/v1/deployments/%s/cancel", id2);
	CHECK_INT(call(&e, "POST", path, NULL, "{}", &out), 200);
	st = field(out, "status");
	CHECK_STR(st, "cancelled");
	free(st);
	free(out);
	CHECK_INT(call(&e, "POST", path, NULL, "{}", &out), 409);
	free(out);

	/* the listing, and the log with a bad offset */
	CHECK_INT(call(&e, "GET", "/v1/services/api/deployments", NULL, NULL, &out), 200);
	CHECK(strstr(out, id1) && strstr(out, id2));
	free(out);
	snprintf(path, sizeof path, "/v1/deployments/%s/log", id1);
	CHECK_INT(call(&e, "GET", path, "offset=-3", NULL, &out), 400);
	free(out);
	CHECK_INT(call(&e, "GET", path, "offset=0", NULL, &out), 200);
	CHECK(strstr(out, "\"data\":\"\""));
	free(out);
	CHECK_INT(call(&e, "GET", "/v1/services", NULL, NULL, &out), 200);
	CHECK(strstr(out, "\"name\":\"api\"") && strstr(out, "\"state\":\"deploying\""));
	free(out);
	CHECK_INT(call(&e, "GET", "/v1/deployments/d-000000000000", NULL, NULL, &out), 404);
	free(out);
	/* nothing to roll back to */
	CHECK_INT(call(&e, "POST", "/v1/services/api/rollback", NULL, "{}", &out), 409);
	free(out);
	free(id1);
	free(id2);
	env_release(&e);
}

TEST(apideploy_secrets_are_write_only)
{
	struct env e;
	char *out;
	env_init(&e);
	CHECK_INT(call(&e, "PUT", "/v1/services/api/secrets/DB_URL", NULL,
		       "{\"value\":\"planted-value-123\"}", &out),
		  200);
	CHECK(!strstr(out, "planted"));
	free(out);
	CHECK_INT(call(&e, "PUT", "/v1/services/api/secrets/1BAD", NULL, "{\"value\":\"x\"}", &out),
		  400);
	free(out);
	CHECK_INT(call(&e, "PUT", "/v1/services/api/secrets/X", NULL, "{}", &out), 400);
	free(out);
	CHECK_INT(call(&e, "GET", "/v1/services/api/secrets", NULL, NULL, &out), 200);
	CHECK(strstr(out, "\"name\":\"DB_URL\""));
	CHECK(!strstr(out, "planted"));
	free(out);
	/* the agent's copy opens; the store holds no clear text */
	struct secrets_pair *p = NULL;
	size_t n = 0;
	char err[256];
	struct store_txn *t = store_txn_begin(e.cfg.store, 1);
	CHECK_INT(secrets_open_for_agent(t, e.master, "default", "api", &p, &n, err, sizeof err),
		  0);
	store_txn_abort(t);
	CHECK_INT((int)n, 1);
	CHECK_STR(p[0].value, "planted-value-123");
	secrets_pairs_free(p, n);
	CHECK_INT(call(&e, "DELETE", "/v1/services/api/secrets/DB_URL", NULL, NULL, &out), 200);
	free(out);
	CHECK_INT(call(&e, "DELETE", "/v1/services/api/secrets/DB_URL", NULL, NULL, &out), 404);
	free(out);
	env_release(&e);
}

/* Deployment id of service api ends done, its release running on port. */
static void finish_deploy(struct env *e, const char *id, int port, int64_t pid)
{
	char err[256];
	struct deploys_progress p = {"health", NULL, NULL, id, pid, port};
	struct store_txn *t = store_txn_begin(e->cfg.store, 0);
	CHECK_INT(deploys_set_progress(t, id, &p, err, sizeof err), 0);
	CHECK_INT(deploys_set_status(t, id, DEPLOYS_DONE, 5, NULL, NULL, err, sizeof err), 0);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
}

/* GET /v1/services (query may be NULL): the array's only row as text of
 * "key=value" pairs for the keys asked, e.g. "state=running port=8080". */
static char *row(struct env *e, const char *query, const char *keys)
{
	char *out, err[128];
	CHECK_INT(call(e, "GET", "/v1/services", query, NULL, &out), 200);
	struct proto_json *doc = proto_json_parse(out, strlen(out), err, sizeof err);
	CHECK(doc);
	const struct proto_jv *arr = proto_json_root(doc);
	struct buf b = BUF_INIT;
	if (proto_jv_len(arr) != 1) {
		buf_printf(&b, "%zu rows", proto_jv_len(arr));
	} else {
		char *ks = xstrdup(keys), *save = NULL;
		for (char *k = strtok_r(ks, " ", &save); k; k = strtok_r(NULL, " ", &save)) {
			const struct proto_jv *v = proto_jv_get(proto_jv_first(arr), k);
			int64_t n;
			int bl;
			buf_printf(&b, "%s%s=", b.len ? " " : "", k);
			if (!v)
				buf_puts(&b, "MISSING");
			else if (proto_jv_str(v))
				buf_puts(&b, proto_jv_str(v));
			else if (proto_jv_int(v, &n) == 0)
				buf_printf(&b, "%lld", (long long)n);
			else if (proto_jv_bool(v, &bl) == 0)
				buf_puts(&b, bl ? "true" : "false");
			else
				buf_puts(&b, "null");
		}
		free(ks);
	}
	proto_json_free(doc);
	free(out);
	return buf_detach(&b, NULL);
}

#define CHECK_ROW(e, query, keys, want)                                                            \
	do {                                                                                       \
		char *got_ = row(e, query, keys);                                                  \
		CHECK_STR(got_, want);                                                             \
		free(got_);                                                                        \
	} while (0)

TEST(apideploy_services_merge_the_agents_report)
{
	struct env e;
	char *out, *b, err[256];
	env_init(&e);
	b = deploy_body("web-1",
			"name: api\ntype: web\nsource: remote\nremote:\n  url: "
			"file:///r.git\nruntime: python\nrun_cmd: python3 a.py\nport: 8080\n");
	CHECK_INT(call(&e, "POST", "/v1/deployments", NULL, b, &out), 201);
	char *id1 = field(out, "id");
	free(out);
	/* deploying, nothing reported yet */
	char want[512];
	snprintf(want, sizeof want,
		 "name=api instance=web-1 type=web state=deploying deploying=%s restarts=null "
		 "health=null online=true",
		 id1);
	CHECK_ROW(&e, NULL, "name instance type state deploying restarts health online", want);
	finish_deploy(&e, id1, 40123, 99);
	/* done: the blueprint port for users, the release's own upstream */
	snprintf(want, sizeof want,
		 "state=running deployment=%s release=%s port=8080 upstream_port=40123 pid=99 "
		 "restarts=null health=null error=null since_ms=null updated_ms=null online=true",
		 id1, id1);
	const char *keys = "state deployment release port upstream_port pid restarts health error "
			   "since_ms updated_ms online";
	CHECK_ROW(&e, NULL, keys, want);
	/* the agent's report wins for what is live */
	struct svcstatus st = {0};
	snprintf(st.cluster, sizeof st.cluster, "default");
	snprintf(st.service, sizeof st.service, "api");
	snprintf(st.instance, sizeof st.instance, "%s", e.instance);
	snprintf(st.release, sizeof st.release, "%s", id1);
	snprintf(st.state, sizeof st.state, "backoff");
	snprintf(st.health, sizeof st.health, "unhealthy");
	snprintf(st.error, sizeof st.error, "exited with status 1");
	st.restarts = 4;
	st.port = 40200;
	st.since_ms = 1000;
	st.ts_ms = 2000;
	struct store_txn *t = store_txn_begin(e.cfg.store, 0);
	CHECK_INT(svcstatus_put(t, &st), 0);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	snprintf(want, sizeof want,
		 "state=backoff deployment=%s release=%s port=8080 upstream_port=40200 pid=0 "
		 "restarts=4 health=unhealthy error=exited with status 1 since_ms=1000 "
		 "updated_ms=2000 online=true",
		 id1, id1);
	CHECK_ROW(&e, NULL, keys, want);
	CHECK_ROW(&e, "instance=web-1", "name", "name=api");
	CHECK_ROW(&e, "instance=nope", "name", "0 rows");
	/* the instance goes offline: the last report stays, marked so */
	e.online[0] = 0;
	CHECK_ROW(&e, NULL, "state restarts health online",
		  "state=backoff restarts=4 health=unhealthy online=false");
	strcpy(e.online, e.instance);

	/* a second deployment, done; the agent still reports the first
	 * release (e.g. a rollback): the row follows the agent */
	free(b);
	b = deploy_body("web-1",
			"name: api\ntype: web\nsource: remote\nremote:\n  url: "
			"file:///r.git\nruntime: python\nrun_cmd: python3 a.py\nport: 9090\n");
	CHECK_INT(call(&e, "POST", "/v1/deployments", NULL, b, &out), 201);
	char *id2 = field(out, "id");
	free(out);
	finish_deploy(&e, id2, 40300, 100);
	snprintf(want, sizeof want, "deployment=%s port=8080 upstream_port=40200", id1);
	CHECK_ROW(&e, NULL, "deployment port upstream_port", want);
	/* once it reports the new one */
	snprintf(st.release, sizeof st.release, "%s", id2);
	snprintf(st.state, sizeof st.state, "running");
	st.pid = 4242;
	st.port = 40300;
	st.ts_ms = 3000;
	t = store_txn_begin(e.cfg.store, 0);
	CHECK_INT(svcstatus_put(t, &st), 0);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	snprintf(want, sizeof want,
		 "state=running deployment=%s port=9090 upstream_port=40300 pid=4242", id2);
	CHECK_ROW(&e, NULL, "state deployment port upstream_port pid", want);
	free(b);
	free(id1);
	free(id2);
	env_release(&e);
}
