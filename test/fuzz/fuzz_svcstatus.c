/* libFuzzer target: svcstatus_parse_event on arbitrary event bodies (a
 * hostile agent's). A report it accepts must encode to a record that
 * decodes back to the same report. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "svcstatus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct svcstatus st, back;
	char err[512];
	if (svcstatus_parse_event((const char *)data, size, "default", "i-1", 1790000000000LL, &st,
				  err, sizeof err) < 0) {
		if (!err[0])
			abort(); /* a refusal always says why */
		return 0;
	}
	if (!st.service[0] || !svcstatus_state_valid(st.state) ||
	    !svcstatus_health_valid(st.health) || st.ts_ms <= 0)
		abort();
	struct buf b = BUF_INIT;
	svcstatus_encode(&b, &st);
	if (svcstatus_decode(b.data, b.len, &back) < 0 || memcmp(&st, &back, sizeof st) != 0)
		abort();
	buf_release(&b);
	return 0;
}
