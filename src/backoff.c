/* backoff: see backoff.h. */
#include "backoff.h"

void backoff_init(struct backoff *b, long long base_ms, long long cap_ms)
{
	b->base_ms = base_ms < 1 ? 1 : base_ms;
	b->cap_ms = cap_ms < b->base_ms ? b->base_ms : cap_ms;
	b->attempt = 0;
}

long long backoff_ceiling(const struct backoff *b)
{
	long long c = b->base_ms;
	/* Double without overflow: stop as soon as the cap is reached. */
	for (unsigned i = 0; i < b->attempt && c < b->cap_ms; i++)
		c *= 2;
	return c > b->cap_ms ? b->cap_ms : c;
}

long long backoff_next(struct backoff *b, uint32_t r)
{
	long long c = backoff_ceiling(b);
	long long lo = c / 2;
	if (b->attempt < 64)
		b->attempt++;
	return lo + (long long)(r % (uint64_t)(c - lo + 1));
}

void backoff_reset(struct backoff *b)
{
	b->attempt = 0;
}
