/* b64: base64 (RFC 4648), the one implementation in dployr.
 *
 * Two alphabets: B64_STD ("+/", padded with '=') for WebSocket keys and
 * protocol payloads, and B64_URL ("-_", no padding) for tokens. Decoding is
 * strict: only the canonical encoding is accepted (no whitespace, no
 * misplaced padding, zero padding bits), so a value has one spelling.
 */
#ifndef DPLOYR_B64_H
#define DPLOYR_B64_H

#include <stddef.h>

struct buf;

enum b64_alphabet { B64_STD, B64_URL };

/* Characters b64_encode() writes for n bytes (B64_STD), without the terminator. */
#define B64_LEN(n) ((((n) + 2) / 3) * 4)

/* Append the encoding of p[0..n) to out. */
void b64_encode_buf(struct buf *out, const void *p, size_t n, enum b64_alphabet a);
/* Append the decoding of s[0..n) to out; -1 (out unchanged) on invalid input. */
int b64_decode_buf(struct buf *out, const char *s, size_t n, enum b64_alphabet a);

/* B64_STD into a caller's array of B64_LEN(n) + 1 bytes (NUL-terminated). */
void b64_encode(char *out, const void *in, size_t n);
/* B64_STD into out (room for cap bytes), the length in *outlen; -1 on
 * invalid input or when the result would exceed cap. */
int b64_decode(void *out, size_t cap, const char *in, size_t n, size_t *outlen);

#endif
