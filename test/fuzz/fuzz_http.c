/* Fuzz the HTTP parser: the first byte picks requests or responses, HEAD
 * mode and the split pattern. The rest is parsed twice, whole and in
 * pieces whose sizes come from a generator seeded by that byte, pipelining
 * through http_reset(); both runs must see the same messages and the same
 * error (the parser is incremental: splits must not change the outcome). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 1099511628211u;
	return h;
}

static uint64_t mix_str(uint64_t h, const char *s)
{
	return s ? mix(h, s, strlen(s) + 1) : mix(h, "\xff", 1);
}

/* Parse everything; returns a digest of the messages and the outcome. */
static uint64_t run(unsigned seed, int whole, const uint8_t *data, size_t size)
{
	struct http_parser *p = http_new(seed & 1 ? HTTP_RESPONSE : HTTP_REQUEST);
	/* small limits, so short inputs reach them and their interplay */
	http_limits(p)->start_line = 300;
	http_limits(p)->header_line = 200;
	http_limits(p)->head = 1024;
	http_limits(p)->headers = 20;
	http_limits(p)->body = 4096;
	http_limits(p)->trailers = 300;
	http_set_head_request(p, (seed & 6) == 6);
	struct buf b = BUF_INIT;
	uint64_t h = 14695981039346656037u;
	size_t off = 0;
	int r = HTTP_MORE;
	while (off < size && r != HTTP_ERROR) {
		seed = seed * 1103515245u + 12345u;
		size_t piece = whole ? size - off : (seed >> 16) % 64 + 1;
		if (piece > size - off)
			piece = size - off;
		size_t used = 0;
		r = http_parse(p, data + off, piece, &used);
		if (used > piece || (r == HTTP_MORE && used != piece))
			__builtin_trap();
		off += used;
		if (r == HTTP_DONE) {
			size_t blen;
			const char *body = http_body(p, &blen);
			if (body[blen] != 0)
				__builtin_trap();
			h = mix(h, body, blen);
			h = mix_str(h, http_method(p));
			h = mix_str(h, http_target(p));
			h = mix_str(h, http_reason(p));
			h = mix(h, &(int){http_status(p)}, sizeof(int));
			h = mix(h, &(int){http_keep_alive(p)}, sizeof(int));
			for (size_t i = 0; i < http_header_count(p); i++) {
				h = mix_str(h, http_header_name(p, i));
				h = mix_str(h, http_header_value(p, i));
			}
			if (http_query(p)) {
				buf_reset(&b);
				h = mix(h, &(int){http_query_param(&b, http_query(p), "a")}, sizeof(int));
				http_pct_decode(&b, http_path(p), strlen(http_path(p)), 0);
				h = mix(h, b.data, b.len);
			}
			http_reset(p);
			r = HTTP_MORE;
		}
	}
	if (r != HTTP_ERROR)
		r = http_finish(p);
	h = mix(h, &r, sizeof(r));
	if (r == HTTP_ERROR) {
		int st = http_error_status(p);
		if (st < 400 || st > 505 || !http_error(p)[0])
			__builtin_trap();
		h = mix(h, &st, sizeof(st));
		h = mix_str(h, http_error(p));
	}
	buf_release(&b);
	http_free(p);
	return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (run(data[0], 1, data + 1, size - 1) != run(data[0], 0, data + 1, size - 1))
		__builtin_trap();
	return 0;
}
