#include "svcstatus.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto.h"

#define DAY_MS	    ((int64_t)24 * 3600 * 1000)
#define COUNT_LIMIT ((int64_t)0x7fffffff) /* pid and restarts fit an int */

static const char *const states[] = {"stopped", "waiting", "running", "backoff", "stopping",
				     "exited",	"failed",  "none",    NULL};
static const char *const healths[] = {"starting", "healthy", "unhealthy", "none", NULL};

static int in_list(const char *const *list, const char *s)
{
	for (; s && *list; list++)
		if (strcmp(*list, s) == 0)
			return 1;
	return 0;
}

int svcstatus_state_valid(const char *s)
{
	return in_list(states, s);
}

int svcstatus_health_valid(const char *s)
{
	return in_list(healths, s);
}

/* Printable ASCII without '/', 1..max-1 characters (deploys.h's instance). */
static int instance_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n < 1 || n >= DEPLOYS_NAME_MAX)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '/')
			return 0;
	return 1;
}

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

/* A printable rendering of untrusted text: at most 32 characters,
 * anything but printable ASCII shown as '?'. */
#define QUOTE_MAX 40
static const char *quote(char out[QUOTE_MAX], const char *s)
{
	size_t i = 0;
	for (; s[i] && i < 32; i++)
		out[i] = (s[i] >= ' ' && s[i] < 0x7f) ? s[i] : '?';
	if (s[i]) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

/* Copy src into dst[size], cut at a UTF-8 character boundary if too long. */
static void copy_cut(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);
	if (n >= size) {
		n = size - 1;
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* String member key: its value, "" when optional and missing or null,
 * else NULL with a problem. */
static const char *get_str(const struct proto_jv *o, const char *key, int optional, struct buf *p)
{
	const struct proto_jv *v = proto_jv_get(o, key);
	if (optional && (!v || proto_jv_type(v) == PROTO_J_NULL))
		return "";
	if (!v || proto_jv_type(v) != PROTO_J_STR) {
		problem(p, "'%s' %s", key, v ? "is not a string" : "is missing");
		return NULL;
	}
	return proto_jv_str(v);
}

/* Integer member key within [lo, hi]: 0 and *out, else -1 with a problem. */
static int get_int(const struct proto_jv *o, const char *key, int64_t lo, int64_t hi, int64_t *out,
		   struct buf *p)
{
	const struct proto_jv *v = proto_jv_get(o, key);
	*out = 0;
	if (!v) {
		problem(p, "'%s' is missing", key);
		return -1;
	}
	if (proto_jv_int(v, out) < 0 || *out < lo || *out > hi) {
		problem(p, "'%s' is not an integer in [%lld, %lld]", key, (long long)lo,
			(long long)hi);
		*out = 0;
		return -1;
	}
	return 0;
}

/* The fields common to events and records, from object o into st. */
static void read_fields(const struct proto_jv *o, struct svcstatus *st, struct buf *p)
{
	char q[QUOTE_MAX];
	int64_t port = 0;
	if (!o || proto_jv_type(o) != PROTO_J_OBJ) {
		problem(p, "not a JSON object");
		return;
	}
	const char *service = get_str(o, "service", 0, p);
	if (service && !deploys_name_valid(service))
		problem(p, "'service' '%s' is not a valid name", quote(q, service));
	else if (service)
		memcpy(st->service, service, strlen(service) + 1);
	const char *release = get_str(o, "release", 1, p);
	if (release && *release && !deploys_id_valid(release))
		problem(p, "'release' '%s' is not a deployment id", quote(q, release));
	else if (release)
		memcpy(st->release, release, strlen(release) + 1);
	const char *state = get_str(o, "state", 0, p);
	if (state && !svcstatus_state_valid(state))
		problem(p, "'state' '%s' is not a known state", quote(q, state));
	else if (state)
		memcpy(st->state, state, strlen(state) + 1);
	const char *health = get_str(o, "health", 0, p);
	if (health && !svcstatus_health_valid(health))
		problem(p, "'health' '%s' is not a known health", quote(q, health));
	else if (health)
		memcpy(st->health, health, strlen(health) + 1);
	get_int(o, "pid", 0, COUNT_LIMIT, &st->pid, p);
	get_int(o, "restarts", 0, COUNT_LIMIT, &st->restarts, p);
	if (get_int(o, "port", 0, 65535, &port, p) == 0)
		st->port = (int)port;
	get_int(o, "since_ms", 0, INT64_C(0x1fffffffffffff), &st->since_ms, p);
	get_int(o, "ts_ms", 1, INT64_C(0x1fffffffffffff), &st->ts_ms, p);
	const char *error = get_str(o, "error", 1, p);
	if (error)
		copy_cut(st->error, sizeof st->error, error);
	if (!p->len && st->release[0] == 0 && strcmp(st->state, "none") != 0)
		problem(p, "'state' '%s' needs a release", st->state);
}

static int finish(struct buf *p, char *err, size_t errlen)
{
	int rc = p->len ? -1 : 0;
	if (rc && err && errlen)
		snprintf(err, errlen, "service_status: %s", p->data);
	buf_release(p);
	return rc;
}

int svcstatus_parse_event(const char *body, size_t len, const char *cluster, const char *instance,
			  int64_t now_ms, struct svcstatus *out, char *err, size_t errlen)
{
	struct buf p = BUF_INIT;
	char jerr[128];
	memset(out, 0, sizeof *out);
	if (!deploys_name_valid(cluster))
		problem(&p, "cluster name is invalid");
	else
		memcpy(out->cluster, cluster, strlen(cluster) + 1);
	if (!instance_valid(instance))
		problem(&p, "instance name is invalid");
	else
		memcpy(out->instance, instance, strlen(instance) + 1);
	struct proto_json *doc = proto_json_parse(body, len, jerr, sizeof jerr);
	if (!doc)
		problem(&p, "%s", jerr);
	else
		read_fields(proto_json_root(doc), out, &p);
	proto_json_free(doc);
	if (!p.len && out->ts_ms > now_ms + DAY_MS)
		problem(&p, "'ts_ms' is more than a day ahead of base's clock");
	out->received_ms = now_ms;
	int rc = finish(&p, err, errlen);
	if (rc < 0)
		memset(out, 0, sizeof *out);
	return rc;
}

/* --- records ------------------------------------------------------------------- */

void svcstatus_encode(struct buf *b, const struct svcstatus *st)
{
	buf_puts(b, "{\"v\":1,\"cluster\":");
	buf_json_cstr(b, st->cluster);
	buf_puts(b, ",\"service\":");
	buf_json_cstr(b, st->service);
	buf_puts(b, ",\"instance\":");
	buf_json_cstr(b, st->instance);
	buf_puts(b, ",\"release\":");
	buf_json_cstr(b, st->release);
	buf_puts(b, ",\"state\":");
	buf_json_cstr(b, st->state);
	buf_puts(b, ",\"health\":");
	buf_json_cstr(b, st->health);
	buf_printf(b,
		   ",\"pid\":%lld,\"restarts\":%lld,\"port\":%d,\"since_ms\":%lld,\"ts_ms\":%lld,"
		   "\"received_ms\":%lld,\"error\":",
		   (long long)st->pid, (long long)st->restarts, st->port, (long long)st->since_ms,
		   (long long)st->ts_ms, (long long)st->received_ms);
	buf_json_cstr(b, st->error);
	buf_putc(b, '}');
}

int svcstatus_decode(const void *data, size_t len, struct svcstatus *out)
{
	struct buf p = BUF_INIT;
	char jerr[128];
	int64_t v = 0;
	memset(out, 0, sizeof *out);
	struct proto_json *doc = proto_json_parse(data, len, jerr, sizeof jerr);
	const struct proto_jv *o = doc ? proto_json_root(doc) : NULL;
	if (!o) {
		problem(&p, "%s", jerr);
	} else {
		read_fields(o, out, &p);
		const char *c = get_str(o, "cluster", 0, &p), *i = get_str(o, "instance", 0, &p);
		if (c && deploys_name_valid(c))
			memcpy(out->cluster, c, strlen(c) + 1);
		else
			problem(&p, "bad cluster");
		if (i && instance_valid(i))
			memcpy(out->instance, i, strlen(i) + 1);
		else
			problem(&p, "bad instance");
		get_int(o, "received_ms", 0, INT64_C(0x1fffffffffffff), &out->received_ms, &p);
		if (get_int(o, "v", 1, 1, &v, &p) < 0)
			problem(&p, "unknown version");
	}
	proto_json_free(doc);
	int rc = finish(&p, NULL, 0);
	if (rc < 0)
		memset(out, 0, sizeof *out);
	return rc;
}

static int key_of(struct store_txn *t, struct store_key *k, const char *cluster,
		  const char *service, const char *instance)
{
	if (!deploys_name_valid(cluster) || !deploys_name_valid(service) ||
	    !instance_valid(instance))
		return -1;
	store_key_init(k);
	store_key_str(k, cluster);
	store_key_str(k, service);
	store_key_str(k, instance);
	int db = store_db(store_txn_store(t), SVCSTATUS_DBS);
	if (db < 0)
		store_txn_fail(t, "svcstatus: database '%s' is not open", SVCSTATUS_DBS);
	return db;
}

int svcstatus_get(struct store_txn *t, const char *cluster, const char *service,
		  const char *instance, struct svcstatus *out)
{
	struct store_key k;
	const void *v;
	size_t n;
	memset(out, 0, sizeof *out);
	int db = key_of(t, &k, cluster, service, instance);
	if (db < 0)
		return store_txn_failed(t) ? -1 : STORE_NOTFOUND;
	int rc = store_get(t, db, k.data, k.len, &v, &n);
	if (rc != 0)
		return rc;
	if (svcstatus_decode(v, n, out) < 0) {
		store_txn_fail(t, "svcstatus: record of '%s' does not decode", service);
		return -1;
	}
	return 0;
}

int svcstatus_put(struct store_txn *t, const struct svcstatus *st)
{
	struct store_key k;
	struct svcstatus old;
	int db = key_of(t, &k, st->cluster, st->service, st->instance);
	if (db < 0)
		return -1;
	int rc = svcstatus_get(t, st->cluster, st->service, st->instance, &old);
	if (rc < 0)
		return -1;
	if (rc == 0 && old.ts_ms > st->ts_ms)
		return SVCSTATUS_STALE;
	struct buf b = BUF_INIT;
	svcstatus_encode(&b, st);
	rc = store_put(t, db, k.data, k.len, b.data, b.len);
	buf_release(&b);
	return rc;
}
