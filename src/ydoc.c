#include "ydoc.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "xalloc.h"

/* --- arena: everything a struct ydoc hands out lives in it ------------- */

struct arena_block {
	struct arena_block *next;
	size_t used, cap;
	alignas(max_align_t) char data[];
};

struct arena {
	struct arena_block *head;
};

#define ARENA_BLOCK 65536

static void *arena_alloc(struct arena *a, size_t n)
{
	const size_t al = alignof(max_align_t);
	n = (n + al - 1) & ~(al - 1);
	struct arena_block *b = a->head;
	if (!b || b->cap - b->used < n) {
		size_t cap = n > ARENA_BLOCK / 4 ? n : ARENA_BLOCK;
		struct arena_block *nb = xmalloc(sizeof(*nb) + cap);
		nb->used = 0;
		nb->cap = cap;
		if (b && cap != ARENA_BLOCK) {
			/* a big one-off goes behind the current block, which
			 * stays in use for small allocations */
			nb->next = b->next;
			b->next = nb;
			nb->used = n;
			return nb->data;
		}
		nb->next = b;
		a->head = b = nb;
	}
	void *p = b->data + b->used;
	b->used += n;
	return p;
}

static char *arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);
	if (n)
		memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static char *arena_printf(struct arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static char *arena_printf(struct arena *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *tmp = xvasprintf(fmt, ap);
	va_end(ap);
	char *p = arena_strndup(a, tmp, strlen(tmp));
	free(tmp);
	return p;
}

static void arena_release(struct arena *a)
{
	while (a->head) {
		struct arena_block *b = a->head;
		a->head = b->next;
		free(b);
	}
}

struct ydoc {
	struct arena arena;
	struct ydoc_node **docs;
	size_t ndocs, capdocs;
	struct ydoc_problem *problems;
	size_t nproblems, capproblems;
};

/* --- the builder: parser events to nodes, within bounds -------------------- */

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 1099511628211ull;
	}
	return h;
}

#define HASH_SEED 14695981039346656037ull

/* A completed anchored node, by name (open addressing, never deleted
 * within a document). */
struct anchor {
	char *name; /* NULL: free slot */
	struct ydoc_node *node;
	size_t size;   /* nodes in its subtree, aliases expanded */
	size_t height; /* collections nested in it, 0 for a scalar */
	uint64_t seq;  /* when its node started */
};

/* A scalar key seen in the mapping with serial map. */
struct seen_key {
	uint64_t map; /* 0: free slot */
	const struct ydoc_node *key;
	int line, col;
};

/* An open collection. */
struct frame {
	struct ydoc_node *node;
	struct ydoc_node **items; /* sequence items */
	struct ydoc_pair *pairs;  /* mapping pairs */
	size_t n, capitems, cappairs;
	size_t size, height;
	char *anchor; /* owned; NULL if none */
	uint64_t seq, map;
	struct ydoc_node *key; /* mapping: key waiting for its value */
	int key_dup;	       /* ... and it repeats an earlier key: drop the pair */
	int key_line, key_col;
};

struct builder {
	struct ydoc *d;
	const char *data;
	size_t len;
	struct ydoc_limits lim;
	struct frame *frames;
	size_t nframes, capframes;
	size_t total; /* nodes so far in the stream, aliases expanded */
	uint64_t seq, maps;
	struct anchor *anchors;
	size_t nanchors, capanchors; /* capanchors: 0 or a power of two */
	struct seen_key *keys;
	size_t nkeys, capkeys;
	struct ydoc_node *root;
	int have_root;
	int stop;
};

static void problem(struct ydoc *d, int line, int col, const char *rule, char *msg)
{
	XGROW(d->problems, d->capproblems, d->nproblems + 1);
	struct ydoc_problem *p = &d->problems[d->nproblems++];
	p->line = line;
	p->col = col;
	p->rule = rule;
	p->msg = msg;
}

static void stop_at(struct builder *b, const yaml_mark_t *m, const char *rule, char *msg)
{
	problem(b->d, (int)m->line + 1, (int)m->column + 1, rule, msg);
	b->stop = 1;
}

static size_t add_sat(size_t a, size_t b)
{
	return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static struct anchor *anchor_slot(struct builder *b, const char *name)
{
	size_t mask = b->capanchors - 1;
	size_t i = (size_t)hash_bytes(HASH_SEED, name, strlen(name)) & mask;
	while (b->anchors[i].name && strcmp(b->anchors[i].name, name) != 0)
		i = (i + 1) & mask;
	return &b->anchors[i];
}

static const struct anchor *anchor_find(struct builder *b, const char *name)
{
	if (!b->capanchors)
		return NULL;
	struct anchor *a = anchor_slot(b, name);
	return a->name ? a : NULL;
}

static void anchor_put(struct builder *b, char *name, struct ydoc_node *node, size_t size,
		       size_t height, uint64_t seq)
{
	if (2 * (b->nanchors + 1) > b->capanchors) {
		struct anchor *old = b->anchors;
		size_t oldcap = b->capanchors;
		b->capanchors = oldcap ? 2 * oldcap : 16;
		b->anchors = xcalloc(b->capanchors, sizeof(*b->anchors));
		for (size_t i = 0; i < oldcap; i++)
			if (old[i].name)
				*anchor_slot(b, old[i].name) = old[i];
		free(old);
	}
	struct anchor *a = anchor_slot(b, name);
	if (a->name)
		free(a->name); /* redefined: the later one wins */
	else
		b->nanchors++;
	a->name = name;
	a->node = node;
	a->size = size;
	a->height = height;
	a->seq = seq;
}

static void anchors_clear(struct builder *b)
{
	for (size_t i = 0; i < b->capanchors; i++) {
		free(b->anchors[i].name);
		b->anchors[i].name = NULL;
	}
	b->nanchors = 0;
}

static uint64_t key_hash(uint64_t map, const struct ydoc_node *k)
{
	return hash_bytes(hash_bytes(HASH_SEED, &map, sizeof(map)), k->str, k->len);
}

static struct seen_key *key_slot(struct builder *b, uint64_t map, const struct ydoc_node *k)
{
	size_t mask = b->capkeys - 1;
	size_t i = (size_t)key_hash(map, k) & mask;
	for (;;) {
		struct seen_key *s = &b->keys[i];
		if (!s->map)
			return s;
		if (s->map == map && s->key->len == k->len &&
		    memcmp(s->key->str, k->str, k->len) == 0)
			return s;
		i = (i + 1) & mask;
	}
}

/* The first occurrence of scalar key k in mapping map, or NULL after
 * recording this one as the first. */
static const struct seen_key *key_seen(struct builder *b, uint64_t map, const struct ydoc_node *k,
				       int line, int col)
{
	if (2 * (b->nkeys + 1) > b->capkeys) {
		struct seen_key *old = b->keys;
		size_t oldcap = b->capkeys;
		b->capkeys = oldcap ? 2 * oldcap : 64;
		b->keys = xcalloc(b->capkeys, sizeof(*b->keys));
		for (size_t i = 0; i < oldcap; i++)
			if (old[i].map)
				*key_slot(b, old[i].map, old[i].key) = old[i];
		free(old);
	}
	struct seen_key *s = key_slot(b, map, k);
	if (s->map)
		return s;
	s->map = map;
	s->key = k;
	s->line = line;
	s->col = col;
	b->nkeys++;
	return NULL;
}

static void keys_clear(struct builder *b)
{
	if (b->capkeys)
		memset(b->keys, 0, b->capkeys * sizeof(*b->keys));
	b->nkeys = 0;
}

/* Quote a key for a message: at most 60 bytes, control bytes as '?'. */
static void quote_key(char *out, size_t outlen, const struct ydoc_node *k)
{
	size_t n = k->len < outlen - 4 ? k->len : outlen - 4;
	size_t j = 0;
	for (size_t i = 0; i < n; i++)
		out[j++] = (unsigned char)k->str[i] < 0x20 || k->str[i] == 0x7f ? '?' : k->str[i];
	if (n < k->len) {
		/* do not cut a UTF-8 sequence in half */
		while (j > 0 && ((unsigned char)out[j - 1] & 0xc0) == 0x80)
			j--;
		if (j > 0 && (unsigned char)out[j - 1] >= 0xc0)
			j--;
		out[j++] = '.';
		out[j++] = '.';
		out[j++] = '.';
	}
	out[j] = '\0';
}

/* Attach a finished node (size and height as expanded) where it belongs;
 * line and col are where it was written (for an alias: the alias). */
static void attach(struct builder *b, struct ydoc_node *node, size_t size, size_t height, int line,
		   int col)
{
	if (!b->nframes) {
		b->root = node;
		b->have_root = 1;
		return;
	}
	struct frame *f = &b->frames[b->nframes - 1];
	f->size = add_sat(f->size, size);
	if (height + 1 > f->height)
		f->height = height + 1;
	if (f->node->kind == YDOC_SEQ) {
		XGROW(f->items, f->capitems, f->n + 1);
		f->items[f->n++] = node;
		return;
	}
	if (!f->key) {
		f->key = node;
		f->key_dup = 0;
		f->key_line = line;
		f->key_col = col;
		if (node->kind != YDOC_SCALAR)
			return;
		const struct seen_key *s = key_seen(b, f->map, node, line, col);
		if (s) {
			char q[64];
			quote_key(q, sizeof(q), node);
			problem(b->d, line, col, "duplicate-key",
				arena_printf(&b->d->arena,
					     "duplicate key '%s' (first at line %d, column %d)", q,
					     s->line, s->col));
			f->key_dup = 1;
		}
		return;
	}
	if (!f->key_dup) {
		XGROW(f->pairs, f->cappairs, f->n + 1);
		f->pairs[f->n].key = f->key;
		f->pairs[f->n].value = node;
		f->n++;
	}
	f->key = NULL;
}

static const char *tag_of(struct builder *b, const yaml_char_t *tag)
{
	static const char std[] = "tag:yaml.org,2002:";
	if (!tag)
		return NULL;
	const char *t = (const char *)tag;
	if (strncmp(t, std, sizeof(std) - 1) == 0)
		return arena_printf(&b->d->arena, "!!%s", t + sizeof(std) - 1);
	return arena_strndup(&b->d->arena, t, strlen(t));
}

static struct ydoc_node *node_new(struct builder *b, enum ydoc_kind kind, const yaml_mark_t *m)
{
	struct ydoc_node *n = arena_alloc(&b->d->arena, sizeof(*n));
	memset(n, 0, sizeof(*n));
	n->kind = kind;
	n->line = (int)m->line + 1;
	n->col = (int)m->column + 1;
	n->str = "";
	return n;
}

/* Count one more node; stop when over the bound. */
static int count_node(struct builder *b, const yaml_mark_t *m)
{
	b->total = add_sat(b->total, 1);
	if (b->total > b->lim.max_nodes) {
		stop_at(
		    b, m, "yaml-limits",
		    arena_printf(&b->d->arena, "input has more than %zu nodes", b->lim.max_nodes));
		return -1;
	}
	return 0;
}

static void on_scalar(struct builder *b, const yaml_event_t *ev)
{
	if (count_node(b, &ev->start_mark) < 0)
		return;
	struct ydoc_node *n = node_new(b, YDOC_SCALAR, &ev->start_mark);
	n->str = arena_strndup(&b->d->arena, (const char *)ev->data.scalar.value,
			       ev->data.scalar.length);
	n->len = ev->data.scalar.length;
	switch (ev->data.scalar.style) {
	case YAML_SINGLE_QUOTED_SCALAR_STYLE:
		n->style = YDOC_SINGLE_QUOTED;
		break;
	case YAML_DOUBLE_QUOTED_SCALAR_STYLE:
		n->style = YDOC_DOUBLE_QUOTED;
		break;
	case YAML_LITERAL_SCALAR_STYLE:
		n->style = YDOC_LITERAL;
		break;
	case YAML_FOLDED_SCALAR_STYLE:
		n->style = YDOC_FOLDED;
		break;
	default:
		n->style = YDOC_PLAIN;
		break;
	}
	n->tag = tag_of(b, ev->data.scalar.tag);
	b->seq++;
	if (ev->data.scalar.anchor)
		anchor_put(b, xstrdup((const char *)ev->data.scalar.anchor), n, 1, 0, b->seq);
	attach(b, n, 1, 0, n->line, n->col);
}

static void on_start(struct builder *b, const yaml_event_t *ev, enum ydoc_kind kind)
{
	if (count_node(b, &ev->start_mark) < 0)
		return;
	if (b->nframes + 1 > b->lim.max_depth) {
		stop_at(b, &ev->start_mark, "yaml-limits",
			arena_printf(&b->d->arena, "document nests deeper than %zu levels",
				     b->lim.max_depth));
		return;
	}
	const yaml_char_t *anchor, *tag;
	if (kind == YDOC_SEQ) {
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
	} else {
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
	}
	if (b->nframes == b->capframes) {
		XGROW(b->frames, b->capframes, b->nframes + 1);
		memset(&b->frames[b->nframes], 0, (b->capframes - b->nframes) * sizeof(*b->frames));
	}
	/* frames keep their item arrays for reuse by later collections */
	struct frame *f = &b->frames[b->nframes++];
	f->node = node_new(b, kind, &ev->start_mark);
	f->node->tag = tag_of(b, tag);
	f->n = 0;
	f->size = 1;
	f->height = 1;
	f->anchor = anchor ? xstrdup((const char *)anchor) : NULL;
	f->seq = ++b->seq;
	f->map = kind == YDOC_MAP ? ++b->maps : 0;
	f->key = NULL;
	f->key_dup = 0;
}

static void on_end(struct builder *b)
{
	struct frame *f = &b->frames[--b->nframes];
	struct ydoc_node *n = f->node;
	if (f->key && !f->key_dup) {
		/* a key without its value cannot come from libyaml; keep the
		 * tree well-formed regardless */
		XGROW(f->pairs, f->cappairs, f->n + 1);
		f->pairs[f->n].key = f->key;
		f->pairs[f->n].value = NULL;
		f->n++;
	}
	n->n = f->n;
	if (n->kind == YDOC_SEQ && f->n) {
		n->items = arena_alloc(&b->d->arena, f->n * sizeof(*n->items));
		memcpy(n->items, f->items, f->n * sizeof(*n->items));
	} else if (n->kind == YDOC_MAP && f->n) {
		n->pairs = arena_alloc(&b->d->arena, f->n * sizeof(*n->pairs));
		memcpy(n->pairs, f->pairs, f->n * sizeof(*n->pairs));
	}
	if (f->anchor) {
		anchor_put(b, f->anchor, n, f->size, f->height, f->seq);
		f->anchor = NULL;
	}
	attach(b, n, f->size, f->height, n->line, n->col);
}

static void on_alias(struct builder *b, const yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	const yaml_mark_t *m = &ev->start_mark;
	const struct anchor *a = anchor_find(b, name);
	for (size_t i = b->nframes; i-- > 0;) {
		const struct frame *f = &b->frames[i];
		if (f->anchor && strcmp(f->anchor, name) == 0) {
			if (!a || a->seq < f->seq) {
				stop_at(b, m, "yaml-syntax",
					arena_printf(&b->d->arena,
						     "alias '%s' refers to a node that contains it",
						     name));
				return;
			}
			break;
		}
	}
	if (!a) {
		stop_at(b, m, "yaml-syntax",
			arena_printf(&b->d->arena, "undefined alias '%s'", name));
		return;
	}
	b->total = add_sat(b->total, a->size);
	if (b->total > b->lim.max_nodes) {
		stop_at(b, m, "yaml-limits",
			arena_printf(&b->d->arena, "alias expansion exceeds %zu nodes",
				     b->lim.max_nodes));
		return;
	}
	if (add_sat(b->nframes, a->height) > b->lim.max_depth) {
		stop_at(b, m, "yaml-limits",
			arena_printf(&b->d->arena, "document nests deeper than %zu levels",
				     b->lim.max_depth));
		return;
	}
	attach(b, a->node, a->size, a->height, (int)m->line + 1, (int)m->column + 1);
}

/* 1-based line and column of byte offset off (reader errors have no mark). */
static void offset_pos(const char *data, size_t len, size_t off, int *line, int *col)
{
	*line = 1;
	*col = 1;
	if (off > len)
		off = len;
	for (size_t i = 0; i < off; i++) {
		if (data[i] == '\n') {
			++*line;
			*col = 1;
		} else if (((unsigned char)data[i] & 0xc0) != 0x80) {
			++*col;
		}
	}
}

static void syntax_error(struct builder *b, const yaml_parser_t *p)
{
	struct arena *ar = &b->d->arena;
	const char *what = p->problem ? p->problem : "unknown parser error";
	int line, col;
	char *msg;
	switch (p->error) {
	case YAML_MEMORY_ERROR:
		problem(b->d, 1, 1, "yaml-limits", arena_printf(ar, "yaml parser out of memory"));
		b->stop = 1;
		return;
	case YAML_READER_ERROR:
		offset_pos(b->data, b->len, p->problem_offset, &line, &col);
		if (p->problem_value != -1)
			msg = arena_printf(ar, "%s (#x%X)", what, (unsigned)p->problem_value);
		else
			msg = arena_printf(ar, "%s", what);
		break;
	default:
		line = (int)p->problem_mark.line + 1;
		col = (int)p->problem_mark.column + 1;
		if (p->context && (p->context_mark.line != p->problem_mark.line ||
				   p->context_mark.column != p->problem_mark.column))
			msg = arena_printf(ar, "%s (%s at line %d, column %d)", what, p->context,
					   (int)p->context_mark.line + 1,
					   (int)p->context_mark.column + 1);
		else
			msg = arena_printf(ar, "%s", what);
		break;
	}
	problem(b->d, line, col, "yaml-syntax", msg);
	b->stop = 1;
}

static void add_doc(struct ydoc *d, struct ydoc_node *root)
{
	XGROW(d->docs, d->capdocs, d->ndocs + 1);
	d->docs[d->ndocs++] = root;
}

static void builder_release(struct builder *b)
{
	for (size_t i = 0; i < b->capframes; i++) {
		free(b->frames[i].items);
		free(b->frames[i].pairs);
		free(b->frames[i].anchor);
	}
	free(b->frames);
	anchors_clear(b);
	free(b->anchors);
	free(b->keys);
}

static void run(struct builder *b)
{
	yaml_parser_t p;
	if (!yaml_parser_initialize(&p)) {
		problem(b->d, 1, 1, "yaml-limits",
			arena_printf(&b->d->arena, "yaml parser out of memory"));
		return;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)b->data, b->len);
	while (!b->stop) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&p, &ev)) {
			syntax_error(b, &p);
			break;
		}
		int done = ev.type == YAML_STREAM_END_EVENT;
		switch (ev.type) {
		case YAML_DOCUMENT_START_EVENT:
			b->root = NULL;
			b->have_root = 0;
			anchors_clear(b);
			keys_clear(b);
			break;
		case YAML_DOCUMENT_END_EVENT: {
			struct ydoc_node *r = b->root;
			/* `---` alone: libyaml gives an empty plain scalar (which
			 * is then the only node, so any anchor is its own) */
			if (r && r->kind == YDOC_SCALAR && r->style == YDOC_PLAIN && !r->len &&
			    !r->tag && !b->nanchors)
				r = NULL;
			add_doc(b->d, r);
			break;
		}
		case YAML_SCALAR_EVENT:
			on_scalar(b, &ev);
			break;
		case YAML_SEQUENCE_START_EVENT:
			on_start(b, &ev, YDOC_SEQ);
			break;
		case YAML_MAPPING_START_EVENT:
			on_start(b, &ev, YDOC_MAP);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			on_end(b);
			break;
		case YAML_ALIAS_EVENT:
			on_alias(b, &ev);
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
		if (done)
			break;
	}
	yaml_parser_delete(&p);
}

struct ydoc *ydoc_parse(const char *data, size_t len, const struct ydoc_limits *lim)
{
	struct ydoc *d = xcalloc(1, sizeof(*d));
	struct builder b;
	memset(&b, 0, sizeof(b));
	b.d = d;
	b.data = data;
	b.len = len;
	b.lim.max_bytes = lim && lim->max_bytes ? lim->max_bytes : YDOC_MAX_BYTES;
	b.lim.max_depth = lim && lim->max_depth ? lim->max_depth : YDOC_MAX_DEPTH;
	b.lim.max_nodes = lim && lim->max_nodes ? lim->max_nodes : YDOC_MAX_NODES;
	if (len > b.lim.max_bytes) {
		problem(d, 1, 1, "yaml-limits",
			arena_printf(&d->arena, "input is larger than %zu bytes", b.lim.max_bytes));
		return d;
	}
	if (!data)
		b.data = "";
	run(&b);
	builder_release(&b);
	return d;
}

void ydoc_free(struct ydoc *d)
{
	if (!d)
		return;
	arena_release(&d->arena);
	free(d->docs);
	free(d->problems);
	free(d);
}

size_t ydoc_ndocs(const struct ydoc *d)
{
	return d->ndocs;
}

const struct ydoc_node *ydoc_root(const struct ydoc *d, size_t i)
{
	return i < d->ndocs ? d->docs[i] : NULL;
}

size_t ydoc_nproblems(const struct ydoc *d)
{
	return d->nproblems;
}

const struct ydoc_problem *ydoc_problem(const struct ydoc *d, size_t i)
{
	return i < d->nproblems ? &d->problems[i] : NULL;
}

/* --- reading nodes ----------------------------------------------------------- */

static int scalar_is(const struct ydoc_node *n, const char *s)
{
	size_t l = strlen(s);
	return n->len == l && memcmp(n->str, s, l) == 0;
}

const struct ydoc_node *ydoc_map_get(const struct ydoc_node *map, const char *key)
{
	if (!map || map->kind != YDOC_MAP)
		return NULL;
	for (size_t i = 0; i < map->n; i++) {
		const struct ydoc_node *k = map->pairs[i].key;
		if (k && k->kind == YDOC_SCALAR && scalar_is(k, key))
			return map->pairs[i].value;
	}
	return NULL;
}

static int is_digit(char c, int base)
{
	if (base == 16)
		return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
	return c >= '0' && c < '0' + base;
}

/* Digits of base from s[i], at least one, up to end. */
static int all_digits(const char *s, size_t i, size_t len, int base)
{
	if (i >= len)
		return 0;
	for (; i < len; i++)
		if (!is_digit(s[i], base))
			return 0;
	return 1;
}

static int match_int(const char *s, size_t len)
{
	if (len > 2 && s[0] == '0' && s[1] == 'o')
		return all_digits(s, 2, len, 8);
	if (len > 2 && s[0] == '0' && s[1] == 'x')
		return all_digits(s, 2, len, 16);
	size_t i = len && (s[0] == '-' || s[0] == '+');
	return all_digits(s, i, len, 10);
}

static int match_special(const char *s, size_t len, double *out)
{
	static const char *const inf[] = {".inf", ".Inf", ".INF"};
	static const char *const nan[] = {".nan", ".NaN", ".NAN"};
	size_t i = len && (s[0] == '-' || s[0] == '+');
	for (int k = 0; k < 3; k++) {
		if (len - i == 4 && memcmp(s + i, inf[k], 4) == 0) {
			if (out)
				*out = s[0] == '-' ? -INFINITY : INFINITY;
			return 1;
		}
		if (len == 4 && memcmp(s, nan[k], 4) == 0) {
			if (out)
				*out = NAN;
			return 1;
		}
	}
	return 0;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? or a special. */
static int match_float(const char *s, size_t len)
{
	if (match_special(s, len, NULL))
		return 1;
	size_t i = len && (s[0] == '-' || s[0] == '+');
	size_t d = 0;
	while (i < len && is_digit(s[i], 10))
		i++, d++;
	if (i < len && s[i] == '.') {
		i++;
		size_t f = 0;
		while (i < len && is_digit(s[i], 10))
			i++, f++;
		if (!d && !f)
			return 0;
	} else if (!d) {
		return 0;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '-' || s[i] == '+'))
			i++;
		return all_digits(s, i, len, 10);
	}
	return i == len;
}

static int match_null(const char *s, size_t len)
{
	return len == 0 || (len == 1 && s[0] == '~') ||
	       (len == 4 &&
		(!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

/* 1 true, 0 false, -1 not a bool */
static int match_bool(const char *s, size_t len)
{
	if (len == 4 && (!memcmp(s, "true", 4) || !memcmp(s, "True", 4) || !memcmp(s, "TRUE", 4)))
		return 1;
	if (len == 5 &&
	    (!memcmp(s, "false", 5) || !memcmp(s, "False", 5) || !memcmp(s, "FALSE", 5)))
		return 0;
	return -1;
}

enum ydoc_type ydoc_scalar_type(const struct ydoc_node *n)
{
	if (!n)
		return YDOC_T_NULL;
	if (n->kind != YDOC_SCALAR)
		return YDOC_T_STR;
	if (n->tag) {
		static const struct {
			const char *tag;
			enum ydoc_type t;
		} tags[] = {{"!!null", YDOC_T_NULL}, {"!!bool", YDOC_T_BOOL},
			    {"!!int", YDOC_T_INT},   {"!!float", YDOC_T_FLOAT},
			    {"!!str", YDOC_T_STR},   {"!", YDOC_T_STR}};
		for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++)
			if (strcmp(n->tag, tags[i].tag) == 0)
				return tags[i].t;
	}
	if (n->style != YDOC_PLAIN)
		return YDOC_T_STR;
	if (match_null(n->str, n->len))
		return YDOC_T_NULL;
	if (match_bool(n->str, n->len) >= 0)
		return YDOC_T_BOOL;
	if (match_int(n->str, n->len))
		return YDOC_T_INT;
	if (match_float(n->str, n->len))
		return YDOC_T_FLOAT;
	return YDOC_T_STR;
}

const char *ydoc_type_name(enum ydoc_type t)
{
	switch (t) {
	case YDOC_T_NULL:
		return "null";
	case YDOC_T_BOOL:
		return "bool";
	case YDOC_T_INT:
		return "int";
	case YDOC_T_FLOAT:
		return "float";
	case YDOC_T_STR:
		return "string";
	}
	return "unknown";
}

int ydoc_get_bool(const struct ydoc_node *n, int *out)
{
	if (ydoc_scalar_type(n) != YDOC_T_BOOL)
		return -1;
	int v = match_bool(n->str, n->len);
	if (v < 0)
		return -1;
	*out = v;
	return 0;
}

int ydoc_get_int(const struct ydoc_node *n, long long *out)
{
	if (ydoc_scalar_type(n) != YDOC_T_INT || !match_int(n->str, n->len))
		return -1;
	const char *s = n->str;
	size_t len = n->len, i = 0;
	int base = 10, neg = 0;
	if (len > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
		base = s[1] == 'o' ? 8 : 16;
		i = 2;
	} else if (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-';
		i = 1;
	}
	/* accumulate as a negative number: its range is one larger */
	long long v = 0;
	for (; i < len; i++) {
		char c = s[i];
		int dv = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
		if (v < (LLONG_MIN + dv) / base)
			return -1;
		v = v * base - dv;
	}
	if (!neg) {
		if (v == LLONG_MIN)
			return -1;
		v = -v;
	}
	*out = v;
	return 0;
}

int ydoc_get_float(const struct ydoc_node *n, double *out)
{
	if (ydoc_scalar_type(n) != YDOC_T_FLOAT)
		return -1;
	if (match_special(n->str, n->len, out))
		return 0;
	/* a !!float may hold an int, even 0x/0o, which strtod must not see */
	if (!match_float(n->str, n->len)) {
		long long v;
		struct ydoc_node tmp = *n;
		tmp.tag = "!!int";
		if (ydoc_get_int(&tmp, &v) < 0)
			return -1;
		*out = (double)v;
		return 0;
	}
	char buf[128];
	char *big = NULL, *s = buf;
	if (n->len >= sizeof(buf))
		s = big = xstrndup(n->str, n->len);
	else
		memcpy(buf, n->str, n->len), buf[n->len] = '\0';
	errno = 0;
	*out = strtod(s, NULL); /* overflow gives +-HUGE_VAL: infinity */
	free(big);
	return 0;
}
