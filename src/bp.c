/* bp: the blueprint model, the rule table, the per-file driver and the value
 * syntaxes (durations, memory sizes, cron). The per-document checks live in
 * bp_check.c. */
#include "bp.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bp_int.h"
#include "xalloc.h"
#include "ydoc.h"

const struct diag_rule bp_rules[BP_NRULES] = {
#define BP_RULE(ident, id, sev, summary) [BP_R_##ident] = {id, sev, summary},
#include "bp_rules.def"
#undef BP_RULE
};

struct bp_file {
	struct bp *items;
	size_t n, cap;
};

const char *bp_type_name(enum bp_type t)
{
	static const char *const names[] = {"", "web", "worker", "static", "job"};
	return (size_t)t < sizeof names / sizeof *names ? names[t] : "";
}

const char *bp_source_name(enum bp_source s)
{
	static const char *const names[] = {"", "remote", "image", "upload"};
	return (size_t)s < sizeof names / sizeof *names ? names[s] : "";
}

const char *bp_runtime_name(enum bp_runtime_type r)
{
	static const char *const names[] = {"",	    "nodejs", "python", "golang", "php",
					    "ruby", "dotnet", "java",	"static", "docker"};
	return (size_t)r < sizeof names / sizeof *names ? names[r] : "";
}

const char *bp_restart_name(enum bp_restart r)
{
	static const char *const names[] = {"always", "on-failure", "never"};
	return (size_t)r < sizeof names / sizeof *names ? names[r] : "";
}

void bp_report(struct bp *bp, const char *file, struct diag_list *diags, int line, int col,
	       enum bp_rule_id r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_vadd(diags, file, line, col, bp_rules[r].severity, bp_rules[r].id, fmt, ap);
	va_end(ap);
	if (bp) {
		if (bp_rules[r].severity == DIAG_ERROR)
			bp->nerrors++;
		else
			bp->nwarnings++;
	}
}

static void free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void bp_release(struct bp *bp)
{
	free(bp->name);
	free(bp->description);
	free(bp->runtime.version);
	free(bp->remote.url);
	free(bp->remote.branch);
	free(bp->remote.commit_hash);
	free(bp->image);
	free(bp->working_dir);
	free(bp->static_dir);
	free(bp->build_cmd);
	free(bp->run_cmd);
	free(bp->health_check.path);
	free(bp->health_check.command);
	free_strv(bp->domains, bp->ndomains);
	for (size_t i = 0; i < bp->nenv_vars; i++) {
		free(bp->env_vars[i].name);
		free(bp->env_vars[i].value);
	}
	free(bp->env_vars);
	free_strv(bp->secret_values, bp->nsecrets);
	free_strv(bp->secrets, bp->nsecrets);
	free_strv(bp->instances, bp->ninstances);
	free(bp->schedule);
	free(bp->hooks.pre_deploy);
	free(bp->hooks.post_deploy);
	memset(bp, 0, sizeof *bp);
}

static enum bp_rule_id problem_rule(const char *rule)
{
	if (rule && strcmp(rule, "duplicate-key") == 0)
		return BP_R_DUPLICATE_KEY;
	if (rule && strcmp(rule, "yaml-limits") == 0)
		return BP_R_YAML_LIMITS;
	return BP_R_YAML_SYNTAX;
}

/* A document cut short by a syntax error, or one past the safety bounds, is
 * not checked: its missing fields would be reported as errors the author did
 * not make. Duplicate keys do not stop the checks. */
struct bp_file *bp_parse(const char *filename, const char *data, size_t len,
			 struct diag_list *diags)
{
	struct bp_file *f = xcalloc(1, sizeof *f);
	struct ydoc *y = ydoc_parse(data, len, NULL);
	int broken = 0;

	for (size_t i = 0; i < ydoc_nproblems(y); i++) {
		const struct ydoc_problem *p = ydoc_problem(y, i);
		enum bp_rule_id r = problem_rule(p->rule);
		if (r != BP_R_DUPLICATE_KEY)
			broken = 1;
		bp_report(NULL, filename, diags, p->line, p->col, r, "%s", p->msg);
	}
	if (broken)
		goto done;

	const struct ydoc_node **names = xcalloc(ydoc_ndocs(y) + 1, sizeof *names);
	size_t nnames = 0, ndocs = 0;
	for (size_t i = 0; i < ydoc_ndocs(y); i++) {
		const struct ydoc_node *root = ydoc_root(y, i);
		if (!root)
			continue; /* an empty document, e.g. after a final --- */
		ndocs++;
		if (root->kind != YDOC_MAP) {
			bp_report(NULL, filename, diags, root->line, root->col, BP_R_NOT_MAPPING,
				  "a blueprint must be a mapping of fields (`name: ...`), not %s",
				  root->kind == YDOC_SEQ ? "a list" : "a scalar");
			continue;
		}
		XGROW(f->items, f->cap, f->n + 1);
		struct bp *bp = &f->items[f->n++];
		memset(bp, 0, sizeof *bp);
		const struct ydoc_node *name = bp_check_doc(bp, root, filename, diags);
		if (!name)
			continue;
		for (size_t j = 0; j < nnames; j++) {
			if (strcmp(names[j]->str, name->str) == 0) {
				bp_report(bp, filename, diags, name->line, name->col,
					  BP_R_DUPLICATE_NAME,
					  "name `%s` is already used by the blueprint at line %d; "
					  "each blueprint of a file needs its own name",
					  name->str, names[j]->line);
				break;
			}
		}
		names[nnames++] = name;
	}
	free(names);
	if (ndocs == 0)
		bp_report(NULL, filename, diags, 1, 1, BP_R_NOT_MAPPING,
			  "the file holds no blueprint; start with `name: ...`");
done:
	ydoc_free(y);
	return f;
}

void bp_file_free(struct bp_file *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++)
		bp_release(&f->items[i]);
	free(f->items);
	free(f);
}

size_t bp_file_count(const struct bp_file *f)
{
	return f->n;
}

const struct bp *bp_file_get(const struct bp_file *f, size_t i)
{
	return i < f->n ? &f->items[i] : NULL;
}

/* --- value syntaxes --------------------------------------------------- */

#define BP_DURATION_MAX_MS (30LL * 24 * 3600 * 1000)

int bp_parse_duration(const char *s, long long *ms, char *err, size_t errlen)
{
	long long total = 0;
	const char *p = s;
	if (!*p) {
		snprintf(err, errlen, "is empty");
		return -1;
	}
	while (*p) {
		if (!isdigit((unsigned char)*p)) {
			snprintf(err, errlen,
				 "is not a duration: use a number and a unit, e.g. `5s`, `500ms`, "
				 "`1m30s`");
			return -1;
		}
		long long v = 0;
		while (isdigit((unsigned char)*p)) {
			if (v > BP_DURATION_MAX_MS)
				goto toolong;
			v = v * 10 + (*p++ - '0');
		}
		long long unit;
		if (p[0] == 'm' && p[1] == 's') {
			unit = 1;
			p += 2;
		} else if (*p == 's') {
			unit = 1000;
			p++;
		} else if (*p == 'm') {
			unit = 60 * 1000;
			p++;
		} else if (*p == 'h') {
			unit = 3600 * 1000;
			p++;
		} else if (*p == '\0') {
			snprintf(err, errlen, "has no unit: add one of ms, s, m, h, e.g. `%llds`",
				 v);
			return -1;
		} else {
			snprintf(err, errlen, "has an unknown unit: use ms, s, m or h, e.g. `5s`");
			return -1;
		}
		if (v > BP_DURATION_MAX_MS / unit)
			goto toolong;
		total += v * unit;
		if (total > BP_DURATION_MAX_MS)
			goto toolong;
	}
	*ms = total;
	return 0;
toolong:
	snprintf(err, errlen, "is too long: at most 30 days (720h)");
	return -1;
}

int bp_parse_memory(const char *s, unsigned long long *bytes, char *err, size_t errlen)
{
	const char *p = s;
	unsigned long long v = 0;
	if (!isdigit((unsigned char)*p))
		goto bad;
	while (isdigit((unsigned char)*p)) {
		if (v > (1ULL << 50))
			goto big;
		v = v * 10 + (unsigned long long)(*p++ - '0');
	}
	unsigned shift = 0;
	switch (*p) {
	case '\0':
		break;
	case 'k':
	case 'K':
		shift = 10;
		p++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		p++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		p++;
		break;
	case 't':
	case 'T':
		shift = 40;
		p++;
		break;
	case 'b':
	case 'B':
		break;
	default:
		goto bad;
	}
	if (shift && *p == 'i')
		p++;
	if (*p == 'b' || *p == 'B')
		p++;
	if (*p)
		goto bad;
	if (v == 0) {
		snprintf(err, errlen, "must be more than 0");
		return -1;
	}
	if (v > (1ULL << 50) >> shift)
		goto big;
	*bytes = v << shift;
	return 0;
bad:
	snprintf(err, errlen,
		 "is not a size: use a whole number with a unit, e.g. `256M`, `1G`, `512Mi`");
	return -1;
big:
	snprintf(err, errlen, "is too large");
	return -1;
}

struct cron_field {
	const char *name;
	int lo, hi;
	const char *const *names; /* names[i] stands for lo + i */
};

static const char *const cron_months[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
					  "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const cron_days[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const struct cron_field cron_fields[5] = {
    {"minute", 0, 59, NULL},	      {"hour", 0, 23, NULL},
    {"day of month", 1, 31, NULL},    {"month", 1, 12, cron_months},
    {"day of week", 0, 7, cron_days},
};

/* One value of a field at *pp (a number or a name); -1 when there is none. */
static int cron_value(const char **pp, const struct cron_field *fd)
{
	const char *p = *pp;
	if (isdigit((unsigned char)*p)) {
		int v = 0;
		while (isdigit((unsigned char)*p)) {
			if (v > 1000)
				return -1;
			v = v * 10 + (*p++ - '0');
		}
		*pp = p;
		return v;
	}
	if (fd->names) {
		for (int i = 0; fd->names[i]; i++) {
			if (strncasecmp(p, fd->names[i], 3) == 0 && !isalpha((unsigned char)p[3])) {
				*pp = p + 3;
				return fd->lo + i;
			}
		}
	}
	return -1;
}

static int cron_item(const char *item, const struct cron_field *fd, char *err, size_t errlen)
{
	const char *p = item;
	int a = fd->lo, b = fd->hi;
	if (*p == '*') {
		p++;
	} else {
		a = cron_value(&p, fd);
		if (a < 0)
			goto bad;
		b = a;
		if (*p == '-') {
			p++;
			b = cron_value(&p, fd);
			if (b < 0)
				goto bad;
		}
		if (a < fd->lo || a > fd->hi || b < fd->lo || b > fd->hi) {
			snprintf(err, errlen, "%s `%s` is out of range %d-%d", fd->name, item,
				 fd->lo, fd->hi);
			return -1;
		}
		if (a > b) {
			snprintf(err, errlen, "%s range `%s` runs backwards", fd->name, item);
			return -1;
		}
	}
	if (*p == '/') {
		p++;
		const char *q = p;
		int step = 0;
		while (isdigit((unsigned char)*q) && step <= 1000)
			step = step * 10 + (*q++ - '0');
		if (q == p || *q || step < 1 || step > fd->hi - fd->lo + 1) {
			snprintf(err, errlen, "%s step in `%s` must be a number from 1 to %d",
				 fd->name, item, fd->hi - fd->lo + 1);
			return -1;
		}
		p = q;
	}
	if (*p)
		goto bad;
	return 0;
bad:
	snprintf(err, errlen, "%s `%s` is not a value, range (a-b), step (*/n) or list", fd->name,
		 item);
	return -1;
}

int bp_check_cron(const char *s, char *err, size_t errlen)
{
	static const char *const macros[] = {"@hourly",	 "@daily",  "@midnight", "@weekly",
					     "@monthly", "@yearly", "@annually"};
	if (*s == '@') {
		for (size_t i = 0; i < sizeof macros / sizeof *macros; i++)
			if (strcmp(s, macros[i]) == 0)
				return 0;
		snprintf(err, errlen,
			 "is not a known macro: use @hourly, @daily, @weekly, @monthly or @yearly");
		return -1;
	}
	char fields[5][128];
	int n = 0;
	const char *p = s;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		const char *e = p;
		while (*e && *e != ' ' && *e != '\t')
			e++;
		if (n == 5 || (size_t)(e - p) >= sizeof fields[0]) {
			n = 6;
			break;
		}
		memcpy(fields[n], p, (size_t)(e - p));
		fields[n][e - p] = '\0';
		n++;
		p = e;
	}
	if (n != 5) {
		snprintf(err, errlen,
			 "must have 5 fields (minute hour day-of-month month day-of-week), e.g. "
			 "`30 3 * * *`");
		return -1;
	}
	for (int i = 0; i < 5; i++) {
		char *save = NULL;
		if (fields[i][0] == ',' || fields[i][strlen(fields[i]) - 1] == ',' ||
		    strstr(fields[i], ",,")) {
			snprintf(err, errlen, "%s `%s` has an empty list item", cron_fields[i].name,
				 fields[i]);
			return -1;
		}
		for (char *item = strtok_r(fields[i], ",", &save); item;
		     item = strtok_r(NULL, ",", &save))
			if (cron_item(item, &cron_fields[i], err, errlen) < 0)
				return -1;
	}
	return 0;
}
