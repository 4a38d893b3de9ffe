/* dployr up: a whole single-node platform in one command (dployr-up(1)).
 *
 * A small supervisor around the ordinary commands, each a child process
 * started from this very executable by argv (never a shell):
 *
 *   first run   base init (stdout captured: CA pin, owner token)
 *               base --data DIR/base ...        (kept running)
 *               GET /v1/ca until it answers with the pinned CA
 *               POST /v1/instances {"name":NAME} (a join token)
 *               agent join --data DIR/agent ... (token in DPLOYR_JOIN_TOKEN)
 *               agent --data DIR/agent ...      (kept running)
 *               GET /v1/instances until NAME is online
 *   later runs  base, then agent: nothing is initialised or joined again
 *
 * The owner token is kept in DIR/owner.token (0600) and written to the CLI
 * context on every run; it is never printed, logged or put in argv.
 * SIGINT/SIGTERM stop both children (TERM, KILL after a grace period) and
 * up exits 0. A child that dies before the platform is up is fatal (exit
 * 1 with the end of its output); one that dies later is restarted with a
 * backoff, and up gives up after several quick failures in a row. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "applets.h"
#include "backoff.h"
#include "buf.h"
#include "cli.h"
#include "client.h"
#include "crypt.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "pki.h"
#include "spawn.h"
#include "xalloc.h"

extern char **environ;

static const char synopsis[] =
    "usage: dployr up [--data DIR] [--listen ADDR] [--agent-listen ADDR] [--name NAME]\n"
    "                 [--san HOST|IP]... [--config FILE]\n";

static const char help[] =
    "\n"
    "Run a base and a local agent in the foreground: initialise and join on the\n"
    "first run, resume the same state later, stop both on Ctrl-C.\n"
    "\n"
    "  --data DIR           state (default $XDG_DATA_HOME/dployr, else\n"
    "                       ~/.local/share/dployr)\n"
    "  --listen ADDR        base's API address (default 127.0.0.1:7443)\n"
    "  --agent-listen ADDR  base's agent address (default 127.0.0.1:7444)\n"
    "  --name NAME          the local instance's name (default local)\n"
    "  --san HOST|IP        another name for base's certificate (first run)\n"
    "  --config FILE        context file written (see dployr-login(1))\n"
    "  -h, --help           show this help\n"
    "\n"
    "Exit status: 0 stopped by SIGINT/SIGTERM/SIGHUP, 1 failure, 2 usage error.\n"
    "See dployr-up(1).\n";

#define DEFAULT_LISTEN	     "127.0.0.1:7443"
#define DEFAULT_AGENT_LISTEN "127.0.0.1:7444"
#define DEFAULT_NAME	     "local"
#define POLL_MS		     100
#define ANSWER_TIMEOUT_MS    30000 /* base must answer GET /v1/ca by then */
#define ONLINE_WARN_MS	     30000 /* say so when the agent is not online yet */
#define GRACE_MS	     10000 /* TERM, then KILL after this */
#define STABLE_MS	     30000 /* a child that ran this long failed "slowly" */
#define MAX_QUICK_FAILS	     5
#define MAX_SANS	     16

/* The phases, in order; each names what up is waiting for. */
enum phase {
	PH_INIT,     /* base init runs */
	PH_ANSWER,   /* base started, polling GET /v1/ca */
	PH_JOIN,     /* agent join runs */
	PH_ONLINE,   /* agent started, polling GET /v1/instances */
	PH_UP,	     /* running; children restarted when they die */
	PH_STOPPING, /* TERM sent, waiting for every child */
};

static const char *const phase_names[] = {"init", "answer", "join", "online", "up", "stopping"};

/* A long-running child (base or agent). */
struct child {
	const char *name;
	pid_t pid; /* 0: not running */
	long long started_ms;
	long long restart_timer;
	unsigned quick_fails;
	struct backoff bo;
};

/* A one-shot child (base init, agent join) whose output may be captured. */
struct job {
	const char *name;
	pid_t pid;
	int fd; /* stdout pipe, -1 when not captured or at its end */
	int exited;
	int status;
	struct buf out;
};

struct up {
	struct loop *loop;
	enum phase phase;
	int rc;
	const char *config;
	const char *listen, *agent_listen, *name;
	const char *sans[MAX_SANS];
	size_t nsans;
	char *exe, *dir, *base_dir, *agent_dir;
	char url[CLIENT_URL_MAX];  /* https://HOST:PORT, connectable */
	char addr[CLIENT_URL_MAX]; /* HOST:PORT, for agent join */
	char fp[PKI_FINGERPRINT_LEN + 1];
	char *token;	  /* owner token; wiped on free */
	char *name_owned; /* the name read from the agent's data directory */
	char *ca_pem;
	struct client *cl;
	struct child base, agent;
	struct job job;
	long long timer, grace_timer;
	long long phase_since;
	int warned;
	int base_termed; /* SIGTERM sent to base while stopping */
};

/* --- small helpers ------------------------------------------------------- */

__attribute__((format(printf, 2, 3))) static void say(struct up *u, const char *fmt, ...)
{
	(void)u;
	va_list ap;
	va_start(ap, fmt);
	fputs("dployr up: ", stdout);
	vfprintf(stdout, fmt, ap);
	fputc('\n', stdout);
	fflush(stdout);
	va_end(ap);
}

static void wipe_free(char *s)
{
	if (s) {
		crypt_wipe(s, strlen(s));
		free(s);
	}
}

static void describe_status(int status, char *out, size_t n)
{
	if (status == -1)
		snprintf(out, n, "exited (reaped elsewhere)");
	else if (WIFSIGNALED(status))
		snprintf(out, n, "was killed by signal %d", WTERMSIG(status));
	else
		snprintf(out, n, "exited with status %d", WEXITSTATUS(status));
}

/* The last lines (at most 5) of file path on stderr, indented. */
static void show_tail(const char *path)
{
	struct buf b = BUF_INIT;
	char err[256];
	if (buf_read_file(&b, path, 1 << 20, err, sizeof(err)) == 0 && b.len) {
		size_t start = b.len, lines = 0;
		if (b.data[start - 1] == '\n')
			start--;
		while (start > 0 && lines < 5) {
			start--;
			if (b.data[start] == '\n')
				lines++;
		}
		if (b.data[start] == '\n')
			start++;
		fprintf(stderr, "--- last lines of %s:\n", path);
		fwrite(b.data + start, 1, b.len - start, stderr);
		if (b.data[b.len - 1] != '\n')
			fputc('\n', stderr);
	}
	buf_release(&b);
}

static int exists(const char *dir, const char *name)
{
	char *p = xasprintf("%s/%s", dir, name);
	int r = access(p, F_OK) == 0;
	free(p);
	return r;
}

/* The connectable https URL and HOST:PORT for listen address text: a
 * wildcard host means loopback. */
static int connect_addr(const char *listen, char *url, char *addr, char *err, size_t errlen)
{
	const char *colon = strrchr(listen, ':');
	if (!colon || !colon[1] || colon == listen) {
		snprintf(err, errlen, "--listen '%s': expected HOST:PORT", listen);
		return -1;
	}
	size_t hl = (size_t)(colon - listen);
	char host[CLIENT_URL_MAX];
	if (hl >= sizeof(host)) {
		snprintf(err, errlen, "--listen '%s': too long", listen);
		return -1;
	}
	memcpy(host, listen, hl);
	host[hl] = 0;
	if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	else if (strcmp(host, "[::]") == 0)
		snprintf(host, sizeof(host), "[::1]");
	char text[2 * CLIENT_URL_MAX];
	snprintf(text, sizeof(text), "%s%s", host, colon);
	if (client_base_parse(text, url, addr, NULL, err, errlen) < 0)
		return -1;
	return 0;
}

/* --- phases and stopping -------------------------------------------------- */

static void set_phase(struct up *u, enum phase p)
{
	log_debug("up", "phase", "from", phase_names[u->phase], "to", phase_names[p], NULL);
	u->phase = p;
	u->phase_since = loop_now_ms();
	u->warned = 0;
}

/* While stopping: the agent (and a running job) first, so that its
 * session closes while base still runs; base once they are gone; the loop
 * ends when nothing is left. */
static void check_done(struct up *u)
{
	if (u->phase != PH_STOPPING || u->job.pid || u->agent.pid)
		return;
	if (u->base.pid && !u->base_termed) {
		kill(u->base.pid, SIGTERM);
		u->base_termed = 1;
	}
	if (!u->base.pid && u->job.fd < 0)
		loop_stop(u->loop);
}

static void kill_all(struct up *u, int sig)
{
	if (u->job.pid)
		kill(u->job.pid, sig);
	if (u->agent.pid)
		kill(u->agent.pid, sig);
	if (u->base.pid)
		kill(u->base.pid, sig);
}

static void grace_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct up *u = arg;
	(void)loop;
	(void)id;
	(void)mask;
	u->grace_timer = 0;
	say(u, "children still running after %d s: killing them", GRACE_MS / 1000);
	kill_all(u, SIGKILL);
}

/* Stop everything; up exits with rc once every child is gone. */
static void stop_all(struct up *u, int rc)
{
	if (rc > u->rc)
		u->rc = rc;
	if (u->phase == PH_STOPPING)
		return;
	set_phase(u, PH_STOPPING);
	if (u->timer)
		loop_timer_cancel(u->loop, u->timer);
	u->timer = 0;
	struct child *cs[] = {&u->base, &u->agent};
	for (size_t i = 0; i < 2; i++)
		if (cs[i]->restart_timer) {
			loop_timer_cancel(u->loop, cs[i]->restart_timer);
			cs[i]->restart_timer = 0;
		}
	if (u->job.pid)
		kill(u->job.pid, SIGTERM);
	if (u->agent.pid)
		kill(u->agent.pid, SIGTERM);
	u->grace_timer = loop_timer_add(u->loop, GRACE_MS, grace_cb, u);
	check_done(u);
}

__attribute__((format(printf, 2, 3))) static void fail(struct up *u, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("dployr up: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	stop_all(u, 1);
}

static void signal_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct up *u = arg;
	(void)loop;
	(void)mask;
	if (u->phase == PH_STOPPING) {
		kill_all(u, SIGKILL);
		return;
	}
	say(u, "%s: stopping", id == SIGINT ? "SIGINT" : id == SIGTERM ? "SIGTERM" : "SIGHUP");
	stop_all(u, 0);
}

/* The IP in a listen address "HOST:PORT" / "[V6]:PORT" for the agent's
 * --proxy-listen: "" (every address) for an empty or wildcard host,
 * 127.0.0.1 for a name (Caddy binds IPs only). */
static void up_proxy_host(const char *listen, char *out, size_t cap)
{
	const char *colon = strrchr(listen, ':');
	size_t n = colon ? (size_t)(colon - listen) : strlen(listen);
	if (n >= 2 && listen[0] == '[' && listen[n - 1] == ']') {
		listen++;
		n -= 2;
	}
	snprintf(out, cap, "%.*s", (int)n, listen);
	if (!strcmp(out, "0.0.0.0") || !strcmp(out, "::"))
		out[0] = 0;
	else if (strspn(out, "0123456789.:abcdefABCDEF") != strlen(out))
		snprintf(out, cap, "127.0.0.1");
}

/* --- jobs (base init, agent join) --------------------------------------------- */

static void job_finished(struct up *u);

static void job_maybe_done(struct up *u)
{
	if (u->job.exited && u->job.fd < 0 && u->phase != PH_STOPPING)
		job_finished(u);
	check_done(u);
}

static void job_read_cb(struct loop *loop, long long fd, void *arg, int mask)
{
	struct up *u = arg;
	(void)mask;
	char b[4096];
	ssize_t n = read((int)fd, b, sizeof(b));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0 && u->job.out.len < 64 * 1024) {
		buf_add(&u->job.out, b, (size_t)n);
		return;
	}
	if (n > 0)
		return;
	loop_del_fd(loop, (int)fd);
	close((int)fd);
	u->job.fd = -1;
	job_maybe_done(u);
}

static void job_exit_cb(struct loop *loop, long long pid, void *arg, int status)
{
	struct up *u = arg;
	(void)loop;
	(void)pid;
	u->job.pid = 0;
	u->job.exited = 1;
	u->job.status = status;
	job_maybe_done(u);
}

/* Start a job; envp NULL: up's own environment. */
static int job_start(struct up *u, const char *name, const char *const *argv,
		     const char *const *envp, int capture)
{
	char err[512];
	struct spawn_opts o = {
	    .argv = argv,
	    .envp = envp ? envp : (const char *const *)environ,
	    .out = capture ? SPAWN_PIPE : SPAWN_NULL,
	    .err = SPAWN_INHERIT,
	};
	struct spawn_proc p;
	buf_reset(&u->job.out);
	u->job.name = name;
	u->job.exited = 0;
	u->job.status = 0;
	u->job.fd = -1;
	if (spawn_start(&o, &p, err, sizeof(err)) < 0) {
		fail(u, "%s: %s", name, err);
		return -1;
	}
	u->job.pid = p.pid;
	if (loop_child_add(u->loop, p.pid, job_exit_cb, u) < 0) {
		fail(u, "%s: %s", name, loop_error(u->loop));
		return -1;
	}
	if (capture) {
		u->job.fd = p.out_fd;
		if (loop_add_fd(u->loop, p.out_fd, LOOP_READ, job_read_cb, u) < 0) {
			close(p.out_fd);
			u->job.fd = -1;
			fail(u, "%s: %s", name, loop_error(u->loop));
			return -1;
		}
	}
	return 0;
}

/* --- the long-running children ------------------------------------------------- */

static void child_exit_cb(struct loop *loop, long long pid, void *arg, int status);

static int child_start(struct up *u, struct child *c)
{
	char err[512];
	char *logf = xasprintf("%s/%s.log", u->dir, c->name);
	char *outf = xasprintf("%s/%s.out", u->dir, c->name);
	char *pidf = xasprintf("%s/%s.pid", u->dir, c->name);
	int rc = -1;
	int fd = open(outf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0) {
		fail(u, "open '%s': %s", outf, strerror(errno));
		goto out;
	}
	const char *base_argv[] = {
	    u->exe,	      "base",	       "--data", u->base_dir, "--listen", u->listen,
	    "--agent-listen", u->agent_listen, "--log",	 logf,	      NULL};
	/* Caddy serves the services' ports on the host base listens on:
	 * loopback by default, like everything `up` runs. */
	char phost[NET_ADDR_MAX];
	up_proxy_host(u->listen, phost, sizeof(phost));
	const char *agent_argv[] = {u->exe, "agent",	      "--data", u->agent_dir, "--log",
				    logf,   "--proxy-listen", phost,	NULL};
	if (!phost[0])
		agent_argv[6] = NULL; /* every address */
	struct spawn_opts o = {
	    .argv = c == &u->base ? base_argv : agent_argv,
	    .envp = (const char *const *)environ,
	    /* its own group: a Ctrl-C on the terminal reaches up alone, which
	     * then stops the children in its own way */
	    .pgroup = SPAWN_PGROUP,
	    .out = SPAWN_FD,
	    .out_fd = fd,
	    .err = SPAWN_STDOUT,
	};
	struct spawn_proc p;
	if (spawn_start(&o, &p, err, sizeof(err)) < 0) {
		fail(u, "%s: %s", c->name, err);
		goto out;
	}
	c->pid = p.pid;
	c->started_ms = loop_now_ms();
	if (loop_child_add(u->loop, p.pid, child_exit_cb, u) < 0) {
		fail(u, "%s: %s", c->name, loop_error(u->loop));
		goto out;
	}
	char pidtext[32];
	snprintf(pidtext, sizeof(pidtext), "%ld\n", (long)p.pid);
	if (pki_write_file(pidf, pidtext, 0644, err, sizeof(err)) < 0)
		log_warn("up", "cannot write pid file", "error", err, NULL);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(logf);
	free(outf);
	free(pidf);
	return rc;
}

static void restart_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct up *u = arg;
	(void)loop;
	(void)mask;
	struct child *c = u->base.restart_timer == id ? &u->base : &u->agent;
	c->restart_timer = 0;
	if (u->phase != PH_STOPPING && child_start(u, c) == 0)
		say(u, "%s restarted (pid %ld)", c->name, (long)c->pid);
}

static void child_exit_cb(struct loop *loop, long long pid, void *arg, int status)
{
	struct up *u = arg;
	struct child *c = u->base.pid == pid ? &u->base : &u->agent;
	char how[64];
	c->pid = 0;
	char *pidf = xasprintf("%s/%s.pid", u->dir, c->name);
	unlink(pidf);
	free(pidf);
	if (u->phase == PH_STOPPING) {
		check_done(u);
		return;
	}
	describe_status(status, how, sizeof(how));
	char *outf = xasprintf("%s/%s.out", u->dir, c->name);
	if (u->phase != PH_UP) {
		show_tail(outf);
		fail(u, "%s %s before the platform was up (its output: %s)", c->name, how, outf);
		free(outf);
		return;
	}
	long long ran = loop_now_ms() - c->started_ms;
	if (ran >= STABLE_MS) {
		c->quick_fails = 0;
		backoff_reset(&c->bo);
	}
	if (++c->quick_fails > MAX_QUICK_FAILS) {
		show_tail(outf);
		fail(u, "%s %s; it failed %d times in a row, giving up (its output: %s)", c->name,
		     how, MAX_QUICK_FAILS + 1, outf);
		free(outf);
		return;
	}
	uint32_t r = (uint32_t)loop_now_ms() * 2654435761u ^ (uint32_t)pid;
	long long delay = backoff_next(&c->bo, r);
	say(u, "%s %s; restarting it in %lld ms (its output: %s)", c->name, how, delay, outf);
	free(outf);
	c->restart_timer = loop_timer_add(loop, delay, restart_cb, u);
}

/* --- the way up ------------------------------------------------------------------ */

static void answer_cb(struct loop *loop, long long id, void *arg, int mask);
static void online_cb(struct loop *loop, long long id, void *arg, int mask);

static void start_base(struct up *u)
{
	if (child_start(u, &u->base) < 0)
		return;
	say(u, "base started (pid %ld), waiting for it to answer on %s", (long)u->base.pid, u->url);
	set_phase(u, PH_ANSWER);
	u->timer = loop_timer_add(u->loop, POLL_MS, answer_cb, u);
}

static void start_agent(struct up *u)
{
	if (child_start(u, &u->agent) < 0)
		return;
	say(u, "agent started (pid %ld), waiting for \"%s\" to come online", (long)u->agent.pid,
	    u->name);
	set_phase(u, PH_ONLINE);
	u->timer = loop_timer_add(u->loop, POLL_MS, online_cb, u);
}

static void start_init(struct up *u)
{
	const char *argv[8 + 2 * MAX_SANS] = {u->exe,	   "base",   "init",	 "--data",
					      u->base_dir, "--name", "localhost"};
	size_t n = 7;
	for (size_t i = 0; i < u->nsans; i++) {
		argv[n++] = "--san";
		argv[n++] = u->sans[i];
	}
	argv[n] = NULL;
	say(u, "first run: initialising base in %s", u->base_dir);
	set_phase(u, PH_INIT);
	job_start(u, "base init", argv, NULL, 1);
}

/* The value after "label:" on its own line of text, or NULL. */
static char *line_value(const char *text, const char *label)
{
	size_t ll = strlen(label);
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, label, ll) != 0)
			continue;
		p += ll;
		while (*p == ' ')
			p++;
		size_t n = strcspn(p, "\r\n");
		return xstrndup(p, n);
	}
	return NULL;
}

static void init_done(struct up *u)
{
	char err[512], how[64];
	if (!WIFEXITED(u->job.status) || WEXITSTATUS(u->job.status) != 0) {
		describe_status(u->job.status, how, sizeof(how));
		fail(u, "base init %s", how);
		return;
	}
	char *fp = line_value(u->job.out.data, "ca fingerprint:");
	u->token = line_value(u->job.out.data, "owner token:");
	crypt_wipe(u->job.out.data, u->job.out.len);
	buf_reset(&u->job.out);
	if (!fp || client_pin_check(fp, err, sizeof(err)) < 0 || !u->token ||
	    client_token_check(u->token, err, sizeof(err)) < 0) {
		free(fp);
		fail(u, "base init: no CA fingerprint and owner token in its output");
		return;
	}
	snprintf(u->fp, sizeof(u->fp), "%s", fp);
	free(fp);
	char *tf = xasprintf("%s/owner.token", u->dir);
	char *line = xasprintf("%s\n", u->token);
	int r = pki_write_file(tf, line, 0600, err, sizeof(err));
	wipe_free(line);
	free(tf);
	if (r < 0) {
		fail(u, "%s", err);
		return;
	}
	say(u, "base initialised: ca fingerprint %s", u->fp);
	start_base(u);
}

static void join_done(struct up *u)
{
	char how[64];
	if (!WIFEXITED(u->job.status) || WEXITSTATUS(u->job.status) != 0) {
		describe_status(u->job.status, how, sizeof(how));
		fail(u, "agent join %s", how);
		return;
	}
	say(u, "agent joined as \"%s\" (data in %s)", u->name, u->agent_dir);
	start_agent(u);
}

static void job_finished(struct up *u)
{
	if (u->phase == PH_INIT)
		init_done(u);
	else if (u->phase == PH_JOIN)
		join_done(u);
}

/* Ask base for a join token for the instance and run agent join with it. */
static void start_join(struct up *u)
{
	char err[1024];
	struct buf body = BUF_INIT;
	struct proto_json *doc = NULL;
	int status = 0;
	buf_puts(&body, "{\"name\":");
	buf_json_cstr(&body, u->name);
	buf_puts(&body, "}");
	if (client_call(u->cl, "POST", "/v1/instances", body.data, &status, &doc, NULL, err,
			sizeof(err)) < 0) {
		if (status == 409)
			fail(u,
			     "instance '%s' exists but %s holds no joined agent: remove it "
			     "(dployr instance rm %s) and run dployr up again",
			     u->name, u->agent_dir, u->name);
		else
			fail(u, "add instance '%s': %s", u->name, err);
		goto out;
	}
	const char *tok = doc ? proto_jv_get_str(proto_json_root(doc), "join_token") : NULL;
	if (!tok || client_token_check(tok, err, sizeof(err)) < 0) {
		fail(u, "add instance '%s': base's reply has no valid join token", u->name);
		goto out;
	}
	/* the token goes to the child in its environment, never in argv */
	size_t n = 0;
	while (environ[n])
		n++;
	const char **envp = xcalloc(n + 2, sizeof(*envp));
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "DPLOYR_JOIN_TOKEN=", 18) != 0)
			envp[k++] = environ[i];
	char *tokenv = xasprintf("DPLOYR_JOIN_TOKEN=%s", tok);
	envp[k++] = tokenv;
	envp[k] = NULL;
	const char *argv[] = {u->exe, "agent",	"join",	      "--base", u->addr, "--ca-fingerprint",
			      u->fp,  "--data", u->agent_dir, NULL};
	say(u, "instance \"%s\" added; joining the local agent", u->name);
	set_phase(u, PH_JOIN);
	job_start(u, "agent join", argv, envp, 0);
	wipe_free(tokenv);
	free(envp);
out:
	proto_json_free(doc);
	buf_release(&body);
}

/* base answers with the pinned CA: save the context, then join or start
 * the agent. */
static void base_answered(struct up *u)
{
	char err[1024];
	struct client_ctx ctx = {.base = u->url, .ca = u->ca_pem, .token = u->token};
	char *path = client_config_path(u->config, err, sizeof(err));
	if (!path || client_ctx_save(&ctx, path, err, sizeof(err)) < 0) {
		free(path);
		fail(u, "%s", err);
		return;
	}
	say(u, "base answers; CLI context saved to %s", path);
	free(path);
	u->cl = client_new(u->url, u->ca_pem, u->token, err, sizeof(err));
	if (!u->cl) {
		fail(u, "%s", err);
		return;
	}
	client_set_timeout(u->cl, 5000);
	if (exists(u->agent_dir, "agent.json"))
		start_agent(u);
	else
		start_join(u);
}

static void answer_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct up *u = arg;
	(void)id;
	(void)mask;
	u->timer = 0;
	char err[1024];
	u->ca_pem = client_fetch_ca(u->url, u->fp, 1000, err, sizeof(err));
	if (u->ca_pem) {
		base_answered(u);
		return;
	}
	if (strstr(err, "fingerprint mismatch")) {
		fail(u, "%s: %s (another base on that address?)", u->url, err);
		return;
	}
	if (loop_now_ms() - u->phase_since > ANSWER_TIMEOUT_MS) {
		fail(u, "base did not answer on %s within %d s: %s", u->url,
		     ANSWER_TIMEOUT_MS / 1000, err);
		return;
	}
	u->timer = loop_timer_add(loop, POLL_MS, answer_cb, u);
}

/* "online", "offline", ... for the instance, or NULL (reason in err). */
static char *instance_state(struct up *u, char *err, size_t errlen)
{
	struct proto_json *doc = NULL;
	char *state = NULL;
	if (client_call(u->cl, "GET", "/v1/instances", NULL, NULL, &doc, NULL, err, errlen) < 0)
		return NULL;
	const struct proto_jv *root = doc ? proto_json_root(doc) : NULL;
	if (root && proto_jv_type(root) == PROTO_J_ARR)
		for (const struct proto_jv *v = proto_jv_first(root); v; v = proto_jv_next(v)) {
			const char *nm = proto_jv_get_str(v, "name");
			const char *st = proto_jv_get_str(v, "state");
			if (nm && st && strcmp(nm, u->name) == 0)
				state = xstrdup(st);
		}
	if (!state)
		snprintf(err, errlen, "instance '%s' is not listed", u->name);
	proto_json_free(doc);
	return state;
}

static void online_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct up *u = arg;
	(void)id;
	(void)mask;
	u->timer = 0;
	char err[1024];
	char *state = instance_state(u, err, sizeof(err));
	if (state && strcmp(state, "online") == 0) {
		free(state);
		set_phase(u, PH_UP);
		client_free(u->cl);
		u->cl = NULL;
		printf("dployr is up: base %s, agent \"%s\" online\n"
		       "try: dployr deploy -f examples/hello-python.yaml -i %s --dir examples/hello-python\n",
		       u->url, u->name, u->name);
		fflush(stdout);
		return;
	}
	if (state && strcmp(state, "revoked") == 0) {
		free(state);
		fail(u, "instance '%s' is revoked: remove %s to join it anew", u->name,
		     u->agent_dir);
		return;
	}
	if (!u->warned && loop_now_ms() - u->phase_since > ONLINE_WARN_MS) {
		u->warned = 1;
		say(u,
		    "agent \"%s\" is not online after %d s (%s); still waiting, see %s/agent.log",
		    u->name, ONLINE_WARN_MS / 1000, state ? state : err, u->dir);
	}
	free(state);
	u->timer = loop_timer_add(loop, 4 * POLL_MS, online_cb, u);
}

/* Resume: the pin from DIR/base/ca.crt, the token from DIR/owner.token,
 * the instance name from the agent's data directory. */
static int resume(struct up *u, int name_given, char *err, size_t errlen)
{
	struct buf b = BUF_INIT;
	char *ca = xasprintf("%s/ca.crt", u->base_dir);
	char *tf = xasprintf("%s/owner.token", u->dir);
	int rc = -1;
	if (buf_read_file(&b, ca, 1 << 20, err, errlen) < 0 ||
	    pki_cert_fingerprint(b.data, u->fp, err, errlen) < 0)
		goto out;
	buf_reset(&b);
	if (buf_read_file(&b, tf, 4096, err, errlen) < 0) {
		snprintf(err, errlen,
			 "'%s' is missing: base was initialised by something else; use another "
			 "--data directory",
			 tf);
		goto out;
	}
	while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
		b.data[--b.len] = 0;
	u->token = xstrdup(b.data);
	crypt_wipe(b.data, b.len);
	if (client_token_check(u->token, err, errlen) < 0)
		goto out;
	if (exists(u->agent_dir, "agent.json")) {
		struct agent_identity id;
		if (agent_check(u->agent_dir, &id, err, errlen) < 0)
			goto out;
		if (name_given && strcmp(id.name, u->name) != 0) {
			snprintf(err, errlen,
				 "%s holds instance '%s', not '%s': drop --name or use another "
				 "--data directory",
				 u->agent_dir, id.name, u->name);
			goto out;
		}
		u->name = u->name_owned = xstrdup(id.name);
		const char *p1 = strrchr(id.agent_addr, ':'), *p2 = strrchr(u->agent_listen, ':');
		if (p1 && p2 && strcmp(p1, p2) != 0) {
			snprintf(err, errlen,
				 "the agent was joined to agent port %s, not %s: pass "
				 "--agent-listen with that port",
				 p1 + 1, p2 + 1);
			goto out;
		}
	}
	rc = 0;
out:
	buf_release(&b);
	free(ca);
	free(tf);
	return rc;
}

/* A daemon of an earlier up that was itself killed (SIGKILL) and left its
 * children running: pid from DIR/NAME.pid, alive, and its argv naming
 * DIR. Returns that pid, or 0. */
static long stale_child(const struct up *u, const char *name)
{
	char *pidf = xasprintf("%s/%s.pid", u->dir, name), err[256];
	struct buf b = BUF_INIT;
	long pid = 0;
	if (buf_read_file(&b, pidf, 64, err, sizeof(err)) == 0)
		pid = strtol(b.data, NULL, 10);
	buf_reset(&b);
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/%ld/cmdline", pid);
	if (pid <= 1 || kill((pid_t)pid, 0) < 0 ||
	    buf_read_file(&b, proc, 64 * 1024, err, sizeof(err)) < 0 ||
	    !memmem(b.data, b.len, u->dir, strlen(u->dir)))
		pid = 0;
	buf_release(&b);
	free(pidf);
	return pid;
}

/* --- main ------------------------------------------------------------------------- */

static char *default_dir(char *err, size_t errlen)
{
	const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	if (xdg && xdg[0] == '/')
		return xasprintf("%s/dployr", xdg);
	if (home && *home)
		return xasprintf("%s/.local/share/dployr", home);
	snprintf(err, errlen, "no data directory: set HOME or XDG_DATA_HOME, or pass --data");
	return NULL;
}

/* mkdir -p with mode 0700 for what it creates. */
static int make_dirs(const char *path, char *err, size_t errlen)
{
	char *p = xstrdup(path);
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;
		*s = 0;
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "mkdir '%s': %s", p, strerror(errno));
			free(p);
			return -1;
		}
		*s = c;
		if (!c)
			break;
	}
	free(p);
	return 0;
}

static void up_free(struct up *u)
{
	if (u->job.fd >= 0) {
		loop_del_fd(u->loop, u->job.fd);
		close(u->job.fd);
	}
	crypt_wipe(u->job.out.data, u->job.out.len);
	buf_release(&u->job.out);
	client_free(u->cl);
	wipe_free(u->token);
	free(u->ca_pem);
	free(u->exe);
	free(u->name_owned);
	free(u->dir);
	free(u->base_dir);
	free(u->agent_dir);
}

int up_main(int argc, char **argv)
{
	struct cli cli = {.verb = "up", .synopsis = synopsis, .help = help};
	struct up u = {.listen = DEFAULT_LISTEN,
		       .agent_listen = DEFAULT_AGENT_LISTEN,
		       .name = DEFAULT_NAME,
		       .job = {.fd = -1}};
	const char *data = NULL;
	int rc, name_given = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], **slot = NULL, *name = NULL;
		int r = cli_option(&cli, argc, argv, &i, &rc);
		if (r == CLI_OPT_EXIT)
			return rc;
		if (r == CLI_OPT_TAKEN)
			continue;
		static const char *const names[] = {"--data", "--listen", "--agent-listen",
						    "--name", "--san"};
		const char **slots[] = {&data, &u.listen, &u.agent_listen, &u.name, NULL};
		for (size_t k = 0; k < 5 && !name; k++) {
			size_t n = strlen(names[k]);
			if (strncmp(a, names[k], n) == 0 && (a[n] == 0 || a[n] == '='))
				name = names[k], slot = slots[k];
		}
		if (!name)
			return a[0] == '-' ? cli_usage(&cli, "unknown option '%s'", a)
					   : cli_usage(&cli, "unexpected argument '%s'", a);
		const char *v = cli_value(&cli, argc, argv, &i, name);
		if (!v)
			return EXIT_USAGE;
		if (!*v)
			return cli_usage(&cli, "%s needs a value", name);
		if (!slot) {
			if (u.nsans == MAX_SANS)
				return cli_usage(&cli, "at most %d --san", MAX_SANS);
			u.sans[u.nsans++] = v;
		} else {
			*slot = v;
		}
		if (slot == &u.name)
			name_given = 1;
	}
	char err[1024];
	if (client_name_check(u.name, err, sizeof(err)) < 0)
		return cli_usage(&cli, "--name: %s", err);
	struct net_addr na;
	if (net_parse(u.listen, &na, err, sizeof(err)) < 0)
		return cli_usage(&cli, "--listen: %s", err);
	if (net_parse(u.agent_listen, &na, err, sizeof(err)) < 0)
		return cli_usage(&cli, "--agent-listen: %s", err);
	if (connect_addr(u.listen, u.url, u.addr, err, sizeof(err)) < 0)
		return cli_usage(&cli, "%s", err);

	rc = 1;
	int lockfd = -1;
	char exe[PATH_MAX];
	ssize_t el = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (el <= 0) {
		cli_fail(&cli, "readlink '/proc/self/exe': %s", strerror(errno));
		goto out;
	}
	exe[el] = 0;
	u.exe = xstrdup(exe);
	u.dir = data ? xstrdup(data) : default_dir(err, sizeof(err));
	if (!u.dir || make_dirs(u.dir, err, sizeof(err)) < 0) {
		cli_fail(&cli, "%s", err);
		goto out;
	}
	u.base_dir = xasprintf("%s/base", u.dir);
	u.agent_dir = xasprintf("%s/agent", u.dir);
	char *lockf = xasprintf("%s/up.lock", u.dir);
	lockfd = open(lockf, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	free(lockf);
	if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
		cli_fail(&cli,
			 errno == EWOULDBLOCK ? "'%s' is in use by another dployr up"
					      : "'%s': cannot lock",
			 u.dir);
		goto out;
	}
	static const char *const daemons[] = {"base", "agent"};
	for (size_t i = 0; i < 2; i++) {
		long pid = stale_child(&u, daemons[i]);
		if (pid) {
			cli_fail(&cli,
				 "the %s of an earlier dployr up still runs (pid %ld): stop it "
				 "(kill %ld) and run dployr up again",
				 daemons[i], pid, pid);
			goto out;
		}
	}
	int initialised = exists(u.base_dir, "ca.crt");
	if (initialised && resume(&u, name_given, err, sizeof(err)) < 0) {
		cli_fail(&cli, "%s", err);
		goto out;
	}

	signal(SIGPIPE, SIG_IGN);
	u.loop = loop_new(0, err, sizeof(err));
	if (!u.loop) {
		cli_fail(&cli, "%s", err);
		goto out;
	}
	/* SIGHUP too: the children are in their own process groups and would
	 * outlive a closed terminal otherwise */
	if (loop_signal_add(u.loop, SIGINT, signal_cb, &u) < 0 ||
	    loop_signal_add(u.loop, SIGTERM, signal_cb, &u) < 0 ||
	    loop_signal_add(u.loop, SIGHUP, signal_cb, &u) < 0) {
		cli_fail(&cli, "%s", loop_error(u.loop));
		goto out;
	}
	backoff_init(&u.base.bo, 1000, 30000);
	backoff_init(&u.agent.bo, 1000, 30000);
	u.base.name = "base";
	u.agent.name = "agent";
	u.phase = PH_INIT;
	u.phase_since = loop_now_ms();
	if (initialised) {
		say(&u, "resuming %s", u.dir);
		start_base(&u);
	} else {
		start_init(&u);
	}
	if (loop_run(u.loop) < 0) {
		cli_fail(&cli, "%s", loop_error(u.loop));
		kill_all(&u, SIGKILL);
		goto out;
	}
	if (u.grace_timer)
		loop_timer_cancel(u.loop, u.grace_timer);
	if (u.rc == 0)
		say(&u, "stopped");
	rc = u.rc;
out:
	up_free(&u);
	loop_free(u.loop);
	if (lockfd >= 0)
		close(lockfd);
	return rc;
}
