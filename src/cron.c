#include "cron.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "buf.h"

struct cron_field {
	const char *name;
	int min, max;
	const char *const *names; /* names[i] is value min + i, or NULL */
};

static const char *const cron_months[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
					  "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const cron_days[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const struct cron_field cron_fields[5] = {
    {"minute", 0, 59, NULL},	      {"hour", 0, 23, NULL},
    {"day of month", 1, 31, NULL},    {"month", 1, 12, cron_months},
    {"day of week", 0, 7, cron_days},
};

static const struct {
	const char *name, *expr;
} cron_macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},	  {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

/* Start a new problem in b: "; " between problems. Returns b. */
static struct buf *cron_problem(struct buf *b)
{
	if (b->len)
		buf_puts(b, "; ");
	return b;
}

/* A number or a name at *s; advances *s. -1 if none. */
static int cron_value(const struct cron_field *f, const char **s)
{
	const char *p = *s;
	if (isdigit((unsigned char)*p)) {
		long v = 0;
		while (isdigit((unsigned char)*p)) {
			v = v * 10 + (*p++ - '0');
			if (v > 1000)
				return -1;
		}
		*s = p;
		return (int)v;
	}
	for (int i = 0; f->names && f->names[i]; i++)
		if (!strncasecmp(p, f->names[i], 3) && !isalpha((unsigned char)p[3])) {
			*s = p + 3;
			return f->min + i;
		}
	return -1;
}

/* Parse one item ("*", "N", "N-M", with "/S") of field f into *bits. */
static int cron_item(const struct cron_field *f, const char *s, size_t n, uint64_t *bits,
		     struct buf *prob)
{
	char tmp[64];
	if (n == 0 || n >= sizeof(tmp)) {
		goto bad;
	}
	memcpy(tmp, s, n);
	tmp[n] = 0;
	const char *p = tmp;
	int lo, hi, step = 1, range = 0;
	if (*p == '*') {
		lo = f->min;
		hi = f->max;
		p++;
		range = 1;
	} else {
		if ((lo = cron_value(f, &p)) < 0)
			goto bad;
		hi = lo;
		if (*p == '-') {
			p++;
			if ((hi = cron_value(f, &p)) < 0)
				goto bad;
			range = 1;
		}
	}
	if (*p == '/') {
		p++;
		if (!isdigit((unsigned char)*p))
			goto bad;
		step = 0;
		while (isdigit((unsigned char)*p)) {
			step = step * 10 + (*p++ - '0');
			if (step > 1000)
				goto bad;
		}
		if (step == 0) {
			buf_printf(cron_problem(prob), "%s: step 0 in '%.*s'", f->name, (int)n, s);
			return -1;
		}
		if (!range)
			hi = f->max;
	}
	if (*p)
		goto bad;
	if (lo < f->min || hi > f->max) {
		buf_printf(cron_problem(prob), "%s: '%.*s' is outside %d-%d", f->name, (int)n, s,
			   f->min, f->max);
		return -1;
	}
	if (lo > hi) {
		buf_printf(cron_problem(prob), "%s: range '%.*s' runs backwards", f->name, (int)n,
			   s);
		return -1;
	}
	for (int v = lo; v <= hi; v += step)
		*bits |= 1ULL << v;
	return 0;
bad:
	buf_printf(cron_problem(prob), "%s: bad item '%.*s'", f->name, (int)(n > 40 ? 40 : n), s);
	return -1;
}

int cron_parse(struct cron *c, const char *expr, char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	const char *text = expr;
	while (isspace((unsigned char)*text))
		text++;
	if (*text == '@') {
		size_t n = strcspn(text, " \t\n");
		const char *rest = text + n;
		while (isspace((unsigned char)*rest))
			rest++;
		for (size_t i = 0; i < sizeof(cron_macros) / sizeof(cron_macros[0]); i++)
			if (!*rest && strlen(cron_macros[i].name) == n &&
			    !strncasecmp(text, cron_macros[i].name, n))
				return cron_parse(c, cron_macros[i].expr, err, errlen);
		snprintf(err, errlen,
			 "schedule '%.100s': unknown macro (known: @yearly, @monthly, "
			 "@weekly, @daily, @hourly)",
			 expr);
		return -1;
	}

	struct buf prob = BUF_INIT;
	uint64_t bits[5] = {0};
	int nf = 0;
	const char *p = text;
	while (*p) {
		size_t n = strcspn(p, " \t\n");
		if (nf < 5) {
			const struct cron_field *f = &cron_fields[nf];
			if (*p == '*' && nf == 2)
				c->dom_star = 1;
			if (*p == '*' && nf == 4)
				c->dow_star = 1;
			for (size_t i = 0; i <= n;) {
				size_t m = 0;
				while (i + m < n && p[i + m] != ',')
					m++;
				cron_item(f, p + i, m, &bits[nf], &prob);
				i += m + 1;
			}
		}
		nf++;
		p += n;
		while (isspace((unsigned char)*p))
			p++;
	}
	if (nf != 5) {
		if (prob.len)
			buf_puts(&prob, "; ");
		buf_printf(&prob,
			   "%d fields, expected 5 (minute hour day-of-month month day-of-week)",
			   nf);
	}
	if (prob.len) {
		snprintf(err, errlen, "schedule '%.100s': %s", expr, prob.data);
		buf_release(&prob);
		return -1;
	}
	buf_release(&prob);
	c->minute = bits[0];
	c->hour = (uint32_t)bits[1];
	c->dom = (uint32_t)bits[2];
	c->month = (uint32_t)bits[3];
	c->dow = (uint32_t)((bits[4] | bits[4] >> 7) & 0x7f); /* 7 is Sunday too */
	return 0;
}

static int cron_day_ok(const struct cron *c, const struct tm *tm)
{
	int dom = (c->dom >> tm->tm_mday) & 1, dow = (c->dow >> tm->tm_wday) & 1;
	if (c->dom_star || c->dow_star)
		return dom && dow;
	return dom || dow;
}

/* Normalise tm as local time; returns the time. */
static time_t cron_norm(struct tm *tm)
{
	tm->tm_isdst = -1;
	return mktime(tm);
}

time_t cron_next(const struct cron *c, time_t after)
{
	if (after < 0)
		after = 0;
	time_t cur = after - after % 60 + 60;
	struct tm tm;
	if (!localtime_r(&cur, &tm))
		return -1;
	int start_year = tm.tm_year;
	/* Each step moves to the start of the next candidate month, day, hour
	 * or minute in wall-clock time; cur (the time of tm) only grows, so the
	 * loop is bounded by the years searched. */
	while (tm.tm_year - start_year <= 8) {
		if (!((c->month >> (tm.tm_mon + 1)) & 1)) {
			tm.tm_mon++;
			tm.tm_mday = 1;
			tm.tm_hour = tm.tm_min = 0;
		} else if (!cron_day_ok(c, &tm)) {
			tm.tm_mday++;
			tm.tm_hour = tm.tm_min = 0;
		} else if (!((c->hour >> tm.tm_hour) & 1)) {
			tm.tm_hour++;
			tm.tm_min = 0;
		} else if (!((c->minute >> tm.tm_min) & 1)) {
			tm.tm_min++;
		} else {
			return cur;
		}
		tm.tm_sec = 0;
		time_t n = cron_norm(&tm);
		if (n == (time_t)-1)
			return -1;
		/* A wall-clock time skipped by a DST jump may normalise
		 * backwards (libc-dependent): go on from the next real minute. */
		if (n <= cur) {
			n = cur + 60;
			if (!localtime_r(&n, &tm))
				return -1;
		}
		cur = n;
	}
	return -1;
}
