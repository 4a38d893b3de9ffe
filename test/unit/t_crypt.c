#include "crypt.h"

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "xalloc.h"

static char *hex(const void *p, size_t n)
{
	struct buf b = BUF_INIT;
	crypt_hex_encode(&b, p, n);
	return buf_detach(&b, NULL);
}

#define CHECK_HEX(p, n, want) \
	do { \
		char *h_ = hex((p), (n)); \
		CHECK_STR(h_, want); \
		free(h_); \
	} while (0)

TEST(sha256_sha1_known_answers)
{
	uint8_t h[32];
	char hx[65];
	crypt_sha256("abc", 3, h);
	CHECK_HEX(h, 32, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	crypt_sha256_hex("", 0, hx);
	CHECK_STR(hx, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	crypt_sha1("abc", 3, h);
	CHECK_HEX(h, 20, "a9993e364706816aba3e25717850c26c9cd0d89d");
}

TEST(websocket_accept_key_rfc6455)
{
	const char *k = "dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	uint8_t h[20];
	struct buf b = BUF_INIT;
	crypt_sha1(k, strlen(k), h);
	crypt_b64_encode(&b, h, 20, CRYPT_B64_STD);
	CHECK_STR(b.data, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	buf_release(&b);
}

TEST(hmac_sha256_rfc4231_case2)
{
	uint8_t h[32];
	const char *m = "what do ya want for nothing?";
	crypt_hmac_sha256("Jefe", 4, m, strlen(m), h);
	CHECK_HEX(h, 32, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(pbkdf2_sha256_known_answers)
{
	uint8_t h[32];
	crypt_pbkdf2_sha256("password", 8, "salt", 4, 1, h, 32);
	CHECK_HEX(h, 32, "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b");
	crypt_pbkdf2_sha256("password", 8, "salt", 4, 2, h, 32);
	CHECK_HEX(h, 32, "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43");
	crypt_pbkdf2_sha256("password", 8, "salt", 4, 4096, h, 32);
	CHECK_HEX(h, 32, "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a");
}

TEST(password_hash_and_verify)
{
	struct crypt_rng *rng = crypt_rng_new();
	char *e = crypt_password_hash(rng, "s3cret pass", 1000);
	char *e2 = crypt_password_hash(rng, "s3cret pass", 1000);
	CHECK(strncmp(e, "pbkdf2-sha256$1000$", 19) == 0);
	CHECK(strcmp(e, e2) != 0); /* fresh salt each time */
	CHECK_INT(crypt_password_verify(e, "s3cret pass"), 1);
	CHECK_INT(crypt_password_verify(e2, "s3cret pass"), 1);
	CHECK_INT(crypt_password_verify(e, "s3cret pasS"), 0);
	CHECK_INT(crypt_password_verify(e, ""), 0);

	/* A hash computed elsewhere: Python's
	 * hashlib.pbkdf2_hmac("sha256", b"password", b"salt", 2). */
	CHECK_INT(crypt_password_verify("pbkdf2-sha256$2$c2FsdA==$rk0Mla9rRtMtCt/5KPBt0CowP4"
					"7zwlHf1uLYWpVHTEM=",
					"password"),
		  1);

	const char *bad[] = {
		"",
		"pbkdf2-sha256",
		"pbkdf2-sha1$2$c2FsdA==$rk0Mla9rRtMtCt/5KPBt0CowP47zwlHf1uLYWpVHTEM=",
		"pbkdf2-sha256$0$c2FsdA==$rk0Mla9rRtMtCt/5KPBt0CowP47zwlHf1uLYWpVHTEM=",
		"pbkdf2-sha256$02$c2FsdA==$rk0Mla9rRtMtCt/5KPBt0CowP47zwlHf1uLYWpVHTEM=",
		"pbkdf2-sha256$-2$c2FsdA==$rk0Mla9rRtMtCt/5KPBt0CowP47zwlHf1uLYWpVHTEM=",
		"pbkdf2-sha256$99999999999$c2FsdA==$rk0Mla9rRtMtCt/5KPBt0CowP47zwlHf1uLYWpVHTEM=",
		"pbkdf2-sha256$2x$c2FsdA==$rk0Mla9rRtMtCt/5KPBt0CowP47zwlHf1uLYWpVHTEM=",
		"pbkdf2-sha256$2$c2FsdA=$rk0Mla9rRtMtCt/5KPBt0CowP47zwlHf1uLYWpVHTEM=",
		"pbkdf2-sha256$2$$rk0Mla9rRtMtCt/5KPBt0CowP47zwlHf1uLYWpVHTEM=",
		"pbkdf2-sha256$2$c2FsdA==$rk0Mla9rRtMtCt/5KPBt0CowP47zwlHf1uLYWpVHTE=",
		"pbkdf2-sha256$2$c2FsdA==",
		"pbkdf2-sha256$2$c2FsdA==$rk0Mla9rRtMtCt/5KPBt0CowP47zwlHf1uLYWpVHTEM=$",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(crypt_password_verify(bad[i], "password"), -1);
	free(e);
	free(e2);
	crypt_rng_free(rng);
}

TEST(constant_time_equal)
{
	CHECK_INT(crypt_equal("abcd", "abcd", 4), 1);
	CHECK_INT(crypt_equal("abcd", "abce", 4), 0);
	CHECK_INT(crypt_equal("xbcd", "abcd", 4), 0);
	CHECK_INT(crypt_equal("abcd", "abce", 3), 1);
	CHECK_INT(crypt_equal("", "x", 0), 1);
	uint8_t a[256], b[256];
	memset(a, 0xaa, sizeof(a));
	memcpy(b, a, sizeof(b));
	for (int i = 0; i < 256; i++) {
		for (int bit = 0; bit < 8; bit++) {
			b[i] ^= (uint8_t)(1 << bit);
			CHECK_INT(crypt_equal(a, b, sizeof(a)), 0);
			b[i] ^= (uint8_t)(1 << bit);
		}
	}
	CHECK_INT(crypt_equal(a, b, sizeof(a)), 1);
}

TEST(random_bytes_differ_and_reseed_after_fork)
{
	struct crypt_rng *rng = crypt_rng_new();
	uint8_t a[64], b[64], big[5000];
	crypt_random(rng, a, sizeof(a));
	crypt_random(rng, b, sizeof(b));
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	crypt_random(rng, big, sizeof(big)); /* more than one DRBG request */
	int zeros = 0;
	for (size_t i = 0; i < sizeof(big); i++)
		zeros += big[i] == 0;
	CHECK(zeros < 100); /* ~20 expected */

	/* A forked child must not draw the parent's next bytes. */
	int fds[2];
	CHECK(pipe(fds) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		crypt_random(rng, a, sizeof(a));
		_exit(write(fds[1], a, sizeof(a)) == (ssize_t)sizeof(a) ? 0 : 1);
	}
	uint8_t child[64];
	CHECK_INT(read(fds[0], child, sizeof(child)), sizeof(child));
	int st;
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	crypt_random(rng, a, sizeof(a));
	CHECK(memcmp(a, child, sizeof(a)) != 0);
	close(fds[0]);
	close(fds[1]);
	crypt_rng_free(rng);
	crypt_rng_free(NULL);
}

TEST(aes_gcm_known_answer)
{
	/* McGrew & Viega GCM spec, test case 14: AES-256, zero key and IV. */
	uint8_t key[32] = { 0 }, in[12 + 16 + 16] = { 0 }, out[16];
	struct buf b = BUF_INIT;
	CHECK(crypt_hex_decode(&b, "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919",
			       64) == 0);
	memcpy(in + 12, b.data, 32);
	CHECK(crypt_open(key, NULL, 0, in, sizeof(in), out) == 0);
	uint8_t zero[16] = { 0 };
	CHECK(memcmp(out, zero, 16) == 0);
	in[20] ^= 1;
	CHECK(crypt_open(key, NULL, 0, in, sizeof(in), out) == -1);
	buf_release(&b);
}

TEST(aes_gcm_round_trip_and_tamper_everywhere)
{
	struct crypt_rng *rng = crypt_rng_new();
	uint8_t key[32], key2[32];
	crypt_random(rng, key, sizeof(key));
	memcpy(key2, key, 32);
	key2[31] ^= 0x80;
	const char *msg = "attack at dawn, bring snacks";
	size_t n = strlen(msg), sn = n + CRYPT_SEAL_OVERHEAD;
	uint8_t sealed[128], sealed2[128], out[128];
	crypt_seal(rng, key, "ctx", 3, msg, n, sealed);
	crypt_seal(rng, key, "ctx", 3, msg, n, sealed2);
	CHECK(memcmp(sealed, sealed2, 12) != 0); /* fresh nonce */
	CHECK(memcmp(sealed + 12, msg, n) != 0);
	CHECK(crypt_open(key, "ctx", 3, sealed, sn, out) == 0);
	CHECK(memcmp(out, msg, n) == 0);

	/* every byte of nonce, ciphertext and tag, every bit */
	for (size_t i = 0; i < sn; i++) {
		for (int bit = 0; bit < 8; bit++) {
			sealed[i] ^= (uint8_t)(1 << bit);
			CHECK(crypt_open(key, "ctx", 3, sealed, sn, out) == -1);
			sealed[i] ^= (uint8_t)(1 << bit);
		}
	}
	CHECK(crypt_open(key, "ctX", 3, sealed, sn, out) == -1);
	CHECK(crypt_open(key, "ctx", 2, sealed, sn, out) == -1);
	CHECK(crypt_open(key, NULL, 0, sealed, sn, out) == -1);
	CHECK(crypt_open(key2, "ctx", 3, sealed, sn, out) == -1);
	CHECK(crypt_open(key, "ctx", 3, sealed, sn - 1, out) == -1);
	CHECK(crypt_open(key, "ctx", 3, sealed, 27, out) == -1);
	CHECK(crypt_open(key, "ctx", 3, sealed, 0, out) == -1);
	CHECK(crypt_open(key, "ctx", 3, sealed, sn, out) == 0);

	/* empty plaintext still authenticates */
	crypt_seal(rng, key, NULL, 0, "", 0, sealed);
	CHECK(crypt_open(key, NULL, 0, sealed, CRYPT_SEAL_OVERHEAD, out) == 0);
	sealed[CRYPT_SEAL_OVERHEAD - 1] ^= 1;
	CHECK(crypt_open(key, NULL, 0, sealed, CRYPT_SEAL_OVERHEAD, out) == -1);
	crypt_rng_free(rng);
}

TEST(envelope_round_trip_and_tamper)
{
	struct crypt_rng *rng = crypt_rng_new();
	uint8_t master[32], other[32];
	char err[200];
	crypt_random(rng, master, 32);
	crypt_random(rng, other, 32);
	const char *v = "postgres://u:p@db/x";
	size_t n = strlen(v);
	struct buf blob = BUF_INIT, blob2 = BUF_INIT, out = BUF_INIT;
	buf_puts(&blob, "pre"); /* seal appends */
	crypt_envelope_seal(rng, master, "c/app/DB_URL", v, n, &blob);
	CHECK_INT(blob.len, 3 + n + CRYPT_ENVELOPE_OVERHEAD);
	CHECK_INT(CRYPT_ENVELOPE_OVERHEAD, 89);
	const uint8_t *p = (const uint8_t *)blob.data + 3;
	size_t bn = blob.len - 3;
	CHECK_INT(p[0], 1);
	CHECK(memmem(p, bn, v, n) == NULL);
	CHECK(crypt_envelope_open(master, "c/app/DB_URL", p, bn, &out, err, sizeof(err)) == 0);
	CHECK_INT(out.len, n);
	CHECK_STR(out.data, v);

	/* a fresh data key (and nonces) per value */
	crypt_envelope_seal(rng, master, "c/app/DB_URL", v, n, &blob2);
	CHECK(memcmp(blob2.data, p, bn) != 0);

	uint8_t *t = xmemdup(p, bn);
	for (size_t i = 0; i < bn; i++) {
		t[i] ^= 0x01;
		buf_reset(&out);
		err[0] = 0;
		CHECK(crypt_envelope_open(master, "c/app/DB_URL", t, bn, &out, err, sizeof(err)) ==
		      -1);
		CHECK_INT(out.len, 0);
		CHECK(strstr(err, "open secret: ") == err);
		t[i] ^= 0x01;
	}
	CHECK(crypt_envelope_open(master, "c/app/DB_URLX", t, bn, &out, err, sizeof(err)) == -1);
	CHECK(strstr(err, "authentication failed"));
	CHECK(crypt_envelope_open(other, "c/app/DB_URL", t, bn, &out, err, sizeof(err)) == -1);
	CHECK(crypt_envelope_open(master, "c/app/DB_URL", t, bn - 1, &out, err, sizeof(err)) == -1);
	CHECK(crypt_envelope_open(master, "c/app/DB_URL", t, 50, &out, err, sizeof(err)) == -1);
	CHECK(strstr(err, "truncated"));
	CHECK(crypt_envelope_open(master, "c/app/DB_URL", t, 0, &out, err, sizeof(err)) == -1);
	CHECK_STR(err, "open secret: empty blob");
	t[0] = 2;
	CHECK(crypt_envelope_open(master, "c/app/DB_URL", t, bn, &out, err, sizeof(err)) == -1);
	CHECK_STR(err, "open secret: unknown blob version 2");
	t[0] = 1;
	CHECK(crypt_envelope_open(master, "c/app/DB_URL", t, bn, &out, err, sizeof(err)) == 0);
	CHECK_STR(out.data, v);

	/* empty value, NULL context */
	buf_reset(&blob);
	buf_reset(&out);
	crypt_envelope_seal(rng, master, NULL, "", 0, &blob);
	CHECK(crypt_envelope_open(master, "", blob.data, blob.len, &out, err, sizeof(err)) == 0);
	CHECK_INT(out.len, 0);
	free(t);
	buf_release(&blob);
	buf_release(&blob2);
	buf_release(&out);
	crypt_rng_free(rng);
}

TEST(base64_rfc4648_vectors_and_round_trip)
{
	const char *in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	const char *std[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	const char *url[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" };
	struct buf b = BUF_INIT, d = BUF_INIT;
	for (int i = 0; i < 7; i++) {
		buf_reset(&b);
		crypt_b64_encode(&b, in[i], strlen(in[i]), CRYPT_B64_STD);
		CHECK_STR(b.data, std[i]);
		buf_reset(&d);
		CHECK(crypt_b64_decode(&d, b.data, b.len, CRYPT_B64_STD) == 0);
		CHECK_STR(d.data, in[i]);
		buf_reset(&b);
		crypt_b64_encode(&b, in[i], strlen(in[i]), CRYPT_B64_URL);
		CHECK_STR(b.data, url[i]);
		buf_reset(&d);
		CHECK(crypt_b64_decode(&d, b.data, b.len, CRYPT_B64_URL) == 0);
		CHECK_STR(d.data, in[i]);
	}
	/* all byte values, all lengths up to 70, both alphabets */
	uint8_t all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)(255 - i);
	for (size_t n = 0; n <= 70; n++) {
		for (int a = 0; a < 2; a++) {
			buf_reset(&b);
			buf_reset(&d);
			crypt_b64_encode(&b, all + 180, n, a ? CRYPT_B64_URL : CRYPT_B64_STD);
			CHECK(crypt_b64_decode(&d, b.data, b.len, a ? CRYPT_B64_URL : CRYPT_B64_STD) ==
			      0);
			CHECK_INT(d.len, n);
			CHECK(memcmp(d.data, all + 180, n) == 0);
		}
	}
	buf_reset(&b);
	crypt_b64_encode(&b, "\xfb\xff", 2, CRYPT_B64_STD);
	CHECK_STR(b.data, "+/8=");
	buf_reset(&b);
	crypt_b64_encode(&b, "\xfb\xff", 2, CRYPT_B64_URL);
	CHECK_STR(b.data, "-_8");
	buf_release(&b);
	buf_release(&d);
}

TEST(base64_rejects_invalid_input)
{
	const char *bad_std[] = { "Zg=", "Zg", "Z===", "Zh==", "Zm9=", "Zm8", "Zm9v=",
				  "=Zm9", "Zm=v", "Zm 9v", "Zm9v\n", "-_8=", "Zm9vY===", "Zg==Zg==",
				  "Zm8==" };
	const char *bad_url[] = { "Zg==", "Z", "Zh", "Zm9", "+/8", "Zm9v=", "Zm 9", "Zm9vY" };
	struct buf d = BUF_INIT;
	buf_puts(&d, "keep");
	for (size_t i = 0; i < sizeof(bad_std) / sizeof(bad_std[0]); i++) {
		if (crypt_b64_decode(&d, bad_std[i], strlen(bad_std[i]), CRYPT_B64_STD) != -1)
			harness_fail(__FILE__, __LINE__, "std accepted \"%s\"", bad_std[i]);
		CHECK_STR(d.data, "keep");
	}
	for (size_t i = 0; i < sizeof(bad_url) / sizeof(bad_url[0]); i++) {
		if (crypt_b64_decode(&d, bad_url[i], strlen(bad_url[i]), CRYPT_B64_URL) != -1)
			harness_fail(__FILE__, __LINE__, "url accepted \"%s\"", bad_url[i]);
		CHECK_STR(d.data, "keep");
	}
	CHECK(crypt_b64_decode(&d, "Zm\0v", 4, CRYPT_B64_STD) == -1);
	CHECK_STR(d.data, "keep");
	buf_release(&d);
}

TEST(hex_round_trip_and_rejects_invalid)
{
	struct buf b = BUF_INIT, d = BUF_INIT;
	crypt_hex_encode(&b, "\x00\x01\xab\xff", 4);
	CHECK_STR(b.data, "0001abff");
	CHECK(crypt_hex_decode(&d, "0001ABff", 8) == 0);
	CHECK_INT(d.len, 4);
	CHECK(memcmp(d.data, "\x00\x01\xab\xff", 4) == 0);
	const char *bad[] = { "0", "abc", "0g", "g0", " 00", "0x00", "zz" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(crypt_hex_decode(&d, bad[i], strlen(bad[i])) == -1);
	}
	CHECK_INT(d.len, 4);
	CHECK(crypt_hex_decode(&d, "", 0) == 0);
	CHECK_INT(d.len, 4);
	buf_release(&b);
	buf_release(&d);
}

TEST(tokens_are_random_and_hashed)
{
	struct crypt_rng *rng = crypt_rng_new();
	char *t1 = crypt_token_new(rng, "dpy_"), *t2 = crypt_token_new(rng, "dpy_");
	CHECK_INT(strlen(t1), 4 + 43);
	CHECK(strncmp(t1, "dpy_", 4) == 0);
	CHECK(strcmp(t1, t2) != 0);
	CHECK(strspn(t1 + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
	      43);
	struct buf d = BUF_INIT;
	CHECK(crypt_b64_decode(&d, t1 + 4, 43, CRYPT_B64_URL) == 0);
	CHECK_INT(d.len, 32);
	char h1[65], h2[65], h3[65];
	crypt_token_hash(t1, h1);
	crypt_token_hash(t2, h2);
	crypt_sha256_hex(t1, strlen(t1), h3);
	CHECK_STR(h1, h3);
	CHECK(strcmp(h1, h2) != 0);
	CHECK_INT(strlen(h1), 64);
	buf_release(&d);
	free(t1);
	free(t2);
	crypt_rng_free(rng);
}
