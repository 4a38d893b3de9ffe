#include "health.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "spawn.h"
#include "xalloc.h"

enum health_phase { HP_IDLE, HP_CONNECTING, HP_SENDING, HP_READING, HP_COMMAND };

static const char *const health_names[] = {"starting", "healthy", "unhealthy"};

struct health {
	struct loop *loop;
	struct health_opts o; /* pointers below are owned copies */
	char *path, *command, *cwd;
	char **envp;
	struct net_addr addr;
	char what[HEALTH_PATH_MAX + 64]; /* "http 127.0.0.1:80/path", for messages */

	int active; /* between health_start and health_stop */
	enum health_status status;
	unsigned probes, failures;
	long long started_ms;
	long long t_next, t_timeout;

	enum health_phase phase;
	int fd;
	pid_t pid;
	int timed_out;
	char req[HEALTH_PATH_MAX + 128];
	size_t reqlen, sent;
	char line[HEALTH_LINE_MAX];
	size_t linelen;
	char error[512];
};

static void health_probe(struct health *h);

static void health_cancel(struct health *h, long long *id)
{
	if (*id)
		loop_timer_cancel(h->loop, *id);
	*id = 0;
}

static void health_on_next(struct loop *loop, long long id, void *arg, int mask)
{
	struct health *h = arg;
	h->t_next = 0;
	health_probe(h);
}

/* A killed command nobody waits for any more: the loop reaps it. */
static void health_reap_only(struct loop *loop, long long pid, void *arg, int mask)
{
}

/* End the probe in flight without a result. */
static void health_abort(struct health *h)
{
	health_cancel(h, &h->t_timeout);
	if (h->fd >= 0) {
		loop_del_fd(h->loop, h->fd);
		close(h->fd);
		h->fd = -1;
	}
	if (h->pid > 0) {
		spawn_kill_group(h->pid, SIGKILL);
		loop_child_del(h->loop, h->pid);
		if (loop_child_add(h->loop, h->pid, health_reap_only, NULL) < 0)
			log_warn("health", "cannot watch a killed probe", "error",
				 loop_error(h->loop), NULL);
		h->pid = 0;
	}
	h->phase = HP_IDLE;
}

static void health_finish(struct health *h, int ok, const char *why)
{
	health_abort(h);
	h->probes++;
	enum health_status before = h->status;
	if (ok) {
		h->error[0] = 0;
		h->failures = 0;
		h->status = HEALTH_HEALTHY;
	} else {
		snprintf(h->error, sizeof(h->error), "%s", why);
		if (loop_now_ms() - h->started_ms >= h->o.start_period_ms &&
		    ++h->failures >= (unsigned)h->o.retries)
			h->status = HEALTH_UNHEALTHY;
	}
	if (h->active)
		h->t_next = loop_timer_add(h->loop, h->o.interval_ms, health_on_next, h);
	if (h->status != before) {
		log_info("health", "status changed", "check", h->what, "status",
			 health_names[h->status], "error", h->error[0] ? h->error : NULL, NULL);
		if (h->o.on_change)
			h->o.on_change(h, h->o.arg, (int)h->status);
	}
}

static void health_failf(struct health *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void health_failf(struct health *h, const char *fmt, ...)
{
	char msg[512];
	int n = snprintf(msg, sizeof(msg), "%s: ", h->what);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(msg))
		vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	health_finish(h, 0, msg);
}

static void health_on_timeout(struct loop *loop, long long id, void *arg, int mask)
{
	struct health *h = arg;
	h->t_timeout = 0;
	if (h->phase == HP_COMMAND) {
		/* Kill the group; the result comes with the reap. */
		h->timed_out = 1;
		spawn_kill_group(h->pid, SIGKILL);
		return;
	}
	health_failf(h, "timed out after %lld ms", h->o.timeout_ms);
}

/* "HTTP/1.1 204 No Content": 1 healthy, 0 not, -1 not a status line. */
static int health_status_line(const char *s, int *code)
{
	if (strncmp(s, "HTTP/", 5))
		return -1;
	s += 5;
	if (s[0] < '0' || s[0] > '9' || s[1] != '.' || s[2] < '0' || s[2] > '9' || s[3] != ' ')
		return -1;
	s += 4;
	for (int i = 0; i < 3; i++)
		if (s[i] < '0' || s[i] > '9')
			return -1;
	if (s[3] != ' ' && s[3] != 0)
		return -1;
	*code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	return *code >= 200 && *code < 400;
}

static void health_read(struct health *h)
{
	for (;;) {
		size_t room = sizeof(h->line) - 1 - h->linelen;
		ssize_t n = recv(h->fd, h->line + h->linelen, room, 0);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return;
			health_failf(h, "read: %s", strerror(errno));
			return;
		}
		if (n == 0) {
			health_failf(h, "connection closed before the status line");
			return;
		}
		h->linelen += (size_t)n;
		h->line[h->linelen] = 0;
		char *nl = memchr(h->line, '\n', h->linelen);
		if (nl) {
			*nl = 0;
			if (nl > h->line && nl[-1] == '\r')
				nl[-1] = 0;
			int code = 0, r = health_status_line(h->line, &code);
			if (r < 0) {
				char shown[64];
				size_t i;
				for (i = 0; h->line[i] && i < 40; i++)
					shown[i] = (unsigned char)h->line[i] < 0x20 ||
							   (unsigned char)h->line[i] >= 0x7f
						       ? '?'
						       : h->line[i];
				shown[i] = 0;
				health_failf(h, "bad status line '%s'", shown);
			} else if (r == 0) {
				health_failf(h, "status %d", code);
			} else {
				health_finish(h, 1, NULL);
			}
			return;
		}
		if (memchr(h->line, 0, h->linelen)) {
			health_failf(h, "bad status line (NUL byte)");
			return;
		}
		if (h->linelen >= sizeof(h->line) - 1) {
			health_failf(h, "status line longer than %d bytes", HEALTH_LINE_MAX - 1);
			return;
		}
	}
}

static void health_on_sock(struct loop *loop, long long fd, void *arg, int mask)
{
	struct health *h = arg;
	char err[256];
	if (h->phase == HP_CONNECTING) {
		if (net_connect_result(h->fd, err, sizeof(err)) < 0) {
			health_failf(h, "%s", err);
			return;
		}
		if (h->o.kind == HEALTH_TCP) {
			health_finish(h, 1, NULL);
			return;
		}
		h->phase = HP_SENDING;
	}
	if (h->phase == HP_SENDING) {
		while (h->sent < h->reqlen) {
			ssize_t n =
			    send(h->fd, h->req + h->sent, h->reqlen - h->sent, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
					return;
				health_failf(h, "send: %s", strerror(errno));
				return;
			}
			h->sent += (size_t)n;
		}
		h->phase = HP_READING;
		loop_mod_fd(h->loop, h->fd, LOOP_READ);
		return;
	}
	if (h->phase == HP_READING && (mask & LOOP_READ))
		health_read(h);
}

static void health_on_child(struct loop *loop, long long pid, void *arg, int status)
{
	struct health *h = arg;
	/* Anything the command left behind in its group goes too. */
	spawn_kill_group((pid_t)pid, SIGKILL);
	h->pid = 0;
	if (h->timed_out)
		health_failf(h, "timed out after %lld ms", h->o.timeout_ms);
	else if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		health_finish(h, 1, NULL);
	else if (status != -1 && WIFEXITED(status))
		health_failf(h, "exit %d", WEXITSTATUS(status));
	else if (status != -1 && WIFSIGNALED(status))
		health_failf(h, "killed by signal %d", WTERMSIG(status));
	else
		health_failf(h, "exit status unknown");
}

static void health_probe(struct health *h)
{
	char err[512];
	h->phase = HP_IDLE;
	h->timed_out = 0;
	h->sent = h->linelen = 0;
	h->t_timeout = loop_timer_add(h->loop, h->o.timeout_ms, health_on_timeout, h);
	if (h->o.kind == HEALTH_COMMAND) {
		const char *argv[] = {"/bin/sh", "-c", h->command, NULL};
		struct spawn_opts so = {.argv = argv,
					.envp = (const char *const *)h->envp,
					.cwd = h->cwd,
					.pgroup = SPAWN_PGROUP,
					.set_ids = h->o.set_ids,
					.uid = h->o.uid,
					.gid = h->o.gid};
		struct spawn_proc p;
		if (spawn_start(&so, &p, err, sizeof(err)) < 0) {
			health_failf(h, "%s", err);
			return;
		}
		if (loop_child_add(h->loop, p.pid, health_on_child, h) < 0) {
			spawn_kill_group(p.pid, SIGKILL);
			while (waitpid(p.pid, NULL, 0) < 0 && errno == EINTR)
				;
			health_failf(h, "watch: %s", loop_error(h->loop));
			return;
		}
		h->pid = p.pid;
		h->phase = HP_COMMAND;
		return;
	}
	h->fd = net_connect(&h->addr, err, sizeof(err));
	if (h->fd < 0) {
		health_failf(h, "%s", err);
		return;
	}
	h->phase = HP_CONNECTING;
	if (loop_add_fd(h->loop, h->fd, LOOP_WRITE, health_on_sock, h) < 0) {
		health_failf(h, "watch: %s", loop_error(h->loop));
		return;
	}
}

static int health_path_ok(const char *p)
{
	if (p[0] != '/' || strlen(p) > HEALTH_PATH_MAX)
		return 0;
	for (; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return 0;
	return 1;
}

struct health *health_new(struct loop *loop, const struct health_opts *o, char *err, size_t errlen)
{
	const char *path = o->path ? o->path : "/";
	switch (o->kind) {
	case HEALTH_HTTP:
		if (!health_path_ok(path)) {
			snprintf(
			    err, errlen,
			    "health check: path '%.100s' must start with '/' and hold no spaces "
			    "or control characters",
			    path);
			return NULL;
		}
		/* fall through */
	case HEALTH_TCP:
		if (o->port < 1 || o->port > 65535) {
			snprintf(err, errlen, "health check: port %d is outside 1-65535", o->port);
			return NULL;
		}
		break;
	case HEALTH_COMMAND:
		if (!o->command || !o->command[0]) {
			snprintf(err, errlen, "health check: empty command");
			return NULL;
		}
		break;
	default:
		snprintf(err, errlen, "health check: unknown kind %d", (int)o->kind);
		return NULL;
	}
	if (o->interval_ms < 0 || o->timeout_ms < 0 || o->start_period_ms < 0 || o->retries < 0 ||
	    o->retries > 100) {
		snprintf(err, errlen, "health check: negative duration or retries outside 1-100");
		return NULL;
	}
	struct health *h = xcalloc(1, sizeof(*h));
	h->loop = loop;
	h->o = *o;
	h->o.path = h->o.command = h->o.cwd = NULL;
	h->o.envp = NULL;
	h->fd = -1;
	if (h->o.interval_ms == 0)
		h->o.interval_ms = 10000;
	if (h->o.timeout_ms == 0)
		h->o.timeout_ms = 5000;
	if (h->o.retries == 0)
		h->o.retries = 3;
	if (o->kind == HEALTH_COMMAND) {
		h->command = xstrdup(o->command);
		h->cwd = o->cwd ? xstrdup(o->cwd) : NULL;
		size_t n = 0;
		while (o->envp && o->envp[n])
			n++;
		h->envp = xcalloc(n + 1, sizeof(*h->envp));
		for (size_t i = 0; i < n; i++)
			h->envp[i] = xstrdup(o->envp[i]);
		snprintf(h->what, sizeof(h->what), "command");
	} else {
		char text[32];
		snprintf(text, sizeof(text), "127.0.0.1:%d", o->port);
		if (net_parse(text, &h->addr, err, errlen) < 0) {
			free(h);
			return NULL;
		}
		if (o->kind == HEALTH_HTTP) {
			h->path = xstrdup(path);
			snprintf(h->what, sizeof(h->what), "http %s%s", text, path);
			int n = snprintf(h->req, sizeof(h->req),
					 "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
					 "User-Agent: dployr-health\r\nConnection: close\r\n\r\n",
					 path, o->port);
			h->reqlen = (size_t)n;
		} else {
			snprintf(h->what, sizeof(h->what), "tcp %s", text);
		}
	}
	return h;
}

void health_free(struct health *h)
{
	if (!h)
		return;
	health_stop(h);
	free(h->path);
	free(h->command);
	free(h->cwd);
	for (size_t i = 0; h->envp && h->envp[i]; i++)
		free(h->envp[i]);
	free(h->envp);
	free(h);
}

void health_start(struct health *h)
{
	health_stop(h);
	h->active = 1;
	h->status = HEALTH_STARTING;
	h->failures = 0;
	h->error[0] = 0;
	h->started_ms = loop_now_ms();
	health_probe(h);
}

void health_stop(struct health *h)
{
	h->active = 0;
	health_cancel(h, &h->t_next);
	health_abort(h);
}

enum health_status health_status(const struct health *h)
{
	return h->status;
}

const char *health_status_name(enum health_status st)
{
	return (unsigned)st < 3 ? health_names[st] : "?";
}

const char *health_error(const struct health *h)
{
	return h->error;
}

unsigned health_probes(const struct health *h)
{
	return h->probes;
}

unsigned health_failures(const struct health *h)
{
	return h->failures;
}
