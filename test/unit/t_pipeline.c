/* Deploys with real tools: git (a bare repository over file://),
 * /usr/bin/python3 as the runtime and the web server, /bin/sh. */
#include "pipeline.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "buf.h"
#include "diag.h"
#include "harness.h"
#include "log.h"
#include "xalloc.h"

#define PATHS "/usr/bin:/bin"

static const char server_py[] =
    "import os, http.server\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        b = open('version.txt', 'rb').read()\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Length', str(len(b)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(b)\n"
    "    def log_message(self, *a):\n"
    "        pass\n"
    "http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\n";

struct ctx {
	struct loop *loop;
	struct pipeline *p;
	struct buf log;
	int stages[32];
	int nstages;
	int done;
	struct {
		enum pipeline_outcome outcome;
		enum pipeline_stage stage;
		char reason[1024], release[80], rtver[64], revision[80];
		pid_t pid;
		int port;
	} r;
	int proxy_calls, proxy_port, proxy_fail;
	int proxy_pending; /* on_proxy answers pending (1), or pending and done at once (2) */
	char proxy_root[PATH_MAX];
	char dir[PATH_MAX];
};

static void on_stage(struct pipeline *p, void *arg, int stage)
{
	struct ctx *c = arg;
	if (c->nstages < 32)
		c->stages[c->nstages++] = stage;
}

static void on_log(struct pipeline *p, void *arg, const char *line)
{
	struct ctx *c = arg;
	buf_puts(&c->log, line);
	buf_putc(&c->log, '\n');
}

static void on_done(struct pipeline *p, void *arg, const struct pipeline_result *r)
{
	struct ctx *c = arg;
	c->done = 1;
	c->r.outcome = r->outcome;
	c->r.stage = r->stage;
	snprintf(c->r.reason, sizeof(c->r.reason), "%s", r->reason);
	snprintf(c->r.release, sizeof(c->r.release), "%s", r->release);
	snprintf(c->r.rtver, sizeof(c->r.rtver), "%s", r->runtime_version);
	snprintf(c->r.revision, sizeof(c->r.revision), "%s", r->revision);
	c->r.pid = r->pid;
	c->r.port = r->port;
}

static int on_proxy(struct pipeline *p, void *arg, const struct pipeline_target *t, char *err,
		    size_t errlen)
{
	struct ctx *c = arg;
	if (c->proxy_fail) {
		snprintf(err, errlen, "caddy said no");
		return -1;
	}
	c->proxy_calls++;
	c->proxy_port = t->port;
	snprintf(c->proxy_root, sizeof(c->proxy_root), "%s", t->root ? t->root : "");
	if (c->proxy_pending == 2)
		pipeline_proxy_done(p, 1, NULL);
	return c->proxy_pending ? 1 : 0;
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *cmd = xvasprintf(fmt, ap);
	va_end(ap);
	int rc = system(cmd);
	if (rc != 0)
		harness_fail(__FILE__, __LINE__, "command failed (%d): %s", rc, cmd);
	free(cmd);
}

/* A bare repository ./origin.git with server.py and version.txt = version,
 * and a work tree ./work to commit more. */
static void make_repo(const char *version)
{
	FILE *f = fopen("server.py", "w");
	CHECK(f);
	fputs(server_py, f);
	fclose(f);
	sh("git init -q --bare -b main origin.git && git init -q -b main work && "
	   "mv server.py work/ && echo %s > work/version.txt && cd work && "
	   "git add . && git -c user.name=t -c user.email=t@t commit -qm one && "
	   "git push -q ../origin.git main 2>/dev/null",
	   version);
}

static void commit_version(const char *version)
{
	sh("cd work && echo %s > version.txt && git -c user.name=t -c user.email=t@t "
	   "commit -qam %s && git push -q ../origin.git main 2>/dev/null",
	   version, version);
}

static void ctx_init_path(struct ctx *c, int keep, const char *search_path)
{
	memset(c, 0, sizeof(*c));
	buf_init(&c->log);
	log_set_level(LOG_LVL_ERROR);
	char err[256];
	c->loop = loop_new(0, err, sizeof(err));
	CHECK(c->loop);
	snprintf(c->dir, sizeof(c->dir), "%s/svc", harness_tmpdir);
	struct pipeline_opts o = {.name = "web",
				  .dir = c->dir,
				  .search_path = search_path,
				  .keep = keep,
				  .fetch_timeout_ms = 20000,
				  .build_timeout_ms = 20000,
				  .hook_timeout_ms = 10000,
				  .health_timeout_ms = 10000,
				  .gate_interval_ms = 100,
				  .settle_ms = 300,
				  .stop_grace_ms = 2000,
				  .switch_timeout_ms = 2000,
				  .on_stage = on_stage,
				  .on_log = on_log,
				  .on_done = on_done,
				  .on_proxy = on_proxy,
				  .arg = c};
	c->p = pipeline_new(c->loop, &o, err, sizeof(err));
	if (!c->p)
		harness_fail(__FILE__, __LINE__, "%s", err);
}

static void ctx_init(struct ctx *c, int keep)
{
	ctx_init_path(c, keep, PATHS);
}

/* Kill what the test left running, free everything. */
static void ctx_free(struct ctx *c)
{
	pid_t pid;
	if (pipeline_current(c->p, &pid, NULL) && pid > 0)
		kill(-pid, SIGKILL);
	pipeline_free(c->p);
	loop_free(c->loop);
	buf_release(&c->log);
}

static void run_until_done(struct ctx *c, int line)
{
	long long end = loop_now_ms() + 25000;
	while (!c->done) {
		if (loop_now_ms() > end)
			harness_fail(__FILE__, line, "no result; stage %s; log:\n%s",
				     pipeline_stage_name(pipeline_stage(c->p)), c->log.data);
		loop_run_once(c->loop, 50);
	}
}
#define RUN_UNTIL_DONE(c) run_until_done(c, __LINE__)

/* Parse yaml (a valid blueprint) into *f and return it. */
static const struct bp *blueprint(struct bp_file **f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const struct bp *blueprint(struct bp_file **f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *y = xvasprintf(fmt, ap);
	va_end(ap);
	struct diag_list dl;
	diag_list_init(&dl);
	*f = bp_parse("t.yaml", y, strlen(y), &dl);
	const struct bp *bp = bp_file_count(*f) ? bp_file_get(*f, 0) : NULL;
	if (!bp || bp->nerrors)
		harness_fail(__FILE__, __LINE__, "blueprint has errors:\n%s", y);
	diag_list_release(&dl);
	free(y);
	return bp;
}

static void deploy(struct ctx *c, const char *id, const struct bp *bp, const char *const *secrets,
		   size_t nsecrets, int line)
{
	char err[512];
	struct pipeline_req r = {.id = id, .bp = bp, .secrets = secrets, .nsecrets = nsecrets};
	c->done = 0;
	c->nstages = 0;
	buf_reset(&c->log);
	if (pipeline_deploy(c->p, &r, err, sizeof(err)) < 0)
		harness_fail(__FILE__, line, "deploy: %s", err);
	CHECK(!c->done); /* never from inside the call */
	run_until_done(c, line);
}
#define DEPLOY(c, id, bp) deploy(c, id, bp, NULL, 0, __LINE__)

/* GET / on 127.0.0.1:port; the body into out. 0, or -1 if nothing answers. */
static int http_get(int port, char *out, size_t outlen)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = {3, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	const char req[] = "GET / HTTP/1.0\r\nHost: x\r\n\r\n";
	if (write(fd, req, sizeof(req) - 1) < 0) {
		close(fd);
		return -1;
	}
	struct buf b = BUF_INIT;
	char tmp[1024];
	ssize_t n;
	while ((n = read(fd, tmp, sizeof(tmp))) > 0)
		buf_add(&b, tmp, (size_t)n);
	close(fd);
	const char *body = strstr(b.data, "\r\n\r\n");
	snprintf(out, outlen, "%s", body ? body + 4 : "");
	char *nl = strchr(out, '\n');
	if (nl)
		*nl = 0;
	int rc = strncmp(b.data, "HTTP/1.0 200", 12) ? -1 : 0;
	buf_release(&b);
	return rc;
}

/* 1 if a live (not zombie) process is in group pgid. Zombies count as
 * gone: here PID 1 may not reap orphans. */
static int group_alive(pid_t pgid)
{
	DIR *d = opendir("/proc");
	if (!d)
		return kill(-pgid, 0) == 0;
	struct dirent *e;
	int alive = 0;
	while (!alive && (e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char path[300], b[512];
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t n = fread(b, 1, sizeof(b) - 1, f);
		fclose(f);
		b[n] = 0;
		char *rp = strrchr(b, ')');
		char st;
		int ppid, pgrp;
		if (rp && sscanf(rp + 1, " %c %d %d", &st, &ppid, &pgrp) == 3 && pgrp == pgid &&
		    st != 'Z' && st != 'X')
			alive = 1;
	}
	closedir(d);
	return alive;
}

/* Wait (bounded) until no process is left in group pgid. */
static int group_gone(struct ctx *c, pid_t pgid)
{
	long long end = loop_now_ms() + 5000;
	while (group_alive(pgid)) {
		if (loop_now_ms() > end)
			return 0;
		loop_run_once(c->loop, 20);
	}
	return 1;
}

static int exists(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int exists(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = xvasprintf(fmt, ap);
	va_end(ap);
	struct stat st;
	int rc = lstat(p, &st) == 0;
	free(p);
	return rc;
}

static void current_is(struct ctx *c, const char *id, int line)
{
	char *l = xasprintf("%s/current", c->dir), t[256];
	ssize_t n = readlink(l, t, sizeof(t) - 1);
	free(l);
	if (n < 0)
		harness_fail(__FILE__, line, "no current link");
	t[n] = 0;
	char *want = xasprintf("releases/%s", id);
	if (strcmp(t, want))
		harness_fail(__FILE__, line, "current -> %s, expected %s", t, want);
	free(want);
}
#define CURRENT_IS(c, id) current_is(c, id, __LINE__)

#define WEB_BP                                                                                     \
	"name: web\ntype: web\nsource: remote\nruntime: python\n"                                  \
	"remote: {url: 'file://%s/origin.git', branch: main}\n"                                    \
	"run_cmd: exec /usr/bin/python3 server.py\n"

TEST(web_deploy_redeploy_switches_and_stops_old)
{
	make_repo("v1");
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f;
	const struct bp *bp = blueprint(&f, WEB_BP "health_check: /\n", harness_tmpdir);
	DEPLOY(&c, "d1", bp);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	CHECK_STR(c.r.reason, "");
	CHECK_STR(c.r.release, "d1");
	CHECK_INT(strlen(c.r.revision), 40);
	CHECK_STR(c.r.rtver, "3.11.2");
	CHECK(c.r.port > 0 && c.r.pid > 0);
	CHECK_INT(c.proxy_calls, 1);
	CHECK_INT(c.proxy_port, c.r.port);
	CURRENT_IS(&c, "d1");
	CHECK(strstr(c.log.data, "runtime: python 3.11.2 at /usr/bin/python3"));
	CHECK(strstr(c.log.data, "health: healthy"));
	int seen_fetch = 0, seen_health = 0;
	for (int i = 0; i < c.nstages; i++) {
		seen_fetch |= c.stages[i] == PIPELINE_FETCH;
		seen_health |= c.stages[i] == PIPELINE_HEALTH;
	}
	CHECK(seen_fetch && seen_health);
	char body[256];
	CHECK_INT(http_get(c.r.port, body, sizeof(body)), 0);
	CHECK_STR(body, "v1");
	int port1 = c.r.port;
	pid_t pid1 = c.r.pid;
	char rev1[64];
	snprintf(rev1, sizeof(rev1), "%s", c.r.revision);

	commit_version("v2");
	DEPLOY(&c, "d2", bp);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	CHECK(c.r.port != port1);
	CHECK(strcmp(c.r.revision, rev1) != 0);
	CHECK_INT(c.proxy_port, c.r.port);
	CHECK_INT(http_get(c.r.port, body, sizeof(body)), 0);
	CHECK_STR(body, "v2");
	CURRENT_IS(&c, "d2");
	CHECK(group_gone(&c, pid1));
	pid_t pid;
	int port;
	CHECK_STR(pipeline_current(c.p, &pid, &port), "d2");
	CHECK_INT(port, c.r.port);
	CHECK(exists("%s/releases/d1/release", c.dir));
	bp_file_free(f);
	ctx_free(&c);
}

/* Deploy d1 (v1, healthy), returning its port. */
static int deploy_v1(struct ctx *c, struct bp_file **f)
{
	make_repo("v1");
	const struct bp *bp = blueprint(f, WEB_BP, harness_tmpdir);
	DEPLOY(c, "d1", bp);
	CHECK_INT(c->r.outcome, PIPELINE_DONE);
	return c->r.port;
}

static void still_serving_v1(struct ctx *c, int port, int line)
{
	char body[256];
	if (http_get(port, body, sizeof(body)) < 0 || strcmp(body, "v1"))
		harness_fail(__FILE__, line, "the previous release does not serve");
	current_is(c, "d1", line);
	pid_t pid;
	const char *cur = pipeline_current(c->p, &pid, NULL);
	if (!cur || strcmp(cur, "d1") || kill(pid, 0) < 0)
		harness_fail(__FILE__, line, "the previous release is not current");
}
#define STILL_SERVING_V1(c, port) still_serving_v1(c, port, __LINE__)

TEST(failed_build_keeps_previous_release)
{
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f1, *f2;
	int port = deploy_v1(&c, &f1);
	const struct bp *bp = blueprint(&f2,
					WEB_BP "build_cmd: echo compiling; echo no such "
					       "module >&2; exit 3\n",
					harness_tmpdir);
	DEPLOY(&c, "d2", bp);
	CHECK_INT(c.r.outcome, PIPELINE_ERROR);
	CHECK_INT(c.r.stage, PIPELINE_BUILD);
	CHECK(strstr(c.r.reason, "build: exited with status 3: no such module"));
	CHECK(strstr(c.log.data, "compiling\n"));
	CHECK(strstr(c.log.data, "error: build: exited with status 3"));
	CHECK(!exists("%s/releases/d2", c.dir));
	CHECK_INT(c.proxy_calls, 1);
	STILL_SERVING_V1(&c, port);
	bp_file_free(f1);
	bp_file_free(f2);
	ctx_free(&c);
}

TEST(health_that_never_passes_keeps_previous_release)
{
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f1, *f2;
	int port = deploy_v1(&c, &f1);
	/* Runs, but never listens on PORT: the TCP check never passes. */
	const struct bp *bp = blueprint(&f2,
					"name: web\ntype: web\nsource: remote\nruntime: python\n"
					"remote: {url: 'file://%s/origin.git'}\n"
					"run_cmd: echo $$ > %s/newpid; exec sleep 60\n",
					harness_tmpdir, harness_tmpdir);
	pid_t pid1 = c.r.pid;
	pipeline_free(c.p);
	struct pipeline_opts o = {.name = "web",
				  .dir = c.dir,
				  .search_path = PATHS,
				  .health_timeout_ms = 1500,
				  .gate_interval_ms = 100,
				  .stop_grace_ms = 2000,
				  .on_log = on_log,
				  .on_done = on_done,
				  .on_proxy = on_proxy,
				  .arg = &c};
	char err[256];
	/* A new pipeline over the same directory: the serving release is
	 * not its own (as after an agent restart) and must stay untouched. */
	c.p = pipeline_new(c.loop, &o, err, sizeof(err));
	CHECK(c.p);
	DEPLOY(&c, "d2", bp);
	CHECK_INT(c.r.outcome, PIPELINE_ERROR);
	CHECK_INT(c.r.stage, PIPELINE_HEALTH);
	CHECK(strstr(c.r.reason, "health: not healthy within 1500 ms: tcp 127.0.0.1:"));
	CHECK(!exists("%s/releases/d2", c.dir));
	struct buf pidb = BUF_INIT;
	CHECK(buf_read_file(&pidb, "newpid", 64, err, sizeof(err)) == 0);
	CHECK(group_gone(&c, (pid_t)atoi(pidb.data)));
	buf_release(&pidb);
	char body[256];
	CHECK_INT(http_get(port, body, sizeof(body)), 0);
	CHECK_STR(body, "v1");
	CURRENT_IS(&c, "d1");
	/* d1 by its saved pid: this pipeline does not know it. */
	kill(-pid1, SIGKILL);
	bp_file_free(f1);
	bp_file_free(f2);
	ctx_free(&c);
}

TEST(crash_on_start_fails_with_its_output)
{
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f1, *f2;
	int port = deploy_v1(&c, &f1);
	const struct bp *bp = blueprint(&f2,
					"name: web\ntype: web\nsource: remote\nruntime: python\n"
					"remote: {url: 'file://%s/origin.git'}\n"
					"run_cmd: 'echo boom: no config >&2; exit 7'\n",
					harness_tmpdir);
	DEPLOY(&c, "d2", bp);
	CHECK_INT(c.r.outcome, PIPELINE_ERROR);
	CHECK(c.r.stage == PIPELINE_HEALTH || c.r.stage == PIPELINE_START);
	CHECK(strstr(c.r.reason, "exited with status 7"));
	CHECK(strstr(c.log.data, "output: boom: no config"));
	CHECK(!exists("%s/releases/d2", c.dir));
	CHECK(exists("%s/logs/d2.log", c.dir));
	STILL_SERVING_V1(&c, port);
	bp_file_free(f1);
	bp_file_free(f2);
	ctx_free(&c);
}

TEST(cancel_during_build_kills_its_group)
{
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f1, *f2;
	int port = deploy_v1(&c, &f1);
	const struct bp *bp =
	    blueprint(&f2, WEB_BP "build_cmd: echo $$ > %s/buildpid; sleep 600; true\n",
		      harness_tmpdir, harness_tmpdir);
	char err[256];
	struct pipeline_req r = {.id = "d2", .bp = bp};
	c.done = 0;
	CHECK_INT(pipeline_deploy(c.p, &r, err, sizeof(err)), 0);
	CHECK_INT(pipeline_deploy(c.p, &r, err, sizeof(err)), -1);
	CHECK(strstr(err, "in progress"));
	long long end = loop_now_ms() + 15000;
	while (!exists("buildpid") || pipeline_stage(c.p) != PIPELINE_BUILD) {
		CHECK(loop_now_ms() < end);
		CHECK(!c.done);
		loop_run_once(c.loop, 20);
	}
	struct buf pidb = BUF_INIT;
	while (pidb.len == 0 || pidb.data[pidb.len - 1] != '\n') {
		buf_reset(&pidb);
		CHECK(buf_read_file(&pidb, "buildpid", 64, err, sizeof(err)) == 0);
		CHECK(loop_now_ms() < end);
	}
	pid_t pgid = (pid_t)atoi(pidb.data);
	buf_release(&pidb);
	CHECK(group_alive(pgid));
	CHECK_INT(pipeline_cancel(c.p), 0);
	CHECK_INT(pipeline_cancel(c.p), -1);
	/* Bounded (25 s) while the build would sleep 600 s: ending at all
	 * means the group was killed. */
	RUN_UNTIL_DONE(&c);
	CHECK_INT(c.r.outcome, PIPELINE_CANCELLED);
	CHECK_INT(c.r.stage, PIPELINE_BUILD);
	CHECK(group_gone(&c, pgid));
	CHECK(!exists("%s/releases/d2", c.dir));
	CHECK(strstr(c.log.data, "\ncancelled at build\n"));
	CHECK_STR(c.r.reason, "cancelled at build");
	STILL_SERVING_V1(&c, port);
	CHECK_INT(pipeline_cancel(c.p), -1);
	bp_file_free(f1);
	bp_file_free(f2);
	ctx_free(&c);
}

TEST(rollback_reactivates_without_rebuild)
{
	make_repo("v1");
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f;
	const struct bp *bp = blueprint(&f, WEB_BP "build_cmd: echo built >> %s/builds\n",
					harness_tmpdir, harness_tmpdir);
	DEPLOY(&c, "d1", bp);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	char rev1[80];
	snprintf(rev1, sizeof(rev1), "%s", c.r.revision);
	commit_version("v2");
	DEPLOY(&c, "d2", bp);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	pid_t pid2 = c.r.pid;
	char err[256];
	struct pipeline_req r = {.id = "d2", .bp = bp};
	CHECK_INT(pipeline_rollback(c.p, &r, err, sizeof(err)), -1);
	CHECK(strstr(err, "already the current release"));
	r.id = "d9";
	CHECK_INT(pipeline_rollback(c.p, &r, err, sizeof(err)), -1);
	CHECK(strstr(err, "not kept"));
	r.id = "d1";
	c.done = 0;
	buf_reset(&c.log);
	CHECK_INT(pipeline_rollback(c.p, &r, err, sizeof(err)), 0);
	RUN_UNTIL_DONE(&c);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	CHECK_STR(c.r.release, "d1");
	CHECK_STR(c.r.revision, rev1);
	CHECK_STR(c.r.rtver, "3.11.2");
	char body[256];
	CHECK_INT(http_get(c.r.port, body, sizeof(body)), 0);
	CHECK_STR(body, "v1");
	CURRENT_IS(&c, "d1");
	CHECK(group_gone(&c, pid2));
	CHECK(!strstr(c.log.data, "fetch:"));
	struct buf b = BUF_INIT;
	CHECK(buf_read_file(&b, "builds", 1024, err, sizeof(err)) == 0);
	CHECK_STR(b.data, "built\nbuilt\n");
	buf_release(&b);
	CHECK(exists("%s/releases/d2", c.dir));
	bp_file_free(f);
	ctx_free(&c);
}

#define STATIC_BP_NOBUILD                                                                          \
	"name: site\ntype: static\nsource: remote\nruntime: static\n"                              \
	"remote: {url: 'file://%s/origin.git'}\nstatic_dir: dist\n"

#define STATIC_BP                                                                                  \
	"name: site\ntype: static\nsource: remote\nruntime: static\n"                              \
	"remote: {url: 'file://%s/origin.git'}\n"                                                  \
	"build_cmd: mkdir -p dist && cp version.txt dist/index.html\nstatic_dir: dist\n"

TEST(static_site_switches_only)
{
	make_repo("v1");
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f;
	const struct bp *bp = blueprint(&f, STATIC_BP, harness_tmpdir);
	DEPLOY(&c, "s1", bp);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	CHECK_INT(c.r.pid, 0);
	CHECK_INT(c.r.port, 0);
	CHECK_STR(c.r.rtver, "");
	CHECK_INT(c.proxy_calls, 1);
	CHECK(strstr(c.proxy_root, "/releases/s1/src/dist"));
	char *idx = xasprintf("%s/index.html", c.proxy_root);
	CHECK(exists("%s", idx));
	free(idx);
	CURRENT_IS(&c, "s1");
	for (int i = 0; i < c.nstages; i++)
		CHECK(c.stages[i] != PIPELINE_START && c.stages[i] != PIPELINE_HEALTH);
	/* A proxy that refuses: nothing switches. */
	c.proxy_fail = 1;
	DEPLOY(&c, "s2", bp);
	CHECK_INT(c.r.outcome, PIPELINE_ERROR);
	CHECK_INT(c.r.stage, PIPELINE_SWITCH);
	CHECK(strstr(c.r.reason, "switch: proxy: caddy said no"));
	CURRENT_IS(&c, "s1");
	CHECK(!exists("%s/releases/s2", c.dir));
	bp_file_free(f);
	ctx_free(&c);
}

TEST(prune_keeps_the_newest)
{
	make_repo("v1");
	struct ctx c;
	ctx_init(&c, 3);
	struct bp_file *f;
	const struct bp *bp = blueprint(&f, STATIC_BP, harness_tmpdir);
	const char *ids[] = {"r1", "r2", "r3", "r4", "r5"};
	for (int i = 0; i < 5; i++) {
		DEPLOY(&c, ids[i], bp);
		CHECK_INT(c.r.outcome, PIPELINE_DONE);
	}
	CHECK(!exists("%s/releases/r1", c.dir));
	CHECK(!exists("%s/releases/r2", c.dir));
	CHECK(exists("%s/releases/r3", c.dir));
	CHECK(exists("%s/releases/r4", c.dir));
	CHECK(exists("%s/releases/r5", c.dir));
	CHECK(strstr(c.log.data, "prune: removing release r2"));
	/* Roll back to r3, then deploy: r4 (now the oldest, neither current
	 * nor previous) goes, r3 (previous) stays. */
	char err[256];
	struct pipeline_req r = {.id = "r3", .bp = bp};
	c.done = 0;
	CHECK_INT(pipeline_rollback(c.p, &r, err, sizeof(err)), 0);
	RUN_UNTIL_DONE(&c);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	DEPLOY(&c, "r6", bp);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	CHECK(exists("%s/releases/r3", c.dir));
	CHECK(exists("%s/releases/r6", c.dir));
	CHECK(exists("%s/releases/r5", c.dir));
	CHECK(!exists("%s/releases/r4", c.dir));
	bp_file_free(f);
	ctx_free(&c);
}

TEST(worker_is_healthy_when_it_keeps_running)
{
	make_repo("v1");
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f, *f2;
	const struct bp *bp = blueprint(&f,
					"name: wk\ntype: worker\nsource: remote\nruntime: python\n"
					"remote: {url: 'file://%s/origin.git'}\n"
					"run_cmd: exec sleep 60\n",
					harness_tmpdir);
	DEPLOY(&c, "w1", bp);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	CHECK(c.r.pid > 0);
	CHECK_INT(c.r.port, 0);
	CHECK_INT(c.proxy_calls, 0);
	CHECK(kill(c.r.pid, 0) == 0);
	/* A worker that exits at once is not healthy. */
	const struct bp *bad = blueprint(&f2,
					 "name: wk\ntype: worker\nsource: remote\nruntime: python\n"
					 "remote: {url: 'file://%s/origin.git'}\n"
					 "run_cmd: sleep 0.1; exit 0\n",
					 harness_tmpdir);
	pid_t pid1 = c.r.pid;
	DEPLOY(&c, "w2", bad);
	CHECK_INT(c.r.outcome, PIPELINE_ERROR);
	CHECK(strstr(c.r.reason, "health: the service exited with status 0 before it was healthy"));
	CHECK(kill(pid1, 0) == 0);
	bp_file_free(f);
	bp_file_free(f2);
	ctx_free(&c);
}

TEST(job_runs_to_completion)
{
	make_repo("v1");
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f, *f2;
	const struct bp *bp = blueprint(&f,
					"name: jb\ntype: job\nsource: remote\nruntime: python\n"
					"remote: {url: 'file://%s/origin.git'}\n"
					"run_cmd: cat version.txt > %s/job.out\n",
					harness_tmpdir, harness_tmpdir);
	DEPLOY(&c, "j1", bp);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	CHECK(exists("job.out"));
	const struct bp *bad = blueprint(&f2,
					 "name: jb\ntype: job\nsource: remote\nruntime: python\n"
					 "remote: {url: 'file://%s/origin.git'}\n"
					 "run_cmd: exit 4\n",
					 harness_tmpdir);
	DEPLOY(&c, "j2", bad);
	CHECK_INT(c.r.outcome, PIPELINE_ERROR);
	CHECK(strstr(c.r.reason, "health: the job exited with status 4"));
	CURRENT_IS(&c, "j1");
	bp_file_free(f);
	bp_file_free(f2);
	ctx_free(&c);
}

TEST(missing_runtime_fails_before_touching_the_release)
{
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f1, *f2;
	int port = deploy_v1(&c, &f1);
	const struct bp *bp = blueprint(
	    &f2,
	    "name: web\ntype: web\nsource: remote\nruntime: {type: python, version: '2.1'}\n"
	    "remote: {url: 'file://%s/origin.git'}\n"
	    "build_cmd: touch %s/built\nrun_cmd: exec /usr/bin/python3 server.py\n",
	    harness_tmpdir, harness_tmpdir);
	DEPLOY(&c, "d2", bp);
	CHECK_INT(c.r.outcome, PIPELINE_ERROR);
	CHECK_INT(c.r.stage, PIPELINE_RUNTIME);
	CHECK(strstr(c.r.reason, "runtime: runtime python 2.1 not installed"));
	CHECK(strstr(c.r.reason, "3.11.2"));
	CHECK(!exists("built"));
	CHECK(!exists("%s/releases/d2", c.dir));
	STILL_SERVING_V1(&c, port);
	bp_file_free(f1);
	bp_file_free(f2);
	ctx_free(&c);
}

TEST(env_and_secrets_reach_the_process_never_the_log)
{
	make_repo("v1");
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f;
	const struct bp *bp = blueprint(
	    &f,
	    "name: web\ntype: web\nsource: remote\nruntime: python\n"
	    "remote: {url: 'file://%s/origin.git'}\n"
	    "env_vars: {GREETING: hello world, DEBUG: 1}\nsecrets: [API_TOKEN]\n"
	    "build_cmd: echo token is $API_TOKEN; echo building >&2\n"
	    "hooks: {pre_deploy: 'echo pre $API_TOKEN', post_deploy: 'echo post $GREETING'}\n"
	    "run_cmd: env > %s/env.out; echo started with $API_TOKEN; "
	    "exec /usr/bin/python3 server.py\n",
	    harness_tmpdir, harness_tmpdir);
	const char *secrets[] = {"API_TOKEN=s3cr3t-t0ken-value"};
	deploy(&c, "d1", bp, secrets, 1, __LINE__);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	struct buf env = BUF_INIT;
	char err[256];
	CHECK(buf_read_file(&env, "env.out", 65536, err, sizeof(err)) == 0);
	CHECK(strstr(env.data, "API_TOKEN=s3cr3t-t0ken-value\n"));
	CHECK(strstr(env.data, "GREETING=hello world\n"));
	CHECK(strstr(env.data, "DEBUG=1\n"));
	char *port = xasprintf("PORT=%d\n", c.r.port);
	CHECK(strstr(env.data, port));
	free(port);
	char *path = xasprintf("PATH=%s/releases/d1/bin:" PATHS "\n", c.dir);
	CHECK(strstr(env.data, path));
	free(path);
	char lt[256];
	char *link = xasprintf("%s/releases/d1/bin/python3", c.dir);
	ssize_t ln = readlink(link, lt, sizeof(lt) - 1);
	free(link);
	CHECK(ln > 0);
	lt[ln > 0 ? ln : 0] = 0;
	CHECK_STR(lt, "/usr/bin/python3");
	buf_release(&env);
	CHECK(strstr(c.log.data, "token is [secret]\n"));
	CHECK(strstr(c.log.data, "pre [secret]\n"));
	CHECK(strstr(c.log.data, "post hello world\n"));
	CHECK(strstr(c.log.data, "building\n"));
	CHECK(!strstr(c.log.data, "s3cr3t"));
	/* A failure whose reason quotes the secret: scrubbed there too. */
	struct bp_file *f2;
	const struct bp *bad =
	    blueprint(&f2,
		      "name: web\ntype: web\nsource: remote\nruntime: python\n"
		      "remote: {url: 'file://%s/origin.git'}\nsecrets: [API_TOKEN]\n"
		      "build_cmd: echo bad token $API_TOKEN; exit 1\n"
		      "run_cmd: exec /usr/bin/python3 server.py\n",
		      harness_tmpdir);
	deploy(&c, "d2", bad, secrets, 1, __LINE__);
	CHECK_INT(c.r.outcome, PIPELINE_ERROR);
	CHECK(strstr(c.r.reason, "bad token [secret]"));
	CHECK(!strstr(c.r.reason, "s3cr3t"));
	CHECK(!strstr(c.log.data, "s3cr3t"));
	bp_file_free(f);
	bp_file_free(f2);
	ctx_free(&c);
}

TEST(upload_archive_and_bad_requests)
{
	sh("mkdir -p up/site && echo hi > up/site/index.html && tar -C up -cf up.tar site");
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f;
	const struct bp *bp =
	    blueprint(&f, "name: st\ntype: static\nsource: upload\nruntime: static\n"
			  "static_dir: site\n");
	char err[512];
	char *tar = xasprintf("%s/up.tar", harness_tmpdir);
	struct pipeline_req r = {.id = "u1", .bp = bp, .upload = tar};
	c.done = 0;
	CHECK_INT(pipeline_deploy(c.p, &r, err, sizeof(err)), 0);
	RUN_UNTIL_DONE(&c);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	CHECK_STR(c.r.revision, "");
	CHECK(exists("%s/releases/u1/src/site/index.html", c.dir));
	CHECK(strstr(c.proxy_root, "/releases/u1/src/site"));
	/* The same id again, bad ids, a bad secret (never quoted). */
	CHECK_INT(pipeline_deploy(c.p, &r, err, sizeof(err)), -1);
	CHECK(strstr(err, "release exists"));
	const char *badids[] = {"..", "a/b", "", "x y"};
	for (size_t i = 0; i < 4; i++) {
		r.id = badids[i];
		CHECK_INT(pipeline_deploy(c.p, &r, err, sizeof(err)), -1);
		CHECK(strstr(err, "invalid deployment id"));
	}
	const char *sec[] = {"not-a-name=hunter22"};
	r.id = "u2";
	r.secrets = sec;
	r.nsecrets = 1;
	CHECK_INT(pipeline_deploy(c.p, &r, err, sizeof(err)), -1);
	CHECK(!strstr(err, "hunter22"));
	/* An archive that escapes its root fails the fetch. */
	sh("printf x > evil && tar -cf evil.tar --absolute-names --transform 's,^,../,' evil");
	free(tar);
	tar = xasprintf("%s/evil.tar", harness_tmpdir);
	r.upload = tar;
	r.secrets = NULL;
	r.nsecrets = 0;
	c.done = 0;
	CHECK_INT(pipeline_deploy(c.p, &r, err, sizeof(err)), 0);
	RUN_UNTIL_DONE(&c);
	CHECK_INT(c.r.outcome, PIPELINE_ERROR);
	CHECK_INT(c.r.stage, PIPELINE_FETCH);
	CHECK(strstr(c.r.reason, "escapes"));
	CHECK(!exists("%s/releases/u2", c.dir));
	CHECK(!exists("%s/releases/evil", c.dir));
	free(tar);
	bp_file_free(f);
	ctx_free(&c);
}

TEST(fetch_failures)
{
	make_repo("v1");
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f, *f2;
	const struct bp *bp = blueprint(&f,
					"name: web\ntype: web\nsource: remote\nruntime: python\n"
					"remote: {url: 'file://%s/origin.git', branch: nope}\n"
					"run_cmd: exec /usr/bin/python3 server.py\n",
					harness_tmpdir);
	DEPLOY(&c, "d1", bp);
	CHECK_INT(c.r.outcome, PIPELINE_ERROR);
	CHECK_INT(c.r.stage, PIPELINE_FETCH);
	CHECK(strstr(c.r.reason, "fetch: git clone: exited with status"));
	CHECK(strstr(c.r.reason, "nope"));
	CHECK(!exists("%s/releases/d1", c.dir));
	CHECK(!exists("%s/current", c.dir));
	/* A token in an https URL is never shown (the clone fails: no network). */
	const struct bp *tok =
	    blueprint(&f2, "name: web\ntype: web\nsource: remote\nruntime: python\n"
			   "remote: {url: 'https://ghp_tok3n@127.0.0.1:1/x.git'}\n"
			   "run_cmd: exec /usr/bin/python3 server.py\n");
	DEPLOY(&c, "d2", tok);
	CHECK_INT(c.r.outcome, PIPELINE_ERROR);
	CHECK(!strstr(c.log.data, "ghp_tok3n"));
	CHECK(!strstr(c.r.reason, "ghp_tok3n"));
	CHECK(strstr(c.log.data, "https://127.0.0.1:1/x.git"));
	bp_file_free(f);
	bp_file_free(f2);
	ctx_free(&c);
}

TEST(build_deadline_from_the_blueprint)
{
	make_repo("v1");
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f;
	const struct bp *bp =
	    blueprint(&f, WEB_BP "timeout: 1s\nbuild_cmd: sleep 30\n", harness_tmpdir);
	DEPLOY(&c, "d1", bp);
	CHECK_INT(c.r.outcome, PIPELINE_ERROR);
	CHECK_INT(c.r.stage, PIPELINE_BUILD);
	CHECK_STR(c.r.reason, "build: timed out after 1000 ms");
	CHECK(!exists("%s/releases/d1", c.dir));
	CHECK(!exists("%s/current", c.dir));
	bp_file_free(f);
	ctx_free(&c);
}

TEST(cancel_during_health_stops_the_new_release)
{
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f1, *f2;
	int port = deploy_v1(&c, &f1);
	const struct bp *bp = blueprint(&f2,
					"name: web\ntype: web\nsource: remote\nruntime: python\n"
					"remote: {url: 'file://%s/origin.git'}\n"
					"run_cmd: echo $$ > %s/newpid; exec sleep 60\n",
					harness_tmpdir, harness_tmpdir);
	char err[256];
	struct pipeline_req r = {.id = "d2", .bp = bp};
	c.done = 0;
	CHECK_INT(pipeline_deploy(c.p, &r, err, sizeof(err)), 0);
	long long end = loop_now_ms() + 15000;
	while (!exists("newpid") || pipeline_stage(c.p) != PIPELINE_HEALTH) {
		CHECK(loop_now_ms() < end);
		CHECK(!c.done);
		loop_run_once(c.loop, 20);
	}
	struct buf pidb = BUF_INIT;
	while (pidb.len == 0 || pidb.data[pidb.len - 1] != '\n') {
		buf_reset(&pidb);
		CHECK(buf_read_file(&pidb, "newpid", 64, err, sizeof(err)) == 0);
		CHECK(loop_now_ms() < end);
	}
	pid_t pgid = (pid_t)atoi(pidb.data);
	buf_release(&pidb);
	CHECK(group_alive(pgid));
	CHECK_INT(pipeline_cancel(c.p), 0);
	RUN_UNTIL_DONE(&c);
	CHECK_INT(c.r.outcome, PIPELINE_CANCELLED);
	CHECK_INT(c.r.stage, PIPELINE_HEALTH);
	CHECK(group_gone(&c, pgid));
	CHECK(!exists("%s/releases/d2", c.dir));
	STILL_SERVING_V1(&c, port);
	bp_file_free(f1);
	bp_file_free(f2);
	ctx_free(&c);
}

TEST(scheduled_job_waits_for_its_time)
{
	make_repo("v1");
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f;
	const struct bp *bp = blueprint(&f,
					"name: jb\ntype: job\nsource: remote\nruntime: python\n"
					"remote: {url: 'file://%s/origin.git'}\n"
					"schedule: '@yearly'\nrun_cmd: touch %s/ran\n",
					harness_tmpdir, harness_tmpdir);
	DEPLOY(&c, "j1", bp);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	CHECK_INT(c.r.pid, 0);
	CHECK(!exists("ran"));
	CURRENT_IS(&c, "j1");
	DEPLOY(&c, "j2", bp);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	CURRENT_IS(&c, "j2");
	CHECK(!exists("ran"));
	bp_file_free(f);
	ctx_free(&c);
}

TEST(service_user_builds_and_runs)
{
	if (getuid() != 0)
		return; /* needs root to switch users */
	make_repo("v1");
	sh("chmod 755 %s && chown -R 65534:65534 origin.git", harness_tmpdir);
	struct ctx c;
	memset(&c, 0, sizeof(c));
	buf_init(&c.log);
	log_set_level(LOG_LVL_ERROR);
	char err[256];
	c.loop = loop_new(0, err, sizeof(err));
	CHECK(c.loop);
	snprintf(c.dir, sizeof(c.dir), "%s/svc", harness_tmpdir);
	struct pipeline_opts o = {.name = "wk",
				  .dir = c.dir,
				  .search_path = PATHS,
				  .set_ids = 1,
				  .uid = 65534,
				  .gid = 65534,
				  .settle_ms = 300,
				  .on_log = on_log,
				  .on_done = on_done,
				  .arg = &c};
	c.p = pipeline_new(c.loop, &o, err, sizeof(err));
	CHECK(c.p);
	struct bp_file *f;
	const struct bp *bp = blueprint(&f,
					"name: wk\ntype: worker\nsource: remote\nruntime: python\n"
					"remote: {url: 'file://%s/origin.git'}\n"
					"build_cmd: id -u > built-by\n"
					"run_cmd: id -u > ran-by; exec sleep 60\n",
					harness_tmpdir);
	DEPLOY(&c, "u1", bp);
	if (c.r.outcome != PIPELINE_DONE)
		harness_fail(__FILE__, __LINE__, "%s\n%s", c.r.reason, c.log.data);
	struct buf b = BUF_INIT;
	CHECK(buf_read_file(&b, "svc/releases/u1/src/built-by", 64, err, sizeof(err)) == 0);
	CHECK_STR(b.data, "65534\n");
	buf_reset(&b);
	CHECK(buf_read_file(&b, "svc/releases/u1/src/ran-by", 64, err, sizeof(err)) == 0);
	CHECK_STR(b.data, "65534\n");
	buf_release(&b);
	bp_file_free(f);
	ctx_free(&c);
}

TEST(adopt_after_restart_then_redeploy_stops_the_adopted)
{
	make_repo("v1");
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f;
	const struct bp *bp = blueprint(&f, WEB_BP, harness_tmpdir);
	DEPLOY(&c, "d1", bp);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	struct supervise_record rec;
	CHECK_INT(pipeline_record(c.p, &rec), 0);
	CHECK_INT(rec.pid, c.r.pid);
	CHECK_INT(rec.nports, 1);
	CHECK_INT(rec.ports[0], c.r.port);
	int port1 = c.r.port;
	/* The agent restarts: a new pipeline over the same directory. */
	pipeline_free(c.p);
	char err[512];
	struct pipeline_opts o = {.name = "web",
				  .dir = c.dir,
				  .search_path = PATHS,
				  .gate_interval_ms = 100,
				  .stop_grace_ms = 2000,
				  .on_log = on_log,
				  .on_done = on_done,
				  .on_proxy = on_proxy,
				  .arg = &c};
	c.p = pipeline_new(c.loop, &o, err, sizeof(err));
	CHECK(c.p);
	struct pipeline_req r = {.id = "d1", .bp = bp};
	struct supervise_record bad = rec;
	bad.start_time++;
	CHECK_INT(pipeline_adopt(c.p, &r, &bad, err, sizeof(err)), -1);
	CHECK(pipeline_current(c.p, NULL, NULL) == NULL);
	r.id = "nope";
	CHECK_INT(pipeline_adopt(c.p, &r, &rec, err, sizeof(err)), -1);
	CHECK(strstr(err, "not kept"));
	r.id = "d1";
	CHECK_INT(pipeline_adopt(c.p, &r, &rec, err, sizeof(err)), 0);
	pid_t pid;
	int port;
	CHECK_STR(pipeline_current(c.p, &pid, &port), "d1");
	CHECK_INT(pid, rec.pid);
	CHECK_INT(port, port1);
	CHECK_INT(pipeline_adopt(c.p, &r, &rec, err, sizeof(err)), -1);
	commit_version("v2");
	DEPLOY(&c, "d2", bp);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	CHECK(group_gone(&c, rec.pid));
	char body[256];
	CHECK_INT(http_get(c.r.port, body, sizeof(body)), 0);
	CHECK_STR(body, "v2");
	bp_file_free(f);
	ctx_free(&c);
}

TEST(stop_ends_the_current_release)
{
	make_repo("v1");
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f;
	const struct bp *bp = blueprint(&f,
					"name: wk\ntype: worker\nsource: remote\nruntime: python\n"
					"remote: {url: 'file://%s/origin.git'}\n"
					"run_cmd: trap '' TERM; sleep 60 & wait; wait\n",
					harness_tmpdir);
	DEPLOY(&c, "w1", bp);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	pid_t pid = c.r.pid;
	CHECK(group_alive(pid));
	pipeline_stop(c.p);
	/* TERM is ignored: KILL after the grace (2 s here). */
	long long end = loop_now_ms() + 10000;
	while (pipeline_current(c.p, NULL, NULL)) {
		CHECK(loop_now_ms() < end);
		loop_run_once(c.loop, 50);
	}
	CHECK(group_gone(&c, pid));
	struct supervise_record rec;
	CHECK_INT(pipeline_record(c.p, &rec), -1);
	CURRENT_IS(&c, "w1");
	bp_file_free(f);
	ctx_free(&c);
}

TEST(noisy_build_output_is_all_logged)
{
	make_repo("v1");
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f;
	/* 300 kB in one line, then 20000 short lines, then no final newline. */
	const struct bp *bp = blueprint(&f,
					STATIC_BP_NOBUILD "build_cmd: \"head -c 300000 /dev/zero | "
							  "tr '\\\\0' a; echo; seq 1 20000; "
							  "printf tail; mkdir -p dist\"\n",
					harness_tmpdir);
	DEPLOY(&c, "s1", bp);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	CHECK(strstr(c.log.data, "\n19999\n20000\ntail\n"));
	size_t as = 0;
	for (const char *l = c.log.data; *l; l = strchr(l, '\n') + 1) {
		size_t n = strcspn(l, "\n");
		CHECK(n <= 2 * 4096 + 4096);
		if (l[0] == 'a')
			as += n;
	}
	CHECK_INT(as, 300000);
	bp_file_free(f);
	ctx_free(&c);
}

TEST(free_during_a_deploy_kills_its_work)
{
	make_repo("v1");
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f;
	const struct bp *bp =
	    blueprint(&f, WEB_BP "build_cmd: echo $$ > %s/buildpid; sleep 600; true\n",
		      harness_tmpdir, harness_tmpdir);
	char err[256];
	struct pipeline_req r = {.id = "d1", .bp = bp};
	CHECK_INT(pipeline_deploy(c.p, &r, err, sizeof(err)), 0);
	long long end = loop_now_ms() + 15000;
	struct buf pidb = BUF_INIT;
	while (pidb.len == 0 || pidb.data[pidb.len - 1] != '\n') {
		CHECK(loop_now_ms() < end);
		loop_run_once(c.loop, 20);
		buf_reset(&pidb);
		if (exists("buildpid"))
			CHECK(buf_read_file(&pidb, "buildpid", 64, err, sizeof(err)) == 0);
	}
	pid_t pgid = (pid_t)atoi(pidb.data);
	buf_release(&pidb);
	CHECK(group_alive(pgid));
	pipeline_free(c.p);
	c.p = NULL;
	CHECK(group_gone(&c, pgid));
	CHECK(!c.done);
	loop_free(c.loop);
	buf_release(&c.log);
	bp_file_free(f);
}

/* Run the loop for ms. */
static void spin(struct ctx *c, long long ms)
{
	long long end = loop_now_ms() + ms;
	while (loop_now_ms() < end)
		loop_run_once(c->loop, 20);
}

static void start_deploy(struct ctx *c, const char *id, const struct bp *bp)
{
	char err[512];
	struct pipeline_req r = {.id = id, .bp = bp};
	c->done = 0;
	buf_reset(&c->log);
	if (pipeline_deploy(c->p, &r, err, sizeof(err)) < 0)
		harness_fail(__FILE__, __LINE__, "deploy: %s", err);
}

TEST(switch_waits_for_a_pending_proxy)
{
	make_repo("v1");
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f;
	const struct bp *bp = blueprint(&f, WEB_BP, harness_tmpdir);
	DEPLOY(&c, "d1", bp);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	pid_t old = c.r.pid;
	int oldport = c.r.port;
	commit_version("v2");
	/* Pending: nothing moves until the proxy answers. */
	c.proxy_pending = 1;
	start_deploy(&c, "d2", bp);
	long long end = loop_now_ms() + 20000;
	while (pipeline_stage(c.p) != PIPELINE_SWITCH) {
		CHECK(loop_now_ms() < end && !c.done);
		loop_run_once(c.loop, 20);
	}
	spin(&c, 500);
	CHECK_INT(pipeline_stage(c.p), PIPELINE_SWITCH);
	CHECK(!c.done);
	CURRENT_IS(&c, "d1");
	CHECK(group_alive(old));
	pipeline_proxy_done(c.p, 1, NULL);
	CHECK(!c.done); /* acts from the loop */
	RUN_UNTIL_DONE(&c);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	CURRENT_IS(&c, "d2");
	CHECK(group_gone(&c, old));
	CHECK(c.r.port != oldport);
	/* An answer that comes inside on_proxy itself. */
	c.proxy_pending = 2;
	commit_version("v3");
	DEPLOY(&c, "d3", bp);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	CURRENT_IS(&c, "d3");
	/* A stray answer with no switch waiting is ignored. */
	pipeline_proxy_done(c.p, 0, "late");
	spin(&c, 100);
	CURRENT_IS(&c, "d3");
	bp_file_free(f);
	ctx_free(&c);
}

TEST(switch_fails_when_the_proxy_refuses_or_never_answers)
{
	make_repo("v1");
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f;
	const struct bp *bp = blueprint(&f, WEB_BP, harness_tmpdir);
	DEPLOY(&c, "d1", bp);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	pid_t old = c.r.pid;
	int port1 = c.r.port;
	commit_version("v2");
	c.proxy_pending = 1;
	start_deploy(&c, "d2", bp);
	long long end = loop_now_ms() + 20000;
	while (pipeline_stage(c.p) != PIPELINE_SWITCH) {
		CHECK(loop_now_ms() < end && !c.done);
		loop_run_once(c.loop, 20);
	}
	pipeline_proxy_done(c.p, 0, "proxy: caddy refused the config (400): bad");
	RUN_UNTIL_DONE(&c);
	CHECK_INT(c.r.outcome, PIPELINE_ERROR);
	CHECK_INT(c.r.stage, PIPELINE_SWITCH);
	CHECK(strstr(c.r.reason, "switch: proxy: caddy refused the config (400): bad"));
	CHECK(!strstr(c.r.reason, "proxy: proxy:"));
	CURRENT_IS(&c, "d1");
	CHECK(group_alive(old));
	char body[256];
	CHECK_INT(http_get(port1, body, sizeof(body)), 0);
	CHECK_STR(body, "v1");
	CHECK(!exists("%s/releases/d2", c.dir));
	CHECK(!exists("%s/.current.tmp", c.dir));
	/* No answer at all: the switch deadline (2 s here) fails it. */
	start_deploy(&c, "d3", bp);
	RUN_UNTIL_DONE(&c);
	CHECK_INT(c.r.outcome, PIPELINE_ERROR);
	CHECK_INT(c.r.stage, PIPELINE_SWITCH);
	CHECK(strstr(c.r.reason, "no answer from the proxy in time"));
	CURRENT_IS(&c, "d1");
	CHECK(group_alive(old));
	bp_file_free(f);
	ctx_free(&c);
}

/* A new pipeline over c's directory, as after an agent restart. */
static void reopen(struct ctx *c)
{
	char err[512];
	pipeline_free(c->p);
	struct pipeline_opts o = {.name = "web",
				  .dir = c->dir,
				  .search_path = PATHS,
				  .gate_interval_ms = 100,
				  .stop_grace_ms = 2000,
				  .on_log = on_log,
				  .on_done = on_done,
				  .on_proxy = on_proxy,
				  .arg = c};
	c->p = pipeline_new(c->loop, &o, err, sizeof(err));
	if (!c->p)
		harness_fail(__FILE__, __LINE__, "%s", err);
}

/* Wait until 127.0.0.1:port answers body. */
static int serves(struct ctx *c, int port, const char *body)
{
	char b[256];
	long long end = loop_now_ms() + 10000;
	while (loop_now_ms() < end) {
		if (http_get(port, b, sizeof(b)) == 0 && !strcmp(b, body))
			return 1;
		loop_run_once(c->loop, 50);
	}
	return 0;
}

TEST(restore_adopts_restarts_the_dead_and_never_a_reused_pid)
{
	make_repo("v1");
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f;
	const struct bp *bp = blueprint(&f, WEB_BP, harness_tmpdir);
	DEPLOY(&c, "d1", bp);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	struct supervise_record rec;
	CHECK_INT(pipeline_record(c.p, &rec), 0);
	int port = c.r.port;
	char err[512];
	const char *how = NULL;
	struct pipeline_req r = {.id = "d1", .bp = bp};

	/* Running: adopted, the same process. */
	reopen(&c);
	CHECK_INT(pipeline_restore(c.p, &r, &rec, port, 1, &how, err, sizeof(err)), 0);
	CHECK_STR(how, "adopted");
	pid_t pid;
	CHECK_STR(pipeline_current(c.p, &pid, NULL), "d1");
	CHECK_INT(pid, rec.pid);
	CHECK(pipeline_running(c.p));
	/* A second restore of the same release is refused. */
	CHECK_INT(pipeline_restore(c.p, &r, &rec, port, 1, &how, err, sizeof(err)), -1);
	CHECK(strstr(err, "has a current release"));

	/* Died while the agent was away: started again on the same port. */
	reopen(&c);
	kill(-rec.pgid, SIGKILL);
	CHECK(group_gone(&c, rec.pgid));
	CHECK_INT(pipeline_restore(c.p, &r, &rec, port, 1, &how, err, sizeof(err)), 0);
	CHECK_STR(how, "started");
	CHECK(serves(&c, port, "v1"));
	struct supervise_record rec2;
	CHECK_INT(pipeline_record(c.p, &rec2), 0);
	CHECK(rec2.pid != rec.pid);

	/* A record naming a live process that is another one (pid reused):
	 * our own pid with another start time. Not adopted (never signalled),
	 * the release is started instead. */
	reopen(&c);
	kill(-rec2.pgid, SIGKILL);
	CHECK(group_gone(&c, rec2.pgid));
	struct supervise_record reused = rec2;
	reused.pid = getpid();
	reused.pgid = getpgrp();
	CHECK_INT(supervise_proc_start_time(getpid(), &reused.start_time), 0);
	reused.start_time++;
	CHECK_INT(pipeline_restore(c.p, &r, &reused, port, 1, &how, err, sizeof(err)), 0);
	CHECK_STR(how, "started");
	CHECK_INT(pipeline_record(c.p, &rec2), 0);
	CHECK(rec2.pid != getpid());
	CHECK(serves(&c, port, "v1"));

	/* Bad requests: an unknown release, a bad id. */
	reopen(&c);
	r.id = "nope";
	CHECK_INT(pipeline_restore(c.p, &r, NULL, port, 1, &how, err, sizeof(err)), -1);
	CHECK(strstr(err, "not kept"));
	r.id = "../x";
	CHECK_INT(pipeline_restore(c.p, &r, NULL, port, 1, &how, err, sizeof(err)), -1);
	CHECK(pipeline_current(c.p, NULL, NULL) == NULL);
	/* The previous pipeline's process still runs: adopt it for cleanup. */
	r.id = "d1";
	CHECK_INT(pipeline_restore(c.p, &r, &rec2, port, 1, &how, err, sizeof(err)), 0);
	CHECK_STR(how, "adopted");
	bp_file_free(f);
	ctx_free(&c);
}

TEST(restore_keeps_a_stopped_release_stopped)
{
	make_repo("v1");
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f;
	const struct bp *bp = blueprint(&f, WEB_BP, harness_tmpdir);
	DEPLOY(&c, "d1", bp);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	struct supervise_record rec;
	CHECK_INT(pipeline_record(c.p, &rec), 0);
	int port = c.r.port;
	char err[512];
	const char *how = NULL;
	struct pipeline_req r = {.id = "d1", .bp = bp};
	/* Running but recorded as stopped (the stop was asked just before the
	 * agent died): adopted and stopped. */
	reopen(&c);
	CHECK_INT(pipeline_restore(c.p, &r, &rec, port, 0, &how, err, sizeof(err)), 0);
	CHECK_STR(how, "adopted");
	CHECK(group_gone(&c, rec.pgid));
	CHECK(!pipeline_running(c.p));
	/* Not running and not meant to: stays so, and can be started. */
	reopen(&c);
	CHECK_INT(pipeline_restore(c.p, &r, NULL, port, 0, &how, err, sizeof(err)), 0);
	CHECK_STR(how, "stopped");
	CURRENT_IS(&c, "d1");
	CHECK_STR(pipeline_current(c.p, NULL, NULL), "d1");
	CHECK(!pipeline_running(c.p));
	spin(&c, 300);
	CHECK(http_get(port, (char[64]){0}, 64) < 0);
	struct supervise *sv = pipeline_supervisor(c.p);
	CHECK(sv != NULL);
	supervise_start(sv);
	CHECK(pipeline_running(c.p));
	CHECK(serves(&c, port, "v1"));
	bp_file_free(f);
	ctx_free(&c);
}

TEST(restore_without_restart_policy_leaves_a_dead_release_down)
{
	make_repo("v1");
	struct ctx c;
	ctx_init(&c, 5);
	struct bp_file *f;
	const struct bp *bp = blueprint(&f, WEB_BP "restart: never\n", harness_tmpdir);
	DEPLOY(&c, "d1", bp);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	struct supervise_record rec;
	CHECK_INT(pipeline_record(c.p, &rec), 0);
	reopen(&c);
	kill(-rec.pgid, SIGKILL);
	CHECK(group_gone(&c, rec.pgid));
	char err[512];
	const char *how = NULL;
	struct pipeline_req r = {.id = "d1", .bp = bp};
	CHECK_INT(pipeline_restore(c.p, &r, &rec, c.r.port, 1, &how, err, sizeof(err)), 0);
	CHECK_STR(how, "stopped");
	CHECK(!pipeline_running(c.p));
	CHECK_INT(pipeline_record(c.p, &rec), -1);
	bp_file_free(f);
	ctx_free(&c);
}

/* A fake podman in ./engine/: --version; `image inspect` answers an id once
 * ./pulled exists; pull creates it; run records its argv (a line each) and
 * environment, then runs its last argument with /bin/sh. ./down: every
 * call fails as an engine without its daemon. */
static void fake_engine(void)
{
	sh("mkdir -p engine && cat > engine/podman <<'EOF'\n"
	   "#!/bin/sh\n"
	   "T=%s\n"
	   "[ \"$1\" = --version ] && { echo 'podman version 4.3.1'; exit 0; }\n"
	   "[ -e $T/down ] && { echo 'Error: cannot connect to the engine daemon' >&2; exit 125; }\n"
	   "case \"$1\" in\n"
	   "image) [ -e $T/pulled ] || { echo \"Error: $6: image not known\" >&2; exit 125; }\n"
	   "  echo 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef; exit 0;;\n"
	   "pull) echo \"pulling $2\" >&2; touch $T/pulled; exit 0;;\n"
	   "esac\n"
	   "printf '%%s\\n' \"$@\" > $T/argv.out\n"
	   "env > $T/env.out\n"
	   "for a; do last=$a; done\n"
	   "exec /bin/sh -c \"$last\"\n"
	   "EOF\n"
	   "chmod +x engine/podman",
	   harness_tmpdir);
}

#define IMAGE_BP                                                                                   \
	"name: web\ntype: web\nsource: image\nimage: example.org/team/app:1\nruntime: docker\n"    \
	"env_vars: {GREETING: hello world}\nsecrets: [API_TOKEN]\n"                                \
	"run_cmd: exec /usr/bin/python3 -m http.server --bind 127.0.0.1 $PORT\n"

TEST(image_pulled_once_run_by_the_engine_values_only_in_its_environment)
{
	fake_engine();
	struct ctx c;
	char *search = xasprintf("%s/engine:" PATHS, harness_tmpdir);
	ctx_init_path(&c, 5, search);
	struct bp_file *f;
	const struct bp *bp = blueprint(&f, IMAGE_BP);
	const char *secrets[] = {"API_TOKEN=s3cr3t-t0ken-value"};
	deploy(&c, "d1", bp, secrets, 1, __LINE__);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	CHECK_STR(c.r.revision, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	CHECK_STR(c.r.rtver, "4.3.1");
	CHECK(strstr(c.log.data, "image 'example.org/team/app:1' not present"));
	CHECK(strstr(c.log.data, "pulling example.org/team/app:1\n"));
	CHECK(!strstr(c.log.data, "s3cr3t"));
	char body[256];
	CHECK(http_get(c.r.port, body, sizeof(body)) == 0);
	struct buf argv = BUF_INIT, env = BUF_INIT;
	char err[256];
	CHECK(buf_read_file(&argv, "argv.out", 65536, err, sizeof(err)) == 0);
	CHECK(buf_read_file(&env, "env.out", 65536, err, sizeof(err)) == 0);
	CHECK(strstr(argv.data, "run\n--rm\n--init\n--name\ndployr-web-d1\n--replace\n"));
	CHECK(strstr(argv.data, "\n--network\nhost\n"));
	CHECK(strstr(argv.data, "\n-e\nAPI_TOKEN\n"));
	CHECK(strstr(argv.data, "\n-e\nGREETING\n"));
	CHECK(strstr(argv.data, "\n-e\nPORT\n"));
	CHECK(strstr(argv.data, "\nexample.org/team/app:1\n/bin/sh\n-c\nexec /usr/bin/python3"));
	CHECK(!strstr(argv.data, "s3cr3t"));
	CHECK(!strstr(argv.data, "hello world"));
	CHECK(!strstr(argv.data, "PATH"));
	CHECK(strstr(env.data, "API_TOKEN=s3cr3t-t0ken-value\n"));
	CHECK(strstr(env.data, "GREETING=hello world\n"));
	char *port = xasprintf("PORT=%d\n", c.r.port);
	CHECK(strstr(env.data, port));
	free(port);
	buf_release(&argv);
	buf_release(&env);
	/* The image is there now: no pull; the old container is stopped. */
	pid_t old = c.r.pid;
	deploy(&c, "d2", bp, secrets, 1, __LINE__);
	CHECK_INT(c.r.outcome, PIPELINE_DONE);
	CHECK(!strstr(c.log.data, "pulling"));
	CHECK(group_gone(&c, old));
	CURRENT_IS(&c, "d2");
	/* The engine cannot answer: FETCH fails with what it said. */
	sh("touch down");
	deploy(&c, "d3", bp, secrets, 1, __LINE__);
	CHECK_INT(c.r.outcome, PIPELINE_ERROR);
	CHECK_INT(c.r.stage, PIPELINE_FETCH);
	CHECK(strstr(c.r.reason, "fetch: pull 'example.org/team/app:1': exited with status 125: "
				 "Error: cannot connect to the engine daemon"));
	CHECK(!exists("%s/releases/d3", c.dir));
	CURRENT_IS(&c, "d2");
	/* An image name that reads as an option is refused. */
	struct bp *mut = (struct bp *)bp;
	char *img = mut->image;
	mut->image = "--privileged";
	struct pipeline_req r = {.id = "d4", .bp = bp};
	CHECK(pipeline_deploy(c.p, &r, err, sizeof(err)) < 0);
	CHECK(strstr(err, "source image needs an image and runtime docker"));
	mut->image = img;
	bp_file_free(f);
	ctx_free(&c);
	free(search);
}

TEST(image_without_an_engine_fails_at_fetch)
{
	sh("mkdir -p empty");
	struct ctx c;
	char *search = xasprintf("%s/empty", harness_tmpdir);
	ctx_init_path(&c, 5, search);
	struct bp_file *f;
	const struct bp *bp = blueprint(&f, IMAGE_BP);
	DEPLOY(&c, "d1", bp);
	CHECK_INT(c.r.outcome, PIPELINE_ERROR);
	CHECK_INT(c.r.stage, PIPELINE_FETCH);
	CHECK(strstr(c.r.reason, "fetch: runtime docker not installed"));
	CHECK(!exists("%s/releases/d1", c.dir));
	bp_file_free(f);
	ctx_free(&c);
	free(search);
}
