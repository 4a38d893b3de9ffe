/* store: the LMDB wrapper, durable state for base and agent.
 *
 * A store is one LMDB environment: a directory (created 0700) holding
 * data.mdb and lock.mdb, with a fixed list of named databases opened once
 * by store_open() and addressed afterwards by their index in that list
 * (store_db() maps a name to its index). Keys are bytes (1..511); numbers
 * in keys are big-endian so byte order is numeric order, and struct
 * store_key builds "cluster/service/" + u64 keys that make range scans the
 * natural queries (DESIGN.md section 5).
 *
 * Transactions have sticky errors (after knot's LMDB wrapper): the first
 * failing operation records a reason, and every later operation on that
 * transaction is a no-op returning -1; store_txn_commit() then aborts and
 * returns -1 with that first reason. So a sequence of puts needs one check,
 * at commit. "Not found" and "already exists" are answers, not errors: they
 * are returned as STORE_NOTFOUND / STORE_EXISTS and do not poison the
 * transaction.
 *
 * Borrowed memory: values (and keys) returned by get and the iterators
 * point into the LMDB map. They stay valid until the transaction ends or,
 * in a write transaction, until the next put/del/seq in it. Copy what must
 * live longer (store_get_buf, store_get_dup).
 *
 * Single process, single thread: one write transaction at a time per store
 * (a second store_txn_begin(s, 0) while one is open fails, since LMDB would
 * deadlock); any number of read transactions (MDB_NOTLS). Keep
 * transactions short: never hold one across event loop iterations, a
 * long reader stops LMDB from reusing pages.
 *
 * Fork rule (LMDB caveat): an environment must not be used in a child after
 * fork(). Children exec at once; a child that needs the store opens its own
 * with store_open() (and may store_close() the inherited one, which then
 * only frees memory). Every transaction begun in another process than the
 * one that opened the store fails. All file descriptors of the environment
 * are close-on-exec, so exec'ed children do not inherit them.
 *
 * Map size: the map is a fixed-size file mapping (default
 * STORE_MAP_SIZE_DEFAULT, sparse on disk). When a write finds it full, the
 * operation fails with "map full" and the store doubles the map as soon as
 * no transaction is open, so retrying the transaction succeeds;
 * store_update() does that retry itself.
 */
#ifndef DPLOYR_STORE_H
#define DPLOYR_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct store;
struct store_txn;
struct store_iter;

/* Default map size: 1 GiB with 64-bit pointers, 256 MiB otherwise. */
#define STORE_MAP_SIZE_DEFAULT (sizeof(void *) >= 8 ? (size_t)1 << 30 : (size_t)256 << 20)
/* Longest key LMDB accepts with its default page layout. */
#define STORE_KEY_MAX 511

/* store_open flags */
#define STORE_RDONLY 0x1 /* open read-only: write transactions fail */

/* Positive answers of get/del/put_noover (not errors, not sticky). */
#define STORE_NOTFOUND 1
#define STORE_EXISTS   2

/* Open (creating if needed) the store at directory path with the named
 * databases dbnames (a NULL-terminated list, at least one name; a database
 * is created when missing, unless STORE_RDONLY). map_size 0 means
 * STORE_MAP_SIZE_DEFAULT; an existing store keeps a larger map it grew to.
 * Returns NULL with a reason in err on failure.
 * The caller keeps ownership of path and dbnames (they are copied). */
struct store *store_open(const char *path, const char *const *dbnames, size_t map_size,
			 unsigned flags, char *err, size_t errlen);
/* Close the environment. Every transaction must have ended. Accepts NULL. */
void store_close(struct store *s);
/* Index of the database called name, or -1. */
int store_db(const struct store *s, const char *name);
/* Name of database db (a string owned by the store). */
const char *store_db_name(const struct store *s, int db);
/* Current map size in bytes. */
size_t store_map_size(const struct store *s);

/* Begin a transaction (rdonly non-zero: read-only). Never returns NULL: a
 * transaction that could not begin is returned already failed, so the
 * error surfaces at the first operation or at commit. End it with
 * store_txn_commit() or store_txn_abort(). */
struct store_txn *store_txn_begin(struct store *s, int rdonly);
/* Commit and free t. Returns 0, or -1 (the transaction is aborted) with the
 * first error's reason in err (err may be NULL). Committing a read-only
 * transaction just ends it. Iterators still open are invalidated (their
 * next returns -1) but must still be freed. */
int store_txn_commit(struct store_txn *t, char *err, size_t errlen);
/* Discard t's changes and free it. Accepts NULL. */
void store_txn_abort(struct store_txn *t);
/* Non-zero once an operation on t has failed. */
int store_txn_failed(const struct store_txn *t);
/* The first error's reason, or "" (owned by t). */
const char *store_txn_error(const struct store_txn *t);
/* Poison t with the caller's own reason (e.g. a record that does not
 * decode), so commit fails. Keeps an earlier reason if there is one. */
void store_txn_fail(struct store_txn *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The store t belongs to. */
struct store *store_txn_store(const struct store_txn *t);

/* Look key up in database db. Returns 0 with *val and *vlen set (borrowed, see
 * above; val or vlen may be NULL), STORE_NOTFOUND, or -1. */
int store_get(struct store_txn *t, int db, const void *key, size_t klen, const void **val,
	      size_t *vlen);
/* Like store_get, appending a copy of the value to out. */
int store_get_buf(struct store_txn *t, int db, const void *key, size_t klen, struct buf *out);
/* Like store_get, returning a malloc'ed NUL-terminated copy (owned by the
 * caller, *vlen without the terminator; vlen may be NULL); NULL when not
 * found or on error (store_txn_failed tells which). */
char *store_get_dup(struct store_txn *t, int db, const void *key, size_t klen, size_t *vlen);
/* Insert or replace. Returns 0 or -1. */
int store_put(struct store_txn *t, int db, const void *key, size_t klen, const void *val,
	      size_t vlen);
/* Insert only: returns 0, or STORE_EXISTS (nothing written, the transaction
 * stays usable), or -1. */
int store_put_noover(struct store_txn *t, int db, const void *key, size_t klen, const void *val,
		     size_t vlen);
/* Delete: returns 0, STORE_NOTFOUND, or -1. */
int store_del(struct store_txn *t, int db, const void *key, size_t klen);

/* Sequence counter at key in db: increments the stored big-endian u64 (a
 * missing counter counts from 0) and returns the new value, so the first
 * call returns 1. The increment commits with t. Returns 0 on failure. */
uint64_t store_next_seq(struct store_txn *t, int db, const void *key, size_t klen);

/* Big-endian numbers: out[0..8) holds v; store_u64_from_key reads p[0..8). */
void store_key_u64(unsigned char out[8], uint64_t v);
uint64_t store_u64_from_key(const void *p);

/* Key builder, embedded by the caller:
 *
 *   struct store_key k;
 *   store_key_init(&k);
 *   store_key_str(&k, cluster);      "c1/"
 *   store_key_str(&k, service);      "c1/web/"
 *   store_key_num(&k, deployment);   "c1/web/" + 8 bytes big-endian
 *   store_put(t, db, k.data, k.len, ...);
 *
 * A string component is followed by STORE_KEY_SEP, so the prefix "c1/" never
 * matches "c10/...". A component that is empty or holds the separator, or a
 * key longer than STORE_KEY_MAX, makes the key invalid: len becomes 0 and
 * stays 0, and any operation given it fails ("invalid key"). */
#define STORE_KEY_SEP '/'
struct store_key {
	size_t len;
	int invalid;
	unsigned char data[STORE_KEY_MAX];
};
void store_key_init(struct store_key *k);
void store_key_str(struct store_key *k, const char *s);
void store_key_num(struct store_key *k, uint64_t v);
/* Raw bytes, no separator. */
void store_key_raw(struct store_key *k, const void *p, size_t n);

/* Iterators: keys in [from, to) (a NULL bound is open), or keys starting
 * with prefix, forwards or (reverse non-zero) backwards, e.g. the latest N
 * deployments of a service are the first N of a reverse prefix scan.
 * Never NULL: an iterator over a failed transaction yields -1.
 *
 *   struct store_iter *it = store_iter_prefix(t, db, k.data, k.len, 1);
 *   while (store_iter_next(it) == 1) { key = store_iter_key(it, &klen); ... }
 *   store_iter_free(it);
 *
 * Changing the database while iterating is safe: store_iter_del() deletes
 * the current entry, and store_put/store_del on any key are allowed too;
 * after any change the iterator re-seeks from the last key it returned, so
 * it yields every remaining key in range exactly once, including keys
 * inserted ahead of it. Free iterators before their transaction ends. */
struct store_iter *store_iter_range(struct store_txn *t, int db, const void *from, size_t flen,
				    const void *to, size_t tlen, int reverse);
struct store_iter *store_iter_prefix(struct store_txn *t, int db, const void *prefix, size_t plen,
				     int reverse);
/* Step to the next entry: 1 positioned on an entry, 0 at the end, -1 error
 * (sticky on the transaction). */
int store_iter_next(struct store_iter *it);
/* The current key: a copy owned by the iterator, valid until the next step. */
const void *store_iter_key(const struct store_iter *it, size_t *klen);
/* The current value (borrowed, see above). */
const void *store_iter_val(const struct store_iter *it, size_t *vlen);
/* Delete the current entry; the next step continues after it. 0 or -1. */
int store_iter_del(struct store_iter *it);
/* Accepts NULL. */
void store_iter_free(struct store_iter *it);

/* Callback form of the iterators: fn is called per entry and returns 0 to go
 * on, > 0 to stop (store_scan returns that value) or < 0 for an error of its
 * own (store_scan returns -1 without poisoning the transaction). Otherwise
 * store_scan returns 0 at the end or -1 on a store error. fn may change the
 * database as described for iterators. */
typedef int (*store_scan_fn)(const void *key, size_t klen, const void *val, size_t vlen, void *arg);
int store_scan(struct store_txn *t, int db, const void *from, size_t flen, const void *to,
	       size_t tlen, int reverse, store_scan_fn fn, void *arg);
int store_scan_prefix(struct store_txn *t, int db, const void *prefix, size_t plen, int reverse,
		      store_scan_fn fn, void *arg);

/* Run fn in a write transaction and commit it. When the map is full, grow it
 * and run fn once more in a fresh transaction: fn must have no effect outside
 * the transaction (it may run twice). fn returns 0, or -1 to abort (with a
 * reason set by store_txn_fail, or "aborted by caller"). */
typedef int (*store_txn_fn)(struct store_txn *t, void *arg);
int store_update(struct store *s, store_txn_fn fn, void *arg, char *err, size_t errlen);

#endif
