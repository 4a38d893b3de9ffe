/* The runner behind harness.h: fork per test, temp dir per test, timeout. */
#include "harness.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/lsan_interface.h>
#define HARNESS_LEAK_CHECK() __lsan_do_leak_check()
#endif
#endif
#ifndef HARNESS_LEAK_CHECK
#define HARNESS_LEAK_CHECK() ((void)0)
#endif

#define HARNESS_MAX_TESTS 4096
#define HARNESS_TIMEOUT_S 30

struct harness_test {
	const char *file;
	const char *name;
	harness_fn fn;
};

static struct harness_test tests[HARNESS_MAX_TESTS];
static int ntests;
char harness_tmpdir[4096];

void harness_register(const char *file, const char *name, harness_fn fn)
{
	if (ntests == HARNESS_MAX_TESTS) {
		fprintf(stderr, "harness: too many tests\n");
		exit(2);
	}
	const char *slash = strrchr(file, '/');
	tests[ntests++] = (struct harness_test){ slash ? slash + 1 : file, name, fn };
}

void harness_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	const char *slash = strrchr(file, '/');
	fprintf(stderr, "    %s:%d: ", slash ? slash + 1 : file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	_exit(1);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int selected(const struct harness_test *t, int argc, char **argv)
{
	if (argc < 2)
		return 1;
	char full[512];
	snprintf(full, sizeof(full), "%s:%s", t->file, t->name);
	for (int i = 1; i < argc; i++)
		if (strstr(full, argv[i]))
			return 1;
	return 0;
}

static int run_one(const struct harness_test *t)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(harness_tmpdir, sizeof(harness_tmpdir), "%s/dployr-unit.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(harness_tmpdir)) {
		perror("harness: mkdtemp");
		return 0;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		perror("harness: fork");
		return 0;
	}
	if (pid == 0) {
		if (chdir(harness_tmpdir) < 0)
			_exit(3);
		alarm(HARNESS_TIMEOUT_S);
		t->fn();
		fflush(NULL);
		/* _exit skips LeakSanitizer's exit-time check: run it here, so a
		 * passing test that leaks fails in the sanitizer build. */
		HARNESS_LEAK_CHECK();
		_exit(0);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	nftw(harness_tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	if (ok)
		printf("ok   %s:%s\n", t->file, t->name);
	else if (WIFSIGNALED(status))
		printf("FAIL %s:%s (signal %d%s)\n", t->file, t->name, WTERMSIG(status),
		       WTERMSIG(status) == SIGALRM ? ", timed out" : "");
	else
		printf("FAIL %s:%s\n", t->file, t->name);
	fflush(stdout);
	return ok;
}

int main(int argc, char **argv)
{
	int passed = 0, failed = 0;
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < ntests; i++) {
		if (!selected(&tests[i], argc, argv))
			continue;
		if (run_one(&tests[i]))
			passed++;
		else
			failed++;
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
