/* ydoc: YAML documents as a tree of nodes with positions, within bounds.
 *
 * The only module that includes libyaml. ydoc_parse() reads every document
 * of a YAML stream (several separated by ---) and never fails outright: it
 * returns the documents it could build plus a list of problems (syntax
 * errors with the parser's position, exceeded safety bounds, duplicate
 * keys). Aliases are resolved to the anchored node (shared, not copied) and
 * count towards the node bound as if expanded, so a "billion laughs" input
 * is rejected after at most max_nodes steps, in bounded memory.
 *
 * After a syntax error or an exceeded bound parsing stops with exactly one
 * such problem ("yaml-syntax" or "yaml-limits"); the documents completed
 * before it are kept, the unfinished one is dropped. Duplicate keys are all
 * reported and do not stop parsing.
 *
 * Semantics chosen here, as a linter needs them:
 * - Duplicate keys: scalar keys are compared by their bytes (so `1` and "1"
 *   are the same key); the first pair is kept. Non-scalar keys (complex
 *   `? [a]` keys) are kept in the tree unchecked; callers reject them.
 * - Merge keys (`<<: *base`) are NOT implemented: `<<` is an ordinary key.
 * - An alias to a node that is still open (a recursive structure) is an
 *   error: the tree is always acyclic.
 * - Anchors are per document; an alias names the latest preceding anchor.
 * - Explicit tags: libyaml resolves tag handles, ydoc writes the standard
 *   prefix tag:yaml.org,2002: back as "!!" (`!!str`), other tags as
 *   resolved (`!local`, `!` for the non-specific tag).
 *
 * Everything returned is owned by the struct ydoc and lives until
 * ydoc_free(). Nodes are read-only for callers.
 */
#ifndef DPLOYR_YDOC_H
#define DPLOYR_YDOC_H

#include <stddef.h>

enum ydoc_kind { YDOC_SCALAR, YDOC_SEQ, YDOC_MAP };

/* How a scalar was written: a quoted "3.10" is a string, a plain 3.10 a
 * number. */
enum ydoc_style { YDOC_PLAIN, YDOC_SINGLE_QUOTED, YDOC_DOUBLE_QUOTED, YDOC_LITERAL, YDOC_FOLDED };

/* Resolved type of a scalar, YAML 1.2 core schema (plain scalars only;
 * quoted and block scalars are strings; an explicit !!tag wins). */
enum ydoc_type { YDOC_T_NULL, YDOC_T_BOOL, YDOC_T_INT, YDOC_T_FLOAT, YDOC_T_STR };

struct ydoc_pair;

struct ydoc_node {
	enum ydoc_kind kind;
	/* 1-based start of the node, the column in characters. An alias
	 * yields the anchored node itself, so its position is the anchor's. */
	int line, col;
	/* YDOC_SCALAR ("" and 0 for collections) */
	const char *str; /* NUL-terminated; may contain NULs (use len) */
	size_t len;
	enum ydoc_style style;
	const char *tag; /* explicit tag ("!!str", "!x"), or NULL; also on collections */
	/* YDOC_SEQ: items[0..n); YDOC_MAP: pairs[0..n) in document order,
	 * a duplicate key's later pair left out (and reported) */
	struct ydoc_node **items;
	struct ydoc_pair *pairs;
	size_t n;
};

struct ydoc_pair {
	struct ydoc_node *key;
	struct ydoc_node *value;
};

struct ydoc_problem {
	int line, col;	  /* 1-based */
	const char *rule; /* "yaml-syntax", "yaml-limits" or "duplicate-key" */
	char *msg;
};

/* A field left 0 takes its default. Depth counts nested collections (a
 * flat mapping is depth 1), an alias counting as deep as its anchored node;
 * nodes are counted over the whole stream. */
struct ydoc_limits {
	size_t max_bytes; /* 1 MiB */
	size_t max_depth; /* 64 */
	size_t max_nodes; /* 10,000, aliases counted as expanded */
};

#define YDOC_MAX_BYTES ((size_t)1 << 20)
#define YDOC_MAX_DEPTH ((size_t)64)
#define YDOC_MAX_NODES ((size_t)10000)

struct ydoc;

/* lim NULL means the defaults above. Never returns NULL. */
struct ydoc *ydoc_parse(const char *data, size_t len, const struct ydoc_limits *lim);
void ydoc_free(struct ydoc *d);

size_t ydoc_ndocs(const struct ydoc *d);
/* Root node of document i, or NULL for an empty document (`---` with no
 * content; an empty input has no documents at all). */
const struct ydoc_node *ydoc_root(const struct ydoc *d, size_t i);
size_t ydoc_nproblems(const struct ydoc *d);
/* Problem i in the order found, or NULL when i >= ydoc_nproblems(). */
const struct ydoc_problem *ydoc_problem(const struct ydoc *d, size_t i);

/* Value for a scalar key equal to key in a mapping, else NULL (also when
 * map is NULL or not a mapping). */
const struct ydoc_node *ydoc_map_get(const struct ydoc_node *map, const char *key);
/* Resolved type of a scalar. NULL (an empty document) resolves to
 * YDOC_T_NULL; a collection to YDOC_T_STR, so check kind first. A
 * recognised explicit tag (!!null !!bool !!int !!float !!str, and the
 * non-specific `!` meaning str) wins even when the text does not fit it: then
 * the matching accessor below fails. Other tags resolve by content. */
enum ydoc_type ydoc_scalar_type(const struct ydoc_node *n);
/* Static name of a type for messages: "null", "bool", "int", "float",
 * "string". */
const char *ydoc_type_name(enum ydoc_type t);
/* Scalar accessors: 0 and *out when the scalar resolves to that type and
 * its value is representable (an int outside long long fails; 0x and 0o
 * ints are unsigned and must fit too), else -1 and *out untouched.
 * Floats include .inf, -.inf and .nan; 1e999 gives infinity. */
int ydoc_get_bool(const struct ydoc_node *n, int *out);
int ydoc_get_int(const struct ydoc_node *n, long long *out);
int ydoc_get_float(const struct ydoc_node *n, double *out);

#endif
