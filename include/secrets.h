/* secrets: write-only service secrets of base, in LMDB (DESIGN.md section 4).
 *
 * Database (open it with the store, see SECRETS_DBS):
 *   secrets   cluster "/" service "/" name -> JSON {"v":1,"created_ms":..,
 *             "updated_ms":..,"blob":"<base64>"}
 *
 * A value is stored only as crypt_envelope_seal(master, context, value)
 * with context "cluster/service/name" (the key's own text), so a blob
 * copied to another name, service or cluster fails to open. Values are 0
 * to SECRETS_VALUE_MAX bytes without NUL (they end up in a process
 * environment); names follow the blueprint's env names,
 * [A-Za-z_][A-Za-z0-9_]*, at most SECRETS_NAME_MAX characters.
 *
 * Write-only: secrets_list gives names and times, never values. The one
 * way a value leaves is secrets_open_for_agent, for the base to send a
 * service's secrets to its agent inside the mTLS session. Its caller must
 * not log, store or echo the values, and must release them with
 * secrets_pairs_free, which wipes them. Nothing this module reports (error
 * texts, log lines) ever contains a value; names are quoted, values never.
 *
 * Every function works inside the caller's transaction; a stored record
 * that does not decode or open is reported in err without failing the
 * transaction (so it can still be deleted). Times are unix
 * milliseconds given by the caller. Cluster and service names as in
 * deploys.h (1 to 63 of [A-Za-z0-9._-]).
 */
#ifndef DPLOYR_SECRETS_H
#define DPLOYR_SECRETS_H

#include <stddef.h>
#include <stdint.h>

#include "crypt.h"
#include "store.h"

#define SECRETS_DBS	  "secrets"
#define SECRETS_NAME_MAX  128
#define SECRETS_VALUE_MAX ((size_t)64 << 10)

/* What secrets_list tells about a secret. */
struct secrets_meta {
	char name[SECRETS_NAME_MAX + 1];
	int64_t created_ms, updated_ms;
};

/* A decrypted secret: value is NUL-terminated, len bytes without it. */
struct secrets_pair {
	char *name;
	char *value;
	size_t len;
};

/* 1 when name is a valid secret name, else 0. */
int secrets_name_valid(const char *name);

/* Load the master key: path must be a regular file of exactly
 * CRYPT_KEY_LEN bytes, owned by the effective user and not readable,
 * writable or executable by group or others (0600 or 0400). Returns 0, or
 * -1 with the reason in err (key untouched). */
int secrets_master_load(const char *path, uint8_t key[CRYPT_KEY_LEN], char *err, size_t errlen);

/* Create or replace the secret (cluster, service, name) with
 * value[0..len). Keeps created_ms when replacing; updated_ms = now_ms.
 * Returns 0, or -1 with err (bad name, value too large or holding NUL,
 * store failure). */
int secrets_set(struct store_txn *t, struct crypt_rng *rng, const uint8_t master[CRYPT_KEY_LEN],
		const char *cluster, const char *service, const char *name, const void *value,
		size_t len, int64_t now_ms, char *err, size_t errlen);

/* The secrets of a service, ordered by name, without values: 0 with *out
 * (caller frees; NULL when none) and *n, or -1 with err. */
int secrets_list(struct store_txn *t, const char *cluster, const char *service,
		 struct secrets_meta **out, size_t *n, char *err, size_t errlen);

/* Delete: 0, STORE_NOTFOUND (with err), or -1 with err. */
int secrets_delete(struct store_txn *t, const char *cluster, const char *service, const char *name,
		   char *err, size_t errlen);

/* Decrypt every secret of a service for its agent, ordered by name: 0 with
 * *out and *n (release with secrets_pairs_free; NULL and 0 when none), or
 * -1 with err naming the first secret that does not open (then nothing is
 * returned). See the top comment for the caller's duties. */
int secrets_open_for_agent(struct store_txn *t, const uint8_t master[CRYPT_KEY_LEN],
			   const char *cluster, const char *service, struct secrets_pair **out,
			   size_t *n, char *err, size_t errlen);
/* Overwrite every name and value with zeros (crypt_wipe), keeping the
 * memory. */
void secrets_pairs_wipe(struct secrets_pair *pairs, size_t n);
/* Wipe, then free. Accepts NULL. */
void secrets_pairs_free(struct secrets_pair *pairs, size_t n);

#endif
