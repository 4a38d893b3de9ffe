#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "xalloc.h"

static const char *const state_names[] = {"queued", "running", "done", "failed", "cancelled"};

const char *queue_state_name(enum queue_state s)
{
	return (unsigned)s < sizeof state_names / sizeof *state_names ? state_names[s] : "unknown";
}

void queue_task_release(struct queue_task *task)
{
	if (!task)
		return;
	free(task->payload);
	task->payload = NULL;
}

static int db(struct store_txn *t, const char *name)
{
	int i = store_db(store_txn_store(t), name);
	if (i < 0)
		store_txn_fail(t, "queue: database '%s' is not open", name);
	return i;
}

static void encode(struct buf *b, const struct queue_task *k)
{
	buf_puts(b, "{\"id\":");
	buf_json_cstr(b, k->id);
	buf_puts(b, ",\"instance\":");
	buf_json_cstr(b, k->instance);
	buf_puts(b, ",\"kind\":");
	buf_json_cstr(b, k->kind);
	buf_puts(b, ",\"payload\":");
	buf_json_cstr(b, k->payload ? k->payload : "{}");
	buf_printf(b,
		   ",\"state\":\"%s\",\"created_ms\":%lld,\"lease_until_ms\":%lld,"
		   "\"cancel_requested\":%d,\"has_exit\":%d,\"exit_status\":%lld,\"signal\":%lld,"
		   "\"output_bytes\":%lld,\"qseq\":%llu}",
		   queue_state_name(k->state), (long long)k->created_ms,
		   (long long)k->lease_until_ms, k->cancel_requested, k->has_exit,
		   (long long)k->exit_status, (long long)k->signal, (long long)k->output_bytes,
		   (unsigned long long)k->qseq);
}

static int64_t get_int(const struct proto_jv *o, const char *key)
{
	int64_t v = 0;
	if (proto_jv_int(proto_jv_get(o, key), &v) < 0)
		return 0;
	return v;
}

static int decode(const void *data, size_t len, struct queue_task *k)
{
	char err[128];
	memset(k, 0, sizeof *k);
	struct proto_json *doc = proto_json_parse(data, len, err, sizeof err);
	if (!doc)
		return -1;
	const struct proto_jv *o = proto_json_root(doc);
	const char *id = proto_jv_get_str(o, "id"), *in = proto_jv_get_str(o, "instance");
	const char *kind = proto_jv_get_str(o, "kind"), *pl = proto_jv_get_str(o, "payload");
	const char *st = proto_jv_get_str(o, "state");
	int rc = -1;
	if (!id || !in || !kind || !pl || !st)
		goto out;
	snprintf(k->id, sizeof k->id, "%s", id);
	snprintf(k->instance, sizeof k->instance, "%s", in);
	snprintf(k->kind, sizeof k->kind, "%s", kind);
	k->payload = xstrdup(pl);
	for (size_t i = 0; i < sizeof state_names / sizeof *state_names; i++)
		if (strcmp(st, state_names[i]) == 0)
			k->state = (enum queue_state)i;
	k->created_ms = get_int(o, "created_ms");
	k->lease_until_ms = get_int(o, "lease_until_ms");
	k->cancel_requested = get_int(o, "cancel_requested") != 0;
	k->has_exit = get_int(o, "has_exit") != 0;
	k->exit_status = get_int(o, "exit_status");
	k->signal = get_int(o, "signal");
	k->output_bytes = get_int(o, "output_bytes");
	k->qseq = (uint64_t)get_int(o, "qseq");
	rc = 0;
out:
	proto_json_free(doc);
	return rc;
}

static int put(struct store_txn *t, const struct queue_task *k)
{
	struct buf b = BUF_INIT;
	encode(&b, k);
	int rc = store_put(t, db(t, "tasks"), k->id, strlen(k->id), b.data, b.len);
	buf_release(&b);
	return rc;
}

static void qkey(struct store_key *key, const char *instance, uint64_t seq)
{
	store_key_init(key);
	store_key_str(key, instance);
	store_key_num(key, seq);
}

int queue_get(struct store_txn *t, const char *id, struct queue_task *out)
{
	const void *v;
	size_t n;
	memset(out, 0, sizeof *out);
	if (!id || !*id || strlen(id) >= QUEUE_ID_MAX || strchr(id, '/'))
		return STORE_NOTFOUND;
	int rc = store_get(t, db(t, "tasks"), id, strlen(id), &v, &n);
	if (rc != 0)
		return rc;
	if (decode(v, n, out) < 0) {
		queue_task_release(out);
		store_txn_fail(t, "queue: task '%s': record does not decode", id);
		return -1;
	}
	return 0;
}

int queue_add(struct store_txn *t, struct crypt_rng *rng, const char *instance, const char *kind,
	      const char *payload, int64_t now_ms, char id_out[QUEUE_ID_MAX])
{
	struct queue_task k;
	unsigned char r[8];
	memset(&k, 0, sizeof k);
	for (;;) {
		crypt_random(rng, r, sizeof r);
		snprintf(k.id, sizeof k.id, "t-%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2],
			 r[3], r[4], r[5], r[6], r[7]);
		int rc = store_get(t, db(t, "tasks"), k.id, strlen(k.id), NULL, NULL);
		if (rc == STORE_NOTFOUND)
			break;
		if (rc < 0)
			return -1;
	}
	snprintf(k.instance, sizeof k.instance, "%s", instance);
	snprintf(k.kind, sizeof k.kind, "%s", kind);
	k.payload = (char *)payload;
	k.state = QUEUE_QUEUED;
	k.created_ms = now_ms;
	k.qseq = store_next_seq(t, db(t, "queue_meta"), "qseq", 4);
	if (k.qseq == 0)
		return -1;
	struct store_key key;
	qkey(&key, instance, k.qseq);
	if (store_put(t, db(t, "queue"), key.data, key.len, k.id, strlen(k.id)) < 0 ||
	    put(t, &k) < 0)
		return -1;
	memcpy(id_out, k.id, QUEUE_ID_MAX);
	return 0;
}

/* Collect the ids first: fn may not run inside the iteration (it sends). */
static char **pending_ids(struct store_txn *t, const char *instance, size_t *n)
{
	struct store_key key;
	char **ids = NULL;
	size_t cap = 0;
	*n = 0;
	store_key_init(&key);
	store_key_str(&key, instance);
	struct store_iter *it = store_iter_prefix(t, db(t, "queue"), key.data, key.len, 0);
	while (store_iter_next(it) == 1) {
		size_t vlen;
		const char *v = store_iter_val(it, &vlen);
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			ids = xrealloc(ids, cap * sizeof *ids);
		}
		ids[*n] = xmalloc(vlen + 1);
		memcpy(ids[*n], v, vlen);
		ids[*n][vlen] = 0;
		(*n)++;
	}
	store_iter_free(it);
	return ids;
}

static void free_ids(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

int queue_lease(struct store_txn *t, const char *instance, int64_t now_ms, int64_t lease_ms,
		int force, queue_send_fn fn, void *arg)
{
	size_t n;
	int count = 0;
	char **ids = pending_ids(t, instance, &n);
	for (size_t i = 0; i < n; i++) {
		struct queue_task k;
		if (queue_get(t, ids[i], &k) != 0)
			continue;
		int due = k.state == QUEUE_QUEUED && k.lease_until_ms <= now_ms;
		if ((force && k.state <= QUEUE_RUNNING) || due) {
			if (k.state == QUEUE_QUEUED)
				k.lease_until_ms = now_ms + lease_ms;
			if (put(t, &k) == 0) {
				fn(&k, arg);
				count++;
			}
		}
		queue_task_release(&k);
	}
	free_ids(ids, n);
	return store_txn_failed(t) ? -1 : count;
}

int64_t queue_next_expiry(struct store_txn *t, const char *instance)
{
	size_t n;
	int64_t best = 0;
	char **ids = pending_ids(t, instance, &n);
	for (size_t i = 0; i < n; i++) {
		struct queue_task k;
		if (queue_get(t, ids[i], &k) != 0)
			continue;
		if (k.state == QUEUE_QUEUED && k.lease_until_ms > 0 &&
		    (best == 0 || k.lease_until_ms < best))
			best = k.lease_until_ms;
		queue_task_release(&k);
	}
	free_ids(ids, n);
	return best;
}

int queue_accept(struct store_txn *t, const char *id)
{
	struct queue_task k;
	int rc = queue_get(t, id, &k);
	if (rc != 0)
		return rc;
	if (k.state == QUEUE_QUEUED) {
		k.state = QUEUE_RUNNING;
		rc = put(t, &k);
	}
	queue_task_release(&k);
	return rc;
}

static int unqueue(struct store_txn *t, const struct queue_task *k)
{
	struct store_key key;
	qkey(&key, k->instance, k->qseq);
	return store_del(t, db(t, "queue"), key.data, key.len) < 0 ? -1 : 0;
}

int queue_finish(struct store_txn *t, const char *id, enum queue_state state, int has_exit,
		 int64_t status, int64_t sig)
{
	struct queue_task k;
	int rc = queue_get(t, id, &k);
	if (rc != 0)
		return rc;
	if (k.state <= QUEUE_RUNNING) {
		k.state = k.cancel_requested ? QUEUE_CANCELLED : state;
		k.has_exit = has_exit;
		k.exit_status = has_exit ? status : 0;
		k.signal = has_exit ? sig : 0;
		rc = unqueue(t, &k) < 0 || put(t, &k) < 0 ? -1 : 0;
	}
	queue_task_release(&k);
	return rc;
}

int queue_cancel(struct store_txn *t, const char *id, int offline, int *need_cancel)
{
	struct queue_task k;
	*need_cancel = 0;
	int rc = queue_get(t, id, &k);
	if (rc != 0)
		return rc;
	if (k.state <= QUEUE_RUNNING) {
		if (offline || (k.state == QUEUE_QUEUED && k.lease_until_ms == 0)) {
			k.state = QUEUE_CANCELLED;
			rc = unqueue(t, &k);
		} else {
			k.cancel_requested = 1;
			*need_cancel = 1;
		}
		if (rc == 0)
			rc = put(t, &k);
	}
	queue_task_release(&k);
	return rc;
}

int queue_cancel_instance(struct store_txn *t, const char *instance)
{
	size_t n;
	int count = 0;
	char **ids = pending_ids(t, instance, &n);
	for (size_t i = 0; i < n; i++)
		if (queue_finish(t, ids[i], QUEUE_CANCELLED, 0, 0, 0) == 0)
			count++;
	free_ids(ids, n);
	return store_txn_failed(t) ? -1 : count;
}

int queue_output_add(struct store_txn *t, const char *id, char stream, const void *data, size_t len)
{
	struct queue_task k;
	int rc = queue_get(t, id, &k);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	if ((size_t)k.output_bytes + len > QUEUE_OUTPUT_MAX || len == 0) {
		queue_task_release(&k);
		return 0;
	}
	struct store_key key;
	store_key_init(&key);
	store_key_str(&key, id);
	store_key_num(&key, (uint64_t)k.output_bytes);
	char *v = xmalloc(len + 1);
	v[0] = stream;
	memcpy(v + 1, data, len);
	k.output_bytes += (int64_t)len;
	rc = store_put(t, db(t, "task_output"), key.data, key.len, v, len + 1) < 0 || put(t, &k) < 0
		 ? -1
		 : 0;
	free(v);
	queue_task_release(&k);
	return rc;
}

int queue_output_scan(struct store_txn *t, const char *id, queue_output_fn fn, void *arg)
{
	struct store_key key;
	int rc = 0;
	store_key_init(&key);
	store_key_str(&key, id);
	struct store_iter *it = store_iter_prefix(t, db(t, "task_output"), key.data, key.len, 0);
	while (rc == 0 && store_iter_next(it) == 1) {
		size_t vlen;
		const char *v = store_iter_val(it, &vlen);
		if (vlen >= 1)
			rc = fn(v[0], v + 1, vlen - 1, arg);
	}
	store_iter_free(it);
	return store_txn_failed(t) ? -1 : 0;
}
