#include "deploys.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proto.h"
#include "xalloc.h"

static const char *const status_names[DEPLOYS_STATUS_COUNT] = {"queued", "running", "done", "error",
							       "cancelled"};

/* The state machine: allowed[from][to]. */
static const unsigned char allowed[DEPLOYS_STATUS_COUNT][DEPLOYS_STATUS_COUNT] = {
    [DEPLOYS_QUEUED] = {[DEPLOYS_RUNNING] = 1, [DEPLOYS_CANCELLED] = 1},
    [DEPLOYS_RUNNING] = {[DEPLOYS_DONE] = 1, [DEPLOYS_ERROR] = 1, [DEPLOYS_CANCELLED] = 1},
};

const char *deploys_status_name(enum deploys_status s)
{
	return (unsigned)s < DEPLOYS_STATUS_COUNT ? status_names[s] : "unknown";
}

int deploys_status_parse(const char *name, enum deploys_status *out)
{
	for (unsigned i = 0; name && i < DEPLOYS_STATUS_COUNT; i++)
		if (strcmp(name, status_names[i]) == 0) {
			*out = (enum deploys_status)i;
			return 0;
		}
	return -1;
}

int deploys_status_allowed(enum deploys_status from, enum deploys_status to)
{
	if ((unsigned)from >= DEPLOYS_STATUS_COUNT || (unsigned)to >= DEPLOYS_STATUS_COUNT)
		return 0;
	return allowed[from][to];
}

int deploys_status_final(enum deploys_status s)
{
	return s == DEPLOYS_DONE || s == DEPLOYS_ERROR || s == DEPLOYS_CANCELLED;
}

int deploys_id_valid(const char *id)
{
	if (!id || strlen(id) != DEPLOYS_ID_LEN || id[0] != 'd' || id[1] != '-')
		return 0;
	for (const char *p = id + 2; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
}

int deploys_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n < 1 || n >= DEPLOYS_NAME_MAX)
		return 0;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return 0;
	return 1;
}

/* Printable ASCII without '/', 1..max-1 characters. */
static int token_valid(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;
	if (n < 1 || n >= max)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '/')
			return 0;
	return 1;
}

void deploys_rec_release(struct deploys_rec *rec)
{
	if (!rec)
		return;
	free(rec->blueprint);
	free(rec->title);
	free(rec->description);
	rec->blueprint = rec->title = rec->description = NULL;
}

void deploys_list_free(struct deploys_rec *recs, size_t n)
{
	for (size_t i = 0; recs && i < n; i++)
		deploys_rec_release(&recs[i]);
	free(recs);
}

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* A printable rendering of untrusted text for error messages: at most 64
 * characters, anything but printable ASCII shown as '?'. */
#define QUOTE_MAX 72
static const char *quote(char out[QUOTE_MAX], const char *s)
{
	size_t i = 0;
	for (; s && s[i] && i < 64; i++)
		out[i] = (s[i] >= ' ' && s[i] < 0x7f) ? s[i] : '?';
	if (s && s[i]) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

/* Copy src into dst[size], cut at a UTF-8 character boundary if too long. */
static void copy_cut(char *dst, size_t size, const char *src)
{
	size_t n = src ? strlen(src) : 0;
	if (n >= size) {
		n = size - 1;
		/* src[n] continues a character: drop that character whole */
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

/* --- encoding ------------------------------------------------------------------ */

void deploys_encode(struct buf *b, const struct deploys_rec *r)
{
	buf_puts(b, "{\"v\":1,\"id\":");
	buf_json_cstr(b, r->id);
	buf_puts(b, ",\"cluster\":");
	buf_json_cstr(b, r->cluster);
	buf_puts(b, ",\"service\":");
	buf_json_cstr(b, r->service);
	buf_puts(b, ",\"instance\":");
	buf_json_cstr(b, r->instance);
	buf_printf(b, ",\"seq\":%llu,\"status\":\"%s\",\"stage\":", (unsigned long long)r->seq,
		   deploys_status_name(r->status));
	buf_json_cstr(b, r->stage);
	buf_puts(b, ",\"reason\":");
	buf_json_cstr(b, r->reason);
	buf_printf(b, ",\"created_ms\":%lld,\"started_ms\":%lld,\"finished_ms\":%lld,\"pid\":%lld",
		   (long long)r->created_ms, (long long)r->started_ms, (long long)r->finished_ms,
		   (long long)r->pid);
	buf_puts(b, ",\"runtime_version\":");
	buf_json_cstr(b, r->runtime_version);
	buf_puts(b, ",\"revision\":");
	buf_json_cstr(b, r->revision);
	buf_puts(b, ",\"release\":");
	buf_json_cstr(b, r->release);
	buf_printf(
	    b, ",\"port\":%d,\"release_kept\":%s,\"cancel_requested\":%s,\"rollback_of\":", r->port,
	    r->release_kept ? "true" : "false", r->cancel_requested ? "true" : "false");
	buf_json_cstr(b, r->rollback_of);
	buf_puts(b, ",\"title\":");
	buf_json_cstr(b, r->title ? r->title : "");
	buf_puts(b, ",\"description\":");
	buf_json_cstr(b, r->description ? r->description : "");
	buf_puts(b, ",\"blueprint\":");
	buf_json_cstr(b, r->blueprint ? r->blueprint : "");
	buf_putc(b, '}');
}

/* Copy member key of o into dst[size]: 0, or -1 when missing, not a string
 * or too long. */
static int get_fixed(const struct proto_jv *o, const char *key, char *dst, size_t size)
{
	const char *s = proto_jv_get_str(o, key);
	if (!s || strlen(s) >= size)
		return -1;
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

static int get_num(const struct proto_jv *o, const char *key, int64_t *out)
{
	return proto_jv_int(proto_jv_get(o, key), out);
}

int deploys_decode(const void *data, size_t len, struct deploys_rec *r)
{
	char err[128];
	memset(r, 0, sizeof *r);
	struct proto_json *doc = proto_json_parse(data, len, err, sizeof err);
	if (!doc)
		return -1;
	const struct proto_jv *o = proto_json_root(doc);
	int64_t v = 0, seq = 0, port = 0;
	int kept = 0, cancel = 0, rc = -1;
	const char *bp = proto_jv_get_str(o, "blueprint"), *ti = proto_jv_get_str(o, "title");
	const char *de = proto_jv_get_str(o, "description"), *re = proto_jv_get_str(o, "reason");
	if (get_num(o, "v", &v) < 0 || v != 1 || !bp || !ti || !de || !re ||
	    get_fixed(o, "id", r->id, sizeof r->id) < 0 ||
	    get_fixed(o, "cluster", r->cluster, sizeof r->cluster) < 0 ||
	    get_fixed(o, "service", r->service, sizeof r->service) < 0 ||
	    get_fixed(o, "instance", r->instance, sizeof r->instance) < 0 ||
	    get_fixed(o, "stage", r->stage, sizeof r->stage) < 0 ||
	    get_fixed(o, "runtime_version", r->runtime_version, sizeof r->runtime_version) < 0 ||
	    get_fixed(o, "revision", r->revision, sizeof r->revision) < 0 ||
	    get_fixed(o, "release", r->release, sizeof r->release) < 0 ||
	    get_fixed(o, "rollback_of", r->rollback_of, sizeof r->rollback_of) < 0 ||
	    deploys_status_parse(proto_jv_get_str(o, "status"), &r->status) < 0 ||
	    get_num(o, "seq", &seq) < 0 || seq < 1 ||
	    get_num(o, "created_ms", &r->created_ms) < 0 ||
	    get_num(o, "started_ms", &r->started_ms) < 0 ||
	    get_num(o, "finished_ms", &r->finished_ms) < 0 || get_num(o, "pid", &r->pid) < 0 ||
	    get_num(o, "port", &port) < 0 || port < 0 || port > 65535 ||
	    proto_jv_bool(proto_jv_get(o, "release_kept"), &kept) < 0 ||
	    proto_jv_bool(proto_jv_get(o, "cancel_requested"), &cancel) < 0)
		goto out;
	/* the reason was cut to fit when written; its U+FFFD replacements may
	 * have grown it, so cut it again rather than refuse the record */
	copy_cut(r->reason, sizeof r->reason, re);
	r->seq = (uint64_t)seq;
	r->port = (int)port;
	r->release_kept = kept;
	r->cancel_requested = cancel;
	r->blueprint = xstrdup(bp);
	r->title = xstrdup(ti);
	r->description = xstrdup(de);
	rc = 0;
out:
	proto_json_free(doc);
	return rc;
}

/* --- store helpers ------------------------------------------------------------- */

static int db(struct store_txn *t, const char *name)
{
	int i = store_db(store_txn_store(t), name);
	if (i < 0)
		store_txn_fail(t, "deploys: database '%s' is not open", name);
	return i;
}

static void svc_key(struct store_key *k, const char *cluster, const char *service)
{
	store_key_init(k);
	store_key_str(k, cluster);
	store_key_str(k, service);
}

static void rec_key(struct store_key *k, const char *cluster, const char *service, uint64_t seq)
{
	svc_key(k, cluster, service);
	store_key_num(k, seq);
}

static void log_key(struct store_key *k, const char *id, uint64_t off)
{
	store_key_init(k);
	store_key_str(k, id);
	store_key_num(k, off);
}

/* Decode a stored record; a record that does not decode poisons t. */
static int decode_stored(struct store_txn *t, const void *v, size_t n, struct deploys_rec *out)
{
	if (deploys_decode(v, n, out) == 0)
		return 0;
	deploys_rec_release(out);
	store_txn_fail(t, "deploys: a record does not decode");
	return -1;
}

static int load_key(struct store_txn *t, const void *key, size_t klen, struct deploys_rec *out)
{
	const void *v;
	size_t n;
	memset(out, 0, sizeof *out);
	int rc = store_get(t, db(t, "deploys"), key, klen, &v, &n);
	if (rc != 0)
		return rc;
	return decode_stored(t, v, n, out);
}

static int load(struct store_txn *t, const char *id, struct deploys_rec *out)
{
	const void *v;
	size_t n;
	unsigned char key[STORE_KEY_MAX];
	memset(out, 0, sizeof *out);
	if (!deploys_id_valid(id))
		return STORE_NOTFOUND;
	int rc = store_get(t, db(t, "deploy_ids"), id, strlen(id), &v, &n);
	if (rc != 0)
		return rc;
	if (n == 0 || n > sizeof key) {
		store_txn_fail(t, "deploys: index entry of '%s' is corrupt", id);
		return -1;
	}
	memcpy(key, v, n);
	rc = load_key(t, key, n, out);
	if (rc == STORE_NOTFOUND) {
		store_txn_fail(t, "deploys: index entry of '%s' points nowhere", id);
		rc = -1;
	}
	return rc;
}

static int save(struct store_txn *t, const struct deploys_rec *r)
{
	struct store_key k;
	struct buf b = BUF_INIT;
	deploys_encode(&b, r);
	rec_key(&k, r->cluster, r->service, r->seq);
	int rc = store_put(t, db(t, "deploys"), k.data, k.len, b.data, b.len);
	buf_release(&b);
	return rc;
}

int deploys_get(struct store_txn *t, const char *id, struct deploys_rec *out)
{
	return load(t, id, out);
}

int deploys_get_seq(struct store_txn *t, const char *cluster, const char *service, uint64_t seq,
		    struct deploys_rec *out)
{
	struct store_key k;
	memset(out, 0, sizeof *out);
	if (!deploys_name_valid(cluster) || !deploys_name_valid(service) || seq == 0)
		return STORE_NOTFOUND;
	rec_key(&k, cluster, service, seq);
	return load_key(t, k.data, k.len, out);
}

/* --- adding -------------------------------------------------------------------- */

static void problem(struct buf *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct buf *p, const char *fmt, ...)
{
	va_list ap;
	if (p->len)
		buf_puts(p, "; ");
	va_start(ap, fmt);
	buf_vprintf(p, fmt, ap);
	va_end(ap);
}

static void check_new(const struct deploys_new *in, struct buf *p)
{
	char q[QUOTE_MAX];
	if (!deploys_name_valid(in->cluster))
		problem(p, "cluster '%s' is not a valid name (1-63 of A-Za-z0-9._-)",
			quote(q, in->cluster));
	if (!deploys_name_valid(in->service))
		problem(p, "service '%s' is not a valid name (1-63 of A-Za-z0-9._-)",
			quote(q, in->service));
	if (!token_valid(in->instance, DEPLOYS_NAME_MAX))
		problem(p, "instance '%s' is not valid (1-63 printable characters, no '/')",
			quote(q, in->instance));
	if (!in->blueprint || !*in->blueprint)
		problem(p, "blueprint is empty");
	else if (strlen(in->blueprint) > DEPLOYS_BLUEPRINT_MAX)
		problem(p, "blueprint is %zu bytes, more than %zu", strlen(in->blueprint),
			DEPLOYS_BLUEPRINT_MAX);
	if (in->title && strlen(in->title) > DEPLOYS_TITLE_MAX)
		problem(p, "title is %zu bytes, more than %d", strlen(in->title),
			DEPLOYS_TITLE_MAX);
	if (in->description && strlen(in->description) > DEPLOYS_DESCRIPTION_MAX)
		problem(p, "description is %zu bytes, more than %d", strlen(in->description),
			DEPLOYS_DESCRIPTION_MAX);
	if (in->rollback_of && !deploys_id_valid(in->rollback_of))
		problem(p, "rollback target '%s' is not a deployment id",
			quote(q, in->rollback_of));
}

int deploys_add(struct store_txn *t, struct crypt_rng *rng, const struct deploys_new *in,
		int64_t now_ms, struct deploys_rec *out, char *err, size_t errlen)
{
	struct deploys_rec r;
	struct buf p = BUF_INIT, enc = BUF_INIT;
	struct store_key k;
	int rc = -1;

	memset(&r, 0, sizeof r);
	if (out)
		memset(out, 0, sizeof *out);
	check_new(in, &p);
	if (p.len) {
		errf(err, errlen, "deployment: %s", p.data);
		goto out;
	}
	for (;;) {
		unsigned char x[6];
		crypt_random(rng, x, sizeof x);
		snprintf(r.id, sizeof r.id, "d-%02x%02x%02x%02x%02x%02x", x[0], x[1], x[2], x[3],
			 x[4], x[5]);
		int g = store_get(t, db(t, "deploy_ids"), r.id, strlen(r.id), NULL, NULL);
		if (g == STORE_NOTFOUND)
			break;
		if (g < 0)
			goto store_fail;
	}
	snprintf(r.cluster, sizeof r.cluster, "%s", in->cluster);
	snprintf(r.service, sizeof r.service, "%s", in->service);
	snprintf(r.instance, sizeof r.instance, "%s", in->instance);
	if (in->rollback_of)
		snprintf(r.rollback_of, sizeof r.rollback_of, "%s", in->rollback_of);
	r.blueprint = xstrdup(in->blueprint);
	r.title = xstrdup(in->title ? in->title : "");
	r.description = xstrdup(in->description ? in->description : "");
	r.status = DEPLOYS_QUEUED;
	r.created_ms = now_ms;
	deploys_encode(&enc, &r);
	if (enc.len + 4096 > PROTO_MAX_MSG) {
		/* control characters escape to 6 bytes each: refuse what a
		 * reader could not parse back, with room for what progress and
		 * the final status add later (reason: 255 bytes, 6 each) */
		errf(err, errlen, "deployment: record is %zu bytes once encoded, more than %zu",
		     enc.len, PROTO_MAX_MSG - 4096);
		goto out;
	}

	svc_key(&k, r.cluster, r.service);
	r.seq = store_next_seq(t, db(t, "deploy_seq"), k.data, k.len);
	if (!r.seq)
		goto store_fail;
	buf_reset(&enc);
	deploys_encode(&enc, &r);
	rec_key(&k, r.cluster, r.service, r.seq);
	store_put(t, db(t, "deploys"), k.data, k.len, enc.data, enc.len);
	store_put(t, db(t, "deploy_ids"), r.id, strlen(r.id), k.data, k.len);
	store_put(t, db(t, "deploy_queue"), k.data, k.len, r.id, strlen(r.id));
	if (store_txn_failed(t))
		goto store_fail;
	log_debug("deploys", "queued", "id", r.id, "cluster", r.cluster, "service", r.service,
		  NULL);
	if (out) {
		*out = r;
		memset(&r, 0, sizeof r);
	}
	rc = 0;
	goto out;
store_fail:
	errf(err, errlen, "deployment: %s", store_txn_error(t));
out:
	deploys_rec_release(&r);
	buf_release(&p);
	buf_release(&enc);
	return rc;
}

/* --- queue and status ---------------------------------------------------------- */

/* Id of the oldest pending deployment of a service: 0, STORE_NOTFOUND, -1. */
static int first_pending(struct store_txn *t, const char *cluster, const char *service,
			 char id[DEPLOYS_ID_MAX])
{
	struct store_key k;
	svc_key(&k, cluster, service);
	struct store_iter *it = store_iter_prefix(t, db(t, "deploy_queue"), k.data, k.len, 0);
	int rc = store_iter_next(it);
	if (rc == 1) {
		size_t n;
		const void *v = store_iter_val(it, &n);
		if (n != DEPLOYS_ID_LEN) {
			store_txn_fail(t, "deploys: queue entry of service '%s/%s' is corrupt",
				       cluster, service);
			rc = -1;
		} else {
			memcpy(id, v, n);
			id[n] = '\0';
			rc = 0;
		}
	} else if (rc == 0) {
		rc = STORE_NOTFOUND;
	}
	store_iter_free(it);
	return rc;
}

int deploys_pending(struct store_txn *t, const char *cluster, const char *service,
		    char (*ids)[DEPLOYS_ID_MAX], size_t max)
{
	struct store_key k;
	if (!deploys_name_valid(cluster) || !deploys_name_valid(service))
		return 0;
	svc_key(&k, cluster, service);
	struct store_iter *it = store_iter_prefix(t, db(t, "deploy_queue"), k.data, k.len, 0);
	int n = 0, rc;
	while ((rc = store_iter_next(it)) == 1) {
		size_t vlen;
		const void *v = store_iter_val(it, &vlen);
		if ((size_t)n < max && vlen == DEPLOYS_ID_LEN) {
			memcpy(ids[n], v, vlen);
			ids[n][vlen] = '\0';
		}
		n++;
	}
	store_iter_free(it);
	return rc < 0 ? -1 : n;
}

/* The first pending deployment, loaded: 0, STORE_NOTFOUND, -1. */
static int head(struct store_txn *t, const char *cluster, const char *service,
		struct deploys_rec *out)
{
	char id[DEPLOYS_ID_MAX];
	memset(out, 0, sizeof *out);
	if (!deploys_name_valid(cluster) || !deploys_name_valid(service))
		return STORE_NOTFOUND;
	int rc = first_pending(t, cluster, service, id);
	if (rc != 0)
		return rc;
	rc = load(t, id, out);
	if (rc == STORE_NOTFOUND) {
		store_txn_fail(t, "deploys: queue entry '%s' points nowhere", id);
		rc = -1;
	}
	return rc;
}

int deploys_active(struct store_txn *t, const char *cluster, const char *service,
		   struct deploys_rec *out)
{
	int rc = head(t, cluster, service, out);
	if (rc == 0 && out->status != DEPLOYS_RUNNING) {
		deploys_rec_release(out);
		rc = STORE_NOTFOUND;
	}
	return rc;
}

int deploys_next(struct store_txn *t, const char *cluster, const char *service,
		 struct deploys_rec *out)
{
	int rc = head(t, cluster, service, out);
	if (rc == 0 && out->status != DEPLOYS_QUEUED) {
		deploys_rec_release(out);
		rc = STORE_NOTFOUND;
	}
	return rc;
}

int deploys_start_next(struct store_txn *t, const char *cluster, const char *service,
		       int64_t now_ms, struct deploys_rec *out)
{
	char id[DEPLOYS_ID_MAX], err[256];
	int rc = deploys_next(t, cluster, service, out);
	if (rc != 0)
		return rc;
	memcpy(id, out->id, sizeof id);
	deploys_rec_release(out);
	rc = deploys_set_status(t, id, DEPLOYS_RUNNING, now_ms, NULL, out, err, sizeof err);
	if (rc < 0 && !store_txn_failed(t))
		store_txn_fail(t, "%s", err); /* cannot happen: it was next */
	return rc;
}

int deploys_set_status(struct store_txn *t, const char *id, enum deploys_status to, int64_t now_ms,
		       const char *reason, struct deploys_rec *out, char *err, size_t errlen)
{
	struct deploys_rec r;
	struct store_key k;
	char q[QUOTE_MAX];
	int rc;

	if (out)
		memset(out, 0, sizeof *out);
	rc = load(t, id, &r);
	if (rc == STORE_NOTFOUND) {
		errf(err, errlen, "deployment '%s' not found", quote(q, id));
		return rc;
	}
	if (rc < 0)
		goto store_fail;
	enum deploys_status from = r.status;
	if (!deploys_status_allowed(from, to)) {
		errf(err, errlen, "deployment '%s': cannot go from '%s' to '%s'%s", r.id,
		     deploys_status_name(from), deploys_status_name(to),
		     deploys_status_final(from) ? " (it has ended)" : "");
		rc = -1;
		goto out;
	}
	if (to == DEPLOYS_RUNNING) {
		char first[DEPLOYS_ID_MAX];
		rc = first_pending(t, r.cluster, r.service, first);
		if (rc < 0)
			goto store_fail;
		if (rc == STORE_NOTFOUND) {
			store_txn_fail(t, "deploys: '%s' is queued but not in its queue", r.id);
			goto store_fail;
		}
		if (strcmp(first, r.id) != 0) {
			struct deploys_rec f;
			rc = load(t, first, &f);
			if (rc != 0) {
				if (rc == STORE_NOTFOUND)
					store_txn_fail(
					    t, "deploys: queue entry '%s' points nowhere", first);
				goto store_fail;
			}
			if (f.status == DEPLOYS_RUNNING)
				errf(err, errlen,
				     "deployment '%s': '%s' is running for service '%s/%s' "
				     "(one at a time)",
				     r.id, first, r.cluster, r.service);
			else
				errf(
				    err, errlen,
				    "deployment '%s': '%s' is queued before it for service '%s/%s'",
				    r.id, first, r.cluster, r.service);
			deploys_rec_release(&f);
			rc = -1;
			goto out;
		}
		r.started_ms = now_ms;
	}
	r.status = to;
	if (deploys_status_final(to)) {
		r.finished_ms = now_ms;
		copy_cut(r.reason, sizeof r.reason, reason);
		rec_key(&k, r.cluster, r.service, r.seq);
		store_del(t, db(t, "deploy_queue"), k.data, k.len);
	}
	save(t, &r);
	if (store_txn_failed(t))
		goto store_fail;
	log_debug("deploys", "transition", "id", r.id, "from", deploys_status_name(from), "to",
		  deploys_status_name(to), NULL);
	if (out) {
		*out = r;
		memset(&r, 0, sizeof r);
	}
	rc = 0;
	goto out;
store_fail:
	errf(err, errlen, "deployment '%s': %s", quote(q, id), store_txn_error(t));
	rc = -1;
out:
	deploys_rec_release(&r);
	return rc;
}

int deploys_request_cancel(struct store_txn *t, const char *id, int64_t now_ms,
			   struct deploys_rec *out, char *err, size_t errlen)
{
	struct deploys_rec r;
	char q[QUOTE_MAX];
	int rc = load(t, id, &r);
	if (out)
		memset(out, 0, sizeof *out);
	if (rc == STORE_NOTFOUND) {
		errf(err, errlen, "deployment '%s' not found", quote(q, id));
		return rc;
	}
	if (rc < 0) {
		errf(err, errlen, "deployment '%s': %s", quote(q, id), store_txn_error(t));
		goto out;
	}
	if (r.status == DEPLOYS_QUEUED) {
		rc = deploys_set_status(t, r.id, DEPLOYS_CANCELLED, now_ms,
					"cancelled before it started", out, err, errlen);
		goto out;
	}
	if (r.status != DEPLOYS_RUNNING) {
		errf(err, errlen, "deployment '%s' has ended ('%s'): nothing to cancel", r.id,
		     deploys_status_name(r.status));
		rc = -1;
		goto out;
	}
	r.cancel_requested = 1;
	if (save(t, &r) < 0) {
		errf(err, errlen, "deployment '%s': %s", r.id, store_txn_error(t));
		rc = -1;
		goto out;
	}
	log_debug("deploys", "cancel requested", "id", r.id, NULL);
	if (out) {
		*out = r;
		memset(&r, 0, sizeof r);
	}
out:
	deploys_rec_release(&r);
	return rc;
}

/* --- progress ------------------------------------------------------------------ */

static int set_field(char *dst, size_t size, const char *val, const char *what, const char *id,
		     char *err, size_t errlen)
{
	if (!val)
		return 0;
	for (const unsigned char *p = (const unsigned char *)val; *p; p++)
		if (*p < ' ' || *p >= 0x7f) {
			errf(err, errlen,
			     "deployment '%s': %s holds a character that is not "
			     "printable ASCII",
			     id, what);
			return -1;
		}
	if (strlen(val) >= size) {
		errf(err, errlen, "deployment '%s': %s is %zu bytes, more than %zu", id, what,
		     strlen(val), size - 1);
		return -1;
	}
	memcpy(dst, val, strlen(val) + 1);
	return 0;
}

int deploys_set_progress(struct store_txn *t, const char *id, const struct deploys_progress *p,
			 char *err, size_t errlen)
{
	struct deploys_rec r;
	char q[QUOTE_MAX];
	int rc = load(t, id, &r);
	if (rc == STORE_NOTFOUND) {
		errf(err, errlen, "deployment '%s' not found", quote(q, id));
		return rc;
	}
	if (rc < 0) {
		errf(err, errlen, "deployment '%s': %s", quote(q, id), store_txn_error(t));
		goto out;
	}
	rc = -1;
	if (deploys_status_final(r.status)) {
		errf(err, errlen, "deployment '%s': ended ('%s'), its record is final", r.id,
		     deploys_status_name(r.status));
		goto out;
	}
	if (p->port < 0 || p->port > 65535 || p->pid < 0) {
		errf(err, errlen, "deployment '%s': port %d or pid %lld out of range", r.id,
		     p->port, (long long)p->pid);
		goto out;
	}
	if (set_field(r.stage, sizeof r.stage, p->stage, "stage", r.id, err, errlen) < 0 ||
	    set_field(r.runtime_version, sizeof r.runtime_version, p->runtime_version,
		      "runtime version", r.id, err, errlen) < 0 ||
	    set_field(r.revision, sizeof r.revision, p->revision, "revision", r.id, err, errlen) <
		0 ||
	    set_field(r.release, sizeof r.release, p->release, "release", r.id, err, errlen) < 0)
		goto out;
	if (p->release)
		r.release_kept = r.release[0] != '\0';
	if (p->pid)
		r.pid = p->pid;
	if (p->port)
		r.port = p->port;
	if (save(t, &r) < 0) {
		errf(err, errlen, "deployment '%s': %s", r.id, store_txn_error(t));
		goto out;
	}
	rc = 0;
out:
	deploys_rec_release(&r);
	return rc;
}

int deploys_set_release_kept(struct store_txn *t, const char *id, int kept)
{
	struct deploys_rec r;
	int rc = load(t, id, &r);
	if (rc == 0) {
		r.release_kept = !!kept;
		rc = save(t, &r);
	}
	deploys_rec_release(&r);
	return rc;
}

/* --- listing ------------------------------------------------------------------- */

int deploys_list(struct store_txn *t, const char *cluster, const char *service, uint64_t before_seq,
		 size_t limit, struct deploys_rec **out, size_t *n)
{
	struct store_key pre, to;
	struct deploys_rec *recs = NULL;
	size_t cap = 0, cnt = 0;

	*out = NULL;
	*n = 0;
	if (!deploys_name_valid(cluster) || !deploys_name_valid(service))
		return 0;
	if (limit == 0)
		limit = DEPLOYS_LIST_DEFAULT;
	if (limit > DEPLOYS_LIST_MAX)
		limit = DEPLOYS_LIST_MAX;
	svc_key(&pre, cluster, service);
	struct store_iter *it;
	if (before_seq) {
		rec_key(&to, cluster, service, before_seq);
		it = store_iter_range(t, db(t, "deploys"), pre.data, pre.len, to.data, to.len, 1);
	} else {
		it = store_iter_prefix(t, db(t, "deploys"), pre.data, pre.len, 1);
	}
	while (cnt < limit && store_iter_next(it) == 1) {
		size_t vlen;
		const void *v = store_iter_val(it, &vlen);
		XGROW(recs, cap, cnt + 1);
		if (decode_stored(t, v, vlen, &recs[cnt]) < 0)
			break;
		cnt++;
	}
	store_iter_free(it);
	if (store_txn_failed(t)) {
		deploys_list_free(recs, cnt);
		return -1;
	}
	*out = recs;
	*n = cnt;
	return 0;
}

/* --- rollback ------------------------------------------------------------------ */

static int rollback_check(const struct deploys_rec *r, const char *cluster, const char *service,
			  char *err, size_t errlen)
{
	if (strcmp(r->cluster, cluster) != 0 || strcmp(r->service, service) != 0) {
		errf(err, errlen, "deployment '%s' belongs to service '%s/%s', not '%s/%s'", r->id,
		     r->cluster, r->service, cluster, service);
		return -1;
	}
	if (r->status != DEPLOYS_DONE) {
		errf(err, errlen,
		     "deployment '%s' is '%s': only a done deployment can be a "
		     "rollback target",
		     r->id, deploys_status_name(r->status));
		return -1;
	}
	if (!r->release[0] || !r->release_kept) {
		errf(err, errlen, "deployment '%s': its release is no longer kept", r->id);
		return -1;
	}
	return 0;
}

int deploys_rollback_target(struct store_txn *t, const char *cluster, const char *service,
			    const char *id, struct deploys_rec *out, char *err, size_t errlen)
{
	struct store_key pre;
	struct deploys_rec cur;
	char q[QUOTE_MAX];
	int rc, have_cur = 0;

	memset(out, 0, sizeof *out);
	memset(&cur, 0, sizeof cur);
	if (!deploys_name_valid(cluster) || !deploys_name_valid(service)) {
		char q2[QUOTE_MAX];
		errf(err, errlen, "rollback: service '%s/%s' is not a valid name",
		     quote(q, cluster), quote(q2, service));
		return -1;
	}
	if (id) {
		rc = load(t, id, out);
		if (rc == STORE_NOTFOUND) {
			errf(err, errlen, "rollback: deployment '%s' not found", quote(q, id));
			return -1;
		}
		if (rc < 0) {
			errf(err, errlen, "rollback: %s", store_txn_error(t));
			return -1;
		}
		if (rollback_check(out, cluster, service, err, errlen) < 0) {
			deploys_rec_release(out);
			return -1;
		}
		return 0;
	}

	svc_key(&pre, cluster, service);
	struct store_iter *it = store_iter_prefix(t, db(t, "deploys"), pre.data, pre.len, 1);
	rc = STORE_NOTFOUND;
	while (store_iter_next(it) == 1) {
		struct deploys_rec r;
		size_t vlen;
		const void *v = store_iter_val(it, &vlen);
		if (decode_stored(t, v, vlen, &r) < 0)
			break;
		if (r.status != DEPLOYS_DONE) {
			deploys_rec_release(&r);
		} else if (!have_cur) {
			cur = r;
			have_cur = 1;
		} else if (r.release[0] && r.release_kept && strcmp(r.release, cur.release) != 0) {
			*out = r;
			rc = 0;
			break;
		} else {
			deploys_rec_release(&r);
		}
	}
	store_iter_free(it);
	deploys_rec_release(&cur);
	if (store_txn_failed(t)) {
		deploys_rec_release(out);
		errf(err, errlen, "rollback: %s", store_txn_error(t));
		return -1;
	}
	if (rc == STORE_NOTFOUND)
		errf(err, errlen,
		     "rollback: service '%s/%s' has no earlier done deployment with a "
		     "kept release",
		     cluster, service);
	return rc;
}

/* --- log ----------------------------------------------------------------------- */

/* End of the log (offset after its last byte) and the last chunk's offset
 * and length: 0, or -1. An empty log has end 0 and last_len 0. */
static int log_tail(struct store_txn *t, const char *id, uint64_t *end, uint64_t *last_off,
		    size_t *last_len)
{
	struct store_key pre;
	store_key_init(&pre);
	store_key_str(&pre, id);
	*end = *last_off = 0;
	*last_len = 0;
	struct store_iter *it = store_iter_prefix(t, db(t, "deploy_logs"), pre.data, pre.len, 1);
	int rc = store_iter_next(it);
	if (rc == 1) {
		size_t klen;
		const unsigned char *k = store_iter_key(it, &klen);
		store_iter_val(it, last_len);
		if (klen != pre.len + 8) {
			store_txn_fail(t, "deploys: log key of '%s' is corrupt", id);
			rc = -1;
		} else {
			*last_off = store_u64_from_key(k + pre.len);
			*end = *last_off + *last_len;
			rc = 0;
		}
	}
	store_iter_free(it);
	return rc < 0 ? -1 : 0;
}

static int exists(struct store_txn *t, const char *id)
{
	if (!deploys_id_valid(id))
		return STORE_NOTFOUND;
	return store_get(t, db(t, "deploy_ids"), id, strlen(id), NULL, NULL);
}

int deploys_log_append(struct store_txn *t, const char *id, const void *data, size_t len)
{
	struct store_key k;
	uint64_t end, last_off;
	size_t last_len;
	const unsigned char *p = data;
	int ldb = db(t, "deploy_logs");

	int rc = exists(t, id);
	if (rc != 0)
		return rc;
	if (log_tail(t, id, &end, &last_off, &last_len) < 0)
		return -1;
	if (end > DEPLOYS_LOG_MAX || len == 0)
		return 0; /* truncated already: dropped */
	size_t take = len;
	if (take > DEPLOYS_LOG_MAX - end)
		take = (size_t)(DEPLOYS_LOG_MAX - end);
	size_t done = 0;
	if (take && last_len && last_len < DEPLOYS_LOG_CHUNK) {
		/* fill the last chunk first: many small appends (a line each)
		 * must not cost an LMDB entry each */
		struct buf b = BUF_INIT;
		size_t fill = DEPLOYS_LOG_CHUNK - last_len;
		if (fill > take)
			fill = take;
		log_key(&k, id, last_off);
		store_get_buf(t, ldb, k.data, k.len, &b);
		buf_add(&b, p, fill);
		store_put(t, ldb, k.data, k.len, b.data, b.len);
		buf_release(&b);
		done = fill;
	}
	while (done < take) {
		size_t n = take - done;
		if (n > DEPLOYS_LOG_CHUNK)
			n = DEPLOYS_LOG_CHUNK;
		log_key(&k, id, end + done);
		store_put(t, ldb, k.data, k.len, p + done, n);
		done += n;
	}
	if (take < len) {
		/* a chunk of its own, so end > DEPLOYS_LOG_MAX marks the log
		 * truncated */
		log_key(&k, id, DEPLOYS_LOG_MAX);
		store_put(t, ldb, k.data, k.len, DEPLOYS_LOG_TRUNCATED,
			  strlen(DEPLOYS_LOG_TRUNCATED));
	}
	return store_txn_failed(t) ? -1 : 0;
}

int deploys_log_size(struct store_txn *t, const char *id, uint64_t *size, int *truncated)
{
	uint64_t last_off;
	size_t last_len;
	*size = 0;
	if (truncated)
		*truncated = 0;
	int rc = exists(t, id);
	if (rc != 0)
		return rc;
	if (log_tail(t, id, size, &last_off, &last_len) < 0)
		return -1;
	if (truncated)
		*truncated = *size > DEPLOYS_LOG_MAX;
	return 0;
}

int deploys_log_read(struct store_txn *t, const char *id, uint64_t offset, size_t max,
		     struct buf *out, uint64_t *next)
{
	struct store_key pre, from, to;
	uint64_t end, last_off;
	size_t last_len;
	int ldb = db(t, "deploy_logs");

	*next = offset;
	int rc = exists(t, id);
	if (rc != 0)
		return rc;
	if (log_tail(t, id, &end, &last_off, &last_len) < 0)
		return -1;
	if (offset >= end) {
		*next = end;
		return 0;
	}
	if (max == 0)
		max = DEPLOYS_LOG_CHUNK;

	/* the chunk holding offset: the last one starting at or before it */
	store_key_init(&pre);
	store_key_str(&pre, id);
	log_key(&to, id, offset + 1);
	struct store_iter *it = store_iter_range(t, ldb, pre.data, pre.len, to.data, to.len, 1);
	uint64_t start = 0;
	rc = store_iter_next(it);
	if (rc == 1) {
		size_t klen;
		const unsigned char *k = store_iter_key(it, &klen);
		if (klen == pre.len + 8)
			start = store_u64_from_key(k + pre.len);
	}
	store_iter_free(it);
	if (rc < 0)
		return -1;

	log_key(&from, id, start);
	log_key(&to, id, end);
	it = store_iter_range(t, ldb, from.data, from.len, to.data, to.len, 0);
	uint64_t pos = offset;
	size_t got = 0;
	while (got < max && (rc = store_iter_next(it)) == 1) {
		size_t klen, vlen;
		const unsigned char *k = store_iter_key(it, &klen);
		const unsigned char *v = store_iter_val(it, &vlen);
		if (klen != pre.len + 8)
			continue;
		uint64_t off = store_u64_from_key(k + pre.len);
		if (off > pos) {
			store_txn_fail(t, "deploys: log of '%s' has a gap at %llu", id,
				       (unsigned long long)pos);
			break;
		}
		if (off + vlen <= pos)
			continue;
		size_t skip = (size_t)(pos - off), n = vlen - skip;
		if (n > max - got)
			n = max - got;
		buf_add(out, v + skip, n);
		got += n;
		pos += n;
	}
	store_iter_free(it);
	if (store_txn_failed(t))
		return -1;
	*next = pos;
	return 0;
}
