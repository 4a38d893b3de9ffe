#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "fleet.h"
#include "harness.h"
#include "proto.h"

static const char *const dbs[] = {FLEET_DBS, QUEUE_DBS, AUTH_DBS, NULL};

/* A fake daemon: which instances are online, what the API asked of it. */
struct fake {
	char online[FLEET_ID_MAX];
	char delivered[FLEET_ID_MAX];
	char revoked[FLEET_ID_MAX];
	char cancelled[QUEUE_ID_MAX];
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
	snprintf(((struct fake *)arg)->revoked, FLEET_ID_MAX, "%s", id);
}
static void f_cancel(void *arg, const char *inst, const char *task)
{
	(void)inst;
	snprintf(((struct fake *)arg)->cancelled, QUEUE_ID_MAX, "%s", task);
}

struct env {
	struct api_config cfg;
	struct fake fake;
	struct pki_key *ca_key;
	char *ca_pem;
	char auth[128];
};

static void env_init(struct env *e)
{
	char err[256];
	memset(e, 0, sizeof *e);
	e->cfg.store = store_open("st", dbs, 0, 0, err, sizeof err);
	CHECK(e->cfg.store);
	e->cfg.rng = crypt_rng_new();
	e->ca_key = pki_key_generate(e->cfg.rng);
	struct pki_cert_opts o = {0};
	o.cn = "test CA";
	o.not_before = time(NULL) - 60;
	o.not_after = time(NULL) + 86400;
	e->ca_pem = pki_ca_create(e->ca_key, &o, e->cfg.rng, err, sizeof err);
	CHECK(e->ca_pem);
	e->cfg.ca_pem = e->ca_pem;
	e->cfg.ca_key = e->ca_key;
	e->cfg.agent_addr = "127.0.0.1:7444";
	e->cfg.hooks = (struct api_hooks){f_online, f_deliver, f_revoked, f_cancel, &e->fake};
	struct store_txn *t = store_txn_begin(e->cfg.store, 0);
	char *tok = auth_token_create(t, e->cfg.rng, "owner", AUTH_OWNER);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	snprintf(e->auth, sizeof e->auth, "Bearer %s", tok);
	free(tok);
}

static void env_release(struct env *e)
{
	store_close(e->cfg.store);
	crypt_rng_free(e->cfg.rng);
	pki_key_free(e->ca_key);
	free(e->ca_pem);
}

/* Run one request; the reply body is left in r (release it). */
static int call(struct env *e, const char *method, const char *path, const char *auth,
		const char *body, struct api_response *r)
{
	struct api_request req = {method, path, auth, body, body ? strlen(body) : 0, NULL};
	api_response_init(r);
	api_handle(&e->cfg, &req, r);
	return r->status;
}

/* The status, and member key's string of the JSON reply copied to out. */
static int call_get(struct env *e, const char *method, const char *path, const char *auth,
		    const char *body, const char *key, char *out, size_t outlen)
{
	struct api_response r;
	char err[128];
	int st = call(e, method, path, auth, body, &r);
	out[0] = 0;
	struct proto_json *doc = proto_json_parse(r.body.data, r.body.len, err, sizeof err);
	if (!doc)
		harness_fail(__FILE__, __LINE__, "reply is not JSON: %s", r.body.data);
	const char *v = key ? proto_jv_get_str(proto_json_root(doc), key) : NULL;
	snprintf(out, outlen, "%s", v ? v : r.body.data);
	proto_json_free(doc);
	api_response_release(&r);
	return st;
}

TEST(api_answers_ca_whoami_and_refuses_without_token)
{
	struct env e;
	struct api_response r;
	char v[512];
	env_init(&e);
	CHECK_INT(call(&e, "GET", "/v1/ca", NULL, NULL, &r), 200);
	CHECK_STR(r.body.data, e.ca_pem);
	CHECK_STR(r.content_type, "text/plain");
	api_response_release(&r);
	CHECK_INT(call_get(&e, "GET", "/v1/whoami", NULL, NULL, "error", v, sizeof v), 401);
	CHECK_STR(v, "missing or invalid API token");
	CHECK_INT(call_get(&e, "GET", "/v1/whoami", "Bearer dpy_x", NULL, "error", v, sizeof v),
		  401);
	CHECK_INT(call_get(&e, "GET", "/v1/whoami", e.auth, NULL, "user", v, sizeof v), 200);
	CHECK_STR(v, "owner");
	CHECK_INT(call_get(&e, "GET", "/v1/instances", NULL, NULL, "error", v, sizeof v), 401);
	CHECK_INT(call_get(&e, "GET", "/v1/nothing", e.auth, NULL, "error", v, sizeof v), 404);
	CHECK_INT(call(&e, "PATCH", "/v1/instances", e.auth, NULL, &r), 405);
	CHECK_STR(r.allow, "POST, GET");
	api_response_release(&r);
	/* the agent route lives on the agent port only */
	CHECK_INT(call_get(&e, "GET", "/v1/agent", NULL, NULL, "error", v, sizeof v), 404);
	env_release(&e);
}

TEST(api_instances_add_list_rm)
{
	struct env e;
	struct api_response r;
	char v[512], id[64];
	env_init(&e);
	CHECK_INT(call_get(&e, "POST", "/v1/instances", e.auth, "{\"name\":\"web-1\"}", "id", id,
			   sizeof id),
		  201);
	CHECK(fleet_id_valid(id));
	CHECK_INT(call_get(&e, "POST", "/v1/instances", e.auth, "{\"name\":\"web-1\"}", "error", v,
			   sizeof v),
		  409);
	CHECK_INT(call_get(&e, "POST", "/v1/instances", e.auth, "{\"name\":\"WEB\"}", "error", v,
			   sizeof v),
		  400);
	CHECK_INT(
	    call_get(&e, "POST", "/v1/instances", e.auth, "{\"name\":1}", "error", v, sizeof v),
	    400);
	CHECK_INT(call_get(&e, "POST", "/v1/instances", e.auth, "[", "error", v, sizeof v), 400);
	CHECK_INT(call_get(&e, "POST", "/v1/instances", e.auth, "[]", "error", v, sizeof v), 400);
	CHECK_INT(call_get(&e, "POST", "/v1/instances", e.auth, NULL, "error", v, sizeof v), 400);
	CHECK_INT(call(&e, "GET", "/v1/instances", e.auth, NULL, &r), 200);
	CHECK(strstr(r.body.data, "\"name\":\"web-1\",\"state\":\"pending\"") != NULL);
	api_response_release(&r);
	snprintf(e.fake.online, sizeof e.fake.online, "%.20s", id);
	CHECK_INT(call(&e, "GET", "/v1/instances", e.auth, NULL, &r), 200);
	CHECK(strstr(r.body.data, "\"state\":\"online\"") != NULL);
	api_response_release(&r);
	CHECK_INT(call_get(&e, "DELETE", "/v1/instances/web-1", e.auth, NULL, "id", v, sizeof v),
		  200);
	CHECK_STR(v, id);
	CHECK_STR(e.fake.revoked, id);
	CHECK_INT(call_get(&e, "DELETE", "/v1/instances/web-1", e.auth, NULL, "error", v, sizeof v),
		  404);
	CHECK_INT(call(&e, "GET", "/v1/instances", e.auth, NULL, &r), 200);
	CHECK(strstr(r.body.data, "\"state\":\"revoked\"") != NULL);
	api_response_release(&r);
	env_release(&e);
}

TEST(api_join_issues_a_certificate_once)
{
	struct env e;
	struct api_response r;
	char v[4096], tok[128], id[64], err[256];
	env_init(&e);
	CHECK_INT(call_get(&e, "POST", "/v1/instances", e.auth, "{\"name\":\"web-1\"}",
			   "join_token", tok, sizeof tok),
		  201);
	CHECK_INT(call_get(&e, "POST", "/v1/instances", e.auth, "{\"name\":\"web-2\"}", "id", id,
			   sizeof id),
		  201);
	struct pki_key *k = pki_key_generate(e.cfg.rng);
	char *csr = pki_csr_create(k, "whatever", e.cfg.rng, err, sizeof err);
	struct buf body = BUF_INIT;
	buf_puts(&body, "{\"token\":");
	buf_json_cstr(&body, tok);
	buf_puts(&body, ",\"csr\":\"garbage\"}");
	/* a bad CSR does not use the token up */
	CHECK_INT(call_get(&e, "POST", "/v1/join", NULL, body.data, "error", v, sizeof v), 400);
	buf_reset(&body);
	buf_puts(&body, "{\"token\":");
	buf_json_cstr(&body, tok);
	buf_puts(&body, ",\"csr\":");
	buf_json_cstr(&body, csr);
	buf_puts(&body, "}");
	CHECK_INT(call(&e, "POST", "/v1/join", NULL, body.data, &r), 200);
	struct proto_json *doc = proto_json_parse(r.body.data, r.body.len, err, sizeof err);
	CHECK(doc);
	const char *cert = proto_jv_get_str(proto_json_root(doc), "cert");
	CHECK_STR(proto_jv_get_str(proto_json_root(doc), "name"), "web-1");
	CHECK_STR(proto_jv_get_str(proto_json_root(doc), "agent_addr"), "127.0.0.1:7444");
	CHECK_STR(proto_jv_get_str(proto_json_root(doc), "ca"), e.ca_pem);
	struct pki_cert_info info;
	CHECK_INT(pki_cert_info(cert, &info, err, sizeof err), 0);
	CHECK_STR(info.cn, proto_jv_get_str(proto_json_root(doc), "instance_id"));
	CHECK(info.not_after - info.not_before <= 24 * 3600 + 300);
	CHECK_INT(pki_cert_verify(e.ca_pem, cert, NULL, err, sizeof err), 0);
	struct fleet_instance in;
	struct store_txn *t = store_txn_begin(e.cfg.store, 1);
	CHECK_INT(fleet_get(t, info.cn, &in), 0);
	store_txn_abort(t);
	CHECK_STR(in.cert_serial, info.serial);
	CHECK_INT(in.joined, 1);
	proto_json_free(doc);
	api_response_release(&r);
	/* single use */
	CHECK_INT(call_get(&e, "POST", "/v1/join", NULL, body.data, "error", v, sizeof v), 401);
	CHECK_STR(v, "join token is unknown, used or expired");
	CHECK_INT(call_get(&e, "POST", "/v1/join", NULL, "{\"token\":\"dpyj_x\",\"csr\":\"x\"}",
			   "error", v, sizeof v),
		  401);
	CHECK_INT(call_get(&e, "POST", "/v1/join", NULL, "{}", "error", v, sizeof v), 400);
	buf_release(&body);
	free(csr);
	pki_key_free(k);
	env_release(&e);
}

TEST(api_exec_queues_tasks_and_cancels)
{
	struct env e;
	char v[512], id[64], task[64];
	env_init(&e);
	CHECK_INT(call_get(&e, "POST", "/v1/instances", e.auth, "{\"name\":\"web-1\"}", "id", id,
			   sizeof id),
		  201);
	const char *run = "{\"argv\":[\"echo\",\"hi\"],\"timeout_s\":5}";
	CHECK_INT(
	    call_get(&e, "POST", "/v1/instances/web-1/exec", e.auth, run, "error", v, sizeof v),
	    409);
	CHECK_STR(v, "instance 'web-1' is offline");
	CHECK_INT(
	    call_get(&e, "POST", "/v1/instances/web-9/exec", e.auth, run, "error", v, sizeof v),
	    404);
	CHECK_INT(call_get(&e, "POST", "/v1/instances/web-1/exec", e.auth,
			   "{\"argv\":[],\"timeout_s\":-1,\"env\":{\"A=B\":\"x\"}}", "error", v,
			   sizeof v),
		  400);
	/* every problem is named */
	CHECK(strstr(v, "'argv'") && strstr(v, "'timeout_s'") && strstr(v, "'env'"));
	/* queued while offline: nothing delivered */
	CHECK_INT(call_get(&e, "POST", "/v1/instances/web-1/exec", e.auth,
			   "{\"argv\":[\"true\"],\"queue\":true}", "task_id", task, sizeof task),
		  201);
	CHECK_STR(e.fake.delivered, "");
	CHECK_INT(call_get(&e, "GET", "/v1/tasks/", e.auth, NULL, "error", v, sizeof v), 404);
	char path[128];
	snprintf(path, sizeof path, "/v1/tasks/%s", task);
	CHECK_INT(call_get(&e, "GET", path, e.auth, NULL, "state", v, sizeof v), 200);
	CHECK_STR(v, "queued");
	CHECK_INT(call_get(&e, "GET", path, NULL, NULL, "error", v, sizeof v), 401);
	CHECK_INT(call_get(&e, "GET", "/v1/tasks/t-nope", e.auth, NULL, "error", v, sizeof v), 404);
	snprintf(path, sizeof path, "/v1/tasks/%s/cancel", task);
	CHECK_INT(call_get(&e, "POST", path, e.auth, NULL, "state", v, sizeof v), 200);
	CHECK_STR(v, "cancelled");
	CHECK_STR(e.fake.cancelled, ""); /* never sent: nothing to tell the agent */

	/* online: delivered at once; the stream route asks for an upgrade */
	snprintf(e.fake.online, sizeof e.fake.online, "%.20s", id);
	CHECK_INT(call_get(&e, "POST", "/v1/instances/web-1/exec", e.auth, run, "task_id", task,
			   sizeof task),
		  201);
	CHECK_STR(e.fake.delivered, id);
	struct api_response r;
	snprintf(path, sizeof path, "/v1/tasks/%s/stream", task);
	CHECK_INT(call(&e, "GET", path, e.auth, NULL, &r), 101);
	CHECK_STR(r.stream_task, task);
	api_response_release(&r);
	CHECK_INT(call(&e, "GET", "/v1/tasks/t-x/stream", e.auth, NULL, &r), 404);
	CHECK_STR(r.stream_task, "");
	api_response_release(&r);
	/* the payload sent to the agent is rebuilt from checked fields */
	struct queue_task k;
	struct store_txn *t = store_txn_begin(e.cfg.store, 1);
	CHECK_INT(queue_get(t, task, &k), 0);
	store_txn_abort(t);
	CHECK_STR(k.payload, "{\"argv\":[\"echo\",\"hi\"],\"timeout_s\":5}");
	CHECK_STR(k.kind, "exec");
	queue_task_release(&k);
	env_release(&e);
}
