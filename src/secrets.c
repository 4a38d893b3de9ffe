#include "secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"
#include "xalloc.h"

#define SVC_NAME_MAX 63

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

int secrets_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n < 1 || n > SECRETS_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return 0;
	}
	return 1;
}

static int svc_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n < 1 || n > SVC_NAME_MAX)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
			return 0;
	return 1;
}

/* A printable rendering of an untrusted name for error texts: at most 64
 * characters, anything but printable ASCII as '?'. */
static void quote(char out[72], const char *s)
{
	size_t i = 0;
	for (; s && s[i] && i < 64; i++)
		out[i] = (s[i] >= ' ' && s[i] < 0x7f) ? s[i] : '?';
	if (s && s[i]) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
}

/* Check cluster, service and (when want_name) name; err on failure. */
static int check_names(const char *cluster, const char *service, const char *name, int want_name,
		       char *err, size_t errlen)
{
	char q[72];
	if (!svc_valid(cluster)) {
		quote(q, cluster);
		errf(err, errlen, "secrets: cluster '%s' is not a valid name", q);
		return -1;
	}
	if (!svc_valid(service)) {
		quote(q, service);
		errf(err, errlen, "secrets: service '%s' is not a valid name", q);
		return -1;
	}
	if (want_name && !secrets_name_valid(name)) {
		quote(q, name);
		errf(
		    err, errlen,
		    "secret '%s': not a valid name ([A-Za-z_][A-Za-z0-9_]*, at most %d characters)",
		    q, SECRETS_NAME_MAX);
		return -1;
	}
	return 0;
}

static int db(struct store_txn *t)
{
	int i = store_db(store_txn_store(t), "secrets");
	if (i < 0)
		store_txn_fail(t, "secrets: database 'secrets' is not open");
	return i;
}

static void svc_key(struct store_key *k, const char *cluster, const char *service)
{
	store_key_init(k);
	store_key_str(k, cluster);
	store_key_str(k, service);
}

static void secret_key(struct store_key *k, const char *cluster, const char *service,
		       const char *name)
{
	svc_key(k, cluster, service);
	store_key_raw(k, name, strlen(name));
}

/* --- master key ---------------------------------------------------------------- */

int secrets_master_load(const char *path, uint8_t key[CRYPT_KEY_LEN], char *err, size_t errlen)
{
	uint8_t tmp[CRYPT_KEY_LEN + 1];
	struct stat st;
	int rc = -1;
	/* O_NONBLOCK: a FIFO planted at path must not hang the caller */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		errf(err, errlen, "master key '%s': %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		errf(err, errlen, "master key '%s': %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		errf(err, errlen, "master key '%s': not a regular file", path);
		goto out;
	}
	if (st.st_uid != geteuid()) {
		errf(err, errlen,
		     "master key '%s': owned by uid %u, not by the user running dployr "
		     "(uid %u)",
		     path, (unsigned)st.st_uid, (unsigned)geteuid());
		goto out;
	}
	if (st.st_mode & 077) {
		errf(err, errlen,
		     "master key '%s': mode %04o lets group or others at it; run chmod 600 '%s'",
		     path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	size_t got = 0;
	while (got < sizeof tmp) {
		ssize_t r = read(fd, tmp + got, sizeof tmp - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			errf(err, errlen, "master key '%s': %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (got != CRYPT_KEY_LEN) {
		if (got > CRYPT_KEY_LEN)
			errf(err, errlen, "master key '%s': longer than %d bytes", path,
			     CRYPT_KEY_LEN);
		else
			errf(err, errlen, "master key '%s': %zu bytes, expected %d", path, got,
			     CRYPT_KEY_LEN);
		goto out;
	}
	memcpy(key, tmp, CRYPT_KEY_LEN);
	rc = 0;
out:
	crypt_wipe(tmp, sizeof tmp);
	close(fd);
	return rc;
}

/* --- records ------------------------------------------------------------------- */

struct rec {
	int64_t created_ms, updated_ms;
	struct buf blob; /* the envelope */
};

static void rec_encode(struct buf *b, int64_t created_ms, int64_t updated_ms,
		       const struct buf *blob)
{
	buf_printf(b, "{\"v\":1,\"created_ms\":%lld,\"updated_ms\":%lld,\"blob\":\"",
		   (long long)created_ms, (long long)updated_ms);
	crypt_b64_encode(b, blob->data, blob->len, CRYPT_B64_STD);
	buf_puts(b, "\"}");
}

/* 0 (blob appended to r->blob when want_blob), or -1. */
static int rec_decode(const void *data, size_t len, struct rec *r, int want_blob)
{
	char err[128];
	int64_t v = 0;
	int rc = -1;
	struct proto_json *doc = proto_json_parse(data, len, err, sizeof err);
	if (!doc)
		return -1;
	const struct proto_jv *o = proto_json_root(doc);
	const char *blob = proto_jv_get_str(o, "blob");
	if (proto_jv_int(proto_jv_get(o, "v"), &v) < 0 || v != 1 || !blob ||
	    proto_jv_int(proto_jv_get(o, "created_ms"), &r->created_ms) < 0 ||
	    proto_jv_int(proto_jv_get(o, "updated_ms"), &r->updated_ms) < 0)
		goto out;
	if (want_blob && crypt_b64_decode(&r->blob, blob, strlen(blob), CRYPT_B64_STD) < 0)
		goto out;
	rc = 0;
out:
	proto_json_free(doc);
	return rc;
}

/* --- operations ---------------------------------------------------------------- */

int secrets_set(struct store_txn *t, struct crypt_rng *rng, const uint8_t master[CRYPT_KEY_LEN],
		const char *cluster, const char *service, const char *name, const void *value,
		size_t len, int64_t now_ms, char *err, size_t errlen)
{
	struct store_key k;
	struct rec old = {0, 0, BUF_INIT};
	struct buf blob = BUF_INIT, enc = BUF_INIT;
	const void *v;
	size_t vlen;
	int rc = -1;

	if (check_names(cluster, service, name, 1, err, errlen) < 0)
		return -1;
	if (len > SECRETS_VALUE_MAX) {
		errf(err, errlen, "secret '%s': value is %zu bytes, more than %zu", name, len,
		     SECRETS_VALUE_MAX);
		return -1;
	}
	if (len && memchr(value, '\0', len)) {
		errf(err, errlen,
		     "secret '%s': value holds a NUL byte, which an environment "
		     "variable cannot",
		     name);
		return -1;
	}
	secret_key(&k, cluster, service, name);
	int64_t created = now_ms;
	int g = store_get(t, db(t), k.data, k.len, &v, &vlen);
	if (g < 0)
		goto store_fail;
	if (g == 0) {
		if (rec_decode(v, vlen, &old, 0) < 0) {
			errf(err, errlen,
			     "secret '%s': the stored record does not decode (delete "
			     "it, then set it again)",
			     name);
			goto out;
		}
		created = old.created_ms;
	}
	char ctx[3 * STORE_KEY_MAX];
	snprintf(ctx, sizeof ctx, "%s/%s/%s", cluster, service, name);
	crypt_envelope_seal(rng, master, ctx, value, len, &blob);
	rec_encode(&enc, created, now_ms, &blob);
	if (store_put(t, db(t), k.data, k.len, enc.data, enc.len) < 0)
		goto store_fail;
	log_debug("secrets", g == 0 ? "replaced" : "set", "cluster", cluster, "service", service,
		  "name", name, NULL);
	rc = 0;
	goto out;
store_fail:
	errf(err, errlen, "secret '%s': %s", name, store_txn_error(t));
out:
	buf_release(&old.blob);
	buf_release(&blob);
	buf_release(&enc);
	return rc;
}

int secrets_list(struct store_txn *t, const char *cluster, const char *service,
		 struct secrets_meta **out, size_t *n, char *err, size_t errlen)
{
	struct store_key pre;
	struct secrets_meta *items = NULL;
	size_t cap = 0, cnt = 0;

	*out = NULL;
	*n = 0;
	if (check_names(cluster, service, NULL, 0, err, errlen) < 0)
		return -1;
	svc_key(&pre, cluster, service);
	struct store_iter *it = store_iter_prefix(t, db(t), pre.data, pre.len, 0);
	while (store_iter_next(it) == 1) {
		size_t klen, vlen;
		const char *key = store_iter_key(it, &klen);
		const void *v = store_iter_val(it, &vlen);
		struct rec r = {0, 0, BUF_INIT};
		size_t nlen = klen - pre.len;
		if (nlen < 1 || nlen > SECRETS_NAME_MAX || rec_decode(v, vlen, &r, 0) < 0) {
			errf(err, errlen, "secrets of service '%s/%s': a record does not decode",
			     cluster, service);
			store_iter_free(it);
			free(items);
			return -1;
		}
		XGROW(items, cap, cnt + 1);
		memcpy(items[cnt].name, key + pre.len, nlen);
		items[cnt].name[nlen] = '\0';
		items[cnt].created_ms = r.created_ms;
		items[cnt].updated_ms = r.updated_ms;
		cnt++;
	}
	store_iter_free(it);
	if (store_txn_failed(t)) {
		free(items);
		errf(err, errlen, "secrets: %s", store_txn_error(t));
		return -1;
	}
	*out = items;
	*n = cnt;
	return 0;
}

int secrets_delete(struct store_txn *t, const char *cluster, const char *service, const char *name,
		   char *err, size_t errlen)
{
	struct store_key k;
	if (check_names(cluster, service, name, 1, err, errlen) < 0)
		return -1;
	secret_key(&k, cluster, service, name);
	int rc = store_del(t, db(t), k.data, k.len);
	if (rc == STORE_NOTFOUND)
		errf(err, errlen, "secret '%s' of service '%s/%s' not found", name, cluster,
		     service);
	else if (rc < 0)
		errf(err, errlen, "secret '%s': %s", name, store_txn_error(t));
	else
		log_debug("secrets", "deleted", "cluster", cluster, "service", service, "name",
			  name, NULL);
	return rc;
}

void secrets_pairs_wipe(struct secrets_pair *pairs, size_t n)
{
	for (size_t i = 0; pairs && i < n; i++) {
		if (pairs[i].value)
			crypt_wipe(pairs[i].value, pairs[i].len);
		if (pairs[i].name)
			crypt_wipe(pairs[i].name, strlen(pairs[i].name));
		pairs[i].len = 0;
	}
}

void secrets_pairs_free(struct secrets_pair *pairs, size_t n)
{
	if (!pairs)
		return;
	secrets_pairs_wipe(pairs, n);
	for (size_t i = 0; i < n; i++) {
		free(pairs[i].value);
		free(pairs[i].name);
	}
	free(pairs);
}

int secrets_open_for_agent(struct store_txn *t, const uint8_t master[CRYPT_KEY_LEN],
			   const char *cluster, const char *service, struct secrets_pair **out,
			   size_t *n, char *err, size_t errlen)
{
	struct store_key pre;
	struct secrets_pair *pairs = NULL;
	size_t cap = 0, cnt = 0;
	char ctx[3 * STORE_KEY_MAX], why[160], name[SECRETS_NAME_MAX + 1];
	int rc = -1;

	*out = NULL;
	*n = 0;
	if (check_names(cluster, service, NULL, 0, err, errlen) < 0)
		return -1;
	svc_key(&pre, cluster, service);
	struct store_iter *it = store_iter_prefix(t, db(t), pre.data, pre.len, 0);
	int step;
	while ((step = store_iter_next(it)) == 1) {
		size_t klen, vlen;
		const char *key = store_iter_key(it, &klen);
		const void *v = store_iter_val(it, &vlen);
		struct rec r = {0, 0, BUF_INIT};
		size_t nlen = klen - pre.len;
		if (nlen < 1 || nlen > SECRETS_NAME_MAX) {
			errf(err, errlen, "secrets of service '%s/%s': a key is corrupt", cluster,
			     service);
			goto fail;
		}
		memcpy(name, key + pre.len, nlen);
		name[nlen] = '\0';
		if (rec_decode(v, vlen, &r, 1) < 0) {
			buf_release(&r.blob);
			errf(err, errlen, "secret '%s' of service '%s/%s': record does not decode",
			     name, cluster, service);
			goto fail;
		}
		/* one allocation of the right size, so no realloc leaves a
		 * copy of the value behind */
		struct buf val = BUF_INIT;
		snprintf(ctx, sizeof ctx, "%s/%s/%s", cluster, service, name);
		int o = crypt_envelope_open(master, ctx, r.blob.data, r.blob.len, &val, why,
					    sizeof why);
		buf_release(&r.blob);
		if (o < 0) {
			buf_release(&val);
			errf(err, errlen, "secret '%s' of service '%s/%s': %s", name, cluster,
			     service, why);
			goto fail;
		}
		XGROW(pairs, cap, cnt + 1);
		pairs[cnt].name = xstrdup(name);
		pairs[cnt].value = buf_detach(&val, &pairs[cnt].len);
		cnt++;
	}
	if (step < 0) {
		errf(err, errlen, "secrets of service '%s/%s': %s", cluster, service,
		     store_txn_error(t));
		goto fail;
	}
	log_debug("secrets", "opened for agent", "cluster", cluster, "service", service, NULL);
	*out = pairs;
	*n = cnt;
	pairs = NULL;
	cnt = 0;
	rc = 0;
fail:
	store_iter_free(it);
	secrets_pairs_free(pairs, cnt);
	return rc;
}
