#include "spool.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "store.h"

static const char *const dbs[] = {"tasks", "spool", "meta", NULL};

static struct store *open_store(void)
{
	char err[256];
	struct store *s = store_open("store", dbs, 0, 0, err, sizeof(err));
	if (!s)
		harness_fail(__FILE__, __LINE__, "store_open: %s", err);
	return s;
}

TEST(spool_seq_is_monotonic_across_reopen_and_acks)
{
	char err[256];
	struct store *s = open_store();
	struct spool *sp = spool_new(s, err, sizeof(err));
	CHECK(sp);
	CHECK_INT(spool_last_seq(sp), 0);
	CHECK_INT(spool_add(sp, "k", "{\"n\":1}", err, sizeof(err)), 1);
	CHECK_INT(spool_add(sp, "k", "{\"n\":2}", err, sizeof(err)), 2);
	CHECK_INT(spool_add(sp, "k", "{\"n\":3}", err, sizeof(err)), 3);
	/* Acking everything must not let the counter go back. */
	CHECK_INT(spool_ack(sp, 3, err, sizeof(err)), 3);
	CHECK_INT(spool_count(sp), 0);
	spool_free(sp);
	store_close(s);

	s = open_store();
	sp = spool_new(s, err, sizeof(err));
	CHECK_INT(spool_last_seq(sp), 3);
	CHECK_INT(spool_acked(sp), 3);
	CHECK_INT(spool_add(sp, "k", "{\"n\":4}", err, sizeof(err)), 4);
	uint64_t seq = 0;
	struct buf kind = BUF_INIT, body = BUF_INIT;
	CHECK_INT(spool_next(sp, 0, &seq, &kind, &body, err, sizeof(err)), 1);
	CHECK_INT(seq, 4);
	CHECK_STR(kind.data, "k");
	CHECK_STR(body.data, "{\"n\":4}");
	buf_release(&kind);
	buf_release(&body);
	spool_free(sp);
	store_close(s);
}

TEST(spool_ack_drops_only_up_to_and_resends_in_order)
{
	char err[256];
	struct store *s = open_store();
	struct spool *sp = spool_new(s, err, sizeof(err));
	char body[64];
	for (int i = 1; i <= 300; i++) {
		snprintf(body, sizeof(body), "{\"i\":%d}", i);
		CHECK_INT(
		    spool_add(sp, i % 2 ? "exec_output" : "exec_exit", body, err, sizeof(err)), i);
	}
	CHECK_INT(spool_ack(sp, 100, err, sizeof(err)), 100);
	CHECK_INT(spool_count(sp), 200);
	/* An old ack (lower than before) drops nothing and keeps the high mark. */
	CHECK_INT(spool_ack(sp, 50, err, sizeof(err)), 0);
	CHECK_INT(spool_acked(sp), 100);
	spool_free(sp);
	store_close(s);

	/* After a "reconnect": resend walks everything unacked, in order. */
	s = open_store();
	sp = spool_new(s, err, sizeof(err));
	uint64_t after = spool_acked(sp), seq;
	int n = 0;
	struct buf kind = BUF_INIT, b = BUF_INIT;
	while (spool_next(sp, after, &seq, &kind, &b, err, sizeof(err)) == 1) {
		CHECK_INT(seq, after + 1);
		snprintf(body, sizeof(body), "{\"i\":%d}", (int)seq);
		CHECK_STR(b.data, body);
		CHECK_STR(kind.data, seq % 2 ? "exec_output" : "exec_exit");
		buf_reset(&kind);
		buf_reset(&b);
		after = seq;
		n++;
	}
	CHECK_INT(n, 200);
	CHECK_INT(after, 300);
	buf_release(&kind);
	buf_release(&b);
	spool_free(sp);
	store_close(s);
}

TEST(spool_ack_beyond_last_moves_the_counter_up)
{
	char err[256];
	struct store *s = open_store();
	struct spool *sp = spool_new(s, err, sizeof(err));
	spool_add(sp, "k", "{}", err, sizeof(err));
	spool_add(sp, "k", "{}", err, sizeof(err));
	/* Base applied up to 1000000 (our store was lost since): what we send
	 * next must be numbered above that, or base would ignore it. */
	CHECK_INT(spool_ack(sp, 1000000, err, sizeof(err)), 2);
	CHECK_INT(spool_acked(sp), 1000000);
	CHECK_INT(spool_last_seq(sp), 1000000);
	CHECK_INT(spool_add(sp, "k", "{}", err, sizeof(err)), 1000001);
	uint64_t seq;
	struct buf k = BUF_INIT, b = BUF_INIT;
	CHECK_INT(spool_next(sp, spool_acked(sp), &seq, &k, &b, err, sizeof(err)), 1);
	CHECK_INT(seq, 1000001);
	CHECK_INT(spool_next(sp, seq, &seq, &k, &b, err, sizeof(err)), 0);
	CHECK_INT(spool_next(sp, UINT64_MAX, &seq, &k, &b, err, sizeof(err)), 0);
	buf_release(&k);
	buf_release(&b);
	spool_free(sp);
	store_close(s);
}

TEST(spool_add_txn_commits_with_the_callers_transaction)
{
	char err[256];
	struct store *s = open_store();
	struct spool *sp = spool_new(s, err, sizeof(err));
	struct store_txn *t = store_txn_begin(s, 0);
	CHECK_INT(spool_add_txn(sp, t, "k", "{}"), 1);
	store_txn_abort(t);
	CHECK_INT(spool_count(sp), 0);
	CHECK_INT(spool_last_seq(sp), 0);
	t = store_txn_begin(s, 0);
	CHECK_INT(spool_add_txn(sp, t, "k", "{}"), 1);
	CHECK_INT(store_txn_commit(t, err, sizeof(err)), 0);
	CHECK_INT(spool_count(sp), 1);
	spool_free(sp);
	store_close(s);
}

TEST(spool_needs_its_databases)
{
	char err[256];
	static const char *const other[] = {"x", NULL};
	struct store *s = store_open("store", other, 0, 0, err, sizeof(err));
	CHECK(s);
	CHECK(spool_new(s, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "spool") != NULL);
	store_close(s);
}

TEST(spool_reports_a_corrupt_record)
{
	char err[256];
	struct store *s = open_store();
	struct spool *sp = spool_new(s, err, sizeof(err));
	CHECK_INT(spool_add(sp, "k", "{}", err, sizeof(err)), 1);
	/* A value without the kind's terminator, and a key of the wrong size. */
	unsigned char k[8];
	store_key_u64(k, 2);
	struct store_txn *t = store_txn_begin(s, 0);
	store_put(t, store_db(s, "spool"), k, sizeof(k), "junk", 4);
	CHECK_INT(store_txn_commit(t, err, sizeof(err)), 0);
	uint64_t seq;
	struct buf kind = BUF_INIT, body = BUF_INIT;
	CHECK_INT(spool_next(sp, 1, &seq, &kind, &body, err, sizeof(err)), -1);
	CHECK(strstr(err, "corrupt") != NULL);
	t = store_txn_begin(s, 0);
	store_put(t, store_db(s, "spool"), "abc", 3, "k\0{}", 4);
	store_del(t, store_db(s, "spool"), k, sizeof(k));
	CHECK_INT(store_txn_commit(t, err, sizeof(err)), 0);
	CHECK_INT(spool_next(sp, 1, &seq, &kind, &body, err, sizeof(err)), -1);
	buf_release(&kind);
	buf_release(&body);
	spool_free(sp);
	store_close(s);
}
