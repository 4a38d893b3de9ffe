#include "ydoc.h"

#include <math.h>
#include <stdio.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#include <sanitizer/lsan_interface.h>
#endif
#endif

#include "buf.h"
#include "harness.h"
#include "xalloc.h"

static struct ydoc *parse(const char *s)
{
	return ydoc_parse(s, strlen(s), NULL);
}

static struct ydoc *parse_lim(const char *s, size_t bytes, size_t depth, size_t nodes)
{
	struct ydoc_limits lim = {bytes, depth, nodes};
	return ydoc_parse(s, strlen(s), &lim);
}

/* The only problem of d has this rule, position and message. */
static void check_one_problem(const struct ydoc *d, const char *rule, int line, int col,
			      const char *msg)
{
	CHECK_INT(ydoc_nproblems(d), 1);
	const struct ydoc_problem *p = ydoc_problem(d, 0);
	CHECK_STR(p->rule, rule);
	CHECK_STR(p->msg, msg);
	CHECK_INT(p->line, line);
	CHECK_INT(p->col, col);
}

static int scalar_eq(const struct ydoc_node *n, const char *s)
{
	return n && n->kind == YDOC_SCALAR && n->len == strlen(s) && memcmp(n->str, s, n->len) == 0;
}

TEST(ydoc_builds_tree_with_positions)
{
	struct ydoc *d = parse("name: web\n"
			       "ports:\n"
			       "  - 80\n"
			       "  - \"443\"\n"
			       "env: {A: x, B: [1, 2]}\n");
	CHECK_INT(ydoc_nproblems(d), 0);
	CHECK_INT(ydoc_ndocs(d), 1);
	const struct ydoc_node *r = ydoc_root(d, 0);
	CHECK(r && r->kind == YDOC_MAP);
	CHECK_INT(r->n, 3);
	CHECK_INT(r->line, 1);
	CHECK_INT(r->col, 1);
	CHECK(scalar_eq(r->pairs[0].key, "name"));
	CHECK(scalar_eq(r->pairs[0].value, "web"));
	CHECK_INT(r->pairs[0].value->line, 1);
	CHECK_INT(r->pairs[0].value->col, 7);
	const struct ydoc_node *ports = ydoc_map_get(r, "ports");
	CHECK(ports && ports->kind == YDOC_SEQ);
	CHECK_INT(ports->n, 2);
	CHECK_INT(ports->line, 3);
	CHECK_INT(ports->col, 3);
	CHECK(scalar_eq(ports->items[0], "80"));
	CHECK_INT(ports->items[0]->col, 5);
	CHECK(scalar_eq(ports->items[1], "443"));
	CHECK_INT(ports->items[1]->line, 4);
	CHECK_INT(ports->items[1]->style, YDOC_DOUBLE_QUOTED);
	const struct ydoc_node *env = ydoc_map_get(r, "env");
	CHECK(env && env->kind == YDOC_MAP);
	CHECK_INT(env->line, 5);
	CHECK_INT(env->col, 6);
	CHECK(scalar_eq(ydoc_map_get(env, "A"), "x"));
	const struct ydoc_node *bv = ydoc_map_get(env, "B");
	CHECK(bv && bv->kind == YDOC_SEQ && bv->n == 2);
	CHECK_INT(bv->items[1]->line, 5);
	CHECK_INT(bv->items[1]->col, 20);
	CHECK(ydoc_map_get(r, "nope") == NULL);
	CHECK(ydoc_map_get(ports, "0") == NULL); /* not a mapping */
	CHECK(ydoc_map_get(NULL, "x") == NULL);
	CHECK(ydoc_root(d, 1) == NULL);
	CHECK(ydoc_problem(d, 0) == NULL);
	ydoc_free(d);
	ydoc_free(NULL);
}

TEST(ydoc_columns_count_characters_not_bytes)
{
	struct ydoc *d = parse("\xc3\xa9t\xc3\xa9: x\n");
	const struct ydoc_node *r = ydoc_root(d, 0);
	CHECK(r && r->kind == YDOC_MAP);
	CHECK_INT(r->pairs[0].value->col, 6);
	ydoc_free(d);
}

TEST(ydoc_reads_every_document)
{
	struct ydoc *d = parse("a: 1\n---\nb: 2\n...\n---\n- x\n--- plain\n");
	CHECK_INT(ydoc_nproblems(d), 0);
	CHECK_INT(ydoc_ndocs(d), 4);
	CHECK(scalar_eq(ydoc_map_get(ydoc_root(d, 0), "a"), "1"));
	CHECK(scalar_eq(ydoc_map_get(ydoc_root(d, 1), "b"), "2"));
	CHECK(ydoc_map_get(ydoc_root(d, 1), "a") == NULL);
	CHECK_INT(ydoc_root(d, 2)->kind, YDOC_SEQ);
	CHECK_INT(ydoc_root(d, 2)->line, 6);
	CHECK(scalar_eq(ydoc_root(d, 3), "plain"));
	CHECK_INT(ydoc_root(d, 3)->line, 7);
	CHECK_INT(ydoc_root(d, 3)->col, 5);
	ydoc_free(d);
}

TEST(ydoc_empty_inputs_and_documents)
{
	struct ydoc *d = parse("");
	CHECK_INT(ydoc_ndocs(d), 0);
	CHECK_INT(ydoc_nproblems(d), 0);
	ydoc_free(d);
	d = ydoc_parse(NULL, 0, NULL);
	CHECK_INT(ydoc_ndocs(d), 0);
	CHECK_INT(ydoc_nproblems(d), 0);
	ydoc_free(d);
	d = parse("# only a comment\n\n");
	CHECK_INT(ydoc_ndocs(d), 0);
	CHECK_INT(ydoc_nproblems(d), 0);
	ydoc_free(d);
	d = parse("---\n...\n---\n--- ''\n--- ~\n");
	CHECK_INT(ydoc_nproblems(d), 0);
	CHECK_INT(ydoc_ndocs(d), 4);
	CHECK(ydoc_root(d, 0) == NULL);
	CHECK(ydoc_root(d, 1) == NULL);
	CHECK_INT(ydoc_scalar_type(ydoc_root(d, 1)), YDOC_T_NULL);
	CHECK(scalar_eq(ydoc_root(d, 2), ""));
	CHECK_INT(ydoc_scalar_type(ydoc_root(d, 2)), YDOC_T_STR);
	CHECK(scalar_eq(ydoc_root(d, 3), "~"));
	CHECK_INT(ydoc_scalar_type(ydoc_root(d, 3)), YDOC_T_NULL);
	ydoc_free(d);
	d = parse("key:\n");
	const struct ydoc_node *v = ydoc_map_get(ydoc_root(d, 0), "key");
	CHECK(scalar_eq(v, ""));
	CHECK_INT(ydoc_scalar_type(v), YDOC_T_NULL);
	ydoc_free(d);
}

TEST(ydoc_keeps_scalar_styles)
{
	struct ydoc *d = parse("p: plain text\n"
			       "s: 'it''s'\n"
			       "d: \"tab\\there\\0nul\"\n"
			       "l: |\n  one\n  two\n"
			       "f: >\n  one\n  two\n"
			       "k: |-\n  kept\n");
	CHECK_INT(ydoc_nproblems(d), 0);
	const struct ydoc_node *r = ydoc_root(d, 0), *n;
	n = ydoc_map_get(r, "p");
	CHECK(scalar_eq(n, "plain text") && n->style == YDOC_PLAIN);
	n = ydoc_map_get(r, "s");
	CHECK(scalar_eq(n, "it's") && n->style == YDOC_SINGLE_QUOTED);
	n = ydoc_map_get(r, "d");
	CHECK(n && n->style == YDOC_DOUBLE_QUOTED);
	CHECK_INT(n->len, 12);
	CHECK(memcmp(n->str, "tab\there\0nul", 13) == 0);
	n = ydoc_map_get(r, "l");
	CHECK(scalar_eq(n, "one\ntwo\n") && n->style == YDOC_LITERAL);
	CHECK_INT(n->line, 4);
	CHECK_INT(n->col, 4);
	n = ydoc_map_get(r, "f");
	CHECK(scalar_eq(n, "one two\n") && n->style == YDOC_FOLDED);
	CHECK(scalar_eq(ydoc_map_get(r, "k"), "kept"));
	for (size_t i = 0; i < r->n; i++)
		CHECK_INT(ydoc_scalar_type(r->pairs[i].value), YDOC_T_STR);
	ydoc_free(d);
}

TEST(ydoc_explicit_tags_win)
{
	struct ydoc *d = parse("a: !!str 12\n"
			       "b: !!int \"12\"\n"
			       "c: !!float 1\n"
			       "d: !!bool 'true'\n"
			       "e: !!null ''\n"
			       "f: ! 12\n"
			       "g: !custom 12\n"
			       "h: !!int abc\n"
			       "i: !!seq [x]\n"
			       "j: !<tag:yaml.org,2002:str> 5\n"
			       "k: !!float 0x10\n");
	CHECK_INT(ydoc_nproblems(d), 0);
	const struct ydoc_node *r = ydoc_root(d, 0), *n;
	long long iv;
	double fv;
	int bv;
	n = ydoc_map_get(r, "a");
	CHECK_STR(n->tag, "!!str");
	CHECK_INT(ydoc_scalar_type(n), YDOC_T_STR);
	CHECK_INT(ydoc_get_int(n, &iv), -1);
	n = ydoc_map_get(r, "b");
	CHECK_INT(ydoc_scalar_type(n), YDOC_T_INT);
	CHECK_INT(ydoc_get_int(n, &iv), 0);
	CHECK_INT(iv, 12);
	n = ydoc_map_get(r, "c");
	CHECK_INT(ydoc_scalar_type(n), YDOC_T_FLOAT);
	CHECK_INT(ydoc_get_float(n, &fv), 0);
	CHECK(fv == 1.0);
	n = ydoc_map_get(r, "d");
	CHECK_INT(ydoc_get_bool(n, &bv), 0);
	CHECK_INT(bv, 1);
	CHECK_INT(ydoc_scalar_type(ydoc_map_get(r, "e")), YDOC_T_NULL);
	n = ydoc_map_get(r, "f");
	CHECK_STR(n->tag, "!");
	CHECK_INT(ydoc_scalar_type(n), YDOC_T_STR);
	n = ydoc_map_get(r, "g");
	CHECK_STR(n->tag, "!custom");
	CHECK_INT(ydoc_scalar_type(n), YDOC_T_INT); /* unknown tags resolve by content */
	n = ydoc_map_get(r, "h");
	CHECK_INT(ydoc_scalar_type(n), YDOC_T_INT);
	iv = 7;
	CHECK_INT(ydoc_get_int(n, &iv), -1);
	CHECK_INT(iv, 7);
	n = ydoc_map_get(r, "i");
	CHECK(n->kind == YDOC_SEQ);
	CHECK_STR(n->tag, "!!seq");
	n = ydoc_map_get(r, "j");
	CHECK_STR(n->tag, "!!str");
	CHECK_INT(ydoc_scalar_type(n), YDOC_T_STR);
	n = ydoc_map_get(r, "k");
	CHECK_INT(ydoc_get_float(n, &fv), 0);
	CHECK(fv == 16.0);
	CHECK(ydoc_map_get(r, "a")->style == YDOC_PLAIN);
	CHECK(ydoc_map_get(r, "x") == NULL);
	CHECK(ydoc_root(d, 0)->tag == NULL);
	ydoc_free(d);
}

static struct ydoc_node plain(const char *s)
{
	struct ydoc_node n;
	memset(&n, 0, sizeof(n));
	n.kind = YDOC_SCALAR;
	n.str = s;
	n.len = strlen(s);
	n.style = YDOC_PLAIN;
	return n;
}

TEST(ydoc_core_schema_typing_table)
{
	static const struct {
		const char *s;
		enum ydoc_type t;
	} table[] = {
	    {"", YDOC_T_NULL},	      {"~", YDOC_T_NULL},	  {"null", YDOC_T_NULL},
	    {"Null", YDOC_T_NULL},    {"NULL", YDOC_T_NULL},	  {"nULL", YDOC_T_STR},
	    {"true", YDOC_T_BOOL},    {"True", YDOC_T_BOOL},	  {"TRUE", YDOC_T_BOOL},
	    {"false", YDOC_T_BOOL},   {"False", YDOC_T_BOOL},	  {"FALSE", YDOC_T_BOOL},
	    {"yes", YDOC_T_STR},      {"no", YDOC_T_STR},	  {"on", YDOC_T_STR},
	    {"tRUE", YDOC_T_STR},     {"0", YDOC_T_INT},	  {"-17", YDOC_T_INT},
	    {"+17", YDOC_T_INT},      {"007", YDOC_T_INT},	  {"0o17", YDOC_T_INT},
	    {"0o", YDOC_T_STR},	      {"0o8", YDOC_T_STR},	  {"0x1F", YDOC_T_INT},
	    {"0xfa", YDOC_T_INT},     {"0x", YDOC_T_STR},	  {"0xg", YDOC_T_STR},
	    {"-0x1", YDOC_T_STR},     {"0X1", YDOC_T_STR},	  {"1_000", YDOC_T_STR},
	    {"1:20", YDOC_T_STR},     {"-", YDOC_T_STR},	  {"+", YDOC_T_STR},
	    {"3.10", YDOC_T_FLOAT},   {"1.", YDOC_T_FLOAT},	  {".5", YDOC_T_FLOAT},
	    {"-.5", YDOC_T_FLOAT},    {"1e3", YDOC_T_FLOAT},	  {"1E-3", YDOC_T_FLOAT},
	    {"1.5e+3", YDOC_T_FLOAT}, {".", YDOC_T_STR},	  {"1e", YDOC_T_STR},
	    {"e3", YDOC_T_STR},	      {".e3", YDOC_T_STR},	  {"1.2.3", YDOC_T_STR},
	    {".inf", YDOC_T_FLOAT},   {"-.Inf", YDOC_T_FLOAT},	  {"+.INF", YDOC_T_FLOAT},
	    {".nan", YDOC_T_FLOAT},   {".NaN", YDOC_T_FLOAT},	  {".NAN", YDOC_T_FLOAT},
	    {"-.nan", YDOC_T_STR},    {".iNf", YDOC_T_STR},	  {"inf", YDOC_T_STR},
	    {"nan", YDOC_T_STR},      {"0x1p3", YDOC_T_STR},	  {"12 ", YDOC_T_STR},
	    {"hello", YDOC_T_STR},    {"2024-01-01", YDOC_T_STR},
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		struct ydoc_node n = plain(table[i].s);
		if (ydoc_scalar_type(&n) != table[i].t)
			harness_fail(__FILE__, __LINE__, "'%s' resolves to %s, expected %s",
				     table[i].s, ydoc_type_name(ydoc_scalar_type(&n)),
				     ydoc_type_name(table[i].t));
	}
	CHECK_STR(ydoc_type_name(YDOC_T_STR), "string");
	CHECK_STR(ydoc_type_name(YDOC_T_NULL), "null");
}

TEST(ydoc_quoted_numbers_are_strings)
{
	struct ydoc *d = parse("plain: 3.10\nquoted: \"3.10\"\nsingle: '20'\nblock: |\n  true\n");
	const struct ydoc_node *r = ydoc_root(d, 0);
	double fv;
	long long iv;
	int bv;
	CHECK_INT(ydoc_scalar_type(ydoc_map_get(r, "plain")), YDOC_T_FLOAT);
	CHECK_INT(ydoc_get_float(ydoc_map_get(r, "plain"), &fv), 0);
	CHECK(fv == 3.1);
	CHECK_INT(ydoc_scalar_type(ydoc_map_get(r, "quoted")), YDOC_T_STR);
	CHECK_INT(ydoc_get_float(ydoc_map_get(r, "quoted"), &fv), -1);
	CHECK_INT(ydoc_get_int(ydoc_map_get(r, "single"), &iv), -1);
	CHECK_INT(ydoc_get_bool(ydoc_map_get(r, "block"), &bv), -1);
	CHECK_INT(ydoc_scalar_type(r), YDOC_T_STR); /* a collection */
	CHECK_INT(ydoc_get_int(r, &iv), -1);
	CHECK_INT(ydoc_get_int(NULL, &iv), -1);
	ydoc_free(d);
}

static int get_int(const char *s, long long *v)
{
	struct ydoc_node n = plain(s);
	return ydoc_get_int(&n, v);
}

TEST(ydoc_get_int_detects_overflow)
{
	long long v;
	CHECK_INT(get_int("9223372036854775807", &v), 0);
	CHECK(v == 9223372036854775807LL);
	CHECK_INT(get_int("-9223372036854775808", &v), 0);
	CHECK(v == -9223372036854775807LL - 1);
	CHECK_INT(get_int("+42", &v), 0);
	CHECK_INT(v, 42);
	CHECK_INT(get_int("-0", &v), 0);
	CHECK_INT(v, 0);
	CHECK_INT(get_int("00012", &v), 0);
	CHECK_INT(v, 12);
	CHECK_INT(get_int("0o777", &v), 0);
	CHECK_INT(v, 511);
	CHECK_INT(get_int("0xFf", &v), 0);
	CHECK_INT(v, 255);
	CHECK_INT(get_int("0x7fffffffffffffff", &v), 0);
	CHECK(v == 9223372036854775807LL);
	CHECK_INT(get_int("0o777777777777777777777", &v), 0);
	CHECK(v == 9223372036854775807LL);
	v = 5;
	CHECK_INT(get_int("9223372036854775808", &v), -1);
	CHECK_INT(get_int("-9223372036854775809", &v), -1);
	CHECK_INT(get_int("0x8000000000000000", &v), -1);
	CHECK_INT(get_int("0xffffffffffffffffff", &v), -1);
	CHECK_INT(get_int("0o1000000000000000000000", &v), -1);
	CHECK_INT(get_int("99999999999999999999999999999999", &v), -1);
	CHECK_INT(get_int("1.0", &v), -1);
	CHECK_INT(v, 5);
}

static int get_float(const char *s, double *v)
{
	struct ydoc_node n = plain(s);
	return ydoc_get_float(&n, v);
}

TEST(ydoc_get_float_and_bool)
{
	double f;
	CHECK_INT(get_float("1.5", &f), 0);
	CHECK(f == 1.5);
	CHECK_INT(get_float("-.5e1", &f), 0);
	CHECK(f == -5.0);
	CHECK_INT(get_float("1e999", &f), 0);
	CHECK(isinf(f) && f > 0);
	CHECK_INT(get_float("-.inf", &f), 0);
	CHECK(isinf(f) && f < 0);
	CHECK_INT(get_float(".NaN", &f), 0);
	CHECK(isnan(f));
	CHECK_INT(get_float("12", &f), -1); /* an int, not a float */
	CHECK_INT(get_float("x", &f), -1);
	int b = 7;
	struct ydoc_node n = plain("FALSE");
	CHECK_INT(ydoc_get_bool(&n, &b), 0);
	CHECK_INT(b, 0);
	n = plain("True");
	CHECK_INT(ydoc_get_bool(&n, &b), 0);
	CHECK_INT(b, 1);
	b = 7;
	n = plain("yes");
	CHECK_INT(ydoc_get_bool(&n, &b), -1);
	CHECK_INT(b, 7);
}

TEST(ydoc_limits_input_size)
{
	struct ydoc *d = parse_lim("a: 1234567", 10, 0, 0);
	CHECK_INT(ydoc_nproblems(d), 0);
	CHECK_INT(ydoc_ndocs(d), 1);
	ydoc_free(d);
	d = parse_lim("a: 12345678", 10, 0, 0);
	check_one_problem(d, "yaml-limits", 1, 1, "input is larger than 10 bytes");
	CHECK_INT(ydoc_ndocs(d), 0);
	ydoc_free(d);
	/* the default: 1 MiB */
	struct buf b = BUF_INIT;
	buf_puts(&b, "a: ");
	while (b.len < YDOC_MAX_BYTES)
		buf_putc(&b, 'x');
	d = ydoc_parse(b.data, b.len, NULL);
	CHECK_INT(ydoc_nproblems(d), 0);
	CHECK_INT(ydoc_map_get(ydoc_root(d, 0), "a")->len, YDOC_MAX_BYTES - 3);
	ydoc_free(d);
	buf_putc(&b, 'x');
	d = ydoc_parse(b.data, b.len, NULL);
	check_one_problem(d, "yaml-limits", 1, 1, "input is larger than 1048576 bytes");
	ydoc_free(d);
	buf_release(&b);
}

static char *nested(size_t depth)
{
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < depth; i++)
		buf_putc(&b, '[');
	buf_putc(&b, '1');
	for (size_t i = 0; i < depth; i++)
		buf_putc(&b, ']');
	return buf_detach(&b, NULL);
}

TEST(ydoc_limits_depth)
{
	char *s = nested(64);
	struct ydoc *d = parse(s);
	CHECK_INT(ydoc_nproblems(d), 0);
	CHECK_INT(ydoc_ndocs(d), 1);
	ydoc_free(d);
	free(s);
	s = nested(65);
	d = parse(s);
	check_one_problem(d, "yaml-limits", 1, 65, "document nests deeper than 64 levels");
	CHECK_INT(ydoc_ndocs(d), 0);
	ydoc_free(d);
	free(s);
	/* block style, and a deep file far larger than the bound */
	struct buf b = BUF_INIT;
	for (int i = 0; i < 500; i++)
		buf_printf(&b, "%*sk:\n", i, "");
	d = ydoc_parse(b.data, b.len, NULL);
	check_one_problem(d, "yaml-limits", 65, 65, "document nests deeper than 64 levels");
	ydoc_free(d);
	buf_release(&b);
	/* an alias is as deep as its anchored node */
	d = parse_lim("a: &x [[1]]\nb: *x\n", 0, 3, 0);
	CHECK_INT(ydoc_nproblems(d), 0);
	ydoc_free(d);
	d = parse_lim("a: &x [[1]]\nb: [*x]\n", 0, 3, 0);
	check_one_problem(d, "yaml-limits", 2, 5, "document nests deeper than 3 levels");
	ydoc_free(d);
}

TEST(ydoc_limits_nodes)
{
	struct ydoc *d = parse_lim("[1, 2, 3, 4]", 0, 0, 5);
	CHECK_INT(ydoc_nproblems(d), 0);
	ydoc_free(d);
	d = parse_lim("[1, 2, 3, 4, 5]", 0, 0, 5);
	check_one_problem(d, "yaml-limits", 1, 14, "input has more than 5 nodes");
	ydoc_free(d);
	/* map + a + [1,2,3] = 6, b = 7, *x counts 4 */
	d = parse_lim("a: &x [1, 2, 3]\nb: *x\n", 0, 0, 11);
	CHECK_INT(ydoc_nproblems(d), 0);
	const struct ydoc_node *r = ydoc_root(d, 0);
	CHECK(ydoc_map_get(r, "a") == ydoc_map_get(r, "b")); /* shared, not copied */
	ydoc_free(d);
	d = parse_lim("a: &x [1, 2, 3]\nb: *x\n", 0, 0, 10);
	check_one_problem(d, "yaml-limits", 2, 4, "alias expansion exceeds 10 nodes");
	ydoc_free(d);
	/* counted over the whole stream */
	d = parse_lim("[1, 2]\n--- [3, 4]\n--- [5, 6]\n", 0, 0, 8);
	check_one_problem(d, "yaml-limits", 3, 9, "input has more than 8 nodes");
	CHECK_INT(ydoc_ndocs(d), 2);
	ydoc_free(d);
}

TEST(ydoc_rejects_billion_laughs)
{
	struct buf b = BUF_INIT;
	buf_puts(&b, "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
	for (int i = 1; i < 10; i++) {
		buf_printf(&b, "a%d: &a%d [", i, i);
		for (int j = 0; j < 9; j++)
			buf_printf(&b, "%s*a%d", j ? ", " : "", i - 1);
		buf_puts(&b, "]\n");
	}
	struct ydoc *d = ydoc_parse(b.data, b.len, NULL);
	CHECK_INT(ydoc_ndocs(d), 0);
	CHECK_INT(ydoc_nproblems(d), 1);
	CHECK_STR(ydoc_problem(d, 0)->rule, "yaml-limits");
	CHECK_STR(ydoc_problem(d, 0)->msg, "alias expansion exceeds 10000 nodes");
	CHECK_INT(ydoc_problem(d, 0)->line, 5);
	ydoc_free(d);
	/* the flat variant: a 1 MiB list of aliases to one big node */
	buf_reset(&b);
	buf_puts(&b, "- &x [a, b, c, d, e, f, g, h]\n");
	while (b.len < YDOC_MAX_BYTES - 8)
		buf_puts(&b, "- *x\n");
	d = ydoc_parse(b.data, b.len, NULL);
	check_one_problem(d, "yaml-limits", 1112, 3, "alias expansion exceeds 10000 nodes");
	ydoc_free(d);
	buf_release(&b);
}

TEST(ydoc_reports_syntax_errors_with_positions)
{
	struct ydoc *d = parse("a: b: c\n");
	check_one_problem(d, "yaml-syntax", 1, 5, "mapping values are not allowed in this context");
	CHECK_INT(ydoc_ndocs(d), 0);
	ydoc_free(d);
	d = parse("a: 1\n---\nb: c: d\n");
	check_one_problem(d, "yaml-syntax", 3, 5, "mapping values are not allowed in this context");
	CHECK_INT(ydoc_ndocs(d), 1); /* the complete document before it */
	ydoc_free(d);
	d = parse("key: [1, 2\n");
	check_one_problem(
	    d, "yaml-syntax", 2, 1,
	    "did not find expected ',' or ']' (while parsing a flow sequence at line 1, column 6)");
	ydoc_free(d);
	d = parse("a: \"abc");
	check_one_problem(
	    d, "yaml-syntax", 1, 8,
	    "found unexpected end of stream (while scanning a quoted scalar at line 1, column 4)");
	ydoc_free(d);
	d = parse("a:\n\tb: 1\n");
	check_one_problem(d, "yaml-syntax", 2, 1, "found character that cannot start any token");
	ydoc_free(d);
	d = parse("- a\nb: 1\n");
	CHECK_INT(ydoc_nproblems(d), 1);
	CHECK_STR(ydoc_problem(d, 0)->rule, "yaml-syntax");
	CHECK_INT(ydoc_problem(d, 0)->line, 2);
	ydoc_free(d);
}

TEST(ydoc_undefined_and_recursive_aliases)
{
	struct ydoc *d = parse("a: *nope\n");
	check_one_problem(d, "yaml-syntax", 1, 4, "undefined alias 'nope'");
	ydoc_free(d);
	d = parse("a: &x [1, *x]\n");
	check_one_problem(d, "yaml-syntax", 1, 11, "alias 'x' refers to a node that contains it");
	ydoc_free(d);
	/* anchors do not cross documents */
	d = parse("a: &x 1\n---\nb: *x\n");
	check_one_problem(d, "yaml-syntax", 3, 4, "undefined alias 'x'");
	CHECK_INT(ydoc_ndocs(d), 1);
	ydoc_free(d);
	/* the latest anchor wins, also over an enclosing one */
	d = parse("a: &x 1\nb: &x 2\nc: *x\nd: &x [&x 3, *x]\n");
	CHECK_INT(ydoc_nproblems(d), 0);
	const struct ydoc_node *r = ydoc_root(d, 0);
	CHECK(scalar_eq(ydoc_map_get(r, "c"), "2"));
	CHECK(scalar_eq(ydoc_map_get(r, "d")->items[1], "3"));
	ydoc_free(d);
}

TEST(ydoc_reports_duplicate_keys)
{
	struct ydoc *d = parse("name: a\nport: 1\nname: b\n");
	check_one_problem(d, "duplicate-key", 3, 1,
			  "duplicate key 'name' (first at line 1, column 1)");
	const struct ydoc_node *r = ydoc_root(d, 0);
	CHECK_INT(r->n, 2);
	CHECK(scalar_eq(ydoc_map_get(r, "name"), "a")); /* the first pair is kept */
	ydoc_free(d);
	d = parse("outer:\n  k: 1\n  j: 2\n  k: 3\nother:\n  k: 4\n");
	check_one_problem(d, "duplicate-key", 4, 3,
			  "duplicate key 'k' (first at line 2, column 3)");
	CHECK_INT(ydoc_map_get(ydoc_root(d, 0), "outer")->n, 2);
	ydoc_free(d);
	d = parse("{a: 1, b: 2, a: 3, 'a': 4}");
	CHECK_INT(ydoc_nproblems(d), 2);
	CHECK_STR(ydoc_problem(d, 0)->msg, "duplicate key 'a' (first at line 1, column 2)");
	CHECK_INT(ydoc_problem(d, 0)->col, 14);
	CHECK_INT(ydoc_problem(d, 1)->col, 20);
	CHECK_INT(ydoc_root(d, 0)->n, 2);
	ydoc_free(d);
	/* same keys in sibling and nested mappings are fine; every duplicate
	 * is reported and parsing goes on */
	d = parse("x: {k: 1, x: 2}\ny: [{k: 1}, {k: 2, k: 3}]\nx: 5\nz: {a: 1, a: 2}\n");
	CHECK_INT(ydoc_nproblems(d), 3);
	CHECK_INT(ydoc_problem(d, 0)->line, 2);
	CHECK_INT(ydoc_problem(d, 0)->col, 20);
	CHECK_INT(ydoc_problem(d, 1)->line, 3);
	CHECK_INT(ydoc_problem(d, 2)->line, 4);
	CHECK_INT(ydoc_ndocs(d), 1);
	CHECK_INT(ydoc_root(d, 0)->n, 3);
	ydoc_free(d);
	/* long keys are cut at 60 bytes, control characters shown as '?' */
	d = parse(
	    "\"a\\nbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\": 1\n"
	    "\"a\\nbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\": 2\n");
	check_one_problem(
	    d, "duplicate-key", 2, 1,
	    "duplicate key 'a?bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb...' "
	    "(first at line 1, column 1)");
	ydoc_free(d);
}

TEST(ydoc_non_scalar_keys_and_merge_keys)
{
	struct ydoc *d = parse("? [a, b]\n: 1\n? [a, b]\n: 2\n{x: 1}: 3\n");
	CHECK_INT(ydoc_nproblems(d), 0);
	const struct ydoc_node *r = ydoc_root(d, 0);
	CHECK_INT(r->n, 3);
	CHECK_INT(r->pairs[0].key->kind, YDOC_SEQ);
	CHECK_INT(r->pairs[2].key->kind, YDOC_MAP);
	CHECK(ydoc_map_get(r, "a") == NULL);
	ydoc_free(d);
	/* merge keys are ordinary keys */
	d = parse("base: &b {x: 1}\nc:\n  <<: *b\n  y: 2\n");
	CHECK_INT(ydoc_nproblems(d), 0);
	const struct ydoc_node *c = ydoc_map_get(ydoc_root(d, 0), "c");
	CHECK_INT(c->n, 2);
	CHECK(scalar_eq(c->pairs[0].key, "<<"));
	CHECK(ydoc_map_get(c, "<<")->kind == YDOC_MAP);
	CHECK(ydoc_map_get(c, "x") == NULL);
	ydoc_free(d);
}

TEST(ydoc_survives_nul_bytes_and_bad_utf8)
{
	struct ydoc *d = ydoc_parse("a: x\0y\n", 7, NULL);
	check_one_problem(d, "yaml-syntax", 1, 5, "control characters are not allowed (#x0)");
	ydoc_free(d);
	d = parse("a: 1\nb: \xff\n");
	check_one_problem(d, "yaml-syntax", 2, 4, "invalid leading UTF-8 octet (#xFF)");
	ydoc_free(d);
	d = parse("a: \xc3\n");
	CHECK_INT(ydoc_nproblems(d), 1);
	CHECK_STR(ydoc_problem(d, 0)->rule, "yaml-syntax");
	ydoc_free(d);
	d = ydoc_parse("\0", 1, NULL);
	CHECK_INT(ydoc_nproblems(d), 1);
	ydoc_free(d);
	/* a UTF-16 byte order mark switches the encoding */
	d = ydoc_parse("\xff\xfe"
		       "a\0:\0 \0b\0",
		       10, NULL);
	CHECK_INT(ydoc_nproblems(d), 0);
	CHECK(scalar_eq(ydoc_map_get(ydoc_root(d, 0), "a"), "b"));
	ydoc_free(d);
}

TEST(ydoc_parses_json)
{
	struct ydoc *d = parse("{\"name\": \"api\", \"ports\": [80, 2.5, true, null, \"x\"],\n"
			       " \"env\": {\"A\": \"\\u00e9\"}, \"empty\": [], \"obj\": {}}\n");
	CHECK_INT(ydoc_nproblems(d), 0);
	const struct ydoc_node *r = ydoc_root(d, 0);
	CHECK(scalar_eq(ydoc_map_get(r, "name"), "api"));
	const struct ydoc_node *p = ydoc_map_get(r, "ports");
	CHECK(p && p->n == 5);
	CHECK_INT(ydoc_scalar_type(p->items[0]), YDOC_T_INT);
	CHECK_INT(ydoc_scalar_type(p->items[1]), YDOC_T_FLOAT);
	CHECK_INT(ydoc_scalar_type(p->items[2]), YDOC_T_BOOL);
	CHECK_INT(ydoc_scalar_type(p->items[3]), YDOC_T_NULL);
	CHECK_INT(ydoc_scalar_type(p->items[4]), YDOC_T_STR);
	CHECK(scalar_eq(ydoc_map_get(ydoc_map_get(r, "env"), "A"), "\xc3\xa9"));
	CHECK_INT(ydoc_map_get(r, "empty")->n, 0);
	CHECK_INT(ydoc_map_get(r, "empty")->kind, YDOC_SEQ);
	CHECK_INT(ydoc_map_get(r, "obj")->kind, YDOC_MAP);
	CHECK_INT(ydoc_map_get(r, "env")->line, 2);
	ydoc_free(d);
}

TEST(ydoc_map_get_compares_whole_keys)
{
	struct ydoc *d = parse("\"a\\0b\": 1\nab: 2\na: 3\n");
	const struct ydoc_node *r = ydoc_root(d, 0);
	CHECK_INT(r->n, 3);
	CHECK(scalar_eq(ydoc_map_get(r, "a"), "3"));
	CHECK(scalar_eq(ydoc_map_get(r, "ab"), "2"));
	CHECK(ydoc_map_get(r, "") == NULL);
	ydoc_free(d);
}

/* The harness ends each test child with _exit(), which skips
 * LeakSanitizer's exit check: this test runs it itself (in the asan build)
 * after the paths that stop with collections, anchors and keys still open. */
TEST(ydoc_frees_everything)
{
	static const char *const inputs[] = {
	    "a: &x [1, {b: &y c, d: [*y, &z e]}]\nf: *x\n",
	    "a: &x [1, {b: &y c, d: [*y, &z e]}\nf: *x\n",  /* syntax error inside */
	    "a: &x [1, {b: &y c, d: [*y, &z e, *q]}]\n",    /* undefined alias inside */
	    "a: &x [1, {b: &y c, d: [*y, &z e, *x]}]\n",    /* recursive alias */
	    "{a: 1, a: 2, b: {c: 1, c: 2}}\n--- &r [*r]\n", /* duplicates, then recursion */
	    ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, "
	     "*a]\n"
	     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, "
	     "*c, *c, *c]\n"),
	    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]\n",
	};
	static const size_t problems[] = {0, 1, 1, 1, 3, 1, 1};
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		struct ydoc *d = parse(inputs[i]);
		if (ydoc_nproblems(d) != problems[i])
			harness_fail(__FILE__, __LINE__, "input %zu: %zu problems, expected %zu", i,
				     ydoc_nproblems(d), problems[i]);
		ydoc_free(d);
	}
#ifdef HAVE_LSAN
	CHECK_INT(__lsan_do_recoverable_leak_check(), 0);
#endif
}
