#include "deploys.h"

#include <stdio.h>

#include "harness.h"
#include "xalloc.h"

static const char *const dbnames[] = {DEPLOYS_DBS, NULL};

static struct store *open_store(void)
{
	char err[256] = "";
	struct store *s = store_open("data", dbnames, 0, 0, err, sizeof err);
	if (!s)
		harness_fail(__FILE__, __LINE__, "store_open: %s", err);
	return s;
}

static void commit(struct store_txn *t)
{
	char err[256] = "";
	if (store_txn_commit(t, err, sizeof err) < 0)
		harness_fail(__FILE__, __LINE__, "commit: %s", err);
}

/* Add a deployment and return its id in id. */
static void add(struct store_txn *t, struct crypt_rng *rng, const char *cluster,
		const char *service, int64_t now, char id[DEPLOYS_ID_MAX])
{
	char err[256] = "";
	struct deploys_rec r;
	struct deploys_new in = {.cluster = cluster,
				 .service = service,
				 .instance = "vm-1",
				 .blueprint = "name: web\nruntime: python3\n",
				 .title = "t"};
	if (deploys_add(t, rng, &in, now, &r, err, sizeof err) != 0)
		harness_fail(__FILE__, __LINE__, "deploys_add: %s", err);
	memcpy(id, r.id, DEPLOYS_ID_MAX);
	deploys_rec_release(&r);
}

static int set(struct store_txn *t, const char *id, enum deploys_status to, char *err,
	       size_t errlen)
{
	return deploys_set_status(t, id, to, 1000, "why", NULL, err, errlen);
}

static void must_set(struct store_txn *t, const char *id, enum deploys_status to)
{
	char err[256] = "";
	if (set(t, id, to, err, sizeof err) != 0)
		harness_fail(__FILE__, __LINE__, "set %s -> %s: %s", id, deploys_status_name(to),
			     err);
}

static enum deploys_status status_of(struct store_txn *t, const char *id)
{
	struct deploys_rec r;
	CHECK_INT(deploys_get(t, id, &r), 0);
	enum deploys_status s = r.status;
	deploys_rec_release(&r);
	return s;
}

TEST(deploys_status_table)
{
	static const int want[5][5] = {
	    /* to:      queued running done error cancelled */
	    [DEPLOYS_QUEUED] = {0, 1, 0, 0, 1},	   [DEPLOYS_RUNNING] = {0, 0, 1, 1, 1},
	    [DEPLOYS_DONE] = {0, 0, 0, 0, 0},	   [DEPLOYS_ERROR] = {0, 0, 0, 0, 0},
	    [DEPLOYS_CANCELLED] = {0, 0, 0, 0, 0},
	};
	for (int f = 0; f < 5; f++) {
		for (int to = 0; to < 5; to++)
			CHECK_INT(deploys_status_allowed(f, to), want[f][to]);
		enum deploys_status back;
		CHECK_INT(deploys_status_parse(deploys_status_name(f), &back), 0);
		CHECK_INT(back, f);
		CHECK_INT(deploys_status_final(f), f >= DEPLOYS_DONE);
	}
	CHECK_INT(deploys_status_allowed(7, 0), 0);
	CHECK_INT(deploys_status_allowed(0, -1), 0);
	enum deploys_status x;
	CHECK_INT(deploys_status_parse("failed", &x), -1);
	CHECK_INT(deploys_status_parse(NULL, &x), -1);
	CHECK_STR(deploys_status_name(9), "unknown");
}

/* Drive a fresh deployment to status from (by a legal path). */
static void drive(struct store_txn *t, const char *id, enum deploys_status from)
{
	if (from == DEPLOYS_QUEUED)
		return;
	if (from == DEPLOYS_CANCELLED) {
		must_set(t, id, DEPLOYS_CANCELLED);
		return;
	}
	must_set(t, id, DEPLOYS_RUNNING);
	if (from != DEPLOYS_RUNNING)
		must_set(t, id, from);
}

TEST(deploys_every_transition_in_the_store)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	for (int f = 0; f < 5; f++) {
		for (int to = 0; to < 5; to++) {
			char svc[32], id[DEPLOYS_ID_MAX], err[256] = "";
			snprintf(svc, sizeof svc, "svc-%d-%d", f, to);
			struct store_txn *t = store_txn_begin(s, 0);
			add(t, rng, "c1", svc, 10, id);
			drive(t, id, f);
			CHECK_INT(status_of(t, id), f);
			struct deploys_rec r;
			int rc = deploys_set_status(t, id, to, 5000, "boom", &r, err, sizeof err);
			if (deploys_status_allowed(f, to)) {
				CHECK_INT(rc, 0);
				CHECK_INT(r.status, to);
				if (to == DEPLOYS_RUNNING)
					CHECK_INT(r.started_ms, 5000);
				if (deploys_status_final(to)) {
					CHECK_INT(r.finished_ms, 5000);
					CHECK_STR(r.reason, "boom");
				}
				deploys_rec_release(&r);
			} else {
				CHECK_INT(rc, -1);
				char want[160];
				snprintf(want, sizeof want,
					 "deployment '%s': cannot go from '%s' to '%s'", id,
					 deploys_status_name(f), deploys_status_name(to));
				if (strncmp(err, want, strlen(want)) != 0)
					harness_fail(__FILE__, __LINE__, "error '%s', want '%s'",
						     err, want);
				if (deploys_status_final(f))
					CHECK(strstr(err, "(it has ended)") != NULL);
				CHECK_INT(status_of(t, id), f);
				CHECK(!store_txn_failed(t)); /* a refusal leaves t usable */
			}
			commit(t);
			/* the pending queue holds exactly the unfinished ones */
			t = store_txn_begin(s, 1);
			char ids[4][DEPLOYS_ID_MAX];
			enum deploys_status now = status_of(t, id);
			CHECK_INT(deploys_pending(t, "c1", svc, ids, 4),
				  !deploys_status_final(now));
			store_txn_abort(t);
		}
	}
	crypt_rng_free(rng);
	store_close(s);
}

TEST(deploys_unknown_ids)
{
	struct store *s = open_store();
	struct store_txn *t = store_txn_begin(s, 0);
	char err[256] = "";
	struct deploys_rec r;
	CHECK_INT(set(t, "d-000000000000", DEPLOYS_RUNNING, err, sizeof err), STORE_NOTFOUND);
	CHECK_STR(err, "deployment 'd-000000000000' not found");
	CHECK_INT(set(t, "../../etc", DEPLOYS_RUNNING, err, sizeof err), STORE_NOTFOUND);
	CHECK_INT(set(t, NULL, DEPLOYS_RUNNING, err, sizeof err), STORE_NOTFOUND);
	CHECK_INT(deploys_get(t, "d-00000000000g", &r), STORE_NOTFOUND);
	CHECK_INT(deploys_log_append(t, "d-000000000000", "x", 1), STORE_NOTFOUND);
	struct buf b = BUF_INIT;
	uint64_t next;
	CHECK_INT(deploys_log_read(t, "d-000000000000", 0, 0, &b, &next), STORE_NOTFOUND);
	CHECK_INT(deploys_set_release_kept(t, "d-000000000000", 1), STORE_NOTFOUND);
	struct deploys_progress p = {.stage = "build"};
	CHECK_INT(deploys_set_progress(t, "d-000000000000", &p, err, sizeof err), STORE_NOTFOUND);
	CHECK_INT(deploys_get_seq(t, "c1", "web", 1, &r), STORE_NOTFOUND);
	CHECK_INT(deploys_get_seq(t, "c1", "a/b", 1, &r), STORE_NOTFOUND);
	CHECK(!store_txn_failed(t));
	store_txn_abort(t);
	store_close(s);
}

TEST(deploys_one_active_per_service)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	struct store_txn *t = store_txn_begin(s, 0);
	char a[DEPLOYS_ID_MAX], b[DEPLOYS_ID_MAX], c[DEPLOYS_ID_MAX], err[256];
	struct deploys_rec r;
	add(t, rng, "c1", "web", 1, a);
	add(t, rng, "c1", "web", 2, b);
	add(t, rng, "c1", "web", 3, c);
	CHECK_INT(deploys_active(t, "c1", "web", &r), STORE_NOTFOUND);
	CHECK_INT(deploys_next(t, "c1", "web", &r), 0);
	CHECK_STR(r.id, a);
	deploys_rec_release(&r);

	/* out of turn: b and c are behind a */
	CHECK_INT(set(t, b, DEPLOYS_RUNNING, err, sizeof err), -1);
	CHECK(strstr(err, "is queued before it") != NULL && strstr(err, a) != NULL);
	must_set(t, a, DEPLOYS_RUNNING);
	CHECK_INT(set(t, b, DEPLOYS_RUNNING, err, sizeof err), -1);
	CHECK(strstr(err, "is running") != NULL && strstr(err, "one at a time") != NULL);
	CHECK_INT(deploys_next(t, "c1", "web", &r), STORE_NOTFOUND);
	CHECK_INT(deploys_start_next(t, "c1", "web", 5, &r), STORE_NOTFOUND);
	CHECK_INT(deploys_active(t, "c1", "web", &r), 0);
	CHECK_STR(r.id, a);
	deploys_rec_release(&r);

	/* a queued one may be cancelled while another runs */
	must_set(t, b, DEPLOYS_CANCELLED);
	char ids[8][DEPLOYS_ID_MAX];
	CHECK_INT(deploys_pending(t, "c1", "web", ids, 8), 2);
	CHECK_STR(ids[0], a);
	CHECK_STR(ids[1], c);

	must_set(t, a, DEPLOYS_ERROR);
	CHECK_INT(deploys_active(t, "c1", "web", &r), STORE_NOTFOUND);
	CHECK_INT(deploys_start_next(t, "c1", "web", 77, &r), 0);
	CHECK_STR(r.id, c);
	CHECK_INT(r.status, DEPLOYS_RUNNING);
	CHECK_INT(r.started_ms, 77);
	deploys_rec_release(&r);
	CHECK_INT(deploys_active(t, "c1", "web", &r), 0);
	CHECK_STR(r.id, c);
	deploys_rec_release(&r);
	must_set(t, c, DEPLOYS_DONE);
	CHECK_INT(deploys_next(t, "c1", "web", &r), STORE_NOTFOUND);
	CHECK_INT(deploys_pending(t, "c1", "web", ids, 8), 0);
	CHECK(!store_txn_failed(t));
	commit(t);
	crypt_rng_free(rng);
	store_close(s);
}

TEST(deploys_fifo_per_service_and_independent_services)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	static const char *const svcs[][2] = {
	    {"c1", "web"}, {"c1", "web-2"}, {"c2", "web"}, {"c1", "we"}};
	enum { NS = 4, PER = 6 };
	char ids[NS][PER][DEPLOYS_ID_MAX];
	struct store_txn *t = store_txn_begin(s, 0);
	/* interleave the submissions across services */
	for (int i = 0; i < PER; i++)
		for (int j = 0; j < NS; j++)
			add(t, rng, svcs[j][0], svcs[j][1], i * 10 + j, ids[j][i]);
	commit(t);

	/* one runs in every service at once; each runs in submission order */
	for (int i = 0; i < PER; i++) {
		t = store_txn_begin(s, 0);
		for (int j = 0; j < NS; j++) {
			struct deploys_rec r;
			CHECK_INT(deploys_start_next(t, svcs[j][0], svcs[j][1], 1, &r), 0);
			CHECK_STR(r.id, ids[j][i]);
			CHECK_INT(r.seq, i + 1);
			deploys_rec_release(&r);
		}
		for (int j = 0; j < NS; j++) {
			struct deploys_rec r;
			CHECK_INT(deploys_active(t, svcs[j][0], svcs[j][1], &r), 0);
			CHECK_STR(r.id, ids[j][i]);
			deploys_rec_release(&r);
			must_set(t, ids[j][i], (i + j) % 2 ? DEPLOYS_DONE : DEPLOYS_CANCELLED);
		}
		commit(t);
	}
	t = store_txn_begin(s, 1);
	for (int j = 0; j < NS; j++) {
		struct deploys_rec r;
		CHECK_INT(deploys_next(t, svcs[j][0], svcs[j][1], &r), STORE_NOTFOUND);
	}
	store_txn_abort(t);
	crypt_rng_free(rng);
	store_close(s);
}

TEST(deploys_list_newest_first_with_limits)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	enum { N = 300 };
	char ids[N + 1][DEPLOYS_ID_MAX];
	struct store_txn *t = store_txn_begin(s, 0);
	for (int i = 1; i <= N; i++) {
		add(t, rng, "c1", "api", i, ids[i]);
		char other[DEPLOYS_ID_MAX];
		if (i % 3 == 0) /* neighbours whose keys sort near */
			add(t, rng, "c1", "api-v2", i, other);
		if (i % 5 == 0)
			add(t, rng, "c1", "ap", i, other);
	}
	commit(t);

	t = store_txn_begin(s, 1);
	struct deploys_rec *recs;
	size_t n;
	CHECK_INT(deploys_list(t, "c1", "api", 0, 10, &recs, &n), 0);
	CHECK_INT(n, 10);
	for (size_t i = 0; i < n; i++) {
		CHECK_INT(recs[i].seq, N - i);
		CHECK_STR(recs[i].id, ids[N - i]);
		CHECK_STR(recs[i].service, "api");
	}
	deploys_list_free(recs, n);

	/* page through everything with before_seq */
	uint64_t before = 0, want = N;
	size_t pages = 0;
	for (;;) {
		CHECK_INT(deploys_list(t, "c1", "api", before, 70, &recs, &n), 0);
		if (n == 0) {
			CHECK(recs == NULL);
			break;
		}
		pages++;
		for (size_t i = 0; i < n; i++)
			CHECK_INT(recs[i].seq, want--);
		before = recs[n - 1].seq;
		deploys_list_free(recs, n);
	}
	CHECK_INT(want, 0);
	CHECK_INT(pages, 5);

	CHECK_INT(deploys_list(t, "c1", "api", 0, 0, &recs, &n), 0);
	CHECK_INT(n, DEPLOYS_LIST_DEFAULT);
	deploys_list_free(recs, n);
	CHECK_INT(deploys_list(t, "c1", "api", 0, 100000, &recs, &n), 0);
	CHECK_INT(n, N);
	deploys_list_free(recs, n);
	CHECK_INT(deploys_list(t, "c1", "api-v2", 0, 1000, &recs, &n), 0);
	CHECK_INT(n, N / 3);
	deploys_list_free(recs, n);
	CHECK_INT(deploys_list(t, "c1", "ap", 0, 1000, &recs, &n), 0);
	CHECK_INT(n, N / 5);
	CHECK_INT(recs[0].seq, N / 5);
	deploys_list_free(recs, n);
	CHECK_INT(deploys_list(t, "c1", "api", 2, 10, &recs, &n), 0);
	CHECK_INT(n, 1);
	CHECK_STR(recs[0].id, ids[1]);
	deploys_list_free(recs, n);
	CHECK_INT(deploys_list(t, "c1", "nope", 0, 10, &recs, &n), 0);
	CHECK_INT(n, 0);
	CHECK_INT(deploys_list(t, "c1", "bad/name", 0, 10, &recs, &n), 0);
	CHECK_INT(n, 0);

	/* by seq */
	struct deploys_rec r;
	CHECK_INT(deploys_get_seq(t, "c1", "api", 123, &r), 0);
	CHECK_STR(r.id, ids[123]);
	deploys_rec_release(&r);
	store_txn_abort(t);
	crypt_rng_free(rng);
	store_close(s);
}

static void read_all(struct store_txn *t, const char *id, uint64_t from, size_t max,
		     struct buf *out, uint64_t *end)
{
	uint64_t off = from, next;
	for (;;) {
		size_t before = out->len;
		CHECK_INT(deploys_log_read(t, id, off, max, out, &next), 0);
		CHECK_INT(next - off, out->len - before);
		if (next == off)
			break;
		CHECK(out->len - before <= (max ? max : DEPLOYS_LOG_CHUNK));
		off = next;
	}
	*end = off;
}

TEST(deploys_log_append_and_read_with_offsets)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	char id[DEPLOYS_ID_MAX], other[DEPLOYS_ID_MAX];
	struct buf model = BUF_INIT, got = BUF_INIT;
	struct store_txn *t = store_txn_begin(s, 0);
	add(t, rng, "c1", "web", 1, id);
	add(t, rng, "c1", "web", 2, other);
	uint64_t size = 99, next;
	int trunc = 1;
	CHECK_INT(deploys_log_size(t, id, &size, &trunc), 0);
	CHECK_INT(size, 0);
	CHECK_INT(trunc, 0);
	CHECK_INT(deploys_log_read(t, id, 0, 0, &got, &next), 0);
	CHECK_INT(next, 0);
	CHECK_INT(got.len, 0);

	/* appends of many sizes, with binary bytes, against a model */
	unsigned seed = 7;
	for (int i = 0; i < 400; i++) {
		seed = seed * 1103515245 + 12345;
		size_t n = (seed >> 8) % (i % 50 == 0 ? 40000 : 300);
		struct buf chunk = BUF_INIT;
		for (size_t j = 0; j < n; j++)
			buf_putc(&chunk, (int)((seed >> 3) + j * 31) & 0xff);
		CHECK_INT(deploys_log_append(t, id, chunk.data, chunk.len), 0);
		buf_add(&model, chunk.data, chunk.len);
		buf_release(&chunk);
		if (i % 100 == 0)
			CHECK_INT(deploys_log_append(t, other, "other\n", 6), 0);
	}
	CHECK_INT(deploys_log_append(t, id, "", 0), 0);
	commit(t);

	t = store_txn_begin(s, 1);
	CHECK_INT(deploys_log_size(t, id, &size, &trunc), 0);
	CHECK_INT(size, model.len);
	CHECK_INT(trunc, 0);
	uint64_t end;
	size_t maxes[] = {1, 7, 1000, DEPLOYS_LOG_CHUNK, 100000};
	for (size_t m = 0; m < sizeof maxes / sizeof *maxes; m++) {
		buf_reset(&got);
		read_all(t, id, 0, maxes[m], &got, &end);
		CHECK_INT(end, model.len);
		CHECK(got.len == model.len && memcmp(got.data, model.data, model.len) == 0);
	}
	/* from offsets in the middle of chunks */
	uint64_t offs[] = {1,
			   299,
			   DEPLOYS_LOG_CHUNK - 1,
			   DEPLOYS_LOG_CHUNK,
			   DEPLOYS_LOG_CHUNK + 1,
			   model.len / 2,
			   model.len - 1};
	for (size_t i = 0; i < sizeof offs / sizeof *offs; i++) {
		buf_reset(&got);
		read_all(t, id, offs[i], 5000, &got, &end);
		CHECK_INT(got.len, model.len - offs[i]);
		CHECK(memcmp(got.data, model.data + offs[i], got.len) == 0);
	}
	/* past the end: nothing, and next is the end */
	buf_reset(&got);
	CHECK_INT(deploys_log_read(t, id, model.len + 1000, 10, &got, &next), 0);
	CHECK_INT(got.len, 0);
	CHECK_INT(next, model.len);
	CHECK_INT(deploys_log_read(t, id, UINT64_MAX, 10, &got, &next), 0);
	CHECK_INT(next, model.len);
	/* the other deployment's log is its own */
	buf_reset(&got);
	read_all(t, other, 0, 0, &got, &end);
	CHECK_STR(got.data, "other\nother\nother\nother\n");
	store_txn_abort(t);

	/* a follower: read, more is appended, read on from next */
	t = store_txn_begin(s, 0);
	buf_reset(&got);
	CHECK_INT(deploys_log_read(t, other, 18, 0, &got, &next), 0);
	CHECK_STR(got.data, "other\n");
	CHECK_INT(deploys_log_append(t, other, "late line\n", 10), 0);
	buf_reset(&got);
	CHECK_INT(deploys_log_read(t, other, next, 0, &got, &next), 0);
	CHECK_STR(got.data, "late line\n");
	CHECK_INT(next, 34);
	commit(t);
	buf_release(&model);
	buf_release(&got);
	crypt_rng_free(rng);
	store_close(s);
}

TEST(deploys_log_truncation_bound)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	char id[DEPLOYS_ID_MAX];
	struct store_txn *t = store_txn_begin(s, 0);
	add(t, rng, "c1", "web", 1, id);
	size_t big = 1000000;
	char *block = xmalloc(big);
	memset(block, 'x', big);
	for (int i = 0; i < 4; i++)
		CHECK_INT(deploys_log_append(t, id, block, big), 0);
	uint64_t size;
	int trunc;
	CHECK_INT(deploys_log_size(t, id, &size, &trunc), 0);
	CHECK_INT(size, 4 * big);
	CHECK_INT(trunc, 0);
	/* fill up to exactly the bound: still not truncated */
	size_t rest = (size_t)(DEPLOYS_LOG_MAX - 4 * big);
	CHECK_INT(deploys_log_append(t, id, block, rest - 10), 0);
	CHECK_INT(deploys_log_append(t, id, "0123456789", 10), 0);
	CHECK_INT(deploys_log_size(t, id, &size, &trunc), 0);
	CHECK_INT(size, DEPLOYS_LOG_MAX);
	CHECK_INT(trunc, 0);
	/* one byte more: the marker */
	CHECK_INT(deploys_log_append(t, id, "y", 1), 0);
	CHECK_INT(deploys_log_size(t, id, &size, &trunc), 0);
	CHECK_INT(size, DEPLOYS_LOG_MAX + strlen(DEPLOYS_LOG_TRUNCATED));
	CHECK_INT(trunc, 1);
	/* later appends are dropped */
	CHECK_INT(deploys_log_append(t, id, block, big), 0);
	CHECK_INT(deploys_log_append(t, id, "z", 1), 0);
	CHECK_INT(deploys_log_size(t, id, &size, &trunc), 0);
	CHECK_INT(size, DEPLOYS_LOG_MAX + strlen(DEPLOYS_LOG_TRUNCATED));
	struct buf got = BUF_INIT;
	uint64_t next;
	CHECK_INT(deploys_log_read(t, id, DEPLOYS_LOG_MAX - 10, 1000, &got, &next), 0);
	CHECK_INT(got.len, 10 + strlen(DEPLOYS_LOG_TRUNCATED));
	CHECK(memcmp(got.data, "0123456789", 10) == 0);
	CHECK_STR(got.data + 10, DEPLOYS_LOG_TRUNCATED);
	CHECK_INT(next, size);

	/* one append crossing the bound keeps what fits, then the marker */
	char id2[DEPLOYS_ID_MAX];
	add(t, rng, "c1", "web", 2, id2);
	CHECK_INT(deploys_log_append(t, id2, "head", 4), 0);
	for (int i = 0; i < 5; i++)
		CHECK_INT(deploys_log_append(t, id2, block, big), 0);
	CHECK_INT(deploys_log_size(t, id2, &size, &trunc), 0);
	CHECK_INT(size, DEPLOYS_LOG_MAX + strlen(DEPLOYS_LOG_TRUNCATED));
	CHECK_INT(trunc, 1);
	buf_reset(&got);
	CHECK_INT(deploys_log_read(t, id2, DEPLOYS_LOG_MAX - 3, 1000, &got, &next), 0);
	CHECK(memcmp(got.data, "xxx\n[dployr: log truncated", 26) == 0);
	buf_reset(&got);
	CHECK_INT(deploys_log_read(t, id2, 0, 6, &got, &next), 0);
	CHECK_STR(got.data, "headxx");
	commit(t);
	buf_release(&got);
	free(block);
	crypt_rng_free(rng);
	store_close(s);
}

TEST(deploys_survive_close_and_reopen)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	char a[DEPLOYS_ID_MAX], b[DEPLOYS_ID_MAX], err[256] = "";
	struct store_txn *t = store_txn_begin(s, 0);
	add(t, rng, "c1", "web", 100, a);
	add(t, rng, "c1", "web", 200, b);
	CHECK_INT(deploys_set_status(t, a, DEPLOYS_RUNNING, 300, NULL, NULL, err, sizeof err), 0);
	struct deploys_progress p = {.stage = "health",
				     .runtime_version = "3.11.4",
				     .revision = "0123456789abcdef0123456789abcdef01234567",
				     .release = "r-a",
				     .pid = 4242,
				     .port = 8081};
	CHECK_INT(deploys_set_progress(t, a, &p, err, sizeof err), 0);
	CHECK_INT(deploys_log_append(t, a, "step 1\n", 7), 0);
	commit(t);
	store_close(s);

	s = open_store();
	t = store_txn_begin(s, 0);
	struct deploys_rec r;
	CHECK_INT(deploys_active(t, "c1", "web", &r), 0);
	CHECK_STR(r.id, a);
	CHECK_STR(r.cluster, "c1");
	CHECK_STR(r.service, "web");
	CHECK_STR(r.instance, "vm-1");
	CHECK_STR(r.blueprint, "name: web\nruntime: python3\n");
	CHECK_STR(r.title, "t");
	CHECK_STR(r.description, "");
	CHECK_STR(r.stage, "health");
	CHECK_STR(r.runtime_version, "3.11.4");
	CHECK_STR(r.revision, "0123456789abcdef0123456789abcdef01234567");
	CHECK_STR(r.release, "r-a");
	CHECK_INT(r.release_kept, 1);
	CHECK_INT(r.pid, 4242);
	CHECK_INT(r.port, 8081);
	CHECK_INT(r.created_ms, 100);
	CHECK_INT(r.started_ms, 300);
	CHECK_INT(r.finished_ms, 0);
	CHECK_INT(r.seq, 1);
	deploys_rec_release(&r);
	CHECK_INT(deploys_log_append(t, a, "step 2\n", 7), 0);
	CHECK_INT(deploys_set_status(t, a, DEPLOYS_DONE, 400, NULL, NULL, err, sizeof err), 0);
	char c[DEPLOYS_ID_MAX];
	add(t, rng, "c1", "web", 500, c);
	commit(t);
	store_close(s);

	s = open_store();
	t = store_txn_begin(s, 1);
	CHECK_INT(deploys_next(t, "c1", "web", &r), 0);
	CHECK_STR(r.id, b);
	deploys_rec_release(&r);
	CHECK_INT(deploys_get(t, c, &r), 0);
	CHECK_INT(r.seq, 3); /* the counter survived */
	deploys_rec_release(&r);
	CHECK_INT(deploys_get(t, a, &r), 0);
	CHECK_INT(r.status, DEPLOYS_DONE);
	CHECK_INT(r.finished_ms, 400);
	deploys_rec_release(&r);
	struct buf got = BUF_INIT;
	uint64_t next;
	CHECK_INT(deploys_log_read(t, a, 0, 0, &got, &next), 0);
	CHECK_STR(got.data, "step 1\nstep 2\n"); /* kept after completion */
	buf_release(&got);
	store_txn_abort(t);
	crypt_rng_free(rng);
	store_close(s);
}

/* Add a deployment, run it and end it in status st with release rel. */
static void history(struct store_txn *t, struct crypt_rng *rng, const char *service,
		    enum deploys_status st, const char *rel, char id[DEPLOYS_ID_MAX])
{
	char err[256] = "";
	add(t, rng, "c1", service, 1, id);
	if (st == DEPLOYS_CANCELLED) {
		must_set(t, id, st);
		return;
	}
	must_set(t, id, DEPLOYS_RUNNING);
	struct deploys_progress p = {.release = rel};
	if (deploys_set_progress(t, id, &p, err, sizeof err) != 0)
		harness_fail(__FILE__, __LINE__, "progress: %s", err);
	must_set(t, id, st);
}

TEST(deploys_rollback_target_selection)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	struct store_txn *t = store_txn_begin(s, 0);
	char d1[DEPLOYS_ID_MAX], d2[DEPLOYS_ID_MAX], d3[DEPLOYS_ID_MAX], d4[DEPLOYS_ID_MAX],
	    d5[DEPLOYS_ID_MAX], d6[DEPLOYS_ID_MAX], o1[DEPLOYS_ID_MAX], err[256] = "";
	struct deploys_rec r;

	CHECK_INT(deploys_rollback_target(t, "c1", "web", NULL, &r, err, sizeof err),
		  STORE_NOTFOUND);
	CHECK(strstr(err, "no earlier done deployment") != NULL);
	history(t, rng, "web", DEPLOYS_DONE, "r1", d1);
	/* only the current one: nothing to go back to */
	CHECK_INT(deploys_rollback_target(t, "c1", "web", NULL, &r, err, sizeof err),
		  STORE_NOTFOUND);
	history(t, rng, "web", DEPLOYS_DONE, "r2", d2);
	history(t, rng, "web", DEPLOYS_ERROR, "r3", d3);
	history(t, rng, "web", DEPLOYS_DONE, "r4", d4);
	history(t, rng, "web", DEPLOYS_CANCELLED, "", d5);
	history(t, rng, "web", DEPLOYS_ERROR, "r6", d6);
	history(t, rng, "web-2", DEPLOYS_DONE, "x1", o1);

	/* current = d4 (the newest done); target = d2, skipping error d3 */
	CHECK_INT(deploys_rollback_target(t, "c1", "web", NULL, &r, err, sizeof err), 0);
	CHECK_STR(r.id, d2);
	deploys_rec_release(&r);
	/* d2's release pruned: d1 */
	CHECK_INT(deploys_set_release_kept(t, d2, 0), 0);
	CHECK_INT(deploys_rollback_target(t, "c1", "web", NULL, &r, err, sizeof err), 0);
	CHECK_STR(r.id, d1);
	deploys_rec_release(&r);
	CHECK_INT(deploys_set_release_kept(t, d2, 1), 0);

	/* a rollback to d2 is done: it serves r2, so the next target skips
	 * d2 (same release) and d4 becomes the target: d4 -> r4 */
	char rb[DEPLOYS_ID_MAX];
	struct deploys_new in = {.cluster = "c1",
				 .service = "web",
				 .instance = "vm-1",
				 .blueprint = "name: web\n",
				 .rollback_of = d2};
	CHECK_INT(deploys_add(t, rng, &in, 9, &r, err, sizeof err), 0);
	CHECK_STR(r.rollback_of, d2);
	memcpy(rb, r.id, sizeof rb);
	deploys_rec_release(&r);
	must_set(t, rb, DEPLOYS_RUNNING);
	struct deploys_progress p = {.release = "r2"};
	CHECK_INT(deploys_set_progress(t, rb, &p, err, sizeof err), 0);
	must_set(t, rb, DEPLOYS_DONE);
	CHECK_INT(deploys_rollback_target(t, "c1", "web", NULL, &r, err, sizeof err), 0);
	CHECK_STR(r.id, d4);
	deploys_rec_release(&r);

	/* explicit ids */
	CHECK_INT(deploys_rollback_target(t, "c1", "web", d1, &r, err, sizeof err), 0);
	CHECK_STR(r.id, d1);
	deploys_rec_release(&r);
	CHECK_INT(deploys_rollback_target(t, "c1", "web", d3, &r, err, sizeof err), -1);
	CHECK(strstr(err, "is 'error'") != NULL);
	CHECK_INT(deploys_rollback_target(t, "c1", "web", d5, &r, err, sizeof err), -1);
	CHECK(strstr(err, "is 'cancelled'") != NULL);
	CHECK_INT(deploys_rollback_target(t, "c1", "web", o1, &r, err, sizeof err), -1);
	CHECK(strstr(err, "belongs to service 'c1/web-2'") != NULL);
	CHECK_INT(deploys_rollback_target(t, "c1", "web", "d-ffffffffffff", &r, err, sizeof err),
		  -1);
	CHECK(strstr(err, "not found") != NULL);
	CHECK_INT(deploys_set_release_kept(t, d1, 0), 0);
	CHECK_INT(deploys_rollback_target(t, "c1", "web", d1, &r, err, sizeof err), -1);
	CHECK(strstr(err, "no longer kept") != NULL);
	CHECK_INT(deploys_rollback_target(t, "c1", "w/b", NULL, &r, err, sizeof err), -1);
	CHECK(!store_txn_failed(t));
	commit(t);
	crypt_rng_free(rng);
	store_close(s);
}

TEST(deploys_add_reports_every_problem)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	struct store_txn *t = store_txn_begin(s, 0);
	char err[1024] = "";
	struct deploys_rec r;
	char *big = xmalloc(DEPLOYS_BLUEPRINT_MAX + 2);
	memset(big, 'a', DEPLOYS_BLUEPRINT_MAX + 1);
	big[DEPLOYS_BLUEPRINT_MAX + 1] = '\0';
	char title[DEPLOYS_TITLE_MAX + 2];
	memset(title, 't', sizeof title - 1);
	title[sizeof title - 1] = '\0';
	struct deploys_new in = {.cluster = "c/1",
				 .service = "",
				 .instance = "vm 1",
				 .blueprint = big,
				 .title = title,
				 .rollback_of = "x"};
	CHECK_INT(deploys_add(t, rng, &in, 1, &r, err, sizeof err), -1);
	const char *want[] = {"cluster 'c/1'",	    "service ''",
			      "instance 'vm 1'",    "blueprint is 262145 bytes",
			      "title is 201 bytes", "rollback target 'x'"};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++)
		if (!strstr(err, want[i]))
			harness_fail(__FILE__, __LINE__, "'%s' not in '%s'", want[i], err);
	in = (struct deploys_new){.cluster = "c1", .service = "web", .instance = "vm-1"};
	CHECK_INT(deploys_add(t, rng, &in, 1, &r, err, sizeof err), -1);
	CHECK_STR(err, "deployment: blueprint is empty");

	/* a blueprint of control characters fits the byte limit but not the
	 * JSON one once escaped */
	memset(big, '\x01', DEPLOYS_BLUEPRINT_MAX);
	big[DEPLOYS_BLUEPRINT_MAX] = '\0';
	in.blueprint = big;
	CHECK_INT(deploys_add(t, rng, &in, 1, &r, err, sizeof err), -1);
	CHECK(strstr(err, "once encoded") != NULL);
	/* nothing was written by the refusals */
	struct deploys_rec *recs;
	size_t n;
	CHECK_INT(deploys_list(t, "c1", "web", 0, 10, &recs, &n), 0);
	CHECK_INT(n, 0);
	CHECK(!store_txn_failed(t));

	/* exactly at the limits works, and out may be NULL */
	memset(big, 'b', DEPLOYS_BLUEPRINT_MAX);
	title[DEPLOYS_TITLE_MAX] = '\0';
	in.title = title;
	in.description = "multi\nline \"quoted\" \xc3\xa9";
	CHECK_INT(deploys_add(t, rng, &in, 1, NULL, err, sizeof err), 0);
	CHECK_INT(deploys_list(t, "c1", "web", 0, 10, &recs, &n), 0);
	CHECK_INT(n, 1);
	CHECK_INT(strlen(recs[0].blueprint), DEPLOYS_BLUEPRINT_MAX);
	CHECK_STR(recs[0].description, "multi\nline \"quoted\" \xc3\xa9");
	CHECK(deploys_id_valid(recs[0].id));
	CHECK_INT(strlen(recs[0].id), DEPLOYS_ID_LEN);
	deploys_list_free(recs, n);
	commit(t);
	free(big);
	crypt_rng_free(rng);
	store_close(s);
}

TEST(deploys_progress_rules)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	struct store_txn *t = store_txn_begin(s, 0);
	char id[DEPLOYS_ID_MAX], err[256] = "";
	add(t, rng, "c1", "web", 1, id);
	struct deploys_progress p = {.stage = "fetch"};
	CHECK_INT(deploys_set_progress(t, id, &p, err, sizeof err), 0);
	p = (struct deploys_progress){.stage = "a-stage-name-that-is-far-too-long-to-fit"};
	CHECK_INT(deploys_set_progress(t, id, &p, err, sizeof err), -1);
	CHECK(strstr(err, "stage is 40 bytes, more than 31") != NULL);
	p = (struct deploys_progress){.revision = "abc\ndef"};
	CHECK_INT(deploys_set_progress(t, id, &p, err, sizeof err), -1);
	CHECK(strstr(err, "revision holds a character") != NULL);
	p = (struct deploys_progress){.port = 70000};
	CHECK_INT(deploys_set_progress(t, id, &p, err, sizeof err), -1);
	CHECK(!store_txn_failed(t));
	struct deploys_rec r;
	CHECK_INT(deploys_get(t, id, &r), 0);
	CHECK_STR(r.stage, "fetch"); /* refusals changed nothing */
	CHECK_STR(r.revision, "");
	deploys_rec_release(&r);

	/* reason is cut to fit, at a character boundary */
	must_set(t, id, DEPLOYS_RUNNING);
	char reason[600];
	memset(reason, 0, sizeof reason);
	for (size_t i = 0; i + 2 < sizeof reason - 1; i += 2)
		memcpy(reason + i, "\xc3\xa9", 2);
	/* 255 bytes would end inside the 128th 'é': 254 are kept */
	CHECK_INT(deploys_set_status(t, id, DEPLOYS_ERROR, 9, reason, &r, err, sizeof err), 0);
	CHECK_INT(strlen(r.reason), 254);
	CHECK(memcmp(r.reason, reason, 254) == 0);
	deploys_rec_release(&r);
	CHECK_INT(deploys_get(t, id, &r), 0);
	CHECK_INT(strlen(r.reason), 254);
	deploys_rec_release(&r);

	/* ended: record is final, except the release-kept flag */
	p = (struct deploys_progress){.stage = "late"};
	CHECK_INT(deploys_set_progress(t, id, &p, err, sizeof err), -1);
	CHECK(strstr(err, "ended ('error'), its record is final") != NULL);
	CHECK_INT(deploys_set_release_kept(t, id, 0), 0);
	commit(t);
	crypt_rng_free(rng);
	store_close(s);
}

TEST(deploys_decode_refuses_bad_records)
{
	struct deploys_rec r;
	memset(&r, 0, sizeof r);
	snprintf(r.id, sizeof r.id, "d-0123456789ab");
	snprintf(r.cluster, sizeof r.cluster, "c");
	snprintf(r.service, sizeof r.service, "s");
	snprintf(r.instance, sizeof r.instance, "i");
	r.seq = 3;
	r.status = DEPLOYS_RUNNING;
	r.port = 80;
	r.release_kept = 1;
	struct buf b = BUF_INIT;
	deploys_encode(&b, &r);
	struct deploys_rec back;
	CHECK_INT(deploys_decode(b.data, b.len, &back), 0);
	CHECK_STR(back.blueprint, "");
	CHECK_INT(back.seq, 3);
	CHECK_INT(back.status, DEPLOYS_RUNNING);
	CHECK_INT(back.port, 80);
	CHECK_INT(back.release_kept, 1);
	deploys_rec_release(&back);
	deploys_rec_release(&back); /* twice is fine */
	deploys_rec_release(NULL);

	const char *bad[] = {"", "[]", "{\"v\":2}", "{\"v\":1}", "not json"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		CHECK_INT(deploys_decode(bad[i], strlen(bad[i]), &back), -1);
		deploys_rec_release(&back);
	}
	/* each field broken in turn */
	const char *swaps[][2] = {{"\"v\":1", "\"v\":2"},
				  {"\"status\":\"running\"", "\"status\":\"failed\""},
				  {"\"seq\":3", "\"seq\":0"},
				  {"\"port\":80", "\"port\":70000"},
				  {"\"release_kept\":true", "\"release_kept\":1"},
				  {"\"id\":\"d-0123456789ab\"", "\"id\":\"d-0123456789abcdef\""}};
	for (size_t i = 0; i < sizeof swaps / sizeof *swaps; i++) {
		char *p = strstr(b.data, swaps[i][0]);
		CHECK(p != NULL);
		struct buf m = BUF_INIT;
		buf_add(&m, b.data, (size_t)(p - b.data));
		buf_puts(&m, swaps[i][1]);
		buf_puts(&m, p + strlen(swaps[i][0]));
		if (deploys_decode(m.data, m.len, &back) != -1)
			harness_fail(__FILE__, __LINE__, "decoded: %s", m.data);
		deploys_rec_release(&back);
		buf_release(&m);
	}
	buf_release(&b);
	CHECK(deploys_name_valid("a.b_c-D9"));
	CHECK(!deploys_name_valid("a/b"));
	CHECK(!deploys_name_valid(""));
	CHECK(!deploys_name_valid(NULL));
	char longname[70];
	memset(longname, 'a', 64);
	longname[64] = '\0';
	CHECK(!deploys_name_valid(longname));
	longname[63] = '\0';
	CHECK(deploys_name_valid(longname));
	CHECK(deploys_id_valid("d-0123456789ab"));
	CHECK(!deploys_id_valid("d-0123456789AB"));
	CHECK(!deploys_id_valid("d-0123456789a"));
	CHECK(!deploys_id_valid("x-0123456789ab"));
}

TEST(deploys_missing_database_is_an_error)
{
	static const char *const only[] = {"deploys", NULL};
	char err[256] = "";
	struct store *s = store_open("data", only, 0, 0, err, sizeof err);
	CHECK(s != NULL);
	struct crypt_rng *rng = crypt_rng_new();
	struct store_txn *t = store_txn_begin(s, 0);
	struct deploys_new in = {
	    .cluster = "c1", .service = "web", .instance = "vm-1", .blueprint = "x"};
	CHECK_INT(deploys_add(t, rng, &in, 1, NULL, err, sizeof err), -1);
	CHECK(strstr(err, "database 'deploy_ids' is not open") != NULL);
	CHECK_INT(store_txn_commit(t, NULL, 0), -1);
	crypt_rng_free(rng);
	store_close(s);
}

TEST(deploys_request_cancel)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	struct store_txn *t = store_txn_begin(s, 0);
	char a[DEPLOYS_ID_MAX], b[DEPLOYS_ID_MAX], err[256] = "";
	struct deploys_rec r;
	add(t, rng, "c1", "web", 1, a);
	add(t, rng, "c1", "web", 2, b);
	must_set(t, a, DEPLOYS_RUNNING);

	/* queued: cancelled at once and out of the queue */
	CHECK_INT(deploys_request_cancel(t, b, 50, &r, err, sizeof err), 0);
	CHECK_INT(r.status, DEPLOYS_CANCELLED);
	CHECK_STR(r.reason, "cancelled before it started");
	CHECK_INT(r.finished_ms, 50);
	deploys_rec_release(&r);
	char ids[4][DEPLOYS_ID_MAX];
	CHECK_INT(deploys_pending(t, "c1", "web", ids, 4), 1);

	/* running: marked, still running until the caller ends it */
	CHECK_INT(deploys_request_cancel(t, a, 60, &r, err, sizeof err), 0);
	CHECK_INT(r.status, DEPLOYS_RUNNING);
	CHECK_INT(r.cancel_requested, 1);
	deploys_rec_release(&r);
	commit(t);
	t = store_txn_begin(s, 0);
	CHECK_INT(deploys_active(t, "c1", "web", &r), 0);
	CHECK_INT(r.cancel_requested, 1);
	deploys_rec_release(&r);
	must_set(t, a, DEPLOYS_CANCELLED);

	/* ended: nothing to cancel, t stays usable */
	CHECK_INT(deploys_request_cancel(t, a, 70, &r, err, sizeof err), -1);
	CHECK(strncmp(err, "deployment 'd-", 14) == 0);
	CHECK(strstr(err, "has ended ('cancelled'): nothing to cancel") != NULL);
	CHECK_INT(deploys_request_cancel(t, "d-\n000000000\x01", 70, NULL, err, sizeof err),
		  STORE_NOTFOUND);
	CHECK_STR(err, "deployment 'd-?000000000?' not found");
	CHECK(!store_txn_failed(t));
	commit(t);
	crypt_rng_free(rng);
	store_close(s);
}
