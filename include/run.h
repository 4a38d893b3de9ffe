/* run: run a program to completion, with a deadline, capturing its output.
 *
 *   const char *argv[] = { "git", "rev-parse", "HEAD", NULL };
 *   struct run_result r = RUN_RESULT_INIT;
 *   struct run_opts o = { .argv = argv, .envp = env, .cwd = dir, .timeout_ms = 10000 };
 *   if (run(&o, &r, err, sizeof(err)) < 0) ...   err: "'git' timed out after 10000 ms"
 *   ... r.status (a wait status), r.out ...
 *   run_result_release(&r);
 *
 * BLOCKING: the caller waits (poll) until the program and everything in its
 * process group are done or the deadline passes. It is for short probes
 * (runtime versions) and for work done outside the agent's event loop (a
 * deploy stage's own process, tests). The agent's loop must not call it:
 * there, start the same argv with spawn_start and watch it with the loop.
 *
 * The program runs through spawn (argv + execve, never a shell) in its own
 * process group; at the deadline the whole group gets SIGKILL (and the
 * program is reaped), so nothing it started is left behind holding the
 * pipes. A background process that closed its pipes before the program
 * exited is not waited for.
 */
#ifndef DPLOYR_RUN_H
#define DPLOYR_RUN_H

#include <stddef.h>

#include "buf.h"

struct run_opts {
	const char *const *argv;
	const char *const *envp; /* the whole environment (NULL: empty) */
	const char *cwd;	 /* NULL: the caller's */
	int timeout_ms;		 /* <= 0: 30 s */
	size_t max_out;		 /* bytes kept per stream, more is read and dropped [1 MiB] */
	int merge_err;		 /* stderr into out (2>&1) */
};

struct run_result {
	int status;    /* wait status of the program (WIFEXITED, ...) */
	int timed_out; /* killed at the deadline */
	struct buf out;
	struct buf err; /* empty with merge_err */
};
#define RUN_RESULT_INIT                                                                            \
	{                                                                                          \
		0, 0, BUF_INIT, BUF_INIT                                                           \
	}

/* 0 when the program ran to its end (whatever its exit status); -1 when it
 * could not be started ("spawn 'ARGV0': reason") or was killed at the
 * deadline ("'ARGV0' timed out after N ms"). r is filled in either way
 * (output appended). */
int run(const struct run_opts *o, struct run_result *r, char *err, size_t errlen);
void run_result_release(struct run_result *r);

/* "exited with status 3", "killed by signal 9": a wait status in words. */
void run_status_str(int status, char *out, size_t outlen);

#endif
