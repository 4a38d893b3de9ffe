/* spool: see spool.h. */
#include "spool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

static const char KEY_SEQ[] = "event_seq";
static const char KEY_ACKED[] = "event_acked";

struct spool {
	struct store *s;
	int db_spool, db_meta;
};

struct spool *spool_new(struct store *s, char *err, size_t errlen)
{
	int a = store_db(s, "spool"), m = store_db(s, "meta");
	if (a < 0 || m < 0) {
		snprintf(err, errlen, "spool: store has no 'spool' and 'meta' databases");
		return NULL;
	}
	struct spool *sp = xcalloc(1, sizeof(*sp));
	sp->s = s;
	sp->db_spool = a;
	sp->db_meta = m;
	return sp;
}

void spool_free(struct spool *sp)
{
	free(sp);
}

static uint64_t meta_u64(struct store_txn *t, int db, const char *key)
{
	const void *v;
	size_t n;
	if (store_get(t, db, key, strlen(key), &v, &n) != 0 || n != 8)
		return 0;
	return store_u64_from_key(v);
}

uint64_t spool_add_txn(struct spool *sp, struct store_txn *t, const char *kind, const char *body)
{
	uint64_t seq = store_next_seq(t, sp->db_meta, KEY_SEQ, strlen(KEY_SEQ));
	if (seq == 0)
		return 0;
	unsigned char k[8];
	store_key_u64(k, seq);
	struct buf v = BUF_INIT;
	buf_puts(&v, kind);
	buf_putc(&v, 0);
	buf_puts(&v, body);
	int rc = store_put(t, sp->db_spool, k, sizeof(k), v.data, v.len);
	buf_release(&v);
	return rc == 0 ? seq : 0;
}

struct add_arg {
	struct spool *sp;
	const char *kind, *body;
	uint64_t seq;
};

static int add_fn(struct store_txn *t, void *arg)
{
	struct add_arg *a = arg;
	a->seq = spool_add_txn(a->sp, t, a->kind, a->body);
	return a->seq ? 0 : -1;
}

uint64_t spool_add(struct spool *sp, const char *kind, const char *body, char *err, size_t errlen)
{
	struct add_arg a = {sp, kind, body, 0};
	if (store_update(sp->s, add_fn, &a, err, errlen) < 0)
		return 0;
	return a.seq;
}

struct ack_arg {
	struct spool *sp;
	uint64_t up_to;
	long dropped;
};

static int ack_fn(struct store_txn *t, void *arg)
{
	struct ack_arg *a = arg;
	uint64_t last = meta_u64(t, a->sp->db_meta, KEY_SEQ);
	uint64_t up_to = a->up_to;
	a->dropped = 0;
	if (up_to == 0)
		return 0;
	if (up_to > last) {
		unsigned char v[8];
		store_key_u64(v, up_to);
		store_put(t, a->sp->db_meta, KEY_SEQ, strlen(KEY_SEQ), v, sizeof(v));
	}
	unsigned char to[8];
	store_key_u64(to, up_to == UINT64_MAX ? up_to : up_to + 1);
	struct store_iter *it = store_iter_range(t, a->sp->db_spool, NULL, 0, to, sizeof(to), 0);
	int rc;
	while ((rc = store_iter_next(it)) == 1) {
		if (store_iter_del(it) < 0) {
			rc = -1;
			break;
		}
		a->dropped++;
	}
	store_iter_free(it);
	if (rc < 0)
		return -1;
	if (up_to > meta_u64(t, a->sp->db_meta, KEY_ACKED)) {
		unsigned char v[8];
		store_key_u64(v, up_to);
		store_put(t, a->sp->db_meta, KEY_ACKED, strlen(KEY_ACKED), v, sizeof(v));
	}
	return 0;
}

long spool_ack(struct spool *sp, uint64_t up_to, char *err, size_t errlen)
{
	struct ack_arg a = {sp, up_to, 0};
	if (store_update(sp->s, ack_fn, &a, err, errlen) < 0)
		return -1;
	return a.dropped;
}

int spool_next(struct spool *sp, uint64_t after, uint64_t *seq, struct buf *kind, struct buf *body,
	       char *err, size_t errlen)
{
	if (after == UINT64_MAX)
		return 0;
	unsigned char from[8];
	store_key_u64(from, after + 1);
	struct store_txn *t = store_txn_begin(sp->s, 1);
	struct store_iter *it = store_iter_range(t, sp->db_spool, from, sizeof(from), NULL, 0, 0);
	int rc = store_iter_next(it);
	if (rc == 1) {
		size_t klen, vlen;
		const unsigned char *k = store_iter_key(it, &klen);
		const char *v = store_iter_val(it, &vlen);
		const char *nul = v ? memchr(v, 0, vlen) : NULL;
		if (klen != 8 || !nul) {
			snprintf(err, errlen, "spool: corrupt event record");
			rc = -1;
		} else {
			*seq = store_u64_from_key(k);
			buf_add(kind, v, (size_t)(nul - v));
			buf_add(body, nul + 1, vlen - (size_t)(nul - v) - 1);
		}
	} else if (rc < 0) {
		snprintf(err, errlen, "spool: %s", store_txn_error(t));
	}
	store_iter_free(it);
	store_txn_abort(t);
	return rc;
}

static uint64_t read_meta(struct spool *sp, const char *key)
{
	struct store_txn *t = store_txn_begin(sp->s, 1);
	uint64_t v = meta_u64(t, sp->db_meta, key);
	store_txn_abort(t);
	return v;
}

uint64_t spool_last_seq(struct spool *sp)
{
	return read_meta(sp, KEY_SEQ);
}

uint64_t spool_acked(struct spool *sp)
{
	return read_meta(sp, KEY_ACKED);
}

size_t spool_count(struct spool *sp)
{
	struct store_txn *t = store_txn_begin(sp->s, 1);
	struct store_iter *it = store_iter_range(t, sp->db_spool, NULL, 0, NULL, 0, 0);
	size_t n = 0;
	while (store_iter_next(it) == 1)
		n++;
	store_iter_free(it);
	store_txn_abort(t);
	return n;
}
