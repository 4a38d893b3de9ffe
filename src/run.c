#include "run.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spawn.h"

#define RUN_DEFAULT_TIMEOUT 30000
#define RUN_DEFAULT_MAX	    (1u << 20)

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read what is there; 1 at end of file (or error), else 0. */
static int drain(int fd, struct buf *b, size_t max)
{
	char tmp[8192];
	for (;;) {
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n > 0) {
			size_t keep = b->len < max ? max - b->len : 0;
			buf_add(b, tmp, (size_t)n < keep ? (size_t)n : keep);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return 1;
	}
}

int run(const struct run_opts *o, struct run_result *r, char *err, size_t errlen)
{
	int timeout = o->timeout_ms > 0 ? o->timeout_ms : RUN_DEFAULT_TIMEOUT;
	size_t max = o->max_out ? o->max_out : RUN_DEFAULT_MAX;
	struct spawn_opts so = {.argv = o->argv,
				.envp = o->envp,
				.cwd = o->cwd,
				.pgroup = SPAWN_PGROUP,
				.out = SPAWN_PIPE,
				.err = o->merge_err ? SPAWN_STDOUT : SPAWN_PIPE};
	struct spawn_proc p;
	r->status = 0;
	r->timed_out = 0;
	if (spawn_start(&so, &p, err, errlen) < 0)
		return -1;
	long long deadline = mono_ms() + timeout;
	int fds[2] = {p.out_fd, p.err_fd};
	struct buf *bufs[2] = {&r->out, &r->err};
	int exited = 0;
	for (;;) {
		struct pollfd pf[2];
		int n = 0;
		for (int i = 0; i < 2; i++)
			if (fds[i] >= 0)
				pf[n++] = (struct pollfd){.fd = fds[i], .events = POLLIN};
		if (!exited) {
			int st;
			pid_t w = waitpid(p.pid, &st, WNOHANG);
			if (w == p.pid) {
				exited = 1;
				r->status = st;
			}
		}
		/* Done when the program has exited and its group has let go of
		 * the pipes. */
		if (exited && n == 0)
			break;
		long long left = deadline - mono_ms();
		if (left <= 0) {
			r->timed_out = 1;
			break;
		}
		/* Without pipes to wait on (or until they close), poll in short
		 * steps to notice the exit. */
		int step = n == 0 || !exited ? 10 : 1000;
		if (step > left)
			step = (int)left;
		if (n == 0) {
			struct timespec ts = {0, (long)step * 1000000L};
			nanosleep(&ts, NULL);
			continue;
		}
		if (poll(pf, (nfds_t)n, step) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++)
			if (fds[i] >= 0 && drain(fds[i], bufs[i], max)) {
				close(fds[i]);
				fds[i] = -1;
			}
	}
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (r->timed_out || !exited) {
		spawn_kill_group(p.pgid, SIGKILL);
		if (!exited)
			while (waitpid(p.pid, &r->status, 0) < 0 && errno == EINTR)
				;
	}
	if (r->timed_out) {
		snprintf(err, errlen, "'%s' timed out after %d ms", o->argv[0], timeout);
		return -1;
	}
	if (!exited) {
		snprintf(err, errlen, "'%s': poll: %s", o->argv[0], strerror(errno));
		return -1;
	}
	return 0;
}

void run_result_release(struct run_result *r)
{
	buf_release(&r->out);
	buf_release(&r->err);
}

void run_status_str(int status, char *out, size_t outlen)
{
	if (WIFEXITED(status))
		snprintf(out, outlen, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, outlen, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(out, outlen, "ended with wait status %d", status);
}
