/* The unit test harness.
 *
 *   TEST(name) { CHECK(x == 1); CHECK_STR(s, "a"); CHECK_INT(n, 3); }
 *
 * Tests register themselves (constructor attribute); the runner forks one
 * child per test, so a crash or abort is one failure, and runs it in a fresh
 * temporary directory (the cwd, removed afterwards; its path is also in
 * harness_tmpdir). A test fails at its first failing CHECK, on a signal, or
 * when it outlives its time limit (30 s). `unit [PATTERN...]` runs the tests
 * whose "file:name" contains one of the patterns. The run ends with the line
 * "N passed, N failed"; the exit status is 0 only when nothing failed.
 */
#ifndef DPLOYR_TEST_HARNESS_H
#define DPLOYR_TEST_HARNESS_H

#include <stdlib.h>
#include <string.h>

typedef void (*harness_fn)(void);
void harness_register(const char *file, const char *name, harness_fn fn);
void harness_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 3, 4)));
extern char harness_tmpdir[];

#define TEST(name) \
	static void test_##name(void); \
	__attribute__((constructor)) static void register_##name(void) \
	{ \
		harness_register(__FILE__, #name, test_##name); \
	} \
	static void test_##name(void)

#define CHECK(cond) \
	do { \
		if (!(cond)) \
			harness_fail(__FILE__, __LINE__, "CHECK(%s)", #cond); \
	} while (0)

#define CHECK_INT(a, b) \
	do { \
		long long a_ = (long long)(a), b_ = (long long)(b); \
		if (a_ != b_) \
			harness_fail(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", #a, a_, \
				     #b, b_); \
	} while (0)

#define CHECK_STR(a, b) \
	do { \
		const char *a_ = (a), *b_ = (b); \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) \
			harness_fail(__FILE__, __LINE__, "%s == \"%s\", expected \"%s\"", #a, \
				     a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
	} while (0)

#endif
