#include "cron.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

/* Each test runs in its own process: setting TZ here touches no other. */
static void tz(const char *zone)
{
	setenv("TZ", zone, 1);
	tzset();
}

/* Local time from "YYYY-MM-DD HH:MM". */
static time_t at(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	if (sscanf(s, "%d-%d-%d %d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min) != 5)
		harness_fail(__FILE__, __LINE__, "bad time '%s'", s);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	tm.tm_isdst = -1;
	return mktime(&tm);
}

static char *show(time_t t, char *out, size_t n)
{
	struct tm tm;
	if (t < 0)
		snprintf(out, n, "never");
	else
		strftime(out, n, "%Y-%m-%d %H:%M %a", localtime_r(&t, &tm));
	return out;
}

/* The next run after `from` for expr, as text. */
static const char *next(const char *expr, const char *from)
{
	static char out[64];
	struct cron c;
	char err[256];
	if (cron_parse(&c, expr, err, sizeof(err)) < 0)
		harness_fail(__FILE__, __LINE__, "%s", err);
	return show(cron_next(&c, at(from)), out, sizeof(out));
}

static const char *perr(const char *expr)
{
	static char err[512];
	struct cron c;
	if (cron_parse(&c, expr, err, sizeof(err)) == 0)
		return "(parsed)";
	return err;
}

TEST(cron_fields_lists_ranges_steps)
{
	tz("UTC0");
	CHECK_STR(next("* * * * *", "2026-01-01 10:00"), "2026-01-01 10:01 Thu");
	CHECK_STR(next("*/15 * * * *", "2026-01-01 10:01"), "2026-01-01 10:15 Thu");
	CHECK_STR(next("*/15 * * * *", "2026-01-01 10:45"), "2026-01-01 11:00 Thu");
	CHECK_STR(next("5,10-12 * * * *", "2026-01-01 10:10"), "2026-01-01 10:11 Thu");
	CHECK_STR(next("5,10-12 * * * *", "2026-01-01 10:12"), "2026-01-01 11:05 Thu");
	CHECK_STR(next("0 9-17/4 * * *", "2026-01-01 13:00"), "2026-01-01 17:00 Thu");
	CHECK_STR(next("0 9-17/4 * * *", "2026-01-01 17:00"), "2026-01-02 09:00 Fri");
	CHECK_STR(next("30 4/6 * * *", "2026-01-01 11:00"), "2026-01-01 16:30 Thu");
	CHECK_STR(next("0 0 1 jan,Jul *", "2026-02-01 00:00"), "2026-07-01 00:00 Wed");
	CHECK_STR(next("0 0 31 * *", "2026-01-31 00:00"), "2026-03-31 00:00 Tue");
	CHECK_STR(next("0 0 29 2 *", "2026-01-01 00:00"), "2028-02-29 00:00 Tue");
	/* strictly after: a matching `from` is not returned again */
	CHECK_STR(next("0 12 * * *", "2026-01-01 12:00"), "2026-01-02 12:00 Fri");
	/* seconds are dropped: 12:00:30 still runs next at 12:01 */
	struct cron c;
	char err[128], out[64];
	CHECK_INT(cron_parse(&c, "* * * * *", err, sizeof(err)), 0);
	CHECK_STR(show(cron_next(&c, at("2026-01-01 12:00") + 30), out, sizeof(out)),
		  "2026-01-01 12:01 Thu");
}

TEST(cron_macros)
{
	tz("UTC0");
	CHECK_STR(next("@hourly", "2026-01-01 10:30"), "2026-01-01 11:00 Thu");
	CHECK_STR(next("@daily", "2026-01-01 10:30"), "2026-01-02 00:00 Fri");
	CHECK_STR(next("@midnight", "2026-01-01 10:30"), "2026-01-02 00:00 Fri");
	CHECK_STR(next("@weekly", "2026-01-01 10:30"), "2026-01-04 00:00 Sun");
	CHECK_STR(next("@monthly", "2026-01-01 10:30"), "2026-02-01 00:00 Sun");
	CHECK_STR(next("@yearly", "2026-01-01 10:30"), "2027-01-01 00:00 Fri");
	CHECK_STR(next("@annually", "2026-01-01 10:30"), "2027-01-01 00:00 Fri");
	CHECK_STR(next("  @HOURLY ", "2026-01-01 10:30"), "2026-01-01 11:00 Thu");
	CHECK(strstr(perr("@reboot"), "unknown macro"));
	CHECK(strstr(perr("@hourly 5"), "unknown macro"));
}

TEST(cron_day_of_week_names_and_sunday_as_7)
{
	tz("UTC0");
	CHECK_STR(next("0 8 * * mon-fri", "2026-01-02 09:00"), "2026-01-05 08:00 Mon");
	CHECK_STR(next("0 8 * * 7", "2026-01-01 00:00"), "2026-01-04 08:00 Sun");
	CHECK_STR(next("0 8 * * 0", "2026-01-01 00:00"), "2026-01-04 08:00 Sun");
	CHECK_STR(next("0 8 * * SAT", "2026-01-01 00:00"), "2026-01-03 08:00 Sat");
	CHECK_STR(next("0 8 * * 5-7", "2026-01-03 09:00"), "2026-01-04 08:00 Sun");
}

/* Vixie cron: both days restricted -> either matches; one starting with
 * '*' -> only the other one counts. */
TEST(cron_vixie_day_semantics)
{
	tz("UTC0");
	/* 2026-02-13 is a Friday; 2026-02-06 a Friday too */
	CHECK_STR(next("0 0 13 * 5", "2026-02-01 00:00"), "2026-02-06 00:00 Fri");
	CHECK_STR(next("0 0 13 * 5", "2026-02-06 00:00"), "2026-02-13 00:00 Fri");
	CHECK_STR(next("0 0 13 * 1", "2026-02-10 00:00"), "2026-02-13 00:00 Fri");
	/* dom star: only the day of week counts */
	CHECK_STR(next("0 0 * * 1", "2026-02-10 00:00"), "2026-02-16 00:00 Mon");
	/* dow star: only the day of month counts */
	CHECK_STR(next("0 0 13 * *", "2026-02-10 00:00"), "2026-02-13 00:00 Fri");
	/* a field starting with '*' counts as unrestricted for the OR rule
	 * ("*" + step), as in Vixie cron: AND semantics */
	CHECK_STR(next("0 0 */2 * 1", "2026-02-01 00:00"), "2026-02-09 00:00 Mon");
	/* day-of-month 31 with a weekday: runs on the weekday in short months */
	CHECK_STR(next("0 0 31 2 1", "2026-02-01 00:00"), "2026-02-02 00:00 Mon");
}

TEST(cron_never_matching)
{
	tz("UTC0");
	CHECK_STR(next("0 0 30 2 *", "2026-01-01 00:00"), "never");
	CHECK_STR(next("0 0 31 4,6,9,11 *", "2026-01-01 00:00"), "never");
}

TEST(cron_local_time_and_dst)
{
	/* Central Europe: CET, CEST from the last Sunday of March 02:00 to the
	 * last Sunday of October 03:00 (2026-03-29, 2026-10-25). */
	tz("CET-1CEST,M3.5.0,M10.5.0/3");
	CHECK_STR(next("0 9 * * *", "2026-03-28 10:00"), "2026-03-29 09:00 Sun");
	CHECK_INT(at("2026-03-29 09:00") - at("2026-03-28 09:00"), 23 * 3600);
	/* 02:30 does not exist on 2026-03-29 */
	CHECK_STR(next("30 2 * * *", "2026-03-29 00:00"), "2026-03-30 02:30 Mon");
	/* hourly across the jump: 01:00 then 03:00 */
	CHECK_STR(next("0 * * * *", "2026-03-29 01:00"), "2026-03-29 03:00 Sun");
	/* UTC differs from local time */
	tz("UTC0");
	CHECK_STR(next("0 9 * * *", "2026-03-28 10:00"), "2026-03-29 09:00 Sun");
	tz("EST5");
	struct cron c;
	char err[128], out[64];
	CHECK_INT(cron_parse(&c, "0 0 * * *", err, sizeof(err)), 0);
	time_t t = cron_next(&c, 0); /* 1969-12-31 19:00 EST */
	CHECK_INT(t, 5 * 3600);
	CHECK_STR(show(t, out, sizeof(out)), "1970-01-01 00:00 Thu");
}

TEST(cron_reports_every_problem)
{
	const char *e = perr("60 24 0 13 8");
	CHECK(strstr(e, "schedule '60 24 0 13 8': "));
	CHECK(strstr(e, "minute: '60' is outside 0-59"));
	CHECK(strstr(e, "hour: '24' is outside 0-23"));
	CHECK(strstr(e, "day of month: '0' is outside 1-31"));
	CHECK(strstr(e, "month: '13' is outside 1-12"));
	CHECK(strstr(e, "day of week: '8' is outside 0-7"));
	CHECK(strstr(perr("* * * *"), "4 fields, expected 5"));
	CHECK(strstr(perr("* * * * * *"), "6 fields, expected 5"));
	CHECK(strstr(perr(""), "0 fields"));
	CHECK(strstr(perr("*/0 * * * *"), "minute: step 0 in '*/0'"));
	CHECK(strstr(perr("5-1 * * * *"), "minute: range '5-1' runs backwards"));
	CHECK(strstr(perr("1,,2 * * * *"), "minute: bad item ''"));
	CHECK(strstr(perr("a * * * *"), "minute: bad item 'a'"));
	CHECK(strstr(perr("* * * foo *"), "month: bad item 'foo'"));
	CHECK(strstr(perr("* * * janx *"), "month: bad item 'janx'"));
	CHECK(strstr(perr("* * * * mon-"), "day of week: bad item 'mon-'"));
	CHECK(strstr(perr("*/ * * * *"), "bad item '*/'"));
	CHECK(strstr(perr("1/99999 * * * *"), "bad item"));
	CHECK(strstr(perr("99999999999999999999 * * * *"), "bad item"));
	CHECK(strstr(perr("1-2-3 * * * *"), "bad item '1-2-3'"));
	CHECK(strstr(perr("* * * * sun/2x"), "bad item"));
	CHECK_STR(perr("0-59/7,3 0-23 1-31 1-12 0-7"), "(parsed)");
	/* a huge hostile line is cut in the message, not overflowed */
	char big[5000];
	memset(big, '9', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	CHECK(strlen(perr(big)) < 512);
}
