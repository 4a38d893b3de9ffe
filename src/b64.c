#include "b64.h"

#include <stdint.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void b64_encode(char *out, const void *in, size_t n)
{
	const unsigned char *s = in;
	size_t k = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		out[k++] = alphabet[v >> 18 & 63];
		out[k++] = alphabet[v >> 12 & 63];
		out[k++] = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
		out[k++] = i + 2 < n ? alphabet[v & 63] : '=';
	}
	out[k] = 0;
}

static int val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int b64_decode(void *out, size_t cap, const char *in, size_t n, size_t *outlen)
{
	unsigned char *o = out;
	size_t k = 0;
	if (n % 4)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int pad = 0, d[4];
		for (int j = 0; j < 4; j++) {
			char c = in[i + j];
			if (c == '=' && i + 4 == n && j >= 2 && (j == 3 || in[i + 3] == '=')) {
				d[j] = 0;
				pad++;
				continue;
			}
			if (pad || (d[j] = val(c)) < 0)
				return -1;
		}
		uint32_t v = (uint32_t)d[0] << 18 | (uint32_t)d[1] << 12 | (uint32_t)d[2] << 6 |
			     (uint32_t)d[3];
		if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff)))
			return -1;
		size_t m = 3 - (size_t)pad;
		if (k + m > cap)
			return -1;
		o[k++] = (unsigned char)(v >> 16);
		if (m > 1)
			o[k++] = (unsigned char)(v >> 8);
		if (m > 2)
			o[k++] = (unsigned char)v;
	}
	*outlen = k;
	return 0;
}
