/* diag: findings (file, line, column, severity, rule, message) and their
 * renderings for people and machines: text, JSON, GitHub annotations, SARIF.
 *
 * A struct diag_list is embedded by its owner (diag_list_init/_release) and
 * owns copies of every string it is given except `rule`, which must be a
 * static string (a rule id from a rule table). */
#ifndef DPLOYR_DIAG_H
#define DPLOYR_DIAG_H

#include <stdarg.h>
#include <stddef.h>

struct buf;

enum diag_severity { DIAG_ERROR, DIAG_WARNING };

struct diag {
	char *file;
	int line; /* 1-based; 0 when the finding is about the whole file */
	int col;  /* 1-based; 0 when unknown */
	enum diag_severity severity;
	const char *rule;
	char *msg;
};

struct diag_list {
	struct diag *items;
	size_t n, cap;
};

/* A rule's description, for SARIF's rule table and documentation. */
struct diag_rule {
	const char *id;
	enum diag_severity severity;
	const char *summary;
};

enum diag_format { DIAG_TEXT, DIAG_JSON, DIAG_GITHUB, DIAG_SARIF };

void diag_list_init(struct diag_list *l);
void diag_list_release(struct diag_list *l);
void diag_add(struct diag_list *l, const char *file, int line, int col, enum diag_severity sev,
	      const char *rule, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
void diag_vadd(struct diag_list *l, const char *file, int line, int col, enum diag_severity sev,
	       const char *rule, const char *fmt, va_list ap) __attribute__((format(printf, 7, 0)));
/* Stable sort by line then column within each file, files kept in the
 * order they first appear. */
void diag_sort(struct diag_list *l);
size_t diag_count(const struct diag_list *l, enum diag_severity sev);

/* "text", "json", "github", "sarif" -> 0 and *out; else -1. */
int diag_format_parse(const char *name, enum diag_format *out);
/* Append the rendering of all findings to out. rules/nrules describe every
 * rule that may appear (SARIF lists them); tool_version goes into SARIF. */
void diag_render(const struct diag_list *l, enum diag_format fmt, const struct diag_rule *rules,
		 size_t nrules, const char *tool_version, struct buf *out);

#endif
