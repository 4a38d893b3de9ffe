#include "supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cron.h"
#include "harness.h"
#include "log.h"

/* What the callbacks saw. */
struct seen {
	int states[64];
	int nstates;
	long long backoffs[16];
	int nbackoffs;
	int out_fd, err_fd;
};

static void on_state(struct supervise *sv, void *arg, int what)
{
	struct seen *s = arg;
	if (s->nstates < 64)
		s->states[s->nstates++] = what;
	if (what == SUPERVISE_BACKOFF && s->nbackoffs < 16)
		s->backoffs[s->nbackoffs++] = supervise_backoff_ms(sv);
}

static void on_output(struct supervise *sv, void *arg, int what)
{
	struct seen *s = arg;
	supervise_take_output(sv, &s->out_fd, &s->err_fd);
}

static struct loop *mkloop(void)
{
	char err[256];
	log_set_level(LOG_LVL_WARN);
	struct loop *l = loop_new(0, err, sizeof(err));
	if (!l)
		harness_fail(__FILE__, __LINE__, "%s", err);
	return l;
}

/* Run the loop until sv is in state st (bounded: 10 s). */
static void run_until_state(struct loop *l, struct supervise *sv, enum supervise_state st, int line)
{
	long long end = loop_now_ms() + 10000;
	while (supervise_state(sv) != st) {
		if (loop_now_ms() > end)
			harness_fail(__FILE__, line, "state %s, expected %s",
				     supervise_state_name(supervise_state(sv)),
				     supervise_state_name(st));
		loop_run_once(l, 50);
	}
}
#define RUN_UNTIL(l, sv, st) run_until_state(l, sv, st, __LINE__)

static int file_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

/* Run the loop until path exists (bounded). */
static void run_until_file(struct loop *l, const char *path)
{
	long long end = loop_now_ms() + 10000;
	while (!file_exists(path)) {
		if (loop_now_ms() > end)
			harness_fail(__FILE__, __LINE__, "no file '%s'", path);
		loop_run_once(l, 20);
	}
}

static const char *slurp(const char *path)
{
	static struct buf b;
	char err[256];
	buf_release(&b);
	if (buf_read_file(&b, path, 1 << 16, err, sizeof(err)) < 0)
		harness_fail(__FILE__, __LINE__, "%s", err);
	return b.data;
}

static pid_t read_pid(const char *path)
{
	return (pid_t)atoi(slurp(path));
}

/* Wait (bounded) until pid no longer exists or is a zombie. */
static int gone(pid_t pid)
{
	unsigned long long st;
	for (int i = 0; i < 500; i++) {
		if (supervise_proc_start_time(pid, &st) < 0)
			return 1;
		usleep(10000);
	}
	return 0;
}

static struct supervise *mk(struct loop *l, struct supervise_opts *o, struct seen *s)
{
	char err[256];
	o->on_state = on_state;
	o->on_output = on_output;
	o->arg = s;
	s->out_fd = s->err_fd = -1;
	struct supervise *sv = supervise_new(l, o, err, sizeof(err));
	if (!sv)
		harness_fail(__FILE__, __LINE__, "%s", err);
	return sv;
}

TEST(supervise_rejects_bad_options)
{
	struct loop *l = mkloop();
	char err[256];
	struct supervise_opts o = {.name = "x"};
	CHECK(supervise_new(l, &o, err, sizeof(err)) == NULL);
	CHECK_STR(err, "service 'x': empty argv");
	const char *argv[] = {"/bin/true", NULL};
	o.argv = argv;
	o.schedule = "61 * * * *";
	CHECK(supervise_new(l, &o, err, sizeof(err)) == NULL);
	CHECK_STR(err, "schedule '61 * * * *': minute: '61' is outside 0-59");
	o.schedule = NULL;
	o.cgroup_root = "/sys/fs/cgroup";
	CHECK(supervise_new(l, &o, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "cgroup_root without cgroup_path"));
	supervise_free(NULL);
	loop_free(l);
}

TEST(supervise_job_reports_exit_status)
{
	struct loop *l = mkloop();
	struct seen s = {0};
	const char *fail[] = {"/bin/sh", "-c", "exit 3", NULL};
	struct supervise_opts o = {.name = "job", .argv = fail, .restart = SUPERVISE_NEVER};
	struct supervise *sv = mk(l, &o, &s);
	CHECK_INT(supervise_state(sv), SUPERVISE_STOPPED);
	CHECK_INT(supervise_last_status(sv), -1);
	supervise_start(sv);
	CHECK_INT(supervise_state(sv), SUPERVISE_RUNNING);
	struct supervise_record rec;
	CHECK_INT(supervise_record(sv, &rec), 0);
	CHECK(rec.pid > 1);
	CHECK_INT(rec.pgid, rec.pid);
	RUN_UNTIL(l, sv, SUPERVISE_FAILED);
	CHECK(WIFEXITED(supervise_last_status(sv)));
	CHECK_INT(WEXITSTATUS(supervise_last_status(sv)), 3);
	CHECK_INT(supervise_record(sv, &rec), -1);
	CHECK_INT(s.nstates, 2);
	CHECK_INT(s.states[0], SUPERVISE_RUNNING);
	CHECK_INT(s.states[1], SUPERVISE_FAILED);
	CHECK_INT(supervise_runs(sv), 1);
	CHECK_INT(loop_timer_count(l), 0);
	supervise_free(sv);

	const char *ok[] = {"/bin/true", NULL};
	o.argv = ok;
	sv = mk(l, &o, &s);
	supervise_start(sv);
	RUN_UNTIL(l, sv, SUPERVISE_EXITED);
	CHECK_INT(supervise_last_status(sv), 0);
	/* a finished job starts again on request */
	supervise_start(sv);
	RUN_UNTIL(l, sv, SUPERVISE_EXITED);
	CHECK_INT(supervise_runs(sv), 2);
	CHECK_INT(supervise_restarts(sv), 0);
	supervise_free(sv);
	loop_free(l);
}

TEST(supervise_logs_every_transition_at_debug_level)
{
	struct loop *l = mkloop();
	char err[256];
	log_set_level(LOG_LVL_DEBUG);
	log_set_stderr(0);
	CHECK_INT(log_open_file("log.json", err, sizeof(err)), 0);
	struct seen s = {0};
	const char *argv[] = {"/bin/true", NULL};
	struct supervise_opts o = {.name = "tx", .argv = argv, .restart = SUPERVISE_NEVER};
	struct supervise *sv = mk(l, &o, &s);
	supervise_start(sv);
	RUN_UNTIL(l, sv, SUPERVISE_EXITED);
	supervise_stop(sv); /* nothing to do: logged as ignored */
	log_close();
	const char *t = slurp("log.json");
	CHECK(strstr(t, "\"level\":\"debug\","));
	CHECK(strstr(t, "\"msg\":\"transition\",\"service\":\"tx\",\"from\":\"stopped\","
			"\"event\":\"start\",\"to\":\"running\""));
	CHECK(strstr(t, "\"from\":\"running\",\"event\":\"exit\",\"to\":\"exited\""));
	CHECK(strstr(t, "\"msg\":\"event ignored\",\"service\":\"tx\",\"state\":\"exited\","
			"\"event\":\"stop\""));
	supervise_free(sv);
	loop_free(l);
}

TEST(supervise_exact_env_cwd_ids_rlimits_and_output_fd)
{
	struct loop *l = mkloop();
	struct seen s = {0};
	/* a directory the unprivileged user may enter (the test's temp dir is
	 * private) */
	char work[] = "/tmp/dployr-sv-XXXXXX";
	CHECK(mkdtemp(work) != NULL);
	CHECK_INT(chmod(work, 0755), 0);
	int out = open("out", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(out >= 0);
	const char *argv[] = {"/bin/sh", "-c",
			      "pwd; echo \"A=$A B=$B HOME=${HOME-unset}\"; ulimit -n; id -u; "
			      "echo to-stderr >&2",
			      NULL};
	const char *env[] = {"A=1", "B=two words", "PATH=/usr/bin:/bin", NULL};
	struct spawn_rlimit rl = {RLIMIT_NOFILE, {77, 77}};
	struct supervise_opts o = {.argv = argv,
				   .envp = env,
				   .cwd = work,
				   .restart = SUPERVISE_NEVER,
				   .out = SPAWN_FD,
				   .out_fd = out,
				   .err = SPAWN_STDOUT,
				   .rlimits = &rl,
				   .nrlimits = 1};
	if (geteuid() == 0) {
		o.set_ids = 1;
		o.uid = 65534;
		o.gid = 65534;
	}
	struct supervise *sv = mk(l, &o, &s);
	supervise_start(sv);
	RUN_UNTIL(l, sv, SUPERVISE_EXITED);
	close(out);
	char want[512];
	snprintf(want, sizeof(want), "%s\nA=1 B=two words HOME=unset\n77\n%d\nto-stderr\n", work,
		 geteuid() == 0 ? 65534 : (int)geteuid());
	rmdir(work);
	CHECK_STR(slurp("out"), want);
	supervise_free(sv);
	loop_free(l);
}

TEST(supervise_hands_output_pipes_to_the_caller)
{
	struct loop *l = mkloop();
	struct seen s = {0};
	const char *argv[] = {"/bin/sh", "-c", "echo out; echo err >&2", NULL};
	struct supervise_opts o = {
	    .argv = argv, .restart = SUPERVISE_NEVER, .out = SPAWN_PIPE, .err = SPAWN_PIPE};
	struct supervise *sv = mk(l, &o, &s);
	supervise_start(sv);
	CHECK(s.out_fd >= 0);
	CHECK(s.err_fd >= 0);
	RUN_UNTIL(l, sv, SUPERVISE_EXITED);
	char b[64];
	ssize_t n = read(s.out_fd, b, sizeof(b));
	CHECK_INT(n, 4);
	CHECK(!memcmp(b, "out\n", 4));
	n = read(s.err_fd, b, sizeof(b));
	CHECK_INT(n, 4);
	CHECK(!memcmp(b, "err\n", 4));
	close(s.out_fd);
	close(s.err_fd);
	supervise_free(sv);
	loop_free(l);
}

TEST(supervise_restart_always_backs_off_exponentially_and_stop_holds)
{
	struct loop *l = mkloop();
	struct seen s = {0};
	const char *argv[] = {"/bin/sh", "-c", "exit 1", NULL};
	struct supervise_opts o = {.argv = argv,
				   .restart = SUPERVISE_ALWAYS,
				   .backoff_min_ms = 20,
				   .backoff_max_ms = 80,
				   .stable_ms = 60000};
	struct supervise *sv = mk(l, &o, &s);
	supervise_start(sv);
	long long end = loop_now_ms() + 10000;
	while (s.nbackoffs < 5 && loop_now_ms() < end)
		loop_run_once(l, 50);
	CHECK_INT(s.nbackoffs, 5);
	CHECK_INT(s.backoffs[0], 20);
	CHECK_INT(s.backoffs[1], 40);
	CHECK_INT(s.backoffs[2], 80);
	CHECK_INT(s.backoffs[3], 80);
	CHECK(supervise_restarts(sv) >= 4);
	supervise_stop(sv);
	/* from BACKOFF or RUNNING: either way it ends stopped, for good */
	RUN_UNTIL(l, sv, SUPERVISE_STOPPED);
	unsigned runs = supervise_runs(sv);
	CHECK_INT(loop_timer_count(l), 0);
	for (int i = 0; i < 5; i++)
		loop_run_once(l, 30);
	CHECK_INT(supervise_runs(sv), runs);
	CHECK_INT(supervise_state(sv), SUPERVISE_STOPPED);
	supervise_free(sv);
	loop_free(l);
}

TEST(supervise_on_failure_restarts_only_failures)
{
	struct loop *l = mkloop();
	struct seen s = {0};
	/* fails twice, then succeeds */
	const char *argv[] = {"/bin/sh", "-c",
			      "n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; "
			      "[ $n -ge 3 ]",
			      NULL};
	struct supervise_opts o = {
	    .argv = argv, .restart = SUPERVISE_ON_FAILURE, .backoff_min_ms = 10};
	struct supervise *sv = mk(l, &o, &s);
	supervise_start(sv);
	RUN_UNTIL(l, sv, SUPERVISE_EXITED);
	CHECK_INT(supervise_runs(sv), 3);
	CHECK_INT(supervise_restarts(sv), 2);
	CHECK_INT(supervise_last_status(sv), 0);
	CHECK_STR(slurp("n"), "3\n");
	supervise_free(sv);
	loop_free(l);
}

TEST(supervise_backoff_resets_after_a_stable_run)
{
	struct loop *l = mkloop();
	struct seen s = {0};
	/* runs 1, 2: fail at once; run 3 stays up 600 ms (stable_ms 150); then
	 * quick failures again */
	const char *argv[] = {"/bin/sh", "-c",
			      "n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; "
			      "[ $n -eq 3 ] && sleep 0.6; exit 1",
			      NULL};
	struct supervise_opts o = {.argv = argv,
				   .restart = SUPERVISE_ALWAYS,
				   .backoff_min_ms = 20,
				   .backoff_max_ms = 5000,
				   .stable_ms = 150};
	struct supervise *sv = mk(l, &o, &s);
	supervise_start(sv);
	long long end = loop_now_ms() + 10000;
	while (s.nbackoffs < 4 && loop_now_ms() < end)
		loop_run_once(l, 50);
	CHECK_INT(s.nbackoffs, 4);
	CHECK_INT(s.backoffs[0], 20);
	CHECK_INT(s.backoffs[1], 40);
	CHECK_INT(s.backoffs[2], 20); /* after the stable run */
	CHECK_INT(s.backoffs[3], 40);
	supervise_stop(sv);
	RUN_UNTIL(l, sv, SUPERVISE_STOPPED);
	supervise_free(sv);
	loop_free(l);
}

TEST(supervise_stop_terms_the_group_then_kills)
{
	struct loop *l = mkloop();
	struct seen s = {0};
	/* ignores TERM; a background grandchild in the same group */
	const char *argv[] = {"/bin/sh", "-c",
			      "trap '' TERM; sleep 30 & echo $! > gc; echo ready > r; "
			      "while :; do sleep 0.05; done",
			      NULL};
	struct supervise_opts o = {.argv = argv, .stop_grace_ms = 200};
	struct supervise *sv = mk(l, &o, &s);
	supervise_start(sv);
	run_until_file(l, "r");
	pid_t gc = read_pid("gc");
	CHECK(gc > 1);
	supervise_stop(sv);
	CHECK_INT(supervise_state(sv), SUPERVISE_STOPPING);
	supervise_stop(sv); /* twice is harmless */
	RUN_UNTIL(l, sv, SUPERVISE_STOPPED);
	int st = supervise_last_status(sv);
	CHECK(WIFSIGNALED(st));
	CHECK_INT(WTERMSIG(st), SIGKILL);
	CHECK(gone(gc));
	CHECK_INT(loop_timer_count(l), 0);
	CHECK_INT(supervise_restarts(sv), 0);
	/* STOPPING was seen, and no restart followed the stop */
	CHECK_INT(s.states[s.nstates - 2], SUPERVISE_STOPPING);
	CHECK_INT(s.states[s.nstates - 1], SUPERVISE_STOPPED);

	/* a polite service: TERM is enough */
	const char *sl[] = {"/bin/sleep", "30", NULL};
	struct supervise_opts o2 = {.argv = sl, .stop_grace_ms = 10000};
	struct supervise *sv2 = mk(l, &o2, &s);
	supervise_start(sv2);
	supervise_stop(sv2);
	RUN_UNTIL(l, sv2, SUPERVISE_STOPPED);
	CHECK(WIFSIGNALED(supervise_last_status(sv2)));
	CHECK_INT(WTERMSIG(supervise_last_status(sv2)), SIGTERM);
	CHECK_INT(loop_timer_count(l), 0);
	supervise_free(sv2);
	supervise_free(sv);
	loop_free(l);
}

TEST(supervise_leader_exit_takes_its_group)
{
	struct loop *l = mkloop();
	struct seen s = {0};
	const char *argv[] = {"/bin/sh", "-c", "sleep 30 & echo $! > gc; exit 0", NULL};
	struct supervise_opts o = {.argv = argv, .restart = SUPERVISE_NEVER};
	struct supervise *sv = mk(l, &o, &s);
	supervise_start(sv);
	RUN_UNTIL(l, sv, SUPERVISE_EXITED);
	pid_t gc = read_pid("gc");
	CHECK(gc > 1);
	CHECK(gone(gc));
	supervise_free(sv);
	loop_free(l);
}

TEST(supervise_job_deadline_fails_the_run)
{
	struct loop *l = mkloop();
	struct seen s = {0};
	const char *argv[] = {"/bin/sleep", "30", NULL};
	struct supervise_opts o = {
	    .argv = argv, .restart = SUPERVISE_NEVER, .timeout_ms = 100, .stop_grace_ms = 5000};
	struct supervise *sv = mk(l, &o, &s);
	supervise_start(sv);
	RUN_UNTIL(l, sv, SUPERVISE_FAILED);
	CHECK(WIFSIGNALED(supervise_last_status(sv)));
	CHECK_INT(WTERMSIG(supervise_last_status(sv)), SIGTERM);
	CHECK_INT(loop_timer_count(l), 0);
	supervise_free(sv);
	loop_free(l);
}

TEST(supervise_start_failure_counts_as_a_failed_run)
{
	struct loop *l = mkloop();
	struct seen s = {0};
	const char *argv[] = {"/nonexistent/prog", NULL};
	struct supervise_opts o = {.name = "ghost", .argv = argv, .restart = SUPERVISE_NEVER};
	struct supervise *sv = mk(l, &o, &s);
	supervise_start(sv);
	CHECK_INT(supervise_state(sv), SUPERVISE_FAILED);
	CHECK_STR(supervise_error(sv), "spawn '/nonexistent/prog': No such file or directory");
	CHECK_INT(supervise_last_status(sv), -1);
	supervise_free(sv);

	o.restart = SUPERVISE_ALWAYS;
	o.backoff_min_ms = 5000;
	sv = mk(l, &o, &s);
	supervise_start(sv);
	CHECK_INT(supervise_state(sv), SUPERVISE_BACKOFF);
	CHECK_INT(supervise_backoff_ms(sv), 5000);
	supervise_stop(sv);
	CHECK_INT(supervise_state(sv), SUPERVISE_STOPPED);
	CHECK_INT(loop_timer_count(l), 0);
	supervise_free(sv);
	loop_free(l);
}

TEST(supervise_scheduled_job_waits_runs_and_skips_overlaps)
{
	setenv("TZ", "UTC0", 1);
	tzset();
	struct loop *l = mkloop();
	struct seen s = {0};
	const char *argv[] = {"/bin/sh", "-c", "echo run >> runs; sleep 0.3", NULL};
	struct supervise_opts o = {
	    .argv = argv, .schedule = "0 3 * * *", .restart = SUPERVISE_NEVER};
	struct supervise *sv = mk(l, &o, &s);
	supervise_start(sv);
	CHECK_INT(supervise_state(sv), SUPERVISE_WAITING);
	struct cron c;
	char err[128];
	CHECK_INT(cron_parse(&c, "0 3 * * *", err, sizeof(err)), 0);
	time_t now = time(NULL), next = supervise_next_run(sv);
	CHECK(next == cron_next(&c, now) || next == cron_next(&c, now - 1));
	CHECK_INT(loop_timer_count(l), 1);
	/* run now (as when the time comes); a second trigger while it runs
	 * is skipped, not queued */
	supervise_trigger(sv);
	CHECK_INT(supervise_state(sv), SUPERVISE_RUNNING);
	supervise_trigger(sv);
	CHECK_INT(supervise_skipped(sv), 1);
	RUN_UNTIL(l, sv, SUPERVISE_WAITING);
	CHECK_INT(supervise_last_status(sv), 0);
	CHECK_STR(slurp("runs"), "run\n");
	CHECK_INT(supervise_runs(sv), 1);
	CHECK_INT(loop_timer_count(l), 1); /* the next scheduled run */
	supervise_stop(sv);
	CHECK_INT(supervise_state(sv), SUPERVISE_STOPPED);
	CHECK_INT(loop_timer_count(l), 0);
	CHECK_INT(supervise_next_run(sv), -1);
	supervise_free(sv);
	loop_free(l);
}

/* Start `sleep 30` as a group leader from a helper process that then exits,
 * so the sleep is no child of ours (reparented, as after an agent restart). */
static pid_t orphan(void)
{
	int p[2];
	CHECK_INT(pipe(p), 0);
	pid_t h = fork();
	CHECK(h >= 0);
	if (h == 0) {
		const char *argv[] = {"/bin/sleep", "30", NULL};
		struct spawn_opts so = {.argv = argv, .pgroup = SPAWN_PGROUP};
		struct spawn_proc sp;
		char err[256];
		pid_t pid = spawn_start(&so, &sp, err, sizeof(err)) < 0 ? -1 : sp.pid;
		(void)!write(p[1], &pid, sizeof(pid));
		_exit(0);
	}
	close(p[1]);
	pid_t pid = -1;
	CHECK_INT(read(p[0], &pid, sizeof(pid)), sizeof(pid));
	close(p[0]);
	waitpid(h, NULL, 0);
	CHECK(pid > 1);
	CHECK(waitpid(pid, NULL, WNOHANG) < 0); /* not ours */
	return pid;
}

TEST(supervise_adopts_by_pid_and_start_time)
{
	struct loop *l = mkloop();
	struct seen s = {0};
	const char *argv[] = {"/bin/sleep", "30", NULL};
	struct supervise_opts o = {
	    .name = "web", .argv = argv, .restart = SUPERVISE_NEVER, .stop_grace_ms = 5000};
	struct supervise *sv = mk(l, &o, &s);
	pid_t pid = orphan();
	struct supervise_record rec = {.pid = pid, .pgid = pid, .ports = {8080}, .nports = 1};
	CHECK_INT(supervise_proc_start_time(pid, &rec.start_time), 0);
	char err[256];

	/* pid reuse: the same pid with another start time is refused */
	struct supervise_record bad = rec;
	bad.start_time++;
	CHECK_INT(supervise_adopt(sv, &bad, err, sizeof(err)), -1);
	CHECK(strstr(err, "adopt 'web': pid "));
	CHECK(strstr(err, "another process (pid reused)"));
	bad = rec;
	bad.pgid = getpid();
	CHECK_INT(supervise_adopt(sv, &bad, err, sizeof(err)), -1);
	CHECK(strstr(err, "is not in process group"));
	CHECK_INT(supervise_state(sv), SUPERVISE_STOPPED);

	CHECK_INT(supervise_adopt(sv, &rec, err, sizeof(err)), 0);
	CHECK_INT(supervise_state(sv), SUPERVISE_RUNNING);
	CHECK_INT(supervise_adopt(sv, &rec, err, sizeof(err)), -1);
	CHECK(strstr(err, "already running"));
	struct supervise_record got;
	CHECK_INT(supervise_record(sv, &got), 0);
	CHECK_INT(got.pid, pid);
	CHECK_INT(got.pgid, pid);
	CHECK(got.start_time == rec.start_time);
	CHECK_INT(got.nports, 1);
	CHECK_INT(got.ports[0], 8080);

	/* its exit is seen, with an unknown status */
	kill(pid, SIGKILL);
	RUN_UNTIL(l, sv, SUPERVISE_FAILED);
	CHECK_INT(supervise_last_status(sv), -1);
	CHECK_INT(supervise_adopt(sv, &rec, err, sizeof(err)), -1);
	CHECK(strstr(err, "is gone") || strstr(err, "pid reused"));

	/* an adopted service stops like our own */
	pid = orphan();
	rec.pid = rec.pgid = pid;
	CHECK_INT(supervise_proc_start_time(pid, &rec.start_time), 0);
	CHECK_INT(supervise_adopt(sv, &rec, err, sizeof(err)), 0);
	supervise_stop(sv);
	RUN_UNTIL(l, sv, SUPERVISE_STOPPED);
	CHECK(gone(pid));
	CHECK_INT(loop_timer_count(l), 0);
	supervise_free(sv);
	loop_free(l);
}

/* Without pidfds (the loop's SIGCHLD path): our children through SIGCHLD,
 * adopted ones by polling /proc. */
TEST(supervise_works_without_pidfds)
{
	char err[256];
	struct loop *l = loop_new(LOOP_NO_PIDFD, err, sizeof(err));
	CHECK(l != NULL);
	log_set_level(LOG_LVL_WARN);
	CHECK_INT(loop_child_uses_pidfd(l), 0);
	struct seen s = {0};
	const char *argv[] = {"/bin/sh", "-c", "exit 2", NULL};
	struct supervise_opts o = {
	    .argv = argv, .restart = SUPERVISE_ON_FAILURE, .backoff_min_ms = 10};
	struct supervise *sv = mk(l, &o, &s);
	supervise_start(sv);
	long long end = loop_now_ms() + 10000;
	while (supervise_restarts(sv) < 2 && loop_now_ms() < end)
		loop_run_once(l, 50);
	CHECK(supervise_restarts(sv) >= 2);
	supervise_stop(sv);
	RUN_UNTIL(l, sv, SUPERVISE_STOPPED);
	CHECK(supervise_runs(sv) >= 3);
	supervise_free(sv);

	const char *sl[] = {"/bin/sleep", "30", NULL};
	struct supervise_opts o2 = {.argv = sl, .restart = SUPERVISE_NEVER};
	sv = mk(l, &o2, &s);
	pid_t pid = orphan();
	struct supervise_record rec = {.pid = pid, .pgid = pid};
	CHECK_INT(supervise_proc_start_time(pid, &rec.start_time), 0);
	CHECK_INT(supervise_adopt(sv, &rec, err, sizeof(err)), 0);
	CHECK_INT(loop_timer_count(l), 1); /* the poll */
	kill(pid, SIGKILL);
	RUN_UNTIL(l, sv, SUPERVISE_FAILED);
	CHECK_INT(supervise_last_status(sv), -1);
	CHECK_INT(loop_timer_count(l), 0);
	supervise_free(sv);
	loop_free(l);
}

TEST(supervise_proc_start_time_reads_field_22)
{
	unsigned long long a, b;
	CHECK_INT(supervise_proc_start_time(getpid(), &a), 0);
	CHECK_INT(supervise_proc_start_time(getpid(), &b), 0);
	CHECK(a == b);
	CHECK(a > 0);
	unsigned long long init;
	CHECK_INT(supervise_proc_start_time(1, &init), 0);
	CHECK(init <= a);
	CHECK_INT(supervise_proc_start_time(0x3fffffff, &a), -1);
	/* a command name with spaces and ')' does not shift the fields */
	CHECK_INT(symlink("/bin/sleep", "a) 1 2 3"), 0);
	const char *argv[] = {"./a) 1 2 3", "30", NULL};
	struct spawn_opts so = {.argv = argv};
	struct spawn_proc p;
	char err[256], path[64];
	CHECK_INT(spawn_start(&so, &p, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)p.pid);
	CHECK(strstr(slurp(path), "(a) 1 2 3) "));
	unsigned long long child;
	CHECK_INT(supervise_proc_start_time(p.pid, &child), 0);
	CHECK(child >= b);
	CHECK(child - b < 100ULL * 3600); /* ticks: within an hour of ours */
	kill(p.pid, SIGKILL);
	waitpid(p.pid, NULL, 0);
	/* a zombie counts as gone */
	CHECK_INT(supervise_proc_start_time(p.pid, &child), -1);
}

TEST(supervise_places_the_service_in_its_cgroup)
{
	if (geteuid() != 0 || cgroup_detect("/sys/fs/cgroup") == CGROUP_NONE) {
		fprintf(stderr, "    (no writable cgroups: skipped)\n");
		return;
	}
	struct loop *l = mkloop();
	struct seen s = {0};
	char path[96];
	snprintf(path, sizeof(path), "dployr-test-%d/svc", (int)getpid());
	int out = open("out", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	const char *argv[] = {"/bin/cat", "/proc/self/cgroup", NULL};
	struct supervise_opts o = {.argv = argv,
				   .restart = SUPERVISE_NEVER,
				   .out = SPAWN_FD,
				   .out_fd = out,
				   .cgroup_root = "/sys/fs/cgroup",
				   .cgroup_path = path,
				   .limits = {.pids = 64}};
	struct supervise *sv = mk(l, &o, &s);
	supervise_start(sv);
	RUN_UNTIL(l, sv, SUPERVISE_EXITED);
	close(out);
	char want[128];
	snprintf(want, sizeof(want), "/%s\n", path);
	CHECK(strstr(slurp("out"), want));
	char err[256];
	CHECK_INT(supervise_remove_cgroup(sv, err, sizeof(err)), 0);
	struct stat st;
	char d[160];
	snprintf(d, sizeof(d), "/sys/fs/cgroup/pids/%s", path);
	if (cgroup_detect("/sys/fs/cgroup") == CGROUP_V1)
		CHECK(stat(d, &st) < 0);
	supervise_free(sv);
	/* clean up the parent in every hierarchy */
	const char *h[] = {"memory", "cpu", "pids", ""};
	for (int i = 0; i < 4; i++) {
		char dir[160];
		snprintf(dir, sizeof(dir), "/sys/fs/cgroup/%s%sdployr-test-%d", h[i],
			 *h[i] ? "/" : "", (int)getpid());
		rmdir(dir);
	}
	loop_free(l);
}
