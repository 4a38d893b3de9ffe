/* Fuzz svclog_parse_since (dployr logs --since) with arbitrary text. A
 * value that parses is a time no later than now, or an RFC 3339 time that
 * svclog_fmt_ts writes back parsable. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "svclog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[128], err[256];
	if (size >= sizeof(s))
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	const long long now = 1795000000000LL;
	long long v;
	err[0] = 0;
	if (svclog_parse_since(s, now, &v, err, sizeof(err)) == 0) {
		char ts[25];
		long long back;
		if (v < 0 && v < now - 100LL * 365 * 86400000)
			abort();
		if (v >= 0) {
			svclog_fmt_ts(v, ts);
			if (v < 253402300800000LL &&
			    (svclog_parse_since(ts, now, &back, err, sizeof(err)) < 0 || back != v))
				abort();
		}
	} else if (!err[0]) {
		abort();
	}
	return 0;
}
