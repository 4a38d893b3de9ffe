/* b64: base64 (RFC 4648, standard alphabet, padded), encode and decode.
 *
 * Used for the WebSocket handshake keys; no line breaks, no whitespace.
 */
#ifndef DPLOYR_B64_H
#define DPLOYR_B64_H

#include <stddef.h>

/* Characters b64_encode() writes for n bytes, without the terminator. */
#define B64_LEN(n) ((((n) + 2) / 3) * 4)

/* Write the encoding of in[0..n) to out, which holds B64_LEN(n) + 1 bytes
 * (the result is NUL-terminated). */
void b64_encode(char *out, const void *in, size_t n);
/* Decode in[0..n) into out (room for cap bytes); stores the decoded length
 * in *outlen. Returns -1 on a length not a multiple of 4, a character
 * outside the alphabet, misplaced padding, non-zero padding bits, or when
 * the result would exceed cap. */
int b64_decode(void *out, size_t cap, const char *in, size_t n, size_t *outlen);

#endif
