/* Fuzz the HTTP parser: the first byte picks requests or responses and the
 * split pattern; the rest is fed in pieces whose sizes come from a simple
 * generator seeded by that byte, pipelining through http_reset(). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned seed = data[0];
	struct http_parser *p = http_new(seed & 1 ? HTTP_RESPONSE : HTTP_REQUEST);
	http_limits(p)->body = 4096;
	http_set_head_request(p, (seed & 6) == 6);
	data++;
	size--;
	size_t off = 0;
	int r = HTTP_MORE;
	struct buf b = BUF_INIT;
	while (off < size && r != HTTP_ERROR) {
		seed = seed * 1103515245u + 12345u;
		size_t piece = (seed >> 16) % 64 + 1;
		if (piece > size - off)
			piece = size - off;
		size_t used = 0;
		r = http_parse(p, data + off, piece, &used);
		if (used > piece)
			__builtin_trap();
		off += used;
		if (r == HTTP_DONE) {
			/* touch everything a caller would */
			size_t blen;
			const char *body = http_body(p, &blen);
			if (body[blen] != 0)
				__builtin_trap();
			for (size_t i = 0; i < http_header_count(p); i++)
				if (!http_header_name(p, i) || !http_header_value(p, i))
					__builtin_trap();
			http_header_has_token(p, "connection", "close");
			if (http_query(p)) {
				buf_reset(&b);
				http_query_param(&b, http_query(p), "a");
				http_pct_decode(&b, http_path(p), strlen(http_path(p)), 0);
			}
			http_keep_alive(p);
			http_reset(p);
			r = HTTP_MORE;
		} else if (r == HTTP_ERROR) {
			int st = http_error_status(p);
			if (st < 400 || st > 505 || !http_error(p)[0])
				__builtin_trap();
		}
	}
	if (r != HTTP_ERROR)
		http_finish(p);
	buf_release(&b);
	http_free(p);
	return 0;
}
