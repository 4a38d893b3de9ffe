/* loop: one single-threaded event loop per process (epoll).
 *
 * The applet's main creates the loop and passes it down; nothing here is
 * global. Every event source calls back in one shape:
 *
 *   void cb(struct loop *loop, long long id, void *arg, int mask);
 *
 *   source            id              mask
 *   fd watcher        the fd          LOOP_READ | LOOP_WRITE | LOOP_ERROR | LOOP_PENDING
 *   timer             the timer id    LOOP_TIMER
 *   signal            the signal      LOOP_SIGNAL
 *   child exit        the pid         the wait status (WIFEXITED(mask), ...),
 *                                     or -1 if someone else reaped the child
 *   before-sleep hook the hook id     LOOP_BEFORE_SLEEP
 *
 * Callbacks may add, change and remove any watcher, timer or hook, including
 * the one being dispatched and fds already returned by the same epoll_wait:
 * a removed watcher is never called afterwards, and an event for a removed
 * fd is not delivered to a new watcher that reuses the fd number.
 *
 * Errors: functions return -1 (0 for an id) and leave a reason in
 * loop_error() and errno.
 */
#ifndef DPLOYR_LOOP_H
#define DPLOYR_LOOP_H

#include <sys/types.h>

struct loop;

typedef void (*loop_fn)(struct loop *loop, long long id, void *arg, int mask);

enum {
	LOOP_READ = 1,
	LOOP_WRITE = 2,
	/* EPOLLERR or EPOLLHUP: also sets the watcher's READ/WRITE bits so that
	 * the next read or write reports the cause (end of file, errno). */
	LOOP_ERROR = 4,
	/* Delivered with LOOP_READ to an fd marked by loop_fd_pending(). */
	LOOP_PENDING = 8,
	LOOP_TIMER = 16,
	LOOP_SIGNAL = 32,
	LOOP_BEFORE_SLEEP = 64,
};

/* loop_new flags. LOOP_NO_PIDFD watches children with SIGCHLD on the
 * signalfd + waitpid(WNOHANG) even where pidfd_open works (tests use it;
 * the same path is taken by itself when the kernel lacks pidfd_open). */
enum { LOOP_NO_PIDFD = 1 };

/* NULL on failure (reason in err). */
struct loop *loop_new(int flags, char *err, size_t errlen);
/* Not from inside a callback. Closes the loop's own fds (epoll, signalfd, pidfds) and unblocks the
 * signals it blocked. Watched fds belong to their owners and stay open.
 * Accepts NULL. */
void loop_free(struct loop *loop);
/* The reason for the last failure; owned by the loop. */
const char *loop_error(const struct loop *loop);

/* Milliseconds on CLOCK_MONOTONIC (arbitrary origin). */
long long loop_now_ms(void);
/* The wall clock: milliseconds since the Unix epoch (CLOCK_REALTIME), for
 * times that are stored or shown; loop_now_ms is for durations. */
long long loop_wall_ms(void);

/* Run until loop_stop() (0), or until epoll_wait fails (-1). */
int loop_run(struct loop *loop);
/* Make loop_run return after the current iteration. */
void loop_stop(struct loop *loop);
/* One iteration: before-sleep hooks, one epoll_wait of at most timeout_ms
 * (-1: until the next timer or event; 0 when something is pending), then fd
 * events, pending fds, child exits and due timers. Returns the number of
 * events handled (fd events, the loop's own signalfd and pidfds included,
 * and timers; hooks excluded), or -1 if epoll_wait failed (not EINTR). */
int loop_run_once(struct loop *loop, int timeout_ms);

/* Watch fd (one watcher per fd) for mask (LOOP_READ | LOOP_WRITE; 0 keeps
 * the watcher but pauses it). Level-triggered: cb is called every iteration
 * while the fd is ready. Remove the watcher before closing the fd. */
int loop_add_fd(struct loop *loop, int fd, int mask, loop_fn cb, void *arg);
int loop_mod_fd(struct loop *loop, int fd, int mask);
/* No-op for an fd that is not watched. */
void loop_del_fd(struct loop *loop, int fd);
/* Current mask of fd's watcher, or -1 if fd is not watched. */
int loop_fd_mask(const struct loop *loop, int fd);

/* Buffered input contract (TLS: records decrypted but not yet read, which
 * epoll cannot see). The owner of fd's watcher calls loop_fd_pending(loop,
 * fd, 1) when it returns from a read with input still buffered, and
 * loop_fd_pending(loop, fd, 0) once the buffer is drained. While the mark is
 * set and the watcher has LOOP_READ, the loop does not sleep (epoll_wait
 * timeout 0) and calls the watcher each iteration with LOOP_READ |
 * LOOP_PENDING (once per iteration, even if epoll also reported the fd).
 * The mark goes with the watcher: loop_del_fd clears it. A marker, not a
 * query, so an iteration costs nothing for the thousands of connections
 * with nothing buffered. */
int loop_fd_pending(struct loop *loop, int fd, int pending);

/* One-shot timer due in ms milliseconds (negative counts as 0) on
 * CLOCK_MONOTONIC. Returns its id (> 0; never 0, so 0 can mean "no
 * timer"). Timers due at the same time fire in the order they were added;
 * a timer added by a callback fires in a later iteration at the earliest.
 * A repeating timer re-arms itself from its callback (loop_timer_add again,
 * storing the new id). A heap: add and cancel are O(log n). */
long long loop_timer_add(struct loop *loop, long long ms, loop_fn cb, void *arg);
/* Cancel a timer. Ids are not reused soon, so cancelling a timer that has
 * already fired or been cancelled is a harmless no-op (returns -1). */
int loop_timer_cancel(struct loop *loop, long long id);
/* Number of armed timers. */
size_t loop_timer_count(const struct loop *loop);

/* Deliver signo through the loop's signalfd: the signal is blocked for the
 * process (so call this before starting threads, which dployr has none of)
 * and cb runs with (signo, LOOP_SIGNAL). One handler per signal; adding a
 * second replaces the first. Ordinary signals arriving together coalesce. */
int loop_signal_add(struct loop *loop, int signo, loop_fn cb, void *arg);
/* Remove the handler; the signal stays blocked until loop_free. */
void loop_signal_del(struct loop *loop, int signo);

/* Call cb once when child pid (a child of this process, not yet reaped)
 * exits; the loop reaps it and passes the wait status as mask. Uses
 * pidfd_open, or SIGCHLD on the signalfd + waitpid(pid, WNOHANG) where pidfd
 * is unavailable (ENOSYS, EPERM; the SIGCHLD path blocks SIGCHLD). Only
 * watched pids are reaped, each by its own waitpid, so children started
 * elsewhere are left to their owners. One watcher per pid. */
int loop_child_add(struct loop *loop, pid_t pid, loop_fn cb, void *arg);
/* Stop watching pid without reaping it. No-op if not watched. */
void loop_child_del(struct loop *loop, pid_t pid);
/* 1 if children are watched through pidfds, 0 if through SIGCHLD. */
int loop_child_uses_pidfd(const struct loop *loop);

/* Call cb(loop, id, arg, LOOP_BEFORE_SLEEP) at the start of every
 * iteration, before the loop computes its timeout and sleeps: the place to
 * flush output buffers or mark buffered input with loop_fd_pending. Hooks
 * run in the order added. Returns the hook id (> 0). */
long long loop_hook_add(struct loop *loop, loop_fn cb, void *arg);
void loop_hook_del(struct loop *loop, long long id);

#endif
