/* Fuzz cron_parse: any bytes give a schedule or a bounded message; an
 * accepted schedule's next run is later than the start and matches. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[512];
	if (size >= sizeof(text))
		size = sizeof(text) - 1;
	memcpy(text, data, size);
	text[size] = '\0';
	setenv("TZ", "UTC0", 1);
	struct cron c;
	char err[256];
	if (cron_parse(&c, text, err, sizeof(err)) < 0) {
		if (strncmp(err, "schedule '", 10) != 0)
			abort();
		return 0;
	}
	time_t from = 1780000000;
	time_t t = cron_next(&c, from);
	if (t == (time_t)-1)
		return 0;
	struct tm tm;
	gmtime_r(&t, &tm);
	if (t <= from || t % 60 || !((c.minute >> tm.tm_min) & 1) ||
	    !((c.hour >> tm.tm_hour) & 1) || !((c.month >> (tm.tm_mon + 1)) & 1))
		abort();
	return 0;
}
