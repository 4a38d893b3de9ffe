#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http.h"
#include "proto.h"

struct route {
	const char *method;
	const char *pattern; /* '*' matches one non-empty segment */
	enum auth_route_id id;
	enum auth_role role;
};

/* The permission table: every route and the least role that may use it. */
static const struct route routes[] = {
    {"GET", "/v1/ca", AUTH_R_CA, AUTH_NONE},
    {"GET", "/v1/whoami", AUTH_R_WHOAMI, AUTH_GUEST},
    {"POST", "/v1/join", AUTH_R_JOIN, AUTH_NONE},
    {"POST", "/v1/instances", AUTH_R_INSTANCES_ADD, AUTH_OWNER},
    {"GET", "/v1/instances", AUTH_R_INSTANCES_LIST, AUTH_OWNER},
    {"DELETE", "/v1/instances/*", AUTH_R_INSTANCE_RM, AUTH_OWNER},
    {"POST", "/v1/instances/*/exec", AUTH_R_INSTANCE_EXEC, AUTH_OWNER},
    {"GET", "/v1/tasks/*", AUTH_R_TASK_GET, AUTH_OWNER},
    {"GET", "/v1/tasks/*/stream", AUTH_R_TASK_STREAM, AUTH_OWNER},
    {"POST", "/v1/tasks/*/cancel", AUTH_R_TASK_CANCEL, AUTH_OWNER},
    {"POST", "/v1/deployments", AUTH_R_DEPLOY_CREATE, AUTH_MEMBER},
    {"GET", "/v1/deployments/*", AUTH_R_DEPLOY_GET, AUTH_GUEST},
    {"GET", "/v1/deployments/*/log", AUTH_R_DEPLOY_LOG, AUTH_GUEST},
    {"POST", "/v1/deployments/*/cancel", AUTH_R_DEPLOY_CANCEL, AUTH_MEMBER},
    {"GET", "/v1/services", AUTH_R_SERVICES_LIST, AUTH_GUEST},
    {"GET", "/v1/services/*/deployments", AUTH_R_SERVICE_DEPLOYS, AUTH_GUEST},
    {"POST", "/v1/services/*/rollback", AUTH_R_SERVICE_ROLLBACK, AUTH_MEMBER},
    {"POST", "/v1/services/*/logs", AUTH_R_SERVICE_LOGS, AUTH_MEMBER},
    {"POST", "/v1/services/*/stop", AUTH_R_SERVICE_CTL, AUTH_MEMBER},
    {"POST", "/v1/services/*/start", AUTH_R_SERVICE_CTL, AUTH_MEMBER},
    {"POST", "/v1/services/*/restart", AUTH_R_SERVICE_CTL, AUTH_MEMBER},
    {"GET", "/v1/services/*/secrets", AUTH_R_SECRETS_LIST, AUTH_MEMBER},
    {"PUT", "/v1/services/*/secrets/*", AUTH_R_SECRET_SET, AUTH_ADMIN},
    {"DELETE", "/v1/services/*/secrets/*", AUTH_R_SECRET_RM, AUTH_ADMIN},
    {"GET", "/v1/agent", AUTH_R_AGENT, AUTH_NONE},
};

const char *auth_role_name(enum auth_role role)
{
	switch (role) {
	case AUTH_NONE:
		return "none";
	case AUTH_GUEST:
		return "guest";
	case AUTH_MEMBER:
		return "member";
	case AUTH_ADMIN:
		return "admin";
	case AUTH_OWNER:
		return "owner";
	}
	return "none";
}

static int role_from_name(const char *s, enum auth_role *out)
{
	for (int r = AUTH_GUEST; r <= AUTH_OWNER; r++)
		if (s && strcmp(s, auth_role_name((enum auth_role)r)) == 0) {
			*out = (enum auth_role)r;
			return 0;
		}
	return -1;
}

/* Match path against pattern, collecting '*' segments into m. */
static int match(const char *pattern, const char *path, struct auth_match *m)
{
	m->nparams = 0;
	while (*pattern && *path) {
		if (*pattern == '*') {
			size_t n = strcspn(path, "/");
			struct buf dec = BUF_INIT;
			int ok = n > 0 && m->nparams < AUTH_MAX_PARAMS &&
				 http_pct_decode(&dec, path, n, 0) == 0 &&
				 dec.len < AUTH_PARAM_MAX && strlen(dec.data) == dec.len &&
				 !strchr(dec.data, '/');
			if (ok)
				memcpy(m->params[m->nparams++], dec.data, dec.len + 1);
			buf_release(&dec);
			if (!ok)
				return 0;
			pattern++;
			path += n;
			continue;
		}
		if (*pattern != *path)
			return 0;
		pattern++;
		path++;
	}
	return *pattern == 0 && *path == 0;
}

int auth_route(const char *method, const char *path, struct auth_match *m)
{
	int path_known = 0;
	memset(m, 0, sizeof *m);
	for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
		struct auth_match tmp;
		memset(&tmp, 0, sizeof tmp);
		if (!match(routes[i].pattern, path ? path : "", &tmp))
			continue;
		path_known = 1;
		if (!strstr(m->allow, routes[i].method)) {
			size_t n = strlen(m->allow);
			snprintf(m->allow + n, sizeof m->allow - n, "%s%s", n ? ", " : "",
				 routes[i].method);
		}
		if (method && strcmp(method, routes[i].method) == 0) {
			char allow[sizeof m->allow];
			memcpy(allow, m->allow, sizeof allow);
			*m = tmp;
			memcpy(m->allow, allow, sizeof allow);
			m->route = routes[i].id;
			m->role = routes[i].role;
			return 0;
		}
	}
	return path_known ? 405 : 404;
}

char *auth_token_create(struct store_txn *t, struct crypt_rng *rng, const char *user,
			enum auth_role role)
{
	char hash[CRYPT_SHA256_HEX_LEN + 1];
	char *tok = crypt_token_new(rng, "dpy_");
	crypt_token_hash(tok, hash);
	struct buf b = BUF_INIT;
	buf_printf(&b, "{\"hash\":\"%s\",\"user\":", hash);
	buf_json_cstr(&b, user);
	buf_printf(&b, ",\"role\":\"%s\"}", auth_role_name(role));
	int rc = store_put(t, store_db(store_txn_store(t), "api_tokens"), hash, strlen(hash),
			   b.data, b.len);
	buf_release(&b);
	if (rc < 0) {
		crypt_wipe(tok, strlen(tok));
		free(tok);
		return NULL;
	}
	return tok;
}

int auth_check_bearer(struct store_txn *t, const char *header, char *user, size_t user_len,
		      enum auth_role *role)
{
	char hash[CRYPT_SHA256_HEX_LEN + 1], err[64];
	const void *v;
	size_t n;
	if (!header || strncmp(header, "Bearer ", 7) != 0)
		return -1;
	const char *tok = header + 7;
	/* crypt_token_new: prefix + 43 characters of base64url. */
	if (strncmp(tok, "dpy_", 4) != 0 || strlen(tok) != 4 + 43)
		return -1;
	crypt_token_hash(tok, hash);
	int db = store_db(store_txn_store(t), "api_tokens");
	if (db < 0 || store_get(t, db, hash, strlen(hash), &v, &n) != 0)
		return -1;
	struct proto_json *doc = proto_json_parse(v, n, err, sizeof err);
	if (!doc)
		return -1;
	const char *u = proto_jv_get_str(proto_json_root(doc), "user");
	const char *h = proto_jv_get_str(proto_json_root(doc), "hash");
	int rc = -1;
	if (u && h && strlen(h) == CRYPT_SHA256_HEX_LEN &&
	    crypt_equal(h, hash, CRYPT_SHA256_HEX_LEN) &&
	    role_from_name(proto_jv_get_str(proto_json_root(doc), "role"), role) == 0) {
		snprintf(user, user_len, "%s", u);
		rc = 0;
	}
	proto_json_free(doc);
	return rc;
}
