#include "suggest.h"

#include "harness.h"

TEST(suggest_distance_counts_edits)
{
	CHECK_INT(suggest_distance("", ""), 0);
	CHECK_INT(suggest_distance("abc", "abc"), 0);
	CHECK_INT(suggest_distance("health_chek", "health_check"), 1);
	CHECK_INT(suggest_distance("lnit", "lint"), 1); /* transposition */
	CHECK_INT(suggest_distance("kitten", "sitting"), 3);
}

TEST(suggest_closest_picks_likely_typos_only)
{
	const char *keys[] = { "name", "type", "health_check", "run_cmd", "build_cmd" };
	CHECK_STR(suggest_closest("health_chek", keys, 5), "health_check");
	CHECK_STR(suggest_closest("nmae", keys, 5), "name");
	CHECK_STR(suggest_closest("runcmd", keys, 5), "run_cmd");
	CHECK(suggest_closest("database", keys, 5) == NULL);
	CHECK(suggest_closest("x", keys, 5) == NULL);
}
