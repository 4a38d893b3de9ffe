#include "run.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static const char *const env[] = {"PATH=/usr/bin:/bin", NULL};

TEST(run_captures_output_and_status)
{
	const char *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
	struct run_opts o = {.argv = argv, .envp = env, .timeout_ms = 10000};
	struct run_result r = RUN_RESULT_INIT;
	char err[256];
	CHECK_INT(run(&o, &r, err, sizeof(err)), 0);
	CHECK(WIFEXITED(r.status));
	CHECK_INT(WEXITSTATUS(r.status), 3);
	CHECK_STR(r.out.data, "out\n");
	CHECK_STR(r.err.data, "err\n");
	char s[64];
	run_status_str(r.status, s, sizeof(s));
	CHECK_STR(s, "exited with status 3");
	run_result_release(&r);

	o.merge_err = 1;
	o.max_out = 5;
	const char *argv2[] = {"sh", "-c", "echo 0123456789; echo more >&2", NULL};
	o.argv = argv2;
	CHECK_INT(run(&o, &r, err, sizeof(err)), 0);
	CHECK_STR(r.out.data, "01234"); /* the rest was read and dropped */
	CHECK_INT(r.err.len, 0);
	run_result_release(&r);
}

TEST(run_kills_the_group_at_the_deadline)
{
	/* The program exits at once, leaving a background child holding the
	 * pipe: the deadline kills that child too. */
	const char *argv[] = {"sh", "-c", "sleep 60 & echo $!; exit 0", NULL};
	struct run_opts o = {.argv = argv, .envp = env, .timeout_ms = 300};
	struct run_result r = RUN_RESULT_INIT;
	char err[256];
	CHECK_INT(run(&o, &r, err, sizeof(err)), -1);
	CHECK(r.timed_out);
	CHECK_STR(err, "'sh' timed out after 300 ms");
	int bg = atoi(r.out.data);
	CHECK(bg > 1);
	/* The killed sleeper is not our child: wait for it to vanish. */
	int gone = 0;
	for (int i = 0; i < 500 && !gone; i++) {
		/* (Our zombie if this process is a subreaper.) */
		if ((kill(bg, 0) < 0 && errno == ESRCH) || waitpid(bg, NULL, WNOHANG) == bg)
			gone = 1;
		else
			usleep(10000);
	}
	CHECK(gone);
	run_result_release(&r);

	const char *argv2[] = {"sleep", "60", NULL};
	o.argv = argv2;
	CHECK_INT(run(&o, &r, err, sizeof(err)), -1);
	CHECK(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGKILL);
	run_result_release(&r);
}

TEST(run_reports_a_missing_program)
{
	const char *argv[] = {"no-such-program-here", NULL};
	struct run_opts o = {.argv = argv, .envp = env};
	struct run_result r = RUN_RESULT_INIT;
	char err[256];
	CHECK_INT(run(&o, &r, err, sizeof(err)), -1);
	CHECK(strstr(err, "spawn 'no-such-program-here'"));
	run_result_release(&r);
}
