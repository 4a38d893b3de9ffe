#include "backoff.h"

#include <stdint.h>

#include "harness.h"

TEST(backoff_grows_within_jitter_bounds_to_the_cap)
{
	struct backoff b;
	backoff_init(&b, 500, 30000);
	long long want_c[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
	for (unsigned i = 0; i < sizeof(want_c) / sizeof(want_c[0]); i++) {
		CHECK_INT(backoff_ceiling(&b), want_c[i]);
		struct backoff lo = b, hi = b;
		/* r = 0 gives the bottom of the window, the top for r = c - c/2. */
		CHECK_INT(backoff_next(&lo, 0), want_c[i] / 2);
		CHECK_INT(backoff_next(&hi, (uint32_t)(want_c[i] - want_c[i] / 2)), want_c[i]);
		long long d = backoff_next(&b, 0xdeadbeefu * (i + 1));
		CHECK(d >= want_c[i] / 2 && d <= want_c[i]);
	}
}

TEST(backoff_every_draw_stays_in_window)
{
	struct backoff b;
	backoff_init(&b, 500, 30000);
	uint32_t x = 12345;
	for (int i = 0; i < 10000; i++) {
		x = x * 1103515245u + 12345u;
		long long c = backoff_ceiling(&b);
		long long d = backoff_next(&b, x);
		CHECK(d >= c / 2);
		CHECK(d <= c);
		CHECK(d <= 30000);
		CHECK(d >= 250);
	}
	/* Many attempts do not overflow the doubling. */
	CHECK_INT(backoff_ceiling(&b), 30000);
}

TEST(backoff_reset_starts_over)
{
	struct backoff b;
	backoff_init(&b, 500, 30000);
	for (int i = 0; i < 20; i++)
		backoff_next(&b, (uint32_t)i);
	CHECK_INT(backoff_ceiling(&b), 30000);
	backoff_reset(&b);
	CHECK_INT(backoff_ceiling(&b), 500);
	long long d = backoff_next(&b, 7);
	CHECK(d >= 250 && d <= 500);
}

TEST(backoff_bad_parameters_are_clamped)
{
	struct backoff b;
	backoff_init(&b, 0, -5);
	CHECK_INT(b.base_ms, 1);
	CHECK_INT(b.cap_ms, 1);
	for (int i = 0; i < 100; i++) {
		long long d = backoff_next(&b, 0xffffffffu);
		CHECK(d >= 0 && d <= 1);
	}
	backoff_init(&b, 1000, 100);
	CHECK_INT(backoff_ceiling(&b), 1000);
}
