/* store: the LMDB wrapper (the only module that includes <lmdb.h>). */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"

#define STORE_MAX_DBS 128

struct store {
	MDB_env *env;
	char *path;
	int ndb;
	char **names;
	MDB_dbi *dbi;
	size_t map_size;
	unsigned flags;
	pid_t pid;
	int ntxn;	  /* live LMDB transactions */
	int write_open;	  /* a write transaction is live */
	int grow_pending; /* a write hit MDB_MAP_FULL: grow when ntxn is 0 */
};

struct store_txn {
	struct store *s;
	MDB_txn *txn; /* NULL when begin failed */
	int rdonly;
	int failed;
	int map_full;
	unsigned long mods; /* bumped by every write, so iterators re-seek */
	struct store_iter *iters;
	char err[256];
};

struct store_iter {
	struct store_txn *t; /* NULL once the transaction ended */
	struct store_iter *next, **pprev;
	int db;
	MDB_cursor *cur;
	int reverse;
	int state; /* 0 not started, 1 positioned, 2 current entry deleted, 3 done */
	unsigned long mods;
	unsigned char *from, *to;
	size_t flen, tlen;
	size_t klen;
	MDB_val val;
	unsigned char key[STORE_KEY_MAX];
};

/* --- errors ------------------------------------------------------------- */

__attribute__((format(printf, 2, 0))) static void txn_vfail(struct store_txn *t, const char *fmt,
							    va_list ap)
{
	if (t->failed)
		return;
	t->failed = 1;
	vsnprintf(t->err, sizeof t->err, fmt, ap);
}

void store_txn_fail(struct store_txn *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	txn_vfail(t, fmt, ap);
	va_end(ap);
}

static const char *rc_reason(struct store_txn *t, int rc, char *tmp, size_t n)
{
	switch (rc) {
	case MDB_MAP_FULL:
		t->map_full = 1;
		t->s->grow_pending = 1;
		snprintf(tmp, n, "map full (%zu bytes)", t->s->map_size);
		return tmp;
	case MDB_TXN_FULL:
		return "transaction has too many dirty pages";
	case MDB_BAD_VALSIZE:
		return "key or value size not accepted";
	case MDB_READERS_FULL:
		return "too many readers";
	case EACCES:
		return "store is read-only";
	default:
		return mdb_strerror(rc);
	}
}

/* Printable rendering of a binary key for messages. */
static const char *key_str(const void *key, size_t klen, char *out, size_t n)
{
	const unsigned char *p = key;
	size_t o = 0;
	for (size_t i = 0; i < klen && o + 8 < n; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\'' && p[i] != '\\')
			out[o++] = (char)p[i];
		else
			o += (size_t)snprintf(out + o, n - o, "\\x%02x", p[i]);
	}
	if (o + 8 >= n && klen)
		o += (size_t)snprintf(out + o, n - o, "...");
	out[o] = 0;
	return out;
}

static void op_fail(struct store_txn *t, const char *op, int db, const void *key, size_t klen,
		    int rc)
{
	char ks[80], tmp[64];
	const char *reason = rc_reason(t, rc, tmp, sizeof tmp);
	store_txn_fail(t, "%s '%s' in '%s': %s", op, key_str(key, klen, ks, sizeof ks),
		       t->s->names[db], reason);
}

/* Common checks of every operation; 0 when it may go on. */
static int op_check(struct store_txn *t, const char *op, int db, size_t klen, int write)
{
	if (t->failed)
		return -1;
	if (db < 0 || db >= t->s->ndb) {
		store_txn_fail(t, "%s: database index %d out of range", op, db);
		return -1;
	}
	if (klen == 0 || klen > STORE_KEY_MAX) {
		store_txn_fail(t, "%s in '%s': invalid key (length %zu)", op, t->s->names[db],
			       klen);
		return -1;
	}
	if (write && t->rdonly) {
		store_txn_fail(t, "%s in '%s': read-only transaction", op, t->s->names[db]);
		return -1;
	}
	return 0;
}

/* --- open and close ---------------------------------------------------- */

static int mkdir_p(const char *path, char *err, size_t errlen)
{
	char *p = xstrdup(path);
	int rc = 0;
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;
		*s = 0;
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "mkdir '%s': %s", p, strerror(errno));
			rc = -1;
			break;
		}
		*s = c;
		if (!c)
			break;
	}
	free(p);
	return rc;
}

static void store_free(struct store *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->ndb; i++)
		free(s->names[i]);
	free(s->names);
	free(s->dbi);
	free(s->path);
	free(s);
}

struct store *store_open(const char *path, const char *const *dbnames, size_t map_size,
			 unsigned flags, char *err, size_t errlen)
{
	char why[256] = "";
	struct store *s = NULL;
	MDB_txn *txn = NULL;
	int rc, rdonly = !!(flags & STORE_RDONLY);

	if (!path || !*path) {
		snprintf(err, errlen, "open store: empty path");
		return NULL;
	}
	int n = 0;
	while (dbnames && dbnames[n]) {
		if (!*dbnames[n]) {
			snprintf(err, errlen, "open store '%s': empty database name", path);
			return NULL;
		}
		for (int j = 0; j < n; j++)
			if (!strcmp(dbnames[j], dbnames[n])) {
				snprintf(err, errlen, "open store '%s': database '%s' named twice",
					 path, dbnames[n]);
				return NULL;
			}
		n++;
	}
	if (n == 0 || n > STORE_MAX_DBS) {
		snprintf(err, errlen, "open store '%s': need 1 to %d database names, not %d", path,
			 STORE_MAX_DBS, n);
		return NULL;
	}

	s = xcalloc(1, sizeof *s);
	s->path = xstrdup(path);
	s->flags = flags;
	s->pid = getpid();
	s->names = xcalloc((size_t)n, sizeof *s->names);
	s->dbi = xcalloc((size_t)n, sizeof *s->dbi);
	for (int i = 0; i < n; i++)
		s->names[i] = xstrdup(dbnames[i]);
	s->ndb = n;

	struct stat st;
	if (!rdonly && mkdir_p(path, why, sizeof why) < 0)
		goto fail;
	if (stat(path, &st) < 0) {
		snprintf(why, sizeof why, "%s", strerror(errno));
		goto fail;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(why, sizeof why, "not a directory");
		goto fail;
	}
	if ((rc = mdb_env_create(&s->env)) != 0) {
		snprintf(why, sizeof why, "%s", mdb_strerror(rc));
		goto fail;
	}
	if (!map_size)
		map_size = STORE_MAP_SIZE_DEFAULT;
	/* The map is the larger of map_size and the size recorded in an
	 * existing file (it may have grown): LMDB takes a configured size even
	 * when it is smaller, so for an existing file configure it after open. */
	char *data = xasprintf("%s/data.mdb", path);
	int fresh = access(data, F_OK) < 0;
	free(data);
	if ((rc = mdb_env_set_maxdbs(s->env, (MDB_dbi)n)) != 0 ||
	    (fresh && (rc = mdb_env_set_mapsize(s->env, map_size)) != 0) ||
	    (rc = mdb_env_open(s->env, path, MDB_NOTLS | (rdonly ? MDB_RDONLY : 0), 0600)) != 0) {
		snprintf(why, sizeof why, "%s", mdb_strerror(rc));
		goto fail;
	}
	MDB_envinfo info;
	mdb_env_info(s->env, &info);
	if (info.me_mapsize < map_size && (rc = mdb_env_set_mapsize(s->env, map_size)) != 0) {
		snprintf(why, sizeof why, "set map size: %s", mdb_strerror(rc));
		goto fail;
	}
	/* LMDB opens the lock and meta descriptors with O_CLOEXEC but not the
	 * data file's: children we exec must not inherit it. */
	int fd;
	if (mdb_env_get_fd(s->env, &fd) == 0) {
		int fl = fcntl(fd, F_GETFD);
		if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0) {
			snprintf(why, sizeof why, "set close-on-exec: %s", strerror(errno));
			goto fail;
		}
	}
	mdb_env_info(s->env, &info);
	s->map_size = info.me_mapsize;

	if ((rc = mdb_txn_begin(s->env, NULL, rdonly ? MDB_RDONLY : 0, &txn)) != 0) {
		snprintf(why, sizeof why, "%s", mdb_strerror(rc));
		goto fail;
	}
	for (int i = 0; i < n; i++) {
		rc = mdb_dbi_open(txn, s->names[i], rdonly ? 0 : MDB_CREATE, &s->dbi[i]);
		if (rc == MDB_NOTFOUND) {
			snprintf(why, sizeof why, "database '%s' does not exist", s->names[i]);
			goto fail;
		} else if (rc) {
			snprintf(why, sizeof why, "database '%s': %s", s->names[i],
				 mdb_strerror(rc));
			goto fail;
		}
	}
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc) {
		snprintf(why, sizeof why, "%s", mdb_strerror(rc));
		goto fail;
	}
	return s;

fail:
	snprintf(err, errlen, "open store '%s': %s", path, why);
	if (txn)
		mdb_txn_abort(txn);
	if (s->env)
		mdb_env_close(s->env);
	store_free(s);
	return NULL;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	/* In a child after fork the environment belongs to the parent: leave
	 * the mapping and descriptors alone (exec drops them). */
	if (getpid() == s->pid)
		mdb_env_close(s->env);
	store_free(s);
}

int store_db(const struct store *s, const char *name)
{
	for (int i = 0; i < s->ndb; i++)
		if (!strcmp(s->names[i], name))
			return i;
	return -1;
}

const char *store_db_name(const struct store *s, int db)
{
	return db >= 0 && db < s->ndb ? s->names[db] : "?";
}

size_t store_map_size(const struct store *s)
{
	return s->map_size;
}

/* Double the map once nothing is open (LMDB's rule for set_mapsize). */
static void maybe_grow(struct store *s)
{
	if (!s->grow_pending || s->ntxn > 0 || getpid() != s->pid)
		return;
	s->grow_pending = 0;
	if (s->map_size > SIZE_MAX / 2)
		return;
	if (mdb_env_set_mapsize(s->env, s->map_size * 2) == 0) {
		MDB_envinfo info;
		mdb_env_info(s->env, &info);
		s->map_size = info.me_mapsize;
		char size[32];
		snprintf(size, sizeof size, "%zu", s->map_size);
		log_info("store", "map grown", "path", s->path, "bytes", size, NULL);
	}
}

/* --- transactions ---------------------------------------------------------- */

struct store_txn *store_txn_begin(struct store *s, int rdonly)
{
	struct store_txn *t = xcalloc(1, sizeof *t);
	t->s = s;
	t->rdonly = !!rdonly;
	if (getpid() != s->pid) {
		store_txn_fail(t, "store '%s': used in a child process after fork", s->path);
		return t;
	}
	if (!rdonly && (s->flags & STORE_RDONLY)) {
		store_txn_fail(t, "store '%s': opened read-only", s->path);
		return t;
	}
	if (!rdonly && s->write_open) {
		store_txn_fail(t, "store '%s': a write transaction is already open", s->path);
		return t;
	}
	maybe_grow(s);
	int rc = mdb_txn_begin(s->env, NULL, rdonly ? MDB_RDONLY : 0, &t->txn);
	if (rc == MDB_MAP_RESIZED && s->ntxn == 0) {
		/* Another process grew the map: adopt its size. */
		mdb_env_set_mapsize(s->env, 0);
		MDB_envinfo info;
		mdb_env_info(s->env, &info);
		s->map_size = info.me_mapsize;
		rc = mdb_txn_begin(s->env, NULL, rdonly ? MDB_RDONLY : 0, &t->txn);
	}
	if (rc) {
		char tmp[64];
		t->txn = NULL;
		store_txn_fail(t, "store '%s': begin transaction: %s", s->path,
			       rc_reason(t, rc, tmp, sizeof tmp));
		return t;
	}
	s->ntxn++;
	if (!rdonly)
		s->write_open = 1;
	return t;
}

static void iters_detach(struct store_txn *t)
{
	for (struct store_iter *it = t->iters; it; it = it->next) {
		if (it->cur)
			mdb_cursor_close(it->cur);
		it->cur = NULL;
		it->t = NULL;
		it->pprev = NULL;
	}
	t->iters = NULL;
}

/* End t (commit when commit is set and nothing failed); frees t. */
static int txn_end(struct store_txn *t, int commit, char *err, size_t errlen, int *map_full)
{
	struct store *s = t->s;
	int rc = -1;
	iters_detach(t);
	if (t->txn) {
		if (commit && !t->failed && !t->rdonly) {
			int mrc = mdb_txn_commit(t->txn);
			if (mrc) {
				char tmp[64];
				store_txn_fail(t, "commit to store '%s': %s", s->path,
					       rc_reason(t, mrc, tmp, sizeof tmp));
			}
		} else {
			mdb_txn_abort(t->txn);
		}
		s->ntxn--;
		if (!t->rdonly)
			s->write_open = 0;
	}
	if (!t->failed && commit)
		rc = 0;
	if (t->failed && err && errlen)
		snprintf(err, errlen, "%s", t->err);
	if (map_full)
		*map_full = t->map_full;
	free(t);
	maybe_grow(s);
	return rc;
}

int store_txn_commit(struct store_txn *t, char *err, size_t errlen)
{
	return txn_end(t, 1, err, errlen, NULL);
}

void store_txn_abort(struct store_txn *t)
{
	if (t)
		txn_end(t, 0, NULL, 0, NULL);
}

int store_txn_failed(const struct store_txn *t)
{
	return t->failed;
}

const char *store_txn_error(const struct store_txn *t)
{
	return t->err;
}

struct store *store_txn_store(const struct store_txn *t)
{
	return t->s;
}

/* --- operations -------------------------------------------------------------- */

int store_get(struct store_txn *t, int db, const void *key, size_t klen, const void **val,
	      size_t *vlen)
{
	if (op_check(t, "get", db, klen, 0) < 0)
		return -1;
	MDB_val k = {klen, (void *)key}, v;
	int rc = mdb_get(t->txn, t->s->dbi[db], &k, &v);
	if (rc == MDB_NOTFOUND)
		return STORE_NOTFOUND;
	if (rc) {
		op_fail(t, "get", db, key, klen, rc);
		return -1;
	}
	if (val)
		*val = v.mv_data;
	if (vlen)
		*vlen = v.mv_size;
	return 0;
}

int store_get_buf(struct store_txn *t, int db, const void *key, size_t klen, struct buf *out)
{
	const void *v;
	size_t n;
	int rc = store_get(t, db, key, klen, &v, &n);
	if (rc == 0)
		buf_add(out, v, n);
	return rc;
}

char *store_get_dup(struct store_txn *t, int db, const void *key, size_t klen, size_t *vlen)
{
	const void *v;
	size_t n;
	if (store_get(t, db, key, klen, &v, &n) != 0)
		return NULL;
	char *p = xmalloc(n + 1);
	memcpy(p, v, n);
	p[n] = 0;
	if (vlen)
		*vlen = n;
	return p;
}

static int put(struct store_txn *t, const char *op, int db, const void *key, size_t klen,
	       const void *val, size_t vlen, unsigned flags)
{
	if (op_check(t, op, db, klen, 1) < 0)
		return -1;
	MDB_val k = {klen, (void *)key}, v = {vlen, val ? (void *)val : (void *)""};
	t->mods++;
	int rc = mdb_put(t->txn, t->s->dbi[db], &k, &v, flags);
	if (rc == MDB_KEYEXIST)
		return STORE_EXISTS;
	if (rc) {
		op_fail(t, op, db, key, klen, rc);
		return -1;
	}
	return 0;
}

int store_put(struct store_txn *t, int db, const void *key, size_t klen, const void *val,
	      size_t vlen)
{
	return put(t, "put", db, key, klen, val, vlen, 0);
}

int store_put_noover(struct store_txn *t, int db, const void *key, size_t klen, const void *val,
		     size_t vlen)
{
	return put(t, "put", db, key, klen, val, vlen, MDB_NOOVERWRITE);
}

int store_del(struct store_txn *t, int db, const void *key, size_t klen)
{
	if (op_check(t, "del", db, klen, 1) < 0)
		return -1;
	MDB_val k = {klen, (void *)key};
	t->mods++;
	int rc = mdb_del(t->txn, t->s->dbi[db], &k, NULL);
	if (rc == MDB_NOTFOUND)
		return STORE_NOTFOUND;
	if (rc) {
		op_fail(t, "del", db, key, klen, rc);
		return -1;
	}
	return 0;
}

uint64_t store_next_seq(struct store_txn *t, int db, const void *key, size_t klen)
{
	if (op_check(t, "seq", db, klen, 1) < 0)
		return 0;
	const void *v;
	size_t n;
	uint64_t seq = 0;
	int rc = store_get(t, db, key, klen, &v, &n);
	if (rc < 0)
		return 0;
	if (rc == 0) {
		if (n != 8) {
			char ks[80];
			store_txn_fail(t, "seq '%s' in '%s': counter is %zu bytes, not 8",
				       key_str(key, klen, ks, sizeof ks), t->s->names[db], n);
			return 0;
		}
		seq = store_u64_from_key(v);
	}
	if (seq == UINT64_MAX) {
		char ks[80];
		store_txn_fail(t, "seq '%s' in '%s': counter overflow",
			       key_str(key, klen, ks, sizeof ks), t->s->names[db]);
		return 0;
	}
	unsigned char be[8];
	store_key_u64(be, ++seq);
	if (store_put(t, db, key, klen, be, 8) < 0)
		return 0;
	return seq;
}

/* --- keys --------------------------------------------------------------------- */

void store_key_u64(unsigned char out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		out[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

uint64_t store_u64_from_key(const void *p)
{
	const unsigned char *b = p;
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

void store_key_init(struct store_key *k)
{
	k->len = 0;
	k->invalid = 0;
}

static void key_add(struct store_key *k, const void *p, size_t n)
{
	if (k->invalid)
		return;
	if (n > STORE_KEY_MAX - k->len) {
		k->invalid = 1;
		k->len = 0;
		return;
	}
	memcpy(k->data + k->len, p, n);
	k->len += n;
}

void store_key_str(struct store_key *k, const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || memchr(s, STORE_KEY_SEP, n)) {
		k->invalid = 1;
		k->len = 0;
		return;
	}
	key_add(k, s, n);
	char sep = STORE_KEY_SEP;
	key_add(k, &sep, 1);
}

void store_key_num(struct store_key *k, uint64_t v)
{
	unsigned char be[8];
	store_key_u64(be, v);
	key_add(k, be, 8);
}

void store_key_raw(struct store_key *k, const void *p, size_t n)
{
	key_add(k, p, n);
}

/* --- iterators ---------------------------------------------------------------- */

/* LMDB's default order: memcmp, then the shorter first. */
static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static struct store_iter *iter_new(struct store_txn *t, int db, const void *from, size_t flen,
				   const void *to, size_t tlen, int reverse)
{
	struct store_iter *it = xcalloc(1, sizeof *it);
	it->db = db;
	it->reverse = !!reverse;
	if (from) {
		it->from = xmalloc(flen + 1);
		memcpy(it->from, from, flen);
		it->flen = flen;
	}
	if (to) {
		it->to = xmalloc(tlen + 1);
		memcpy(it->to, to, tlen);
		it->tlen = tlen;
	}
	it->t = t;
	it->next = t->iters;
	if (t->iters)
		t->iters->pprev = &it->next;
	it->pprev = &t->iters;
	t->iters = it;
	if (t->failed)
		return it;
	if (db < 0 || db >= t->s->ndb) {
		store_txn_fail(t, "scan: database index %d out of range", db);
		return it;
	}
	int rc = mdb_cursor_open(t->txn, t->s->dbi[db], &it->cur);
	if (rc) {
		char tmp[64];
		it->cur = NULL;
		store_txn_fail(t, "scan '%s': %s", t->s->names[db],
			       rc_reason(t, rc, tmp, sizeof tmp));
	}
	return it;
}

struct store_iter *store_iter_range(struct store_txn *t, int db, const void *from, size_t flen,
				    const void *to, size_t tlen, int reverse)
{
	return iter_new(t, db, from, flen, to, tlen, reverse);
}

struct store_iter *store_iter_prefix(struct store_txn *t, int db, const void *prefix, size_t plen,
				     int reverse)
{
	/* [prefix, successor): the successor increments the last byte that is
	 * not 0xff and drops the rest; an all-0xff prefix has no upper bound. */
	unsigned char succ[STORE_KEY_MAX];
	size_t slen = plen < sizeof succ ? plen : sizeof succ;
	if (slen)
		memcpy(succ, prefix, slen);
	while (slen > 0 && succ[slen - 1] == 0xff)
		slen--;
	if (slen > 0)
		succ[slen - 1]++;
	return iter_new(t, db, plen ? prefix : NULL, plen, slen ? succ : NULL, slen, reverse);
}

static int cursor_get(struct store_iter *it, MDB_val *k, MDB_val *v, MDB_cursor_op op)
{
	return mdb_cursor_get(it->cur, k, v, op);
}

/* Position the cursor on the next entry (not yet bound-checked). */
static int iter_step(struct store_iter *it, MDB_val *k, MDB_val *v)
{
	int rc;
	if (it->state == 0) {
		if (!it->reverse) {
			if (it->from) {
				*k = (MDB_val){it->flen, it->from};
				return cursor_get(it, k, v, MDB_SET_RANGE);
			}
			return cursor_get(it, k, v, MDB_FIRST);
		}
		if (it->to) {
			*k = (MDB_val){it->tlen, it->to};
			rc = cursor_get(it, k, v, MDB_SET_RANGE);
			if (rc == MDB_NOTFOUND)
				return cursor_get(it, k, v, MDB_LAST);
			return rc ? rc : cursor_get(it, k, v, MDB_PREV);
		}
		return cursor_get(it, k, v, MDB_LAST);
	}
	if (it->state == 1 && it->mods == it->t->mods)
		return cursor_get(it, k, v, it->reverse ? MDB_PREV : MDB_NEXT);
	/* The database changed since the last step: re-seek from the last key
	 * returned, which may be gone. */
	*k = (MDB_val){it->klen, it->key};
	rc = cursor_get(it, k, v, MDB_SET_RANGE);
	if (!it->reverse) {
		if (rc == 0 && key_cmp(k->mv_data, k->mv_size, it->key, it->klen) == 0)
			return cursor_get(it, k, v, MDB_NEXT);
		return rc;
	}
	if (rc == MDB_NOTFOUND)
		return cursor_get(it, k, v, MDB_LAST);
	return rc ? rc : cursor_get(it, k, v, MDB_PREV);
}

int store_iter_next(struct store_iter *it)
{
	struct store_txn *t = it->t;
	if (!t || t->failed || !it->cur)
		return -1;
	if (it->state == 3)
		return 0;
	MDB_val k, v;
	int rc = iter_step(it, &k, &v);
	if (rc == MDB_NOTFOUND) {
		it->state = 3;
		return 0;
	}
	if (rc) {
		char tmp[64];
		store_txn_fail(t, "scan '%s': %s", t->s->names[it->db],
			       rc_reason(t, rc, tmp, sizeof tmp));
		return -1;
	}
	if ((!it->reverse && it->to && key_cmp(k.mv_data, k.mv_size, it->to, it->tlen) >= 0) ||
	    (it->reverse && it->from && key_cmp(k.mv_data, k.mv_size, it->from, it->flen) < 0) ||
	    k.mv_size > STORE_KEY_MAX) {
		it->state = 3;
		return 0;
	}
	memcpy(it->key, k.mv_data, k.mv_size);
	it->klen = k.mv_size;
	it->val = v;
	it->mods = t->mods;
	it->state = 1;
	return 1;
}

const void *store_iter_key(const struct store_iter *it, size_t *klen)
{
	if (klen)
		*klen = it->state == 1 || it->state == 2 ? it->klen : 0;
	return it->key;
}

const void *store_iter_val(const struct store_iter *it, size_t *vlen)
{
	int ok = it->state == 1;
	if (vlen)
		*vlen = ok ? it->val.mv_size : 0;
	return ok ? it->val.mv_data : "";
}

int store_iter_del(struct store_iter *it)
{
	struct store_txn *t = it->t;
	if (!t || t->failed || !it->cur)
		return -1;
	if (op_check(t, "del", it->db, it->klen ? it->klen : 1, 1) < 0)
		return -1;
	if (it->state != 1) {
		store_txn_fail(t, "del in '%s': iterator has no current entry",
			       t->s->names[it->db]);
		return -1;
	}
	/* The cursor may have moved since (a write re-seeks lazily): delete
	 * by key, which is what the caller saw. */
	MDB_val k = {it->klen, it->key};
	t->mods++;
	int rc = mdb_del(t->txn, t->s->dbi[it->db], &k, NULL);
	if (rc && rc != MDB_NOTFOUND) {
		op_fail(t, "del", it->db, it->key, it->klen, rc);
		return -1;
	}
	it->state = 2;
	return 0;
}

void store_iter_free(struct store_iter *it)
{
	if (!it)
		return;
	if (it->t) {
		*it->pprev = it->next;
		if (it->next)
			it->next->pprev = it->pprev;
		if (it->cur)
			mdb_cursor_close(it->cur);
	}
	free(it->from);
	free(it->to);
	free(it);
}

int store_scan(struct store_txn *t, int db, const void *from, size_t flen, const void *to,
	       size_t tlen, int reverse, store_scan_fn fn, void *arg)
{
	struct store_iter *it = store_iter_range(t, db, from, flen, to, tlen, reverse);
	int rc;
	while ((rc = store_iter_next(it)) == 1) {
		size_t kl, vl;
		const void *k = store_iter_key(it, &kl);
		const void *v = store_iter_val(it, &vl);
		int r = fn(k, kl, v, vl, arg);
		if (r) {
			rc = r < 0 ? -1 : r;
			break;
		}
	}
	store_iter_free(it);
	return rc;
}

int store_scan_prefix(struct store_txn *t, int db, const void *prefix, size_t plen, int reverse,
		      store_scan_fn fn, void *arg)
{
	struct store_iter *it = store_iter_prefix(t, db, prefix, plen, reverse);
	int rc;
	while ((rc = store_iter_next(it)) == 1) {
		size_t kl, vl;
		const void *k = store_iter_key(it, &kl);
		const void *v = store_iter_val(it, &vl);
		int r = fn(k, kl, v, vl, arg);
		if (r) {
			rc = r < 0 ? -1 : r;
			break;
		}
	}
	store_iter_free(it);
	return rc;
}

int store_update(struct store *s, store_txn_fn fn, void *arg, char *err, size_t errlen)
{
	for (int attempt = 0;; attempt++) {
		struct store_txn *t = store_txn_begin(s, 0);
		if (!t->failed && fn(t, arg) < 0)
			store_txn_fail(t, "aborted by caller");
		int full = 0;
		if (txn_end(t, 1, err, errlen, &full) == 0)
			return 0;
		if (!full || attempt > 0)
			return -1;
	}
}
