#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "xalloc.h"

struct rec {
	int calls;
	long long last_id;
	int last_mask;
	int order[64];
	int norder;
};

static void rec_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct rec *r = arg;
	r->calls++;
	r->last_id = id;
	r->last_mask = mask;
}

static struct loop *new_loop(int flags)
{
	char err[256];
	struct loop *loop = loop_new(flags, err, sizeof(err));
	if (!loop)
		harness_fail(__FILE__, __LINE__, "loop_new: %s", err);
	return loop;
}

TEST(loop_fd_readiness_with_pipes)
{
	struct loop *loop = new_loop(0);
	int p[2];
	CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
	struct rec r = { 0 }, w = { 0 };
	CHECK_INT(loop_add_fd(loop, p[0], LOOP_READ, rec_cb, &r), 0);
	CHECK_INT(loop_add_fd(loop, p[0], LOOP_READ, rec_cb, &r), -1);
	CHECK_INT(errno, EEXIST);
	CHECK_INT(loop_fd_mask(loop, p[0]), LOOP_READ);
	CHECK_INT(loop_run_once(loop, 0), 0);
	CHECK_INT(r.calls, 0);
	CHECK(write(p[1], "x", 1) == 1);
	CHECK_INT(loop_run_once(loop, 1000), 1);
	CHECK_INT(r.calls, 1);
	CHECK_INT(r.last_id, p[0]);
	CHECK_INT(r.last_mask, LOOP_READ);
	/* level-triggered: still readable until drained */
	CHECK_INT(loop_run_once(loop, 0), 1);
	char c;
	CHECK(read(p[0], &c, 1) == 1);
	CHECK_INT(loop_run_once(loop, 0), 0);
	CHECK_INT(r.calls, 2);

	CHECK_INT(loop_add_fd(loop, p[1], LOOP_WRITE, rec_cb, &w), 0);
	CHECK_INT(loop_run_once(loop, 0), 1);
	CHECK_INT(w.last_mask, LOOP_WRITE);
	CHECK_INT(w.last_id, p[1]);
	CHECK_INT(loop_mod_fd(loop, p[1], 0), 0);
	CHECK_INT(loop_run_once(loop, 0), 0);
	CHECK_INT(loop_mod_fd(loop, 77, LOOP_READ), -1);
	CHECK_INT(loop_mod_fd(loop, p[1], 99), -1);
	CHECK_INT(loop_add_fd(loop, -1, LOOP_READ, rec_cb, &r), -1);
	CHECK(strstr(loop_error(loop), "fd -1") != NULL);

	/* writer gone: the reader sees READ|ERROR (then read returns 0) */
	loop_del_fd(loop, p[1]);
	CHECK_INT(loop_fd_mask(loop, p[1]), -1);
	close(p[1]);
	CHECK_INT(loop_run_once(loop, 0), 1);
	CHECK_INT(r.last_mask, LOOP_READ | LOOP_ERROR);
	/* paused: no spinning on the hang-up */
	CHECK_INT(loop_mod_fd(loop, p[0], 0), 0);
	CHECK_INT(loop_run_once(loop, 0), 0);
	CHECK_INT(loop_mod_fd(loop, p[0], LOOP_READ), 0);
	CHECK_INT(loop_run_once(loop, 0), 1);
	loop_del_fd(loop, p[0]);
	loop_del_fd(loop, p[0]);
	close(p[0]);
	loop_free(loop);
	loop_free(NULL);
}

/* Two readable pipes in one batch: whichever runs first removes and closes
 * the other, then watches a new pipe that reuses the closed fd number. */
struct victim {
	int pa[2], pb[2];
	int calls_a, calls_b, calls_new;
	int newp[2];
};

static void new_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct victim *v = arg;
	v->calls_new++;
}

static void kill_other(struct loop *loop, struct victim *v, int other_r, int other_w)
{
	loop_del_fd(loop, other_r);
	close(other_r);
	close(other_w);
	if (pipe2(v->newp, O_NONBLOCK | O_CLOEXEC) < 0)
		abort();
	if (v->newp[0] != other_r) {
		/* make the reuse certain */
		if (dup3(v->newp[0], other_r, O_CLOEXEC) < 0)
			abort();
		close(v->newp[0]);
		v->newp[0] = other_r;
	}
	if (loop_add_fd(loop, v->newp[0], LOOP_READ, new_cb, v) < 0)
		abort();
}

static void a_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct victim *v = arg;
	v->calls_a++;
	if (!v->calls_b)
		kill_other(loop, v, v->pb[0], v->pb[1]);
}

static void b_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct victim *v = arg;
	v->calls_b++;
	if (!v->calls_a)
		kill_other(loop, v, v->pa[0], v->pa[1]);
}

TEST(loop_removal_during_dispatch_skips_stale_events)
{
	struct loop *loop = new_loop(0);
	struct victim v = { 0 };
	CHECK(pipe2(v.pa, O_NONBLOCK | O_CLOEXEC) == 0);
	CHECK(pipe2(v.pb, O_NONBLOCK | O_CLOEXEC) == 0);
	CHECK_INT(loop_add_fd(loop, v.pa[0], LOOP_READ, a_cb, &v), 0);
	CHECK_INT(loop_add_fd(loop, v.pb[0], LOOP_READ, b_cb, &v), 0);
	CHECK(write(v.pa[1], "a", 1) == 1);
	CHECK(write(v.pb[1], "b", 1) == 1);
	CHECK_INT(loop_run_once(loop, 1000), 1);
	CHECK_INT(v.calls_a + v.calls_b, 1);
	/* the stale event for the reused fd did not reach the new watcher */
	CHECK_INT(v.calls_new, 0);
	CHECK_INT(loop_run_once(loop, 0), 1);
	CHECK_INT(v.calls_new, 0);
	CHECK_INT(v.calls_a + v.calls_b, 2);
	loop_free(loop);
}

static void self_del_cb(struct loop *loop, long long id, void *arg, int mask)
{
	int *calls = arg;
	(*calls)++;
	loop_del_fd(loop, (int)id);
}

TEST(loop_callback_removes_itself)
{
	struct loop *loop = new_loop(0);
	int p[2];
	CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
	int calls = 0;
	CHECK_INT(loop_add_fd(loop, p[1], LOOP_WRITE, self_del_cb, &calls), 0);
	CHECK_INT(loop_run_once(loop, 0), 1);
	CHECK_INT(loop_run_once(loop, 0), 0);
	CHECK_INT(calls, 1);
	CHECK_INT(loop_fd_mask(loop, p[1]), -1);
	loop_free(loop);
}

/* --- timers --- */

struct tstate {
	int n;
	long long *ids;
	long long *lo, *hi; /* bounds of each timer's deadline */
	int *fired;
	int *order;
	int nfired;
	int bad_early;
};

struct targ {
	struct tstate *st;
	int i;
};

static void t_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct targ *a = arg;
	struct tstate *st = a->st;
	if (mask != LOOP_TIMER || id != st->ids[a->i] || loop_now_ms() < st->lo[a->i])
		st->bad_early++;
	st->fired[a->i]++;
	st->order[st->nfired++] = a->i;
}

TEST(loop_timers_fire_in_order_and_cancel)
{
	struct loop *loop = new_loop(0);
	struct tstate st = { .n = 2000 };
	st.ids = xcalloc((size_t)st.n, sizeof(long long));
	st.lo = xcalloc((size_t)st.n, sizeof(long long));
	st.hi = xcalloc((size_t)st.n, sizeof(long long));
	st.fired = xcalloc((size_t)st.n, sizeof(int));
	st.order = xcalloc((size_t)st.n, sizeof(int));
	struct targ *args = xcalloc((size_t)st.n, sizeof(*args));
	srand(42);
	for (int i = 0; i < st.n; i++) {
		long long ms = rand() % 40;
		args[i] = (struct targ){ &st, i };
		st.lo[i] = loop_now_ms() + ms;
		st.ids[i] = loop_timer_add(loop, ms, t_cb, &args[i]);
		st.hi[i] = loop_now_ms() + ms;
		CHECK(st.ids[i] > 0);
	}
	CHECK_INT(loop_timer_count(loop), st.n);
	/* cancel every other one, in a shuffled order */
	int *perm = xcalloc((size_t)st.n / 2, sizeof(int));
	for (int i = 0; i < st.n / 2; i++)
		perm[i] = 2 * i + 1;
	for (int i = st.n / 2 - 1; i > 0; i--) {
		int j = rand() % (i + 1), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (int i = 0; i < st.n / 2; i++)
		CHECK_INT(loop_timer_cancel(loop, st.ids[perm[i]]), 0);
	CHECK_INT(loop_timer_cancel(loop, st.ids[1]), -1);
	CHECK_INT(loop_timer_cancel(loop, 0), -1);
	CHECK_INT(loop_timer_cancel(loop, 12345), -1);
	CHECK_INT(loop_timer_count(loop), st.n / 2);
	while (loop_timer_count(loop))
		CHECK(loop_run_once(loop, -1) >= 0);
	CHECK_INT(st.nfired, st.n / 2);
	CHECK_INT(st.bad_early, 0);
	for (int i = 0; i < st.n; i++)
		CHECK_INT(st.fired[i], i % 2 ? 0 : 1);
	for (int k = 1; k < st.nfired; k++) {
		int a = st.order[k - 1], b = st.order[k];
		CHECK(st.lo[a] <= st.hi[b]);
		if (st.lo[a] == st.hi[a] && st.lo[b] == st.hi[b] && st.lo[a] == st.lo[b])
			CHECK(a < b); /* same deadline: the order they were added */
	}
	/* a fired timer's id is stale */
	CHECK_INT(loop_timer_cancel(loop, st.ids[0]), -1);
	free(st.ids);
	free(st.lo);
	free(st.hi);
	free(st.fired);
	free(st.order);
	free(args);
	free(perm);
	loop_free(loop);
}

TEST(loop_many_timers_heap_stays_consistent)
{
	struct loop *loop = new_loop(0);
	struct rec r = { 0 };
	enum { N = 20000 };
	long long *ids = xcalloc(N, sizeof(long long));
	for (int i = 0; i < N; i++)
		ids[i] = loop_timer_add(loop, 100000 + (i * 7919) % 5000, rec_cb, &r);
	for (int i = 0; i < N; i += 3)
		CHECK_INT(loop_timer_cancel(loop, ids[i]), 0);
	/* freed slots are reused with fresh ids */
	long long again = loop_timer_add(loop, 0, rec_cb, &r);
	for (int i = 0; i < N; i += 3)
		CHECK(again != ids[i]);
	CHECK_INT(loop_run_once(loop, -1), 1);
	CHECK_INT(r.last_id, again);
	for (int i = 0; i < N; i++)
		CHECK_INT(loop_timer_cancel(loop, ids[i]), i % 3 ? 0 : -1);
	CHECK_INT(loop_timer_count(loop), 0);
	free(ids);
	loop_free(loop);
}

static void rearm_cb(struct loop *loop, long long id, void *arg, int mask)
{
	int *n = arg;
	if (++*n < 3)
		loop_timer_add(loop, 0, rearm_cb, arg);
}

TEST(loop_rearmed_timer_waits_for_next_iteration)
{
	struct loop *loop = new_loop(0);
	int n = 0;
	CHECK(loop_timer_add(loop, 0, rearm_cb, &n) > 0);
	CHECK_INT(loop_run_once(loop, -1), 1);
	CHECK_INT(n, 1);
	CHECK_INT(loop_timer_count(loop), 1);
	CHECK_INT(loop_run_once(loop, -1), 1);
	CHECK_INT(loop_run_once(loop, -1), 1);
	CHECK_INT(n, 3);
	CHECK_INT(loop_timer_count(loop), 0);
	CHECK(loop_timer_add(loop, 0, NULL, NULL) == 0);
	loop_free(loop);
}

static void stop_cb(struct loop *loop, long long id, void *arg, int mask)
{
	int *n = arg;
	(*n)++;
	loop_stop(loop);
}

TEST(loop_run_until_stop)
{
	struct loop *loop = new_loop(0);
	int n = 0;
	struct rec r = { 0 };
	loop_timer_add(loop, 1, rec_cb, &r);
	loop_timer_add(loop, 5, stop_cb, &n);
	long long later = loop_timer_add(loop, 60000, rec_cb, &r);
	CHECK_INT(loop_run(loop), 0);
	CHECK_INT(n, 1);
	CHECK_INT(r.calls, 1);
	CHECK_INT(loop_timer_cancel(loop, later), 0);
	loop_free(loop);
}

/* --- signals --- */

TEST(loop_signal_delivered_as_event)
{
	struct loop *loop = new_loop(0);
	struct rec r = { 0 };
	CHECK_INT(loop_signal_add(loop, SIGUSR1, rec_cb, &r), 0);
	CHECK_INT(loop_signal_add(loop, SIGKILL, rec_cb, &r), -1);
	CHECK_INT(loop_signal_add(loop, 0, rec_cb, &r), -1);
	CHECK_INT(raise(SIGUSR1), 0); /* blocked: the process survives */
	CHECK_INT(loop_run_once(loop, 5000), 1);
	CHECK_INT(r.calls, 1);
	CHECK_INT(r.last_id, SIGUSR1);
	CHECK_INT(r.last_mask, LOOP_SIGNAL);
	struct rec r2 = { 0 };
	CHECK_INT(loop_signal_add(loop, SIGUSR2, rec_cb, &r2), 0);
	kill(getpid(), SIGUSR2);
	kill(getpid(), SIGUSR1);
	while (r.calls < 2 || r2.calls < 1)
		CHECK(loop_run_once(loop, 5000) > 0);
	CHECK_INT(r2.last_id, SIGUSR2);
	loop_signal_del(loop, SIGUSR1);
	raise(SIGUSR1);
	CHECK(loop_run_once(loop, 0) >= 0);
	CHECK_INT(r.calls, 2);
	loop_free(loop);
	/* loop_free unblocked what it blocked */
	sigset_t cur;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	CHECK(!sigismember(&cur, SIGUSR2));
}

/* --- children --- */

struct child_rec {
	int calls;
	pid_t pid;
	int status;
};

static void child_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct child_rec *c = arg;
	c->calls++;
	c->pid = (pid_t)id;
	c->status = mask;
}

static void child_exit_statuses(int flags)
{
	struct loop *loop = new_loop(flags);
	/* exit code */
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(7);
	struct child_rec c = { 0 };
	CHECK_INT(loop_child_add(loop, pid, child_cb, &c), 0);
	CHECK_INT(loop_child_add(loop, pid, child_cb, &c), -1);
	CHECK_INT(loop_child_uses_pidfd(loop), !(flags & LOOP_NO_PIDFD));
	while (!c.calls)
		CHECK(loop_run_once(loop, 5000) >= 0);
	CHECK_INT(c.pid, pid);
	CHECK(WIFEXITED(c.status));
	CHECK_INT(WEXITSTATUS(c.status), 7);
	CHECK(waitpid(pid, NULL, WNOHANG) < 0); /* reaped by the loop */

	/* killed by a signal */
	int go[2];
	CHECK(pipe(go) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		char b;
		close(go[1]);
		if (read(go[0], &b, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(go[0]);
	struct child_rec k = { 0 };
	CHECK_INT(loop_child_add(loop, pid, child_cb, &k), 0);
	CHECK(loop_run_once(loop, 0) >= 0);
	CHECK_INT(k.calls, 0);
	CHECK_INT(kill(pid, SIGTERM), 0);
	while (!k.calls)
		CHECK(loop_run_once(loop, 5000) >= 0);
	CHECK(WIFSIGNALED(k.status));
	CHECK_INT(WTERMSIG(k.status), SIGTERM);
	close(go[1]);

	/* exited before it was watched */
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(3);
	siginfo_t si;
	CHECK_INT(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	struct child_rec e = { 0 };
	CHECK_INT(loop_child_add(loop, pid, child_cb, &e), 0);
	while (!e.calls)
		CHECK(loop_run_once(loop, 5000) >= 0);
	CHECK_INT(WEXITSTATUS(e.status), 3);

	/* unwatched: not reaped by the loop */
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(5);
	struct child_rec u = { 0 };
	CHECK_INT(loop_child_add(loop, pid, child_cb, &u), 0);
	loop_child_del(loop, pid);
	int status;
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK_INT(WEXITSTATUS(status), 5);
	CHECK(loop_run_once(loop, 0) >= 0);
	CHECK_INT(u.calls, 0);
	CHECK_INT(loop_child_add(loop, 0, child_cb, &u), -1);
	loop_free(loop);
}

TEST(loop_child_exit_pidfd)
{
	child_exit_statuses(0);
}

TEST(loop_child_exit_sigchld_fallback)
{
	child_exit_statuses(LOOP_NO_PIDFD);
}

TEST(loop_child_many_at_once_fallback)
{
	struct loop *loop = new_loop(LOOP_NO_PIDFD);
	enum { N = 20 };
	struct child_rec c[N] = { 0 };
	for (int i = 0; i < N; i++) {
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0)
			_exit(i);
		CHECK_INT(loop_child_add(loop, pid, child_cb, &c[i]), 0);
	}
	int done = 0;
	while (done < N) {
		CHECK(loop_run_once(loop, 5000) >= 0);
		done = 0;
		for (int i = 0; i < N; i++)
			done += c[i].calls;
	}
	for (int i = 0; i < N; i++) {
		CHECK_INT(c[i].calls, 1);
		CHECK_INT(WEXITSTATUS(c[i].status), i);
	}
	loop_free(loop);
}

/* --- pending input and hooks --- */

struct pend {
	int calls;
	int last_mask;
	int clear_after;
};

static void pend_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct pend *p = arg;
	p->calls++;
	p->last_mask = mask;
	if (p->calls >= p->clear_after)
		loop_fd_pending(loop, (int)id, 0);
}

TEST(loop_pending_fd_polls_without_sleeping)
{
	alarm(10); /* a sleeping poll would hang: fail fast */
	struct loop *loop = new_loop(0);
	int p[2];
	CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
	struct pend st = { .clear_after = 3 };
	CHECK_INT(loop_add_fd(loop, p[0], LOOP_READ, pend_cb, &st), 0);
	CHECK_INT(loop_fd_pending(loop, 99, 1), -1);
	CHECK_INT(loop_fd_pending(loop, p[0], 1), 0);
	/* no fd ready, no timer: only the pending mark stops an endless wait */
	CHECK_INT(loop_run_once(loop, -1), 1);
	CHECK_INT(st.last_mask, LOOP_READ | LOOP_PENDING);
	/* readable and pending in one iteration: one call */
	CHECK(write(p[1], "x", 1) == 1);
	CHECK_INT(loop_run_once(loop, -1), 1);
	CHECK_INT(st.calls, 2);
	CHECK_INT(st.last_mask, LOOP_READ);
	char c;
	CHECK(read(p[0], &c, 1) == 1);
	CHECK_INT(loop_run_once(loop, -1), 1);
	CHECK_INT(st.calls, 3); /* cleared itself */
	CHECK_INT(loop_run_once(loop, 0), 0);
	/* a paused watcher is not called and does not keep the loop awake */
	CHECK_INT(loop_fd_pending(loop, p[0], 1), 0);
	CHECK_INT(loop_mod_fd(loop, p[0], 0), 0);
	struct rec t = { 0 };
	loop_timer_add(loop, 20, rec_cb, &t);
	CHECK_INT(loop_run_once(loop, -1), 1);
	CHECK_INT(t.calls, 1);
	CHECK_INT(st.calls, 3);
	/* removal clears the mark */
	loop_del_fd(loop, p[0]);
	CHECK_INT(loop_add_fd(loop, p[0], LOOP_READ, pend_cb, &st), 0);
	CHECK_INT(loop_run_once(loop, 0), 0);
	loop_free(loop);
}

struct hookst {
	struct loop *loop;
	int calls;
	long long id;
	int fd;
	int del_after;
};

static void hook_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct hookst *h = arg;
	h->calls++;
	if (mask != LOOP_BEFORE_SLEEP || id != h->id)
		abort();
	/* mark buffered input before the loop decides how long to sleep */
	if (h->fd >= 0 && h->calls == 1)
		loop_fd_pending(loop, h->fd, 1);
	if (h->calls == h->del_after)
		loop_hook_del(loop, id);
}

TEST(loop_before_sleep_hooks)
{
	alarm(10);
	struct loop *loop = new_loop(0);
	int p[2];
	CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
	struct pend st = { .clear_after = 1 };
	CHECK_INT(loop_add_fd(loop, p[0], LOOP_READ, pend_cb, &st), 0);
	struct hookst h1 = { .fd = p[0], .del_after = 2 }, h2 = { .fd = -1, .del_after = -1 };
	h1.id = loop_hook_add(loop, hook_cb, &h1);
	h2.id = loop_hook_add(loop, hook_cb, &h2);
	CHECK(h1.id > 0 && h2.id > 0 && h1.id != h2.id);
	CHECK_INT(loop_run_once(loop, -1), 1); /* would sleep without the mark */
	CHECK_INT(st.calls, 1);
	CHECK_INT(h1.calls, 1);
	CHECK_INT(h2.calls, 1);
	CHECK_INT(loop_run_once(loop, 0), 0);
	CHECK_INT(loop_run_once(loop, 0), 0);
	CHECK_INT(h1.calls, 2); /* deleted itself */
	CHECK_INT(h2.calls, 3);
	loop_hook_del(loop, h2.id);
	CHECK_INT(loop_run_once(loop, 0), 0);
	CHECK_INT(h2.calls, 3);
	CHECK(loop_hook_add(loop, NULL, NULL) == 0);
	loop_free(loop);
}

/* The SIGCHLD path shares the signal with a handler of the caller's own. */
TEST(loop_child_fallback_coexists_with_sigchld_handler)
{
	struct loop *loop = new_loop(LOOP_NO_PIDFD);
	struct rec sig = { 0 };
	CHECK_INT(loop_signal_add(loop, SIGCHLD, rec_cb, &sig), 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(4);
	struct child_rec c = { 0 };
	CHECK_INT(loop_child_add(loop, pid, child_cb, &c), 0);
	while (!c.calls || !sig.calls)
		CHECK(loop_run_once(loop, 5000) >= 0);
	CHECK_INT(WEXITSTATUS(c.status), 4);
	CHECK_INT(sig.last_id, SIGCHLD);
	/* a child nobody watches is left for its owner to reap */
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(6);
	while (sig.calls < 2)
		CHECK(loop_run_once(loop, 5000) >= 0);
	int status;
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK_INT(WEXITSTATUS(status), 6);
	loop_free(loop);
}
