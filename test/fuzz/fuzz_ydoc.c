/* libFuzzer target for ydoc_parse: any bytes, default and tight limits.
 * Walks every tree (aliases expanded) and every problem, reads every scalar
 * through the typed accessors, so a malformed tree or an unbounded
 * expansion shows up as a crash, a sanitizer report or a timeout. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ydoc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t walk(const struct ydoc_node *n, size_t depth, size_t max_depth)
{
	if (!n)
		return 1;
	/* depth: collections enclosing n, which the bound covers */
	if (depth + (n->kind != YDOC_SCALAR) > max_depth)
		__builtin_trap();
	size_t count = 1;
	int b;
	long long i;
	double f;
	switch (n->kind) {
	case YDOC_SCALAR:
		if (n->str[n->len] != '\0')
			__builtin_trap();
		(void)ydoc_get_bool(n, &b);
		(void)ydoc_get_int(n, &i);
		(void)ydoc_get_float(n, &f);
		(void)ydoc_type_name(ydoc_scalar_type(n));
		break;
	case YDOC_SEQ:
		for (size_t k = 0; k < n->n; k++)
			count += walk(n->items[k], depth + 1, max_depth);
		break;
	case YDOC_MAP:
		for (size_t k = 0; k < n->n; k++) {
			count += walk(n->pairs[k].key, depth + 1, max_depth);
			count += walk(n->pairs[k].value, depth + 1, max_depth);
			if (n->pairs[k].key->kind == YDOC_SCALAR) {
				char key[32];
				size_t l = n->pairs[k].key->len < 31 ? n->pairs[k].key->len : 31;
				memcpy(key, n->pairs[k].key->str, l);
				key[l] = '\0';
				(void)ydoc_map_get(n, key);
			}
		}
		break;
	}
	return count;
}

static void run(const uint8_t *data, size_t size, const struct ydoc_limits *lim)
{
	struct ydoc *d = ydoc_parse((const char *)data, size, lim);
	size_t max_nodes = lim ? lim->max_nodes : YDOC_MAX_NODES;
	size_t max_depth = lim ? lim->max_depth : YDOC_MAX_DEPTH;
	size_t total = 0;
	for (size_t i = 0; i < ydoc_ndocs(d); i++)
		total += walk(ydoc_root(d, i), 0, max_depth);
	/* the expanded size is bounded */
	if (total > max_nodes)
		__builtin_trap();
	for (size_t i = 0; i < ydoc_nproblems(d); i++) {
		const struct ydoc_problem *p = ydoc_problem(d, i);
		if (!p->msg || !p->rule || p->line < 1 || p->col < 1)
			__builtin_trap();
	}
	ydoc_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct ydoc_limits tight = {4096, 8, 200};
	run(data, size, NULL);
	run(data, size, &tight);
	return 0;
}
