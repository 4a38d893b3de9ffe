/* auth: API tokens and the permission table of the HTTP API.
 *
 * API tokens are "dpy_" + base64url of 32 random bytes, stored only as
 * their SHA-256 (database "api_tokens": hash hex -> {"user","role"}). A
 * bearer token is checked by hashing it and looking the hash up; the
 * stored hash is then compared in constant time as well, so the answer
 * takes the same time for every wrong token of the same length.
 *
 * The permission table lists every route (method and path pattern) with
 * the least role that may call it. Anything not in the table is denied:
 * auth_route() answers 404 for an unknown path and 405 for a known path
 * with another method. Roles are ordered owner > admin > member > guest;
 * AUTH_NONE routes need no token (the CA, joining with a join token).
 */
#ifndef DPLOYR_AUTH_H
#define DPLOYR_AUTH_H

#include <stddef.h>

#include "crypt.h"
#include "store.h"

#define AUTH_DBS "api_tokens"

enum auth_role { AUTH_NONE, AUTH_GUEST, AUTH_MEMBER, AUTH_ADMIN, AUTH_OWNER };

/* Routes of the API (api.c dispatches on them). */
enum auth_route_id {
	AUTH_R_CA,
	AUTH_R_WHOAMI,
	AUTH_R_JOIN,
	AUTH_R_INSTANCES_ADD,
	AUTH_R_INSTANCES_LIST,
	AUTH_R_INSTANCE_RM,
	AUTH_R_INSTANCE_EXEC,
	AUTH_R_TASK_GET,
	AUTH_R_TASK_STREAM,
	AUTH_R_TASK_CANCEL,
	AUTH_R_DEPLOY_CREATE,
	AUTH_R_DEPLOY_GET,
	AUTH_R_DEPLOY_LOG,
	AUTH_R_DEPLOY_CANCEL,
	AUTH_R_SERVICE_DEPLOYS,
	AUTH_R_SERVICES_LIST,
	AUTH_R_SERVICE_ROLLBACK,
	AUTH_R_SERVICE_LOGS,
	AUTH_R_SERVICE_CTL,
	AUTH_R_SECRETS_LIST,
	AUTH_R_SECRET_SET,
	AUTH_R_SECRET_RM,
	AUTH_R_AGENT, /* the agent port's WebSocket, authenticated by mTLS */
};

#define AUTH_MAX_PARAMS 2
#define AUTH_PARAM_MAX	128

struct auth_match {
	enum auth_route_id route;
	enum auth_role role; /* least role allowed */
	/* the '*' segments of the pattern, in order (percent-decoded) */
	char params[AUTH_MAX_PARAMS][AUTH_PARAM_MAX];
	size_t nparams;
	char allow[64]; /* after 405: the methods the path has ("GET, POST") */
};

/* Look method and path up in the permission table. Returns 0 with *m
 * filled, 404 for a path no route has, 405 for a path whose routes have
 * other methods. */
int auth_route(const char *method, const char *path, struct auth_match *m);
/* "owner", "admin", ... */
const char *auth_role_name(enum auth_role role);

/* Store a new token for user with role; returns it (caller frees; show it
 * once, never log it), or NULL on store failure. */
char *auth_token_create(struct store_txn *t, struct crypt_rng *rng, const char *user,
			enum auth_role role);
/* Check an Authorization header value ("Bearer dpy_..."). Returns 0 with
 * the user (user_len bytes) and *role, or -1 when the header is missing,
 * malformed or names no stored token. */
int auth_check_bearer(struct store_txn *t, const char *header, char *user, size_t user_len,
		      enum auth_role *role);

#endif
