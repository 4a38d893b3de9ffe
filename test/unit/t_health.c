#include "health.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "log.h"
#include "net.h"
#include "spawn.h"

struct seen {
	int changes[32];
	int n;
};

static void on_change(struct health *h, void *arg, int status)
{
	struct seen *s = arg;
	if (s->n < 32)
		s->changes[s->n++] = status;
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

static struct health *mk(struct loop *l, struct health_opts *o, struct seen *s)
{
	char err[256];
	o->on_change = on_change;
	o->arg = s;
	if (!o->interval_ms)
		o->interval_ms = 50;
	if (!o->timeout_ms)
		o->timeout_ms = 3000;
	struct health *h = health_new(l, o, err, sizeof(err));
	if (!h)
		harness_fail(__FILE__, __LINE__, "%s", err);
	return h;
}

/* Run the loop until h has status st (bounded: 15 s). */
static void wait_status(struct loop *l, struct health *h, enum health_status st, int line)
{
	long long end = loop_now_ms() + 15000;
	while (health_status(h) != st) {
		if (loop_now_ms() > end)
			harness_fail(__FILE__, line, "status %s (%s), expected %s",
				     health_status_name(health_status(h)), health_error(h),
				     health_status_name(st));
		loop_run_once(l, 50);
	}
}
#define WAIT_STATUS(l, h, st) wait_status(l, h, st, __LINE__)

static void wait_probes(struct loop *l, struct health *h, unsigned n)
{
	long long end = loop_now_ms() + 15000;
	while (health_probes(h) < n) {
		if (loop_now_ms() > end)
			harness_fail(__FILE__, __LINE__, "only %u probes", health_probes(h));
		loop_run_once(l, 50);
	}
}

/* A listening socket on 127.0.0.1, any port; returns the fd. */
static int listener(int *port)
{
	struct net_addr a;
	char err[256];
	CHECK_INT(net_parse("127.0.0.1:0", &a, err, sizeof(err)), 0);
	int fd = net_listen(&a, 16, err, sizeof(err));
	if (fd < 0)
		harness_fail(__FILE__, __LINE__, "%s", err);
	CHECK_INT(net_local_addr(fd, &a, err, sizeof(err)), 0);
	*port = net_addr_port(&a);
	return fd;
}

/* A port with nothing listening: bound and closed again. */
static int dead_port(void)
{
	int port, fd = listener(&port);
	close(fd);
	return port;
}

TEST(health_rejects_bad_options)
{
	struct loop *l = mkloop();
	char err[256];
	struct health_opts o = {.kind = HEALTH_HTTP, .port = 80, .path = "healthz"};
	CHECK(health_new(l, &o, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "path 'healthz' must start with '/'"));
	o.path = "/a\r\nX-Injected: 1";
	CHECK(health_new(l, &o, err, sizeof(err)) == NULL);
	o.path = "/a b";
	CHECK(health_new(l, &o, err, sizeof(err)) == NULL);
	o.path = "/ok";
	o.port = 0;
	CHECK(health_new(l, &o, err, sizeof(err)) == NULL);
	CHECK_STR(err, "health check: port 0 is outside 1-65535");
	o.kind = HEALTH_TCP;
	o.port = 70000;
	CHECK(health_new(l, &o, err, sizeof(err)) == NULL);
	struct health_opts c = {.kind = HEALTH_COMMAND};
	CHECK(health_new(l, &c, err, sizeof(err)) == NULL);
	CHECK_STR(err, "health check: empty command");
	c.command = "true";
	c.retries = 101;
	CHECK(health_new(l, &c, err, sizeof(err)) == NULL);
	health_free(NULL);
	loop_free(l);
}

/* Start python3's http.server in ./www on a free port; returns its pid. */
static pid_t python_http(int *port)
{
	CHECK_INT(mkdir("www", 0755), 0);
	CHECK_INT(mkdir("www/sub", 0755), 0);
	int f = open("www/healthz", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(f >= 0);
	close(f);
	*port = dead_port();
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", *port);
	const char *argv[] = {"/usr/bin/python3", "-m", "http.server", "--bind",
			      "127.0.0.1",	  ps,	NULL};
	const char *env[] = {"PATH=/usr/bin:/bin", NULL};
	struct spawn_opts so = {.argv = argv, .envp = env, .cwd = "www", .pgroup = SPAWN_PGROUP};
	struct spawn_proc p;
	char err[256];
	if (spawn_start(&so, &p, err, sizeof(err)) < 0)
		harness_fail(__FILE__, __LINE__, "%s", err);
	/* ready when it accepts a connection (bounded) */
	struct net_addr a;
	char text[32];
	snprintf(text, sizeof(text), "127.0.0.1:%d", *port);
	CHECK_INT(net_parse(text, &a, err, sizeof(err)), 0);
	for (int i = 0;; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int r = connect(fd, (struct sockaddr *)&a.ss, a.len);
		close(fd);
		if (r == 0)
			break;
		if (i > 300)
			harness_fail(__FILE__, __LINE__, "http.server did not start");
		usleep(30000);
	}
	return p.pid;
}

static void stop_pid(pid_t pid)
{
	spawn_kill_group(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

TEST(health_http_against_python_http_server)
{
	if (access("/usr/bin/python3", X_OK) != 0) {
		fprintf(stderr, "    (no /usr/bin/python3: skipped)\n");
		return;
	}
	struct loop *l = mkloop();
	int port;
	pid_t py = python_http(&port);
	struct seen s = {0};

	struct health_opts o = {
	    .kind = HEALTH_HTTP, .port = port, .path = "/healthz", .retries = 2};
	struct health *h = mk(l, &o, &s);
	CHECK_INT(health_status(h), HEALTH_STARTING);
	health_start(h);
	WAIT_STATUS(l, h, HEALTH_HEALTHY);
	CHECK_STR(health_error(h), "");
	CHECK_INT(s.n, 1);
	CHECK_INT(s.changes[0], HEALTH_HEALTHY);
	wait_probes(l, h, 3); /* keeps probing, stays healthy */
	CHECK_INT(health_status(h), HEALTH_HEALTHY);
	CHECK_INT(s.n, 1);
	health_free(h);

	/* 301 (a directory without its slash) is healthy too */
	o.path = "/sub";
	h = mk(l, &o, &s);
	health_start(h);
	WAIT_STATUS(l, h, HEALTH_HEALTHY);
	health_free(h);

	/* 404: unhealthy after `retries` failures in a row */
	s.n = 0;
	o.path = "/missing";
	h = mk(l, &o, &s);
	health_start(h);
	WAIT_STATUS(l, h, HEALTH_UNHEALTHY);
	char want[128];
	snprintf(want, sizeof(want), "http 127.0.0.1:%d/missing: status 404", port);
	CHECK_STR(health_error(h), want);
	CHECK_INT(health_failures(h), 2);
	CHECK_INT(health_probes(h), 2);
	CHECK_INT(s.n, 1);
	CHECK_INT(s.changes[0], HEALTH_UNHEALTHY);
	health_free(h);

	/* the server goes away: the check follows */
	s.n = 0;
	o.path = "/healthz";
	h = mk(l, &o, &s);
	health_start(h);
	WAIT_STATUS(l, h, HEALTH_HEALTHY);
	stop_pid(py);
	WAIT_STATUS(l, h, HEALTH_UNHEALTHY);
	CHECK(strstr(health_error(h), "Connection refused"));
	CHECK_INT(s.n, 2);
	health_free(h);
	CHECK_INT(loop_timer_count(l), 0);
	loop_free(l);
}

/* An in-test server on the same loop that answers each connection with a
 * canned reply (or never answers). */
struct canned {
	struct loop *loop;
	int lfd;
	const char *reply; /* NULL: accept and say nothing */
	int conns[16];
	int nconns;
};

static void canned_accept(struct loop *loop, long long fd, void *arg, int mask)
{
	struct canned *c = arg;
	char err[256];
	int cfd;
	while ((cfd = net_accept(c->lfd, NULL, 0, err, sizeof(err))) >= 0) {
		if (c->reply) {
			(void)!write(cfd, c->reply, strlen(c->reply));
			close(cfd);
		} else if (c->nconns < 16) {
			c->conns[c->nconns++] = cfd;
		} else {
			close(cfd);
		}
	}
}

static void canned_start(struct canned *c, struct loop *l, const char *reply, int *port)
{
	memset(c, 0, sizeof(*c));
	c->loop = l;
	c->reply = reply;
	c->lfd = listener(port);
	CHECK_INT(loop_add_fd(l, c->lfd, LOOP_READ, canned_accept, c), 0);
}

static void canned_stop(struct canned *c)
{
	loop_del_fd(c->loop, c->lfd);
	close(c->lfd);
	for (int i = 0; i < c->nconns; i++)
		close(c->conns[i]);
}

static const char *probe_once(const char *reply, int retries)
{
	static char err[512];
	struct loop *l = mkloop();
	struct canned c;
	int port;
	canned_start(&c, l, reply, &port);
	struct seen s = {0};
	struct health_opts o = {
	    .kind = HEALTH_HTTP, .port = port, .retries = retries, .timeout_ms = 200};
	struct health *h = mk(l, &o, &s);
	health_start(h);
	wait_probes(l, h, 1);
	snprintf(err, sizeof(err), "%s%s", health_status(h) == HEALTH_HEALTHY ? "healthy" : "",
		 health_error(h));
	health_free(h);
	canned_stop(&c);
	loop_free(l);
	return err;
}

TEST(health_http_reads_only_the_status_line)
{
	CHECK_STR(probe_once("HTTP/1.1 204 No Content\r\n\r\n", 1), "healthy");
	CHECK_STR(probe_once("HTTP/1.0 302 Found\r\nLocation: /x\r\n\r\n", 1), "healthy");
	/* split over reads is fine; a bare \n ending too */
	CHECK_STR(probe_once("HTTP/1.1 200\n", 1), "healthy");
	CHECK(strstr(probe_once("HTTP/1.1 500 Oops\r\n\r\n", 1), ": status 500"));
	CHECK(strstr(probe_once("HTTP/1.1 199 Early\r\n\r\n", 1), ": status 199"));
	CHECK(strstr(probe_once("SSH-2.0-OpenSSH_9.2\r\n", 1),
		     ": bad status line 'SSH-2.0-OpenSSH_9.2'"));
	CHECK(strstr(probe_once("HTTP/1.1 2000 x\r\n", 1), "bad status line"));
	CHECK(strstr(probe_once("HTTP/1.1 20", 1), "connection closed before the status line"));
	CHECK(strstr(probe_once("", 1), "connection closed before the status line"));
	/* a hostile endless line is cut off at the bound */
	static char big[4096];
	memset(big, 'A', sizeof(big) - 1);
	memcpy(big, "HTTP/1.1 200 ", 13);
	CHECK(strstr(probe_once(big, 1), "status line longer than 1023 bytes"));
	/* control characters in the echoed line are masked */
	CHECK(strstr(probe_once("\x1b[31mHTTP\r\n", 1), "bad status line '?[31mHTTP'"));
}

TEST(health_http_server_that_never_answers_times_out)
{
	struct loop *l = mkloop();
	struct canned c;
	int port;
	canned_start(&c, l, NULL, &port);
	struct seen s = {0};
	struct health_opts o = {
	    .kind = HEALTH_HTTP, .port = port, .path = "/slow", .retries = 2, .timeout_ms = 100};
	struct health *h = mk(l, &o, &s);
	health_start(h);
	WAIT_STATUS(l, h, HEALTH_UNHEALTHY);
	char want[128];
	snprintf(want, sizeof(want), "http 127.0.0.1:%d/slow: timed out after 100 ms", port);
	CHECK_STR(health_error(h), want);
	CHECK(c.nconns >= 1);
	health_stop(h);
	CHECK_INT(loop_timer_count(l), 0);
	health_free(h);
	canned_stop(&c);
	loop_free(l);
}

TEST(health_tcp_connect)
{
	struct loop *l = mkloop();
	struct canned c;
	int port;
	canned_start(&c, l, "", &port);
	struct seen s = {0};
	struct health_opts o = {.kind = HEALTH_TCP, .port = port, .retries = 1};
	struct health *h = mk(l, &o, &s);
	health_start(h);
	WAIT_STATUS(l, h, HEALTH_HEALTHY);
	health_free(h);
	canned_stop(&c);

	int dead = dead_port();
	o.port = dead;
	h = mk(l, &o, &s);
	health_start(h);
	WAIT_STATUS(l, h, HEALTH_UNHEALTHY);
	char want[128];
	snprintf(want, sizeof(want), "tcp 127.0.0.1:%d: ", dead);
	CHECK(!strncmp(health_error(h), want, strlen(want)));
	CHECK(strstr(health_error(h), "Connection refused"));
	health_free(h);
	loop_free(l);
}

TEST(health_command_exit_status_and_env)
{
	struct loop *l = mkloop();
	struct seen s = {0};
	const char *env[] = {"WANT=yes", "PATH=/usr/bin:/bin", NULL};
	struct health_opts o = {
	    .kind = HEALTH_COMMAND, .command = "[ \"$WANT\" = yes ]", .envp = env, .retries = 2};
	struct health *h = mk(l, &o, &s);
	health_start(h);
	WAIT_STATUS(l, h, HEALTH_HEALTHY);
	health_free(h);

	o.command = "exit 7";
	h = mk(l, &o, &s);
	health_start(h);
	WAIT_STATUS(l, h, HEALTH_UNHEALTHY);
	CHECK_STR(health_error(h), "command: exit 7");
	CHECK_INT(health_probes(h), 2);
	health_free(h);
	loop_free(l);
}

TEST(health_command_timeout_kills_its_group)
{
	struct loop *l = mkloop();
	struct seen s = {0};
	struct health_opts o = {.kind = HEALTH_COMMAND,
				.command = "echo $$ > pid; sleep 30 & echo $! > bg; wait",
				.cwd = harness_tmpdir,
				.retries = 1,
				.timeout_ms = 150};
	struct health *h = mk(l, &o, &s);
	health_start(h);
	WAIT_STATUS(l, h, HEALTH_UNHEALTHY);
	CHECK_STR(health_error(h), "command: timed out after 150 ms");
	health_stop(h);
	/* both the shell and its background child are gone */
	char b[32];
	int fd = open("bg", O_RDONLY);
	CHECK(fd >= 0);
	ssize_t n = read(fd, b, sizeof(b) - 1);
	close(fd);
	CHECK(n > 0);
	b[n] = 0;
	pid_t bg = atoi(b);
	CHECK(bg > 1);
	int alive = 1;
	for (int i = 0; i < 500 && alive; i++) {
		char path[64], st[512];
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)bg);
		int f = open(path, O_RDONLY);
		if (f < 0) {
			alive = 0;
			break;
		}
		ssize_t m = read(f, st, sizeof(st) - 1);
		close(f);
		st[m > 0 ? m : 0] = 0;
		char *p = strrchr(st, ')');
		if (p && p[2] == 'Z')
			alive = 0;
		else
			usleep(10000);
	}
	CHECK(!alive);
	health_free(h);
	loop_free(l);
}

TEST(health_start_period_forgives_failures_and_recovery_is_reported)
{
	struct loop *l = mkloop();
	struct seen s = {0};
	struct health_opts o = {.kind = HEALTH_COMMAND,
				.command = "test -f ok",
				.cwd = harness_tmpdir,
				.retries = 2,
				.start_period_ms = 60000};
	struct health *h = mk(l, &o, &s);
	health_start(h);
	wait_probes(l, h, 4);
	CHECK_INT(health_status(h), HEALTH_STARTING);
	CHECK_INT(health_failures(h), 0);
	CHECK_STR(health_error(h), "command: exit 1");
	CHECK_INT(s.n, 0);
	/* a pass during the start period counts */
	int f = open("ok", O_WRONLY | O_CREAT, 0644);
	close(f);
	WAIT_STATUS(l, h, HEALTH_HEALTHY);
	health_free(h);

	/* without a start period: healthy, then unhealthy after 2 failures,
	 * then healthy again */
	s.n = 0;
	o.start_period_ms = 0;
	h = mk(l, &o, &s);
	health_start(h);
	WAIT_STATUS(l, h, HEALTH_HEALTHY);
	unlink("ok");
	WAIT_STATUS(l, h, HEALTH_UNHEALTHY);
	CHECK_INT(health_failures(h), 2);
	f = open("ok", O_WRONLY | O_CREAT, 0644);
	close(f);
	WAIT_STATUS(l, h, HEALTH_HEALTHY);
	CHECK_INT(s.n, 3);
	CHECK_INT(s.changes[0], HEALTH_HEALTHY);
	CHECK_INT(s.changes[1], HEALTH_UNHEALTHY);
	CHECK_INT(s.changes[2], HEALTH_HEALTHY);
	health_free(h);
	CHECK_INT(loop_timer_count(l), 0);
	loop_free(l);
}
