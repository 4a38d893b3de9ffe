/* ydoc-dump FILE: print each YAML document of FILE as one line of JSON.
 *
 * A test tool (for the crosscheck against PyYAML in test/e2e): scalars are
 * resolved with ydoc_scalar_type (null, bool, int, float, string), floats
 * always carry a '.' or an exponent so they read back as floats, infinities
 * and NaN are written as Python's json module does (Infinity, -Infinity,
 * NaN). Mapping keys are written as their scalar text. Aliases are expanded.
 * Problems go to stderr as FILE:LINE:COL: MESSAGE [RULE], and the exit
 * status is then 1 (2: usage or unreadable file).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ydoc.h"

static void dump(struct buf *o, const struct ydoc_node *n);

static void dump_scalar(struct buf *o, const struct ydoc_node *n)
{
	int bv;
	long long iv;
	double fv;
	switch (ydoc_scalar_type(n)) {
	case YDOC_T_NULL:
		buf_puts(o, "null");
		return;
	case YDOC_T_BOOL:
		if (ydoc_get_bool(n, &bv) == 0) {
			buf_puts(o, bv ? "true" : "false");
			return;
		}
		break;
	case YDOC_T_INT:
		if (ydoc_get_int(n, &iv) == 0) {
			buf_printf(o, "%lld", iv);
			return;
		}
		break;
	case YDOC_T_FLOAT:
		if (ydoc_get_float(n, &fv) == 0) {
			if (isnan(fv)) {
				buf_puts(o, "NaN");
			} else if (isinf(fv)) {
				buf_puts(o, fv < 0 ? "-Infinity" : "Infinity");
			} else {
				/* the shortest text that reads back the same */
				char t[64];
				for (int prec = 15; prec <= 17; prec++) {
					snprintf(t, sizeof(t), "%.*g", prec, fv);
					if (strtod(t, NULL) == fv)
						break;
				}
				size_t at = o->len;
				buf_puts(o, t);
				if (!strpbrk(o->data + at, ".e"))
					buf_puts(o, ".0");
			}
			return;
		}
		break;
	case YDOC_T_STR:
		break;
	}
	/* a tagged scalar whose text does not fit its tag, or an int out of
	 * range: show the text */
	buf_json_str(o, n->str, n->len);
}

static void dump(struct buf *o, const struct ydoc_node *n)
{
	if (!n) {
		buf_puts(o, "null");
		return;
	}
	switch (n->kind) {
	case YDOC_SCALAR:
		dump_scalar(o, n);
		break;
	case YDOC_SEQ:
		buf_putc(o, '[');
		for (size_t i = 0; i < n->n; i++) {
			if (i)
				buf_puts(o, ", ");
			dump(o, n->items[i]);
		}
		buf_putc(o, ']');
		break;
	case YDOC_MAP:
		buf_putc(o, '{');
		for (size_t i = 0; i < n->n; i++) {
			const struct ydoc_node *k = n->pairs[i].key;
			if (i)
				buf_puts(o, ", ");
			if (k && k->kind == YDOC_SCALAR) {
				buf_json_str(o, k->str, k->len);
			} else {
				struct buf kb = BUF_INIT;
				dump(&kb, k);
				buf_json_str(o, kb.data, kb.len);
				buf_release(&kb);
			}
			buf_puts(o, ": ");
			dump(o, n->pairs[i].value);
		}
		buf_putc(o, '}');
		break;
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: ydoc-dump FILE\n");
		return 2;
	}
	struct buf in = BUF_INIT;
	char err[512];
	/* read more than ydoc accepts, so that ydoc reports the size bound */
	if (buf_read_file(&in, argv[1], 4 * YDOC_MAX_BYTES, err, sizeof(err)) < 0) {
		fprintf(stderr, "ydoc-dump: %s\n", err);
		buf_release(&in);
		return 2;
	}
	struct ydoc *d = ydoc_parse(in.data, in.len, NULL);
	struct buf o = BUF_INIT;
	for (size_t i = 0; i < ydoc_ndocs(d); i++) {
		dump(&o, ydoc_root(d, i));
		buf_putc(&o, '\n');
	}
	fwrite(o.data, 1, o.len, stdout);
	for (size_t i = 0; i < ydoc_nproblems(d); i++) {
		const struct ydoc_problem *p = ydoc_problem(d, i);
		fprintf(stderr, "%s:%d:%d: %s [%s]\n", argv[1], p->line, p->col, p->msg, p->rule);
	}
	int rc = ydoc_nproblems(d) ? 1 : 0;
	buf_release(&o);
	buf_release(&in);
	ydoc_free(d);
	return rc;
}
