/* crypt: random bytes, hashes, password hashing, AES-256-GCM, envelope
 * encryption of secrets, base64/hex and API tokens.
 *
 * The only module that includes libmbedcrypto's symmetric and hash code
 * (pki.c and tls.c wrap the X.509 and TLS parts). No mbedTLS type or error
 * code appears here.
 *
 * Random numbers come from a struct crypt_rng the caller creates and passes
 * down (no hidden global generator): a CTR-DRBG (AES-256) seeded lazily, on
 * first use, from getrandom(2), reseeded by the DRBG's own interval and
 * whenever it notices it runs in a forked child (a new pid), so parent and
 * child never share a stream. A crypt_rng is not thread-safe (dployr has no
 * threads). Entropy that cannot be read is fatal, like out of memory: a
 * system without getrandom cannot run dployr safely.
 *
 * Every function that writes a fixed-size result takes the output array;
 * everything else appends to a struct buf the caller owns, or returns a
 * malloc'ed string the caller frees.
 */
#ifndef DPLOYR_CRYPT_H
#define DPLOYR_CRYPT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define CRYPT_SHA256_LEN 32
#define CRYPT_SHA256_HEX_LEN 64 /* plus the terminator: char[65] */
#define CRYPT_SHA1_LEN 20
#define CRYPT_KEY_LEN 32   /* AES-256 */
#define CRYPT_NONCE_LEN 12 /* GCM nonce, random per message */
#define CRYPT_TAG_LEN 16
#define CRYPT_SEAL_OVERHEAD (CRYPT_NONCE_LEN + CRYPT_TAG_LEN)

/* --- random ------------------------------------------------------------- */

struct crypt_rng;

/* Cheap: nothing is seeded until the first bytes are drawn. */
struct crypt_rng *crypt_rng_new(void);
void crypt_rng_free(struct crypt_rng *rng);
/* Fill out[0..n) with random bytes; aborts if no entropy can be read. */
void crypt_random(struct crypt_rng *rng, void *out, size_t n);
/* The same with the shape of mbedTLS's f_rng (void *rng = struct crypt_rng),
 * for pki.c and tls.c: returns 0, never fails (see above). */
int crypt_rng_cb(void *rng, unsigned char *out, size_t n);

/* --- hashes and MACs ------------------------------------------------------ */

void crypt_sha256(const void *p, size_t n, uint8_t out[CRYPT_SHA256_LEN]);
/* Lowercase hex of the SHA-256, NUL-terminated. */
void crypt_sha256_hex(const void *p, size_t n, char out[CRYPT_SHA256_HEX_LEN + 1]);
/* SHA-1, for the WebSocket accept key (RFC 6455) only: not for security. */
void crypt_sha1(const void *p, size_t n, uint8_t out[CRYPT_SHA1_LEN]);
void crypt_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n,
		       uint8_t out[CRYPT_SHA256_LEN]);
/* 1 when a[0..n) equals b[0..n), else 0, in time that depends on n only. */
int crypt_equal(const void *a, const void *b, size_t n);
/* Overwrite p[0..n) with zeros in a way the compiler cannot drop. */
void crypt_wipe(void *p, size_t n);

/* --- passwords ------------------------------------------------------------ */

/* OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256. */
#define CRYPT_PBKDF2_ITER 600000
/* Upper bound accepted when verifying an encoded hash (a hostile stored
 * value must not pin the CPU for minutes). */
#define CRYPT_PBKDF2_ITER_MAX 10000000

/* Raw PBKDF2-HMAC-SHA256 (RFC 8018) of outlen bytes; iter >= 1. */
void crypt_pbkdf2_sha256(const void *pw, size_t pwlen, const void *salt, size_t saltlen,
			 unsigned iter, uint8_t *out, size_t outlen);
/* Hash a password with a fresh 16-byte salt into the compact encoded form
 * "pbkdf2-sha256$ITER$SALT$HASH" (SALT, HASH: standard base64, padded;
 * HASH is 32 bytes). iter 0 means CRYPT_PBKDF2_ITER. Caller frees. */
char *crypt_password_hash(struct crypt_rng *rng, const char *password, unsigned iter);
/* 1: password matches encoded; 0: it does not; -1: encoded is malformed
 * (unknown scheme, bad number, bad base64, iterations out of range).
 * The comparison is constant-time. */
int crypt_password_verify(const char *encoded, const char *password);

/* --- AES-256-GCM ------------------------------------------------------------ */

/* Encrypt pt[0..n) with a fresh random nonce. Writes n + CRYPT_SEAL_OVERHEAD
 * bytes to out: nonce (12) || ciphertext (n) || tag (16). aad (may be NULL
 * with aadlen 0) is authenticated, not encrypted. */
void crypt_seal(struct crypt_rng *rng, const uint8_t key[CRYPT_KEY_LEN], const void *aad,
		size_t aadlen, const void *pt, size_t n, uint8_t *out);
/* Reverse crypt_seal: in[0..n) -> out (n - CRYPT_SEAL_OVERHEAD bytes).
 * -1 when n is too short or the tag does not match (any change to nonce,
 * ciphertext, tag or aad, or the wrong key); out is zeroed then. */
int crypt_open(const uint8_t key[CRYPT_KEY_LEN], const void *aad, size_t aadlen,
	       const uint8_t *in, size_t n, uint8_t *out);

/* --- envelope encryption of secrets (DESIGN.md section 4) ------------------ */

/* Blob format, version 1, all binary:
 *
 *   0x01 | wrapped data key (60) | value nonce (12) | ciphertext | tag (16)
 *
 * where "wrapped data key" is crypt_seal(master, aad = A, data key) and the
 * value is crypt_seal(data key, aad = A, value), A = version byte || context.
 * A fresh random 32-byte data key is drawn per value. context (NULL means
 * "") names what the value belongs to (for example "cluster/app/DB_URL") so
 * a blob cannot be moved to another name unnoticed. */
#define CRYPT_ENVELOPE_VERSION 1
#define CRYPT_ENVELOPE_OVERHEAD (1 + CRYPT_SEAL_OVERHEAD + CRYPT_KEY_LEN + CRYPT_SEAL_OVERHEAD)

/* Appends the blob (n + CRYPT_ENVELOPE_OVERHEAD bytes) to out. */
void crypt_envelope_seal(struct crypt_rng *rng, const uint8_t master[CRYPT_KEY_LEN],
			 const char *context, const void *value, size_t n, struct buf *out);
/* Appends the value to out, or returns -1 with a reason in err (unknown
 * version, truncated, or authentication failed: tampered, other context or
 * wrong master key) and leaves out unchanged. */
int crypt_envelope_open(const uint8_t master[CRYPT_KEY_LEN], const char *context,
			const void *blob, size_t n, struct buf *out, char *err, size_t errlen);

/* --- encodings ----------------------------------------------------------------- */

enum crypt_b64 {
	CRYPT_B64_STD, /* RFC 4648 section 4, '+' '/', padded with '=' */
	CRYPT_B64_URL, /* RFC 4648 section 5, '-' '_', no padding */
};

/* Append the encoding of p[0..n) to out. */
void crypt_b64_encode(struct buf *out, const void *p, size_t n, enum crypt_b64 alphabet);
/* Append the decoding of s[0..n) to out. Strict: -1 (out unchanged) on a
 * character outside the alphabet, whitespace, wrong or missing padding
 * (STD), any padding (URL), an impossible length or non-zero unused bits. */
int crypt_b64_decode(struct buf *out, const char *s, size_t n, enum crypt_b64 alphabet);
/* Lowercase hex. */
void crypt_hex_encode(struct buf *out, const void *p, size_t n);
/* Either case; -1 (out unchanged) on an odd length or a non-hex digit. */
int crypt_hex_decode(struct buf *out, const char *s, size_t n);

/* --- tokens ------------------------------------------------------------------- */

/* A new secret token: prefix (for example "dpy_") + base64url of 32 random
 * bytes (43 characters). Caller frees. */
char *crypt_token_new(struct crypt_rng *rng, const char *prefix);
/* What is stored for a token: lowercase hex SHA-256 of its text. Tokens
 * carry 256 random bits, so a plain hash (no salt, no stretching) is enough
 * and allows lookup by hash. */
void crypt_token_hash(const char *token, char out[CRYPT_SHA256_HEX_LEN + 1]);

#endif
