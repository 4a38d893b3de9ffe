/* fleet: the instances (VMs) base knows and their join tokens, in LMDB.
 *
 * Databases (open them with the store, see FLEET_DBS):
 *   instances       instance id -> JSON record (struct fleet_instance)
 *   instance_names  name -> instance id, for the instances not removed
 *   join_tokens     sha256 hex of a join token -> {"id","expires_at"}
 *
 * An instance id is "i-" + 16 lowercase hex digits; a name is a DNS label
 * (1 to 63 of [a-z0-9-], no leading or trailing '-'). A join token is
 * "dpyj_" + base64url of 32 random bytes, single use, valid for
 * FLEET_JOIN_TTL seconds, stored only as its hash.
 *
 * Every function works inside the caller's transaction, so that e.g.
 * redeeming a join token and recording the issued certificate commit
 * together or not at all. Times are unix seconds given by the caller.
 */
#ifndef DPLOYR_FLEET_H
#define DPLOYR_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include "crypt.h"
#include "store.h"

#define FLEET_DBS      "instances", "instance_names", "join_tokens"
#define FLEET_JOIN_TTL (15 * 60)
#define FLEET_ID_MAX   24 /* "i-" + 16 hex, with room and the NUL */
#define FLEET_NAME_MAX 64 /* 63 characters and the NUL */

/* Filled by fleet_get*; written back by fleet_put. */
struct fleet_instance {
	char id[FLEET_ID_MAX];
	char name[FLEET_NAME_MAX];
	int joined;  /* a certificate was issued */
	int revoked; /* removed: its certificate is refused */
	int64_t created_at, last_seen;
	char agent_version[64];
	char addr[64];
	char cert_serial[41]; /* the serial issued last; "" before join */
	int64_t cert_not_after;
	int64_t applied_seq; /* highest agent event seq applied */
};

/* 1 when name is a DNS label, else 0. */
int fleet_name_valid(const char *name);
/* 1 when id has the form of an instance id, else 0. */
int fleet_id_valid(const char *id);

/* Create an instance called name and a join token for it. Returns 0 with
 * *out filled and *join_token (caller frees) set, STORE_EXISTS when the
 * name is taken, or -1 with err (invalid name, store failure). */
int fleet_add(struct store_txn *t, struct crypt_rng *rng, const char *name, int64_t now,
	      struct fleet_instance *out, char **join_token, char *err, size_t errlen);
/* A new join token for an existing instance (replaces none: an instance
 * may have several). Caller frees. NULL on store failure. */
char *fleet_join_token_new(struct store_txn *t, struct crypt_rng *rng, const char *id, int64_t now);
/* Redeem a join token: 0 with the instance in *out (the token is deleted,
 * single use), STORE_NOTFOUND for an unknown, used or expired token or a
 * revoked instance, -1 on store failure. */
int fleet_join_redeem(struct store_txn *t, const char *token, int64_t now,
		      struct fleet_instance *out);

/* 0 and *out, STORE_NOTFOUND, or -1. */
int fleet_get(struct store_txn *t, const char *id, struct fleet_instance *out);
/* By name among the instances not removed. */
int fleet_get_by_name(struct store_txn *t, const char *name, struct fleet_instance *out);
/* Write the record back (0 or -1). */
int fleet_put(struct store_txn *t, const struct fleet_instance *in);
/* Mark the instance removed: revoked, its name freed, its join tokens
 * deleted. 0, STORE_NOTFOUND, or -1. */
int fleet_revoke(struct store_txn *t, const char *id);
/* Every instance (removed ones too), ordered by id; *n set. Caller frees
 * the array. NULL with *n 0 when there are none or on failure. */
struct fleet_instance *fleet_list(struct store_txn *t, size_t *n);

/* The record as JSON text, and back (for tests and the store). */
void fleet_encode(struct buf *out, const struct fleet_instance *in);
int fleet_decode(const void *data, size_t len, struct fleet_instance *out);

#endif
