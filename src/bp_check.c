/* bp_check: read one blueprint document into a struct bp and report every
 * problem (BLUEPRINT.md "What lint reports"). Positions: the key for an
 * unknown, exclusive or forbidden field; the value for a bad value; the
 * document's mapping for a missing field. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bp_int.h"
#include "suggest.h"
#include "xalloc.h"

struct ck {
	struct bp *bp;
	const char *file;
	struct diag_list *diags;
};

#define REPORT(c, node, rule, ...)                                                                 \
	bp_report((c)->bp, (c)->file, (c)->diags, (node)->line, (node)->col, BP_R_##rule,          \
		  __VA_ARGS__)

/* Values are quoted in messages up to this many bytes. */
#define Q "%.100s"

/* --- node helpers ------------------------------------------------------- */

static const char *kind_name(const struct ydoc_node *n)
{
	if (n->kind == YDOC_MAP)
		return "a mapping";
	if (n->kind == YDOC_SEQ)
		return "a list";
	switch (ydoc_scalar_type(n)) {
	case YDOC_T_NULL:
		return "empty (null)";
	case YDOC_T_BOOL:
		return "a boolean";
	case YDOC_T_INT:
		return "an integer";
	case YDOC_T_FLOAT:
		return "a decimal number";
	default:
		return "a string";
	}
}

static int is_str(const struct ydoc_node *n)
{
	return n->kind == YDOC_SCALAR && ydoc_scalar_type(n) == YDOC_T_STR;
}

/* A scalar that is not null or a boolean: its text is usable as written. */
static int is_text(const struct ydoc_node *n)
{
	if (n->kind != YDOC_SCALAR)
		return 0;
	enum ydoc_type t = ydoc_scalar_type(n);
	return t != YDOC_T_NULL && t != YDOC_T_BOOL;
}

/* The scalar's text, or NULL (reported) when it holds a NUL byte. */
static char *text_of(struct ck *c, const char *path, const struct ydoc_node *n)
{
	if (memchr(n->str, '\0', n->len)) {
		REPORT(c, n, TYPE, "`%s` contains a NUL byte", path);
		return NULL;
	}
	return xstrndup(n->str, n->len);
}

static char *want_str(struct ck *c, const char *path, const struct ydoc_node *n)
{
	if (!is_str(n)) {
		REPORT(c, n, TYPE, "`%s` must be a string, not %s", path, kind_name(n));
		return NULL;
	}
	return text_of(c, path, n);
}

static int want_int(struct ck *c, const char *path, const struct ydoc_node *n, long long *out)
{
	if (n->kind != YDOC_SCALAR || ydoc_scalar_type(n) != YDOC_T_INT) {
		REPORT(c, n, TYPE, "`%s` must be an integer, not %s", path, kind_name(n));
		return -1;
	}
	if (ydoc_get_int(n, out) < 0) {
		REPORT(c, n, RANGE, "`%s` `" Q "` is far too large", path, n->str);
		return -1;
	}
	return 0;
}

static int want_bool(struct ck *c, const char *path, const struct ydoc_node *n, int *out)
{
	if (n->kind != YDOC_SCALAR || ydoc_scalar_type(n) != YDOC_T_BOOL ||
	    ydoc_get_bool(n, out) < 0) {
		REPORT(c, n, TYPE, "`%s` must be a boolean (true or false), not %s", path,
		       kind_name(n));
		return -1;
	}
	return 0;
}

static int want_map(struct ck *c, const char *path, const struct ydoc_node *n)
{
	if (n->kind != YDOC_MAP) {
		REPORT(c, n, TYPE, "`%s` must be a mapping, not %s", path, kind_name(n));
		return -1;
	}
	return 0;
}

/* The pair later in the document, for "not both" findings. */
static const struct ydoc_pair *later(const struct ydoc_pair *a, const struct ydoc_pair *b)
{
	if (a->key->line != b->key->line)
		return a->key->line > b->key->line ? a : b;
	return a->key->col > b->key->col ? a : b;
}

/* Sort the pairs of map into found[] by key (keys[]), reporting unknown
 * keys. where: the mapping's name in messages, NULL at the top level (where
 * keys starting with x- are the user's own and are skipped). */
static void read_keys(struct ck *c, const struct ydoc_node *map, const char *where,
		      const char *const *keys, size_t nkeys, const struct ydoc_pair **found)
{
	for (size_t i = 0; i < map->n; i++) {
		const struct ydoc_pair *p = &map->pairs[i];
		const struct ydoc_node *k = p->key;
		if (k->kind != YDOC_SCALAR) {
			REPORT(c, k, TYPE, "a key must be a string, not %s", kind_name(k));
			continue;
		}
		if (!where && strncmp(k->str, "x-", 2) == 0)
			continue;
		size_t j = 0;
		if (strlen(k->str) == k->len)
			for (; j < nkeys && strcmp(k->str, keys[j]) != 0; j++)
				;
		else
			j = nkeys;
		if (j < nkeys) {
			found[j] = p;
			continue;
		}
		const char *s =
		    strlen(k->str) == k->len ? suggest_closest(k->str, keys, nkeys) : NULL;
		char in[64] = "";
		if (where)
			snprintf(in, sizeof in, " in `%s`", where);
		if (s) {
			REPORT(c, k, UNKNOWN_KEY, "unknown key `" Q "`%s; did you mean `%s`?",
			       k->str, in, s);
		} else if (where) {
			char list[256] = "";
			for (size_t m = 0; m < nkeys; m++)
				snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
					 m ? ", " : "", keys[m]);
			REPORT(c, k, UNKNOWN_KEY, "unknown key `" Q "`%s; it takes %s", k->str, in,
			       list);
		} else {
			REPORT(c, k, UNKNOWN_KEY,
			       "unknown key `" Q
			       "`; your own data can go under a key starting with `x-`",
			       k->str);
		}
	}
}

/* Index of the string value n in names[0..count), or -1 (reported). */
static int want_enum(struct ck *c, const char *path, const struct ydoc_node *n,
		     const char *const *names, size_t count)
{
	if (!is_str(n)) {
		REPORT(c, n, TYPE, "`%s` must be a string, not %s", path, kind_name(n));
		return -1;
	}
	for (size_t i = 0; i < count; i++)
		if (strcmp(n->str, names[i]) == 0 && strlen(n->str) == n->len)
			return (int)i;
	char list[256] = "";
	for (size_t i = 0; i < count; i++)
		snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
			 names[i]);
	const char *s = suggest_closest(n->str, names, count);
	if (s)
		REPORT(c, n, ENUM, "`%s` must be one of %s, not `" Q "`; did you mean `%s`?", path,
		       list, n->str, s);
	else
		REPORT(c, n, ENUM, "`%s` must be one of %s, not `" Q "`", path, list, n->str);
	return -1;
}

/* --- value syntaxes ------------------------------------------------------ */

/* RFC 1123 label rules, stricter: 2-63 of [a-z0-9-], a letter first, no
 * '-' last, no "--" (reserved for punycode-like prefixes). */
static const char *check_name(const char *s)
{
	size_t n = strlen(s);
	if (n < 2 || n > 63)
		return "must be 2 to 63 characters long";
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
			return isupper((unsigned char)s[i]) ? "must be lowercase"
							    : "may only hold a-z, 0-9 and '-'";
	if (!islower((unsigned char)s[0]))
		return "must start with a letter";
	if (s[n - 1] == '-')
		return "must not end with '-'";
	if (strstr(s, "--"))
		return "must not contain \"--\"";
	return NULL;
}

static int is_env_name(const char *s)
{
	if (!(isalpha((unsigned char)*s) || *s == '_'))
		return 0;
	for (s++; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '_'))
			return 0;
	return 1;
}

static int has_space_or_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return 1;
	return 0;
}

/* The host of an URL authority ([user@]host[:port]) must not look like an
 * option: ssh and git would read "-oProxyCommand=..." as one. */
static const char *check_authority(const char *a, size_t n)
{
	const char *at = memchr(a, '@', n);
	if (at) {
		n -= (size_t)(at + 1 - a);
		a = at + 1;
	}
	if (n == 0 || *a == ':')
		return "has no host";
	if (*a == '-')
		return "has a host starting with '-', which ssh would read as an option (refused "
		       "for "
		       "safety)";
	return NULL;
}

static const char *check_url(const char *u)
{
	if (!*u)
		return "is empty";
	if (*u == '-')
		return "starts with '-', which git would read as an option (refused for safety)";
	if (has_space_or_ctl(u))
		return "contains a space or control character";
	const char *rest = NULL;
	if (strncmp(u, "https://", 8) == 0)
		rest = u + 8;
	else if (strncmp(u, "ssh://", 6) == 0)
		rest = u + 6;
	if (rest) {
		size_t n = strcspn(rest, "/");
		const char *e = check_authority(rest, n);
		if (e)
			return e;
		if (!rest[n] || !rest[n + 1])
			return "has no repository path";
		return NULL;
	}
	if (strncmp(u, "file://", 7) == 0)
		return u[7] == '/' && u[8]
			   ? NULL
			   : "must give an absolute path, e.g. `file:///srv/git/app.git`";
	if (strncmp(u, "http://", 7) == 0)
		return "uses plain http, which is not safe: use https://";
	if (strstr(u, "://"))
		return "uses an unsupported scheme: use https://, ssh://, git@host:path or file://";
	/* scp-like: user@host:path */
	const char *at = strchr(u, '@'), *colon = strchr(u, ':');
	if (at && colon && at < colon && at > u) {
		for (const char *p = u; p < at; p++)
			if (!(isalnum((unsigned char)*p) || strchr("._-", *p)))
				return "has an invalid user name before '@'";
		const char *e = check_authority(at + 1, (size_t)(colon - at - 1));
		if (e)
			return e;
		if (memchr(at + 1, '/', (size_t)(colon - at - 1)))
			return "is not a git url: use https://host/path, git@host:path or "
			       "ssh://host/path";
		if (!colon[1])
			return "has no repository path after ':'";
		return NULL;
	}
	return "is not a git url: use https://host/path, git@host:path, ssh://host/path or "
	       "file:///path";
}

/* git check-ref-format, for a branch name (one level allowed). */
static const char *check_ref(const char *s, char *buf, size_t buflen)
{
	size_t n = strlen(s);
	if (n == 0)
		return "is empty";
	if (*s == '-')
		return "starts with '-', which git would read as an option (refused for safety)";
	if (strcmp(s, "@") == 0)
		return "is `@`, which git reserves";
	for (const char *p = s; *p; p++) {
		if ((unsigned char)*p < ' ' || *p == 0x7f)
			return "contains a control character";
		if (*p == ' ')
			return "contains a space";
		if (strchr("~^:?*[\\", *p)) {
			snprintf(buf, buflen, "contains `%c`", *p);
			return buf;
		}
	}
	if (strstr(s, ".."))
		return "contains `..`";
	if (strstr(s, "@{"))
		return "contains `@{`";
	if (*s == '/' || s[n - 1] == '/' || strstr(s, "//"))
		return "has an empty component (a leading, trailing or doubled '/')";
	if (s[n - 1] == '.')
		return "ends with '.'";
	for (const char *comp = s; comp; comp = strchr(comp, '/') ? strchr(comp, '/') + 1 : NULL) {
		size_t len = strcspn(comp, "/");
		if (*comp == '.')
			return "has a component starting with '.'";
		if (len >= 5 && strncmp(comp + len - 5, ".lock", 5) == 0)
			return "has a component ending with `.lock`";
	}
	return NULL;
}

static int is_lower_alnum(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

/* One path component of an image name:
 * [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static const char *check_image_component(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (isupper((unsigned char)p[i]))
			return "must be lowercase";
	if (n == 0)
		return "has an empty path component";
	if (!is_lower_alnum(p[0]) || !is_lower_alnum(p[n - 1]))
		return "has a path component that does not start and end with a letter or digit";
	for (size_t i = 0; i < n; i++) {
		if (is_lower_alnum(p[i]) || p[i] == '-')
			continue;
		if (p[i] == '.' && is_lower_alnum(p[i + 1]))
			continue;
		if (p[i] == '_' &&
		    (is_lower_alnum(p[i + 1]) || (p[i + 1] == '_' && is_lower_alnum(p[i + 2])))) {
			if (p[i + 1] == '_')
				i++;
			continue;
		}
		return "has a character that is not allowed in an image name";
	}
	return NULL;
}

/* [registry[:port]/]path[:tag][@sha256:hex] (the distribution reference
 * grammar). */
static const char *check_image(const char *s)
{
	if (!*s)
		return "is empty";
	if (has_space_or_ctl(s))
		return "contains a space or control character";
	const char *end = s + strlen(s);
	const char *at = strchr(s, '@');
	if (at) {
		const char *d = at + 1;
		size_t hexlen = strncmp(d, "sha256:", 7) == 0	? 64
				: strncmp(d, "sha512:", 7) == 0 ? 128
								: 0;
		if (!hexlen || strlen(d + 7) != hexlen ||
		    strspn(d + 7, "0123456789abcdef") != hexlen)
			return "has an invalid digest: use @sha256: and 64 lowercase hex digits";
		end = at;
	}
	const char *slash = NULL;
	for (const char *p = s; p < end; p++)
		if (*p == '/')
			slash = p;
	const char *colon =
	    memchr(slash ? slash + 1 : s, ':', (size_t)(end - (slash ? slash + 1 : s)));
	if (colon) {
		const char *t = colon + 1;
		size_t tn = (size_t)(end - t);
		if (tn == 0 || tn > 128 || !(isalnum((unsigned char)*t) || *t == '_'))
			return "has an invalid tag: 1-128 of letters, digits, '_', '.', '-', not "
			       "starting "
			       "with '.' or '-'";
		for (size_t i = 0; i < tn; i++)
			if (!(isalnum((unsigned char)t[i]) || strchr("_.-", t[i])))
				return "has an invalid tag: 1-128 of letters, digits, '_', '.', "
				       "'-', not "
				       "starting with '.' or '-'";
		end = colon;
	}
	if (end - s > 255)
		return "has a name longer than 255 characters";
	const char *p = s;
	const char *first_end = memchr(s, '/', (size_t)(end - s));
	if (first_end) {
		size_t n = (size_t)(first_end - s);
		int registry = memchr(s, '.', n) || memchr(s, ':', n) ||
			       (n == 9 && strncmp(s, "localhost", 9) == 0);
		for (size_t i = 0; i < n && !registry; i++)
			registry = isupper((unsigned char)s[i]);
		if (registry) {
			const char *pc = memchr(s, ':', n);
			size_t hn = pc ? (size_t)(pc - s) : n;
			if (hn == 0 || s[0] == '-' || s[0] == '.')
				return "has an invalid registry host";
			for (size_t i = 0; i < hn; i++)
				if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '.'))
					return "has an invalid registry host";
			if (pc) {
				size_t pn = n - hn - 1;
				if (pn == 0 || pn > 5 || strspn(pc + 1, "0123456789") < pn)
					return "has an invalid registry port";
			}
			p = first_end + 1;
		}
	}
	while (p <= end) {
		const char *q = memchr(p, '/', (size_t)(end - p));
		if (!q)
			q = end;
		const char *e = check_image_component(p, (size_t)(q - p));
		if (e)
			return e;
		p = q + 1;
	}
	return NULL;
}

/* A path inside the source tree: relative, no ".." component. */
static const char *check_rel_path(const char *s)
{
	if (!*s)
		return "is empty";
	if (*s == '/')
		return "is absolute: give a path relative to the source tree";
	for (const char *comp = s; comp; comp = strchr(comp, '/') ? strchr(comp, '/') + 1 : NULL)
		if (strncmp(comp, "..", 2) == 0 && (comp[2] == '/' || comp[2] == '\0'))
			return "escapes the source tree with `..`";
	return NULL;
}

static const char *check_domain(const char *s)
{
	if (strstr(s, "://"))
		return "has a scheme: give only the hostname, e.g. `app.example.org`";
	if (strchr(s, '/'))
		return "has a path: give only the hostname, e.g. `app.example.org`";
	if (strchr(s, ':'))
		return "has a port: give only the hostname (the proxy serves 80 and 443)";
	size_t n = strlen(s);
	if (n == 0)
		return "is empty";
	if (n > 253)
		return "is longer than 253 characters";
	if (!strchr(s, '.'))
		return "needs at least one dot, e.g. `app.example.org`";
	for (const char *l = s; l; l = strchr(l, '.') ? strchr(l, '.') + 1 : NULL) {
		size_t len = strcspn(l, ".");
		if (len == 0)
			return "has an empty label (a leading, trailing or doubled '.')";
		if (len > 63)
			return "has a label longer than 63 characters";
		if (l[0] == '-' || l[len - 1] == '-')
			return "has a label starting or ending with '-'";
		for (size_t i = 0; i < len; i++)
			if (!(isalnum((unsigned char)l[i]) || l[i] == '-'))
				return "may only hold letters, digits, '-' and '.'";
	}
	return NULL;
}

/* --- runtime ------------------------------------------------------------ */

static const char *const runtime_names[] = {"nodejs", "python", "golang", "php",   "ruby",
					    "dotnet", "java",	"static", "docker"};
#define NRUNTIMES (sizeof runtime_names / sizeof *runtime_names)

/* Common names that are not ours. */
static const char *const runtime_aliases[][2] = {
    {"node", "nodejs"},	   {"js", "nodejs"}, {"go", "golang"},
    {"python3", "python"}, {"py", "python"}, {".net", "dotnet"},
};

static enum bp_runtime_type runtime_type(struct ck *c, const char *path, const struct ydoc_node *at,
					 const char *name)
{
	for (size_t i = 0; i < NRUNTIMES; i++)
		if (strcmp(name, runtime_names[i]) == 0)
			return (enum bp_runtime_type)(i + 1);
	const char *s = suggest_closest(name, runtime_names, NRUNTIMES);
	for (size_t i = 0; !s && i < sizeof runtime_aliases / sizeof *runtime_aliases; i++)
		if (strcmp(name, runtime_aliases[i][0]) == 0)
			s = runtime_aliases[i][1];
	if (s)
		REPORT(
		    c, at, ENUM,
		    "`%s` must be one of nodejs, python, golang, php, ruby, dotnet, java, static, "
		    "docker, not `" Q "`; did you mean `%s`?",
		    path, name, s);
	else
		REPORT(
		    c, at, ENUM,
		    "`%s` must be one of nodejs, python, golang, php, ruby, dotnet, java, static, "
		    "docker, not `" Q "`",
		    path, name);
	return BP_RUNTIME_NONE;
}

/* 1-3 parts of 1-9 digits separated by dots. */
static int version_syntax_ok(const char *s)
{
	int parts = 0;
	for (;;) {
		size_t d = strspn(s, "0123456789");
		if (d == 0 || d > 9 || ++parts > 3)
			return 0;
		s += d;
		if (*s == '\0')
			return 1;
		if (*s++ != '.')
			return 0;
	}
}

/* A version written as a plain YAML number is accepted when its text
 * survives being read as a number: `20` and `3.12` are fine (YAML tools
 * read 20 and 3.12), `3.10` is not (read as 3.1), nor is `020` (read as
 * 20). Quoting is always right, and the messages say so. Returns the text
 * as YAML reads it when it differs, else NULL. */
static char *misread_number(const struct ydoc_node *n)
{
	if (n->style != YDOC_PLAIN || n->tag)
		return NULL;
	enum ydoc_type t = ydoc_scalar_type(n);
	if (t != YDOC_T_INT && t != YDOC_T_FLOAT)
		return NULL;
	const char *s = n->str;
	size_t len = strlen(s);
	if (strspn(s, "0123456789.") != len || !version_syntax_ok(s))
		return NULL; /* 0x1f, 1e3, .5: not versions at all, said elsewhere */
	const char *dot = strchr(s, '.');
	size_t intlen = dot ? (size_t)(dot - s) : len;
	int leading = intlen > 1 && s[0] == '0';
	int trailing = dot && len > intlen + 1 && s[len - 1] == '0';
	if (!leading && !trailing)
		return NULL;
	const char *a = s;
	while (leading && a[0] == '0' && a + 1 < s + intlen)
		a++;
	size_t e = len - (size_t)(a - s);
	if (trailing) {
		while (e > 0 && a[e - 1] == '0')
			e--;
		if (e > 0 && a[e - 1] == '.')
			e--;
	}
	return xstrndup(a, e);
}

/* Built-in end-of-life table (no network): a version range of a runtime
 * and the day its last line went out of support. Only ranges already past
 * their end of life when the table was written (November 2026) are listed,
 * so a supported version never warns until the table is updated, and tests
 * stay stable. Versions with only a major number match a range only when
 * the range covers every minor of that major.
 *   python  <= 3.7 2023-06-27, 3.8 2024-10-07, 3.9 2025-10-31, 3.10 2026-10-31
 *   nodejs  <= 16 2023-09-11, odd majors 6 months after release + 2 months,
 *           18 2025-04-30, 20 2026-04-30
 *   php     <= 7.4 2022-11-28, 8.0 2023-11-26, 8.1 2025-12-31
 *   ruby    <= 2.7 2023-03-31, 3.0 2024-04-23, 3.1 2025-03-26, 3.2 2026-03-31
 *   golang  <= 1.22 2025-02-11, 1.23 2025-08-12, 1.24 2026-02-10
 *   java    <= 7 2022-07-19, 9-10 2018-09-25, 12-16 2021-09-14,
 *           18-20 2023-09-19, 22-24 2026-03-17
 *   dotnet  <= 5 2022-05-10, 6 2024-11-12, 7 2024-05-14, 8-9 2026-11-10 */
struct eol {
	enum bp_runtime_type rt;
	int lo_major, lo_minor, hi_major, hi_minor;
	int date; /* yyyymmdd */
};

#define ANY 999
static const struct eol eol_table[] = {
    {BP_RUNTIME_PYTHON, 0, 0, 3, 7, 20230627},	   {BP_RUNTIME_PYTHON, 3, 8, 3, 8, 20241007},
    {BP_RUNTIME_PYTHON, 3, 9, 3, 9, 20251031},	   {BP_RUNTIME_PYTHON, 3, 10, 3, 10, 20261031},
    {BP_RUNTIME_NODEJS, 0, 0, 16, ANY, 20230911},  {BP_RUNTIME_NODEJS, 17, 0, 17, ANY, 20220601},
    {BP_RUNTIME_NODEJS, 18, 0, 18, ANY, 20250430}, {BP_RUNTIME_NODEJS, 19, 0, 19, ANY, 20230601},
    {BP_RUNTIME_NODEJS, 20, 0, 20, ANY, 20260430}, {BP_RUNTIME_NODEJS, 21, 0, 21, ANY, 20240601},
    {BP_RUNTIME_NODEJS, 23, 0, 23, ANY, 20250601}, {BP_RUNTIME_PHP, 0, 0, 7, ANY, 20221128},
    {BP_RUNTIME_PHP, 8, 0, 8, 0, 20231126},	   {BP_RUNTIME_PHP, 8, 1, 8, 1, 20251231},
    {BP_RUNTIME_RUBY, 0, 0, 2, ANY, 20230331},	   {BP_RUNTIME_RUBY, 3, 0, 3, 0, 20240423},
    {BP_RUNTIME_RUBY, 3, 1, 3, 1, 20250326},	   {BP_RUNTIME_RUBY, 3, 2, 3, 2, 20260331},
    {BP_RUNTIME_GOLANG, 0, 0, 1, 22, 20250211},	   {BP_RUNTIME_GOLANG, 1, 23, 1, 23, 20250812},
    {BP_RUNTIME_GOLANG, 1, 24, 1, 24, 20260210},   {BP_RUNTIME_JAVA, 0, 0, 7, ANY, 20220719},
    {BP_RUNTIME_JAVA, 9, 0, 10, ANY, 20180925},	   {BP_RUNTIME_JAVA, 12, 0, 16, ANY, 20210914},
    {BP_RUNTIME_JAVA, 18, 0, 20, ANY, 20230919},   {BP_RUNTIME_JAVA, 22, 0, 24, ANY, 20260317},
    {BP_RUNTIME_DOTNET, 0, 0, 5, ANY, 20220510},   {BP_RUNTIME_DOTNET, 6, 0, 6, ANY, 20241112},
    {BP_RUNTIME_DOTNET, 7, 0, 7, ANY, 20240514},   {BP_RUNTIME_DOTNET, 8, 0, 9, ANY, 20261110},
};

static int vcmp(int a1, int a2, int b1, int b2)
{
	return a1 != b1 ? (a1 < b1 ? -1 : 1) : a2 != b2 ? (a2 < b2 ? -1 : 1) : 0;
}

static void check_eol(struct ck *c, const struct ydoc_node *at, enum bp_runtime_type rt,
		      const char *version)
{
	int major = atoi(version), minor = -1;
	const char *dot = strchr(version, '.');
	if (dot)
		minor = atoi(dot + 1);
	if (rt == BP_RUNTIME_JAVA && major == 1 && minor >= 0) { /* 1.8 is Java 8 */
		major = minor;
		minor = -1;
	}
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	int today = (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
	for (size_t i = 0; i < sizeof eol_table / sizeof *eol_table; i++) {
		const struct eol *e = &eol_table[i];
		if (e->rt != rt)
			continue;
		int in = minor >= 0 ? vcmp(major, minor, e->lo_major, e->lo_minor) >= 0 &&
					  vcmp(major, minor, e->hi_major, e->hi_minor) <= 0
				    : major >= e->lo_major && major <= e->hi_major &&
					  (major > e->lo_major || e->lo_minor == 0) &&
					  (major < e->hi_major || e->hi_minor == ANY);
		if (in && today > e->date) {
			REPORT(c, at, RUNTIME_EOL,
			       "%s " Q " reached its end of life on %04d-%02d-%02d; upgrade to a "
			       "supported version",
			       bp_runtime_name(rt), version, e->date / 10000, e->date / 100 % 100,
			       e->date % 100);
			return;
		}
	}
}

/* Store the version node n (a mapping's `version` or the flat form's). */
static void read_version(struct ck *c, const char *path, const struct ydoc_node *n)
{
	if (!is_text(n)) {
		REPORT(c, n, TYPE, "`%s` must be a quoted string such as \"3.12\", not %s", path,
		       kind_name(n));
		return;
	}
	char *text = text_of(c, path, n);
	if (!text)
		return;
	char *read_as = misread_number(n);
	if (read_as) {
		REPORT(c, n, RUNTIME_VERSION,
		       "`%s: " Q "` is read by YAML as the number " Q "; quote it: `\"" Q "\"`",
		       path, text, read_as, text);
		free(read_as);
		free(text);
		return;
	}
	if (!version_syntax_ok(text)) {
		REPORT(c, n, RUNTIME_VERSION,
		       "`%s` `" Q
		       "` is not a version: use 1 to 3 numbers separated by dots, quoted, "
		       "e.g. \"3.12\"",
		       path, text);
		free(text);
		return;
	}
	c->bp->runtime.version = text;
}

static void read_runtime(struct ck *c, const struct ydoc_pair *rt, const struct ydoc_pair *ver)
{
	static const char *const keys[] = {"type", "version"};
	const struct ydoc_node *v = rt->value;
	const struct ydoc_node *vat = NULL; /* where the version was given */
	struct bp *bp = c->bp;
	int nerr = bp->nerrors;

	if (v->kind == YDOC_MAP) {
		const struct ydoc_pair *g[2] = {NULL, NULL};
		read_keys(c, v, "runtime", keys, 2, g);
		if (!g[0])
			REPORT(c, v, REQUIRED,
			       "`runtime` needs `type`, e.g. `runtime: {type: nodejs, version: "
			       "\"22\"}`");
		else if (is_str(g[0]->value))
			bp->runtime.type =
			    runtime_type(c, "runtime.type", g[0]->value, g[0]->value->str);
		else
			REPORT(c, g[0]->value, TYPE, "`runtime.type` must be a string, not %s",
			       kind_name(g[0]->value));
		if (g[1]) {
			vat = g[1]->value;
			read_version(c, "runtime.version", vat);
		}
		if (ver)
			REPORT(c, ver->key, UNKNOWN_KEY,
			       "unknown key `version`: with a `runtime` mapping the version goes "
			       "inside "
			       "it, `runtime: {type: ..., version: \"...\"}`");
	} else if (is_str(v)) {
		const char *at = strchr(v->str, '@');
		char *name = xstrndup(v->str, at ? (size_t)(at - v->str) : strlen(v->str));
		bp->runtime.type = runtime_type(c, "runtime", v, name);
		free(name);
		if (at) {
			vat = v;
			if (version_syntax_ok(at + 1))
				bp->runtime.version = xstrdup(at + 1);
			else
				REPORT(c, v, RUNTIME_VERSION,
				       "`runtime` `" Q
				       "` has an invalid version: use 1 to 3 numbers "
				       "separated by dots, e.g. `python@3.12`",
				       v->str);
			if (ver)
				REPORT(c, ver->key, EXCLUSIVE,
				       "`version` and `runtime: " Q
				       "` both give a version; keep one",
				       v->str);
		} else if (ver) {
			vat = ver->value;
			read_version(c, "version", vat);
		}
	} else {
		REPORT(
		    c, v, TYPE,
		    "`runtime` must be a mapping `{type: ..., version: ...}` or a string such as "
		    "`python@3.12`, not %s",
		    kind_name(v));
		return;
	}
	enum bp_runtime_type t = bp->runtime.type;
	if (t == BP_RUNTIME_NONE || bp->nerrors != nerr)
		return;
	if (bp->runtime.version)
		check_eol(c, vat, t, bp->runtime.version);
	else if (!vat && t != BP_RUNTIME_STATIC && t != BP_RUNTIME_DOCKER)
		REPORT(
		    c, v, VERSION_UNPINNED,
		    "the %s version is not pinned; give one (e.g. `%s@X.Y` or `version: \"X.Y\"` "
		    "in `runtime`) so a deploy does not change it unnoticed",
		    bp_runtime_name(t), bp_runtime_name(t));
}

/* --- fields ------------------------------------------------------------- */

static void read_remote(struct ck *c, const struct ydoc_node *v)
{
	static const char *const keys[] = {"url", "branch", "commit_hash"};
	const struct ydoc_pair *g[3] = {NULL, NULL, NULL};
	char buf[64];
	if (want_map(c, "remote", v) < 0)
		return;
	read_keys(c, v, "remote", keys, 3, g);
	if (!g[0]) {
		REPORT(c, v, REQUIRED, "`remote` needs `url`, the git repository to deploy from");
	} else {
		char *s = want_str(c, "remote.url", g[0]->value);
		const char *e = s ? check_url(s) : NULL;
		if (e) {
			REPORT(c, g[0]->value, REMOTE_URL, "`remote.url` `" Q "` %s", s, e);
			free(s);
		} else {
			c->bp->remote.url = s;
		}
	}
	if (g[1]) {
		char *s = want_str(c, "remote.branch", g[1]->value);
		const char *e = s ? check_ref(s, buf, sizeof buf) : NULL;
		if (e) {
			REPORT(c, g[1]->value, GIT_REF,
			       "`remote.branch` `" Q "` is not a valid git branch name: it %s", s,
			       e);
			free(s);
		} else {
			c->bp->remote.branch = s;
		}
	}
	if (g[2]) {
		const struct ydoc_node *h = g[2]->value;
		if (!is_text(h)) {
			REPORT(c, h, TYPE, "`remote.commit_hash` must be a string, not %s",
			       kind_name(h));
		} else {
			char *s = text_of(c, "remote.commit_hash", h);
			size_t n = s ? strlen(s) : 0;
			if (s && (n < 7 || n > 40 || strspn(s, "0123456789abcdefABCDEF") != n)) {
				REPORT(c, h, COMMIT_HASH,
				       "`remote.commit_hash` `" Q "` must be 7 to 40 hex digits",
				       s);
				free(s);
			} else {
				c->bp->remote.commit_hash = s;
			}
		}
	}
}

static void read_health(struct ck *c, const struct ydoc_node *v)
{
	static const char *const keys[] = {"path",    "tcp",	      "command", "interval",
					   "timeout", "start_period", "retries"};
	struct bp *bp = c->bp;
	const struct ydoc_node *path = NULL;
	const struct ydoc_pair *g[7] = {NULL};

	if (v->kind == YDOC_MAP) {
		read_keys(c, v, "health_check", keys, 7, g);
		const struct ydoc_pair *kind = NULL;
		for (int i = 0; i < 3; i++) {
			if (!g[i])
				continue;
			if (kind) {
				const struct ydoc_pair *l = later(kind, g[i]);
				REPORT(c, l->key, EXCLUSIVE,
				       "`health_check` takes one of `path`, `tcp` and `command`, "
				       "not both "
				       "`%s` and `%s`",
				       (l == g[i] ? kind : g[i])->key->str, l->key->str);
				continue;
			}
			kind = g[i];
		}
		if (!kind)
			REPORT(
			    c, v, REQUIRED,
			    "`health_check` needs one of `path` (HTTP), `tcp: true` or `command`");
		else if (kind == g[0])
			path = g[0]->value;
		else if (kind == g[1]) {
			int b;
			if (want_bool(c, "health_check.tcp", g[1]->value, &b) == 0) {
				if (b)
					bp->health_check.kind = BP_HEALTH_TCP;
				else
					REPORT(c, g[1]->value, HEALTH_CHECK,
					       "`health_check.tcp` can only be true; use `path` or "
					       "`command` for another kind of check");
			}
		} else {
			char *s = want_str(c, "health_check.command", g[2]->value);
			if (s && !*s) {
				REPORT(c, g[2]->value, HEALTH_CHECK,
				       "`health_check.command` is empty");
				free(s);
			} else if (s) {
				bp->health_check.kind = BP_HEALTH_COMMAND;
				bp->health_check.command = s;
			}
		}
	} else if (is_str(v)) {
		path = v;
	} else {
		REPORT(c, v, TYPE,
		       "`health_check` must be a path such as `/healthz` or a mapping, not %s",
		       kind_name(v));
		return;
	}
	if (path) {
		const char *name = path == v ? "health_check" : "health_check.path";
		char *s = want_str(c, name, path);
		const char *e = NULL;
		if (s && strstr(s, "://"))
			e = "is a full url: give only the path, e.g. `/healthz`; the check goes to "
			    "the "
			    "service itself";
		else if (s && *s != '/')
			e = "must start with '/', e.g. `/healthz`";
		else if (s && has_space_or_ctl(s))
			e = "contains a space or control character";
		if (e) {
			REPORT(c, path, HEALTH_CHECK, "`%s` `" Q "` %s", name, s, e);
			free(s);
		} else if (s) {
			bp->health_check.kind = BP_HEALTH_HTTP;
			bp->health_check.path = s;
		}
	}
	bp->health_check.interval_ms = BP_HEALTH_INTERVAL_MS;
	bp->health_check.timeout_ms = BP_HEALTH_TIMEOUT_MS;
	bp->health_check.retries = BP_HEALTH_RETRIES;
	long long *dur[3] = {&bp->health_check.interval_ms, &bp->health_check.timeout_ms,
			     &bp->health_check.start_period_ms};
	for (int i = 0; i < 3; i++) {
		if (!g[3 + i])
			continue;
		const struct ydoc_node *d = g[3 + i]->value;
		char path_[40], err[128];
		snprintf(path_, sizeof path_, "health_check.%s", keys[3 + i]);
		if (!is_text(d)) {
			REPORT(c, d, TYPE, "`%s` must be a duration such as `5s`, not %s", path_,
			       kind_name(d));
			continue;
		}
		long long ms;
		if (bp_parse_duration(d->str, &ms, err, sizeof err) < 0)
			REPORT(c, d, DURATION, "`%s` `" Q "` %s", path_, d->str, err);
		else if (ms == 0 && i < 2)
			REPORT(c, d, DURATION, "`%s` must be more than 0", path_);
		else
			*dur[i] = ms;
	}
	long long r;
	if (g[6] && want_int(c, "health_check.retries", g[6]->value, &r) == 0) {
		if (r < 1 || r > 100)
			REPORT(c, g[6]->value, RANGE,
			       "`health_check.retries` must be from 1 to 100, not %lld", r);
		else
			bp->health_check.retries = (int)r;
	}
}

static void add_domain(struct ck *c, const char *path, const struct ydoc_node *n)
{
	char *s = want_str(c, path, n);
	const char *e = s ? check_domain(s) : NULL;
	if (e) {
		REPORT(c, n, DOMAIN, "`%s` `" Q "` %s", path, s, e);
		free(s);
	} else if (s) {
		c->bp->domains = xrealloc(c->bp->domains, (c->bp->ndomains + 1) * sizeof(char *));
		c->bp->domains[c->bp->ndomains++] = s;
	}
}

static void read_env(struct ck *c, const struct ydoc_node *v)
{
	struct bp *bp = c->bp;
	size_t cap = 0;
	if (want_map(c, "env_vars", v) < 0)
		return;
	for (size_t i = 0; i < v->n; i++) {
		const struct ydoc_node *k = v->pairs[i].key, *val = v->pairs[i].value;
		if (k->kind != YDOC_SCALAR) {
			REPORT(c, k, TYPE, "a key of `env_vars` must be a string, not %s",
			       kind_name(k));
			continue;
		}
		if (strlen(k->str) != k->len || !is_env_name(k->str)) {
			REPORT(c, k, ENV_NAME,
			       "`env_vars` key `" Q
			       "` is not a valid variable name: use letters, digits "
			       "and '_', not starting with a digit",
			       k->str);
			continue;
		}
		if (strcmp(k->str, "PORT") == 0)
			REPORT(c, k, PORT_ENV,
			       "`PORT` in `env_vars` is overridden: dployr sets `PORT` for the "
			       "service; "
			       "remove it and set `port` instead");
		char path[128];
		snprintf(path, sizeof path, "env_vars." Q, k->str);
		if (val->kind == YDOC_SCALAR && ydoc_scalar_type(val) == YDOC_T_NULL) {
			REPORT(c, k, TYPE,
			       "`%s` has no value; write `%s: \"\"` for an empty string", path,
			       k->str);
			continue;
		}
		if (val->kind != YDOC_SCALAR) {
			REPORT(c, val, TYPE,
			       "`%s` must be a scalar (string, number or boolean), not %s", path,
			       kind_name(val));
			continue;
		}
		char *value = text_of(c, path, val);
		if (!value)
			continue;
		XGROW(bp->env_vars, cap, bp->nenv_vars + 1);
		bp->env_vars[bp->nenv_vars].name = xstrdup(k->str);
		bp->env_vars[bp->nenv_vars++].value = value;
	}
}

/* Append secret name n (and its value, mapping form); arrays hold room. */
static void add_secret(struct ck *c, const struct ydoc_node *n, const char *value,
		       const struct ydoc_node **nodes)
{
	struct bp *bp = c->bp;
	if (!is_str(n)) {
		REPORT(c, n, TYPE, "a secret name must be a string, not %s", kind_name(n));
		return;
	}
	if (strlen(n->str) != n->len || !is_env_name(n->str)) {
		REPORT(c, n, ENV_NAME,
		       "secret name `" Q
		       "` is not a valid variable name: use letters, digits and '_', "
		       "not starting with a digit",
		       n->str);
		return;
	}
	bp->secrets[bp->nsecrets] = xstrdup(n->str);
	if (value)
		bp->secret_values[bp->nsecrets] = xstrdup(value);
	nodes[bp->nsecrets++] = n;
}

static void read_secrets(struct ck *c, const struct ydoc_pair *p)
{
	const struct ydoc_node *v = p->value;
	struct bp *bp = c->bp;
	if (v->kind != YDOC_SEQ && v->kind != YDOC_MAP) {
		REPORT(c, v, TYPE, "`secrets` must be a list of names, not %s", kind_name(v));
		return;
	}
	const struct ydoc_node **nodes = xcalloc(v->n + 1, sizeof *nodes);
	bp->secrets = xcalloc(v->n + 1, sizeof *bp->secrets);
	if (v->kind == YDOC_SEQ) {
		for (size_t i = 0; i < v->n; i++)
			add_secret(c, v->items[i], NULL, nodes);
	} else {
		bp->secrets_have_values = 1;
		bp->secret_values = xcalloc(v->n + 1, sizeof *bp->secret_values);
		REPORT(c, p->key, SECRET_VALUE,
		       "`secrets` gives values, so they are committed with the file; list only the "
		       "names (`secrets: [NAME]`) and set values with `dployr secret set`");
		for (size_t i = 0; i < v->n; i++) {
			const struct ydoc_node *val = v->pairs[i].value;
			if (val->kind != YDOC_SCALAR) {
				REPORT(c, val, TYPE, "a secret value must be a scalar, not %s",
				       kind_name(val));
				continue;
			}
			add_secret(c, v->pairs[i].key,
				   ydoc_scalar_type(val) == YDOC_T_NULL ? "" : val->str, nodes);
		}
	}
	for (size_t i = 0; i < bp->nsecrets; i++)
		for (size_t j = 0; j < bp->nenv_vars; j++)
			if (strcmp(bp->secrets[i], bp->env_vars[j].name) == 0)
				REPORT(c, nodes[i], SECRET_IN_ENV,
				       "secret `%s` is also set in `env_vars`; remove it from "
				       "`env_vars` "
				       "(set the value with `dployr secret set`)",
				       bp->secrets[i]);
	free(nodes);
}

static void read_strv(struct ck *c, const char *path, const struct ydoc_node *v, char ***out,
		      size_t *n)
{
	size_t cap = 0;
	if (v->kind != YDOC_SEQ) {
		REPORT(c, v, TYPE, "`%s` must be a list of strings, not %s", path, kind_name(v));
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		char *s = want_str(c, path, v->items[i]);
		if (!s)
			continue;
		XGROW(*out, cap, *n + 1);
		(*out)[(*n)++] = s;
	}
}

/* "0.5", "2", "500m" -> millicores. */
static int parse_cpu(const char *s, int *millis)
{
	long long v = 0;
	int frac = 0, scale = 1000;
	const char *p = s;
	if (!isdigit((unsigned char)*p))
		return -1;
	while (isdigit((unsigned char)*p) && v < 100000000)
		v = v * 10 + (*p++ - '0');
	if (*p == 'm' && !p[1]) {
		scale = 1;
		p++;
	} else if (*p == '.') {
		p++;
		int digits = 0;
		if (!isdigit((unsigned char)*p))
			return -1;
		for (; isdigit((unsigned char)*p); p++, digits++) {
			if (digits < 3)
				frac = frac * 10 + (*p - '0');
			else if (*p != '0')
				return -1; /* finer than a millicore */
		}
		for (; digits < 3; digits++)
			frac *= 10;
	}
	if (*p)
		return -1;
	long long m = v * scale + frac;
	if (m < 1 || m > 1024000)
		return -1;
	*millis = (int)m;
	return 0;
}

static void read_resources(struct ck *c, const struct ydoc_node *v)
{
	static const char *const keys[] = {"memory", "cpu", "pids"};
	const struct ydoc_pair *g[3] = {NULL, NULL, NULL};
	struct bp *bp = c->bp;
	char err[128];
	if (want_map(c, "resources", v) < 0)
		return;
	read_keys(c, v, "resources", keys, 3, g);
	if (g[0]) {
		const struct ydoc_node *m = g[0]->value;
		if (!is_text(m))
			REPORT(c, m, TYPE,
			       "`resources.memory` must be a size such as `256M`, not %s",
			       kind_name(m));
		else if (bp_parse_memory(m->str, &bp->resources.memory_bytes, err, sizeof err) < 0)
			REPORT(c, m, RESOURCES, "`resources.memory` `" Q "` %s", m->str, err);
	}
	if (g[1]) {
		const struct ydoc_node *m = g[1]->value;
		if (!is_text(m))
			REPORT(c, m, TYPE, "`resources.cpu` must be a number such as 0.5, not %s",
			       kind_name(m));
		else if (parse_cpu(m->str, &bp->resources.cpu_millis) < 0)
			REPORT(c, m, RESOURCES,
			       "`resources.cpu` `" Q
			       "` must be a number of CPUs above 0, at most 1024, "
			       "e.g. `0.5` or `2`",
			       m->str);
	}
	long long pids;
	if (g[2] && want_int(c, "resources.pids", g[2]->value, &pids) == 0) {
		if (pids < 1 || pids > 4194304)
			REPORT(c, g[2]->value, RESOURCES,
			       "`resources.pids` must be from 1 to 4194304, not %lld", pids);
		else
			bp->resources.pids = (int)pids;
	}
}

static void read_hooks(struct ck *c, const struct ydoc_node *v)
{
	static const char *const keys[] = {"pre_deploy", "post_deploy"};
	const struct ydoc_pair *g[2] = {NULL, NULL};
	if (want_map(c, "hooks", v) < 0)
		return;
	read_keys(c, v, "hooks", keys, 2, g);
	if (g[0])
		c->bp->hooks.pre_deploy = want_str(c, "hooks.pre_deploy", g[0]->value);
	if (g[1])
		c->bp->hooks.post_deploy = want_str(c, "hooks.post_deploy", g[1]->value);
}

/* A string field checked by fn (NULL: any string). */
static char *read_checked(struct ck *c, const char *path, const struct ydoc_node *n,
			  const char *(*fn)(const char *), enum bp_rule_id rule)
{
	char *s = want_str(c, path, n);
	const char *e = s && fn ? fn(s) : NULL;
	if (e) {
		bp_report(c->bp, c->file, c->diags, n->line, n->col, rule, "`%s` `" Q "` %s", path,
			  s, e);
		free(s);
		return NULL;
	}
	return s;
}

/* --- the document ---------------------------------------------------------- */

enum {
	K_NAME,
	K_DESCRIPTION,
	K_TYPE,
	K_SOURCE,
	K_RUNTIME,
	K_VERSION,
	K_REMOTE,
	K_IMAGE,
	K_WORKING_DIR,
	K_STATIC_DIR,
	K_BUILD_CMD,
	K_RUN_CMD,
	K_PORT,
	K_HEALTH_CHECK,
	K_DOMAIN,
	K_DOMAINS,
	K_ENV_VARS,
	K_SECRETS,
	K_FORCE_REBUILD,
	K_INSTANCES,
	K_REPLICAS,
	K_RESOURCES,
	K_RESTART,
	K_SCHEDULE,
	K_TIMEOUT,
	K_HOOKS,
	K_N
};

static const char *const top_keys[K_N] = {
    "name",	     "description",  "type",	    "source",	  "runtime",   "version",
    "remote",	     "image",	     "working_dir", "static_dir", "build_cmd", "run_cmd",
    "port",	     "health_check", "domain",	    "domains",	  "env_vars",  "secrets",
    "force_rebuild", "instances",    "replicas",    "resources",  "restart",   "schedule",
    "timeout",	     "hooks",
};

static void missing(struct ck *c, const struct ydoc_node *map, const char *msg)
{
	bp_report(c->bp, c->file, c->diags, map->line, map->col, BP_R_REQUIRED, "%s", msg);
}

static void not_for(struct ck *c, const struct ydoc_pair *p, const char *why)
{
	REPORT(c, p->key, NOT_FOR_TYPE, "`%s` %s", p->key->str, why);
}

const struct ydoc_node *bp_check_doc(struct bp *bp, const struct ydoc_node *map, const char *file,
				     struct diag_list *diags)
{
	static const char *const types[] = {"web", "worker", "static", "job"};
	static const char *const sources[] = {"remote", "image", "upload"};
	static const char *const restarts[] = {"always", "on-failure", "never"};
	struct ck ck = {bp, file, diags}, *c = &ck;
	const struct ydoc_pair *f[K_N] = {NULL};
	const struct ydoc_node *name_node = NULL;
	char err[128];
	long long n;
	int idx;

	bp->line = map->line;
	bp->col = map->col;
	bp->replicas = 1;
	read_keys(c, map, NULL, top_keys, K_N, f);

	if (!f[K_NAME]) {
		missing(c, map,
			"missing required field `name`: the service name, e.g. `name: my-api`");
	} else if ((bp->name = want_str(c, "name", f[K_NAME]->value))) {
		const char *e = check_name(bp->name);
		if (e) {
			REPORT(c, f[K_NAME]->value, NAME,
			       "`name` `" Q
			       "` is not a valid name: it %s (2-63 of a-z, 0-9 and '-', "
			       "starting with a letter)",
			       bp->name, e);
			free(bp->name);
			bp->name = NULL;
		} else {
			name_node = f[K_NAME]->value;
		}
	}
	if (f[K_DESCRIPTION])
		bp->description = want_str(c, "description", f[K_DESCRIPTION]->value);
	if (!f[K_TYPE])
		missing(c, map, "missing required field `type`: one of web, worker, static, job");
	else if ((idx = want_enum(c, "type", f[K_TYPE]->value, types, 4)) >= 0)
		bp->type = (enum bp_type)(idx + 1);
	if (!f[K_SOURCE])
		missing(c, map, "missing required field `source`: one of remote, image, upload");
	else if ((idx = want_enum(c, "source", f[K_SOURCE]->value, sources, 3)) >= 0)
		bp->source = (enum bp_source)(idx + 1);
	if (!f[K_RUNTIME])
		missing(c, map,
			"missing required field `runtime`, e.g. `runtime: {type: nodejs, version: "
			"\"22\"}`");
	else
		read_runtime(c, f[K_RUNTIME], f[K_VERSION]);
	if (f[K_REMOTE])
		read_remote(c, f[K_REMOTE]->value);
	if (f[K_IMAGE])
		bp->image =
		    read_checked(c, "image", f[K_IMAGE]->value, check_image, BP_R_IMAGE_REF);
	if (f[K_WORKING_DIR])
		bp->working_dir = read_checked(c, "working_dir", f[K_WORKING_DIR]->value,
					       check_rel_path, BP_R_PATH);
	if (f[K_STATIC_DIR])
		bp->static_dir = read_checked(c, "static_dir", f[K_STATIC_DIR]->value,
					      check_rel_path, BP_R_PATH);
	if (f[K_BUILD_CMD])
		bp->build_cmd = want_str(c, "build_cmd", f[K_BUILD_CMD]->value);
	if (f[K_RUN_CMD]) {
		bp->run_cmd = want_str(c, "run_cmd", f[K_RUN_CMD]->value);
		if (bp->run_cmd && !bp->run_cmd[strspn(bp->run_cmd, " \t\n")]) {
			REPORT(c, f[K_RUN_CMD]->value, REQUIRED, "`run_cmd` is empty");
			free(bp->run_cmd);
			bp->run_cmd = NULL;
		}
	}
	if (f[K_PORT] && want_int(c, "port", f[K_PORT]->value, &n) == 0) {
		if (n < 1 || n > 65535)
			REPORT(c, f[K_PORT]->value, RANGE,
			       "`port` must be from 1 to 65535, not %lld", n);
		else
			bp->port = (int)n;
	}
	if (f[K_HEALTH_CHECK])
		read_health(c, f[K_HEALTH_CHECK]->value);
	if (f[K_DOMAIN] && f[K_DOMAINS]) {
		const struct ydoc_pair *l = later(f[K_DOMAIN], f[K_DOMAINS]);
		REPORT(c, l->key, EXCLUSIVE,
		       "`domain` and `domains` must not be used together; list every domain in "
		       "`domains`");
	} else if (f[K_DOMAIN]) {
		add_domain(c, "domain", f[K_DOMAIN]->value);
	} else if (f[K_DOMAINS]) {
		const struct ydoc_node *v = f[K_DOMAINS]->value;
		if (v->kind != YDOC_SEQ)
			REPORT(c, v, TYPE, "`domains` must be a list of hostnames, not %s",
			       kind_name(v));
		else
			for (size_t i = 0; i < v->n; i++)
				add_domain(c, "domains", v->items[i]);
	}
	if (f[K_ENV_VARS])
		read_env(c, f[K_ENV_VARS]->value);
	if (f[K_SECRETS])
		read_secrets(c, f[K_SECRETS]);
	if (f[K_FORCE_REBUILD])
		want_bool(c, "force_rebuild", f[K_FORCE_REBUILD]->value, &bp->force_rebuild);
	if (f[K_INSTANCES])
		read_strv(c, "instances", f[K_INSTANCES]->value, &bp->instances, &bp->ninstances);
	if (f[K_REPLICAS] && want_int(c, "replicas", f[K_REPLICAS]->value, &n) == 0) {
		if (n < 1 || n > 100)
			REPORT(c, f[K_REPLICAS]->value, RANGE,
			       "`replicas` must be from 1 to 100, not %lld", n);
		else
			bp->replicas = (int)n;
	}
	if (f[K_RESOURCES])
		read_resources(c, f[K_RESOURCES]->value);
	bp->restart = bp->type == BP_TYPE_JOB ? BP_RESTART_NEVER : BP_RESTART_ALWAYS;
	if (f[K_RESTART] && (idx = want_enum(c, "restart", f[K_RESTART]->value, restarts, 3)) >= 0)
		bp->restart = (enum bp_restart)idx;
	if (f[K_SCHEDULE]) {
		bp->schedule = want_str(c, "schedule", f[K_SCHEDULE]->value);
		if (bp->schedule && bp_check_cron(bp->schedule, err, sizeof err) < 0) {
			REPORT(c, f[K_SCHEDULE]->value, CRON, "`schedule` `" Q "` %s", bp->schedule,
			       err);
			free(bp->schedule);
			bp->schedule = NULL;
		}
	}
	if (f[K_TIMEOUT]) {
		const struct ydoc_node *d = f[K_TIMEOUT]->value;
		if (!is_text(d))
			REPORT(c, d, TYPE, "`timeout` must be a duration such as `10m`, not %s",
			       kind_name(d));
		else if (bp_parse_duration(d->str, &bp->timeout_ms, err, sizeof err) < 0)
			REPORT(c, d, DURATION, "`timeout` `" Q "` %s", d->str, err);
		else if (bp->timeout_ms == 0)
			REPORT(c, d, DURATION, "`timeout` must be more than 0");
	}
	if (f[K_HOOKS])
		read_hooks(c, f[K_HOOKS]->value);

	/* What the source needs and forbids. */
	if (f[K_IMAGE] && f[K_REMOTE]) {
		const struct ydoc_pair *l = later(f[K_IMAGE], f[K_REMOTE]);
		REPORT(c, l->key, EXCLUSIVE,
		       "`image` and `remote` must not be used together: an image is deployed as "
		       "built, a remote is built from git");
	} else if (bp->source != BP_SOURCE_NONE) {
		if (f[K_IMAGE] && bp->source != BP_SOURCE_IMAGE)
			not_for(c, f[K_IMAGE], "is only used with `source: image`");
		if (f[K_REMOTE] && bp->source != BP_SOURCE_REMOTE)
			not_for(c, f[K_REMOTE], "is only used with `source: remote`");
	}
	if (bp->source == BP_SOURCE_REMOTE && !f[K_REMOTE])
		missing(c, map,
			"`source: remote` needs `remote`, e.g. `remote: {url: https://...}`");
	if (bp->source == BP_SOURCE_IMAGE && !f[K_IMAGE])
		missing(c, map, "`source: image` needs `image`, e.g. `image: nginx:1.27`");
	if ((bp->source == BP_SOURCE_IMAGE || (f[K_IMAGE] && bp->source == BP_SOURCE_NONE)) &&
	    bp->runtime.type != BP_RUNTIME_NONE && bp->runtime.type != BP_RUNTIME_DOCKER)
		REPORT(c, f[K_RUNTIME]->key, NOT_FOR_TYPE,
		       "a container image needs `runtime: docker`, not `%s`",
		       bp_runtime_name(bp->runtime.type));
	if (bp->source == BP_SOURCE_IMAGE) {
		if (f[K_BUILD_CMD])
			not_for(c, f[K_BUILD_CMD],
				"is not used with `source: image`: an image is deployed as built");
		if (f[K_WORKING_DIR])
			not_for(c, f[K_WORKING_DIR],
				"is not used with `source: image`: there is no source tree");
	}

	/* What the type needs and forbids. */
	const char *tn = bp_type_name(bp->type);
	if (bp->type == BP_TYPE_STATIC && !f[K_STATIC_DIR])
		missing(c, map,
			"`type: static` needs `static_dir`, the directory of files to serve");
	if ((bp->type == BP_TYPE_WEB || bp->type == BP_TYPE_WORKER || bp->type == BP_TYPE_JOB) &&
	    bp->source != BP_SOURCE_IMAGE && bp->source != BP_SOURCE_NONE && !f[K_RUN_CMD]) {
		char msg[96];
		snprintf(msg, sizeof msg,
			 "`type: %s` needs `run_cmd`, the command that starts the service", tn);
		missing(c, map, msg);
	}
	if (bp->type != BP_TYPE_NONE && bp->type != BP_TYPE_WEB && f[K_PORT]) {
		REPORT(c, f[K_PORT]->key, NOT_FOR_TYPE,
		       "`port` is only for `type: web`; a %s service does not serve on a port", tn);
		bp->port = 0;
	}
	if (bp->type == BP_TYPE_WEB && !f[K_PORT])
		bp->port = BP_WEB_DEFAULT_PORT;
	if ((bp->type == BP_TYPE_STATIC || bp->type == BP_TYPE_JOB) && f[K_REPLICAS])
		REPORT(c, f[K_REPLICAS]->key, NOT_FOR_TYPE,
		       "`replicas` is only for `type: web` and `type: worker`, not `%s`", tn);
	if (bp->type != BP_TYPE_NONE && bp->type != BP_TYPE_JOB && f[K_SCHEDULE])
		REPORT(c, f[K_SCHEDULE]->key, NOT_FOR_TYPE,
		       "`schedule` is only for `type: job`, not `%s`", tn);
	if ((bp->type == BP_TYPE_WORKER || bp->type == BP_TYPE_JOB) &&
	    (f[K_DOMAIN] || f[K_DOMAINS]))
		not_for(
		    c, f[K_DOMAIN] ? f[K_DOMAIN] : f[K_DOMAINS],
		    bp->type == BP_TYPE_JOB
			? "is only for `type: web` and `type: static`; a job serves nothing"
			: "is only for `type: web` and `type: static`; a worker serves nothing");
	if (f[K_HEALTH_CHECK] && (bp->type == BP_TYPE_STATIC || bp->type == BP_TYPE_JOB))
		REPORT(c, f[K_HEALTH_CHECK]->key, NOT_FOR_TYPE,
		       "`health_check` is not used by `type: %s`: there is no long-running process "
		       "to check",
		       tn);
	else if (bp->type == BP_TYPE_WORKER && (bp->health_check.kind == BP_HEALTH_HTTP ||
						bp->health_check.kind == BP_HEALTH_TCP))
		REPORT(c, f[K_HEALTH_CHECK]->key, NOT_FOR_TYPE,
		       "a worker has no port to check over %s; use `health_check: {command: ...}`",
		       bp->health_check.kind == BP_HEALTH_HTTP ? "HTTP" : "TCP");
	if (bp->type == BP_TYPE_WEB && !f[K_HEALTH_CHECK])
		bp_report(
		    bp, file, diags, map->line, map->col, BP_R_NO_HEALTH_CHECK,
		    "web service has no `health_check`; add one (e.g. `health_check: /healthz`) "
		    "so a broken release is caught before it takes traffic");
	return name_node;
}
