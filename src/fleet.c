#include "fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "proto.h"
#include "xalloc.h"

static int db(struct store_txn *t, const char *name)
{
	int i = store_db(store_txn_store(t), name);
	if (i < 0)
		store_txn_fail(t, "fleet: database '%s' is not open", name);
	return i;
}

int fleet_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > 63 || name[0] == '-' || name[n - 1] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return 0;
	}
	return 1;
}

int fleet_id_valid(const char *id)
{
	if (!id || strncmp(id, "i-", 2) != 0 || strlen(id) != 18)
		return 0;
	for (size_t i = 2; i < 18; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return 0;
	return 1;
}

void fleet_encode(struct buf *out, const struct fleet_instance *in)
{
	buf_puts(out, "{\"id\":");
	buf_json_cstr(out, in->id);
	buf_puts(out, ",\"name\":");
	buf_json_cstr(out, in->name);
	buf_printf(out, ",\"joined\":%s,\"revoked\":%s,\"created_at\":%lld,\"last_seen\":%lld",
		   in->joined ? "true" : "false", in->revoked ? "true" : "false",
		   (long long)in->created_at, (long long)in->last_seen);
	buf_puts(out, ",\"agent_version\":");
	buf_json_cstr(out, in->agent_version);
	buf_puts(out, ",\"addr\":");
	buf_json_cstr(out, in->addr);
	buf_puts(out, ",\"cert_serial\":");
	buf_json_cstr(out, in->cert_serial);
	buf_printf(out, ",\"cert_not_after\":%lld,\"applied_seq\":%lld}",
		   (long long)in->cert_not_after, (long long)in->applied_seq);
}

static void copy_str(char *dst, size_t cap, const struct proto_jv *o, const char *key)
{
	const char *s = proto_jv_get_str(o, key);
	snprintf(dst, cap, "%s", s ? s : "");
}

static int64_t get_int(const struct proto_jv *o, const char *key)
{
	int64_t v = 0;
	if (proto_jv_int(proto_jv_get(o, key), &v) < 0)
		return 0;
	return v;
}

static int get_bool(const struct proto_jv *o, const char *key)
{
	int v = 0;
	if (proto_jv_bool(proto_jv_get(o, key), &v) < 0)
		return 0;
	return v;
}

int fleet_decode(const void *data, size_t len, struct fleet_instance *out)
{
	char err[128];
	struct proto_json *doc = proto_json_parse(data, len, err, sizeof err);
	if (!doc)
		return -1;
	const struct proto_jv *o = proto_json_root(doc);
	memset(out, 0, sizeof *out);
	copy_str(out->id, sizeof out->id, o, "id");
	copy_str(out->name, sizeof out->name, o, "name");
	out->joined = get_bool(o, "joined");
	out->revoked = get_bool(o, "revoked");
	out->created_at = get_int(o, "created_at");
	out->last_seen = get_int(o, "last_seen");
	copy_str(out->agent_version, sizeof out->agent_version, o, "agent_version");
	copy_str(out->addr, sizeof out->addr, o, "addr");
	copy_str(out->cert_serial, sizeof out->cert_serial, o, "cert_serial");
	out->cert_not_after = get_int(o, "cert_not_after");
	out->applied_seq = get_int(o, "applied_seq");
	int ok = fleet_id_valid(out->id);
	proto_json_free(doc);
	return ok ? 0 : -1;
}

int fleet_put(struct store_txn *t, const struct fleet_instance *in)
{
	struct buf b = BUF_INIT;
	fleet_encode(&b, in);
	int rc = store_put(t, db(t, "instances"), in->id, strlen(in->id), b.data, b.len);
	buf_release(&b);
	return rc;
}

int fleet_get(struct store_txn *t, const char *id, struct fleet_instance *out)
{
	const void *v;
	size_t n;
	if (!fleet_id_valid(id))
		return STORE_NOTFOUND;
	int rc = store_get(t, db(t, "instances"), id, strlen(id), &v, &n);
	if (rc != 0)
		return rc;
	if (fleet_decode(v, n, out) < 0) {
		store_txn_fail(t, "fleet: instance '%s': record does not decode", id);
		return -1;
	}
	return 0;
}

int fleet_get_by_name(struct store_txn *t, const char *name, struct fleet_instance *out)
{
	const void *v;
	size_t n;
	char id[FLEET_ID_MAX];
	if (!fleet_name_valid(name))
		return STORE_NOTFOUND;
	int rc = store_get(t, db(t, "instance_names"), name, strlen(name), &v, &n);
	if (rc != 0)
		return rc;
	if (n >= sizeof id)
		return STORE_NOTFOUND;
	memcpy(id, v, n);
	id[n] = 0;
	return fleet_get(t, id, out);
}

char *fleet_join_token_new(struct store_txn *t, struct crypt_rng *rng, const char *id, int64_t now)
{
	char *tok = crypt_token_new(rng, "dpyj_");
	char hash[CRYPT_SHA256_HEX_LEN + 1];
	crypt_token_hash(tok, hash);
	struct buf b = BUF_INIT;
	buf_puts(&b, "{\"id\":");
	buf_json_cstr(&b, id);
	buf_printf(&b, ",\"expires_at\":%lld}", (long long)(now + FLEET_JOIN_TTL));
	int rc = store_put(t, db(t, "join_tokens"), hash, strlen(hash), b.data, b.len);
	buf_release(&b);
	if (rc != 0) {
		crypt_wipe(tok, strlen(tok));
		free(tok);
		return NULL;
	}
	return tok;
}

int fleet_add(struct store_txn *t, struct crypt_rng *rng, const char *name, int64_t now,
	      struct fleet_instance *out, char **join_token, char *err, size_t errlen)
{
	*join_token = NULL;
	if (!fleet_name_valid(name)) {
		snprintf(err, errlen,
			 "instance name '%s' is not a DNS label (1 to 63 of a-z, 0-9 and '-', "
			 "not starting or ending with '-')",
			 name ? name : "");
		return -1;
	}
	memset(out, 0, sizeof *out);
	unsigned char rnd[8];
	for (;;) {
		crypt_random(rng, rnd, sizeof rnd);
		snprintf(out->id, sizeof out->id, "i-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0],
			 rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
		int rc = store_get(t, db(t, "instances"), out->id, strlen(out->id), NULL, NULL);
		if (rc == STORE_NOTFOUND)
			break;
		if (rc < 0)
			goto fail;
	}
	int rc = store_put_noover(t, db(t, "instance_names"), name, strlen(name), out->id,
				  strlen(out->id));
	if (rc == STORE_EXISTS) {
		snprintf(err, errlen, "instance '%s' exists", name);
		return STORE_EXISTS;
	}
	snprintf(out->name, sizeof out->name, "%s", name);
	out->created_at = now;
	if (rc < 0 || fleet_put(t, out) < 0)
		goto fail;
	*join_token = fleet_join_token_new(t, rng, out->id, now);
	if (!*join_token)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "%s", store_txn_error(t));
	return -1;
}

int fleet_join_redeem(struct store_txn *t, const char *token, int64_t now,
		      struct fleet_instance *out)
{
	char hash[CRYPT_SHA256_HEX_LEN + 1], err[64];
	const void *v;
	size_t n;
	if (!token || strncmp(token, "dpyj_", 5) != 0)
		return STORE_NOTFOUND;
	crypt_token_hash(token, hash);
	int jdb = db(t, "join_tokens");
	int rc = store_get(t, jdb, hash, strlen(hash), &v, &n);
	if (rc != 0)
		return rc;
	struct proto_json *doc = proto_json_parse(v, n, err, sizeof err);
	if (!doc) {
		store_txn_fail(t, "fleet: join token record does not decode");
		return -1;
	}
	char id[FLEET_ID_MAX];
	copy_str(id, sizeof id, proto_json_root(doc), "id");
	int64_t exp = get_int(proto_json_root(doc), "expires_at");
	proto_json_free(doc);
	/* Used or expired: either way the token is gone afterwards. */
	if (store_del(t, jdb, hash, strlen(hash)) < 0)
		return -1;
	if (now >= exp)
		return STORE_NOTFOUND;
	rc = fleet_get(t, id, out);
	if (rc != 0)
		return rc;
	if (out->revoked)
		return STORE_NOTFOUND;
	return 0;
}

struct del_tokens {
	const char *id;
	struct store_txn *t;
};

static int del_token_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	struct del_tokens *d = arg;
	char err[64];
	(void)key;
	(void)klen;
	struct proto_json *doc = proto_json_parse(val, vlen, err, sizeof err);
	if (!doc)
		return 0;
	const char *id = proto_jv_get_str(proto_json_root(doc), "id");
	int match = id && strcmp(id, d->id) == 0;
	proto_json_free(doc);
	if (match && store_del(d->t, db(d->t, "join_tokens"), key, klen) < 0)
		return -1;
	return 0;
}

int fleet_revoke(struct store_txn *t, const char *id)
{
	struct fleet_instance in;
	int rc = fleet_get(t, id, &in);
	if (rc != 0)
		return rc;
	if (!in.revoked) {
		const void *v;
		size_t n;
		int ndb = db(t, "instance_names");
		/* Free the name only if it still points at this instance. */
		if (store_get(t, ndb, in.name, strlen(in.name), &v, &n) == 0 &&
		    n == strlen(in.id) && memcmp(v, in.id, n) == 0)
			store_del(t, ndb, in.name, strlen(in.name));
	}
	in.revoked = 1;
	struct del_tokens d = {in.id, t};
	if (store_scan(t, db(t, "join_tokens"), NULL, 0, NULL, 0, 0, del_token_cb, &d) < 0)
		return -1;
	return fleet_put(t, &in);
}

struct fleet_instance *fleet_list(struct store_txn *t, size_t *n)
{
	struct fleet_instance *arr = NULL;
	size_t cap = 0;
	*n = 0;
	struct store_iter *it = store_iter_range(t, db(t, "instances"), NULL, 0, NULL, 0, 0);
	while (store_iter_next(it) == 1) {
		size_t vlen;
		const void *v = store_iter_val(it, &vlen);
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			arr = xrealloc(arr, cap * sizeof *arr);
		}
		if (fleet_decode(v, vlen, &arr[*n]) == 0)
			(*n)++;
	}
	store_iter_free(it);
	if (*n == 0) {
		free(arr);
		return NULL;
	}
	return arr;
}
