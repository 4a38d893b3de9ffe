#include "pipeline.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sys/resource.h>

#include "buf.h"
#include "cgroup.h"
#include "fetch.h"
#include "health.h"
#include "log.h"
#include "run.h"
#include "runtime.h"
#include "spawn.h"
#include "supervise.h"
#include "xalloc.h"

#define DEF_PATH     "/usr/local/bin:/usr/bin:/bin"
#define DEF_KEEP     5
#define DEF_FETCH    600000LL
#define DEF_BUILD    1800000LL
#define DEF_HOOK     300000LL
#define DEF_HEALTH   120000LL
#define DEF_GATE     100LL
#define GATE_MIN_MS  5000LL /* the health gate never gives up sooner */
#define DEF_SETTLE   3000LL
#define DEF_GRACE    10000LL
#define DEF_SWITCH   30000LL
#define STOP_SLACK   5000LL /* beyond the grace: KILL must have worked by then */
#define RUNTIME_MS   60000LL
#define LINE_MAX_LEN 4096
#define SCRUB_MIN    3 /* shorter secret values are not scrubbed (they would mangle text) */
#define TAIL_BYTES   2048
#define PRUNE_MAX    64

enum ev { EV_OK, EV_FAIL, EV_CANCEL, EV_ASYNC };

static const char *const stage_names[PIPELINE_NSTAGES] = {
    "idle",   "fetch",	  "runtime",	 "build", "pre_deploy", "start", "health",
    "switch", "stop_old", "post_deploy", "prune", "cleanup",	"end"};
static const char *const ev_names[] = {"ok", "fail", "cancel"};

/* The transition table; 0 (IDLE) means "ignored". */
static const unsigned char transitions[PIPELINE_NSTAGES][3] = {
    [PIPELINE_FETCH] = {PIPELINE_RUNTIME, PIPELINE_CLEANUP, PIPELINE_CLEANUP},
    [PIPELINE_RUNTIME] = {PIPELINE_BUILD, PIPELINE_CLEANUP, PIPELINE_CLEANUP},
    [PIPELINE_BUILD] = {PIPELINE_PRE_DEPLOY, PIPELINE_CLEANUP, PIPELINE_CLEANUP},
    [PIPELINE_PRE_DEPLOY] = {PIPELINE_START, PIPELINE_CLEANUP, PIPELINE_CLEANUP},
    [PIPELINE_START] = {PIPELINE_HEALTH, PIPELINE_CLEANUP, PIPELINE_CLEANUP},
    [PIPELINE_HEALTH] = {PIPELINE_SWITCH, PIPELINE_CLEANUP, PIPELINE_CLEANUP},
    [PIPELINE_SWITCH] = {PIPELINE_STOP_OLD, PIPELINE_CLEANUP, 0},
    [PIPELINE_STOP_OLD] = {PIPELINE_POST_DEPLOY, PIPELINE_POST_DEPLOY, 0},
    [PIPELINE_POST_DEPLOY] = {PIPELINE_PRUNE, PIPELINE_PRUNE, 0},
    [PIPELINE_PRUNE] = {PIPELINE_END, PIPELINE_END, 0},
    [PIPELINE_CLEANUP] = {PIPELINE_END, PIPELINE_END, 0},
};

/* What a release needs, copied from the blueprint. */
struct spec {
	enum bp_type type;
	enum bp_source source;
	char *rt_type, *rt_version;
	char *url, *branch, *commit, *image;
	char *working_dir, *static_dir, *build_cmd, *run_cmd, *schedule;
	char *pre_deploy, *post_deploy;
	enum bp_health_kind hkind;
	char *hpath, *hcommand;
	long long hinterval, htimeout, hstart;
	int hretries;
	enum bp_restart restart;
	struct cgroup_limits limits;
	long long timeout_ms;
};

struct rel {
	struct pipeline *p;
	char *id;
	enum bp_type type;
	struct supervise *sv;
	int port;
	int logfd;
	/* Its live health check (pipeline_health), kept from the deploy's
	 * spec, which goes with the deploy: probe 0 when there is none. */
	int probe;
	struct health_opts ho;
	char **henv;
	size_t nhenv;
};

typedef void (*step_done_fn)(struct pipeline *p, int status, const char *last);
typedef void (*worker_done_fn)(struct pipeline *p, int status, const char *out);

struct pipeline {
	struct loop *loop;
	struct pipeline_opts o;
	char *name, *dir, *search_path, *home, *cgroup_root;
	struct rel *cur;
	int stopping_cur; /* pipeline_stop: forget cur once stopped */

	/* The deploy in progress (st != IDLE). */
	enum pipeline_stage st;
	enum pipeline_stage failed_stage;
	int rollback, cancelled, switched, stop_phase;
	struct buf reason;
	char *id, *rdir, *srcdir, *wdir, *upload, *prev_id;
	struct spec spec;
	char **env; /* NAME=value, NULL-terminated */
	size_t nenv;
	char **scrub; /* values never to show */
	size_t nscrub;
	char revision[72]; /* a git commit, or an image id ("sha256:" + 64 hex) */
	char rtver[64];
	struct rel *nrel, *old;
	long long t_stage, t_settle, t_poke, t_kick;
	long long stage_ms; /* the running stage's deadline, for messages */
	int settled;
	int proxy_wait;	  /* SWITCH waits for pipeline_proxy_done */
	int proxy_answer; /* its answer: 1 ok, -1 refused, 0 none yet */
	struct buf proxy_reason;
	struct health *hc;
	int git_phase;
	int image_phase; /* FETCH of an image: 0 inspect, 1 pull, 2 inspect */
	/* The one program running (git, build, hook, rm). */
	struct {
		pid_t pid;
		int fd;
		int capture;
		struct buf out, part;
		char last[512];
		step_done_fn done;
	} step;
	/* The forked worker. */
	struct {
		pid_t pid;
		int fd;
		worker_done_fn done;
	} worker;
};

static void fire(struct pipeline *p, enum ev ev);
static void poke(struct pipeline *p);
static enum ev switch_refused(struct pipeline *p, const char *why);

/* --- small helpers --------------------------------------------------------------- */


static char *dupn(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void spec_release(struct spec *s)
{
	char **f[] = {&s->rt_type,     &s->rt_version,	&s->url,       &s->branch,  &s->commit,  &s->image,
		      &s->working_dir, &s->static_dir,	&s->build_cmd, &s->run_cmd, &s->schedule,
		      &s->pre_deploy,  &s->post_deploy, &s->hpath,     &s->hcommand};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		free(*f[i]);
		*f[i] = NULL;
	}
	memset(s, 0, sizeof(*s));
}

static void spec_copy(struct spec *s, const struct bp *bp)
{
	s->type = bp->type;
	s->source = bp->source;
	s->rt_type = xstrdup(bp_runtime_name(bp->runtime.type));
	s->rt_version = dupn(bp->runtime.version);
	s->url = dupn(bp->remote.url);
	s->branch = dupn(bp->remote.branch);
	s->commit = dupn(bp->remote.commit_hash);
	s->image = dupn(bp->image);
	s->working_dir = dupn(bp->working_dir);
	s->static_dir = dupn(bp->static_dir);
	s->build_cmd = dupn(bp->build_cmd);
	s->run_cmd = dupn(bp->run_cmd);
	s->schedule = dupn(bp->schedule);
	s->pre_deploy = dupn(bp->hooks.pre_deploy);
	s->post_deploy = dupn(bp->hooks.post_deploy);
	s->hkind = bp->health_check.kind;
	s->hpath = dupn(bp->health_check.path);
	s->hcommand = dupn(bp->health_check.command);
	s->hinterval = bp->health_check.interval_ms;
	s->htimeout = bp->health_check.timeout_ms;
	s->hstart = bp->health_check.start_period_ms;
	s->hretries = bp->health_check.retries;
	s->restart = bp->restart;
	s->limits.memory = (long long)bp->resources.memory_bytes;
	s->limits.cpu_millis = bp->resources.cpu_millis;
	s->limits.pids = bp->resources.pids;
	s->timeout_ms = bp->timeout_ms;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Set NAME=value in p->env, replacing an entry of the same name. */
static void env_set(struct pipeline *p, const char *kv)
{
	size_t nl = strcspn(kv, "=");
	for (size_t i = 0; i < p->nenv; i++)
		if (!strncmp(p->env[i], kv, nl) && p->env[i][nl] == '=') {
			free(p->env[i]);
			p->env[i] = xstrdup(kv);
			return;
		}
	p->env = xrealloc(p->env, (p->nenv + 2) * sizeof(*p->env));
	p->env[p->nenv++] = xstrdup(kv);
	p->env[p->nenv] = NULL;
}

static int env_name_ok(const char *s, size_t n)
{
	if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9')))
			return 0;
	return 1;
}

static void scrub_add(struct pipeline *p, const char *v, size_t n)
{
	if (n < SCRUB_MIN)
		return;
	p->scrub = xrealloc(p->scrub, (p->nscrub + 1) * sizeof(*p->scrub));
	p->scrub[p->nscrub++] = xstrndup(v, n);
}

/* line with every secret value replaced (caller frees). */
static char *scrubbed(struct pipeline *p, const char *line)
{
	struct buf b = BUF_INIT;
	buf_puts(&b, line);
	for (size_t i = 0; i < p->nscrub; i++) {
		size_t sl = strlen(p->scrub[i]);
		char *m;
		size_t from = 0;
		while ((m = strstr(b.data + from, p->scrub[i]))) {
			size_t at = (size_t)(m - b.data);
			struct buf t = BUF_INIT;
			buf_add(&t, b.data, at);
			buf_puts(&t, "[secret]");
			from = t.len;
			buf_puts(&t, m + sl);
			buf_release(&b);
			b = t;
		}
	}
	return buf_detach(&b, NULL);
}

/* One deploy log line, scrubbed. */
static void emit(struct pipeline *p, const char *line)
{
	char *s = scrubbed(p, line);
	if (p->o.on_log)
		p->o.on_log(p, p->o.arg, s);
	free(s);
}

static void emitf(struct pipeline *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emitf(struct pipeline *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	emit(p, s);
	free(s);
}

/* Set the reason (the first one wins) and return EV_FAIL. */
static enum ev fail(struct pipeline *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static enum ev fail(struct pipeline *p, const char *fmt, ...)
{
	if (!p->reason.len) {
		va_list ap;
		va_start(ap, fmt);
		buf_vprintf(&p->reason, fmt, ap);
		va_end(ap);
	}
	return EV_FAIL;
}

static void cancel_timer(struct pipeline *p, long long *t)
{
	if (*t)
		loop_timer_cancel(p->loop, *t);
	*t = 0;
}

/* A free TCP port on 127.0.0.1 (the kernel's pick), or 0. */
static int pick_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int port = 0;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &al) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static int id_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > 64 || !strcmp(id, ".") || !strcmp(id, ".."))
		return 0;
	return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* The URL without an https user part (a token), for messages. */
static char *url_shown(const char *url)
{
	if (strncmp(url, "https://", 8))
		return xstrdup(url);
	const char *a = url + 8;
	size_t alen = strcspn(a, "/");
	const char *at = memchr(a, '@', alen);
	if (!at)
		return xstrdup(url);
	return xasprintf("https://%s", at + 1);
}

/* releases/ID/release: key=value lines. */
static void stamp_write(struct pipeline *p, const char *id, const char *rev, const char *rt)
{
	char *path = xasprintf("%s/releases/%s/release", p->dir, id);
	char *tmp = xasprintf("%s.tmp", path);
	FILE *f = fopen(tmp, "we");
	if (f) {
		fprintf(f, "revision=%s\nruntime=%s\nactivated=%lld\n", rev, rt, loop_wall_ms());
		if (fclose(f) == 0)
			rename(tmp, path);
		else
			unlink(tmp);
	}
	free(tmp);
	free(path);
}

/* The value of key in releases/ID/release into out ("" if none). */
static void stamp_read(struct pipeline *p, const char *id, const char *key, char *out, size_t n)
{
	out[0] = 0;
	char *path = xasprintf("%s/releases/%s/release", p->dir, id);
	struct buf b = BUF_INIT;
	char e[64];
	if (buf_read_file(&b, path, 4096, e, sizeof(e)) == 0) {
		size_t kl = strlen(key);
		for (char *l = b.data; l && *l;) {
			char *nl = strchr(l, '\n');
			if (nl)
				*nl = 0;
			if (!strncmp(l, key, kl) && l[kl] == '=')
				snprintf(out, n, "%s", l + kl + 1);
			l = nl ? nl + 1 : NULL;
		}
	}
	buf_release(&b);
	free(path);
}

/* The id `current` points to, or NULL (caller frees). */
static char *current_id(struct pipeline *p)
{
	char *link = xasprintf("%s/current", p->dir);
	char t[PATH_MAX];
	ssize_t n = readlink(link, t, sizeof(t) - 1);
	free(link);
	if (n <= 0)
		return NULL;
	t[n] = 0;
	const char *b = strrchr(t, '/');
	return xstrdup(b ? b + 1 : t);
}

static void rel_free(struct rel *r)
{
	if (!r)
		return;
	supervise_free(r->sv);
	if (r->logfd >= 0)
		close(r->logfd);
	free((char *)r->ho.path);
	free((char *)r->ho.command);
	free((char *)r->ho.cwd);
	strv_free(r->henv, r->nhenv);
	free(r->id);
	free(r);
}

/* --- one program on the loop ------------------------------------------------------- */

static void step_line(struct pipeline *p, const char *s, size_t n)
{
	while (n && (s[n - 1] == '\r'))
		n--;
	char *l = xstrndup(s, n);
	for (char *c = l; *c; c++)
		if ((unsigned char)*c < 0x20 && *c != '\t')
			*c = '?';
	char *c = scrubbed(p, l);
	if (*c)
		snprintf(p->step.last, sizeof(p->step.last), "%s", c);
	if (p->o.on_log && !p->step.capture)
		p->o.on_log(p, p->o.arg, c);
	free(c);
	free(l);
}

static void step_feed(struct pipeline *p, const char *d, size_t n)
{
	if (p->step.capture)
		buf_add(&p->step.out, d, n < 65536 - p->step.out.len ? n : 0);
	buf_add(&p->step.part, d, n);
	char *nl;
	while ((nl = memchr(p->step.part.data, '\n', p->step.part.len))) {
		size_t ll = (size_t)(nl - p->step.part.data);
		step_line(p, p->step.part.data, ll);
		buf_consume(&p->step.part, ll + 1);
	}
	if (p->step.part.len > LINE_MAX_LEN) {
		step_line(p, p->step.part.data, p->step.part.len);
		buf_reset(&p->step.part);
	}
}

/* Read what is there, at most budget bytes (a program that writes without
 * pause must not hold the loop); 1 at end of file or error. */
static int step_drain(struct pipeline *p, size_t budget)
{
	char tmp[4096];
	for (size_t got = 0; got < budget;) {
		ssize_t n = read(p->step.fd, tmp, sizeof(tmp));
		if (n > 0) {
			step_feed(p, tmp, (size_t)n);
			got += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return !(n < 0 && errno == EAGAIN);
	}
	return 0;
}

static void step_close(struct pipeline *p)
{
	if (p->step.fd >= 0) {
		loop_del_fd(p->loop, p->step.fd);
		close(p->step.fd);
		p->step.fd = -1;
	}
}

static void step_on_read(struct loop *loop, long long fd, void *arg, int mask)
{
	struct pipeline *p = arg;
	if (step_drain(p, 65536))
		step_close(p);
}

static void step_on_exit(struct loop *loop, long long pid, void *arg, int status)
{
	struct pipeline *p = arg;
	/* What the program left behind in its group goes with it, so nothing
	 * keeps writing into a release being removed. */
	spawn_kill_group((pid_t)pid, SIGKILL);
	if (p->step.fd >= 0)
		step_drain(p, 1 << 20);
	step_close(p);
	if (p->step.part.len)
		step_line(p, p->step.part.data, p->step.part.len);
	buf_reset(&p->step.part);
	p->step.pid = 0;
	step_done_fn done = p->step.done;
	char last[512];
	snprintf(last, sizeof(last), "%s", p->step.last);
	done(p, status, last);
}

static int step_start(struct pipeline *p, const char *const *argv, const char *const *envp,
		      const char *cwd, int as_user, int capture, step_done_fn done)
{
	struct spawn_opts so = {.argv = argv,
				.envp = envp,
				.cwd = cwd,
				.pgroup = SPAWN_PGROUP,
				.out = SPAWN_PIPE,
				.err = SPAWN_STDOUT,
				.set_ids = as_user && p->o.set_ids,
				.uid = p->o.uid,
				.gid = p->o.gid};
	struct spawn_proc sp;
	char err[512];
	if (spawn_start(&so, &sp, err, sizeof(err)) < 0) {
		fail(p, "%s: %s", stage_names[p->st], err);
		return -1;
	}
	p->step.pid = sp.pid;
	p->step.fd = sp.out_fd;
	p->step.capture = capture;
	p->step.last[0] = 0;
	p->step.done = done;
	buf_reset(&p->step.out);
	buf_reset(&p->step.part);
	if (loop_add_fd(p->loop, sp.out_fd, LOOP_READ, step_on_read, p) < 0 ||
	    loop_child_add(p->loop, sp.pid, step_on_exit, p) < 0) {
		fail(p, "%s: %s", stage_names[p->st], loop_error(p->loop));
		spawn_kill_group(sp.pid, SIGKILL);
		waitpid(sp.pid, NULL, 0);
		step_close(p);
		p->step.pid = 0;
		return -1;
	}
	return 0;
}

/* Reason text for a program that did not exit 0. */
static void step_failed(struct pipeline *p, const char *what, int status, const char *last)
{
	char st[64];
	run_status_str(status, st, sizeof(st));
	if (*last)
		fail(p, "%s: %s: %s", what, st, last);
	else
		fail(p, "%s: %s", what, st);
}

static int status_ok(int status)
{
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* An event for a program's end: cancel wins, then its status. */
static enum ev step_ev(struct pipeline *p, int status, const char *what, const char *last)
{
	if (p->cancelled)
		return EV_CANCEL;
	if (status_ok(status))
		return EV_OK;
	step_failed(p, what, status, last);
	return EV_FAIL;
}

/* --- the forked worker ------------------------------------------------------------------ */

static void worker_on_exit(struct loop *loop, long long pid, void *arg, int status)
{
	struct pipeline *p = arg;
	spawn_kill_group((pid_t)pid, SIGKILL);
	struct buf out = BUF_INIT;
	char tmp[4096];
	for (;;) {
		ssize_t n = read(p->worker.fd, tmp, sizeof(tmp));
		if (n > 0 && out.len < 65536) {
			buf_add(&out, tmp, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
	close(p->worker.fd);
	p->worker.fd = -1;
	p->worker.pid = 0;
	p->worker.done(p, status, out.data);
	buf_release(&out);
}

/* Fork a worker running fn(p, fd) in its own process group; it writes its
 * answer to fd and exits. The worker only calls library code that blocks
 * (no loop, no LMDB) and leaves with _exit. */
static int worker_start(struct pipeline *p, void (*fn)(struct pipeline *p, int fd),
			worker_done_fn done)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		fail(p, "%s: pipe: %s", stage_names[p->st], strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		fail(p, "%s: fork: %s", stage_names[p->st], strerror(errno));
		return -1;
	}
	if (pid == 0) {
		setpgid(0, 0);
		close(pfd[0]);
		fn(p, pfd[1]);
		_exit(0);
	}
	setpgid(pid, pid);
	close(pfd[1]);
	fcntl(pfd[0], F_SETFL, O_NONBLOCK);
	p->worker.pid = pid;
	p->worker.fd = pfd[0];
	p->worker.done = done;
	if (loop_child_add(p->loop, pid, worker_on_exit, p) < 0) {
		fail(p, "%s: %s", stage_names[p->st], loop_error(p->loop));
		spawn_kill_group(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(pfd[0]);
		p->worker.pid = 0;
		p->worker.fd = -1;
		return -1;
	}
	return 0;
}

static void write_all(int fd, const char *s)
{
	size_t n = strlen(s);
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* --- stages ------------------------------------------------------------------------------ */

static void stage_timer_fired(struct loop *loop, long long id, void *arg, int mask)
{
	struct pipeline *p = arg;
	p->t_stage = 0;
	switch (p->st) {
	case PIPELINE_HEALTH: {
		const char *why = p->hc ? health_error(p->hc) : "";
		fail(p, "health: not healthy within %lld ms%s%s", p->stage_ms, *why ? ": " : "",
		     why);
		fire(p, EV_FAIL);
		return;
	}
	case PIPELINE_SWITCH:
		p->proxy_wait = 0;
		fire(p, switch_refused(p, "no answer from the proxy in time"));
		return;
	case PIPELINE_STOP_OLD:
	case PIPELINE_CLEANUP:
		/* KILL did not end it: go on, the group is left to the supervisor. */
		emitf(p, "%s: the release did not stop in time", stage_names[p->st]);
		p->stop_phase = -1;
		poke(p);
		return;
	default:
		break;
	}
	fail(p, "%s: timed out after %lld ms", stage_names[p->st], p->stage_ms);
	if (p->step.pid > 0)
		spawn_kill_group(p->step.pid, SIGKILL);
	else if (p->worker.pid > 0)
		spawn_kill_group(p->worker.pid, SIGKILL);
	else
		fire(p, EV_FAIL);
}

static void stage_deadline(struct pipeline *p, long long ms)
{
	p->stage_ms = ms;
	cancel_timer(p, &p->t_stage);
	p->t_stage = loop_timer_add(p->loop, ms, stage_timer_fired, p);
}

static void stage_begin(struct pipeline *p)
{
	if (p->o.on_stage)
		p->o.on_stage(p, p->o.arg, (int)p->st);
}

static void git_step_done(struct pipeline *p, int status, const char *last);

/* Run one git step (phase 0 clone, 1 checkout, 2 rev-parse). */
static enum ev git_step(struct pipeline *p)
{
	char *path = xasprintf("PATH=%s", p->search_path);
	char *home = xasprintf("HOME=%s", p->home);
	const char *env[] = {path,
			     home,
			     "LC_ALL=C",
			     "GIT_TERMINAL_PROMPT=0",
			     "GCM_INTERACTIVE=never",
			     "GIT_SSH_COMMAND=ssh -o BatchMode=yes",
			     NULL};
	const char *argv[32] = {"git",
				"-c",
				"protocol.allow=never",
				"-c",
				"protocol.https.allow=always",
				"-c",
				"protocol.ssh.allow=always",
				"-c",
				"protocol.file.allow=always"};
	size_t n = 9;
	const char *cwd = p->srcdir;
	struct spec *s = &p->spec;
	if (p->git_phase == 0) {
		cwd = p->rdir;
		argv[n++] = "clone";
		argv[n++] = "-q";
		argv[n++] = "--no-recurse-submodules";
		if (!s->commit) {
			argv[n++] = "--depth";
			argv[n++] = "1";
		} else {
			argv[n++] = "--no-checkout";
		}
		if (s->branch) {
			argv[n++] = "--single-branch";
			argv[n++] = "--branch";
			argv[n++] = s->branch;
		}
		argv[n++] = "--";
		argv[n++] = s->url;
		argv[n++] = "src";
	} else if (p->git_phase == 1) {
		argv[n++] = "checkout";
		argv[n++] = "-q";
		argv[n++] = "--detach";
		argv[n++] = s->commit;
		argv[n++] = "--";
	} else {
		argv[n++] = "rev-parse";
		argv[n++] = "--verify";
		argv[n++] = "HEAD";
	}
	argv[n] = NULL;
	int rc = step_start(p, argv, env, cwd, 1, p->git_phase == 2, git_step_done);
	free(path);
	free(home);
	return rc < 0 ? EV_FAIL : EV_ASYNC;
}

static void git_step_done(struct pipeline *p, int status, const char *last)
{
	static const char *const what[] = {"fetch: git clone", "fetch: git checkout",
					   "fetch: git rev-parse"};
	enum ev ev = step_ev(p, status, what[p->git_phase], last);
	if (ev != EV_OK) {
		fire(p, ev);
		return;
	}
	if (p->git_phase == 2) {
		struct buf *o = &p->step.out;
		while (o->len && (o->data[o->len - 1] == '\n' || o->data[o->len - 1] == '\r'))
			buf_truncate(o, o->len - 1);
		if (o->len != 40 || strspn(o->data, "0123456789abcdef") != 40) {
			fire(p, fail(p, "fetch: git rev-parse: unexpected output"));
			return;
		}
		if (p->spec.commit &&
		    strncasecmp(o->data, p->spec.commit, strlen(p->spec.commit))) {
			fire(p, fail(p, "fetch: git checkout '%s': HEAD is %s", p->spec.commit,
				     o->data));
			return;
		}
		memcpy(p->revision, o->data, 41); /* 40 hex and the NUL */
		emitf(p, "fetch: revision %s", p->revision);
		fire(p, EV_OK);
		return;
	}
	p->git_phase = p->git_phase == 0 && p->spec.commit ? 1 : 2;
	enum ev e = git_step(p);
	if (e != EV_ASYNC)
		fire(p, e);
}

static void untar_work(struct pipeline *p, int fd)
{
	char err[2048];
	int in = open(p->upload, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		snprintf(err, sizeof(err), "E\tfetch: open '%s': %s", p->upload, strerror(errno));
		write_all(fd, err);
		return;
	}
	if (p->o.set_ids &&
	    (setgroups(1, &p->o.gid) < 0 || setgid(p->o.gid) < 0 || setuid(p->o.uid) < 0)) {
		snprintf(err, sizeof(err), "E\tfetch: set user: %s", strerror(errno));
		write_all(fd, err);
		return;
	}
	if (mkdir(p->srcdir, 0755) < 0) {
		snprintf(err, sizeof(err), "E\tfetch: mkdir '%s': %s", p->srcdir, strerror(errno));
		write_all(fd, err);
		return;
	}
	char why[1900];
	if (fetch_untar_fd(in, p->srcdir, NULL, why, sizeof(why)) < 0) {
		snprintf(err, sizeof(err), "E\tfetch: %s", why);
		write_all(fd, err);
		return;
	}
	write_all(fd, "K");
}

static void untar_done(struct pipeline *p, int status, const char *out)
{
	if (p->cancelled) {
		fire(p, EV_CANCEL);
		return;
	}
	if (out[0] == 'K') {
		emitf(p, "fetch: archive unpacked");
		fire(p, EV_OK);
	} else if (out[0] == 'E') {
		fire(p, fail(p, "%s", out + 2));
	} else {
		char st[64];
		run_status_str(status, st, sizeof(st));
		fire(p, fail(p, "fetch: unpack worker %s", st));
	}
}

static void runtime_work(struct pipeline *p, int fd);
static void runtime_done(struct pipeline *p, int status, const char *out);

static enum ev enter_fetch(struct pipeline *p)
{
	if (p->rollback)
		return EV_OK;
	stage_begin(p);
	struct spec *s = &p->spec;
	stage_deadline(p, p->o.fetch_timeout_ms);
	if (s->source == BP_SOURCE_IMAGE) {
		/* An empty src/: the engine's working dir, and what marks a
		 * release as kept. The engine is resolved here, as the
		 * image is fetched by it. */
		if (mkdir(p->srcdir, 0755) < 0 ||
		    (p->o.set_ids && chown(p->srcdir, p->o.uid, p->o.gid) < 0))
			return fail(p, "fetch: mkdir '%s': %s", p->srcdir, strerror(errno));
		emitf(p, "fetch: image '%s'", s->image);
		p->image_phase = 0;
		return worker_start(p, runtime_work, runtime_done) < 0 ? EV_FAIL : EV_ASYNC;
	}
	if (s->source == BP_SOURCE_UPLOAD) {
		if (!p->upload)
			return fail(p, "fetch: source upload: no archive given");
		emitf(p, "fetch: unpacking the uploaded archive");
		return worker_start(p, untar_work, untar_done) < 0 ? EV_FAIL : EV_ASYNC;
	}
	char err[512];
	if (fetch_check_url(s->url, err, sizeof(err)) < 0 ||
	    (s->branch && fetch_check_branch(s->branch, err, sizeof(err)) < 0) ||
	    (s->commit && fetch_check_commit(s->commit, err, sizeof(err)) < 0))
		return fail(p, "fetch: %s", err);
	char *shown = url_shown(s->url);
	emitf(p, "fetch: git clone '%s'%s%s%s%s", shown, s->branch ? " branch " : "",
	      s->branch ? s->branch : "", s->commit ? " commit " : "", s->commit ? s->commit : "");
	free(shown);
	p->git_phase = 0;
	return git_step(p);
}

/* 1 if the program at path is podman (by its name). */
static int is_podman(const char *path)
{
	const char *b = strrchr(path, '/');
	return !strcmp(b ? b + 1 : path, "podman");
}

static enum ev image_step(struct pipeline *p);

static void runtime_work(struct pipeline *p, int fd)
{
	struct runtime *rt = runtime_new(p->search_path);
	struct runtime_pick pk;
	char err[1024], out[1400];
	if (runtime_resolve(rt, p->spec.rt_type, p->spec.rt_version, &pk, err, sizeof(err)) < 0) {
		snprintf(out, sizeof(out), "E\t%s", err);
		write_all(fd, out);
		runtime_free(rt);
		return;
	}
	/* An image: podman when it is installed (and matches the version asked
	 * for), as it needs no daemon. */
	struct runtime_pick pod;
	for (size_t i = 0; p->spec.source == BP_SOURCE_IMAGE && pk.path &&
			   !is_podman(pk.path) && runtime_installed(rt, "docker", i, &pod);
	     i++)
		if (is_podman(pod.path) &&
		    (!p->spec.rt_version || runtime_version_match(p->spec.rt_version, pod.version)))
			pk = pod;
	snprintf(out, sizeof(out), "K\t%s\t%s", pk.version ? pk.version : "",
		 pk.path ? pk.path : "");
	write_all(fd, out);
	runtime_free(rt);
}

/* Program names a blueprint's commands use for each runtime type. */
static const char *const *runtime_names(const char *type)
{
	static const char *const python[] = {"python3", "python", NULL};
	static const char *const nodejs[] = {"node", NULL};
	static const char *const golang[] = {"go", NULL};
	static const char *const other[] = {NULL, NULL};
	static const struct {
		const char *type;
		const char *const *names;
	} t[] = {{"python", python}, {"nodejs", nodejs}, {"golang", golang}};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(type, t[i].type))
			return t[i].names;
	return other;
}

/* PATH for the release's commands: its bin/ first when it has one. */
static void set_path(struct pipeline *p)
{
	char *bin = xasprintf("%s/bin", p->rdir);
	struct stat st;
	char *kv = stat(bin, &st) == 0 && S_ISDIR(st.st_mode)
		       ? xasprintf("PATH=%s:%s", bin, p->search_path)
		       : xasprintf("PATH=%s", p->search_path);
	env_set(p, kv);
	free(kv);
	free(bin);
}

/* releases/ID/bin/NAME -> the resolved program, first in PATH, so that
 * `python3` in build_cmd and run_cmd is the version resolved (say
 * /usr/bin/python3.12 when python3 is 3.11), for rollbacks too. */
static enum ev runtime_link(struct pipeline *p, const char *path)
{
	const char *const *names = runtime_names(p->spec.rt_type);
	const char *const own[2] = {strrchr(path, '/') ? strrchr(path, '/') + 1 : path, NULL};
	if (!names[0])
		names = own;
	char *bin = xasprintf("%s/bin", p->rdir);
	enum ev ev = EV_OK;
	if (mkdir(bin, 0755) < 0 && errno != EEXIST)
		ev = fail(p, "runtime: mkdir '%s': %s", bin, strerror(errno));
	for (size_t i = 0; ev == EV_OK && names[i]; i++) {
		char *l = xasprintf("%s/%s", bin, names[i]);
		if (symlink(path, l) < 0 && errno != EEXIST)
			ev = fail(p, "runtime: symlink '%s': %s", l, strerror(errno));
		free(l);
	}
	free(bin);
	if (ev == EV_OK)
		set_path(p);
	return ev;
}

static void runtime_done(struct pipeline *p, int status, const char *out)
{
	if (p->cancelled) {
		fire(p, EV_CANCEL);
		return;
	}
	if (out[0] == 'K' && out[1] == '\t') {
		const char *v = out + 2;
		size_t vl = strcspn(v, "\t");
		snprintf(p->rtver, sizeof(p->rtver), "%.*s", (int)vl, v);
		const char *path = v[vl] ? v + vl + 1 : "";
		if (!*path) {
			emitf(p, "runtime: %s", p->spec.rt_type);
			fire(p, EV_OK);
			return;
		}
		emitf(p, "%s: %s %s at %s", stage_names[p->st], p->spec.rt_type, p->rtver, path);
		enum ev ev = runtime_link(p, path);
		if (ev == EV_OK && p->st == PIPELINE_FETCH)
			ev = image_step(p);
		if (ev != EV_ASYNC)
			fire(p, ev);
	} else if (out[0] == 'E' && out[1] == '\t') {
		fire(p, fail(p, "%s: %s", stage_names[p->st], out + 2));
	} else {
		char st[64];
		run_status_str(status, st, sizeof(st));
		fire(p, fail(p, "%s: probe worker %s", stage_names[p->st], st));
	}
}

static enum ev enter_runtime(struct pipeline *p)
{
	if (p->rollback || p->spec.source == BP_SOURCE_IMAGE) /* resolved by FETCH */
		return EV_OK;
	stage_begin(p);
	stage_deadline(p, RUNTIME_MS);
	return worker_start(p, runtime_work, runtime_done) < 0 ? EV_FAIL : EV_ASYNC;
}

/* --- source: image --------------------------------------------------------------- */

/* The release's container engine: releases/ID/bin/podman or bin/docker
 * (runtime_link's link to the program resolved), so a rollback or an
 * adopt uses the same one. NULL if neither (caller frees). */
static char *engine_path(struct pipeline *p, int *podman)
{
	static const char *const names[] = {"podman", "docker"};
	struct stat st;
	for (int i = 0; i < 2; i++) {
		char *e = xasprintf("%s/bin/%s", p->rdir, names[i]);
		if (lstat(e, &st) == 0) {
			*podman = i == 0;
			return e;
		}
		free(e);
	}
	return NULL;
}

static void image_step_done(struct pipeline *p, int status, const char *last);

/* One engine call of FETCH for an image (phase 0: inspect, 1: pull, 2:
 * inspect again), by argv, without the service's environment. */
static enum ev image_step(struct pipeline *p)
{
	int podman;
	char *engine = engine_path(p, &podman);
	if (!engine)
		return fail(p, "fetch: no container engine linked in '%s/bin'", p->rdir);
	char *path = xasprintf("PATH=%s", p->search_path);
	char *home = xasprintf("HOME=%s", p->home);
	const char *env[] = {path, home, "LC_ALL=C", NULL};
	const char *inspect[] = {engine, "image", "inspect", "--format", "{{.Id}}", p->spec.image,
				 NULL};
	const char *pull[] = {engine, "pull", p->spec.image, NULL};
	int rc = step_start(p, p->image_phase == 1 ? pull : inspect, env, p->rdir, 1,
			    p->image_phase != 1, image_step_done);
	free(engine);
	free(path);
	free(home);
	return rc < 0 ? EV_FAIL : EV_ASYNC;
}

static void image_step_done(struct pipeline *p, int status, const char *last)
{
	const char *img = p->spec.image;
	if (p->image_phase == 0 && !p->cancelled && !status_ok(status)) {
		/* Not here (or the engine cannot answer: the pull then says why). */
		emitf(p, "fetch: image '%s' not present%s%s: pulling", img, *last ? ": " : "",
		      last);
		p->image_phase = 1;
		enum ev e = image_step(p);
		if (e != EV_ASYNC)
			fire(p, e);
		return;
	}
	char what[300];
	snprintf(what, sizeof(what), "fetch: %s '%s'",
		 p->image_phase == 1 ? "pull" : "image inspect", img);
	enum ev ev = step_ev(p, status, what, last);
	if (ev != EV_OK) {
		fire(p, ev);
		return;
	}
	if (p->image_phase == 1) {
		p->image_phase = 2;
		enum ev e = image_step(p);
		if (e != EV_ASYNC)
			fire(p, e);
		return;
	}
	/* The id: 64 hex, "sha256:" first for docker. */
	struct buf *o = &p->step.out;
	while (o->len && (o->data[o->len - 1] == '\n' || o->data[o->len - 1] == '\r'))
		buf_truncate(o, o->len - 1);
	if (o->len < 12 || o->len >= sizeof(p->revision) ||
	    strspn(o->data, "0123456789abcdefsha:") != o->len) {
		fire(p, fail(p, "fetch: image inspect '%s': unexpected output", img));
		return;
	}
	memcpy(p->revision, o->data, o->len + 1);
	emitf(p, "fetch: image '%s' id %s", img, p->revision);
	fire(p, EV_OK);
}

/* The working dir must be a directory of the release (a symlink out of the
 * source is refused by realpath's prefix check). */
static enum ev check_wdir(struct pipeline *p)
{
	char rp[PATH_MAX], rs[PATH_MAX];
	struct stat st;
	if (!realpath(p->wdir, rp) || !realpath(p->srcdir, rs) || stat(rp, &st) < 0 ||
	    !S_ISDIR(st.st_mode))
		return fail(p, "%s: working_dir '%s': not a directory of the source",
			    stage_names[p->st], p->spec.working_dir ? p->spec.working_dir : ".");
	size_t rl = strlen(rs);
	if (strncmp(rp, rs, rl) || (rp[rl] && rp[rl] != '/'))
		return fail(p, "%s: working_dir '%s': outside the source", stage_names[p->st],
			    p->spec.working_dir);
	return EV_OK;
}

static void cmd_done(struct pipeline *p, int status, const char *last)
{
	char what[64];
	snprintf(what, sizeof(what), "%s", stage_names[p->st]);
	fire(p, step_ev(p, status, what, last));
}

static enum ev run_cmd_step(struct pipeline *p, const char *cmd, long long deadline)
{
	if (check_wdir(p) != EV_OK)
		return EV_FAIL;
	stage_begin(p);
	stage_deadline(p, deadline);
	emitf(p, "%s: $ %s", stage_names[p->st], cmd);
	const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	return step_start(p, argv, (const char *const *)p->env, p->wdir, 1, 0, cmd_done) < 0
		   ? EV_FAIL
		   : EV_ASYNC;
}

static enum ev enter_build(struct pipeline *p)
{
	if (p->rollback || !p->spec.build_cmd)
		return EV_OK;
	return run_cmd_step(p, p->spec.build_cmd,
			    p->spec.timeout_ms > 0 ? p->spec.timeout_ms : p->o.build_timeout_ms);
}

static enum ev enter_pre_deploy(struct pipeline *p)
{
	if (p->rollback || !p->spec.pre_deploy)
		return EV_OK;
	return run_cmd_step(p, p->spec.pre_deploy, p->o.hook_timeout_ms);
}

/* The serving release changed (state of its supervisor, switch, adopt,
 * forgotten after a stop): tell the caller. */
static void serving_changed(struct pipeline *p)
{
	if (p->o.on_service)
		p->o.on_service(p, p->o.arg);
}

static void rel_on_state(struct supervise *sv, void *arg, int what)
{
	struct rel *r = arg;
	(void)sv;
	(void)what;
	if (r == r->p->cur)
		serving_changed(r->p);
	poke(r->p);
}

/* Keep in r what its live health check needs (pipeline_health): web, the
 * blueprint's check or TCP on PORT; a worker, its command check. */
static void rel_keep_health(struct pipeline *p, struct rel *r)
{
	struct spec *s = &p->spec;
	if (s->type != BP_TYPE_WEB && !(s->type == BP_TYPE_WORKER && s->hkind == BP_HEALTH_COMMAND))
		return;
	r->probe = 1;
	r->ho.kind = s->hkind == BP_HEALTH_HTTP	     ? HEALTH_HTTP
		     : s->hkind == BP_HEALTH_COMMAND ? HEALTH_COMMAND
						     : HEALTH_TCP;
	r->ho.port = r->port;
	r->ho.path = dupn(s->hpath);
	r->ho.command = dupn(s->hcommand);
	r->ho.cwd = dupn(p->wdir);
	r->henv = xcalloc(p->nenv + 1, sizeof(*r->henv));
	for (size_t i = 0; i < p->nenv; i++)
		r->henv[i] = xstrdup(p->env[i]);
	r->nhenv = p->nenv;
	r->ho.envp = (const char *const *)r->henv;
	r->ho.set_ids = p->o.set_ids;
	r->ho.uid = p->o.uid;
	r->ho.gid = p->o.gid;
	r->ho.interval_ms = s->hinterval;
	r->ho.timeout_ms = s->htimeout;
	r->ho.start_period_ms = s->hstart;
	r->ho.retries = s->hretries;
}

/* The service of an image: `ENGINE run ... IMAGE [/bin/sh -c run_cmd]`.
 * Values reach the container only through the engine's environment (`-e
 * NAME` copies NAME from it), never argv. The container shares the host's
 * network, so PORT, health checks and the proxy work as for a process.
 * TERM to the engine's group reaches the container (the engine proxies
 * signals) and --rm removes it. A KILLed engine leaves its container
 * behind: podman's --replace removes it at the next start; docker has no
 * such option, and the next start of that release fails on the name until
 * `docker rm -f dployr-SVC-RELEASE`. Resources: the cgroup limits apply to
 * the engine process, not to the container. NULL when the release has no
 * engine; else the caller frees the array, and the n strings in own[]
 * (own: an array of at least nenv + 8) with strv_free. */
static const char **image_argv(struct pipeline *p, char **own, size_t *n_own)
{
	int podman;
	size_t no = 0, n = 0;
	char *engine = engine_path(p, &podman);
	if (!engine)
		return NULL;
	const char **a = xcalloc(p->nenv * 2 + 24, sizeof(*a));
	a[n++] = own[no++] = engine;
	if (podman && cgroup_detect(p->cgroup_root ? p->cgroup_root : "/sys/fs/cgroup") !=
			  CGROUP_V2) {
		/* crun (podman's usual runtime) refuses cgroup v1 and hybrid
		 * hierarchies; runc handles them. */
		a[n++] = "--runtime";
		a[n++] = "runc";
	}
	a[n++] = "run";
	a[n++] = "--rm";
	/* An init as PID 1: the service is not written to be PID 1 (which
	 * ignores a TERM it has no handler for: a stop would wait out the
	 * grace, and the KILL would leave the container running). */
	a[n++] = "--init";
	a[n++] = "--name";
	a[n++] = own[no++] = xasprintf("dployr-%s-%s", p->name, p->id);
	if (podman) {
		a[n++] = "--replace";
		/* podman asks runc for its own defaults (nofile 1048576, nproc
		 * as high), which a host that caps them refuses ("error
		 * setting rlimits": seen with nofile above the hard limit and
		 * nproc 96365): ask for the agent's own soft limits instead,
		 * nproc at most 32768 (accepted there). */
		struct rlimit nf = {1024, 1024}, np = {4096, 4096};
		getrlimit(RLIMIT_NOFILE, &nf);
		getrlimit(RLIMIT_NPROC, &np);
		unsigned long long cnf = nf.rlim_cur, cnp = np.rlim_cur > 32768 ? 32768 : np.rlim_cur;
		a[n++] = "--ulimit";
		a[n++] = own[no++] = xasprintf("nofile=%llu:%llu", cnf, cnf);
		a[n++] = "--ulimit";
		a[n++] = own[no++] = xasprintf("nproc=%llu:%llu", cnp, cnp);
	}
	a[n++] = "--network";
	a[n++] = "host";
	for (size_t i = 0; i < p->nenv; i++) {
		const char *kv = p->env[i];
		if (!strncmp(kv, "PATH=", 5) || !strncmp(kv, "HOME=", 5))
			continue; /* the host's, meaningless in the image */
		a[n++] = "-e";
		a[n++] = own[no++] = xstrndup(kv, strcspn(kv, "="));
	}
	a[n++] = p->spec.image;
	if (p->spec.run_cmd) {
		a[n++] = "/bin/sh";
		a[n++] = "-c";
		a[n++] = p->spec.run_cmd;
	}
	a[n] = NULL;
	*n_own = no;
	return a;
}

/* Give r (of the release being loaded: p->id, p->spec, p->env) its
 * supervisor, not started: output to logs/ID.log, PORT=port for web. 0, or
 * -1 with a reason in err. */
static int rel_supervise(struct pipeline *p, struct rel *r, int port, char *err, size_t errlen)
{
	struct spec *s = &p->spec;
	char *logdir = xasprintf("%s/logs", p->dir);
	mkdir(logdir, 0750);
	char *logpath = xasprintf("%s/%s.log", logdir, p->id);
	free(logdir);
	r->logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (r->logfd < 0) {
		snprintf(err, errlen, "open '%s': %s", logpath, strerror(errno));
		free(logpath);
		return -1;
	}
	free(logpath);
	if (p->o.set_ids)
		(void)!fchown(r->logfd, p->o.uid, p->o.gid);
	if (s->type == BP_TYPE_WEB) {
		r->port = port;
		char portkv[32];
		snprintf(portkv, sizeof(portkv), "PORT=%d", port);
		env_set(p, portkv);
	}
	const char *sh[] = {"/bin/sh", "-c", s->run_cmd, NULL};
	const char **argv = sh;
	char **own = NULL;
	size_t nown = 0;
	if (s->source == BP_SOURCE_IMAGE) {
		own = xcalloc(p->nenv + 8, sizeof(*own));
		argv = image_argv(p, own, &nown);
		if (!argv) {
			snprintf(err, errlen, "no container engine linked in '%s/bin'", p->rdir);
			free(own);
			return -1;
		}
	}
	char *svname = xasprintf("%s@%s", p->name, p->id);
	char *cgpath = p->cgroup_root ? xasprintf("dployr/%s/%s", p->name, p->id) : NULL;
	struct supervise_opts so = {
	    .name = svname,
	    .argv = argv,
	    .envp = (const char *const *)p->env,
	    .cwd = p->wdir,
	    .set_ids = p->o.set_ids,
	    .uid = p->o.uid,
	    .gid = p->o.gid,
	    .out = SPAWN_FD,
	    .out_fd = r->logfd,
	    .err = SPAWN_STDOUT,
	    .restart = s->restart == BP_RESTART_ALWAYS	     ? SUPERVISE_ALWAYS
		       : s->restart == BP_RESTART_ON_FAILURE ? SUPERVISE_ON_FAILURE
							     : SUPERVISE_NEVER,
	    .stop_grace_ms = p->o.stop_grace_ms,
	    .timeout_ms = s->type == BP_TYPE_JOB ? s->timeout_ms : 0,
	    .schedule = s->type == BP_TYPE_JOB ? s->schedule : NULL,
	    .cgroup_root = p->cgroup_root,
	    .cgroup_path = cgpath,
	    .limits = s->limits,
	    .on_state = rel_on_state,
	    .arg = r,
	};
	if (r->port) {
		so.ports[0] = r->port;
		so.nports = 1;
	}
	r->sv = supervise_new(p->loop, &so, err, errlen);
	if (argv != sh) {
		free(argv);
		strv_free(own, nown);
	}
	free(svname);
	free(cgpath);
	if (r->sv)
		rel_keep_health(p, r);
	return r->sv ? 0 : -1;
}

static struct rel *rel_new(struct pipeline *p)
{
	struct rel *r = xcalloc(1, sizeof(*r));
	r->p = p;
	r->id = xstrdup(p->id);
	r->type = p->spec.type;
	r->logfd = -1;
	return r;
}

static enum ev enter_start(struct pipeline *p)
{
	struct spec *s = &p->spec;
	if (check_wdir(p) != EV_OK)
		return EV_FAIL;
	p->nrel = rel_new(p);
	if (s->type == BP_TYPE_STATIC) {
		char *root = xasprintf("%s/%s", p->wdir, s->static_dir ? s->static_dir : ".");
		struct stat st;
		int ok = stat(root, &st) == 0 && S_ISDIR(st.st_mode);
		free(root);
		if (!ok)
			return fail(p, "start: static_dir '%s': not a directory after the build",
				    s->static_dir ? s->static_dir : ".");
		return EV_OK;
	}
	if (!s->run_cmd && s->source != BP_SOURCE_IMAGE)
		return fail(p, "start: no run_cmd");
	stage_begin(p);
	int port = 0;
	if (s->type == BP_TYPE_WEB && !(port = pick_port()))
		return fail(p, "start: no free port on 127.0.0.1");
	char err[512];
	if (rel_supervise(p, p->nrel, port, err, sizeof(err)) < 0)
		return fail(p, "start: %s", err);
	const char *cmd = s->run_cmd ? s->run_cmd : "(the image's command)";
	char *what = s->source == BP_SOURCE_IMAGE ? xasprintf("image '%s': %s", s->image, cmd)
						  : xasprintf("$ %s", cmd);
	if (port)
		emitf(p, "start: %s with PORT=%d", what, port);
	else
		emitf(p, "start: %s", what);
	free(what);
	supervise_start(p->nrel->sv);
	enum supervise_state st = supervise_state(p->nrel->sv);
	if (st != SUPERVISE_RUNNING && st != SUPERVISE_WAITING) {
		const char *why = supervise_error(p->nrel->sv);
		return fail(p, "start: %s", *why ? why : "the service did not start");
	}
	return EV_OK;
}

static void settle_fired(struct loop *loop, long long id, void *arg, int mask)
{
	struct pipeline *p = arg;
	p->t_settle = 0;
	p->settled = 1;
	poke(p);
}

static void health_changed(struct health *h, void *arg, int status)
{
	poke(arg);
}

static enum ev enter_health(struct pipeline *p)
{
	struct spec *s = &p->spec;
	if (s->type == BP_TYPE_STATIC || (s->type == BP_TYPE_JOB && s->schedule))
		return EV_OK;
	stage_begin(p);
	p->settled = 0;
	if (s->type == BP_TYPE_JOB) {
		stage_deadline(p, s->timeout_ms > 0 ? s->timeout_ms + STOP_SLACK
						    : p->o.build_timeout_ms);
		emitf(p, "health: waiting for the job to finish");
		poke(p);
		return EV_ASYNC;
	}
	int use_check = s->type == BP_TYPE_WEB || s->hkind == BP_HEALTH_COMMAND;
	if (!use_check) {
		stage_deadline(p, p->o.settle_ms + STOP_SLACK);
		p->t_settle = loop_timer_add(p->loop, p->o.settle_ms, settle_fired, p);
		emitf(p, "health: still running after %lld ms is healthy", p->o.settle_ms);
		poke(p);
		return EV_ASYNC;
	}
	long long bp_interval = s->hinterval > 0 ? s->hinterval : BP_HEALTH_INTERVAL_MS;
	long long interval = bp_interval;
	/* Probe fast so a deploy is switched as soon as the app answers; a
	 * command check forks a shell, so at most every 500 ms. */
	long long fastest = s->hkind == BP_HEALTH_COMMAND && p->o.gate_interval_ms < 500
				? 500
				: p->o.gate_interval_ms;
	if (interval > fastest)
		interval = fastest;
	/* The gate gives up as the live check would call the service
	 * unhealthy: after the start period, `retries` intervals of the
	 * blueprint's without a pass (at least GATE_MIN_MS, at most
	 * health_timeout_ms). */
	long long give_up = (s->hretries > 0 ? s->hretries : BP_HEALTH_RETRIES) * bp_interval;
	if (give_up < GATE_MIN_MS)
		give_up = GATE_MIN_MS;
	if (give_up > p->o.health_timeout_ms)
		give_up = p->o.health_timeout_ms;
	struct health_opts ho = {.port = p->nrel->port,
				 .path = s->hpath,
				 .command = s->hcommand,
				 .envp = (const char *const *)p->env,
				 .cwd = p->wdir,
				 .set_ids = p->o.set_ids,
				 .uid = p->o.uid,
				 .gid = p->o.gid,
				 .interval_ms = interval,
				 .timeout_ms = s->htimeout,
				 .start_period_ms = s->hstart,
				 .retries = s->hretries,
				 .on_change = health_changed,
				 .arg = p};
	const char *what = "tcp";
	if (s->hkind == BP_HEALTH_HTTP) {
		ho.kind = HEALTH_HTTP;
		what = "http";
	} else if (s->hkind == BP_HEALTH_COMMAND) {
		ho.kind = HEALTH_COMMAND;
		what = "command";
	} else {
		ho.kind = HEALTH_TCP;
	}
	char err[512];
	p->hc = health_new(p->loop, &ho, err, sizeof(err));
	if (!p->hc)
		return fail(p, "health: %s", err);
	emitf(p, "health: %s check%s%s, deadline %lld ms", what, s->hpath ? " " : "",
	      s->hpath ? s->hpath : "", give_up + s->hstart);
	/* The start period is the blueprint's own allowance for booting. */
	stage_deadline(p, give_up + s->hstart);
	health_start(p->hc);
	return EV_ASYNC;
}

/* The last lines of the release's output into the deploy log. */
static void tail_output(struct pipeline *p, struct rel *r)
{
	if (!r || r->logfd < 0)
		return;
	char *path = xasprintf("%s/logs/%s.log", p->dir, r->id);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return;
	off_t end = lseek(fd, 0, SEEK_END);
	off_t from = end > TAIL_BYTES ? end - TAIL_BYTES : 0;
	char b[TAIL_BYTES + 1];
	ssize_t n = pread(fd, b, TAIL_BYTES, from);
	close(fd);
	if (n <= 0)
		return;
	b[n] = 0;
	char *s = b;
	if (from > 0 && strchr(s, '\n'))
		s = strchr(s, '\n') + 1;
	for (char *l = s; l && *l;) {
		char *nl = strchr(l, '\n');
		if (nl)
			*nl = 0;
		for (char *c = l; *c; c++)
			if ((unsigned char)*c < 0x20 && *c != '\t')
				*c = '?';
		emitf(p, "output: %s", l);
		l = nl ? nl + 1 : NULL;
	}
}

static enum ev exit_reason(struct pipeline *p, const char *pre, const char *post)
{
	struct supervise *sv = p->nrel->sv;
	int status = supervise_last_status(sv);
	char st[128];
	if (*supervise_error(sv))
		snprintf(st, sizeof(st), "%s", supervise_error(sv));
	else if (status != -1)
		run_status_str(status, st, sizeof(st));
	else
		snprintf(st, sizeof(st), "ended");
	tail_output(p, p->nrel);
	return fail(p, "%s%s%s", pre, st, post);
}

static enum ev eval_health(struct pipeline *p)
{
	struct spec *s = &p->spec;
	enum supervise_state st = supervise_state(p->nrel->sv);
	if (s->type == BP_TYPE_JOB) {
		if (st == SUPERVISE_EXITED) {
			emitf(p, "health: the job exited with status 0");
			return EV_OK;
		}
		if (st == SUPERVISE_FAILED || st == SUPERVISE_STOPPED)
			return exit_reason(p, "health: the job ", "");
		return EV_ASYNC;
	}
	if (st != SUPERVISE_RUNNING)
		return exit_reason(p, "health: the service ", " before it was healthy");
	if (p->hc && health_status(p->hc) == HEALTH_HEALTHY) {
		emitf(p, "health: healthy");
		return EV_OK;
	}
	if (!p->hc && p->settled) {
		emitf(p, "health: running");
		return EV_OK;
	}
	return EV_ASYNC;
}

static void rm_done(struct pipeline *p, int status, const char *last);

static enum ev remove_dirs(struct pipeline *p, char **dirs, size_t n)
{
	const char **argv = xcalloc(n + 4, sizeof(*argv));
	argv[0] = "rm";
	argv[1] = "-rf";
	argv[2] = "--";
	for (size_t i = 0; i < n; i++)
		argv[3 + i] = dirs[i];
	char *path = xasprintf("PATH=%s", DEF_PATH);
	const char *env[] = {path, NULL};
	int rc = step_start(p, argv, env, "/", 0, 0, rm_done);
	free(path);
	free(argv);
	return rc < 0 ? EV_FAIL : EV_ASYNC;
}

/* The second half of SWITCH, once the proxy serves the new release:
 * `current` renamed to it. */
static enum ev switch_commit(struct pipeline *p)
{
	char *link = xasprintf("%s/current", p->dir);
	char *tmp = xasprintf("%s/.current.tmp", p->dir);
	enum ev ev = EV_OK;
	if (rename(tmp, link) < 0) {
		ev = fail(p, "switch: rename '%s': %s", link, strerror(errno));
		unlink(tmp);
		goto out;
	}
	stamp_write(p, p->id, p->revision, p->rtver);
	emitf(p, "switch: current is %s", p->id);
	p->switched = 1;
	p->stopping_cur = 0; /* a pipeline_stop of the old release: STOP_OLD does it */
	p->old = p->cur;
	p->cur = p->nrel;
	p->nrel = NULL;
	serving_changed(p);
out:
	free(link);
	free(tmp);
	return ev;
}

/* The proxy refused the new release: SWITCH fails, `current` unchanged. */
static enum ev switch_refused(struct pipeline *p, const char *why)
{
	char *tmp = xasprintf("%s/.current.tmp", p->dir);
	unlink(tmp);
	free(tmp);
	if (!why || !*why)
		why = "failed";
	/* the proxy's own messages say "proxy: ..." already */
	return fail(p, "switch: %s%s", strncmp(why, "proxy: ", 7) ? "proxy: " : "", why);
}

static enum ev enter_switch(struct pipeline *p)
{
	stage_begin(p);
	struct spec *s = &p->spec;
	char *tmp = xasprintf("%s/.current.tmp", p->dir);
	char *target = xasprintf("releases/%s", p->id);
	free(p->prev_id);
	p->prev_id = current_id(p);
	unlink(tmp);
	enum ev ev = EV_OK;
	if (symlink(target, tmp) < 0) {
		ev = fail(p, "switch: symlink '%s': %s", tmp, strerror(errno));
		goto out;
	}
	if (p->o.on_proxy && (s->type == BP_TYPE_WEB || s->type == BP_TYPE_STATIC)) {
		char *root = NULL, rp[PATH_MAX];
		if (s->type == BP_TYPE_STATIC) {
			char *r = xasprintf("%s/%s", p->wdir, s->static_dir ? s->static_dir : ".");
			root = xstrdup(realpath(r, rp) ? rp : r);
			free(r);
		}
		struct pipeline_target t = {
		    .release = p->id, .type = s->type, .port = p->nrel->port, .root = root};
		char err[512] = "";
		p->proxy_wait = 1;
		p->proxy_answer = 0;
		buf_reset(&p->proxy_reason);
		int rc = p->o.on_proxy(p, p->o.arg, &t, err, sizeof(err));
		free(root);
		if (rc < 0) {
			p->proxy_wait = 0;
			ev = switch_refused(p, err);
			goto out;
		}
		if (rc > 0) {
			/* pipeline_proxy_done answers (maybe already did); poke_fired acts */
			stage_deadline(p, p->o.switch_timeout_ms);
			poke(p);
			ev = EV_ASYNC;
			goto out;
		}
		p->proxy_wait = 0;
	}
	ev = switch_commit(p);
out:
	free(tmp);
	free(target);
	return ev;
}

static int stopped(struct supervise *sv)
{
	enum supervise_state st = supervise_state(sv);
	return st == SUPERVISE_STOPPED || st == SUPERVISE_EXITED || st == SUPERVISE_FAILED;
}

static enum ev enter_stop_old(struct pipeline *p)
{
	if (!p->old)
		return EV_OK;
	if (!p->old->sv) {
		rel_free(p->old);
		p->old = NULL;
		return EV_OK;
	}
	stage_begin(p);
	emitf(p, "stop_old: stopping %s", p->old->id);
	p->stop_phase = 0;
	stage_deadline(p, p->o.stop_grace_ms + STOP_SLACK);
	supervise_stop(p->old->sv);
	poke(p);
	return EV_ASYNC;
}

static enum ev finish_stop_old(struct pipeline *p)
{
	char err[256];
	if (p->stop_phase >= 0 && supervise_remove_cgroup(p->old->sv, err, sizeof(err)) < 0)
		emitf(p, "stop_old: %s", err);
	emitf(p, "stop_old: %s stopped", p->old->id);
	rel_free(p->old);
	p->old = NULL;
	return EV_OK;
}

static void hook_post_done(struct pipeline *p, int status, const char *last)
{
	if (!status_ok(status)) {
		char st[64];
		run_status_str(status, st, sizeof(st));
		emitf(p, "warning: post_deploy %s%s%s (the release stays)", st, *last ? ": " : "",
		      last);
		fire(p, EV_FAIL);
		return;
	}
	fire(p, EV_OK);
}

static enum ev enter_post_deploy(struct pipeline *p)
{
	if (p->rollback || !p->spec.post_deploy)
		return EV_OK;
	stage_begin(p);
	stage_deadline(p, p->o.hook_timeout_ms);
	emitf(p, "post_deploy: $ %s", p->spec.post_deploy);
	const char *argv[] = {"/bin/sh", "-c", p->spec.post_deploy, NULL};
	if (step_start(p, argv, (const char *const *)p->env, p->wdir, 1, 0, hook_post_done) < 0) {
		emitf(p, "warning: %s", p->reason.data);
		buf_reset(&p->reason);
		return EV_FAIL;
	}
	return EV_ASYNC;
}

struct aged {
	char *id;
	long long at;
};

static int aged_cmp(const void *a, const void *b)
{
	const struct aged *x = a, *y = b;
	return x->at < y->at ? 1 : x->at > y->at ? -1 : strcmp(x->id, y->id);
}

static enum ev enter_prune(struct pipeline *p)
{
	if (p->rollback)
		return EV_OK;
	char *rd = xasprintf("%s/releases", p->dir);
	DIR *d = opendir(rd);
	if (!d) {
		free(rd);
		return EV_OK;
	}
	struct aged *v = NULL;
	size_t n = 0, cap = 0;
	int kept = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || !id_ok(e->d_name))
			continue;
		if ((p->cur && !strcmp(e->d_name, p->cur->id)) ||
		    (p->prev_id && !strcmp(e->d_name, p->prev_id))) {
			kept++;
			continue;
		}
		char at[32];
		stamp_read(p, e->d_name, "activated", at, sizeof(at));
		XGROW(v, cap, n + 1);
		v[n].id = xstrdup(e->d_name);
		v[n].at = atoll(at);
		n++;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), aged_cmp);
	size_t room = p->o.keep > kept ? (size_t)(p->o.keep - kept) : 0;
	char **dirs = NULL;
	size_t nd = 0;
	for (size_t i = room; i < n && nd < PRUNE_MAX; i++) {
		dirs = xrealloc(dirs, (nd + 1) * sizeof(*dirs));
		dirs[nd++] = xasprintf("%s/%s", rd, v[i].id);
		emitf(p, "prune: removing release %s", v[i].id);
		char *lp = xasprintf("%s/logs/%s.log", p->dir, v[i].id);
		unlink(lp);
		free(lp);
	}
	for (size_t i = 0; i < n; i++)
		free(v[i].id);
	free(v);
	free(rd);
	enum ev ev = EV_OK;
	if (nd) {
		stage_begin(p);
		stage_deadline(p, p->o.hook_timeout_ms);
		ev = remove_dirs(p, dirs, nd);
	}
	strv_free(dirs, nd);
	return ev;
}

static enum ev cleanup_next(struct pipeline *p)
{
	if (p->nrel && p->nrel->sv && p->stop_phase >= 0 && !stopped(p->nrel->sv))
		return EV_ASYNC;
	if (p->nrel) {
		cancel_timer(p, &p->t_stage);
		char err[256];
		if (p->nrel->sv && p->stop_phase >= 0 &&
		    supervise_remove_cgroup(p->nrel->sv, err, sizeof(err)) < 0)
			emitf(p, "cleanup: %s", err);
		rel_free(p->nrel);
		p->nrel = NULL;
	}
	if (p->rollback)
		return EV_OK;
	struct stat st;
	if (lstat(p->rdir, &st) < 0)
		return EV_OK;
	stage_deadline(p, p->o.hook_timeout_ms);
	emitf(p, "cleanup: removing release %s", p->id);
	return remove_dirs(p, &p->rdir, 1);
}

static enum ev enter_cleanup(struct pipeline *p)
{
	stage_begin(p);
	health_free(p->hc);
	p->hc = NULL;
	cancel_timer(p, &p->t_settle);
	emitf(p, "cleanup: %s at %s", p->cancelled ? "cancelled" : "failed",
	      stage_names[p->failed_stage]);
	p->stop_phase = 0;
	if (p->nrel && p->nrel->sv && !stopped(p->nrel->sv)) {
		emitf(p, "cleanup: stopping the new release");
		stage_deadline(p, p->o.stop_grace_ms + STOP_SLACK);
		supervise_stop(p->nrel->sv);
	}
	return cleanup_next(p);
}

static void rm_done(struct pipeline *p, int status, const char *last)
{
	if (!status_ok(status))
		emitf(p, "warning: rm: %s", last);
	fire(p, EV_OK);
}

static void reset(struct pipeline *p)
{
	cancel_timer(p, &p->t_stage);
	cancel_timer(p, &p->t_settle);
	cancel_timer(p, &p->t_poke);
	cancel_timer(p, &p->t_kick);
	health_free(p->hc);
	p->hc = NULL;
	spec_release(&p->spec);
	strv_free(p->env, p->nenv);
	p->env = NULL;
	p->nenv = 0;
	strv_free(p->scrub, p->nscrub);
	p->scrub = NULL;
	p->nscrub = 0;
	char **f[] = {&p->id, &p->rdir, &p->srcdir, &p->wdir, &p->upload};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		free(*f[i]);
		*f[i] = NULL;
	}
	buf_reset(&p->reason);
	p->st = PIPELINE_IDLE;
	p->rollback = p->cancelled = p->switched = 0;
	p->proxy_wait = p->proxy_answer = 0;
	p->revision[0] = p->rtver[0] = 0;
}

static enum ev enter_end(struct pipeline *p)
{
	struct pipeline_result r = {0};
	if (p->switched)
		r.outcome = PIPELINE_DONE;
	else
		r.outcome = p->cancelled ? PIPELINE_CANCELLED : PIPELINE_ERROR;
	r.stage = r.outcome == PIPELINE_DONE ? PIPELINE_END : p->failed_stage;
	char *why = p->reason.len ? xstrdup(p->reason.data)
				  : xasprintf("cancelled at %s", stage_names[p->failed_stage]);
	char *reason = scrubbed(p, r.outcome == PIPELINE_DONE ? "" : why);
	free(why);
	char *id = xstrdup(p->id);
	char rev[sizeof(p->revision)], rtv[64];
	memcpy(rev, p->revision, sizeof(rev));
	memcpy(rtv, p->rtver, sizeof(rtv));
	r.reason = reason;
	r.release = id;
	r.revision = rev;
	r.runtime_version = rtv;
	if (r.outcome == PIPELINE_DONE && p->cur) {
		struct supervise_record rec;
		if (p->cur->sv && supervise_record(p->cur->sv, &rec) == 0)
			r.pid = rec.pid;
		r.port = p->cur->port;
	}
	if (r.outcome == PIPELINE_ERROR)
		emitf(p, "error: %s", reason);
	else
		emitf(p, "%s", r.outcome == PIPELINE_DONE ? "done" : reason);
	log_info("pipeline", "deploy ended", "service", p->name, "release", id, "outcome",
		 pipeline_outcome_name(r.outcome), NULL);
	reset(p);
	if (p->o.on_done)
		p->o.on_done(p, p->o.arg, &r);
	free(reason);
	free(id);
	return EV_ASYNC;
}

static enum ev enter(struct pipeline *p, enum pipeline_stage st)
{
	switch (st) {
	case PIPELINE_FETCH:
		return enter_fetch(p);
	case PIPELINE_RUNTIME:
		return enter_runtime(p);
	case PIPELINE_BUILD:
		return enter_build(p);
	case PIPELINE_PRE_DEPLOY:
		return enter_pre_deploy(p);
	case PIPELINE_START:
		return enter_start(p);
	case PIPELINE_HEALTH:
		return enter_health(p);
	case PIPELINE_SWITCH:
		return enter_switch(p);
	case PIPELINE_STOP_OLD:
		return enter_stop_old(p);
	case PIPELINE_POST_DEPLOY:
		return enter_post_deploy(p);
	case PIPELINE_PRUNE:
		return enter_prune(p);
	case PIPELINE_CLEANUP:
		return enter_cleanup(p);
	case PIPELINE_END:
		return enter_end(p);
	default:
		return EV_ASYNC;
	}
}

static void fire(struct pipeline *p, enum ev ev)
{
	while (ev != EV_ASYNC && p->st != PIPELINE_IDLE) {
		enum pipeline_stage to = transitions[p->st][ev];
		log_debug("pipeline", "transition", "service", p->name, "from", stage_names[p->st],
			  "event", ev_names[ev], "to", to ? stage_names[to] : "(ignored)", NULL);
		if (!to)
			return;
		if (to == PIPELINE_CLEANUP)
			p->failed_stage = p->st;
		cancel_timer(p, &p->t_stage);
		p->st = to;
		ev = enter(p, to);
	}
}

/* Re-evaluate what the current stage waits for, from the loop (never from
 * inside a supervise or health callback). */
static void poke_fired(struct loop *loop, long long id, void *arg, int mask)
{
	struct pipeline *p = arg;
	p->t_poke = 0;
	switch (p->st) {
	case PIPELINE_HEALTH:
		fire(p, p->cancelled ? EV_CANCEL : eval_health(p));
		break;
	case PIPELINE_START:
		if (p->cancelled)
			fire(p, EV_CANCEL);
		break;
	case PIPELINE_SWITCH:
		if (p->proxy_wait && p->proxy_answer) {
			int ok = p->proxy_answer > 0;
			p->proxy_wait = 0;
			p->proxy_answer = 0;
			cancel_timer(p, &p->t_stage);
			fire(p, ok ? switch_commit(p) : switch_refused(p, p->proxy_reason.data));
		}
		break;
	case PIPELINE_STOP_OLD:
		if (p->old && (p->stop_phase < 0 || stopped(p->old->sv)))
			fire(p, finish_stop_old(p));
		break;
	case PIPELINE_CLEANUP:
		if (p->step.pid == 0)
			fire(p, cleanup_next(p));
		break;
	default:
		break;
	}
	if (p->stopping_cur && p->cur && (!p->cur->sv || stopped(p->cur->sv))) {
		rel_free(p->cur);
		p->cur = NULL;
		p->stopping_cur = 0;
		serving_changed(p);
	}
}

static void poke(struct pipeline *p)
{
	if (!p->t_poke)
		p->t_poke = loop_timer_add(p->loop, 0, poke_fired, p);
}

static void kick_fired(struct loop *loop, long long id, void *arg, int mask)
{
	struct pipeline *p = arg;
	p->t_kick = 0;
	if (p->cancelled) {
		p->failed_stage = p->st;
		fire(p, EV_CANCEL);
		return;
	}
	enum ev ev = enter(p, p->st);
	fire(p, ev);
}

/* --- public --------------------------------------------------------------------------- */

const char *pipeline_stage_name(enum pipeline_stage st)
{
	return (unsigned)st < PIPELINE_NSTAGES ? stage_names[st] : "?";
}

const char *pipeline_outcome_name(enum pipeline_outcome o)
{
	static const char *const n[] = {"done", "error", "cancelled"};
	return (unsigned)o < 3 ? n[o] : "?";
}

static int mkdir_p(const char *path)
{
	char *s = xstrdup(path);
	for (char *c = s + 1; *c; c++)
		if (*c == '/') {
			*c = 0;
			if (mkdir(s, 0755) < 0 && errno != EEXIST) {
				free(s);
				return -1;
			}
			*c = '/';
		}
	int rc = mkdir(s, 0755) < 0 && errno != EEXIST ? -1 : 0;
	free(s);
	return rc;
}

struct pipeline *pipeline_new(struct loop *loop, const struct pipeline_opts *o, char *err,
			      size_t errlen)
{
	if (!o->dir || !*o->dir) {
		snprintf(err, errlen, "pipeline: no directory");
		return NULL;
	}
	char *rd = xasprintf("%s/releases", o->dir);
	if (mkdir_p(rd) < 0) {
		snprintf(err, errlen, "pipeline: mkdir '%s': %s", rd, strerror(errno));
		free(rd);
		return NULL;
	}
	free(rd);
	struct pipeline *p = xcalloc(1, sizeof(*p));
	p->loop = loop;
	p->o = *o;
	p->name = xstrdup(o->name ? o->name : "service");
	p->dir = xstrdup(o->dir);
	p->search_path = xstrdup(o->search_path ? o->search_path : DEF_PATH);
	p->home = xstrdup(o->home ? o->home : o->dir);
	p->cgroup_root = dupn(o->cgroup_root);
	p->o.name = p->o.dir = p->o.search_path = p->o.home = p->o.cgroup_root = NULL;
#define DEF(f, v)                                                                                  \
	if (p->o.f <= 0)                                                                           \
	p->o.f = v
	DEF(keep, DEF_KEEP);
	DEF(fetch_timeout_ms, DEF_FETCH);
	DEF(build_timeout_ms, DEF_BUILD);
	DEF(hook_timeout_ms, DEF_HOOK);
	DEF(health_timeout_ms, DEF_HEALTH);
	DEF(gate_interval_ms, DEF_GATE);
	DEF(settle_ms, DEF_SETTLE);
	DEF(stop_grace_ms, DEF_GRACE);
	DEF(switch_timeout_ms, DEF_SWITCH);
#undef DEF
	if (p->o.keep < 2)
		p->o.keep = 2;
	buf_init(&p->reason);
	buf_init(&p->proxy_reason);
	buf_init(&p->step.out);
	buf_init(&p->step.part);
	p->step.fd = -1;
	p->worker.fd = -1;
	return p;
}

void pipeline_free(struct pipeline *p)
{
	if (!p)
		return;
	if (p->step.pid > 0) {
		loop_child_del(p->loop, p->step.pid);
		spawn_kill_group(p->step.pid, SIGKILL);
		waitpid(p->step.pid, NULL, 0);
	}
	step_close(p);
	if (p->worker.pid > 0) {
		loop_child_del(p->loop, p->worker.pid);
		spawn_kill_group(p->worker.pid, SIGKILL);
		waitpid(p->worker.pid, NULL, 0);
		close(p->worker.fd);
	}
	if (p->nrel && p->nrel->sv) {
		struct supervise_record rec;
		if (supervise_record(p->nrel->sv, &rec) == 0)
			spawn_kill_group(rec.pgid, SIGKILL);
	}
	rel_free(p->nrel);
	rel_free(p->old);
	rel_free(p->cur);
	reset(p);
	buf_release(&p->reason);
	buf_release(&p->proxy_reason);
	buf_release(&p->step.out);
	buf_release(&p->step.part);
	free(p->prev_id);
	free(p->name);
	free(p->dir);
	free(p->search_path);
	free(p->home);
	free(p->cgroup_root);
	free(p);
}

/* The checks every request passes. */
static int check_req(struct pipeline *p, const struct pipeline_req *req, char *err, size_t errlen)
{
	if (p->st != PIPELINE_IDLE) {
		snprintf(err, errlen, "deploy '%s': a deploy of '%s' is in progress",
			 req->id ? req->id : "", p->name);
		return -1;
	}
	if (!id_ok(req->id)) {
		snprintf(err, errlen, "deploy: invalid deployment id '%.64s'",
			 req->id ? req->id : "");
		return -1;
	}
	const struct bp *bp = req->bp;
	if (!bp || bp->nerrors || bp->type == BP_TYPE_NONE) {
		snprintf(err, errlen, "deploy '%s': no valid blueprint", req->id);
		return -1;
	}
	if (bp->source == BP_SOURCE_IMAGE &&
	    (!bp->image || !*bp->image || bp->image[0] == '-' || bp->runtime.type != BP_RUNTIME_DOCKER)) {
		snprintf(err, errlen, "deploy '%s': source image needs an image and runtime docker",
			 req->id);
		return -1;
	}
	for (size_t i = 0; i < req->nsecrets; i++) {
		const char *kv = req->secrets[i];
		const char *eq = kv ? strchr(kv, '=') : NULL;
		if (!eq || !env_name_ok(kv, (size_t)(eq - kv))) {
			/* Never quote it: it may hold the value. */
			snprintf(err, errlen, "deploy '%s': secret %zu is not NAME=value", req->id,
				 i + 1);
			return -1;
		}
	}
	return 0;
}

/* Take what a checked request holds into the deploy fields (freed by
 * reset). */
static void load_req(struct pipeline *p, const struct pipeline_req *req, int rollback)
{
	const struct bp *bp = req->bp;
	p->rollback = rollback;
	p->id = xstrdup(req->id);
	p->rdir = xasprintf("%s/releases/%s", p->dir, req->id);
	p->srcdir = xasprintf("%s/src", p->rdir);
	spec_copy(&p->spec, bp);
	p->wdir = p->spec.working_dir ? xasprintf("%s/%s", p->srcdir, p->spec.working_dir)
				      : xstrdup(p->srcdir);
	p->upload = dupn(req->upload);
	set_path(p);
	char *kv = xasprintf("HOME=%s", p->home);
	env_set(p, kv);
	free(kv);
	env_set(p, "LANG=C.UTF-8");
	for (size_t i = 0; i < bp->nenv_vars; i++) {
		if (!strcmp(bp->env_vars[i].name, "PORT"))
			continue;
		kv = xasprintf("%s=%s", bp->env_vars[i].name, bp->env_vars[i].value);
		env_set(p, kv);
		free(kv);
	}
	for (size_t i = 0; i < req->nsecrets; i++) {
		env_set(p, req->secrets[i]);
		const char *v = strchr(req->secrets[i], '=') + 1;
		scrub_add(p, v, strlen(v));
	}
	/* The user part of an https URL may be a token: never shown either. */
	if (p->spec.url && !strncmp(p->spec.url, "https://", 8)) {
		const char *a = p->spec.url + 8;
		size_t alen = strcspn(a, "/");
		const char *at = memchr(a, '@', alen);
		if (at)
			scrub_add(p, a, (size_t)(at - a));
	}
	if (rollback) {
		stamp_read(p, p->id, "revision", p->revision, sizeof(p->revision));
		stamp_read(p, p->id, "runtime", p->rtver, sizeof(p->rtver));
	}
}

static int begin(struct pipeline *p, const struct pipeline_req *req, int rollback, char *err,
		 size_t errlen)
{
	if (check_req(p, req, err, errlen) < 0)
		return -1;
	char *rdir = xasprintf("%s/releases/%s", p->dir, req->id);
	struct stat st;
	if (rollback) {
		char *cur = current_id(p);
		int is_cur = cur && !strcmp(cur, req->id);
		free(cur);
		if (is_cur || (p->cur && !strcmp(p->cur->id, req->id))) {
			snprintf(err, errlen, "rollback '%s': already the current release",
				 req->id);
			free(rdir);
			return -1;
		}
		char *src = xasprintf("%s/src", rdir);
		int ok = stat(src, &st) == 0 && S_ISDIR(st.st_mode);
		free(src);
		if (!ok) {
			snprintf(err, errlen, "rollback '%s': release not kept", req->id);
			free(rdir);
			return -1;
		}
	} else {
		if (mkdir(rdir, 0755) < 0) {
			snprintf(err, errlen, "deploy '%s': mkdir '%s': %s", req->id, rdir,
				 errno == EEXIST ? "release exists" : strerror(errno));
			free(rdir);
			return -1;
		}
		if (p->o.set_ids && chown(rdir, p->o.uid, p->o.gid) < 0) {
			snprintf(err, errlen, "deploy '%s': chown '%s': %s", req->id, rdir,
				 strerror(errno));
			rmdir(rdir);
			free(rdir);
			return -1;
		}
	}
	free(rdir);
	load_req(p, req, rollback);
	p->st = rollback ? PIPELINE_START : PIPELINE_FETCH;
	log_info("pipeline", rollback ? "rollback started" : "deploy started", "service", p->name,
		 "release", p->id, NULL);
	p->t_kick = loop_timer_add(p->loop, 0, kick_fired, p);
	return 0;
}

int pipeline_deploy(struct pipeline *p, const struct pipeline_req *req, char *err, size_t errlen)
{
	return begin(p, req, 0, err, errlen);
}

int pipeline_rollback(struct pipeline *p, const struct pipeline_req *req, char *err, size_t errlen)
{
	return begin(p, req, 1, err, errlen);
}

/* Take back release req->id as p->cur (see pipeline_restore); strict: the
 * running process must be adopted. */
static int restore(struct pipeline *p, const struct pipeline_req *req,
		   const struct supervise_record *rec, int port, int run, int strict,
		   const char **how, char *err, size_t errlen)
{
	*how = "stopped";
	if (check_req(p, req, err, errlen) < 0)
		return -1;
	if (p->cur) {
		snprintf(err, errlen, "adopt '%s': '%s' has a current release", req->id, p->name);
		return -1;
	}
	char *src = xasprintf("%s/releases/%s/src", p->dir, req->id);
	struct stat st;
	int ok = stat(src, &st) == 0 && S_ISDIR(st.st_mode);
	free(src);
	if (!ok) {
		snprintf(err, errlen, "adopt '%s': release not kept", req->id);
		return -1;
	}
	load_req(p, req, 1);
	struct rel *r = rel_new(p);
	int rc = 0;
	if (p->spec.type != BP_TYPE_STATIC) {
		char why[512];
		if (rec && rec->nports)
			port = rec->ports[0];
		if (p->spec.type == BP_TYPE_WEB && (port < 1 || port > 65535))
			port = pick_port();
		if (strict && !rec) {
			snprintf(err, errlen, "adopt '%s': no record", req->id);
			rc = -1;
		} else if (rel_supervise(p, r, port, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "adopt '%s': %s", req->id, why);
			rc = -1;
		} else if (rec && supervise_adopt(r->sv, rec, why, sizeof(why)) == 0) {
			*how = "adopted";
			if (!run)
				supervise_stop(r->sv);
		} else if (strict) {
			snprintf(err, errlen, "%s", why);
			rc = -1;
		} else {
			if (rec)
				log_info("pipeline", "not adopted", "service", p->name, "release",
					 req->id, "reason", why, NULL);
			int restarts = p->spec.restart != BP_RESTART_NEVER ||
				       (p->spec.type == BP_TYPE_JOB && p->spec.schedule);
			if (run && restarts) {
				supervise_start(r->sv);
				*how = "started";
			}
		}
	}
	if (rc < 0)
		rel_free(r);
	else
		p->cur = r;
	reset(p);
	if (rc == 0)
		serving_changed(p);
	return rc;
}

int pipeline_adopt(struct pipeline *p, const struct pipeline_req *req,
		   const struct supervise_record *rec, char *err, size_t errlen)
{
	const char *how;
	return restore(p, req, rec, 0, 1, 1, &how, err, errlen);
}

int pipeline_restore(struct pipeline *p, const struct pipeline_req *req,
		     const struct supervise_record *rec, int port, int run, const char **how,
		     char *err, size_t errlen)
{
	const char *h;
	return restore(p, req, rec, port, run, 0, how ? how : &h, err, errlen);
}

int pipeline_new_record(const struct pipeline *p, struct supervise_record *rec)
{
	if (!p->nrel || !p->nrel->sv)
		return -1;
	return supervise_record(p->nrel->sv, rec);
}

void pipeline_proxy_done(struct pipeline *p, int ok, const char *reason)
{
	if (!p->proxy_wait || p->proxy_answer)
		return;
	p->proxy_answer = ok ? 1 : -1;
	buf_reset(&p->proxy_reason);
	buf_puts(&p->proxy_reason, reason && *reason ? reason : "refused");
	poke(p);
}

int pipeline_running(const struct pipeline *p)
{
	if (!p->cur || !p->cur->sv || p->stopping_cur)
		return 0;
	enum supervise_state st = supervise_state(p->cur->sv);
	return st == SUPERVISE_RUNNING || st == SUPERVISE_BACKOFF || st == SUPERVISE_WAITING;
}

int pipeline_record(const struct pipeline *p, struct supervise_record *rec)
{
	if (!p->cur || !p->cur->sv)
		return -1;
	return supervise_record(p->cur->sv, rec);
}

int pipeline_cancel(struct pipeline *p)
{
	if (p->st == PIPELINE_IDLE || p->switched || p->st >= PIPELINE_SWITCH || p->cancelled)
		return -1;
	p->cancelled = 1;
	log_info("pipeline", "cancel", "service", p->name, "release", p->id, "stage",
		 stage_names[p->st], NULL);
	if (p->t_kick)
		return 0; /* kick_fired sees it */
	if (p->step.pid > 0)
		spawn_kill_group(p->step.pid, SIGKILL);
	else if (p->worker.pid > 0)
		spawn_kill_group(p->worker.pid, SIGKILL);
	else
		poke(p);
	return 0;
}

void pipeline_stop(struct pipeline *p)
{
	if (!p->cur)
		return;
	if (p->cur->sv)
		supervise_stop(p->cur->sv);
	/* The supervisor finishes TERM -> KILL on its own timers; the release
	 * is forgotten once it has (poke_fired). */
	p->stopping_cur = 1;
	poke(p);
}

struct supervise *pipeline_supervisor(const struct pipeline *p)
{
	return p->cur && !p->stopping_cur ? p->cur->sv : NULL;
}

enum pipeline_stage pipeline_stage(const struct pipeline *p)
{
	return p->st;
}

enum bp_type pipeline_type(const struct pipeline *p)
{
	return p->cur ? p->cur->type : BP_TYPE_NONE;
}

int pipeline_health(const struct pipeline *p, struct health_opts *o)
{
	if (!p->cur)
		return -1;
	if (!p->cur->probe)
		return 0;
	*o = p->cur->ho;
	return 1;
}

const char *pipeline_current(const struct pipeline *p, pid_t *pid, int *port)
{
	if (pid)
		*pid = 0;
	if (port)
		*port = 0;
	if (!p->cur)
		return NULL;
	struct supervise_record rec;
	if (pid && p->cur->sv && supervise_record(p->cur->sv, &rec) == 0)
		*pid = rec.pid;
	if (port)
		*port = p->cur->port;
	return p->cur->id;
}
