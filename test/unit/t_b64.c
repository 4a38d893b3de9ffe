#include "b64.h"

#include <string.h>

#include "harness.h"

TEST(b64_rfc4648_vectors)
{
	static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	for (int i = 0; i < 7; i++) {
		char out[16], dec[16];
		size_t n = strlen(plain[i]), len = 99;
		b64_encode(out, plain[i], n);
		CHECK_STR(out, enc[i]);
		CHECK_INT(strlen(out), B64_LEN(n));
		CHECK_INT(b64_decode(dec, sizeof(dec), enc[i], strlen(enc[i]), &len), 0);
		CHECK_INT(len, n);
		CHECK(memcmp(dec, plain[i], n) == 0);
	}
}

TEST(b64_binary_roundtrip)
{
	unsigned char in[256], dec[256];
	char out[B64_LEN(256) + 1];
	for (int i = 0; i < 256; i++)
		in[i] = (unsigned char)(255 - i);
	for (size_t n = 0; n <= 256; n += 17) {
		size_t len;
		b64_encode(out, in, n);
		CHECK_INT(b64_decode(dec, sizeof(dec), out, strlen(out), &len), 0);
		CHECK_INT(len, n);
		CHECK(memcmp(dec, in, n) == 0);
	}
}

TEST(b64_rejects_bad_input)
{
	char dec[32];
	size_t len;
	const char *bad[] = {"Zg=", "Zg", "Z===", "Zm9v\n", "Zm 9", "Zm9!", "Zg==Zg==", "=Zg=",
			     "Zh==", "Zm9=", "Zm=v"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (b64_decode(dec, sizeof(dec), bad[i], strlen(bad[i]), &len) != -1)
			harness_fail(__FILE__, __LINE__, "accepted '%s'", bad[i]);
	/* output bound */
	CHECK_INT(b64_decode(dec, 5, "Zm9vYmFy", 8, &len), -1);
	CHECK_INT(b64_decode(dec, 6, "Zm9vYmFy", 8, &len), 0);
}
