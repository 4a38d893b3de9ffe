#include "table.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "xalloc.h"

#define TABLE_MAX_COLS 32

struct table {
	size_t ncols, nrows, cap;
	char **cells; /* (nrows + 1) * ncols, the header first */
	size_t width[TABLE_MAX_COLS];
};

/* A printable copy of s: control characters become '?', "" becomes "-". */
static char *clean(const char *s)
{
	if (!s || !*s)
		return xstrdup("-");
	char *c = xstrdup(s);
	for (char *p = c; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return c;
}

/* Characters of a UTF-8 text (continuation bytes do not count). */
static size_t chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

static void add_row(struct table *t, va_list ap)
{
	XGROW(t->cells, t->cap, (t->nrows + 1) * t->ncols);
	for (size_t i = 0; i < t->ncols; i++) {
		char *c = clean(va_arg(ap, const char *));
		size_t w = chars(c);
		if (w > t->width[i])
			t->width[i] = w;
		t->cells[t->nrows * t->ncols + i] = c;
	}
	t->nrows++;
}

struct table *table_new(size_t ncols, ...)
{
	if (ncols < 1 || ncols > TABLE_MAX_COLS)
		abort();
	struct table *t = xcalloc(1, sizeof(*t));
	t->ncols = ncols;
	va_list ap;
	va_start(ap, ncols);
	add_row(t, ap);
	va_end(ap);
	return t;
}

void table_free(struct table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

void table_add(struct table *t, ...)
{
	va_list ap;
	va_start(ap, t);
	add_row(t, ap);
	va_end(ap);
}

size_t table_rows(const struct table *t)
{
	return t->nrows - 1;
}

void table_print(const struct table *t, FILE *f)
{
	struct buf line = BUF_INIT;
	for (size_t r = 0; r < t->nrows; r++) {
		buf_reset(&line);
		for (size_t i = 0; i < t->ncols; i++) {
			const char *c = t->cells[r * t->ncols + i];
			buf_puts(&line, c);
			if (i + 1 < t->ncols)
				for (size_t pad = chars(c); pad < t->width[i] + 2; pad++)
					buf_putc(&line, ' ');
		}
		buf_putc(&line, '\n');
		fwrite(line.data, 1, line.len, f);
	}
	buf_release(&line);
}
