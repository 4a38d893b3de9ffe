#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "harness.h"
#include "loop.h"

/* Read a non-blocking fd until end of file (or until a newline when
 * line is set). */
static void slurp(int fd, struct buf *b, int line)
{
	for (;;) {
		char tmp[4096];
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n > 0) {
			buf_add(b, tmp, (size_t)n);
			if (line && memchr(tmp, '\n', (size_t)n))
				return;
			continue;
		}
		if (n == 0)
			return;
		if (errno != EAGAIN && errno != EINTR)
			harness_fail(__FILE__, __LINE__, "read: %s", strerror(errno));
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 10000) != 1)
			harness_fail(__FILE__, __LINE__, "fd %d: no output", fd);
	}
}

static int wait_status(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			harness_fail(__FILE__, __LINE__, "waitpid: %s", strerror(errno));
	return status;
}

/* Run argv with stdout (and stderr, 2>&1) captured; returns the status. */
static int run(const char *const *argv, const char *const *envp, const char *cwd, struct buf *out)
{
	char err[512];
	struct spawn_opts o = { .argv = argv, .envp = envp, .cwd = cwd, .out = SPAWN_PIPE,
				.err = SPAWN_STDOUT };
	struct spawn_proc p;
	if (spawn_start(&o, &p, err, sizeof(err)) < 0)
		harness_fail(__FILE__, __LINE__, "%s", err);
	slurp(p.out_fd, out, 0);
	close(p.out_fd);
	return wait_status(p.pid);
}

static const char *const path_env[] = { "PATH=/usr/bin:/bin", NULL };

TEST(spawn_exit_codes_and_signals)
{
	struct buf out = BUF_INIT;
	const char *const exit3[] = { "sh", "-c", "exit 3", NULL };
	int st = run(exit3, path_env, NULL, &out);
	CHECK(WIFEXITED(st));
	CHECK_INT(WEXITSTATUS(st), 3);
	const char *const t[] = { "true", NULL };
	st = run(t, NULL, NULL, &out);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	const char *const killed[] = { "sh", "-c", "kill -KILL $$", NULL };
	st = run(killed, path_env, NULL, &out);
	CHECK(WIFSIGNALED(st));
	CHECK_INT(WTERMSIG(st), SIGKILL);
	CHECK_INT(out.len, 0);
	buf_release(&out);
}

TEST(spawn_captures_output_and_feeds_stdin)
{
	char err[512];
	const char *const argv[] = { "sh", "-c", "echo out; echo err >&2; cat", NULL };
	struct spawn_opts o = { .argv = argv, .envp = path_env, .in = SPAWN_PIPE,
				.out = SPAWN_PIPE, .err = SPAWN_PIPE };
	struct spawn_proc p;
	CHECK_INT(spawn_start(&o, &p, err, sizeof(err)), 0);
	CHECK(p.in_fd >= 0 && p.out_fd >= 0 && p.err_fd >= 0);
	CHECK_INT(p.pgid, 0);
	int fds[3] = { p.in_fd, p.out_fd, p.err_fd };
	for (int i = 0; i < 3; i++) {
		CHECK(fcntl(fds[i], F_GETFL) & O_NONBLOCK);
		CHECK(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
	}
	CHECK(write(p.in_fd, "fed\n", 4) == 4);
	close(p.in_fd);
	struct buf out = BUF_INIT, errb = BUF_INIT;
	slurp(p.out_fd, &out, 0);
	slurp(p.err_fd, &errb, 0);
	CHECK_STR(out.data, "out\nfed\n");
	CHECK_STR(errb.data, "err\n");
	close(p.out_fd);
	close(p.err_fd);
	CHECK_INT(wait_status(p.pid), 0);

	/* stdin defaults to /dev/null: cat sees end of file at once */
	const char *const cat[] = { "cat", NULL };
	buf_reset(&out);
	CHECK_INT(run(cat, NULL, NULL, &out), 0);
	CHECK_STR(out.data, "");
	buf_release(&out);
	buf_release(&errb);
}

TEST(spawn_output_to_a_given_fd)
{
	char err[512];
	int log = open("log", O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0600);
	CHECK(log >= 0);
	const char *const argv[] = { "sh", "-c", "echo one; echo two >&2", NULL };
	struct spawn_opts o = { .argv = argv, .envp = path_env, .out = SPAWN_FD, .out_fd = log,
				.err = SPAWN_STDOUT };
	struct spawn_proc p;
	CHECK_INT(spawn_start(&o, &p, err, sizeof(err)), 0);
	CHECK_INT(p.out_fd, -1);
	CHECK_INT(p.err_fd, -1);
	CHECK_INT(wait_status(p.pid), 0);
	close(log);
	struct buf b = BUF_INIT;
	CHECK_INT(buf_read_file(&b, "log", 1000, err, sizeof(err)), 0);
	CHECK_STR(b.data, "one\ntwo\n");
	buf_release(&b);

	o.in = SPAWN_STDOUT;
	CHECK_INT(spawn_start(&o, &p, err, sizeof(err)), -1);
	CHECK_STR(err, "spawn 'sh': SPAWN_STDOUT is for stderr only");
}

TEST(spawn_stdin_from_a_given_fd_and_inherited_stdout)
{
	char err[512];
	int in = open("input", O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	CHECK(in >= 0 && write(in, "from file\n", 10) == 10);
	CHECK(lseek(in, 0, SEEK_SET) == 0);
	/* the child inherits our stdout, redirected here to a file */
	int outf = open("output", O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	CHECK(outf >= 0);
	CHECK(dup2(outf, 1) == 1);
	const char *const argv[] = { "cat", NULL };
	struct spawn_opts o = { .argv = argv, .in = SPAWN_FD, .in_fd = in, .out = SPAWN_INHERIT };
	struct spawn_proc p;
	CHECK_INT(spawn_start(&o, &p, err, sizeof(err)), 0);
	CHECK_INT(p.in_fd, -1);
	CHECK_INT(wait_status(p.pid), 0);
	struct buf b = BUF_INIT;
	CHECK_INT(buf_read_file(&b, "output", 1000, err, sizeof(err)), 0);
	CHECK_STR(b.data, "from file\n");
	buf_release(&b);
	close(in);
	close(outf);
}

TEST(spawn_passes_env_exactly_and_argv_literally)
{
	struct buf out = BUF_INIT;
	const char *const envp[] = { "A=1", "B=two words", "C=$(id)", NULL };
	const char *const env[] = { "env", NULL };
	CHECK_INT(run(env, envp, NULL, &out), 0);
	CHECK_STR(out.data, "A=1\nB=two words\nC=$(id)\n");
	buf_reset(&out);
	CHECK_INT(run(env, NULL, NULL, &out), 0);
	CHECK_STR(out.data, "");
	buf_reset(&out);
	const char *const echo[] = { "echo", "$(id)", "a;b", "*", "`id`", "$HOME", NULL };
	CHECK_INT(run(echo, NULL, NULL, &out), 0);
	CHECK_STR(out.data, "$(id) a;b * `id` $HOME\n");
	buf_release(&out);
}

TEST(spawn_sets_cwd)
{
	CHECK_INT(mkdir("sub dir", 0700), 0);
	char want[PATH_MAX], cwd[PATH_MAX + 16];
	CHECK(realpath("sub dir", want) != NULL);
	strcat(want, "\n");
	snprintf(cwd, sizeof(cwd), "%s/sub dir", harness_tmpdir);
	struct buf out = BUF_INIT;
	const char *const pwd[] = { "/bin/pwd", "-P", NULL };
	CHECK_INT(run(pwd, NULL, cwd, &out), 0);
	CHECK_STR(out.data, want);
	buf_release(&out);
}

TEST(spawn_reports_exec_failures)
{
	char err[512], want[512];
	struct spawn_proc p;
	const char *const none[] = { "nosuchprog", NULL };
	struct spawn_opts o = { .argv = none, .envp = path_env, .out = SPAWN_PIPE };
	CHECK_INT(spawn_start(&o, &p, err, sizeof(err)), -1);
	CHECK_INT(errno, ENOENT);
	snprintf(want, sizeof(want), "spawn 'nosuchprog': %s", strerror(ENOENT));
	CHECK_STR(err, want);
	CHECK_INT(p.pid, -1);
	CHECK_INT(p.out_fd, -1);

	/* not executable */
	int fd = open("f", O_CREAT | O_WRONLY, 0600);
	CHECK(fd >= 0 && write(fd, "echo hi\n", 8) == 8);
	close(fd);
	const char *const f[] = { "./f", NULL };
	o.argv = f;
	CHECK_INT(spawn_start(&o, &p, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "spawn './f': %s", strerror(EACCES));
	CHECK_STR(err, want);
	/* executable but no #! line: no shell is tried */
	CHECK_INT(chmod("f", 0700), 0);
	CHECK_INT(spawn_start(&o, &p, err, sizeof(err)), -1);
	CHECK_INT(errno, ENOEXEC);
	snprintf(want, sizeof(want), "spawn './f': %s", strerror(ENOEXEC));
	CHECK_STR(err, want);

	const char *const t[] = { "true", NULL };
	o.argv = t;
	o.cwd = "/nonexistent-dir";
	CHECK_INT(spawn_start(&o, &p, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "spawn 'true': chdir '/nonexistent-dir': %s",
		 strerror(ENOENT));
	CHECK_STR(err, want);
	o.cwd = NULL;

	struct spawn_rlimit bad = { RLIMIT_NOFILE, { 10, 5 } }; /* soft > hard */
	o.rlimits = &bad;
	o.nrlimits = 1;
	CHECK_INT(spawn_start(&o, &p, err, sizeof(err)), -1);
	CHECK(strncmp(err, "spawn 'true': setrlimit ", 24) == 0);

	const char *const empty[] = { NULL };
	o.argv = empty;
	CHECK_INT(spawn_start(&o, &p, err, sizeof(err)), -1);
	CHECK_STR(err, "spawn: empty argv");
	/* every failed child was reaped */
	CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
}

TEST(spawn_applies_rlimits)
{
	char err[512];
	struct spawn_rlimit lim = { RLIMIT_NOFILE, { 64, 64 } };
	const char *const argv[] = { "sh", "-c", "ulimit -n", NULL };
	struct spawn_opts o = { .argv = argv, .envp = path_env, .out = SPAWN_PIPE,
				.rlimits = &lim, .nrlimits = 1 };
	struct spawn_proc p;
	CHECK_INT(spawn_start(&o, &p, err, sizeof(err)), 0);
	struct buf out = BUF_INIT;
	slurp(p.out_fd, &out, 0);
	close(p.out_fd);
	CHECK_INT(wait_status(p.pid), 0);
	CHECK_STR(out.data, "64\n");
	buf_release(&out);
}

TEST(spawn_switches_user)
{
	char err[512];
	const char *const argv[] = { "sh", "-c", "id -u; id -g; id -G", NULL };
	struct spawn_opts o = { .argv = argv, .envp = path_env, .out = SPAWN_PIPE,
				.set_ids = 1, .uid = 65534, .gid = 65533 };
	struct spawn_proc p;
	if (geteuid() != 0) {
		CHECK_INT(spawn_start(&o, &p, err, sizeof(err)), -1);
		CHECK(strncmp(err, "spawn 'sh': setgroups 65533: ", 30) == 0);
		return;
	}
	CHECK_INT(spawn_start(&o, &p, err, sizeof(err)), 0);
	struct buf out = BUF_INIT;
	slurp(p.out_fd, &out, 0);
	close(p.out_fd);
	CHECK_INT(wait_status(p.pid), 0);
	CHECK_STR(out.data, "65534\n65533\n65533\n");
	buf_release(&out);
}

static void check_fds_closed(int flags)
{
	char err[512];
	/* fds without CLOEXEC, as a careless library (or LMDB) would leave */
	int f = open("leak", O_CREAT | O_WRONLY, 0600);
	int pp[2];
	CHECK(f >= 0 && pipe(pp) == 0);
	CHECK(dup2(f, 200) == 200);
	const char *const argv[] = { "ls", "/proc/self/fd", NULL };
	struct spawn_opts o = { .argv = argv, .out = SPAWN_PIPE, .flags = flags };
	struct spawn_proc p;
	CHECK_INT(spawn_start(&o, &p, err, sizeof(err)), 0);
	struct buf out = BUF_INIT;
	slurp(p.out_fd, &out, 0);
	close(p.out_fd);
	CHECK_INT(wait_status(p.pid), 0);
	/* 0-2, and 3: the directory ls itself opened */
	CHECK_STR(out.data, "0\n1\n2\n3\n");
	buf_release(&out);
}

TEST(spawn_closes_other_fds_close_range)
{
	check_fds_closed(0);
}

TEST(spawn_closes_other_fds_proc_fallback)
{
	check_fds_closed(SPAWN_NO_CLOSE_RANGE);
}

TEST(spawn_resets_signal_mask_and_dispositions)
{
	char err[512];
	/* what a daemon with a loop has: blocked signals, SIGPIPE ignored */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGCHLD);
	CHECK_INT(sigprocmask(SIG_BLOCK, &set, NULL), 0);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	const char *const argv[] = { "sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status",
				     NULL };
	struct spawn_opts o = { .argv = argv, .envp = path_env, .out = SPAWN_PIPE };
	struct spawn_proc p;
	CHECK_INT(spawn_start(&o, &p, err, sizeof(err)), 0);
	struct buf out = BUF_INIT;
	slurp(p.out_fd, &out, 0);
	close(p.out_fd);
	CHECK_INT(wait_status(p.pid), 0);
	CHECK_STR(out.data, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
	buf_release(&out);
}

TEST(spawn_kill_group_reaches_grandchildren)
{
	char err[512];
	/* orphans are re-parented to us, so their fate can be checked */
	CHECK_INT(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
	const char *const argv[] = { "sh", "-c", "sleep 100 & echo $!; sleep 100", NULL };
	for (int mode = SPAWN_PGROUP; mode <= SPAWN_SETSID; mode++) {
		struct spawn_opts o = { .argv = argv, .envp = path_env, .out = SPAWN_PIPE,
					.pgroup = (enum spawn_pgroup)mode };
		struct spawn_proc p;
		CHECK_INT(spawn_start(&o, &p, err, sizeof(err)), 0);
		CHECK_INT(p.pgid, p.pid);
		CHECK_INT(getpgid(p.pid), p.pid);
		if (mode == SPAWN_SETSID)
			CHECK_INT(getsid(p.pid), p.pid);
		else
			CHECK_INT(getsid(p.pid), getsid(0));
		struct buf out = BUF_INIT;
		slurp(p.out_fd, &out, 1);
		pid_t grandchild = (pid_t)atoi(out.data);
		CHECK(grandchild > 1);
		CHECK_INT(getpgid(grandchild), p.pid);
		CHECK_INT(spawn_kill_group(p.pgid, SIGTERM), 0);
		int st = wait_status(p.pid);
		CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
		st = wait_status(grandchild);
		CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
		/* the rest of the group (sh's foreground sleep), re-parented to us */
		pid_t r;
		while ((r = waitpid(-p.pgid, &st, 0)) > 0)
			CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
		close(p.out_fd);
		buf_release(&out);
		CHECK_INT(spawn_kill_group(p.pgid, SIGTERM), -1);
		CHECK_INT(errno, ESRCH);
	}
	CHECK_INT(spawn_kill_group(0, SIGTERM), -1);
	CHECK_INT(errno, EINVAL);
	CHECK_INT(spawn_kill_group(1, SIGTERM), -1);
	CHECK_INT(spawn_kill_group(-5, SIGTERM), -1);
}

static void on_exit_cb(struct loop *loop, long long id, void *arg, int mask)
{
	*(int *)arg = mask;
	loop_stop(loop);
}

TEST(spawn_child_watched_by_the_loop)
{
	char err[512];
	struct loop *loop = loop_new(0, err, sizeof(err));
	CHECK(loop != NULL);
	const char *const argv[] = { "sh", "-c", "exit 9", NULL };
	struct spawn_opts o = { .argv = argv, .envp = path_env };
	struct spawn_proc p;
	CHECK_INT(spawn_start(&o, &p, err, sizeof(err)), 0);
	int status = -2;
	CHECK_INT(loop_child_add(loop, p.pid, on_exit_cb, &status), 0);
	CHECK_INT(loop_run(loop), 0);
	CHECK(WIFEXITED(status));
	CHECK_INT(WEXITSTATUS(status), 9);
	loop_free(loop);
}
