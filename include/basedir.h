/* basedir: base's data directory, created by `dployr base init`.
 *
 *   DIR/            0700
 *     store/        LMDB (BASEDIR_DBS)
 *     ca.key        0600, the cluster CA's P-256 key
 *     ca.crt        the CA certificate (10 years)
 *     server.key    0600
 *     server.crt    base's certificate, signed by the CA, for NAME,
 *                   localhost, 127.0.0.1, ::1 and every --san
 *     master.key    0600, 32 random bytes (envelope encryption of secrets)
 *
 * init also stores the owner's first API token (only its hash) and hands
 * the token back once.
 */
#ifndef DPLOYR_BASEDIR_H
#define DPLOYR_BASEDIR_H

#include <stddef.h>

#include "crypt.h"
#include "pki.h"
#include "store.h"

struct basedir {
	char *path;
	char *ca_pem;
	struct pki_key *ca_key;
	char *server_pem;
	char *server_key_pem; /* wiped on free */
	struct store *store;
};

/* Create the directory (it must be missing or empty). On success returns
 * 0, writes the CA fingerprint and sets *owner_token (caller frees, after
 * crypt_wipe). -1 with err otherwise (an initialised directory is refused:
 * "data directory 'DIR' is already initialised"). */
int basedir_init(const char *path, const char *name, const char *const *sans, size_t nsans,
		 struct crypt_rng *rng, char fingerprint[PKI_FINGERPRINT_LEN + 1],
		 char **owner_token, char *err, size_t errlen);
/* Load an initialised directory and open its store; checks that the
 * server certificate chains to the CA. NULL with err on failure. */
struct basedir *basedir_open(const char *path, char *err, size_t errlen);
/* Accepts NULL. */
void basedir_free(struct basedir *d);

#endif
