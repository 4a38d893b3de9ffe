#include "api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "bp.h"
#include "deploys.h"
#include "diag.h"
#include "fleet.h"
#include "http.h"
#include "loop.h"
#include "proto.h"
#include "secrets.h"
#include "svcstatus.h"
#include "xalloc.h"

#define DEFAULT_CERT_TTL (24 * 3600)
/* One cluster until clusters exist (DESIGN.md section 4). */
#define CLUSTER "default"

void api_response_init(struct api_response *r)
{
	memset(r, 0, sizeof *r);
	buf_init(&r->body);
}

void api_response_release(struct api_response *r)
{
	buf_release(&r->body);
}

__attribute__((format(printf, 3, 4))) static void fail(struct api_response *r, int status,
						       const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	r->status = status;
	r->content_type = "application/json";
	buf_reset(&r->body);
	buf_puts(&r->body, "{\"error\":");
	buf_json_cstr(&r->body, msg);
	buf_puts(&r->body, "}");
}

static void ok_json(struct api_response *r, int status)
{
	r->status = status;
	r->content_type = "application/json";
}

static int online(const struct api_config *cfg, const char *id)
{
	return cfg->hooks.online ? cfg->hooks.online(cfg->hooks.arg, id) : 0;
}

static const char *instance_state(const struct api_config *cfg, const struct fleet_instance *in)
{
	if (in->revoked)
		return "revoked";
	if (online(cfg, in->id))
		return "online";
	return in->joined ? "offline" : "pending";
}

/* Parse the body as a JSON object; NULL after answering 400. */
static struct proto_json *body_object(const struct api_request *req, struct api_response *r)
{
	char err[256];
	struct proto_json *doc =
	    proto_json_parse(req->body ? req->body : "", req->body_len, err, sizeof err);
	if (!doc) {
		fail(r, 400, "request body: %s", err);
		return NULL;
	}
	if (proto_jv_type(proto_json_root(doc)) != PROTO_J_OBJ) {
		fail(r, 400, "request body: expected a JSON object");
		proto_json_free(doc);
		return NULL;
	}
	return doc;
}

char *api_issue_agent_cert(const struct api_config *cfg, struct store_txn *t, const char *id,
			   const char *csr_pem, char *err, size_t errlen)
{
	struct fleet_instance in;
	struct pki_cert_info info;
	time_t now = time(NULL);
	if (fleet_get(t, id, &in) != 0 || in.revoked) {
		snprintf(err, errlen, "instance '%s' is unknown or removed", id);
		return NULL;
	}
	struct pki_cert_opts o = {0};
	o.cn = id;
	o.not_before = now - 300;
	o.not_after = now + (cfg->cert_ttl_s > 0 ? cfg->cert_ttl_s : DEFAULT_CERT_TTL);
	char *pem = pki_csr_sign(cfg->ca_pem, cfg->ca_key, csr_pem, &o, cfg->rng, err, errlen);
	if (!pem)
		return NULL;
	if (pki_cert_info(pem, &info, err, errlen) < 0) {
		free(pem);
		return NULL;
	}
	in.joined = 1;
	snprintf(in.cert_serial, sizeof in.cert_serial, "%s", info.serial);
	in.cert_not_after = (int64_t)info.not_after;
	if (fleet_put(t, &in) < 0) {
		snprintf(err, errlen, "%s", store_txn_error(t));
		free(pem);
		return NULL;
	}
	return pem;
}

static void do_join(const struct api_config *cfg, struct store_txn *t,
		    const struct api_request *req, struct api_response *r)
{
	struct fleet_instance in;
	char err[512];
	struct proto_json *doc = body_object(req, r);
	if (!doc)
		return;
	const struct proto_jv *o = proto_json_root(doc);
	const char *tok = proto_jv_get_str(o, "token"), *csr = proto_jv_get_str(o, "csr");
	if (!tok || !csr) {
		fail(r, 400, "request body: 'token' and 'csr' are required strings");
		goto out;
	}
	int rc = fleet_join_redeem(t, tok, (int64_t)time(NULL), &in);
	if (rc == STORE_NOTFOUND) {
		fail(r, 401, "join token is unknown, used or expired");
		goto out;
	}
	if (rc < 0) {
		fail(r, 500, "store: %s", store_txn_error(t));
		goto out;
	}
	char *pem = api_issue_agent_cert(cfg, t, in.id, csr, err, sizeof err);
	if (!pem) {
		store_txn_fail(t, "join refused");
		fail(r, 400, "csr: %s", err);
		goto out;
	}
	ok_json(r, 200);
	buf_puts(&r->body, "{\"instance_id\":");
	buf_json_cstr(&r->body, in.id);
	buf_puts(&r->body, ",\"name\":");
	buf_json_cstr(&r->body, in.name);
	buf_puts(&r->body, ",\"cert\":");
	buf_json_cstr(&r->body, pem);
	buf_puts(&r->body, ",\"ca\":");
	buf_json_cstr(&r->body, cfg->ca_pem);
	buf_puts(&r->body, ",\"agent_addr\":");
	buf_json_cstr(&r->body, cfg->agent_addr ? cfg->agent_addr : "");
	buf_puts(&r->body, "}");
	free(pem);
out:
	proto_json_free(doc);
}

static void do_instance_add(const struct api_config *cfg, struct store_txn *t,
			    const struct api_request *req, struct api_response *r)
{
	struct fleet_instance in;
	char err[256], *tok = NULL;
	struct proto_json *doc = body_object(req, r);
	if (!doc)
		return;
	const char *name = proto_jv_get_str(proto_json_root(doc), "name");
	int64_t now = (int64_t)time(NULL);
	if (!name) {
		fail(r, 400, "request body: 'name' is a required string");
		goto out;
	}
	int rc = fleet_add(t, cfg->rng, name, now, &in, &tok, err, sizeof err);
	if (rc == STORE_EXISTS) {
		fail(r, 409, "%s", err);
		goto out;
	}
	if (rc < 0) {
		fail(r, store_txn_failed(t) ? 500 : 400, "%s", err);
		goto out;
	}
	ok_json(r, 201);
	buf_puts(&r->body, "{\"id\":");
	buf_json_cstr(&r->body, in.id);
	buf_puts(&r->body, ",\"name\":");
	buf_json_cstr(&r->body, in.name);
	buf_puts(&r->body, ",\"join_token\":");
	buf_json_cstr(&r->body, tok);
	buf_printf(&r->body, ",\"expires_at\":%lld}", (long long)(now + FLEET_JOIN_TTL));
	crypt_wipe(tok, strlen(tok));
	free(tok);
out:
	proto_json_free(doc);
}

static void do_instance_list(const struct api_config *cfg, struct store_txn *t,
			     struct api_response *r)
{
	size_t n;
	struct fleet_instance *all = fleet_list(t, &n);
	if (store_txn_failed(t)) {
		free(all);
		fail(r, 500, "store: %s", store_txn_error(t));
		return;
	}
	ok_json(r, 200);
	buf_puts(&r->body, "[");
	for (size_t i = 0; i < n; i++) {
		const struct fleet_instance *in = &all[i];
		buf_puts(&r->body, i ? ",{\"id\":" : "{\"id\":");
		buf_json_cstr(&r->body, in->id);
		buf_puts(&r->body, ",\"name\":");
		buf_json_cstr(&r->body, in->name);
		const char *state = instance_state(cfg, in);
		/* an online agent is seen now (heartbeats are not written down) */
		int64_t seen = strcmp(state, "online") == 0 ? (int64_t)time(NULL) : in->last_seen;
		buf_printf(&r->body, ",\"state\":\"%s\",\"last_seen\":", state);
		if (seen)
			buf_printf(&r->body, "%lld", (long long)seen);
		else
			buf_puts(&r->body, "null");
		buf_puts(&r->body, ",\"agent_version\":");
		buf_json_cstr(&r->body, in->agent_version[0] ? in->agent_version : NULL);
		buf_puts(&r->body, ",\"addr\":");
		buf_json_cstr(&r->body, in->addr[0] ? in->addr : NULL);
		buf_puts(&r->body, "}");
	}
	buf_puts(&r->body, "]");
	free(all);
}

static void do_instance_rm(struct store_txn *t, const char *name, struct api_response *r,
			   char *revoked)
{
	struct fleet_instance in;
	int rc = fleet_get_by_name(t, name, &in);
	if (rc == STORE_NOTFOUND) {
		fail(r, 404, "instance '%s' not found", name);
		return;
	}
	if (rc < 0 || fleet_revoke(t, in.id) < 0 || queue_cancel_instance(t, in.id) < 0) {
		fail(r, 500, "store: %s", store_txn_error(t));
		return;
	}
	snprintf(revoked, FLEET_ID_MAX, "%s", in.id);
	ok_json(r, 200);
	buf_puts(&r->body, "{\"id\":");
	buf_json_cstr(&r->body, in.id);
	buf_puts(&r->body, ",\"name\":");
	buf_json_cstr(&r->body, in.name);
	buf_puts(&r->body, ",\"revoked\":true}");
}

/* Build the task payload {"argv","timeout_s","env"} from an exec body,
 * listing every problem. */
static int exec_payload(const struct proto_jv *o, struct buf *pl, int *queue, char *err,
			size_t errlen)
{
	struct buf e = BUF_INIT;
	const struct proto_jv *argv = proto_jv_get(o, "argv"), *env = proto_jv_get(o, "env");
	const struct proto_jv *to = proto_jv_get(o, "timeout_s"), *q = proto_jv_get(o, "queue");
	int64_t timeout = 0;
	*queue = 0;
	if (!argv || proto_jv_type(argv) != PROTO_J_ARR || proto_jv_len(argv) == 0)
		buf_puts(&e, "; 'argv' must be a non-empty array of strings");
	else
		for (const struct proto_jv *a = proto_jv_first(argv); a; a = proto_jv_next(a))
			if (!proto_jv_str(a)) {
				buf_puts(&e, "; 'argv' must hold only strings");
				break;
			}
	if (to && (proto_jv_int(to, &timeout) < 0 || timeout < 0))
		buf_puts(&e, "; 'timeout_s' must be a non-negative integer");
	if (q && proto_jv_type(q) != PROTO_J_NULL && proto_jv_bool(q, queue) < 0)
		buf_puts(&e, "; 'queue' must be true or false");
	if (env && proto_jv_type(env) != PROTO_J_NULL) {
		if (proto_jv_type(env) != PROTO_J_OBJ)
			buf_puts(&e, "; 'env' must be an object of strings");
		else
			for (const struct proto_jv *m = proto_jv_first(env); m;
			     m = proto_jv_next(m))
				if (!proto_jv_str(m) || !*proto_jv_key(m) ||
				    strchr(proto_jv_key(m), '=')) {
					buf_puts(&e, "; 'env' must map names (no '=') to strings");
					break;
				}
	}
	if (e.len) {
		snprintf(err, errlen, "request body%s", e.data + 1);
		buf_release(&e);
		return -1;
	}
	buf_release(&e);
	buf_puts(pl, "{\"argv\":[");
	for (const struct proto_jv *a = proto_jv_first(argv); a; a = proto_jv_next(a)) {
		if (a != proto_jv_first(argv))
			buf_putc(pl, ',');
		buf_json_cstr(pl, proto_jv_str(a));
	}
	buf_printf(pl, "],\"timeout_s\":%lld", (long long)timeout);
	if (env && proto_jv_type(env) == PROTO_J_OBJ) {
		buf_puts(pl, ",\"env\":{");
		for (const struct proto_jv *m = proto_jv_first(env); m; m = proto_jv_next(m)) {
			if (m != proto_jv_first(env))
				buf_putc(pl, ',');
			buf_json_cstr(pl, proto_jv_key(m));
			buf_putc(pl, ':');
			buf_json_cstr(pl, proto_jv_str(m));
		}
		buf_puts(pl, "}");
	}
	buf_puts(pl, "}");
	return 0;
}

static void do_exec(const struct api_config *cfg, struct store_txn *t, const char *name,
		    const struct api_request *req, struct api_response *r, char *deliver_to)
{
	struct fleet_instance in;
	struct buf pl = BUF_INIT;
	char err[512], id[QUEUE_ID_MAX];
	int queue;
	int rc = fleet_get_by_name(t, name, &in);
	if (rc != 0) {
		if (rc < 0)
			fail(r, 500, "store: %s", store_txn_error(t));
		else
			fail(r, 404, "instance '%s' not found", name);
		return;
	}
	struct proto_json *doc = body_object(req, r);
	if (!doc)
		return;
	if (exec_payload(proto_json_root(doc), &pl, &queue, err, sizeof err) < 0) {
		fail(r, 400, "%s", err);
		goto out;
	}
	int on = online(cfg, in.id);
	if (!on && !queue) {
		fail(r, 409, "instance '%s' is offline", in.name);
		goto out;
	}
	if (queue_add(t, cfg->rng, in.id, "exec", pl.data, (int64_t)loop_wall_ms(), id) < 0) {
		fail(r, 500, "store: %s", store_txn_error(t));
		goto out;
	}
	if (on)
		snprintf(deliver_to, FLEET_ID_MAX, "%s", in.id);
	ok_json(r, 201);
	buf_printf(&r->body, "{\"task_id\":\"%s\"}", id);
out:
	buf_release(&pl);
	proto_json_free(doc);
}

static void task_json(struct store_txn *t, const struct queue_task *k, struct buf *b)
{
	struct fleet_instance in;
	buf_printf(b, "{\"task_id\":\"%s\",\"instance\":", k->id);
	buf_json_cstr(b, fleet_get(t, k->instance, &in) == 0 ? in.name : k->instance);
	buf_printf(b, ",\"instance_id\":\"%s\",\"state\":\"%s\"", k->instance,
		   queue_state_name(k->state));
	if (k->has_exit)
		buf_printf(b, ",\"exit_status\":%lld,\"signal\":%lld", (long long)k->exit_status,
			   (long long)k->signal);
	buf_puts(b, "}");
}

static int get_task(struct store_txn *t, const char *id, struct queue_task *k,
		    struct api_response *r)
{
	int rc = queue_get(t, id, k);
	if (rc == STORE_NOTFOUND)
		fail(r, 404, "task '%s' not found", id);
	else if (rc < 0)
		fail(r, 500, "store: %s", store_txn_error(t));
	return rc;
}

static void do_task_get(struct store_txn *t, const char *id, struct api_response *r)
{
	struct queue_task k;
	if (get_task(t, id, &k, r) != 0)
		return;
	ok_json(r, 200);
	task_json(t, &k, &r->body);
	queue_task_release(&k);
}

static void do_task_cancel(const struct api_config *cfg, struct store_txn *t, const char *id,
			   struct api_response *r, char *cancel_on)
{
	struct queue_task k;
	int need;
	if (get_task(t, id, &k, r) != 0)
		return;
	int on = online(cfg, k.instance);
	if (queue_cancel(t, id, !on, &need) < 0) {
		fail(r, 500, "store: %s", store_txn_error(t));
		queue_task_release(&k);
		return;
	}
	if (need)
		snprintf(cancel_on, FLEET_ID_MAX, "%s", k.instance);
	queue_task_release(&k);
	queue_get(t, id, &k);
	ok_json(r, 200);
	buf_printf(&r->body, "{\"task_id\":\"%s\",\"state\":\"%s\"}", k.id,
		   queue_state_name(k.state));
	queue_task_release(&k);
}

/* --- deployments, services, secrets ------------------------------------------ */

static const char *instance_name(struct store_txn *t, const char *id, struct fleet_instance *in)
{
	return fleet_get(t, id, in) == 0 ? in->name : id;
}

static void ms_field(struct buf *b, const char *key, int64_t ms)
{
	buf_printf(b, ",\"%s\":", key);
	if (ms)
		buf_printf(b, "%lld", (long long)ms);
	else
		buf_puts(b, "null");
}

static void str_field(struct buf *b, const char *key, const char *v)
{
	buf_printf(b, ",\"%s\":", key);
	buf_json_cstr(b, v && *v ? v : NULL);
}

/* A deployment as the API shows it (never its blueprint's secrets: a
 * blueprint holds none, secrets live in their own store). */
static void deploy_json(struct store_txn *t, const struct deploys_rec *d, struct buf *b)
{
	struct fleet_instance in;
	buf_puts(b, "{\"id\":");
	buf_json_cstr(b, d->id);
	buf_printf(b, ",\"seq\":%llu", (unsigned long long)d->seq);
	str_field(b, "service", d->service);
	str_field(b, "instance", instance_name(t, d->instance, &in));
	str_field(b, "instance_id", d->instance);
	buf_puts(b, ",\"title\":");
	buf_json_cstr(b, d->title ? d->title : "");
	buf_printf(b, ",\"status\":\"%s\"", deploys_status_name(d->status));
	str_field(b, "stage", d->stage);
	str_field(b, "reason", d->reason);
	ms_field(b, "created_ms", d->created_ms);
	ms_field(b, "started_ms", d->started_ms);
	ms_field(b, "finished_ms", d->finished_ms);
	str_field(b, "revision", d->revision);
	str_field(b, "runtime_version", d->runtime_version);
	str_field(b, "release", d->release);
	buf_printf(b, ",\"port\":%d,\"pid\":%lld", d->port, (long long)d->pid);
	str_field(b, "rollback_of", d->rollback_of);
	buf_printf(b, ",\"release_kept\":%s,\"cancel_requested\":%s}",
		   d->release_kept ? "true" : "false", d->cancel_requested ? "true" : "false");
}

/* The archive of an upload deployment waits in "meta" under
 * "upload/ID" (base64 text) until the deployment starts and ends. */
static void upload_key(struct buf *k, const char *id)
{
	buf_printf(k, "upload/%s", id);
}

void api_deploy_upload_drop(struct store_txn *t, const char *id)
{
	struct buf k = BUF_INIT;
	upload_key(&k, id);
	store_del(t, store_db(store_txn_store(t), "meta"), k.data, k.len);
	buf_release(&k);
}

int api_deploy_start_next(const struct api_config *cfg, struct store_txn *t, const char *cluster,
			  const char *service, char *deliver_to)
{
	struct deploys_rec d = {0};
	char id[QUEUE_ID_MAX];
	int64_t now = (int64_t)loop_wall_ms();
	int rc = deploys_start_next(t, cluster, service, now, &d);
	if (rc == STORE_NOTFOUND)
		return 0;
	if (rc < 0)
		return -1;
	struct buf pl = BUF_INIT;
	buf_puts(&pl, "{\"deployment_id\":");
	buf_json_cstr(&pl, d.id);
	buf_puts(&pl, ",\"blueprint\":");
	buf_json_cstr(&pl, d.blueprint);
	if (d.rollback_of[0]) {
		buf_puts(&pl, ",\"rollback_of\":");
		buf_json_cstr(&pl, d.rollback_of);
	}
	struct buf k = BUF_INIT, up = BUF_INIT;
	upload_key(&k, d.id);
	if (store_get_buf(t, store_db(store_txn_store(t), "meta"), k.data, k.len, &up) == 0) {
		buf_puts(&pl, ",\"upload\":");
		buf_json_str(&pl, up.data, up.len);
	}
	buf_release(&k);
	buf_release(&up);
	buf_puts(&pl, "}");
	rc = queue_add(t, cfg->rng, d.instance, "deploy", pl.data, now, id);
	buf_release(&pl);
	if (rc == 0 && online(cfg, d.instance))
		snprintf(deliver_to, FLEET_ID_MAX, "%.*s", FLEET_ID_MAX - 1, d.instance);
	deploys_rec_release(&d);
	return rc < 0 ? -1 : 0;
}

/* Check a blueprint text as `dployr lint` would: 0 with *out (free it) for
 * exactly one valid blueprint, else -1 with the findings in err. */
static int blueprint_check(const char *text, struct bp_file **out, struct buf *err)
{
	struct diag_list dl;
	diag_list_init(&dl);
	struct bp_file *f = bp_parse("blueprint", text, strlen(text), &dl);
	int bad = 0;
	for (size_t i = 0; i < dl.n; i++)
		if (dl.items[i].severity == DIAG_ERROR) {
			buf_printf(err, "%s%d:%d: %s", bad ? "; " : "", dl.items[i].line,
				   dl.items[i].col, dl.items[i].msg);
			bad++;
		}
	if (!bad && bp_file_count(f) != 1) {
		buf_puts(err, "the blueprint must hold exactly one service");
		bad = 1;
	}
	diag_list_release(&dl);
	if (bad) {
		bp_file_free(f);
		return -1;
	}
	*out = f;
	return 0;
}

static void do_deploy_create(const struct api_config *cfg, struct store_txn *t,
			     const struct api_request *req, struct api_response *r,
			     const char *user, char *deliver_to)
{
	struct fleet_instance in;
	struct deploys_rec d = {0};
	struct bp_file *f = NULL;
	struct buf why = BUF_INIT;
	char err[1024];
	(void)user;
	struct proto_json *doc = body_object(req, r);
	if (!doc)
		return;
	const struct proto_jv *o = proto_json_root(doc);
	const char *inst = proto_jv_get_str(o, "instance"), *text = proto_jv_get_str(o, "blueprint");
	const char *title = proto_jv_get_str(o, "title");
	const char *upload = proto_jv_get_str(o, "upload");
	if (!inst || !text) {
		fail(r, 400, "request body: 'instance' and 'blueprint' are required strings");
		goto out;
	}
	if (strlen(text) > DEPLOYS_BLUEPRINT_MAX) {
		fail(r, 413, "blueprint: larger than %zu bytes", (size_t)DEPLOYS_BLUEPRINT_MAX);
		goto out;
	}
	if (blueprint_check(text, &f, &why) < 0) {
		fail(r, 400, "blueprint: %s", why.data);
		goto out;
	}
	int rc = fleet_get_by_name(t, inst, &in);
	if (rc != 0) {
		if (rc < 0)
			fail(r, 500, "store: %s", store_txn_error(t));
		else
			fail(r, 404, "instance '%s' not found", inst);
		goto out;
	}
	if (in.revoked) {
		fail(r, 409, "instance '%s' is removed", inst);
		goto out;
	}
	const struct bp *bp = bp_file_get(f, 0);
	if ((bp->source == BP_SOURCE_UPLOAD) != (upload != NULL)) {
		fail(r, 400, "%s", upload ? "'upload' is only for a blueprint with source upload"
					  : "source upload: the request has no 'upload' archive");
		goto out;
	}
	if (upload) {
		struct buf raw = BUF_INIT;
		int bad = strlen(upload) > API_UPLOAD_MAX / 3 * 4 + 4 ||
			  crypt_b64_decode(&raw, upload, strlen(upload), CRYPT_B64_STD) < 0 ||
			  raw.len == 0 || raw.len > API_UPLOAD_MAX;
		buf_release(&raw);
		if (bad) {
			fail(r, 400, "'upload' must be a base64 archive of 1 to %zu bytes",
			     (size_t)API_UPLOAD_MAX);
			goto out;
		}
	}
	struct deploys_new nw = {CLUSTER, bp->name, in.id, text, title, NULL, NULL};
	if (deploys_add(t, cfg->rng, &nw, (int64_t)loop_wall_ms(), &d, err, sizeof err) < 0) {
		fail(r, store_txn_failed(t) ? 500 : 400, "%s", err);
		goto out;
	}
	if (upload) {
		struct buf k = BUF_INIT;
		upload_key(&k, d.id);
		store_put(t, store_db(store_txn_store(t), "meta"), k.data, k.len, upload,
			  strlen(upload));
		buf_release(&k);
	}
	if (api_deploy_start_next(cfg, t, CLUSTER, bp->name, deliver_to) < 0) {
		fail(r, 500, "store: %s", store_txn_error(t));
		goto out;
	}
	char did[DEPLOYS_ID_MAX];
	snprintf(did, sizeof did, "%s", d.id);
	deploys_rec_release(&d);
	deploys_get(t, did, &d); /* started, or still queued behind another */
	ok_json(r, 201);
	deploy_json(t, &d, &r->body);
out:
	deploys_rec_release(&d);
	bp_file_free(f);
	buf_release(&why);
	proto_json_free(doc);
}

static int get_deploy(struct store_txn *t, const char *id, struct deploys_rec *d,
		      struct api_response *r)
{
	int rc = deploys_get(t, id, d);
	if (rc == STORE_NOTFOUND)
		fail(r, 404, "deployment '%s' not found", id);
	else if (rc < 0)
		fail(r, 500, "store: %s", store_txn_error(t));
	return rc;
}

static void do_deploy_get(struct store_txn *t, const char *id, struct api_response *r)
{
	struct deploys_rec d = {0};
	if (get_deploy(t, id, &d, r) == 0) {
		ok_json(r, 200);
		deploy_json(t, &d, &r->body);
	}
	deploys_rec_release(&d);
}

/* A query parameter as a non-negative number; def when absent, -1 when bad. */
static int64_t query_num(const struct api_request *req, const char *name, int64_t def)
{
	struct buf v = BUF_INIT;
	int64_t n = def;
	if (req->query && http_query_param(&v, req->query, name) == 1 && v.len) {
		char *end;
		long long x = strtoll(v.data, &end, 10);
		n = *end || x < 0 ? -1 : x;
	}
	buf_release(&v);
	return n;
}

/* GET /v1/deployments/ID/log?offset=N: {"status","offset","next","data"}
 * where data is the log text from offset on (at most one chunk). */
static void do_deploy_log(struct store_txn *t, const char *id, const struct api_request *req,
			  struct api_response *r)
{
	struct deploys_rec d = {0};
	struct buf data = BUF_INIT;
	uint64_t next = 0;
	int64_t off = query_num(req, "offset", 0);
	if (off < 0) {
		fail(r, 400, "query: 'offset' must be a non-negative integer");
		return;
	}
	if (get_deploy(t, id, &d, r) != 0)
		goto out;
	if (deploys_log_read(t, id, (uint64_t)off, 0, &data, &next) < 0) {
		fail(r, 500, "store: %s", store_txn_error(t));
		goto out;
	}
	ok_json(r, 200);
	buf_printf(&r->body, "{\"id\":\"%s\",\"status\":\"%s\"", d.id,
		   deploys_status_name(d.status));
	str_field(&r->body, "stage", d.stage);
	str_field(&r->body, "reason", d.reason);
	buf_printf(&r->body, ",\"offset\":%lld,\"next\":%llu,\"data\":", (long long)off,
		   (unsigned long long)next);
	buf_json_str(&r->body, data.data ? data.data : "", data.len);
	buf_puts(&r->body, "}");
out:
	deploys_rec_release(&d);
	buf_release(&data);
}

static void do_deploy_cancel(const struct api_config *cfg, struct store_txn *t, const char *id,
			     struct api_response *r, char *deliver_to)
{
	struct deploys_rec d = {0};
	char err[512], tid[QUEUE_ID_MAX];
	if (get_deploy(t, id, &d, r) != 0)
		goto out;
	deploys_rec_release(&d);
	if (deploys_request_cancel(t, id, (int64_t)loop_wall_ms(), &d, err, sizeof err) < 0) {
		fail(r, store_txn_failed(t) ? 500 : 409, "%s", err);
		goto out;
	}
	if (d.status == DEPLOYS_CANCELLED)
		api_deploy_upload_drop(t, d.id);
	if (d.status == DEPLOYS_RUNNING) {
		/* the agent stops its pipeline and reports the end */
		struct buf pl = BUF_INIT;
		buf_puts(&pl, "{\"deployment_id\":");
		buf_json_cstr(&pl, d.id);
		buf_puts(&pl, ",\"service\":");
		buf_json_cstr(&pl, d.service);
		buf_puts(&pl, "}");
		int rc = queue_add(t, cfg->rng, d.instance, "deploy_cancel", pl.data,
				   (int64_t)loop_wall_ms(), tid);
		buf_release(&pl);
		if (rc < 0) {
			fail(r, 500, "store: %s", store_txn_error(t));
			goto out;
		}
		if (online(cfg, d.instance))
			snprintf(deliver_to, FLEET_ID_MAX, "%.*s", FLEET_ID_MAX - 1, d.instance);
	}
	ok_json(r, 200);
	deploy_json(t, &d, &r->body);
out:
	deploys_rec_release(&d);
}

static void do_service_deploys(struct store_txn *t, const char *service,
			       const struct api_request *req, struct api_response *r)
{
	struct deploys_rec *all = NULL;
	size_t n = 0;
	int64_t limit = query_num(req, "limit", 0), before = query_num(req, "before", 0);
	if (limit < 0 || before < 0) {
		fail(r, 400, "query: 'limit' and 'before' must be non-negative integers");
		return;
	}
	if (!deploys_name_valid(service)) {
		fail(r, 400, "service name '%s' is invalid", service);
		return;
	}
	if (deploys_list(t, CLUSTER, service, (uint64_t)before, (size_t)limit, &all, &n) < 0) {
		fail(r, 500, "store: %s", store_txn_error(t));
		return;
	}
	ok_json(r, 200);
	buf_puts(&r->body, "[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_putc(&r->body, ',');
		deploy_json(t, &all[i], &r->body);
	}
	buf_puts(&r->body, "]");
	deploys_list_free(all, n);
}

struct svc_names {
	struct buf names; /* NUL-separated */
};

static int svc_name_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	struct svc_names *sn = arg;
	const char *k = key;
	size_t pre = strlen(CLUSTER "/");
	(void)val;
	(void)vlen;
	if (klen > pre + 1 && k[klen - 1] == '/') {
		buf_add(&sn->names, k + pre, klen - pre - 1);
		buf_putc(&sn->names, 0);
	}
	return 0;
}

/* Null for a negative number (not known), else the number. */
static void num_field(struct buf *b, const char *key, int64_t v)
{
	buf_printf(b, ",\"%s\":", key);
	if (v < 0)
		buf_puts(b, "null");
	else
		buf_printf(b, "%lld", (long long)v);
}

/* One row of GET /v1/services: svc's deployments all[0..n) (newest
 * first), merged with the agent's latest report when there is one. */
static void service_row(const struct api_config *cfg, struct store_txn *t, const char *svc,
			const struct deploys_rec *all, size_t n, const struct svcstatus *live,
			struct buf *b)
{
	const struct deploys_rec *cur = NULL, *act = NULL, *rel = NULL;
	for (size_t i = 0; i < n; i++) {
		if (!cur && all[i].status == DEPLOYS_DONE)
			cur = &all[i];
		if (!act && all[i].status == DEPLOYS_RUNNING)
			act = &all[i];
		if (!rel && live && live->release[0] && strcmp(all[i].id, live->release) == 0)
			rel = &all[i];
	}
	/* what serves: the release the agent reports, else the newest done */
	const struct deploys_rec *srv = rel ? rel : cur;
	const struct deploys_rec *any = srv ? srv : &all[0];
	struct fleet_instance in;
	const char *iname = instance_name(t, any->instance, &in);
	struct bp_file *f = NULL;
	struct buf why = BUF_INIT;
	const struct bp *bp = NULL;
	if (blueprint_check(any->blueprint, &f, &why) == 0)
		bp = bp_file_get(f, 0);
	buf_puts(b, "{\"name\":");
	buf_json_cstr(b, svc);
	str_field(b, "instance", iname);
	str_field(b, "type", bp ? bp_type_name(bp->type) : NULL);
	if (live)
		buf_printf(b, ",\"state\":\"%s\"", live->state);
	else
		buf_printf(b, ",\"state\":\"%s\"", act ? "deploying" : cur ? "running" : "failed");
	str_field(b, "deployment", srv ? srv->id : NULL);
	str_field(b, "release", srv ? srv->release : NULL);
	str_field(b, "revision", srv ? srv->revision : NULL);
	str_field(b, "runtime_version", srv ? srv->runtime_version : NULL);
	buf_printf(b, ",\"port\":%d", bp ? bp->port : 0);
	int upstream = srv ? srv->port : 0;
	int64_t pid = srv ? srv->pid : 0;
	if (live) {
		upstream = live->port ? live->port : upstream;
		pid = live->pid;
	}
	buf_printf(b, ",\"upstream_port\":%d,\"pid\":%lld", upstream, (long long)pid);
	str_field(b, "deploying", act ? act->id : NULL);
	num_field(b, "restarts", live ? live->restarts : -1);
	str_field(b, "health", live ? live->health : NULL);
	str_field(b, "error", live ? live->error : NULL);
	ms_field(b, "since_ms", live ? live->since_ms : 0);
	ms_field(b, "updated_ms", live ? live->ts_ms : 0);
	buf_printf(b, ",\"online\":%s}", online(cfg, any->instance) ? "true" : "false");
	bp_file_free(f);
	buf_release(&why);
}

/* GET /v1/services[?instance=NAME]: every service that has deployments,
 * with what serves (the release its agent reports, else the newest done
 * deployment), what runs now, and the agent's latest report on it. */
static void do_services_list(const struct api_config *cfg, struct store_txn *t,
			     const struct api_request *req, struct api_response *r)
{
	struct svc_names sn = {BUF_INIT};
	struct buf want = BUF_INIT;
	int db = store_db(store_txn_store(t), "deploy_seq");
	if (req->query)
		http_query_param(&want, req->query, "instance");
	if (store_scan_prefix(t, db, CLUSTER "/", strlen(CLUSTER "/"), 0, svc_name_cb, &sn) < 0) {
		fail(r, 500, "store: %s", store_txn_error(t));
		goto out;
	}
	ok_json(r, 200);
	buf_puts(&r->body, "[");
	int first = 1;
	for (size_t off = 0; off < sn.names.len; off += strlen(sn.names.data + off) + 1) {
		const char *svc = sn.names.data + off;
		struct deploys_rec *all = NULL;
		struct svcstatus live;
		size_t n = 0;
		if (deploys_list(t, CLUSTER, svc, 0, 100, &all, &n) < 0 || n == 0) {
			deploys_list_free(all, n);
			continue;
		}
		/* the instance of the newest done deployment, else the newest */
		const struct deploys_rec *any = &all[0];
		for (size_t i = 0; i < n; i++)
			if (all[i].status == DEPLOYS_DONE) {
				any = &all[i];
				break;
			}
		struct fleet_instance in;
		if (want.len && strcmp(want.data, instance_name(t, any->instance, &in)) != 0) {
			deploys_list_free(all, n);
			continue;
		}
		int has = svcstatus_get(t, CLUSTER, svc, any->instance, &live) == 0;
		if (!first)
			buf_putc(&r->body, ',');
		first = 0;
		service_row(cfg, t, svc, all, n, has ? &live : NULL, &r->body);
		deploys_list_free(all, n);
	}
	buf_puts(&r->body, "]");
	if (store_txn_failed(t))
		fail(r, 500, "store: %s", store_txn_error(t));
out:
	buf_release(&sn.names);
	buf_release(&want);
}

/* POST /v1/services/S/rollback {"to":ID?}: a new deployment that
 * re-activates the kept release of an earlier done one (the previous one
 * by default), queued like any other. */
static void do_service_rollback(const struct api_config *cfg, struct store_txn *t,
				const char *service, const struct api_request *req,
				struct api_response *r, char *deliver_to)
{
	struct deploys_rec target = {0}, d = {0};
	char err[512], title[DEPLOYS_TITLE_MAX];
	if (!deploys_name_valid(service)) {
		fail(r, 400, "service name '%s' is invalid", service);
		return;
	}
	struct proto_json *doc = req->body_len ? body_object(req, r) : NULL;
	if (req->body_len && !doc)
		return;
	const char *to = doc ? proto_jv_get_str(proto_json_root(doc), "to") : NULL;
	if (to && !*to)
		to = NULL;
	int rc = deploys_rollback_target(t, CLUSTER, service, to, &target, err, sizeof err);
	if (rc == STORE_NOTFOUND) {
		fail(r, 409, "service '%s' has no earlier release to roll back to", service);
		goto out;
	}
	if (rc < 0) {
		fail(r, store_txn_failed(t) ? 500 : 409, "%s", err);
		goto out;
	}
	snprintf(title, sizeof title, "rollback to #%llu", (unsigned long long)target.seq);
	struct deploys_new nw = {CLUSTER,	   service, target.instance, target.blueprint,
				 title,		   NULL,    target.id};
	if (deploys_add(t, cfg->rng, &nw, (int64_t)loop_wall_ms(), &d, err, sizeof err) < 0) {
		fail(r, store_txn_failed(t) ? 500 : 400, "%s", err);
		goto out;
	}
	if (api_deploy_start_next(cfg, t, CLUSTER, service, deliver_to) < 0) {
		fail(r, 500, "store: %s", store_txn_error(t));
		goto out;
	}
	char did[DEPLOYS_ID_MAX];
	snprintf(did, sizeof did, "%s", d.id);
	deploys_rec_release(&d);
	deploys_get(t, did, &d);
	ok_json(r, 201);
	deploy_json(t, &d, &r->body);
out:
	deploys_rec_release(&target);
	deploys_rec_release(&d);
	proto_json_free(doc);
}

/* POST /v1/services/S/logs {"lines":N?,"since_ms":MS?,"follow":B?,
 * "raw":B?}: a task for the service's agent that sends the service's
 * output records (the last N, or those since MS; with follow, new ones
 * until the task is cancelled) as task output (read it with GET
 * /v1/tasks/ID/stream, as for exec; cancel with POST /v1/tasks/ID/cancel
 * or "cancel" on the stream). POST
 * /v1/services/S/stop|start|restart: a service_ctl task, whose exit status
 * says whether the agent could (GET /v1/tasks/ID). */
static void do_service_task(const struct api_config *cfg, struct store_txn *t, const char *service,
			    const struct api_request *req, struct api_response *r,
			    char *deliver_to)
{
	struct deploys_rec *all = NULL;
	size_t n = 0;
	char id[QUEUE_ID_MAX];
	int64_t lines = 0, since = -1;
	int follow = 0, raw = 0;
	if (!deploys_name_valid(service)) {
		fail(r, 400, "service name '%s' is invalid", service);
		return;
	}
	struct proto_json *doc = req->body_len ? body_object(req, r) : NULL;
	if (req->body_len && !doc)
		return;
	const struct proto_jv *root = doc ? proto_json_root(doc) : NULL;
	const struct proto_jv *lv = root ? proto_jv_get(root, "lines") : NULL;
	const struct proto_jv *sv = root ? proto_jv_get(root, "since_ms") : NULL;
	const struct proto_jv *fv = root ? proto_jv_get(root, "follow") : NULL;
	const struct proto_jv *rv = root ? proto_jv_get(root, "raw") : NULL;
	const char *bad[3];
	int nbad = 0;
	if (lv && (proto_jv_int(lv, &lines) < 0 || lines < 1 || lines > 100000))
		bad[nbad++] = "'lines' must be 1 to 100000";
	if (sv && (proto_jv_int(sv, &since) < 0 || since < 0))
		bad[nbad++] = "'since_ms' must be milliseconds since the epoch";
	if ((fv && proto_jv_bool(fv, &follow) < 0) || (rv && proto_jv_bool(rv, &raw) < 0))
		bad[nbad++] = "'follow' and 'raw' must be true or false";
	if (nbad) {
		fail(r, 400, "request body: %s%s%s%s%s", bad[0], nbad > 1 ? "; " : "",
		     nbad > 1 ? bad[1] : "", nbad > 2 ? "; " : "", nbad > 2 ? bad[2] : "");
		goto out;
	}
	if (deploys_list(t, CLUSTER, service, 0, 1, &all, &n) < 0) {
		fail(r, 500, "store: %s", store_txn_error(t));
		goto out;
	}
	if (n == 0) {
		fail(r, 404, "service '%s' not found", service);
		goto out;
	}
	if (!online(cfg, all[0].instance)) {
		fail(r, 409, "the instance of service '%s' is offline", service);
		goto out;
	}
	const char *action = strrchr(req->path, '/') + 1;
	int logs = strcmp(action, "logs") == 0;
	struct buf pl = BUF_INIT;
	buf_puts(&pl, "{\"service\":");
	buf_json_cstr(&pl, service);
	if (logs) {
		if (lines > 0)
			buf_printf(&pl, ",\"lines\":%lld", (long long)lines);
		if (since >= 0)
			buf_printf(&pl, ",\"since_ms\":%lld", (long long)since);
		if (follow)
			buf_puts(&pl, ",\"follow\":true");
		if (raw)
			buf_puts(&pl, ",\"raw\":true");
		buf_putc(&pl, '}');
	} else
		buf_printf(&pl, ",\"action\":\"%s\"}", action);
	int rc = queue_add(t, cfg->rng, all[0].instance, logs ? "service_logs" : "service_ctl",
			   pl.data, (int64_t)loop_wall_ms(), id);
	buf_release(&pl);
	if (rc < 0) {
		fail(r, 500, "store: %s", store_txn_error(t));
		goto out;
	}
	snprintf(deliver_to, FLEET_ID_MAX, "%.*s", FLEET_ID_MAX - 1, all[0].instance);
	ok_json(r, 201);
	buf_printf(&r->body, "{\"task_id\":\"%s\"}", id);
out:
	deploys_list_free(all, n);
	proto_json_free(doc);
}

static void do_secrets_list(struct store_txn *t, const char *service, struct api_response *r)
{
	struct secrets_meta *all = NULL;
	size_t n = 0;
	char err[512];
	if (!deploys_name_valid(service)) {
		fail(r, 400, "service name '%s' is invalid", service);
		return;
	}
	if (secrets_list(t, CLUSTER, service, &all, &n, err, sizeof err) < 0) {
		fail(r, 500, "%s", err);
		return;
	}
	ok_json(r, 200);
	buf_puts(&r->body, "[");
	for (size_t i = 0; i < n; i++) {
		buf_puts(&r->body, i ? ",{\"name\":" : "{\"name\":");
		buf_json_cstr(&r->body, all[i].name);
		buf_printf(&r->body, ",\"created_ms\":%lld,\"updated_ms\":%lld}",
			   (long long)all[i].created_ms, (long long)all[i].updated_ms);
	}
	buf_puts(&r->body, "]");
	free(all);
}

/* PUT /v1/services/S/secrets/NAME {"value":"..."}: the value is never
 * echoed, logged or returned. */
static void do_secret_set(const struct api_config *cfg, struct store_txn *t, const char *service,
			  const char *name, const struct api_request *req, struct api_response *r)
{
	char err[512];
	if (!cfg->master) {
		fail(r, 503, "secrets: base has no master key");
		return;
	}
	if (!deploys_name_valid(service)) {
		fail(r, 400, "service name '%s' is invalid", service);
		return;
	}
	struct proto_json *doc = body_object(req, r);
	if (!doc)
		return;
	const char *v = proto_jv_get_str(proto_json_root(doc), "value");
	if (!v) {
		fail(r, 400, "request body: 'value' is a required string");
	} else if (secrets_set(t, cfg->rng, cfg->master, CLUSTER, service, name, v, strlen(v),
			       (int64_t)loop_wall_ms(), err, sizeof err) < 0) {
		fail(r, store_txn_failed(t) ? 500 : 400, "%s", err);
	} else {
		ok_json(r, 200);
		buf_puts(&r->body, "{\"service\":");
		buf_json_cstr(&r->body, service);
		buf_puts(&r->body, ",\"name\":");
		buf_json_cstr(&r->body, name);
		buf_puts(&r->body, "}");
	}
	if (v)
		crypt_wipe((char *)v, strlen(v));
	proto_json_free(doc);
}

static void do_secret_rm(struct store_txn *t, const char *service, const char *name,
			 struct api_response *r)
{
	char err[512];
	int rc = deploys_name_valid(service)
		     ? secrets_delete(t, CLUSTER, service, name, err, sizeof err)
		     : (snprintf(err, sizeof err, "service name '%s' is invalid", service), -2);
	if (rc == STORE_NOTFOUND)
		fail(r, 404, "%s", err);
	else if (rc < 0)
		fail(r, rc == -2 ? 400 : 500, "%s", err);
	else {
		ok_json(r, 200);
		buf_puts(&r->body, "{\"deleted\":true}");
	}
}

void api_handle(const struct api_config *cfg, const struct api_request *req, struct api_response *r)
{
	struct auth_match m;
	char user[64], err[256];
	char deliver_to[FLEET_ID_MAX] = "", cancel_on[FLEET_ID_MAX] = "",
	     revoked[FLEET_ID_MAX] = "";
	enum auth_role role = AUTH_NONE;

	int st = auth_route(req->method, req->path, &m);
	if (st == 404 || m.route == AUTH_R_AGENT) {
		fail(r, 404, "no route for '%s'", req->path);
		return;
	}
	if (st == 405) {
		snprintf(r->allow, sizeof r->allow, "%s", m.allow);
		fail(r, 405, "method %s not allowed for '%s'", req->method, req->path);
		return;
	}
	if (m.route == AUTH_R_CA) {
		r->status = 200;
		r->content_type = "text/plain";
		buf_puts(&r->body, cfg->ca_pem);
		return;
	}
	struct store_txn *t = store_txn_begin(cfg->store, 0);
	if (m.role != AUTH_NONE) {
		if (auth_check_bearer(t, req->authorization, user, sizeof user, &role) < 0) {
			store_txn_abort(t);
			fail(r, 401, "missing or invalid API token");
			return;
		}
		if (role < m.role) {
			store_txn_abort(t);
			fail(r, 403, "role '%s' may not do this (needs '%s')", auth_role_name(role),
			     auth_role_name(m.role));
			return;
		}
	}
	switch (m.route) {
	case AUTH_R_WHOAMI:
		ok_json(r, 200);
		buf_puts(&r->body, "{\"user\":");
		buf_json_cstr(&r->body, user);
		buf_printf(&r->body, ",\"role\":\"%s\"}", auth_role_name(role));
		break;
	case AUTH_R_JOIN:
		do_join(cfg, t, req, r);
		break;
	case AUTH_R_INSTANCES_ADD:
		do_instance_add(cfg, t, req, r);
		break;
	case AUTH_R_INSTANCES_LIST:
		do_instance_list(cfg, t, r);
		break;
	case AUTH_R_INSTANCE_RM:
		do_instance_rm(t, m.params[0], r, revoked);
		break;
	case AUTH_R_INSTANCE_EXEC:
		do_exec(cfg, t, m.params[0], req, r, deliver_to);
		break;
	case AUTH_R_TASK_GET:
		do_task_get(t, m.params[0], r);
		break;
	case AUTH_R_TASK_STREAM: {
		struct queue_task k;
		if (get_task(t, m.params[0], &k, r) == 0) {
			r->status = 101;
			snprintf(r->stream_task, sizeof r->stream_task, "%s", k.id);
			queue_task_release(&k);
		}
		break;
	}
	case AUTH_R_TASK_CANCEL:
		do_task_cancel(cfg, t, m.params[0], r, cancel_on);
		break;
	case AUTH_R_DEPLOY_CREATE:
		do_deploy_create(cfg, t, req, r, user, deliver_to);
		break;
	case AUTH_R_DEPLOY_GET:
		do_deploy_get(t, m.params[0], r);
		break;
	case AUTH_R_DEPLOY_LOG:
		do_deploy_log(t, m.params[0], req, r);
		break;
	case AUTH_R_DEPLOY_CANCEL:
		do_deploy_cancel(cfg, t, m.params[0], r, deliver_to);
		break;
	case AUTH_R_SERVICE_DEPLOYS:
		do_service_deploys(t, m.params[0], req, r);
		break;
	case AUTH_R_SERVICES_LIST:
		do_services_list(cfg, t, req, r);
		break;
	case AUTH_R_SERVICE_ROLLBACK:
		do_service_rollback(cfg, t, m.params[0], req, r, deliver_to);
		break;
	case AUTH_R_SERVICE_LOGS:
		do_service_task(cfg, t, m.params[0], req, r, deliver_to);
		break;
	case AUTH_R_SERVICE_CTL:
		do_service_task(cfg, t, m.params[0], req, r, deliver_to);
		break;
	case AUTH_R_SECRETS_LIST:
		do_secrets_list(t, m.params[0], r);
		break;
	case AUTH_R_SECRET_SET:
		do_secret_set(cfg, t, m.params[0], m.params[1], req, r);
		break;
	case AUTH_R_SECRET_RM:
		do_secret_rm(t, m.params[0], m.params[1], r);
		break;
	default:
		fail(r, 404, "no route for '%s'", req->path);
		break;
	}
	/* A read-only or refused request commits nothing harmful; a failed
	 * handler poisoned t, so commit reports it. */
	if (r->status >= 400)
		store_txn_abort(t);
	else if (store_txn_commit(t, err, sizeof err) < 0) {
		fail(r, 500, "store: %s", err);
		return;
	}
	if (r->status >= 400)
		return;
	if (deliver_to[0] && cfg->hooks.deliver)
		cfg->hooks.deliver(cfg->hooks.arg, deliver_to);
	if (revoked[0] && cfg->hooks.revoked)
		cfg->hooks.revoked(cfg->hooks.arg, revoked);
	if (cancel_on[0] && cfg->hooks.cancel)
		cfg->hooks.cancel(cfg->hooks.arg, cancel_on, m.params[0]);
}
