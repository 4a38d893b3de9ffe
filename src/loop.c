#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "xalloc.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* the same number on every architecture */
#endif

#define LOOP_MAX_EVENTS 256
#define LOOP_NSIG 65 /* signals 1..64 */

/* Events in a batch carry (generation << 32 | fd): an event for a watcher
 * removed (and perhaps replaced) during the batch no longer matches. */
struct loop_fdw {
	loop_fn cb;
	void *arg;
	uint32_t gen;
	unsigned char used, mask, in_epoll, pending;
	unsigned long long round; /* iteration in which cb last got LOOP_READ */
};

/* Timers: slots hold callbacks and find their heap entry; the heap orders
 * (deadline, seq). id = gen << 32 | slot, so a stale id misses. */
struct loop_tslot {
	loop_fn cb;
	void *arg;
	uint32_t gen;
	int32_t heap; /* index in heap, -1 when free */
	uint32_t next_free;
};

struct loop_theap {
	long long deadline;
	unsigned long long seq;
	uint32_t slot;
};

struct loop_child {
	pid_t pid;
	int pidfd; /* -1 on the SIGCHLD path */
	loop_fn cb;
	void *arg;
	struct loop_child *next;
};

struct loop_hook {
	long long id;
	loop_fn cb; /* NULL once deleted, compacted after the run */
	void *arg;
};

struct loop {
	int epfd;
	int flags;
	int stop;
	unsigned long long round;
	char err[256];

	struct loop_fdw *fds;
	size_t nfds_cap;

	int *pend; /* fds marked pending */
	size_t npend, pend_cap;

	struct loop_tslot *tslots;
	size_t ntslots, tslots_cap;
	uint32_t tfree; /* head of the free slot list, UINT32_MAX if empty */
	struct loop_theap *theap;
	size_t ntheap, theap_cap;
	unsigned long long tseq;

	int sigfd;
	sigset_t sigmask; /* signals routed to sigfd */
	sigset_t blocked_by_us;
	struct {
		loop_fn cb;
		void *arg;
	} sig[LOOP_NSIG];

	struct loop_child *children;
	int use_pidfd; /* 1 until pidfd_open says ENOSYS or LOOP_NO_PIDFD */
	int child_scan; /* SIGCHLD path: waitpid every watched child */

	struct loop_hook *hooks;
	size_t nhooks, hooks_cap;
	long long hook_id;
	int in_hooks;
};

__attribute__((format(printf, 2, 3))) static void loop_fail(struct loop *loop, const char *fmt,
							    ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(loop->err, sizeof(loop->err), fmt, ap);
	va_end(ap);
	errno = saved;
}

long long loop_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long loop_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct loop *loop_new(int flags, char *err, size_t errlen)
{
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0) {
		snprintf(err, errlen, "loop: epoll_create1: %s", strerror(errno));
		return NULL;
	}
	struct loop *loop = xcalloc(1, sizeof(*loop));
	loop->epfd = epfd;
	loop->flags = flags;
	loop->sigfd = -1;
	loop->tfree = UINT32_MAX;
	loop->use_pidfd = !(flags & LOOP_NO_PIDFD);
	sigemptyset(&loop->sigmask);
	sigemptyset(&loop->blocked_by_us);
	return loop;
}

static void loop_close_child(struct loop *loop, struct loop_child *c)
{
	if (c->pidfd >= 0) {
		loop_del_fd(loop, c->pidfd);
		close(c->pidfd);
	}
	free(c);
}

void loop_free(struct loop *loop)
{
	if (!loop)
		return;
	while (loop->children) {
		struct loop_child *c = loop->children;
		loop->children = c->next;
		loop_close_child(loop, c);
	}
	if (loop->sigfd >= 0)
		close(loop->sigfd);
	sigprocmask(SIG_UNBLOCK, &loop->blocked_by_us, NULL);
	close(loop->epfd);
	free(loop->fds);
	free(loop->pend);
	free(loop->tslots);
	free(loop->theap);
	free(loop->hooks);
	free(loop);
}

const char *loop_error(const struct loop *loop)
{
	return loop->err;
}

void loop_stop(struct loop *loop)
{
	loop->stop = 1;
}

/* --- fd watchers --------------------------------------------------------- */

static struct loop_fdw *loop_watcher(const struct loop *loop, int fd)
{
	if (fd < 0 || (size_t)fd >= loop->nfds_cap || !loop->fds[fd].used)
		return NULL;
	return &loop->fds[fd];
}

static uint32_t loop_epoll_events(int mask)
{
	return (mask & LOOP_READ ? EPOLLIN : 0) | (mask & LOOP_WRITE ? EPOLLOUT : 0);
}

/* A paused watcher (mask 0) leaves epoll, which would otherwise keep
 * reporting EPOLLHUP/EPOLLERR on it. */
static int loop_epoll_sync(struct loop *loop, int fd, struct loop_fdw *w, int mask)
{
	struct epoll_event ev = { .events = loop_epoll_events(mask),
				  .data.u64 = (uint64_t)w->gen << 32 | (uint32_t)fd };
	int r = 0;
	if (mask && w->in_epoll)
		r = epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev);
	else if (mask)
		r = epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev);
	else if (w->in_epoll)
		r = epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, &ev);
	if (r < 0) {
		loop_fail(loop, "loop: watch fd %d: %s", fd, strerror(errno));
		return -1;
	}
	w->in_epoll = mask != 0;
	w->mask = (unsigned char)mask;
	return 0;
}

int loop_add_fd(struct loop *loop, int fd, int mask, loop_fn cb, void *arg)
{
	if (fd < 0 || !cb || (mask & ~(LOOP_READ | LOOP_WRITE))) {
		errno = EINVAL;
		loop_fail(loop, "loop: watch fd %d: invalid argument", fd);
		return -1;
	}
	if ((size_t)fd >= loop->nfds_cap) {
		size_t old = loop->nfds_cap;
		XGROW(loop->fds, loop->nfds_cap, (size_t)fd + 1);
		memset(loop->fds + old, 0, (loop->nfds_cap - old) * sizeof(*loop->fds));
	}
	struct loop_fdw *w = &loop->fds[fd];
	if (w->used) {
		errno = EEXIST;
		loop_fail(loop, "loop: watch fd %d: already watched", fd);
		return -1;
	}
	w->gen++;
	w->in_epoll = 0;
	w->pending = 0;
	w->round = 0;
	if (loop_epoll_sync(loop, fd, w, mask) < 0)
		return -1;
	w->used = 1;
	w->cb = cb;
	w->arg = arg;
	return 0;
}

int loop_mod_fd(struct loop *loop, int fd, int mask)
{
	struct loop_fdw *w = loop_watcher(loop, fd);
	if (!w || (mask & ~(LOOP_READ | LOOP_WRITE))) {
		errno = w ? EINVAL : ENOENT;
		loop_fail(loop, "loop: change fd %d: %s", fd, w ? "invalid mask" : "not watched");
		return -1;
	}
	if (w->mask == mask)
		return 0;
	return loop_epoll_sync(loop, fd, w, mask);
}

int loop_fd_mask(const struct loop *loop, int fd)
{
	const struct loop_fdw *w = loop_watcher(loop, fd);
	return w ? w->mask : -1;
}

static void loop_pend_remove(struct loop *loop, int fd)
{
	for (size_t i = 0; i < loop->npend; i++) {
		if (loop->pend[i] == fd) {
			loop->pend[i] = loop->pend[--loop->npend];
			return;
		}
	}
}

void loop_del_fd(struct loop *loop, int fd)
{
	struct loop_fdw *w = loop_watcher(loop, fd);
	if (!w)
		return;
	if (w->in_epoll) {
		struct epoll_event ev = { 0 };
		/* EBADF/ENOENT: the owner closed fd first; epoll dropped it. */
		epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, &ev);
	}
	if (w->pending)
		loop_pend_remove(loop, fd);
	w->used = 0;
	w->in_epoll = 0;
	w->pending = 0;
	w->mask = 0;
	w->cb = NULL;
	w->arg = NULL;
}

int loop_fd_pending(struct loop *loop, int fd, int pending)
{
	struct loop_fdw *w = loop_watcher(loop, fd);
	if (!w) {
		errno = ENOENT;
		loop_fail(loop, "loop: mark fd %d: not watched", fd);
		return -1;
	}
	pending = pending != 0;
	if (w->pending == pending)
		return 0;
	w->pending = (unsigned char)pending;
	if (pending) {
		XGROW(loop->pend, loop->pend_cap, loop->npend + 1);
		loop->pend[loop->npend++] = fd;
	} else {
		loop_pend_remove(loop, fd);
	}
	return 0;
}

static int loop_pending_ready(const struct loop *loop)
{
	for (size_t i = 0; i < loop->npend; i++)
		if (loop->fds[loop->pend[i]].mask & LOOP_READ)
			return 1;
	return 0;
}

/* --- timers -------------------------------------------------------------- */

static int loop_theap_less(const struct loop_theap *a, const struct loop_theap *b)
{
	return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void loop_theap_set(struct loop *loop, size_t i, struct loop_theap e)
{
	loop->theap[i] = e;
	loop->tslots[e.slot].heap = (int32_t)i;
}

static void loop_theap_up(struct loop *loop, size_t i)
{
	struct loop_theap e = loop->theap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!loop_theap_less(&e, &loop->theap[parent]))
			break;
		loop_theap_set(loop, i, loop->theap[parent]);
		i = parent;
	}
	loop_theap_set(loop, i, e);
}

static void loop_theap_down(struct loop *loop, size_t i)
{
	struct loop_theap e = loop->theap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= loop->ntheap)
			break;
		if (c + 1 < loop->ntheap && loop_theap_less(&loop->theap[c + 1], &loop->theap[c]))
			c++;
		if (!loop_theap_less(&loop->theap[c], &e))
			break;
		loop_theap_set(loop, i, loop->theap[c]);
		i = c;
	}
	loop_theap_set(loop, i, e);
}

/* Remove heap entry i and free its slot (its id stops matching). */
static void loop_theap_remove(struct loop *loop, size_t i)
{
	uint32_t slot = loop->theap[i].slot;
	struct loop_tslot *s = &loop->tslots[slot];
	s->heap = -1;
	s->gen = s->gen >= INT32_MAX ? 1 : s->gen + 1;
	s->cb = NULL;
	s->arg = NULL;
	s->next_free = loop->tfree;
	loop->tfree = slot;
	loop->ntheap--;
	if (i == loop->ntheap)
		return;
	loop_theap_set(loop, i, loop->theap[loop->ntheap]);
	if (i > 0 && loop_theap_less(&loop->theap[i], &loop->theap[(i - 1) / 2]))
		loop_theap_up(loop, i);
	else
		loop_theap_down(loop, i);
}

long long loop_timer_add(struct loop *loop, long long ms, loop_fn cb, void *arg)
{
	if (!cb) {
		errno = EINVAL;
		loop_fail(loop, "loop: add timer: no callback");
		return 0;
	}
	if (ms < 0)
		ms = 0;
	uint32_t slot = loop->tfree;
	if (slot != UINT32_MAX) {
		loop->tfree = loop->tslots[slot].next_free;
	} else {
		if (loop->ntslots >= UINT32_MAX - 1) {
			errno = ENOMEM;
			loop_fail(loop, "loop: add timer: too many timers");
			return 0;
		}
		XGROW(loop->tslots, loop->tslots_cap, loop->ntslots + 1);
		slot = (uint32_t)loop->ntslots++;
		loop->tslots[slot].gen = 1;
	}
	struct loop_tslot *s = &loop->tslots[slot];
	s->cb = cb;
	s->arg = arg;
	XGROW(loop->theap, loop->theap_cap, loop->ntheap + 1);
	long long now = loop_now_ms();
	loop->theap[loop->ntheap] = (struct loop_theap){
		.deadline = ms > LLONG_MAX - now ? LLONG_MAX : now + ms,
		.seq = loop->tseq++,
		.slot = slot,
	};
	loop->ntheap++;
	loop_theap_up(loop, loop->ntheap - 1);
	return (long long)s->gen << 32 | slot;
}

static struct loop_tslot *loop_timer_slot(const struct loop *loop, long long id)
{
	if (id <= 0)
		return NULL;
	uint32_t slot = (uint32_t)(id & 0xffffffff);
	uint32_t gen = (uint32_t)(id >> 32);
	if (slot >= loop->ntslots)
		return NULL;
	struct loop_tslot *s = &loop->tslots[slot];
	return s->heap >= 0 && s->gen == gen ? s : NULL;
}

int loop_timer_cancel(struct loop *loop, long long id)
{
	struct loop_tslot *s = loop_timer_slot(loop, id);
	if (!s) {
		errno = ENOENT;
		return -1;
	}
	loop_theap_remove(loop, (size_t)s->heap);
	return 0;
}

size_t loop_timer_count(const struct loop *loop)
{
	return loop->ntheap;
}

/* Fire due timers that existed when this run started: a callback that
 * re-arms with 0 ms runs again next iteration, not in a busy cycle here. */
static int loop_run_timers(struct loop *loop)
{
	int calls = 0;
	unsigned long long limit = loop->tseq;
	long long now = loop_now_ms();
	while (loop->ntheap && loop->theap[0].deadline <= now && loop->theap[0].seq < limit) {
		uint32_t slot = loop->theap[0].slot;
		struct loop_tslot *s = &loop->tslots[slot];
		long long id = (long long)s->gen << 32 | slot;
		loop_fn cb = s->cb;
		void *arg = s->arg;
		loop_theap_remove(loop, 0);
		cb(loop, id, arg, LOOP_TIMER);
		calls++;
	}
	return calls;
}

/* --- signals ------------------------------------------------------------- */

static void loop_on_signalfd(struct loop *loop, long long id, void *arg, int mask)
{
	struct signalfd_siginfo si[16];
	for (;;) {
		ssize_t n = read(loop->sigfd, si, sizeof(si));
		if (n <= 0)
			return; /* EAGAIN: drained */
		for (size_t i = 0; i < (size_t)n / sizeof(si[0]); i++) {
			int signo = (int)si[i].ssi_signo;
			if (signo <= 0 || signo >= LOOP_NSIG)
				continue;
			if (signo == SIGCHLD && !loop->use_pidfd)
				loop->child_scan = 1;
			/* Looked up per signal: an earlier callback may have removed it. */
			if (loop->sig[signo].cb)
				loop->sig[signo].cb(loop, signo, loop->sig[signo].arg, LOOP_SIGNAL);
		}
	}
}

/* Route signo to the signalfd: block it, then widen the signalfd's mask. */
static int loop_route_signal(struct loop *loop, int signo)
{
	if (sigismember(&loop->sigmask, signo) == 1)
		return 0;
	sigset_t one, old;
	sigemptyset(&one);
	sigaddset(&one, signo);
	if (sigprocmask(SIG_BLOCK, &one, &old) < 0) {
		loop_fail(loop, "loop: block signal %d: %s", signo, strerror(errno));
		return -1;
	}
	if (!sigismember(&old, signo))
		sigaddset(&loop->blocked_by_us, signo);
	sigset_t mask = loop->sigmask;
	sigaddset(&mask, signo);
	int fd = signalfd(loop->sigfd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0) {
		loop_fail(loop, "loop: signalfd: %s", strerror(errno));
		return -1;
	}
	if (loop->sigfd < 0) {
		loop->sigfd = fd;
		if (loop_add_fd(loop, fd, LOOP_READ, loop_on_signalfd, NULL) < 0) {
			close(fd);
			loop->sigfd = -1;
			return -1;
		}
	}
	loop->sigmask = mask;
	return 0;
}

int loop_signal_add(struct loop *loop, int signo, loop_fn cb, void *arg)
{
	if (signo <= 0 || signo >= LOOP_NSIG || signo == SIGKILL || signo == SIGSTOP || !cb) {
		errno = EINVAL;
		loop_fail(loop, "loop: watch signal %d: invalid argument", signo);
		return -1;
	}
	if (loop_route_signal(loop, signo) < 0)
		return -1;
	loop->sig[signo].cb = cb;
	loop->sig[signo].arg = arg;
	return 0;
}

void loop_signal_del(struct loop *loop, int signo)
{
	if (signo <= 0 || signo >= LOOP_NSIG)
		return;
	loop->sig[signo].cb = NULL;
	loop->sig[signo].arg = NULL;
}

/* --- children ------------------------------------------------------------ */

static struct loop_child **loop_child_find(struct loop *loop, pid_t pid)
{
	struct loop_child **pp = &loop->children;
	while (*pp && (*pp)->pid != pid)
		pp = &(*pp)->next;
	return pp;
}

/* Reap pid if it has exited; then unlink the watcher before calling back,
 * so the callback may watch a new child (even one with the same pid). */
static int loop_child_reap(struct loop *loop, struct loop_child *c)
{
	int status;
	pid_t r;
	while ((r = waitpid(c->pid, &status, WNOHANG)) < 0 && errno == EINTR)
		;
	if (r == 0)
		return 0;
	if (r < 0)
		status = -1; /* ECHILD: reaped by someone else */
	struct loop_child **pp = loop_child_find(loop, c->pid);
	*pp = c->next;
	pid_t pid = c->pid;
	loop_fn cb = c->cb;
	void *arg = c->arg;
	loop_close_child(loop, c);
	cb(loop, pid, arg, status);
	return 1;
}

static void loop_on_pidfd(struct loop *loop, long long id, void *arg, int mask)
{
	loop_child_reap(loop, arg);
}

static int loop_child_scan(struct loop *loop)
{
	int calls = 0;
	/* Restart after each reap: the callback may have changed the list. */
	for (int again = 1; again;) {
		again = 0;
		for (struct loop_child *c = loop->children; c; c = c->next) {
			if (c->pidfd < 0 && loop_child_reap(loop, c)) {
				calls++;
				again = 1;
				break;
			}
		}
	}
	return calls;
}

int loop_child_add(struct loop *loop, pid_t pid, loop_fn cb, void *arg)
{
	if (pid <= 0 || !cb) {
		errno = EINVAL;
		loop_fail(loop, "loop: watch child %d: invalid argument", (int)pid);
		return -1;
	}
	if (*loop_child_find(loop, pid)) {
		errno = EEXIST;
		loop_fail(loop, "loop: watch child %d: already watched", (int)pid);
		return -1;
	}
	int pidfd = -1;
	if (loop->use_pidfd) {
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		/* ENOSYS: kernel before 5.3; EPERM: a seccomp filter refusing it. */
		if (pidfd < 0 && errno != ENOSYS && errno != EPERM) {
			loop_fail(loop, "loop: watch child %d: pidfd_open: %s", (int)pid,
				  strerror(errno));
			return -1;
		}
		if (pidfd < 0)
			loop->use_pidfd = 0;
	}
	if (pidfd < 0 && loop_route_signal(loop, SIGCHLD) < 0)
		return -1;
	struct loop_child *c = xcalloc(1, sizeof(*c));
	c->pid = pid;
	c->pidfd = pidfd;
	c->cb = cb;
	c->arg = arg;
	if (pidfd >= 0) {
		/* pidfd_open does not set CLOEXEC (there is no flag for it). */
		fcntl(pidfd, F_SETFD, FD_CLOEXEC);
		if (loop_add_fd(loop, pidfd, LOOP_READ, loop_on_pidfd, c) < 0) {
			close(pidfd);
			free(c);
			return -1;
		}
	} else {
		/* The child may have exited before SIGCHLD was routed to the
		 * signalfd: look once in the next iteration. */
		loop->child_scan = 1;
	}
	c->next = loop->children;
	loop->children = c;
	return 0;
}

void loop_child_del(struct loop *loop, pid_t pid)
{
	struct loop_child **pp = loop_child_find(loop, pid);
	struct loop_child *c = *pp;
	if (!c)
		return;
	*pp = c->next;
	loop_close_child(loop, c);
}

int loop_child_uses_pidfd(const struct loop *loop)
{
	return loop->use_pidfd;
}

/* --- hooks --------------------------------------------------------------- */

long long loop_hook_add(struct loop *loop, loop_fn cb, void *arg)
{
	if (!cb) {
		errno = EINVAL;
		loop_fail(loop, "loop: add hook: no callback");
		return 0;
	}
	XGROW(loop->hooks, loop->hooks_cap, loop->nhooks + 1);
	loop->hooks[loop->nhooks++] = (struct loop_hook){ ++loop->hook_id, cb, arg };
	return loop->hook_id;
}

void loop_hook_del(struct loop *loop, long long id)
{
	for (size_t i = 0; i < loop->nhooks; i++) {
		if (loop->hooks[i].id == id) {
			loop->hooks[i].cb = NULL;
			break;
		}
	}
	if (loop->in_hooks)
		return;
	size_t j = 0;
	for (size_t i = 0; i < loop->nhooks; i++)
		if (loop->hooks[i].cb)
			loop->hooks[j++] = loop->hooks[i];
	loop->nhooks = j;
}

static void loop_run_hooks(struct loop *loop)
{
	loop->in_hooks = 1;
	/* Hooks added during the run wait for the next iteration. */
	size_t n = loop->nhooks;
	for (size_t i = 0; i < n; i++) {
		struct loop_hook h = loop->hooks[i];
		if (h.cb)
			h.cb(loop, h.id, h.arg, LOOP_BEFORE_SLEEP);
	}
	loop->in_hooks = 0;
	size_t j = 0;
	for (size_t i = 0; i < loop->nhooks; i++)
		if (loop->hooks[i].cb)
			loop->hooks[j++] = loop->hooks[i];
	loop->nhooks = j;
}

/* --- running ------------------------------------------------------------- */

static int loop_timeout(struct loop *loop, int timeout_ms)
{
	if (loop->child_scan || loop_pending_ready(loop))
		return 0;
	if (!loop->ntheap)
		return timeout_ms;
	long long wait = loop->theap[0].deadline - loop_now_ms();
	if (wait < 0)
		wait = 0;
	if (timeout_ms >= 0 && wait > timeout_ms)
		wait = timeout_ms;
	return wait > INT32_MAX ? INT32_MAX : (int)wait;
}

static int loop_run_pending(struct loop *loop)
{
	if (!loop->npend)
		return 0;
	/* Snapshot with generations: callbacks may change the pending set. */
	size_t n = loop->npend;
	struct {
		int fd;
		uint32_t gen;
	} *snap = xmalloc(n * sizeof(*snap));
	for (size_t i = 0; i < n; i++) {
		snap[i].fd = loop->pend[i];
		snap[i].gen = loop->fds[loop->pend[i]].gen;
	}
	int calls = 0;
	for (size_t i = 0; i < n; i++) {
		struct loop_fdw *w = loop_watcher(loop, snap[i].fd);
		if (!w || w->gen != snap[i].gen || !w->pending || !(w->mask & LOOP_READ) ||
		    w->round == loop->round)
			continue;
		w->round = loop->round;
		w->cb(loop, snap[i].fd, w->arg, LOOP_READ | LOOP_PENDING);
		calls++;
	}
	free(snap);
	return calls;
}

int loop_run_once(struct loop *loop, int timeout_ms)
{
	struct epoll_event evs[LOOP_MAX_EVENTS];
	loop->round++;
	loop_run_hooks(loop);
	int n = epoll_wait(loop->epfd, evs, LOOP_MAX_EVENTS, loop_timeout(loop, timeout_ms));
	if (n < 0) {
		if (errno != EINTR) {
			loop_fail(loop, "loop: epoll_wait: %s", strerror(errno));
			return -1;
		}
		n = 0;
	}
	int calls = 0;
	for (int i = 0; i < n; i++) {
		int fd = (int)(uint32_t)evs[i].data.u64;
		uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
		struct loop_fdw *w = loop_watcher(loop, fd);
		if (!w || w->gen != gen)
			continue; /* removed (maybe replaced) earlier in this batch */
		uint32_t e = evs[i].events;
		int mask = 0;
		if (e & EPOLLIN)
			mask |= LOOP_READ;
		if (e & EPOLLOUT)
			mask |= LOOP_WRITE;
		if (e & (EPOLLERR | EPOLLHUP))
			mask |= LOOP_ERROR | (w->mask & (LOOP_READ | LOOP_WRITE));
		mask &= w->mask | LOOP_ERROR; /* changed by an earlier callback */
		if (!(mask & (LOOP_READ | LOOP_WRITE)))
			continue;
		if (mask & LOOP_READ)
			w->round = loop->round;
		w->cb(loop, fd, w->arg, mask);
		calls++;
	}
	calls += loop_run_pending(loop);
	if (loop->child_scan) {
		loop->child_scan = 0;
		calls += loop_child_scan(loop);
	}
	calls += loop_run_timers(loop);
	return calls;
}

int loop_run(struct loop *loop)
{
	loop->stop = 0;
	while (!loop->stop)
		if (loop_run_once(loop, -1) < 0)
			return -1;
	return 0;
}
