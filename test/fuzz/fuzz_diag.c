/* Fuzz the renderings of findings: arbitrary bytes as file names and
 * messages must never break a format's framing. Checked here: text and
 * GitHub output have exactly one line per finding, JSON and SARIF output
 * is pure ASCII-or-valid-UTF-8 with no raw control characters. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "diag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct diag_rule rules[] = {
    {"yaml-syntax", DIAG_ERROR, "the file is not valid YAML"},
    {"no-health-check", DIAG_WARNING, "a web service without a health check"},
};

static size_t count_lines(const struct buf *b)
{
	size_t n = 0;
	for (size_t i = 0; i < b->len; i++)
		n += b->data[i] == '\n';
	return n;
}

/* Valid UTF-8 with no control character other than \n. */
static void check_json_text(const struct buf *b)
{
	const unsigned char *p = (const unsigned char *)b->data, *end = p + b->len;
	while (p < end) {
		if (*p < 0x80) {
			if (*p < 0x20 && *p != '\n')
				abort();
			p++;
			continue;
		}
		size_t n = (*p & 0xe0) == 0xc0	 ? 2
			   : (*p & 0xf0) == 0xe0 ? 3
			   : (*p & 0xf8) == 0xf0 ? 4
						 : 0;
		if (n == 0 || (size_t)(end - p) < n)
			abort();
		for (size_t i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80)
				abort();
		p += n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* input: records "file\0message\0", up to 16 of them */
	struct diag_list l;
	diag_list_init(&l);
	size_t off = 0;
	for (int k = 0; k < 16 && off < size; k++) {
		const char *file = (const char *)data + off;
		size_t fl = strnlen(file, size - off);
		off += fl + 1;
		if (off >= size)
			break;
		const char *msg = (const char *)data + off;
		size_t ml = strnlen(msg, size - off);
		char *f = strndup(file, fl), *m = strndup(msg, ml);
		off += ml + 1;
		diag_add(&l, f, (int)(fl % 7) - 1, (int)(ml % 5),
			 (k & 1) ? DIAG_WARNING : DIAG_ERROR, (k & 2) ? "yaml-syntax" : "other",
			 "%s", m);
		free(f);
		free(m);
	}
	diag_sort(&l);
	struct buf b = BUF_INIT;
	diag_render(&l, DIAG_TEXT, rules, 2, "0", &b);
	if (count_lines(&b) != l.n)
		abort();
	buf_reset(&b);
	diag_render(&l, DIAG_GITHUB, rules, 2, "0", &b);
	if (count_lines(&b) != l.n)
		abort();
	buf_reset(&b);
	diag_render(&l, DIAG_JSON, rules, 2, "0", &b);
	check_json_text(&b);
	if (count_lines(&b) != l.n + (l.n ? 2 : 1))
		abort();
	buf_reset(&b);
	diag_render(&l, DIAG_SARIF, rules, 2, "0", &b);
	check_json_text(&b);
	buf_release(&b);
	diag_list_release(&l);
	return 0;
}
