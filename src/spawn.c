#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "xalloc.h"

#ifndef SYS_close_range
#define SYS_close_range 436 /* the same number on every architecture */
#endif

#define SPAWN_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SPAWN_NSIG 65

/* What the child reports through the error pipe when a step fails. */
enum spawn_stage {
	SPAWN_ST_EXEC,
	SPAWN_ST_PGROUP,
	SPAWN_ST_FDS,
	SPAWN_ST_RLIMIT,
	SPAWN_ST_GROUPS,
	SPAWN_ST_GID,
	SPAWN_ST_UID,
	SPAWN_ST_CHDIR,
	SPAWN_ST_CGROUP,
};

struct spawn_report {
	int stage;
	int err;
	int index; /* SPAWN_ST_RLIMIT: which limit */
};

/* Everything the child needs, prepared before fork: the child then only
 * makes system calls (no allocation). */
struct spawn_child {
	const struct spawn_opts *o;
	char **paths; /* execve candidates, NULL-terminated */
	const char *const *envp;
	int src[3];   /* fd to dup onto 0, 1, 2; -1: leave as is (inherit) */
	int errfd;    /* write end of the error pipe (CLOEXEC) */
};

static const char *const spawn_no_env[] = { NULL };

static const char *spawn_env_path(const char *const *envp)
{
	for (; envp && *envp; envp++)
		if (!strncmp(*envp, "PATH=", 5))
			return *envp + 5;
	return SPAWN_DEFAULT_PATH;
}

static char **spawn_candidates(const char *prog, const char *const *envp)
{
	char **v;
	if (strchr(prog, '/')) {
		v = xcalloc(2, sizeof(*v));
		v[0] = xstrdup(prog);
		return v;
	}
	const char *path = spawn_env_path(envp);
	size_t n = 1;
	for (const char *s = path; *s; s++)
		n += *s == ':';
	v = xcalloc(n + 1, sizeof(*v));
	size_t i = 0;
	for (const char *s = path;; s++) {
		const char *end = strchr(s, ':');
		size_t len = end ? (size_t)(end - s) : strlen(s);
		/* An empty entry means the working directory, as in execvp. */
		v[i++] = len ? xasprintf("%.*s/%s", (int)len, s, prog) : xasprintf("./%s", prog);
		if (!end)
			break;
		s = end;
	}
	return v;
}

static void spawn_free_candidates(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static int spawn_close_from_proc(int keep)
{
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	char dbuf[4096] __attribute__((aligned(8)));
	/* Closing while listing may skip entries: list again until a pass
	 * closes nothing. */
	for (int closed = 1; closed;) {
		closed = 0;
		if (lseek(dfd, 0, SEEK_SET) < 0)
			break;
		long n;
		while ((n = syscall(SYS_getdents64, dfd, dbuf, sizeof(dbuf))) > 0) {
			for (long off = 0; off < n;) {
				struct dirent64_ {
					uint64_t ino;
					int64_t off;
					unsigned short reclen;
					unsigned char type;
					char name[];
				} *d = (struct dirent64_ *)(dbuf + off);
				off += d->reclen;
				if (d->name[0] < '0' || d->name[0] > '9')
					continue;
				int fd = atoi(d->name);
				if (fd > keep && fd != dfd) {
					close(fd);
					closed = 1;
				}
			}
		}
		if (n < 0) {
			close(dfd);
			return -1;
		}
	}
	close(dfd);
	return 0;
}

/* Close every fd above keep. */
static void spawn_close_fds(int keep, int flags)
{
	if (!(flags & SPAWN_NO_CLOSE_RANGE) &&
	    syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0) == 0)
		return;
	if (spawn_close_from_proc(keep) == 0)
		return;
	long max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = keep + 1; fd < max; fd++)
		close(fd);
}

__attribute__((noreturn)) static void spawn_report(int errfd, int stage, int err, int index)
{
	struct spawn_report r = { stage, err, index };
	ssize_t w;
	do
		w = write(errfd, &r, sizeof(r));
	while (w < 0 && errno == EINTR);
	_exit(127);
}

/* The kernel's struct sigaction (x86_64 and most 64-bit ABIs): libc's
 * sigaction() refuses the signals it reserves for itself (32-34), so an
 * ignored one inherited from our parent would survive execve into the
 * service. Only SIG_DFL is installed through it, which needs no restorer. */
struct spawn_ksigaction {
	void (*handler)(int);
	unsigned long flags;
	void (*restorer)(void);
	unsigned long mask;
};

static void spawn_default_signal(int s)
{
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	if (sigaction(s, &dfl, NULL) == 0 || s == SIGKILL || s == SIGSTOP)
		return;
	struct spawn_ksigaction k = { SIG_DFL, 0, NULL, 0 };
	syscall(SYS_rt_sigaction, s, &k, NULL, sizeof(k.mask));
}

__attribute__((noreturn)) static void spawn_child(struct spawn_child *c)
{
	const struct spawn_opts *o = c->o;
	for (int s = 1; s < SPAWN_NSIG; s++)
		spawn_default_signal(s);

	for (size_t i = 0; i < o->ncgroup_fds; i++) {
		ssize_t w;
		do
			w = write(o->cgroup_fds[i], "0", 1);
		while (w < 0 && errno == EINTR);
		if (w != 1)
			spawn_report(c->errfd, SPAWN_ST_CGROUP, w < 0 ? errno : EIO, (int)i);
	}

	if (o->pgroup == SPAWN_PGROUP && setpgid(0, 0) < 0)
		spawn_report(c->errfd, SPAWN_ST_PGROUP, errno, 0);
	if (o->pgroup == SPAWN_SETSID && setsid() < 0)
		spawn_report(c->errfd, SPAWN_ST_PGROUP, errno, 0);

	/* Lift every source (and the error pipe) above 2 first, so that no
	 * dup2 onto 0..2 clobbers a source still needed. */
	int moved[3];
	int efd = fcntl(c->errfd, F_DUPFD_CLOEXEC, 3);
	if (efd < 0)
		_exit(127);
	c->errfd = efd;
	for (int i = 0; i < 3; i++) {
		moved[i] = -1;
		if (c->src[i] >= 0 && (moved[i] = fcntl(c->src[i], F_DUPFD_CLOEXEC, 3)) < 0)
			spawn_report(c->errfd, SPAWN_ST_FDS, errno, 0);
	}
	for (int i = 0; i < 3; i++)
		if (moved[i] >= 0 && dup2(moved[i], i) < 0)
			spawn_report(c->errfd, SPAWN_ST_FDS, errno, 0);
	if (o->err == SPAWN_STDOUT && dup2(1, 2) < 0)
		spawn_report(c->errfd, SPAWN_ST_FDS, errno, 0);
	if (c->errfd != 3) {
		if (dup3(c->errfd, 3, O_CLOEXEC) < 0)
			spawn_report(c->errfd, SPAWN_ST_FDS, errno, 0);
		c->errfd = 3;
	}
	spawn_close_fds(3, o->flags);

	for (size_t i = 0; i < o->nrlimits; i++)
		if (setrlimit(o->rlimits[i].resource, &o->rlimits[i].limit) < 0)
			spawn_report(c->errfd, SPAWN_ST_RLIMIT, errno, (int)i);
	if (o->set_ids) {
		if (setgroups(1, &o->gid) < 0)
			spawn_report(c->errfd, SPAWN_ST_GROUPS, errno, 0);
		if (setgid(o->gid) < 0)
			spawn_report(c->errfd, SPAWN_ST_GID, errno, 0);
		if (setuid(o->uid) < 0)
			spawn_report(c->errfd, SPAWN_ST_UID, errno, 0);
	}
	if (o->cwd && chdir(o->cwd) < 0)
		spawn_report(c->errfd, SPAWN_ST_CHDIR, errno, 0);

	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	/* Like execvp, but never falls back to a shell on ENOEXEC. */
	int err = ENOENT, eacces = 0;
	for (char **p = c->paths; *p; p++) {
		execve(*p, (char *const *)o->argv, (char *const *)c->envp);
		err = errno;
		if (err == EACCES)
			eacces = 1;
		else if (err != ENOENT && err != ENOTDIR && err != ELOOP && err != ENAMETOOLONG)
			break;
	}
	spawn_report(c->errfd, SPAWN_ST_EXEC, eacces && err != ENOEXEC ? EACCES : err, 0);
}

static void spawn_name(struct buf *b, const char *s)
{
	buf_puts(b, "spawn '");
	for (size_t i = 0; s[i] && i < 200; i++)
		buf_putc(b, (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i]);
	buf_puts(b, "': ");
}

static void spawn_describe(const struct spawn_opts *o, const struct spawn_report *r, char *err,
			   size_t errlen)
{
	struct buf b = BUF_INIT;
	spawn_name(&b, o->argv[0]);
	switch (r->stage) {
	case SPAWN_ST_EXEC:
		break;
	case SPAWN_ST_PGROUP:
		buf_puts(&b, o->pgroup == SPAWN_SETSID ? "setsid: " : "setpgid: ");
		break;
	case SPAWN_ST_FDS:
		buf_puts(&b, "set up standard fds: ");
		break;
	case SPAWN_ST_RLIMIT:
		buf_printf(&b, "setrlimit %d: ",
			   r->index >= 0 && (size_t)r->index < o->nrlimits
				   ? o->rlimits[r->index].resource
				   : -1);
		break;
	case SPAWN_ST_GROUPS:
		buf_printf(&b, "setgroups %u: ", (unsigned)o->gid);
		break;
	case SPAWN_ST_GID:
		buf_printf(&b, "setgid %u: ", (unsigned)o->gid);
		break;
	case SPAWN_ST_UID:
		buf_printf(&b, "setuid %u: ", (unsigned)o->uid);
		break;
	case SPAWN_ST_CGROUP:
		buf_puts(&b, "join cgroup: ");
		break;
	case SPAWN_ST_CHDIR:
		buf_puts(&b, "chdir '");
		buf_puts(&b, o->cwd);
		buf_puts(&b, "': ");
		break;
	}
	buf_puts(&b, strerror(r->err));
	snprintf(err, errlen, "%s", b.data);
	buf_release(&b);
}

static void spawn_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int spawn_start(const struct spawn_opts *o, struct spawn_proc *p, char *err, size_t errlen)
{
	p->pid = -1;
	p->pgid = 0;
	p->in_fd = p->out_fd = p->err_fd = -1;
	if (!o->argv || !o->argv[0] || !o->argv[0][0]) {
		snprintf(err, errlen, "spawn: empty argv");
		errno = EINVAL;
		return -1;
	}
	enum spawn_io mode[3] = { o->in, o->out, o->err };
	int given[3] = { o->in_fd, o->out_fd, o->err_fd };
	if (o->in == SPAWN_STDOUT || o->out == SPAWN_STDOUT) {
		struct buf b = BUF_INIT;
		spawn_name(&b, o->argv[0]);
		snprintf(err, errlen, "%sSPAWN_STDOUT is for stderr only", b.data);
		buf_release(&b);
		errno = EINVAL;
		return -1;
	}

	struct spawn_child c = { .o = o, .envp = o->envp ? o->envp : spawn_no_env };
	int pipes[3][2] = { { -1, -1 }, { -1, -1 }, { -1, -1 } };
	int errpipe[2] = { -1, -1 };
	int devnull = -1, saved;
	const char *what = "pipe";
	for (int i = 0; i < 3; i++) {
		c.src[i] = -1;
		switch (mode[i]) {
		case SPAWN_NULL:
			if (devnull < 0) {
				what = "open '/dev/null'";
				if ((devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
					goto fail;
			}
			c.src[i] = devnull;
			break;
		case SPAWN_PIPE:
			what = "pipe";
			if (pipe2(pipes[i], O_CLOEXEC) < 0)
				goto fail;
			/* the child's end: read end for stdin, write end otherwise */
			c.src[i] = pipes[i][i == 0 ? 0 : 1];
			break;
		case SPAWN_FD:
			c.src[i] = given[i];
			break;
		case SPAWN_INHERIT:
		case SPAWN_STDOUT:
			break;
		}
	}
	what = "pipe";
	if (pipe2(errpipe, O_CLOEXEC) < 0)
		goto fail;
	c.errfd = errpipe[1];
	c.paths = spawn_candidates(o->argv[0], c.envp);

	what = "fork";
	pid_t pid = fork();
	if (pid < 0) {
		spawn_free_candidates(c.paths);
		goto fail;
	}
	if (pid == 0)
		spawn_child(&c);
	spawn_free_candidates(c.paths);
	spawn_close(&errpipe[1]);
	spawn_close(&devnull);
	for (int i = 0; i < 3; i++)
		if (pipes[i][0] >= 0)
			spawn_close(&pipes[i][i == 0 ? 0 : 1]);

	struct spawn_report r;
	ssize_t n;
	while ((n = read(errpipe[0], &r, sizeof(r))) < 0 && errno == EINTR)
		;
	spawn_close(&errpipe[0]);
	if (n == (ssize_t)sizeof(r)) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		for (int i = 0; i < 3; i++)
			spawn_close(&pipes[i][i == 0 ? 1 : 0]);
		spawn_describe(o, &r, err, errlen);
		errno = r.err;
		return -1;
	}
	p->pid = pid;
	p->pgid = o->pgroup != SPAWN_SAME_GROUP ? pid : 0;
	int *mine[3] = { &p->in_fd, &p->out_fd, &p->err_fd };
	for (int i = 0; i < 3; i++) {
		int fd = pipes[i][i == 0 ? 1 : 0];
		if (fd < 0)
			continue;
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		*mine[i] = fd;
	}
	return 0;

fail:
	saved = errno;
	{
		struct buf b = BUF_INIT;
		spawn_name(&b, o->argv[0]);
		snprintf(err, errlen, "%s%s: %s", b.data, what, strerror(saved));
		buf_release(&b);
	}
	for (int i = 0; i < 3; i++) {
		spawn_close(&pipes[i][0]);
		spawn_close(&pipes[i][1]);
	}
	spawn_close(&errpipe[0]);
	spawn_close(&errpipe[1]);
	spawn_close(&devnull);
	errno = saved;
	return -1;
}

int spawn_kill_group(pid_t pgid, int sig)
{
	if (pgid <= 1) {
		errno = EINVAL;
		return -1;
	}
	return kill(-pgid, sig);
}
