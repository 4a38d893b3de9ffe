/* Fuzz crypt's decoders: base64 (both alphabets), hex, the encoded
 * password form, AES-GCM open and envelope open, on hostile input.
 * Properties: an accepted base64/hex text is canonical (re-encoding the
 * result gives the same text), and nothing forged opens. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip(const char *s, size_t n, enum crypt_b64 a)
{
	struct buf d = BUF_INIT, e = BUF_INIT;
	if (crypt_b64_decode(&d, s, n, a) == 0) {
		crypt_b64_encode(&e, d.data, d.len, a);
		if (e.len != n || memcmp(e.data, s, n) != 0)
			abort();
	} else if (d.len != 0) {
		abort();
	}
	buf_release(&d);
	buf_release(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t key[CRYPT_KEY_LEN] = { 1, 2, 3 };
	const char *s = (const char *)data;
	struct buf d = BUF_INIT, e = BUF_INIT;
	char err[200];

	roundtrip(s, size, CRYPT_B64_STD);
	roundtrip(s, size, CRYPT_B64_URL);
	if (crypt_hex_decode(&d, s, size) == 0) {
		crypt_hex_encode(&e, d.data, d.len);
		for (size_t i = 0; i < size; i++)
			if (e.data[i] != (s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 'a' : s[i]))
				abort();
	}
	buf_reset(&d);

	/* the encoded password form: skip large iteration counts (slow, not
	 * interesting: the parser caps them at CRYPT_PBKDF2_ITER_MAX) */
	char *z = strndup(s, size);
	const char *it = strchr(z, '$');
	if (!it || strtoul(it + 1, NULL, 10) <= 100) {
		int r = crypt_password_verify(z, "password");
		if (r < -1 || r > 1)
			abort();
	}
	free(z);

	uint8_t *out = malloc(size + 1);
	if (crypt_open(key, NULL, 0, data, size, out) == 0)
		abort(); /* a forgery under a key the input cannot know */
	free(out);
	if (crypt_envelope_open(key, "ctx", data, size, &d, err, sizeof(err)) == 0)
		abort();
	if (d.len != 0)
		abort();
	buf_release(&d);
	buf_release(&e);
	return 0;
}
