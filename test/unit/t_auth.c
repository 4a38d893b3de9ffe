#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

TEST(auth_routes_map_to_roles_and_deny_by_default)
{
	struct auth_match m;
	CHECK_INT(auth_route("GET", "/v1/ca", &m), 0);
	CHECK_INT(m.route, AUTH_R_CA);
	CHECK_INT(m.role, AUTH_NONE);
	CHECK_INT(auth_route("GET", "/v1/whoami", &m), 0);
	CHECK(m.role > AUTH_NONE);
	CHECK_INT(auth_route("POST", "/v1/instances", &m), 0);
	CHECK_INT(m.role, AUTH_OWNER);
	CHECK_INT(auth_route("DELETE", "/v1/instances/web-1", &m), 0);
	CHECK_INT(m.route, AUTH_R_INSTANCE_RM);
	CHECK_INT(m.nparams, 1);
	CHECK_STR(m.params[0], "web-1");
	CHECK_INT(auth_route("POST", "/v1/instances/web%2D1/exec", &m), 0);
	CHECK_INT(m.route, AUTH_R_INSTANCE_EXEC);
	CHECK_STR(m.params[0], "web-1");
	CHECK_INT(auth_route("GET", "/v1/tasks/t-1/stream", &m), 0);
	CHECK_INT(m.route, AUTH_R_TASK_STREAM);
	CHECK_INT(auth_route("POST", "/v1/tasks/t-1/cancel", &m), 0);
	CHECK_INT(m.route, AUTH_R_TASK_CANCEL);

	/* unknown paths: 404; known paths, other methods: 405 */
	CHECK_INT(auth_route("GET", "/v1/nope", &m), 404);
	CHECK_INT(auth_route("GET", "/", &m), 404);
	CHECK_INT(auth_route("GET", "", &m), 404);
	CHECK_INT(auth_route("GET", NULL, &m), 404);
	CHECK_INT(auth_route("GET", "/v1/ca/", &m), 404);
	CHECK_INT(auth_route("GET", "/v1/instances/", &m), 404);
	CHECK_INT(auth_route("GET", "/v1/instances//exec", &m), 404);
	CHECK_INT(auth_route("GET", "/v1/tasks/a/b/stream", &m), 404);
	CHECK_INT(auth_route("GET", "/V1/CA", &m), 404);
	CHECK_INT(auth_route("PUT", "/v1/instances", &m), 405);
	CHECK_INT(auth_route("POST", "/v1/ca", &m), 405);
	CHECK_INT(auth_route("get", "/v1/ca", &m), 405);
	CHECK_INT(auth_route(NULL, "/v1/ca", &m), 405);
	CHECK_INT(auth_route("GET", "/v1/instances/web-1", &m), 405);
	/* an encoded slash or NUL cannot sneak into a parameter */
	CHECK_INT(auth_route("DELETE", "/v1/instances/a%2Fb", &m), 404);
	CHECK_INT(auth_route("DELETE", "/v1/instances/a%00b", &m), 404);
	CHECK_INT(auth_route("DELETE", "/v1/instances/%zz", &m), 404);
}

TEST(auth_tokens_are_stored_hashed_and_checked)
{
	static const char *const dbs[] = {AUTH_DBS, NULL};
	char err[256], user[64];
	enum auth_role role;
	struct store *s = store_open("st", dbs, 0, 0, err, sizeof err);
	CHECK(s);
	struct crypt_rng *rng = crypt_rng_new();
	struct store_txn *t = store_txn_begin(s, 0);
	char *tok = auth_token_create(t, rng, "owner", AUTH_OWNER);
	CHECK(tok && strncmp(tok, "dpy_", 4) == 0);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);

	t = store_txn_begin(s, 1);
	/* the token itself is nowhere in the store, only its hash */
	struct store_iter *it = store_iter_range(t, store_db(s, "api_tokens"), NULL, 0, NULL, 0, 0);
	int n = 0;
	while (store_iter_next(it) == 1) {
		size_t vl, kl;
		const char *v = store_iter_val(it, &vl);
		const char *k = store_iter_key(it, &kl);
		CHECK(memmem(v, vl, tok, strlen(tok)) == NULL);
		CHECK(memmem(k, kl, tok, strlen(tok)) == NULL);
		n++;
	}
	store_iter_free(it);
	CHECK_INT(n, 1);

	char hdr[128];
	snprintf(hdr, sizeof hdr, "Bearer %s", tok);
	CHECK_INT(auth_check_bearer(t, hdr, user, sizeof user, &role), 0);
	CHECK_STR(user, "owner");
	CHECK_INT(role, AUTH_OWNER);
	CHECK_INT(auth_check_bearer(t, NULL, user, sizeof user, &role), -1);
	CHECK_INT(auth_check_bearer(t, "", user, sizeof user, &role), -1);
	CHECK_INT(auth_check_bearer(t, tok, user, sizeof user, &role), -1); /* no "Bearer " */
	snprintf(hdr, sizeof hdr, "bearer %s", tok);
	CHECK_INT(auth_check_bearer(t, hdr, user, sizeof user, &role), -1);
	snprintf(hdr, sizeof hdr, "Bearer %s ", tok);
	CHECK_INT(auth_check_bearer(t, hdr, user, sizeof user, &role), -1);
	snprintf(hdr, sizeof hdr, "Bearer %s", tok);
	hdr[strlen(hdr) - 1] ^= 1; /* one character off */
	CHECK_INT(auth_check_bearer(t, hdr, user, sizeof user, &role), -1);
	CHECK_INT(auth_check_bearer(t, "Bearer dpy_", user, sizeof user, &role), -1);
	store_txn_abort(t);
	free(tok);
	crypt_rng_free(rng);
	store_close(s);
}
