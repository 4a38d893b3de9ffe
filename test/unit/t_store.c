#include "store.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "log.h"
#include "xalloc.h"

static const char *const names[] = {"meta", "deploys", NULL};
enum { DB_META, DB_DEPLOYS };

static struct store *open_db(const char *path, size_t map)
{
	char err[256] = "";
	struct store *s = store_open(path, names, map, 0, err, sizeof err);
	if (!s)
		harness_fail(__FILE__, __LINE__, "store_open: %s", err);
	return s;
}

static void put_str(struct store_txn *t, int db, const char *k, const char *v)
{
	CHECK_INT(store_put(t, db, k, strlen(k), v, strlen(v)), 0);
}

TEST(store_put_get_del_and_reopen)
{
	struct store *s = open_db("data/store", 0);
	CHECK_INT(store_db(s, "deploys"), DB_DEPLOYS);
	CHECK_INT(store_db(s, "nope"), -1);
	CHECK_STR(store_db_name(s, DB_META), "meta");
	CHECK(store_map_size(s) >= STORE_MAP_SIZE_DEFAULT);
	struct stat st;
	CHECK(stat("data/store", &st) == 0 && (st.st_mode & 0777) == 0700);

	struct store_txn *t = store_txn_begin(s, 0);
	put_str(t, DB_META, "a", "one");
	put_str(t, DB_META, "b", "two");
	put_str(t, DB_DEPLOYS, "a", "other db");
	CHECK_INT(store_put_noover(t, DB_META, "a", 1, "x", 1), STORE_EXISTS);
	CHECK_INT(store_put_noover(t, DB_META, "c", 1, "three", 5), 0);
	CHECK_INT(store_put(t, DB_META, "empty", 5, NULL, 0), 0);
	CHECK_INT(store_del(t, DB_META, "b", 1), 0);
	CHECK_INT(store_del(t, DB_META, "b", 1), STORE_NOTFOUND);
	CHECK(!store_txn_failed(t));
	CHECK_STR(store_txn_error(t), "");
	CHECK_INT(store_txn_commit(t, NULL, 0), 0);

	/* aborted writes vanish */
	t = store_txn_begin(s, 0);
	put_str(t, DB_META, "gone", "x");
	store_txn_abort(t);
	store_txn_abort(NULL);
	store_close(s);

	s = open_db("data/store", 0);
	t = store_txn_begin(s, 1);
	const void *v;
	size_t n;
	CHECK_INT(store_get(t, DB_META, "a", 1, &v, &n), 0);
	CHECK_INT(n, 3);
	CHECK(memcmp(v, "one", 3) == 0);
	CHECK_INT(store_get(t, DB_META, "b", 1, &v, &n), STORE_NOTFOUND);
	CHECK_INT(store_get(t, DB_META, "empty", 5, &v, &n), 0);
	CHECK_INT(n, 0);
	/* an empty prefix scans everything */
	struct store_iter *it = store_iter_prefix(t, DB_META, NULL, 0, 1);
	CHECK_INT(store_iter_next(it), 1);
	size_t kl;
	const char *k = store_iter_key(it, &kl);
	CHECK(kl == 5 && memcmp(k, "empty", 5) == 0);
	store_iter_free(it);
	CHECK_INT(store_get(t, DB_META, "gone", 4, NULL, NULL), STORE_NOTFOUND);
	char *d = store_get_dup(t, DB_DEPLOYS, "a", 1, &n);
	CHECK_STR(d, "other db");
	CHECK_INT(n, 8);
	free(d);
	CHECK(store_get_dup(t, DB_META, "zz", 2, NULL) == NULL);
	CHECK(!store_txn_failed(t));
	struct buf b = BUF_INIT;
	buf_puts(&b, ">");
	CHECK_INT(store_get_buf(t, DB_META, "c", 1, &b), 0);
	CHECK_STR(b.data, ">three");
	buf_release(&b);
	/* writes in a read transaction fail and stick */
	CHECK_INT(store_put(t, DB_META, "a", 1, "x", 1), -1);
	CHECK_STR(store_txn_error(t), "put in 'meta': read-only transaction");
	char err[256];
	CHECK_INT(store_txn_commit(t, err, sizeof err), -1);
	CHECK_STR(err, "put in 'meta': read-only transaction");
	store_close(s);
	store_close(NULL);
}

TEST(store_sticky_errors)
{
	struct store *s = open_db("db", 0);
	struct store_txn *t = store_txn_begin(s, 0);
	put_str(t, DB_META, "before", "1");
	CHECK_INT(store_put(t, DB_META, "", 0, "x", 1), -1);
	CHECK(store_txn_failed(t));
	CHECK_STR(store_txn_error(t), "put in 'meta': invalid key (length 0)");
	/* every later operation is a no-op returning -1 */
	CHECK_INT(store_put(t, DB_META, "after", 5, "2", 1), -1);
	CHECK_INT(store_get(t, DB_META, "before", 6, NULL, NULL), -1);
	CHECK_INT(store_del(t, DB_META, "before", 6), -1);
	CHECK_INT(store_next_seq(t, DB_META, "seq", 3), 0);
	struct store_iter *it = store_iter_prefix(t, DB_META, "b", 1, 0);
	CHECK_INT(store_iter_next(it), -1);
	store_iter_free(it);
	store_txn_fail(t, "later reason %d", 2);
	CHECK_STR(store_txn_error(t), "put in 'meta': invalid key (length 0)");
	char err[256] = "";
	CHECK_INT(store_txn_commit(t, err, sizeof err), -1);
	CHECK_STR(err, "put in 'meta': invalid key (length 0)");

	/* nothing of the failed transaction was written */
	t = store_txn_begin(s, 1);
	CHECK_INT(store_get(t, DB_META, "before", 6, NULL, NULL), STORE_NOTFOUND);
	CHECK_INT(store_txn_commit(t, NULL, 0), 0);

	/* caller's own reason; bad db index; too long key */
	t = store_txn_begin(s, 0);
	store_txn_fail(t, "record '%s' does not decode", "x");
	CHECK_INT(store_txn_commit(t, err, sizeof err), -1);
	CHECK_STR(err, "record 'x' does not decode");
	t = store_txn_begin(s, 0);
	CHECK_INT(store_put(t, 7, "k", 1, "v", 1), -1);
	CHECK_STR(store_txn_error(t), "put: database index 7 out of range");
	store_txn_abort(t);
	t = store_txn_begin(s, 0);
	char big[600];
	memset(big, 'k', sizeof big);
	CHECK_INT(store_put(t, DB_META, big, sizeof big, "v", 1), -1);
	CHECK_STR(store_txn_error(t), "put in 'meta': invalid key (length 600)");
	store_txn_abort(t);

	/* one write transaction at a time; readers alongside (MDB_NOTLS) */
	struct store_txn *w = store_txn_begin(s, 0);
	put_str(w, DB_META, "k", "uncommitted");
	struct store_txn *w2 = store_txn_begin(s, 0);
	CHECK(store_txn_failed(w2));
	CHECK_STR(store_txn_error(w2), "store 'db': a write transaction is already open");
	CHECK_INT(store_txn_commit(w2, err, sizeof err), -1);
	struct store_txn *r1 = store_txn_begin(s, 1), *r2 = store_txn_begin(s, 1);
	CHECK(!store_txn_failed(r1) && !store_txn_failed(r2));
	CHECK_INT(store_get(r1, DB_META, "k", 1, NULL, NULL), STORE_NOTFOUND);
	CHECK_INT(store_txn_commit(w, NULL, 0), 0);
	CHECK_INT(store_get(r2, DB_META, "k", 1, NULL, NULL), STORE_NOTFOUND); /* snapshot */
	store_txn_abort(r1);
	store_txn_abort(r2);
	r1 = store_txn_begin(s, 1);
	CHECK_INT(store_get(r1, DB_META, "k", 1, NULL, NULL), 0);
	store_txn_abort(r1);
	store_close(s);
}

TEST(store_big_endian_keys_sort_numerically)
{
	unsigned char be[8];
	store_key_u64(be, 0x0102030405060708ull);
	CHECK(memcmp(be, "\x01\x02\x03\x04\x05\x06\x07\x08", 8) == 0);
	CHECK(store_u64_from_key(be) == 0x0102030405060708ull);
	store_key_u64(be, UINT64_MAX);
	CHECK(store_u64_from_key(be) == UINT64_MAX);

	struct store *s = open_db("db", 0);
	struct store_txn *t = store_txn_begin(s, 0);
	static const uint64_t nums[] = {256, 10, 1, 65536, 2, UINT64_MAX, 0};
	for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
		store_key_u64(be, nums[i]);
		CHECK_INT(store_put(t, DB_DEPLOYS, be, 8, "v", 1), 0);
	}
	CHECK_INT(store_txn_commit(t, NULL, 0), 0);

	static const uint64_t want[] = {0, 1, 2, 10, 256, 65536, UINT64_MAX};
	t = store_txn_begin(s, 1);
	struct store_iter *it = store_iter_range(t, DB_DEPLOYS, NULL, 0, NULL, 0, 0);
	size_t i = 0, kl;
	while (store_iter_next(it) == 1) {
		const void *k = store_iter_key(it, &kl);
		CHECK_INT(kl, 8);
		CHECK(i < 7 && store_u64_from_key(k) == want[i]);
		i++;
	}
	CHECK_INT(i, 7);
	store_iter_free(it);
	/* backwards, [2, 65536) */
	unsigned char lo[8], hi[8];
	store_key_u64(lo, 2);
	store_key_u64(hi, 65536);
	it = store_iter_range(t, DB_DEPLOYS, lo, 8, hi, 8, 1);
	static const uint64_t back[] = {256, 10, 2};
	i = 0;
	while (store_iter_next(it) == 1) {
		CHECK(i < 3 && store_u64_from_key(store_iter_key(it, NULL)) == back[i]);
		i++;
	}
	CHECK_INT(i, 3);
	CHECK_INT(store_iter_next(it), 0); /* stays at the end */
	store_iter_free(it);
	store_txn_abort(t);
	store_close(s);
}

static void dkey(struct store_key *k, const char *cluster, const char *svc, uint64_t id)
{
	store_key_init(k);
	store_key_str(k, cluster);
	store_key_str(k, svc);
	store_key_num(k, id);
}

static void fill(struct store *s)
{
	struct store_txn *t = store_txn_begin(s, 0);
	struct store_key k;
	static const uint64_t ids[] = {1, 2, 3, 10, 256};
	for (size_t i = 0; i < 5; i++) {
		char v[32];
		snprintf(v, sizeof v, "web-%llu", (unsigned long long)ids[i]);
		dkey(&k, "c1", "web", ids[i]);
		CHECK_INT(store_put(t, DB_DEPLOYS, k.data, k.len, v, strlen(v)), 0);
	}
	dkey(&k, "c1", "api", 5);
	CHECK_INT(store_put(t, DB_DEPLOYS, k.data, k.len, "api-5", 5), 0);
	dkey(&k, "c1", "webx", 1);
	CHECK_INT(store_put(t, DB_DEPLOYS, k.data, k.len, "webx-1", 6), 0);
	dkey(&k, "c10", "web", 1);
	CHECK_INT(store_put(t, DB_DEPLOYS, k.data, k.len, "c10-web-1", 9), 0);
	CHECK_INT(store_txn_commit(t, NULL, 0), 0);
}

/* Values yielded by a prefix scan, joined with spaces. */
static void collect(struct store_txn *t, const struct store_key *p, int reverse, int limit,
		    struct buf *out)
{
	struct store_iter *it = store_iter_prefix(t, DB_DEPLOYS, p->data, p->len, reverse);
	int n = 0;
	while (n < limit && store_iter_next(it) == 1) {
		size_t vl;
		const char *v = store_iter_val(it, &vl);
		buf_printf(out, "%s%.*s", n++ ? " " : "", (int)vl, v);
	}
	store_iter_free(it);
}

TEST(store_prefix_scans_both_directions)
{
	struct store *s = open_db("db", 0);
	fill(s);
	struct store_txn *t = store_txn_begin(s, 1);
	struct store_key p;
	struct buf b = BUF_INIT;

	store_key_init(&p);
	store_key_str(&p, "c1");
	collect(t, &p, 0, 100, &b);
	CHECK_STR(b.data, "api-5 web-1 web-2 web-3 web-10 web-256 webx-1");
	buf_reset(&b);
	store_key_str(&p, "web");
	collect(t, &p, 0, 100, &b);
	CHECK_STR(b.data, "web-1 web-2 web-3 web-10 web-256");
	buf_reset(&b);
	collect(t, &p, 1, 100, &b);
	CHECK_STR(b.data, "web-256 web-10 web-3 web-2 web-1");
	buf_reset(&b);
	collect(t, &p, 1, 2, &b); /* latest 2 */
	CHECK_STR(b.data, "web-256 web-10");
	buf_reset(&b);
	store_key_init(&p);
	store_key_str(&p, "c9");
	collect(t, &p, 0, 100, &b);
	collect(t, &p, 1, 100, &b);
	CHECK_STR(b.data, "");
	/* [c1/web/2, c1/web/256) */
	struct store_key from, to;
	dkey(&from, "c1", "web", 2);
	dkey(&to, "c1", "web", 256);
	static const char *const fw = "web-2 web-3 web-10", *const bw = "web-10 web-3 web-2";
	for (int rev = 0; rev < 2; rev++) {
		buf_reset(&b);
		struct store_iter *it =
		    store_iter_range(t, DB_DEPLOYS, from.data, from.len, to.data, to.len, rev);
		while (store_iter_next(it) == 1) {
			size_t vl;
			const char *v = store_iter_val(it, &vl);
			buf_printf(&b, "%s%.*s", b.len ? " " : "", (int)vl, v);
		}
		store_iter_free(it);
		CHECK_STR(b.data, rev ? bw : fw);
	}
	/* prefixes ending in 0xff */
	CHECK_INT(store_txn_commit(t, NULL, 0), 0);
	t = store_txn_begin(s, 0);
	CHECK_INT(store_put(t, DB_META, "\xff\xff", 2, "a", 1), 0);
	CHECK_INT(store_put(t, DB_META, "\xff\xff\x01", 3, "b", 1), 0);
	CHECK_INT(store_put(t, DB_META, "\xfe\xff\xff", 3, "c", 1), 0);
	CHECK_INT(store_put(t, DB_META, "\xff", 1, "d", 1), 0);
	buf_reset(&b);
	struct store_iter *it = store_iter_prefix(t, DB_META, "\xff\xff", 2, 0);
	while (store_iter_next(it) == 1)
		buf_add(&b, store_iter_val(it, NULL), 1);
	store_iter_free(it);
	CHECK_STR(b.data, "ab");
	buf_reset(&b);
	it = store_iter_prefix(t, DB_META, "\xfe\xff", 2, 1);
	while (store_iter_next(it) == 1)
		buf_add(&b, store_iter_val(it, NULL), 1);
	store_iter_free(it);
	CHECK_STR(b.data, "c");
	store_txn_abort(t);
	buf_release(&b);
	store_close(s);
}

TEST(store_key_builder_rejects_bad_components)
{
	struct store_key k;
	store_key_init(&k);
	store_key_str(&k, "a");
	store_key_str(&k, "b");
	CHECK_INT(k.len, 4);
	CHECK(memcmp(k.data, "a/b/", 4) == 0);
	store_key_raw(&k, "xy", 2);
	CHECK_INT(k.len, 6);
	store_key_str(&k, "has/slash");
	CHECK(k.invalid);
	CHECK_INT(k.len, 0);
	store_key_str(&k, "ok"); /* stays invalid */
	CHECK_INT(k.len, 0);
	store_key_init(&k);
	store_key_str(&k, "");
	CHECK(k.invalid);
	store_key_init(&k);
	for (int i = 0; i < 63; i++)
		store_key_num(&k, (uint64_t)i);
	CHECK(!k.invalid);
	CHECK_INT(k.len, 504);
	store_key_num(&k, 64);
	CHECK(k.invalid);

	struct store *s = open_db("db", 0);
	struct store_txn *t = store_txn_begin(s, 0);
	CHECK_INT(store_put(t, DB_META, k.data, k.len, "v", 1), -1);
	CHECK_STR(store_txn_error(t), "put in 'meta': invalid key (length 0)");
	store_txn_abort(t);
	store_close(s);
}

/* Deletes every entry whose value ends in an even digit. */
static int del_even(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	struct store_txn *t = arg;
	if ((((const char *)v)[vl - 1] - '0') % 2 == 0)
		return store_del(t, DB_DEPLOYS, k, kl) == 0 ? 0 : -1;
	return 0;
}

static int count_fn(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	(*(int *)arg)++;
	return *(int *)arg == 3 ? 7 : 0;
}

TEST(store_delete_while_iterating)
{
	struct store *s = open_db("db", 0);
	fill(s);
	struct store_key p;
	store_key_init(&p);
	store_key_str(&p, "c1");
	store_key_str(&p, "web");
	struct buf b = BUF_INIT;

	/* forwards: delete every entry via the iterator, and insert one ahead */
	struct store_txn *t = store_txn_begin(s, 0);
	struct store_iter *it = store_iter_prefix(t, DB_DEPLOYS, p.data, p.len, 0);
	int n = 0;
	while (store_iter_next(it) == 1) {
		size_t vl;
		const char *v = store_iter_val(it, &vl);
		buf_printf(&b, "%s%.*s", n ? " " : "", (int)vl, v);
		CHECK_INT(store_iter_del(it), 0);
		if (n++ == 1) {
			struct store_key k;
			dkey(&k, "c1", "web", 7);
			CHECK_INT(store_put(t, DB_DEPLOYS, k.data, k.len, "web-7", 5), 0);
		}
	}
	store_iter_free(it);
	CHECK_STR(b.data, "web-1 web-2 web-3 web-7 web-10 web-256");
	buf_reset(&b);
	collect(t, &p, 0, 100, &b);
	CHECK_STR(b.data, "");
	store_txn_abort(t);

	/* backwards, deleting every other entry */
	t = store_txn_begin(s, 0);
	it = store_iter_prefix(t, DB_DEPLOYS, p.data, p.len, 1);
	n = 0;
	while (store_iter_next(it) == 1) {
		if (n++ % 2 == 0)
			CHECK_INT(store_iter_del(it), 0);
	}
	CHECK_INT(n, 5);
	CHECK_INT(store_iter_del(it), -1); /* no current entry */
	CHECK_STR(store_txn_error(t), "del in 'deploys': iterator has no current entry");
	store_iter_free(it);
	store_txn_abort(t);
	t = store_txn_begin(s, 0);
	it = store_iter_prefix(t, DB_DEPLOYS, p.data, p.len, 1);
	n = 0;
	while (store_iter_next(it) == 1)
		if (n++ % 2 == 0)
			CHECK_INT(store_iter_del(it), 0);
	store_iter_free(it);
	buf_reset(&b);
	collect(t, &p, 0, 100, &b);
	CHECK_STR(b.data, "web-2 web-10");

	/* callback scan deleting by key */
	CHECK_INT(store_scan_prefix(t, DB_DEPLOYS, p.data, p.len, 0, del_even, t), 0);
	buf_reset(&b);
	collect(t, &p, 0, 100, &b);
	CHECK_STR(b.data, "");
	int count = 0;
	CHECK_INT(store_scan(t, DB_DEPLOYS, NULL, 0, NULL, 0, 1, count_fn, &count), 7);
	CHECK_INT(count, 3);
	CHECK_INT(store_txn_commit(t, NULL, 0), 0);
	buf_release(&b);
	store_close(s);
}

TEST(store_iterator_outliving_its_transaction_is_invalid)
{
	struct store *s = open_db("db", 0);
	fill(s);
	struct store_txn *t = store_txn_begin(s, 1);
	struct store_iter *it = store_iter_range(t, DB_DEPLOYS, NULL, 0, NULL, 0, 0);
	CHECK_INT(store_iter_next(it), 1);
	store_txn_abort(t);
	CHECK_INT(store_iter_next(it), -1);
	store_iter_free(it);
	store_iter_free(NULL);
	store_close(s);
}

TEST(store_sequence_counters_survive_reopen)
{
	struct store *s = open_db("db", 0);
	struct store_txn *t = store_txn_begin(s, 0);
	CHECK(store_next_seq(t, DB_META, "seq/ev", 6) == 1);
	CHECK(store_next_seq(t, DB_META, "seq/ev", 6) == 2);
	CHECK(store_next_seq(t, DB_META, "seq/task", 8) == 1);
	CHECK_INT(store_txn_commit(t, NULL, 0), 0);
	t = store_txn_begin(s, 0);
	CHECK(store_next_seq(t, DB_META, "seq/ev", 6) == 3);
	store_txn_abort(t); /* not durable */
	store_close(s);

	s = open_db("db", 0);
	t = store_txn_begin(s, 0);
	CHECK(store_next_seq(t, DB_META, "seq/ev", 6) == 3);
	const void *v;
	size_t n;
	CHECK_INT(store_get(t, DB_META, "seq/ev", 6, &v, &n), 0);
	CHECK_INT(n, 8);
	CHECK(store_u64_from_key(v) == 3);
	/* a counter that is not 8 bytes is an error */
	put_str(t, DB_META, "bad", "xyz");
	CHECK(store_next_seq(t, DB_META, "bad", 3) == 0);
	CHECK_STR(store_txn_error(t), "seq 'bad' in 'meta': counter is 3 bytes, not 8");
	store_txn_abort(t);
	t = store_txn_begin(s, 0);
	unsigned char max[8];
	store_key_u64(max, UINT64_MAX);
	CHECK_INT(store_put(t, DB_META, "max", 3, max, 8), 0);
	CHECK(store_next_seq(t, DB_META, "max", 3) == 0);
	CHECK_STR(store_txn_error(t), "seq 'max' in 'meta': counter overflow");
	store_txn_abort(t);
	store_close(s);
}

TEST(store_commit_survives_kill_9_of_child)
{
	struct store *s = open_db("db", 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		/* The inherited environment must not be used here... */
		struct store_txn *t = store_txn_begin(s, 0);
		if (!store_txn_failed(t) ||
		    strcmp(store_txn_error(t), "store 'db': used in a child process after fork"))
			_exit(3);
		store_txn_abort(t);
		store_close(s);
		/* ...the child opens its own. */
		char err[256];
		struct store *c = store_open("db", names, 0, 0, err, sizeof err);
		if (!c)
			_exit(4);
		t = store_txn_begin(c, 0);
		store_put(t, DB_META, "child", 5, "was here", 8);
		uint64_t seq = store_next_seq(t, DB_META, "seq", 3);
		if (store_txn_commit(t, err, sizeof err) < 0 || seq != 1)
			_exit(5);
		raise(SIGKILL);
		_exit(6);
	}
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	/* the parent's still open environment sees the commit */
	struct store_txn *t = store_txn_begin(s, 1);
	char *v = store_get_dup(t, DB_META, "child", 5, NULL);
	CHECK_STR(v, "was here");
	free(v);
	store_txn_abort(t);
	store_close(s);
	/* and so does a fresh one; the writer lock was left free */
	s = open_db("db", 0);
	t = store_txn_begin(s, 0);
	CHECK(store_next_seq(t, DB_META, "seq", 3) == 2);
	CHECK_INT(store_txn_commit(t, NULL, 0), 0);
	store_close(s);
}

TEST(store_descriptors_are_close_on_exec)
{
	struct store *s = open_db("db", 0);
	DIR *d = opendir("/proc/self/fd");
	CHECK(d != NULL);
	struct dirent *e;
	int found = 0;
	char cwd[4096];
	CHECK(getcwd(cwd, sizeof cwd) != NULL);
	while ((e = readdir(d))) {
		char link[300], target[4096];
		snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(link, target, sizeof target - 1);
		if (n <= 0)
			continue;
		target[n] = 0;
		if (strncmp(target, cwd, strlen(cwd)) || !strstr(target, "/db/"))
			continue;
		found++;
		int fl = fcntl(atoi(e->d_name), F_GETFD);
		if (!(fl & FD_CLOEXEC))
			harness_fail(__FILE__, __LINE__, "%s is not close-on-exec", target);
	}
	closedir(d);
	CHECK(found >= 2); /* data.mdb and lock.mdb */
	store_close(s);
}

struct fill_arg {
	int count;
	size_t vsize;
	int runs;
};

static int fill_fn(struct store_txn *t, void *arg)
{
	struct fill_arg *a = arg;
	char *v = xcalloc(1, a->vsize);
	a->runs++;
	for (int i = 0; i < a->count; i++) {
		unsigned char k[8];
		store_key_u64(k, (uint64_t)i);
		store_put(t, DB_DEPLOYS, k, 8, v, a->vsize);
	}
	free(v);
	return 0;
}

TEST(store_map_full_grows_and_retries)
{
	size_t small = 256 * 1024;
	log_set_stderr(0); /* "map grown" lines */
	struct store *s = open_db("db", small);
	CHECK_INT(store_map_size(s), small);
	/* ~400 KiB does not fit in 256 KiB: plain transaction fails clearly */
	struct fill_arg a = {100, 4000, 0};
	struct store_txn *t = store_txn_begin(s, 0);
	fill_fn(t, &a);
	CHECK(store_txn_failed(t));
	CHECK(strstr(store_txn_error(t), "map full (262144 bytes)") != NULL);
	char err[256];
	CHECK_INT(store_txn_commit(t, err, sizeof err), -1);
	CHECK(strncmp(err, "put '", 5) == 0);
	/* ...and the map doubled once nothing was open */
	CHECK_INT(store_map_size(s), 2 * small);
	t = store_txn_begin(s, 0);
	fill_fn(t, &a);
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);

	/* store_update retries once after growing */
	a = (struct fill_arg){120, 4000, 0};
	if (store_update(s, fill_fn, &a, err, sizeof err) != 0)
		harness_fail(__FILE__, __LINE__, "store_update: %s", err);
	CHECK_INT(a.runs, 2);
	CHECK_INT(store_map_size(s), 4 * small);
	/* too big even after growing: a clear error after two runs */
	a = (struct fill_arg){2000, 4000, 0};
	CHECK_INT(store_update(s, fill_fn, &a, err, sizeof err), -1);
	CHECK_INT(a.runs, 2);
	CHECK(strstr(err, "map full (2097152 bytes)") != NULL);
	store_close(s);

	/* the grown map persists */
	s = open_db("db", small);
	CHECK(store_map_size(s) >= 4 * small);
	t = store_txn_begin(s, 1);
	unsigned char k[8];
	store_key_u64(k, 119);
	CHECK_INT(store_get(t, DB_DEPLOYS, k, 8, NULL, NULL), 0);
	store_txn_abort(t);
	store_close(s);
}

static int abort_fn(struct store_txn *t, void *arg)
{
	store_put(t, DB_META, "x", 1, "y", 1);
	return -1;
}

TEST(store_update_caller_abort)
{
	struct store *s = open_db("db", 0);
	char err[256];
	CHECK_INT(store_update(s, abort_fn, NULL, err, sizeof err), -1);
	CHECK_STR(err, "aborted by caller");
	struct store_txn *t = store_txn_begin(s, 1);
	CHECK_INT(store_get(t, DB_META, "x", 1, NULL, NULL), STORE_NOTFOUND);
	store_txn_abort(t);
	store_close(s);
}

TEST(store_open_errors)
{
	char err[256];
	CHECK(store_open("", names, 0, 0, err, sizeof err) == NULL);
	CHECK_STR(err, "open store: empty path");
	FILE *f = fopen("file", "w");
	CHECK(f != NULL);
	fclose(f);
	CHECK(store_open("file", names, 0, 0, err, sizeof err) == NULL);
	CHECK_STR(err, "open store 'file': not a directory");
	CHECK(store_open("file/sub", names, 0, 0, err, sizeof err) == NULL);
	CHECK_STR(err, "open store 'file/sub': mkdir 'file/sub': Not a directory");
	static const char *const none[] = {NULL};
	CHECK(store_open("db", none, 0, 0, err, sizeof err) == NULL);
	CHECK_STR(err, "open store 'db': need 1 to 128 database names, not 0");
	static const char *const dup[] = {"a", "b", "a", NULL};
	CHECK(store_open("db", dup, 0, 0, err, sizeof err) == NULL);
	CHECK_STR(err, "open store 'db': database 'a' named twice");
	static const char *const empty[] = {"a", "", NULL};
	CHECK(store_open("db", empty, 0, 0, err, sizeof err) == NULL);
	CHECK_STR(err, "open store 'db': empty database name");
	/* read-only: the directory and the databases must exist */
	CHECK(store_open("missing", names, 0, STORE_RDONLY, err, sizeof err) == NULL);
	CHECK_STR(err, "open store 'missing': No such file or directory");
	store_close(open_db("db", 0));
	static const char *const more[] = {"meta", "other", NULL};
	CHECK(store_open("db", more, 0, STORE_RDONLY, err, sizeof err) == NULL);
	CHECK_STR(err, "open store 'db': database 'other' does not exist");
	struct store *s = store_open("db", names, 0, STORE_RDONLY, err, sizeof err);
	CHECK(s != NULL);
	struct store_txn *t = store_txn_begin(s, 0);
	CHECK_STR(store_txn_error(t), "store 'db': opened read-only");
	store_txn_abort(t);
	store_close(s);
	if (geteuid() != 0) {
		CHECK(mkdir("ro", 0500) == 0);
		CHECK(store_open("ro/db", names, 0, 0, err, sizeof err) == NULL);
		CHECK_STR(err, "open store 'ro/db': mkdir 'ro/db': Permission denied");
	}
}

/* Random puts and deletes between the steps of an iterator: every step must
 * yield exactly the next key present at that moment (a model check). */
TEST(store_iterator_model_check_under_changes)
{
	enum { N = 200 };
	struct store *s = open_db("db", 0);
	unsigned seed = 12345;
	for (int round = 0; round < 40; round++) {
		int reverse = round % 2;
		char present[N];
		struct store_txn *t = store_txn_begin(s, 0);
		for (int i = 0; i < N; i++) {
			unsigned char k[8];
			store_key_u64(k, (uint64_t)i);
			present[i] = (char)(rand_r(&seed) % 2);
			if (present[i])
				CHECK_INT(store_put(t, DB_DEPLOYS, k, 8, "v", 1), 0);
			else
				CHECK(store_del(t, DB_DEPLOYS, k, 8) >= 0);
		}
		struct store_iter *it = store_iter_range(t, DB_DEPLOYS, NULL, 0, NULL, 0, reverse);
		int prev = reverse ? N : -1, rc;
		while ((rc = store_iter_next(it)) == 1) {
			int x = (int)store_u64_from_key(store_iter_key(it, NULL));
			int want = -1;
			if (!reverse) {
				for (int y = prev + 1; y < N && want < 0; y++)
					if (present[y])
						want = y;
			} else {
				for (int y = prev - 1; y >= 0 && want < 0; y--)
					if (present[y])
						want = y;
			}
			if (x != want)
				harness_fail(__FILE__, __LINE__,
					     "round %d: yielded %d, expected %d", round, x, want);
			prev = x;
			for (int op = rand_r(&seed) % 4; op > 0; op--) {
				int r = rand_r(&seed) % 3, y = rand_r(&seed) % N;
				unsigned char k[8];
				store_key_u64(k, (uint64_t)y);
				if (r == 0 && present[x]) {
					CHECK_INT(store_iter_del(it), 0);
					present[x] = 0;
				} else if (r == 1) {
					CHECK_INT(store_del(t, DB_DEPLOYS, k, 8),
						  present[y] ? 0 : STORE_NOTFOUND);
					present[y] = 0;
				} else {
					CHECK_INT(store_put(t, DB_DEPLOYS, k, 8, "w", 1), 0);
					present[y] = 1;
				}
			}
		}
		CHECK_INT(rc, 0);
		if (!reverse) {
			for (int y = prev + 1; y < N; y++)
				CHECK(!present[y]);
		} else {
			for (int y = prev - 1; y >= 0; y--)
				CHECK(!present[y]);
		}
		store_iter_free(it);
		CHECK_INT(store_txn_commit(t, NULL, 0), 0);
	}
	store_close(s);
}
