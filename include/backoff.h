/* backoff: jittered exponential delays between reconnect attempts.
 *
 * Attempt n (from 0) waits a delay drawn uniformly from [c/2, c] where
 * c = min(cap_ms, base_ms * 2^n) ("equal jitter"): the delay still grows
 * exponentially, yet thousands of agents cut off by one base restart come
 * back spread over half a window instead of all at once. The random draw is
 * the caller's (an argument), so the module is pure and testable.
 *
 *   struct backoff b;
 *   backoff_init(&b, 500, 30000);
 *   delay = backoff_next(&b, random32);   after a failed attempt
 *   backoff_reset(&b);                     after a stable session
 */
#ifndef DPLOYR_BACKOFF_H
#define DPLOYR_BACKOFF_H

#include <stdint.h>

struct backoff {
	long long base_ms; /* ceiling of the first delay (> 0) */
	long long cap_ms;  /* largest ceiling (>= base_ms) */
	unsigned attempt;  /* delays handed out since the last reset */
};

/* base_ms < 1 counts as 1; cap_ms < base_ms counts as base_ms. */
void backoff_init(struct backoff *b, long long base_ms, long long cap_ms);
/* The next delay in ms, in [c/2, c] as above, chosen by r (any 32 random
 * bits); counts one attempt. */
long long backoff_next(struct backoff *b, uint32_t r);
/* The ceiling c of the next delay. */
long long backoff_ceiling(const struct backoff *b);
void backoff_reset(struct backoff *b);

#endif
