#include "api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "fleet.h"
#include "proto.h"
#include "xalloc.h"

#define DEFAULT_CERT_TTL (24 * 3600)

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
		buf_printf(&r->body, ",\"state\":\"%s\",\"last_seen\":", instance_state(cfg, in));
		if (in->last_seen)
			buf_printf(&r->body, "%lld", (long long)in->last_seen);
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
	if (queue_add(t, cfg->rng, in.id, "exec", pl.data, (int64_t)time(NULL) * 1000, id) < 0) {
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
		fail(r, 405, "method %s not allowed for '%s'", req->method, req->path);
		return;
	}
	if (m.route == AUTH_R_CA) {
		r->status = 200;
		r->content_type = "application/x-pem-file";
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
