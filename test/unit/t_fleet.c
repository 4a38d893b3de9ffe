#include "fleet.h"

#include <stdlib.h>
#include <string.h>

#include "harness.h"

static const char *const dbs[] = {FLEET_DBS, NULL};

static struct store *open_store(void)
{
	char err[256];
	struct store *s = store_open("st", dbs, 0, 0, err, sizeof err);
	if (!s)
		harness_fail(__FILE__, __LINE__, "store_open: %s", err);
	return s;
}

TEST(fleet_names_and_ids_are_checked)
{
	CHECK(fleet_name_valid("web-1"));
	CHECK(fleet_name_valid("a"));
	CHECK(!fleet_name_valid(""));
	CHECK(!fleet_name_valid(NULL));
	CHECK(!fleet_name_valid("-web"));
	CHECK(!fleet_name_valid("web-"));
	CHECK(!fleet_name_valid("Web"));
	CHECK(!fleet_name_valid("a/b"));
	CHECK(!fleet_name_valid("a.b"));
	char longname[80];
	memset(longname, 'a', 64);
	longname[64] = 0;
	CHECK(!fleet_name_valid(longname));
	longname[63] = 0;
	CHECK(fleet_name_valid(longname));
	CHECK(fleet_id_valid("i-0123456789abcdef"));
	CHECK(!fleet_id_valid("i-0123456789ABCDEF"));
	CHECK(!fleet_id_valid("i-0123"));
	CHECK(!fleet_id_valid("x-0123456789abcdef"));
}

TEST(fleet_add_get_list_and_duplicate_names)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	struct fleet_instance a, b, got;
	char err[256], *tok = NULL, *tok2 = NULL;
	struct store_txn *t = store_txn_begin(s, 0);
	CHECK_INT(fleet_add(t, rng, "web-1", 1000, &a, &tok, err, sizeof err), 0);
	CHECK(fleet_id_valid(a.id));
	CHECK(strncmp(tok, "dpyj_", 5) == 0);
	CHECK_INT(strlen(tok), 5 + 43);
	CHECK_INT(fleet_add(t, rng, "web-1", 1000, &b, &tok2, err, sizeof err), STORE_EXISTS);
	CHECK_STR(err, "instance 'web-1' exists");
	CHECK(tok2 == NULL);
	CHECK_INT(fleet_add(t, rng, "Bad_Name", 1000, &b, &tok2, err, sizeof err), -1);
	CHECK(strstr(err, "'Bad_Name'") != NULL);
	CHECK_INT(fleet_add(t, rng, "db", 1000, &b, &tok2, err, sizeof err), 0);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	store_close(s);

	/* survives a reopen */
	s = open_store();
	t = store_txn_begin(s, 1);
	CHECK_INT(fleet_get_by_name(t, "web-1", &got), 0);
	CHECK_STR(got.id, a.id);
	CHECK_INT(got.created_at, 1000);
	CHECK_INT(got.joined, 0);
	CHECK_INT(fleet_get(t, b.id, &got), 0);
	CHECK_STR(got.name, "db");
	CHECK_INT(fleet_get(t, "i-ffffffffffffffff", &got), STORE_NOTFOUND);
	CHECK_INT(fleet_get(t, "../../etc", &got), STORE_NOTFOUND);
	CHECK_INT(fleet_get_by_name(t, "nope", &got), STORE_NOTFOUND);
	size_t n;
	struct fleet_instance *all = fleet_list(t, &n);
	CHECK_INT(n, 2);
	CHECK(strcmp(all[0].id, all[1].id) < 0);
	free(all);
	store_txn_abort(t);
	free(tok);
	free(tok2);
	crypt_rng_free(rng);
	store_close(s);
}

TEST(fleet_join_token_is_single_use_and_expires)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	struct fleet_instance a, got;
	char err[256], *tok = NULL;
	struct store_txn *t = store_txn_begin(s, 0);
	CHECK_INT(fleet_add(t, rng, "web-1", 1000, &a, &tok, err, sizeof err), 0);
	char *tok2 = fleet_join_token_new(t, rng, a.id, 1000);
	CHECK(tok2 && strcmp(tok, tok2) != 0);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);

	t = store_txn_begin(s, 0);
	CHECK_INT(fleet_join_redeem(t, "dpyj_wrong", 1001, &got), STORE_NOTFOUND);
	CHECK_INT(fleet_join_redeem(t, "", 1001, &got), STORE_NOTFOUND);
	CHECK_INT(fleet_join_redeem(t, NULL, 1001, &got), STORE_NOTFOUND);
	CHECK_INT(fleet_join_redeem(t, tok, 1001, &got), 0);
	CHECK_STR(got.id, a.id);
	CHECK_INT(fleet_join_redeem(t, tok, 1002, &got), STORE_NOTFOUND); /* used */
	/* the second token is past its 15 minutes */
	CHECK_INT(fleet_join_redeem(t, tok2, 1000 + FLEET_JOIN_TTL, &got), STORE_NOTFOUND);
	CHECK_INT(fleet_join_redeem(t, tok2, 1001, &got), STORE_NOTFOUND); /* gone now */
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	free(tok);
	free(tok2);
	crypt_rng_free(rng);
	store_close(s);
}

TEST(fleet_revoke_frees_the_name_and_kills_join_tokens)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	struct fleet_instance a, b, got;
	char err[256], *tok = NULL, *tok2 = NULL;
	struct store_txn *t = store_txn_begin(s, 0);
	CHECK_INT(fleet_add(t, rng, "web-1", 1000, &a, &tok, err, sizeof err), 0);
	CHECK_INT(fleet_revoke(t, a.id), 0);
	CHECK_INT(fleet_get(t, a.id, &got), 0);
	CHECK_INT(got.revoked, 1);
	CHECK_INT(fleet_get_by_name(t, "web-1", &got), STORE_NOTFOUND);
	CHECK_INT(fleet_join_redeem(t, tok, 1001, &got), STORE_NOTFOUND);
	CHECK_INT(fleet_revoke(t, "i-0000000000000000"), STORE_NOTFOUND);
	/* the name can be used again, by a new instance */
	CHECK_INT(fleet_add(t, rng, "web-1", 1000, &b, &tok2, err, sizeof err), 0);
	CHECK(strcmp(a.id, b.id) != 0);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	free(tok);
	free(tok2);
	crypt_rng_free(rng);
	store_close(s);
}

TEST(fleet_record_round_trips_and_rejects_garbage)
{
	struct fleet_instance a, b;
	struct buf j = BUF_INIT;
	memset(&a, 0, sizeof a);
	strcpy(a.id, "i-00112233445566ff");
	strcpy(a.name, "web-1");
	strcpy(a.agent_version, "0.1 \"x\"");
	strcpy(a.cert_serial, "abc");
	a.joined = 1;
	a.applied_seq = 9007199254740991LL;
	a.cert_not_after = 1800000000;
	fleet_encode(&j, &a);
	CHECK_INT(fleet_decode(j.data, j.len, &b), 0);
	CHECK_STR(b.agent_version, a.agent_version);
	CHECK_INT(b.applied_seq, a.applied_seq);
	CHECK_INT(b.cert_not_after, a.cert_not_after);
	CHECK_INT(b.joined, 1);
	CHECK_INT(fleet_decode("{", 1, &b), -1);
	CHECK_INT(fleet_decode("{\"id\":\"x\"}", 10, &b), -1);
	buf_release(&j);
}
