/* spawn: start a program with fork + execve, never through a shell.
 *
 *   const char *argv[] = { "git", "fetch", "--", url, NULL };
 *   struct spawn_opts o = { .argv = argv, .envp = env, .cwd = dir,
 *                           .pgroup = SPAWN_PGROUP,
 *                           .out = SPAWN_PIPE, .err = SPAWN_STDOUT };
 *   struct spawn_proc p;
 *   if (spawn_start(&o, &p, err, sizeof(err)) < 0) ... err: "spawn 'git': ..."
 *   ... watch p.out_fd with the loop, p.pid with loop_child_add ...
 *
 * In the child, before execve: signal dispositions reset to default and the
 * signal mask emptied (the loop blocks signals for its signalfd); the
 * cgroups given joined; a new
 * process group or session if asked; stdin/stdout/stderr set up; every
 * other fd closed (close_range, else each fd listed in /proc/self/fd), so
 * LMDB, listening sockets and TLS connections never leak into children;
 * rlimits, then groups/gid/uid, then the working directory. A failure of
 * any step, or of execve itself, is reported to the parent through a
 * CLOEXEC pipe: spawn_start fails with its errno, and the child is reaped.
 *
 * spawn_start blocks only until the child has exec'd or failed (the error
 * pipe closes at exec), which is how posix_spawn behaves too.
 */
#ifndef DPLOYR_SPAWN_H
#define DPLOYR_SPAWN_H

#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

/* What a standard fd of the child is connected to. */
enum spawn_io {
	SPAWN_NULL = 0, /* /dev/null (the default) */
	SPAWN_PIPE,	/* a pipe; the parent's end is returned, non-blocking */
	SPAWN_FD,	/* the fd given in in_fd/out_fd/err_fd (e.g. a log file) */
	SPAWN_INHERIT,	/* the parent's own fd 0/1/2 */
	SPAWN_STDOUT,	/* err only: the same as stdout (2>&1) */
};

enum spawn_pgroup {
	SPAWN_SAME_GROUP = 0,
	SPAWN_PGROUP, /* setpgid(0, 0): pid == pgid, killable as a group */
	SPAWN_SETSID, /* setsid(): also a new session, no controlling tty */
};

/* spawn_opts.flags */
enum {
	/* Close fds by listing /proc/self/fd even where close_range works
	 * (tests cover the fallback with it). */
	SPAWN_NO_CLOSE_RANGE = 1,
};

struct spawn_rlimit {
	int resource; /* RLIMIT_NOFILE, RLIMIT_CORE, ... */
	struct rlimit limit;
};

/* Filled in by the caller; zero means default. Nothing is retained after
 * spawn_start returns. */
struct spawn_opts {
	/* argv[0] is the program: a path if it contains '/', otherwise looked
	 * up in PATH from envp (or /usr/local/sbin:/usr/local/bin:/usr/sbin:
	 * /usr/bin:/sbin:/bin when envp has none), like execvp. */
	const char *const *argv;
	/* The child's whole environment, exactly (NULL: empty). */
	const char *const *envp;
	const char *cwd; /* NULL: the parent's */
	enum spawn_pgroup pgroup;
	enum spawn_io in, out, err;
	int in_fd, out_fd, err_fd; /* for SPAWN_FD; stay owned by the caller */
	int set_ids;		   /* switch to uid/gid (and groups = { gid }) */
	uid_t uid;
	gid_t gid;
	const struct spawn_rlimit *rlimits;
	size_t nrlimits;
	/* cgroup.procs files, opened for writing by the caller (who keeps
	 * them): the child writes "0" to each (joins the cgroup) first thing
	 * after fork, so nothing the program runs is ever outside them. cgroup
	 * v2 needs one, v1 one per hierarchy (memory, cpu, pids). */
	const int *cgroup_fds;
	size_t ncgroup_fds;
	int flags;
};

/* The started child. Fds are the parent's ends of SPAWN_PIPE streams
 * (O_NONBLOCK, CLOEXEC), else -1; the caller owns and closes them, and
 * reaps pid (loop_child_add or waitpid). */
struct spawn_proc {
	pid_t pid;
	pid_t pgid; /* pid with SPAWN_PGROUP/SPAWN_SETSID, else 0 */
	int in_fd, out_fd, err_fd;
};

/* Returns 0, or -1 with "spawn 'ARGV0': reason" in err (errno set). */
int spawn_start(const struct spawn_opts *o, struct spawn_proc *p, char *err, size_t errlen);

/* Send sig to every process of group pgid (kill(-pgid, sig)). pgid <= 1
 * fails with EINVAL: kill(-1) and kill(0) would hit far more. -1 with
 * errno ESRCH when the group no longer exists. */
int spawn_kill_group(pid_t pgid, int sig);

#endif
