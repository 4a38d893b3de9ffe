/* cron: 5-field cron expressions (the blueprint's `schedule`) and the next
 * run time in local time.
 *
 *   minute hour day-of-month month day-of-week
 *
 * Each field is a comma-separated list of items: `*`, a value `N`, a range
 * `N-M`, each optionally followed by a step `/S` (`N/S` means N to the
 * field's maximum). Months take names jan..dec and days of the week sun..sat
 * (case-insensitive, not in ranges' steps); day of week 0 and 7 are both
 * Sunday. Macros: @yearly (@annually), @monthly, @weekly, @daily
 * (@midnight), @hourly. @reboot is refused: the supervisor's restart policy
 * covers it.
 *
 * Day semantics are Vixie cron's: when both day-of-month and day-of-week are
 * restricted (neither field starts with `*`), a day matches if EITHER
 * matches ("0 0 13 * 5" runs on every 13th and every Friday); otherwise both
 * must match, i.e. only the restricted one counts.
 */
#ifndef DPLOYR_CRON_H
#define DPLOYR_CRON_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* A parsed expression: filled by cron_parse, read-only for callers. Bit N
 * of a set means value N is allowed. */
struct cron {
	uint64_t minute;	/* 0..59 */
	uint32_t hour;		/* 0..23 */
	uint32_t dom;		/* 1..31 */
	uint32_t month;		/* 1..12 */
	uint32_t dow;		/* 0..6, Sunday 0 */
	int dom_star, dow_star; /* the field started with '*' */
};

/* Parse expr into c. On failure writes every problem, as
 * "schedule 'EXPR': problem; problem", to err and returns -1. */
int cron_parse(struct cron *c, const char *expr, char *err, size_t errlen);

/* The first matching minute strictly after `after`, in local time (TZ).
 * A wall-clock time that a daylight-saving jump skips does not run that day;
 * in a repeated hour each wall-clock minute runs once. Returns -1 when nothing matches within eight
 * years (e.g. "0 0 30 2 *", February 30th). */
time_t cron_next(const struct cron *c, time_t after);

#endif
