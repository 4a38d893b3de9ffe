#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static const char *const dbs[] = {QUEUE_DBS, NULL};

static struct store *open_store(void)
{
	char err[256];
	struct store *s = store_open("st", dbs, 0, 0, err, sizeof err);
	if (!s)
		harness_fail(__FILE__, __LINE__, "store_open: %s", err);
	return s;
}

struct sent {
	int n;
	char ids[8][QUEUE_ID_MAX];
	char payload[256];
};

static void record(const struct queue_task *k, void *arg)
{
	struct sent *s = arg;
	if (s->n < 8)
		memcpy(s->ids[s->n], k->id, QUEUE_ID_MAX);
	snprintf(s->payload, sizeof s->payload, "%s", k->payload);
	s->n++;
}

static int lease(struct store *s, const char *inst, int64_t now, int force, struct sent *out)
{
	char err[256];
	memset(out, 0, sizeof *out);
	struct store_txn *t = store_txn_begin(s, 0);
	int n = queue_lease(t, inst, now, 1000, force, record, out);
	if (store_txn_commit(t, err, sizeof err) < 0)
		harness_fail(__FILE__, __LINE__, "commit: %s", err);
	return n;
}

static enum queue_state state_of(struct store *s, const char *id)
{
	struct queue_task k;
	struct store_txn *t = store_txn_begin(s, 1);
	int rc = queue_get(t, id, &k);
	store_txn_abort(t);
	if (rc != 0)
		harness_fail(__FILE__, __LINE__, "task %s: %d", id, rc);
	queue_task_release(&k);
	return k.state;
}

TEST(queue_leases_redelivers_on_expiry_and_survives_reopen)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	char a[QUEUE_ID_MAX], b[QUEUE_ID_MAX], c[QUEUE_ID_MAX], err[256];
	struct sent out;
	struct store_txn *t = store_txn_begin(s, 0);
	CHECK_INT(queue_add(t, rng, "i-1", "exec", "{\"argv\":[\"a\"]}", 100, a), 0);
	CHECK_INT(queue_add(t, rng, "i-1", "exec", "{\"argv\":[\"b\"]}", 100, b), 0);
	CHECK_INT(queue_add(t, rng, "i-2", "exec", "{}", 100, c), 0);
	CHECK(strcmp(a, b) != 0);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);

	/* first delivery: both, in submission order, only i-1's */
	CHECK_INT(lease(s, "i-1", 1000, 0, &out), 2);
	CHECK_STR(out.ids[0], a);
	CHECK_STR(out.ids[1], b);
	CHECK_STR(out.payload, "{\"argv\":[\"b\"]}");
	/* leased: nothing due before the lease ends */
	CHECK_INT(lease(s, "i-1", 1999, 0, &out), 0);
	t = store_txn_begin(s, 1);
	CHECK_INT(queue_next_expiry(t, "i-1"), 2000);
	CHECK_INT(queue_next_expiry(t, "i-9"), 0);
	store_txn_abort(t);

	/* a is accepted by the agent; b's lease runs out: only b comes again */
	t = store_txn_begin(s, 0);
	CHECK_INT(queue_accept(t, a), 0);
	CHECK_INT(queue_accept(t, "t-nope"), STORE_NOTFOUND);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	CHECK_INT(state_of(s, a), QUEUE_RUNNING);
	CHECK_INT(lease(s, "i-1", 2000, 0, &out), 1);
	CHECK_STR(out.ids[0], b);

	/* base restarts: everything survives; a reconnect re-sends both */
	store_close(s);
	s = open_store();
	CHECK_INT(state_of(s, a), QUEUE_RUNNING);
	CHECK_INT(state_of(s, b), QUEUE_QUEUED);
	CHECK_INT(lease(s, "i-1", 2100, 1, &out), 2);

	/* a finishes: gone from the queue, result kept */
	t = store_txn_begin(s, 0);
	CHECK_INT(queue_finish(t, a, QUEUE_DONE, 1, 3, 0), 0);
	/* finishing twice changes nothing */
	CHECK_INT(queue_finish(t, a, QUEUE_FAILED, 1, 99, 0), 0);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	CHECK_INT(lease(s, "i-1", 99999, 1, &out), 1);
	CHECK_STR(out.ids[0], b);
	struct queue_task k;
	t = store_txn_begin(s, 1);
	CHECK_INT(queue_get(t, a, &k), 0);
	CHECK_INT(k.state, QUEUE_DONE);
	CHECK_INT(k.has_exit, 1);
	CHECK_INT(k.exit_status, 3);
	CHECK_STR(k.instance, "i-1");
	queue_task_release(&k);
	CHECK_INT(queue_get(t, "t-nope", &k), STORE_NOTFOUND);
	CHECK_INT(queue_get(t, "a/b", &k), STORE_NOTFOUND);
	CHECK_INT(queue_get(t, "", &k), STORE_NOTFOUND);
	store_txn_abort(t);
	/* i-2 was never touched */
	CHECK_INT(lease(s, "i-2", 1, 0, &out), 1);
	CHECK_STR(out.ids[0], c);
	crypt_rng_free(rng);
	store_close(s);
}

TEST(queue_cancel_before_and_after_delivery)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	char a[QUEUE_ID_MAX], b[QUEUE_ID_MAX], c[QUEUE_ID_MAX], err[256];
	struct sent out;
	int need;
	struct store_txn *t = store_txn_begin(s, 0);
	CHECK_INT(queue_add(t, rng, "i-1", "exec", "{}", 1, a), 0);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	/* never delivered: cancelled at once, never sent */
	t = store_txn_begin(s, 0);
	CHECK_INT(queue_cancel(t, a, 0, &need), 0);
	CHECK_INT(need, 0);
	CHECK_INT(queue_add(t, rng, "i-1", "exec", "{}", 1, b), 0);
	CHECK_INT(queue_add(t, rng, "i-1", "exec", "{}", 1, c), 0);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	CHECK_INT(state_of(s, a), QUEUE_CANCELLED);
	CHECK_INT(lease(s, "i-1", 10, 1, &out), 2);
	/* delivered, agent online: the agent must be told; the exit ends it
	 * as cancelled */
	t = store_txn_begin(s, 0);
	CHECK_INT(queue_accept(t, b), 0);
	CHECK_INT(queue_cancel(t, b, 0, &need), 0);
	CHECK_INT(need, 1);
	CHECK_INT(queue_finish(t, b, QUEUE_DONE, 1, 143, 15), 0);
	/* delivered, agent offline: cancelled here */
	CHECK_INT(queue_cancel(t, c, 1, &need), 0);
	CHECK_INT(need, 0);
	CHECK_INT(queue_cancel(t, "t-x", 1, &need), STORE_NOTFOUND);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	CHECK_INT(state_of(s, b), QUEUE_CANCELLED);
	CHECK_INT(state_of(s, c), QUEUE_CANCELLED);
	CHECK_INT(lease(s, "i-1", 10, 1, &out), 0);
	/* removing an instance ends all its unfinished tasks */
	t = store_txn_begin(s, 0);
	CHECK_INT(queue_add(t, rng, "i-1", "exec", "{}", 1, a), 0);
	CHECK_INT(queue_add(t, rng, "i-1", "exec", "{}", 1, b), 0);
	CHECK_INT(queue_accept(t, b), 0);
	CHECK_INT(queue_cancel_instance(t, "i-1"), 2);
	CHECK_INT(queue_cancel_instance(t, "i-1"), 0);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	CHECK_INT(state_of(s, a), QUEUE_CANCELLED);
	CHECK_INT(state_of(s, b), QUEUE_CANCELLED);
	CHECK_INT(lease(s, "i-1", 10, 1, &out), 0);
	/* an ended task stays as it is */
	t = store_txn_begin(s, 0);
	CHECK_INT(queue_cancel(t, b, 0, &need), 0);
	CHECK_INT(need, 0);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	crypt_rng_free(rng);
	store_close(s);
}

struct collected {
	struct buf out;
};

static int collect(char stream, const void *data, size_t len, void *arg)
{
	struct collected *c = arg;
	buf_putc(&c->out, stream);
	buf_add(&c->out, data, len);
	buf_putc(&c->out, '|');
	return 0;
}

TEST(queue_output_is_kept_in_order_and_bounded)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	char a[QUEUE_ID_MAX], err[256];
	struct store_txn *t = store_txn_begin(s, 0);
	CHECK_INT(queue_add(t, rng, "i-1", "exec", "{}", 1, a), 0);
	CHECK_INT(queue_output_add(t, a, 'o', "hello", 5), 0);
	CHECK_INT(queue_output_add(t, a, 'e', "oops", 4), 0);
	CHECK_INT(queue_output_add(t, a, 'o', "\0x", 2), 0);
	CHECK_INT(queue_output_add(t, "t-none", 'o', "x", 1), 0);
	char *big = calloc(1, QUEUE_OUTPUT_MAX);
	CHECK_INT(queue_output_add(t, a, 'o', big, QUEUE_OUTPUT_MAX), 0); /* over: dropped */
	free(big);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	store_close(s);
	s = open_store();
	struct collected c = {BUF_INIT};
	t = store_txn_begin(s, 1);
	CHECK_INT(queue_output_scan(t, a, collect, &c), 0);
	store_txn_abort(t);
	CHECK_INT(c.out.len, 17);
	CHECK(memcmp(c.out.data, "ohello|eoops|o\0x|", 17) == 0);
	buf_release(&c.out);
	crypt_rng_free(rng);
	store_close(s);
}
