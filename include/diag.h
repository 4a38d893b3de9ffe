/* diag: findings (file, line, column, severity, rule, message) and their
 * renderings for people and machines: text, JSON, GitHub annotations, SARIF.
 *
 * A struct diag_list is embedded by its owner (diag_list_init/_release) and
 * owns copies of every string it is given except `rule`, which must be a
 * static string (a rule id from a rule table).
 *
 * Positions: every rendering shows a line and column >= 1, so that editors,
 * GitHub and SARIF consumers can place them; a finding about the whole file
 * (line 0) or with an unknown column (0) renders as line 1 / column 1.
 * The file name "-" means standard input: it renders as "<stdin>" (text,
 * JSON, GitHub) and as the URI file:///dev/stdin (SARIF). */
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
 * rule that may appear (SARIF lists them); tool_version goes into SARIF.
 *   text    FILE:LINE:COL: error: MESSAGE [rule-id]   (or warning:), one a
 *           line; control characters are escaped (\n, \t, \xNN)
 *   json    [{"file", "line", "column", "severity", "rule", "message"}, ...]
 *           (invalid UTF-8 becomes U+FFFD, so the output is always JSON)
 *   github  ::error file=F,line=L,col=C,title=RULE::MESSAGE workflow
 *           commands, escaped as GitHub's toolkit does
 *   sarif   one SARIF 2.1.0 log with one run: every rule of rules[] in
 *           tool.driver.rules, one result per finding
 * The summary line ("N errors, ...") is the caller's business. */
void diag_render(const struct diag_list *l, enum diag_format fmt, const struct diag_rule *rules,
		 size_t nrules, const char *tool_version, struct buf *out);

#define DIAG_STDIN_NAME "<stdin>"
/* "error" or "warning". */
const char *diag_severity_name(enum diag_severity sev);
/* The name a file is shown under: DIAG_STDIN_NAME for "-", else file. */
const char *diag_display_name(const char *file);

#endif
