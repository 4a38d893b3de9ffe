#include "diag.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "xalloc.h"

void diag_list_init(struct diag_list *l)
{
	l->items = NULL;
	l->n = l->cap = 0;
}

void diag_list_release(struct diag_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].file);
		free(l->items[i].msg);
	}
	free(l->items);
	diag_list_init(l);
}

void diag_vadd(struct diag_list *l, const char *file, int line, int col, enum diag_severity sev,
	       const char *rule, const char *fmt, va_list ap)
{
	XGROW(l->items, l->cap, l->n + 1);
	struct diag *d = &l->items[l->n++];
	d->file = xstrdup(file ? file : "");
	d->line = line > 0 ? line : 0;
	d->col = col > 0 ? col : 0;
	d->severity = sev;
	d->rule = rule ? rule : "";
	d->msg = xvasprintf(fmt, ap);
}

void diag_add(struct diag_list *l, const char *file, int line, int col, enum diag_severity sev,
	      const char *rule, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_vadd(l, file, line, col, sev, rule, fmt, ap);
	va_end(ap);
}

/* Sort key: the rank of the file's first appearance, then line, column and
 * the original position (qsort is not stable). */
struct sortkey {
	size_t file_rank, pos;
	int line, col;
};

static int sortkey_cmp(const void *a, const void *b)
{
	const struct sortkey *x = a, *y = b;
	if (x->file_rank != y->file_rank)
		return x->file_rank < y->file_rank ? -1 : 1;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

struct filepos {
	const char *file;
	size_t pos;
};

static int filepos_cmp(const void *a, const void *b)
{
	const struct filepos *x = a, *y = b;
	int c = strcmp(x->file, y->file);
	if (c)
		return c;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

void diag_sort(struct diag_list *l)
{
	if (l->n < 2)
		return;
	/* A file's rank is the position of its first finding: group the
	 * findings by name (O(n log n), whatever the number of files). */
	struct filepos *fp = xcalloc(l->n, sizeof(*fp));
	struct sortkey *k = xcalloc(l->n, sizeof(*k));
	for (size_t i = 0; i < l->n; i++) {
		fp[i].file = l->items[i].file;
		fp[i].pos = i;
		k[i].pos = i;
		k[i].line = l->items[i].line;
		k[i].col = l->items[i].col;
	}
	qsort(fp, l->n, sizeof(*fp), filepos_cmp);
	for (size_t i = 0, first = 0; i < l->n; i++) {
		if (i > 0 && strcmp(fp[i].file, fp[i - 1].file) != 0)
			first = i;
		k[fp[i].pos].file_rank = fp[first].pos;
	}
	free(fp);
	qsort(k, l->n, sizeof(*k), sortkey_cmp);
	struct diag *sorted = xcalloc(l->n, sizeof(*sorted));
	for (size_t i = 0; i < l->n; i++)
		sorted[i] = l->items[k[i].pos];
	free(l->items);
	l->items = sorted;
	l->cap = l->n;
	free(k);
}

size_t diag_count(const struct diag_list *l, enum diag_severity sev)
{
	size_t n = 0;
	for (size_t i = 0; i < l->n; i++)
		n += l->items[i].severity == sev;
	return n;
}

int diag_format_parse(const char *name, enum diag_format *out)
{
	static const struct {
		const char *name;
		enum diag_format fmt;
	} formats[] = {
	    {"text", DIAG_TEXT},
	    {"json", DIAG_JSON},
	    {"github", DIAG_GITHUB},
	    {"sarif", DIAG_SARIF},
	};
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (name && strcmp(name, formats[i].name) == 0) {
			*out = formats[i].fmt;
			return 0;
		}
	return -1;
}

const char *diag_severity_name(enum diag_severity sev)
{
	return sev == DIAG_WARNING ? "warning" : "error";
}

const char *diag_display_name(const char *file)
{
	return strcmp(file, "-") == 0 ? DIAG_STDIN_NAME : file;
}

static int pos_line(const struct diag *d)
{
	return d->line > 0 ? d->line : 1;
}

static int pos_col(const struct diag *d)
{
	return d->col > 0 ? d->col : 1;
}

/* Text output is one finding a line: control characters in file names or
 * messages are escaped so that no input can start a forged line. */
static void put_text(struct buf *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '\n')
			buf_puts(out, "\\n");
		else if (*p == '\t')
			buf_puts(out, "\\t");
		else if (*p < 0x20 || *p == 0x7f)
			buf_printf(out, "\\x%02x", *p);
		else
			buf_putc(out, *p);
	}
}

static void render_text(const struct diag_list *l, struct buf *out)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct diag *d = &l->items[i];
		put_text(out, diag_display_name(d->file));
		buf_printf(out, ":%d:%d: %s: ", pos_line(d), pos_col(d),
			   diag_severity_name(d->severity));
		put_text(out, d->msg);
		buf_puts(out, " [");
		put_text(out, d->rule);
		buf_puts(out, "]\n");
	}
}

static void render_json(const struct diag_list *l, struct buf *out)
{
	if (l->n == 0) {
		buf_puts(out, "[]\n");
		return;
	}
	buf_puts(out, "[\n");
	for (size_t i = 0; i < l->n; i++) {
		const struct diag *d = &l->items[i];
		buf_puts(out, "  {\"file\": ");
		buf_json_cstr(out, diag_display_name(d->file));
		buf_printf(out, ", \"line\": %d, \"column\": %d, \"severity\": \"%s\", \"rule\": ",
			   pos_line(d), pos_col(d), diag_severity_name(d->severity));
		buf_json_cstr(out, d->rule);
		buf_puts(out, ", \"message\": ");
		buf_json_cstr(out, d->msg);
		buf_puts(out, i + 1 < l->n ? "},\n" : "}\n");
	}
	buf_puts(out, "]\n");
}

/* GitHub workflow commands: data escapes %, CR, LF; property values
 * escape : and , as well (actions/toolkit, command.ts). */
static void put_github(struct buf *out, const char *s, int property)
{
	for (const char *p = s; *p; p++) {
		switch (*p) {
		case '%':
			buf_puts(out, "%25");
			break;
		case '\r':
			buf_puts(out, "%0D");
			break;
		case '\n':
			buf_puts(out, "%0A");
			break;
		case ':':
			buf_puts(out, property ? "%3A" : ":");
			break;
		case ',':
			buf_puts(out, property ? "%2C" : ",");
			break;
		default:
			buf_putc(out, *p);
		}
	}
}

static void render_github(const struct diag_list *l, struct buf *out)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct diag *d = &l->items[i];
		buf_printf(out, "::%s file=", diag_severity_name(d->severity));
		put_github(out, diag_display_name(d->file), 1);
		buf_printf(out, ",line=%d,col=%d,title=", pos_line(d), pos_col(d));
		put_github(out, d->rule, 1);
		buf_puts(out, "::");
		put_github(out, d->msg, 0);
		buf_putc(out, '\n');
	}
}

/* A file name as a SARIF artifact URI: standard input as file:///dev/stdin,
 * an absolute path as a file:// URI, a relative one as a relative reference
 * (GitHub code scanning resolves it against the repository root). Bytes
 * outside RFC 3986's unreserved set and "/" are percent-encoded, which also
 * keeps a ':' in the first segment from reading as a scheme. */
static void put_uri(struct buf *out, const char *file)
{
	struct buf u = BUF_INIT;
	if (strcmp(file, "-") == 0) {
		buf_puts(&u, "file:///dev/stdin");
	} else {
		if (file[0] == '/')
			buf_puts(&u, "file://");
		for (const unsigned char *p = (const unsigned char *)file; *p; p++) {
			if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			    (*p >= '0' && *p <= '9') || strchr("-._~/", *p))
				buf_putc(&u, *p);
			else
				buf_printf(&u, "%%%02X", *p);
		}
	}
	buf_json_str(out, u.data, u.len);
	buf_release(&u);
}

static long rule_index(const struct diag_rule *rules, size_t nrules, const char *id)
{
	for (size_t i = 0; i < nrules; i++)
		if (strcmp(rules[i].id, id) == 0)
			return (long)i;
	return -1;
}

static void render_sarif(const struct diag_list *l, const struct diag_rule *rules, size_t nrules,
			 const char *tool_version, struct buf *out)
{
	buf_puts(out, "{\n  \"$schema\": "
		      "\"https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/"
		      "sarif-schema-2.1.0.json\",\n"
		      "  \"version\": \"2.1.0\",\n"
		      "  \"runs\": [\n    {\n"
		      "      \"tool\": {\n        \"driver\": {\n"
		      "          \"name\": \"dployr\",\n          \"version\": ");
	buf_json_cstr(out, tool_version ? tool_version : "unknown");
	buf_puts(out, ",\n          \"rules\": [");
	for (size_t i = 0; i < nrules; i++) {
		buf_puts(out, i ? ",\n            {\"id\": " : "\n            {\"id\": ");
		buf_json_cstr(out, rules[i].id);
		buf_puts(out, ", \"shortDescription\": {\"text\": ");
		buf_json_cstr(out, rules[i].summary);
		buf_printf(out, "}, \"defaultConfiguration\": {\"level\": \"%s\"}}",
			   diag_severity_name(rules[i].severity));
	}
	buf_puts(out, nrules ? "\n          ]\n" : "]\n");
	buf_puts(out, "        }\n      },\n      \"columnKind\": \"unicodeCodePoints\",\n"
		      "      \"results\": [");
	for (size_t i = 0; i < l->n; i++) {
		const struct diag *d = &l->items[i];
		buf_puts(out, i ? ",\n        {\"ruleId\": " : "\n        {\"ruleId\": ");
		buf_json_cstr(out, d->rule);
		long idx = rule_index(rules, nrules, d->rule);
		if (idx >= 0)
			buf_printf(out, ", \"ruleIndex\": %ld", idx);
		buf_printf(out, ", \"level\": \"%s\", \"message\": {\"text\": ",
			   diag_severity_name(d->severity));
		buf_json_cstr(out, d->msg);
		buf_puts(out, "},\n         \"locations\": [{\"physicalLocation\": "
			      "{\"artifactLocation\": {\"uri\": ");
		put_uri(out, d->file);
		buf_printf(out, "}, \"region\": {\"startLine\": %d, \"startColumn\": %d}}}]}",
			   pos_line(d), pos_col(d));
	}
	buf_puts(out, l->n ? "\n      ]\n    }\n  ]\n}\n" : "]\n    }\n  ]\n}\n");
}

void diag_render(const struct diag_list *l, enum diag_format fmt, const struct diag_rule *rules,
		 size_t nrules, const char *tool_version, struct buf *out)
{
	switch (fmt) {
	case DIAG_TEXT:
		render_text(l, out);
		break;
	case DIAG_JSON:
		render_json(l, out);
		break;
	case DIAG_GITHUB:
		render_github(l, out);
		break;
	case DIAG_SARIF:
		render_sarif(l, rules, nrules, tool_version, out);
		break;
	}
}
