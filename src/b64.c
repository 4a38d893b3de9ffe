#include "b64.h"

#include <stdint.h>
#include <string.h>

#include "buf.h"

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void b64_encode_buf(struct buf *out, const void *p, size_t n, enum b64_alphabet alphabet)
{
	const unsigned char *s = p;
	const char *a = alphabet == B64_URL ? b64_url : b64_std;
	buf_grow(out, B64_LEN(n));
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		char q[4] = { a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], a[v & 63] };
		buf_add(out, q, 4);
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)s[i] << 16;
		char q[4] = { a[v >> 18], a[(v >> 12) & 63], '=', '=' };
		buf_add(out, q, alphabet == B64_URL ? 2 : 4);
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
		char q[4] = { a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], '=' };
		buf_add(out, q, alphabet == B64_URL ? 3 : 4);
	}
}

static int b64_val(char c, enum b64_alphabet alphabet)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (alphabet == B64_URL)
		return c == '-' ? 62 : c == '_' ? 63 : -1;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

int b64_decode_buf(struct buf *out, const char *s, size_t n, enum b64_alphabet alphabet)
{
	size_t pad = 0, start = out->len;
	if (alphabet == B64_STD) {
		if (n % 4 != 0)
			return -1;
		if (n >= 1 && s[n - 1] == '=')
			pad++;
		if (n >= 2 && s[n - 2] == '=')
			pad++;
		n -= pad;
	} else if (n % 4 == 1) {
		return -1;
	}
	/* n data characters: a final group of 2 or 3 characters is 1 or 2 bytes;
	 * with padding, the group length must match the padding. */
	if (pad && (n + pad) % 4 != 0)
		return -1;
	buf_grow(out, n / 4 * 3 + 3);
	uint32_t v = 0;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		int d = b64_val(s[i], alphabet);
		if (d < 0)
			goto bad;
		v = v << 6 | (uint32_t)d;
		if (++k == 4) {
			buf_putc(out, (int)(v >> 16 & 255));
			buf_putc(out, (int)(v >> 8 & 255));
			buf_putc(out, (int)(v & 255));
			v = 0;
			k = 0;
		}
	}
	if (k == 1)
		goto bad;
	if (k == 2) {
		if (v & 15)
			goto bad;
		buf_putc(out, (int)(v >> 4 & 255));
	} else if (k == 3) {
		if (v & 3)
			goto bad;
		buf_putc(out, (int)(v >> 10 & 255));
		buf_putc(out, (int)(v >> 2 & 255));
	}
	if (pad && (k == 0 || 4 - k != pad))
		goto bad;
	return 0;
bad:
	buf_truncate(out, start);
	return -1;
}

void b64_encode(char *out, const void *in, size_t n)
{
	struct buf b = BUF_INIT;
	b64_encode_buf(&b, in, n, B64_STD);
	memcpy(out, b.data, b.len + 1);
	buf_release(&b);
}

int b64_decode(void *out, size_t cap, const char *in, size_t n, size_t *outlen)
{
	struct buf b = BUF_INIT;
	int rc = b64_decode_buf(&b, in, n, B64_STD);
	if (rc == 0 && b.len > cap)
		rc = -1;
	if (rc == 0) {
		memcpy(out, b.data, b.len);
		*outlen = b.len;
	}
	buf_release(&b);
	return rc;
}
