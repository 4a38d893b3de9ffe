#include "crypt.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "mbedtls/ctr_drbg.h"
#include "mbedtls/gcm.h"
#include "mbedtls/md.h"
#include "mbedtls/pkcs5.h"
#include "mbedtls/platform_util.h"
#include "mbedtls/sha1.h"
#include "mbedtls/sha256.h"
#include "b64.h"
#include "buf.h"
#include "xalloc.h"

/* Failures of the hash and cipher primitives below can only come from bad
 * parameters (sizes are fixed here) or a missing algorithm in the build's
 * configuration: both are programming errors. */
static void must(int rc, const char *what)
{
	if (rc != 0) {
		fprintf(stderr, "dployr: crypt: %s failed (mbedtls -0x%04x)\n", what,
			(unsigned)-rc);
		abort();
	}
}

/* --- random ------------------------------------------------------------- */

struct crypt_rng {
	mbedtls_ctr_drbg_context drbg;
	int seeded;
	pid_t pid; /* of the process that seeded or last reseeded */
};

/* Entropy source for the DRBG: the kernel's generator. */
static int rng_entropy(void *unused, unsigned char *out, size_t n)
{
	(void)unused;
	while (n > 0) {
		ssize_t r = getrandom(out, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
		}
		out += r;
		n -= (size_t)r;
	}
	return 0;
}

struct crypt_rng *crypt_rng_new(void)
{
	struct crypt_rng *rng = xcalloc(1, sizeof(*rng));
	mbedtls_ctr_drbg_init(&rng->drbg);
	return rng;
}

void crypt_rng_free(struct crypt_rng *rng)
{
	if (!rng)
		return;
	mbedtls_ctr_drbg_free(&rng->drbg);
	free(rng);
}

static void rng_ready(struct crypt_rng *rng)
{
	static const unsigned char pers[] = "dployr crypt_rng";
	pid_t pid = getpid();
	int rc = 0;
	if (!rng->seeded)
		rc = mbedtls_ctr_drbg_seed(&rng->drbg, rng_entropy, NULL, pers, sizeof(pers) - 1);
	else if (rng->pid != pid)
		rc = mbedtls_ctr_drbg_reseed(&rng->drbg, (const unsigned char *)"fork", 4);
	if (rc != 0) {
		fprintf(stderr, "dployr: crypt: cannot seed the random generator: %s\n",
			strerror(errno));
		abort();
	}
	rng->seeded = 1;
	rng->pid = pid;
}

void crypt_random(struct crypt_rng *rng, void *out, size_t n)
{
	unsigned char *p = out;
	rng_ready(rng);
	while (n > 0) {
		size_t k = n < MBEDTLS_CTR_DRBG_MAX_REQUEST ? n : MBEDTLS_CTR_DRBG_MAX_REQUEST;
		if (mbedtls_ctr_drbg_random(&rng->drbg, p, k) != 0) {
			fprintf(stderr, "dployr: crypt: random generator failed\n");
			abort();
		}
		p += k;
		n -= k;
	}
}

int crypt_rng_cb(void *rng, unsigned char *out, size_t n)
{
	crypt_random(rng, out, n);
	return 0;
}

/* --- hashes and MACs ------------------------------------------------------ */

static const char hexdigits[] = "0123456789abcdef";

void crypt_sha256(const void *p, size_t n, uint8_t out[CRYPT_SHA256_LEN])
{
	must(mbedtls_sha256_ret(p, n, out, 0), "sha256");
}

void crypt_sha256_hex(const void *p, size_t n, char out[CRYPT_SHA256_HEX_LEN + 1])
{
	uint8_t h[CRYPT_SHA256_LEN];
	crypt_sha256(p, n, h);
	for (size_t i = 0; i < sizeof(h); i++) {
		out[2 * i] = hexdigits[h[i] >> 4];
		out[2 * i + 1] = hexdigits[h[i] & 15];
	}
	out[CRYPT_SHA256_HEX_LEN] = '\0';
}

void crypt_sha1(const void *p, size_t n, uint8_t out[CRYPT_SHA1_LEN])
{
	must(mbedtls_sha1_ret(p, n, out), "sha1");
}

void crypt_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n,
		       uint8_t out[CRYPT_SHA256_LEN])
{
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	must(mbedtls_md_hmac(md, key, keylen, msg, n, out), "hmac-sha256");
}

int crypt_equal(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char d = 0;
	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

void crypt_wipe(void *p, size_t n)
{
	mbedtls_platform_zeroize(p, n);
}

/* --- passwords ------------------------------------------------------------ */

#define PW_SCHEME "pbkdf2-sha256"
#define PW_SALT_LEN 16

void crypt_pbkdf2_sha256(const void *pw, size_t pwlen, const void *salt, size_t saltlen,
			 unsigned iter, uint8_t *out, size_t outlen)
{
	mbedtls_md_context_t md;
	mbedtls_md_init(&md);
	must(mbedtls_md_setup(&md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1), "md setup");
	must(mbedtls_pkcs5_pbkdf2_hmac(&md, pw, pwlen, salt, saltlen, iter, (uint32_t)outlen, out),
	     "pbkdf2");
	mbedtls_md_free(&md);
}

char *crypt_password_hash(struct crypt_rng *rng, const char *password, unsigned iter)
{
	uint8_t salt[PW_SALT_LEN], hash[CRYPT_SHA256_LEN];
	struct buf b = BUF_INIT;
	if (iter == 0)
		iter = CRYPT_PBKDF2_ITER;
	crypt_random(rng, salt, sizeof(salt));
	crypt_pbkdf2_sha256(password, strlen(password), salt, sizeof(salt), iter, hash,
			    sizeof(hash));
	buf_printf(&b, PW_SCHEME "$%u$", iter);
	crypt_b64_encode(&b, salt, sizeof(salt), CRYPT_B64_STD);
	buf_putc(&b, '$');
	crypt_b64_encode(&b, hash, sizeof(hash), CRYPT_B64_STD);
	crypt_wipe(hash, sizeof(hash));
	return buf_detach(&b, NULL);
}

int crypt_password_verify(const char *encoded, const char *password)
{
	const char *p = encoded, *salt, *hash, *end;
	struct buf s = BUF_INIT, h = BUF_INIT;
	unsigned long iter = 0;
	int rc = -1;

	if (strncmp(p, PW_SCHEME "$", sizeof(PW_SCHEME)) != 0)
		return -1;
	p += sizeof(PW_SCHEME);
	if (*p < '1' || *p > '9')
		return -1;
	while (*p >= '0' && *p <= '9') {
		iter = iter * 10 + (unsigned long)(*p++ - '0');
		if (iter > CRYPT_PBKDF2_ITER_MAX)
			return -1;
	}
	if (*p++ != '$')
		return -1;
	salt = p;
	if (!(hash = strchr(salt, '$')))
		return -1;
	hash++;
	end = hash + strlen(hash);
	if (crypt_b64_decode(&s, salt, (size_t)(hash - 1 - salt), CRYPT_B64_STD) < 0 ||
	    s.len == 0 || crypt_b64_decode(&h, hash, (size_t)(end - hash), CRYPT_B64_STD) < 0 ||
	    h.len != CRYPT_SHA256_LEN)
		goto out;
	uint8_t got[CRYPT_SHA256_LEN];
	crypt_pbkdf2_sha256(password, strlen(password), s.data, s.len, (unsigned)iter, got,
			    sizeof(got));
	rc = crypt_equal(got, h.data, sizeof(got));
	crypt_wipe(got, sizeof(got));
out:
	buf_release(&s);
	buf_release(&h);
	return rc;
}

/* --- AES-256-GCM ------------------------------------------------------------ */

static void gcm_key(mbedtls_gcm_context *gcm, const uint8_t key[CRYPT_KEY_LEN])
{
	mbedtls_gcm_init(gcm);
	must(mbedtls_gcm_setkey(gcm, MBEDTLS_CIPHER_ID_AES, key, CRYPT_KEY_LEN * 8), "gcm setkey");
}

void crypt_seal(struct crypt_rng *rng, const uint8_t key[CRYPT_KEY_LEN], const void *aad,
		size_t aadlen, const void *pt, size_t n, uint8_t *out)
{
	mbedtls_gcm_context gcm;
	gcm_key(&gcm, key);
	crypt_random(rng, out, CRYPT_NONCE_LEN);
	must(mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, n, out, CRYPT_NONCE_LEN, aad,
				       aadlen, pt, out + CRYPT_NONCE_LEN, CRYPT_TAG_LEN,
				       out + CRYPT_NONCE_LEN + n),
	     "gcm encrypt");
	mbedtls_gcm_free(&gcm);
}

int crypt_open(const uint8_t key[CRYPT_KEY_LEN], const void *aad, size_t aadlen,
	       const uint8_t *in, size_t n, uint8_t *out)
{
	mbedtls_gcm_context gcm;
	if (n < CRYPT_SEAL_OVERHEAD)
		return -1;
	size_t len = n - CRYPT_SEAL_OVERHEAD;
	gcm_key(&gcm, key);
	int rc = mbedtls_gcm_auth_decrypt(&gcm, len, in, CRYPT_NONCE_LEN, aad, aadlen,
					  in + CRYPT_NONCE_LEN + len, CRYPT_TAG_LEN,
					  in + CRYPT_NONCE_LEN, out);
	mbedtls_gcm_free(&gcm);
	if (rc != 0) {
		crypt_wipe(out, len);
		return -1;
	}
	return 0;
}

/* --- envelope encryption ----------------------------------------------------- */

#define ENV_WRAPPED_LEN (CRYPT_KEY_LEN + CRYPT_SEAL_OVERHEAD)

static void envelope_aad(struct buf *aad, const char *context)
{
	buf_putc(aad, CRYPT_ENVELOPE_VERSION);
	buf_puts(aad, context ? context : "");
}

void crypt_envelope_seal(struct crypt_rng *rng, const uint8_t master[CRYPT_KEY_LEN],
			 const char *context, const void *value, size_t n, struct buf *out)
{
	uint8_t dek[CRYPT_KEY_LEN];
	struct buf aad = BUF_INIT;
	envelope_aad(&aad, context);
	crypt_random(rng, dek, sizeof(dek));
	buf_grow(out, n + CRYPT_ENVELOPE_OVERHEAD);
	uint8_t *p = (uint8_t *)out->data + out->len;
	p[0] = CRYPT_ENVELOPE_VERSION;
	crypt_seal(rng, master, aad.data, aad.len, dek, sizeof(dek), p + 1);
	crypt_seal(rng, dek, aad.data, aad.len, value, n, p + 1 + ENV_WRAPPED_LEN);
	out->len += n + CRYPT_ENVELOPE_OVERHEAD;
	out->data[out->len] = '\0';
	crypt_wipe(dek, sizeof(dek));
	buf_release(&aad);
}

int crypt_envelope_open(const uint8_t master[CRYPT_KEY_LEN], const char *context,
			const void *blob, size_t n, struct buf *out, char *err, size_t errlen)
{
	const uint8_t *p = blob;
	uint8_t dek[CRYPT_KEY_LEN];
	struct buf aad = BUF_INIT;
	int rc = -1;

	if (n < 1) {
		snprintf(err, errlen, "open secret: empty blob");
		return -1;
	}
	if (p[0] != CRYPT_ENVELOPE_VERSION) {
		snprintf(err, errlen, "open secret: unknown blob version %d", p[0]);
		return -1;
	}
	if (n < CRYPT_ENVELOPE_OVERHEAD) {
		snprintf(err, errlen, "open secret: blob truncated (%zu bytes)", n);
		return -1;
	}
	envelope_aad(&aad, context);
	size_t len = n - CRYPT_ENVELOPE_OVERHEAD;
	if (crypt_open(master, aad.data, aad.len, p + 1, ENV_WRAPPED_LEN, dek) < 0)
		goto fail;
	buf_grow(out, len);
	if (crypt_open(dek, aad.data, aad.len, p + 1 + ENV_WRAPPED_LEN, n - 1 - ENV_WRAPPED_LEN,
		       (uint8_t *)out->data + out->len) < 0)
		goto fail;
	out->len += len;
	out->data[out->len] = '\0';
	rc = 0;
fail:
	if (rc < 0)
		snprintf(err, errlen, "open secret: authentication failed (tampered blob, "
				      "wrong context or wrong master key)");
	crypt_wipe(dek, sizeof(dek));
	buf_release(&aad);
	return rc;
}

/* --- encodings ----------------------------------------------------------------- */

void crypt_b64_encode(struct buf *out, const void *p, size_t n, enum crypt_b64 alphabet)
{
	b64_encode_buf(out, p, n, alphabet == CRYPT_B64_URL ? B64_URL : B64_STD);
}

int crypt_b64_decode(struct buf *out, const char *s, size_t n, enum crypt_b64 alphabet)
{
	return b64_decode_buf(out, s, n, alphabet == CRYPT_B64_URL ? B64_URL : B64_STD);
}

void crypt_hex_encode(struct buf *out, const void *p, size_t n)
{
	const unsigned char *s = p;
	buf_grow(out, 2 * n);
	for (size_t i = 0; i < n; i++) {
		buf_putc(out, hexdigits[s[i] >> 4]);
		buf_putc(out, hexdigits[s[i] & 15]);
	}
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int crypt_hex_decode(struct buf *out, const char *s, size_t n)
{
	size_t start = out->len;
	if (n % 2)
		return -1;
	buf_grow(out, n / 2);
	for (size_t i = 0; i < n; i += 2) {
		int hi = hex_val(s[i]), lo = hex_val(s[i + 1]);
		if (hi < 0 || lo < 0) {
			buf_truncate(out, start);
			return -1;
		}
		buf_putc(out, hi << 4 | lo);
	}
	return 0;
}

/* --- tokens ------------------------------------------------------------------- */

char *crypt_token_new(struct crypt_rng *rng, const char *prefix)
{
	uint8_t r[32];
	struct buf b = BUF_INIT;
	crypt_random(rng, r, sizeof(r));
	buf_puts(&b, prefix ? prefix : "");
	crypt_b64_encode(&b, r, sizeof(r), CRYPT_B64_URL);
	crypt_wipe(r, sizeof(r));
	return buf_detach(&b, NULL);
}

void crypt_token_hash(const char *token, char out[CRYPT_SHA256_HEX_LEN + 1])
{
	crypt_sha256_hex(token, strlen(token), out);
}
