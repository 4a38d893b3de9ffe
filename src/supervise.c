#include "supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "cron.h"
#include "log.h"
#include "xalloc.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* the same number on every architecture */
#endif

#define SV_POLL_MS 500 /* adopted process, no pidfd: how often to look */

enum sv_event {
	SV_EV_START,
	SV_EV_STOP,
	SV_EV_EXIT,
	SV_EV_RETRY,
	SV_EV_DUE,
	SV_EV_GRACE,
	SV_EV_DEADLINE,
	SV_EV_ADOPT,
	SV_NEVENTS
};

static const char *const sv_event_names[SV_NEVENTS] = {
    "start", "stop", "exit", "retry", "due", "grace", "deadline", "adopt",
};

static const char *const sv_state_names[SUPERVISE_NSTATES] = {
    "stopped", "waiting", "running", "backoff", "stopping", "exited", "failed",
};

struct supervise {
	struct loop *loop;
	struct supervise_opts o; /* pointers below are owned copies */
	char *name, *cwd, *cgroup_root, *cgroup_path;
	char **argv, **envp;
	struct spawn_rlimit *rlimits;
	struct cron cron;
	int scheduled;
	struct cgroup *cg;

	enum supervise_state state;
	pid_t pid, pgid;
	unsigned long long start_time;
	int adopted, pidfd;
	long long started_ms;
	long long delay_ms, pending_ms;
	long long t_retry, t_grace, t_due, t_deadline, t_poll;
	time_t next_run;
	int last_status;
	int stop_requested, timed_out;
	int out_pipe, err_pipe; /* pipe ends of a fresh start, until taken */
	unsigned runs, restarts, skipped;
	char error[512];
};

typedef enum supervise_state (*sv_action)(struct supervise *sv);

static void sv_dispatch(struct supervise *sv, enum sv_event ev);

static char **sv_strv_dup(const char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	char **c = xcalloc(n + 1, sizeof(*c));
	for (size_t i = 0; i < n; i++)
		c[i] = xstrdup(v[i]);
	return c;
}

static void sv_strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static char *sv_strdup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

int supervise_proc_start_time(pid_t pid, unsigned long long *start)
{
	char path[64], text[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	text[n] = 0;
	/* comm (field 2) may hold spaces and ')': fields resume after the
	 * last ')'. */
	char *p = strrchr(text, ')');
	if (!p || p[1] != ' ')
		return -1;
	p += 2;
	if (*p == 'Z' || *p == 'X')
		return -1;
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(p, &end, 10);
	if (errno || end == p)
		return -1;
	*start = v;
	return 0;
}

/* --- timers and watchers: each turns into one event ------------------- */

static void sv_cancel(struct supervise *sv, long long *id)
{
	if (*id)
		loop_timer_cancel(sv->loop, *id);
	*id = 0;
}

static void sv_on_retry(struct loop *loop, long long id, void *arg, int mask)
{
	struct supervise *sv = arg;
	sv->t_retry = 0;
	sv_dispatch(sv, SV_EV_RETRY);
}

static void sv_on_grace(struct loop *loop, long long id, void *arg, int mask)
{
	struct supervise *sv = arg;
	sv->t_grace = 0;
	sv_dispatch(sv, SV_EV_GRACE);
}

static void sv_on_deadline(struct loop *loop, long long id, void *arg, int mask)
{
	struct supervise *sv = arg;
	sv->t_deadline = 0;
	sv_dispatch(sv, SV_EV_DEADLINE);
}

static void sv_arm_due(struct supervise *sv);

static void sv_on_due(struct loop *loop, long long id, void *arg, int mask)
{
	struct supervise *sv = arg;
	sv->t_due = 0;
	/* The loop's timers are monotonic; the schedule is wall-clock. If the
	 * clock was set back meanwhile, wait for the rest. */
	time_t now = time(NULL);
	if (now < sv->next_run) {
		sv->t_due =
		    loop_timer_add(sv->loop, (long long)(sv->next_run - now) * 1000, sv_on_due, sv);
		return;
	}
	sv_dispatch(sv, SV_EV_DUE);
}

static void sv_arm_due(struct supervise *sv)
{
	sv_cancel(sv, &sv->t_due);
	time_t now = time(NULL);
	sv->next_run = cron_next(&sv->cron, now);
	if (sv->next_run == (time_t)-1) {
		log_warn("supervise", "schedule never matches", "service", sv->name, NULL);
		return;
	}
	sv->t_due = loop_timer_add(sv->loop, (long long)(sv->next_run - now) * 1000, sv_on_due, sv);
}

static void sv_on_child(struct loop *loop, long long id, void *arg, int mask)
{
	struct supervise *sv = arg;
	sv->last_status = mask;
	sv_dispatch(sv, SV_EV_EXIT);
}

static void sv_unwatch(struct supervise *sv)
{
	if (sv->pidfd >= 0) {
		loop_del_fd(sv->loop, sv->pidfd);
		close(sv->pidfd);
		sv->pidfd = -1;
	}
	sv_cancel(sv, &sv->t_poll);
}

/* Adopted (not our child): the pidfd became readable, the process is gone. */
static void sv_on_pidfd(struct loop *loop, long long fd, void *arg, int mask)
{
	struct supervise *sv = arg;
	sv_unwatch(sv);
	sv->last_status = -1;
	sv_dispatch(sv, SV_EV_EXIT);
}

static void sv_on_poll(struct loop *loop, long long id, void *arg, int mask)
{
	struct supervise *sv = arg;
	sv->t_poll = 0;
	unsigned long long st;
	if (supervise_proc_start_time(sv->pid, &st) == 0 && st == sv->start_time) {
		sv->t_poll = loop_timer_add(sv->loop, SV_POLL_MS, sv_on_poll, sv);
		return;
	}
	sv->last_status = -1;
	sv_dispatch(sv, SV_EV_EXIT);
}

/* --- actions: each returns the next state ------------------------------- */

static void sv_signal(struct supervise *sv, int sig)
{
	if (sv->pgid > 1 && spawn_kill_group(sv->pgid, sig) < 0 && errno != ESRCH)
		log_warn("supervise", "kill failed", "service", sv->name, "error", strerror(errno),
			 NULL);
}

static enum supervise_state sv_after_exit(struct supervise *sv, int failed)
{
	sv->pid = sv->pgid = 0;
	if (sv->scheduled)
		return SUPERVISE_WAITING;
	int again =
	    sv->o.restart == SUPERVISE_ALWAYS || (sv->o.restart == SUPERVISE_ON_FAILURE && failed);
	if (!again)
		return failed ? SUPERVISE_FAILED : SUPERVISE_EXITED;
	if (loop_now_ms() - sv->started_ms >= sv->o.stable_ms)
		sv->delay_ms = sv->o.backoff_min_ms;
	sv->pending_ms = sv->delay_ms;
	sv->delay_ms =
	    sv->delay_ms * 2 > sv->o.backoff_max_ms ? sv->o.backoff_max_ms : sv->delay_ms * 2;
	sv->t_retry = loop_timer_add(sv->loop, sv->pending_ms, sv_on_retry, sv);
	return SUPERVISE_BACKOFF;
}

static enum supervise_state sv_launch(struct supervise *sv)
{
	char err[sizeof(sv->error)];
	sv->timed_out = 0;
	sv->started_ms = loop_now_ms();
	if (sv->cgroup_root && !sv->cg) {
		sv->cg =
		    cgroup_open(sv->cgroup_root, sv->cgroup_path, &sv->o.limits, err, sizeof(err));
		if (!sv->cg)
			goto fail;
	}
	struct spawn_opts so = {
	    .argv = (const char *const *)sv->argv,
	    .envp = (const char *const *)sv->envp,
	    .cwd = sv->cwd,
	    .pgroup = SPAWN_PGROUP,
	    .out = sv->o.out,
	    .err = sv->o.err,
	    .out_fd = sv->o.out_fd,
	    .err_fd = sv->o.err_fd,
	    .set_ids = sv->o.set_ids,
	    .uid = sv->o.uid,
	    .gid = sv->o.gid,
	    .rlimits = sv->rlimits,
	    .nrlimits = sv->o.nrlimits,
	};
	if (sv->cg)
		so.cgroup_fds = cgroup_fds(sv->cg, &so.ncgroup_fds);
	struct spawn_proc p;
	if (spawn_start(&so, &p, err, sizeof(err)) < 0)
		goto fail;
	sv->pid = p.pid;
	sv->pgid = p.pgid;
	sv->adopted = 0;
	sv->runs++;
	sv->error[0] = 0;
	/* Read now, while the child cannot have been reaped (we reap it). */
	if (supervise_proc_start_time(p.pid, &sv->start_time) < 0)
		sv->start_time = 0;
	sv->out_pipe = p.out_fd;
	sv->err_pipe = p.err_fd;
	if (p.in_fd >= 0)
		close(p.in_fd);
	if (loop_child_add(sv->loop, p.pid, sv_on_child, sv) < 0) {
		/* Cannot happen for a fresh child short of fd exhaustion:
		 * kill it rather than run it unwatched. */
		snprintf(sv->error, sizeof(sv->error), "watch pid %d: %s", (int)p.pid,
			 loop_error(sv->loop));
		spawn_kill_group(p.pgid, SIGKILL);
		while (waitpid(p.pid, NULL, 0) < 0 && errno == EINTR)
			;
		sv->last_status = -1;
		return sv_after_exit(sv, 1);
	}
	if (sv->o.timeout_ms > 0)
		sv->t_deadline = loop_timer_add(sv->loop, sv->o.timeout_ms, sv_on_deadline, sv);
	char pid[16];
	snprintf(pid, sizeof(pid), "%d", (int)p.pid);
	log_info("supervise", "started", "service", sv->name, "pid", pid, NULL);
	return SUPERVISE_RUNNING;
fail:
	snprintf(sv->error, sizeof(sv->error), "%s", err);
	log_warn("supervise", "start failed", "service", sv->name, "error", err, NULL);
	sv->last_status = -1;
	return sv_after_exit(sv, 1);
}

static enum supervise_state sv_act_start(struct supervise *sv)
{
	sv->stop_requested = 0;
	sv->delay_ms = sv->o.backoff_min_ms;
	if (sv->scheduled) {
		sv_arm_due(sv);
		return SUPERVISE_WAITING;
	}
	return sv_launch(sv);
}

static enum supervise_state sv_act_start_now(struct supervise *sv)
{
	sv_cancel(sv, &sv->t_retry);
	return sv_launch(sv);
}

static enum supervise_state sv_act_retry(struct supervise *sv)
{
	sv->restarts++;
	return sv_launch(sv);
}

static enum supervise_state sv_act_due(struct supervise *sv)
{
	sv_arm_due(sv);
	return sv_launch(sv);
}

static enum supervise_state sv_act_skip(struct supervise *sv)
{
	sv->skipped++;
	log_info("supervise", "scheduled run skipped: previous run still going", "service",
		 sv->name, NULL);
	sv_arm_due(sv);
	return sv->state;
}

static enum supervise_state sv_act_cancel(struct supervise *sv)
{
	sv_cancel(sv, &sv->t_retry);
	sv_cancel(sv, &sv->t_due);
	sv->next_run = -1;
	return SUPERVISE_STOPPED;
}

static void sv_terminate(struct supervise *sv)
{
	sv_signal(sv, SIGTERM);
	sv->t_grace = loop_timer_add(sv->loop, sv->o.stop_grace_ms, sv_on_grace, sv);
}

static enum supervise_state sv_act_stop(struct supervise *sv)
{
	sv->stop_requested = 1;
	sv_cancel(sv, &sv->t_deadline);
	sv_terminate(sv);
	return SUPERVISE_STOPPING;
}

static enum supervise_state sv_act_stop_again(struct supervise *sv)
{
	sv->stop_requested = 1;
	return SUPERVISE_STOPPING;
}

static enum supervise_state sv_act_deadline(struct supervise *sv)
{
	sv->timed_out = 1;
	log_warn("supervise", "deadline reached, stopping", "service", sv->name, NULL);
	sv_terminate(sv);
	return SUPERVISE_STOPPING;
}

static enum supervise_state sv_act_kill(struct supervise *sv)
{
	log_warn("supervise", "grace period over, killing", "service", sv->name, NULL);
	sv_signal(sv, SIGKILL);
	return SUPERVISE_STOPPING;
}

static void sv_log_exit(struct supervise *sv)
{
	char st[32];
	int s = sv->last_status;
	if (s == -1)
		snprintf(st, sizeof(st), "unknown");
	else if (WIFEXITED(s))
		snprintf(st, sizeof(st), "exit %d", WEXITSTATUS(s));
	else
		snprintf(st, sizeof(st), "signal %d", WIFSIGNALED(s) ? WTERMSIG(s) : 0);
	log_info("supervise", "exited", "service", sv->name, "status", st, NULL);
}

/* The leader is gone: take what is left of its group with it. */
static void sv_reaped(struct supervise *sv)
{
	sv_cancel(sv, &sv->t_deadline);
	sv_cancel(sv, &sv->t_grace);
	sv_unwatch(sv);
	sv_signal(sv, SIGKILL);
	sv_log_exit(sv);
}

static enum supervise_state sv_act_exit(struct supervise *sv)
{
	int s = sv->last_status;
	int failed = s == -1 || !WIFEXITED(s) || WEXITSTATUS(s) != 0 || sv->timed_out;
	sv_reaped(sv);
	return sv_after_exit(sv, failed);
}

static enum supervise_state sv_act_stopped(struct supervise *sv)
{
	sv_reaped(sv);
	if (!sv->stop_requested) /* a deadline stop: the run failed */
		return sv_after_exit(sv, 1);
	sv->pid = sv->pgid = 0;
	return sv_act_cancel(sv);
}

static enum supervise_state sv_act_adopt(struct supervise *sv)
{
	sv->stop_requested = 0;
	sv->delay_ms = sv->o.backoff_min_ms;
	sv->started_ms = loop_now_ms();
	if (sv->scheduled)
		sv_arm_due(sv);
	/* A loop that found pidfds refused (or was told not to use them) gets
	 * the polling fallback here too. */
	int fd = loop_child_uses_pidfd(sv->loop) ? (int)syscall(SYS_pidfd_open, sv->pid, 0) : -1;
	if (fd >= 0 && loop_add_fd(sv->loop, fd, LOOP_READ, sv_on_pidfd, sv) == 0) {
		sv->pidfd = fd;
	} else {
		if (fd >= 0)
			close(fd);
		sv->t_poll = loop_timer_add(sv->loop, SV_POLL_MS, sv_on_poll, sv);
	}
	return SUPERVISE_RUNNING;
}

/* state x event -> action; NULL: nothing to do (or cannot happen). */
static const sv_action sv_table[SUPERVISE_NSTATES][SV_NEVENTS] = {
    [SUPERVISE_STOPPED] = {[SV_EV_START] = sv_act_start, [SV_EV_ADOPT] = sv_act_adopt},
    [SUPERVISE_WAITING] = {[SV_EV_STOP] = sv_act_cancel, [SV_EV_DUE] = sv_act_due},
    [SUPERVISE_RUNNING] = {[SV_EV_STOP] = sv_act_stop,
			   [SV_EV_EXIT] = sv_act_exit,
			   [SV_EV_DUE] = sv_act_skip,
			   [SV_EV_DEADLINE] = sv_act_deadline},
    [SUPERVISE_BACKOFF] = {[SV_EV_START] = sv_act_start_now,
			   [SV_EV_STOP] = sv_act_cancel,
			   [SV_EV_RETRY] = sv_act_retry},
    [SUPERVISE_STOPPING] = {[SV_EV_STOP] = sv_act_stop_again,
			    [SV_EV_EXIT] = sv_act_stopped,
			    [SV_EV_DUE] = sv_act_skip,
			    [SV_EV_GRACE] = sv_act_kill},
    [SUPERVISE_EXITED] = {[SV_EV_START] = sv_act_start, [SV_EV_ADOPT] = sv_act_adopt},
    [SUPERVISE_FAILED] = {[SV_EV_START] = sv_act_start, [SV_EV_ADOPT] = sv_act_adopt},
};

static void sv_dispatch(struct supervise *sv, enum sv_event ev)
{
	enum supervise_state from = sv->state;
	sv_action act = sv_table[from][ev];
	if (!act) {
		log_debug("supervise", "event ignored", "service", sv->name, "state",
			  sv_state_names[from], "event", sv_event_names[ev], NULL);
		return;
	}
	enum supervise_state to = act(sv);
	sv->state = to;
	log_debug("supervise", "transition", "service", sv->name, "from", sv_state_names[from],
		  "event", sv_event_names[ev], "to", sv_state_names[to], NULL);
	if (sv->out_pipe >= 0 || sv->err_pipe >= 0) {
		if (sv->o.on_output)
			sv->o.on_output(sv, sv->o.arg, 0);
		if (sv->out_pipe >= 0)
			close(sv->out_pipe);
		if (sv->err_pipe >= 0)
			close(sv->err_pipe);
		sv->out_pipe = sv->err_pipe = -1;
	}
	if (to != from && sv->o.on_state)
		sv->o.on_state(sv, sv->o.arg, (int)to);
}

/* --- public ----------------------------------------------------------- */

struct supervise *supervise_new(struct loop *loop, const struct supervise_opts *o, char *err,
				size_t errlen)
{
	const char *name = o->name ? o->name : (o->argv && o->argv[0] ? o->argv[0] : "?");
	struct cron cron;
	if (!o->argv || !o->argv[0] || !o->argv[0][0]) {
		snprintf(err, errlen, "service '%s': empty argv", name);
		return NULL;
	}
	if (o->schedule && cron_parse(&cron, o->schedule, err, errlen) < 0)
		return NULL;
	if (o->cgroup_root && !o->cgroup_path) {
		snprintf(err, errlen, "service '%s': cgroup_root without cgroup_path", name);
		return NULL;
	}
	if (o->nports > SUPERVISE_MAX_PORTS) {
		snprintf(err, errlen, "service '%s': more than %d ports", name,
			 SUPERVISE_MAX_PORTS);
		return NULL;
	}
	struct supervise *sv = xcalloc(1, sizeof(*sv));
	sv->loop = loop;
	sv->o = *o;
	if (o->schedule) {
		sv->cron = cron;
		sv->scheduled = 1;
	}
	/* Only the owned copies below are used from here on. */
	sv->o.schedule = sv->o.name = sv->o.cwd = sv->o.cgroup_root = sv->o.cgroup_path = NULL;
	sv->o.argv = sv->o.envp = NULL;
	sv->o.rlimits = NULL;
	sv->name = xstrdup(name);
	sv->argv = sv_strv_dup(o->argv);
	sv->envp = sv_strv_dup(o->envp);
	sv->cwd = sv_strdup_or_null(o->cwd);
	sv->cgroup_root = sv_strdup_or_null(o->cgroup_root);
	sv->cgroup_path = sv_strdup_or_null(o->cgroup_path);
	if (o->nrlimits)
		sv->rlimits = xmemdup(o->rlimits, o->nrlimits * sizeof(*o->rlimits));
	if (sv->o.backoff_min_ms <= 0)
		sv->o.backoff_min_ms = 1000;
	if (sv->o.backoff_max_ms <= 0)
		sv->o.backoff_max_ms = 60000;
	if (sv->o.backoff_max_ms < sv->o.backoff_min_ms)
		sv->o.backoff_max_ms = sv->o.backoff_min_ms;
	if (sv->o.stable_ms <= 0)
		sv->o.stable_ms = 10000;
	if (sv->o.stop_grace_ms <= 0)
		sv->o.stop_grace_ms = 10000;
	sv->delay_ms = sv->o.backoff_min_ms;
	sv->state = SUPERVISE_STOPPED;
	sv->pidfd = sv->out_pipe = sv->err_pipe = -1;
	sv->last_status = -1;
	sv->next_run = -1;
	return sv;
}

void supervise_free(struct supervise *sv)
{
	if (!sv)
		return;
	if (sv->pid > 0 && !sv->adopted)
		loop_child_del(sv->loop, sv->pid);
	sv_unwatch(sv);
	sv_cancel(sv, &sv->t_retry);
	sv_cancel(sv, &sv->t_grace);
	sv_cancel(sv, &sv->t_due);
	sv_cancel(sv, &sv->t_deadline);
	cgroup_free(sv->cg);
	free(sv->name);
	free(sv->cwd);
	free(sv->cgroup_root);
	free(sv->cgroup_path);
	sv_strv_free(sv->argv);
	sv_strv_free(sv->envp);
	free(sv->rlimits);
	free(sv);
}

void supervise_start(struct supervise *sv)
{
	sv_dispatch(sv, SV_EV_START);
}

void supervise_stop(struct supervise *sv)
{
	sv_dispatch(sv, SV_EV_STOP);
}

void supervise_trigger(struct supervise *sv)
{
	if (sv->scheduled)
		sv_dispatch(sv, SV_EV_DUE);
}

int supervise_adopt(struct supervise *sv, const struct supervise_record *rec, char *err,
		    size_t errlen)
{
	unsigned long long st;
	if (sv->state != SUPERVISE_STOPPED && sv->state != SUPERVISE_EXITED &&
	    sv->state != SUPERVISE_FAILED) {
		snprintf(err, errlen, "adopt '%s': already %s", sv->name,
			 sv_state_names[sv->state]);
		return -1;
	}
	if (rec->pid <= 1 || rec->pgid <= 1 || rec->nports > SUPERVISE_MAX_PORTS) {
		snprintf(err, errlen, "adopt '%s': bad record", sv->name);
		return -1;
	}
	if (supervise_proc_start_time(rec->pid, &st) < 0) {
		snprintf(err, errlen, "adopt '%s': pid %d is gone", sv->name, (int)rec->pid);
		return -1;
	}
	if (st != rec->start_time) {
		snprintf(
		    err, errlen,
		    "adopt '%s': pid %d started at %llu, not %llu: another process (pid reused)",
		    sv->name, (int)rec->pid, st, rec->start_time);
		return -1;
	}
	if (getpgid(rec->pid) != rec->pgid) {
		snprintf(err, errlen, "adopt '%s': pid %d is not in process group %d", sv->name,
			 (int)rec->pid, (int)rec->pgid);
		return -1;
	}
	sv->pid = rec->pid;
	sv->pgid = rec->pgid;
	sv->start_time = rec->start_time;
	sv->adopted = 1;
	sv->last_status = -1;
	memcpy(sv->o.ports, rec->ports, sizeof(sv->o.ports));
	sv->o.nports = rec->nports;
	sv_dispatch(sv, SV_EV_ADOPT);
	char pid[16];
	snprintf(pid, sizeof(pid), "%d", (int)rec->pid);
	log_info("supervise", "adopted", "service", sv->name, "pid", pid, NULL);
	return 0;
}

enum supervise_state supervise_state(const struct supervise *sv)
{
	return sv->state;
}

const char *supervise_state_name(enum supervise_state st)
{
	return (unsigned)st < SUPERVISE_NSTATES ? sv_state_names[st] : "?";
}

int supervise_record(const struct supervise *sv, struct supervise_record *rec)
{
	memset(rec, 0, sizeof(*rec));
	if (sv->pid <= 0)
		return -1;
	rec->pid = sv->pid;
	rec->pgid = sv->pgid;
	rec->start_time = sv->start_time;
	memcpy(rec->ports, sv->o.ports, sizeof(rec->ports));
	rec->nports = sv->o.nports;
	return 0;
}

int supervise_last_status(const struct supervise *sv)
{
	return sv->last_status;
}

const char *supervise_error(const struct supervise *sv)
{
	return sv->error;
}

unsigned supervise_runs(const struct supervise *sv)
{
	return sv->runs;
}

unsigned supervise_restarts(const struct supervise *sv)
{
	return sv->restarts;
}

unsigned supervise_skipped(const struct supervise *sv)
{
	return sv->skipped;
}

long long supervise_backoff_ms(const struct supervise *sv)
{
	return sv->state == SUPERVISE_BACKOFF ? sv->pending_ms : 0;
}

time_t supervise_next_run(const struct supervise *sv)
{
	return sv->next_run;
}

int supervise_remove_cgroup(struct supervise *sv, char *err, size_t errlen)
{
	if (sv->pid > 0) {
		snprintf(err, errlen, "service '%s': remove cgroup: still %s", sv->name,
			 sv_state_names[sv->state]);
		errno = EBUSY;
		return -1;
	}
	if (!sv->cg && sv->cgroup_root) {
		/* not opened by this agent (e.g. after a restart): find it */
		sv->cg = cgroup_open(sv->cgroup_root, sv->cgroup_path, NULL, err, errlen);
		if (!sv->cg)
			return -1;
	}
	if (!sv->cg)
		return 0;
	int rc = cgroup_remove(sv->cg, err, errlen);
	cgroup_free(sv->cg);
	sv->cg = NULL;
	return rc;
}

void supervise_take_output(struct supervise *sv, int *out_fd, int *err_fd)
{
	if (out_fd)
		*out_fd = sv->out_pipe;
	if (err_fd)
		*err_fd = sv->err_pipe;
	if (out_fd)
		sv->out_pipe = -1;
	if (err_fd)
		sv->err_pipe = -1;
}
