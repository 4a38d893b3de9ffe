#include "proxy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "log.h"
#include "net.h"
#include "proto.h"
#include "run.h"
#include "spawn.h"

/* Tests named caddy_* run the real Caddy (Debian package `caddy`) on
 * 127.0.0.1 and pass without checking anything when it is not installed
 * (they say so on stderr). Every Caddy and upstream they start is killed by
 * its saved pid before the test returns. */

struct applied {
	int ok, failed;
};

static void on_apply(struct proxy *px, void *arg, int ok)
{
	struct applied *a = arg;
	if (ok)
		a->ok++;
	else
		a->failed++;
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

static struct proxy *mkproxy(struct loop *l, const char *dir, int https, struct applied *a)
{
	char err[512];
	int log_fd = open("caddy.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	struct proxy_opts o = {
	    .dir = dir,
	    .listen_host = "127.0.0.1",
	    .https = https,
	    .log_fd = log_fd,
	    .apply_delay_ms = 20,
	    .backoff_min_ms = 100,
	    .on_apply = on_apply,
	    .arg = a,
	};
	struct proxy *px = proxy_new(l, &o, err, sizeof(err));
	if (!px)
		harness_fail(__FILE__, __LINE__, "%s", err);
	return px;
}

static void config(const struct proxy *px, struct buf *out)
{
	buf_reset(out);
	proxy_config(px, out);
}

/* The config parses as JSON; returns the document. */
static struct proto_json *parse(const struct buf *b)
{
	char err[256];
	struct proto_json *doc = proto_json_parse(b->data, b->len, err, sizeof(err));
	if (!doc)
		harness_fail(__FILE__, __LINE__, "%s in %s", err, b->data);
	return doc;
}

static const struct proto_jv *path2(const struct proto_jv *v, const char *a, const char *b)
{
	v = proto_jv_get(v, a);
	return b ? proto_jv_get(v, b) : v;
}

static const struct proto_jv *servers(const struct proto_json *doc)
{
	const struct proto_jv *v = proto_json_root(doc);
	return path2(path2(v, "apps", "http"), "servers", NULL);
}

/* --- the model and the generated config ------------------------------------- */

TEST(config_is_deterministic_and_admin_is_a_unix_socket)
{
	struct loop *l = mkloop();
	struct applied a = {0};
	struct proxy *p1 = mkproxy(l, "p1", 0, &a);
	struct proxy *p2 = mkproxy(l, "p2", 0, &a);
	char err[256];
	const char *dom[] = {"shop.example.org", "www.shop.example.org"};
	int up[] = {9001, 9002};
	struct proxy_site web = {.name = "web",
				 .port = 8080,
				 .domains = dom,
				 .ndomains = 2,
				 .upstreams = up,
				 .nupstreams = 2};
	struct proxy_site api = {.name = "api", .port = 8080, .upstreams = up, .nupstreams = 1};
	struct proxy_site docs = {.name = "docs", .port = 3000, .root = "/srv/docs"};
	CHECK_INT(proxy_set_site(p1, &web, err, sizeof(err)), 0);
	CHECK_INT(proxy_set_site(p1, &api, err, sizeof(err)), 0);
	CHECK_INT(proxy_set_site(p1, &docs, err, sizeof(err)), 0);
	CHECK_INT(proxy_set_site(p2, &docs, err, sizeof(err)), 0);
	CHECK_INT(proxy_set_site(p2, &api, err, sizeof(err)), 0);
	CHECK_INT(proxy_set_site(p2, &web, err, sizeof(err)), 0);
	CHECK_INT(proxy_site_count(p1), 3);

	struct buf c1 = BUF_INIT, c2 = BUF_INIT;
	config(p1, &c1);
	config(p2, &c2);
	/* Same model, same text, whatever the order of the calls (only the
	 * directory differs). */
	CHECK(strstr(c1.data, "/p1/") && strstr(c2.data, "/p2/"));
	struct buf n1 = BUF_INIT, n2 = BUF_INIT;
	for (size_t i = 0; i < c1.len; i++)
		buf_putc(&n1, strncmp(c1.data + i, "/p1/", 4) == 0 ? (i += 3, 'X') : c1.data[i]);
	for (size_t i = 0; i < c2.len; i++)
		buf_putc(&n2, strncmp(c2.data + i, "/p2/", 4) == 0 ? (i += 3, 'X') : c2.data[i]);
	CHECK_STR(n1.data, n2.data);
	/* Generating again gives the same bytes. */
	buf_reset(&c2);
	config(p1, &c2);
	CHECK_STR(c1.data, c2.data);

	struct proto_json *doc = parse(&c1);
	const struct proto_jv *root = proto_json_root(doc);
	struct buf want = BUF_INIT;
	char rp[4096];
	CHECK(realpath(harness_tmpdir, rp) != NULL);
	buf_printf(&want, "unix/%s/p1/admin.sock", rp);
	CHECK_STR(proto_jv_get_str(proto_jv_get(root, "admin"), "listen"), want.data);
	CHECK_STR(proto_jv_str(proto_jv_first(path2(root, "admin", "origins"))), "localhost");
	/* Nothing falls back to Caddy's TCP admin endpoint. */
	CHECK(strstr(c1.data, "2019") == NULL);
	CHECK(strstr(c1.data, "\"listen\":\"localhost") == NULL);
	/* Port servers in order, with automatic HTTPS off and the listen host. */
	const struct proto_jv *sv = servers(doc);
	CHECK_INT(proto_jv_len(sv), 2);
	CHECK_STR(proto_jv_key(proto_jv_first(sv)), "port-3000");
	const struct proto_jv *s8080 = proto_jv_get(sv, "port-8080");
	CHECK_STR(proto_jv_str(proto_jv_first(proto_jv_get(s8080, "listen"))), "127.0.0.1:8080");
	int dis = 0;
	CHECK_INT(proto_jv_bool(path2(s8080, "automatic_https", "disable"), &dis), 0);
	CHECK_INT(dis, 1);
	/* Routes: the site with domains first, the catch-all last. */
	const struct proto_jv *routes = proto_jv_get(s8080, "routes");
	CHECK_INT(proto_jv_len(routes), 2);
	CHECK_STR(proto_jv_get_str(proto_jv_at(routes, 0), "@id"), "dployr.web");
	CHECK_STR(proto_jv_get_str(proto_jv_at(routes, 1), "@id"), "dployr.api");
	CHECK(proto_jv_get(proto_jv_at(routes, 1), "match") == NULL);
	CHECK(strstr(c1.data, "{\"handler\":\"reverse_proxy\",\"upstreams\":[{\"dial\":\"127.0."
			      "0.1:9001\"},{\"dial\":\"127.0.0.1:9002\"}]}"));
	CHECK(strstr(c1.data, "{\"handler\":\"file_server\",\"root\":\"/srv/docs\"}"));
	CHECK(strstr(c1.data, "\"https\"") == NULL);

	/* Without sites: the admin endpoint and storage only. */
	CHECK_INT(proxy_remove_site(p2, "web"), 0);
	CHECK_INT(proxy_remove_site(p2, "api"), 0);
	CHECK_INT(proxy_remove_site(p2, "docs"), 0);
	CHECK_INT(proxy_remove_site(p2, "docs"), -1);
	config(p2, &c2);
	CHECK(strstr(c2.data, "\"apps\"") == NULL);
	CHECK(strstr(c2.data, "\"admin\":{\"listen\":\"unix/"));
	proto_json_free(parse(&c2));

	proto_json_free(doc);
	buf_release(&c1);
	buf_release(&c2);
	buf_release(&n1);
	buf_release(&n2);
	buf_release(&want);
	proxy_free(p1);
	proxy_free(p2);
	loop_free(l);
}

TEST(config_escapes_hostile_strings)
{
	struct loop *l = mkloop();
	struct applied a = {0};
	struct proxy *px = mkproxy(l, "px", 0, &a);
	char err[256];
	const char *evil = "evil\"}]}],\"admin\":{\"listen\":\"localhost:2019\"},\"x\":[\"\\";
	const char *dom[] = {evil, "ctl\x01\n.example.org", "bad\xff\xfeutf8.org"};
	const char *name = "n\"a\\m\ne";
	struct proxy_site s = {.name = name,
			       .port = 8080,
			       .domains = dom,
			       .ndomains = 3,
			       .root = "/srv/\"quoted\"\\dir"};
	CHECK_INT(proxy_set_site(px, &s, err, sizeof(err)), 0);
	struct buf c = BUF_INIT;
	config(px, &c);
	struct proto_json *doc = parse(&c);
	const struct proto_jv *root = proto_json_root(doc);
	CHECK(strncmp(proto_jv_get_str(proto_jv_get(root, "admin"), "listen"), "unix/", 5) == 0);
	CHECK(proto_jv_get(root, "x") == NULL);
	const struct proto_jv *route =
	    proto_jv_first(proto_jv_get(proto_jv_get(servers(doc), "port-8080"), "routes"));
	CHECK_STR(proto_jv_get_str(route, "@id"), "dployr.n\"a\\m\ne");
	const struct proto_jv *hosts =
	    proto_jv_get(proto_jv_first(proto_jv_get(route, "match")), "host");
	CHECK_INT(proto_jv_len(hosts), 3);
	CHECK_STR(proto_jv_str(proto_jv_at(hosts, 0)), evil);
	CHECK_STR(proto_jv_str(proto_jv_at(hosts, 1)), "ctl\x01\n.example.org");
	/* Invalid UTF-8 becomes U+FFFD: still valid JSON. */
	CHECK_STR(proto_jv_str(proto_jv_at(hosts, 2)), "bad\xef\xbf\xbd\xef\xbf\xbdutf8.org");
	CHECK_STR(proto_jv_get_str(proto_jv_first(proto_jv_get(route, "handle")), "root"),
		  "/srv/\"quoted\"\\dir");
	proto_json_free(doc);
	buf_release(&c);
	proxy_free(px);
	loop_free(l);
}

TEST(config_https_only_for_public_domains)
{
	struct loop *l = mkloop();
	struct applied a = {0};
	struct proxy *px = mkproxy(l, "px", 1, &a);
	char err[256];
	const char *dom[] = {"shop.example.org", "localhost",	"app.local", "10.0.0.1",
			     "api.internal",	 "x.localhost", "::1",	     "Shop2.Example.COM."};
	int up[] = {9001};
	struct proxy_site web = {.name = "web",
				 .port = 8080,
				 .domains = dom,
				 .ndomains = 8,
				 .upstreams = up,
				 .nupstreams = 1};
	const char *ldom[] = {"intranet.lan"};
	struct proxy_site priv = {
	    .name = "priv", .port = 8081, .domains = ldom, .ndomains = 1, .root = "/srv"};
	CHECK_INT(proxy_set_site(px, &web, err, sizeof(err)), 0);
	CHECK_INT(proxy_set_site(px, &priv, err, sizeof(err)), 0);
	struct buf c = BUF_INIT;
	config(px, &c);
	struct proto_json *doc = parse(&c);
	const struct proto_jv *https = proto_jv_get(servers(doc), "https");
	CHECK(https != NULL);
	CHECK_STR(proto_jv_str(proto_jv_first(proto_jv_get(https, "listen"))), "127.0.0.1:443");
	CHECK(proto_jv_get(https, "automatic_https") == NULL);
	const struct proto_jv *routes = proto_jv_get(https, "routes");
	CHECK_INT(proto_jv_len(routes), 1);
	const struct proto_jv *r = proto_jv_first(routes);
	CHECK_STR(proto_jv_get_str(r, "@id"), "dployr.web.https");
	const struct proto_jv *hosts =
	    proto_jv_get(proto_jv_first(proto_jv_get(r, "match")), "host");
	CHECK_INT(proto_jv_len(hosts), 2);
	CHECK_STR(proto_jv_str(proto_jv_at(hosts, 0)), "shop.example.org");
	CHECK_STR(proto_jv_str(proto_jv_at(hosts, 1)), "Shop2.Example.COM.");
	/* The plain port still serves every domain. */
	const struct proto_jv *pr =
	    proto_jv_first(proto_jv_get(proto_jv_get(servers(doc), "port-8080"), "routes"));
	CHECK_INT(proto_jv_len(proto_jv_get(proto_jv_first(proto_jv_get(pr, "match")), "host")), 8);
	proto_json_free(doc);

	/* Only private domains: no https server at all. */
	CHECK_INT(proxy_remove_site(px, "web"), 0);
	config(px, &c);
	CHECK(strstr(c.data, "\"https\"") == NULL);
	CHECK(strstr(c.data, ":443") == NULL);
	/* Ports 443 and 80 belong to Caddy itself with https on. */
	struct proxy_site p443 = {.name = "x", .port = 443, .root = "/srv"};
	CHECK_INT(proxy_set_site(px, &p443, err, sizeof(err)), -1);
	CHECK_STR(err, "proxy: site 'x': port 443 is the proxy's own with https on");
	p443.port = 80;
	CHECK_INT(proxy_set_site(px, &p443, err, sizeof(err)), -1);
	p443.port = 8443;
	CHECK_INT(proxy_set_site(px, &p443, err, sizeof(err)), 0);
	buf_release(&c);
	proxy_free(px);
	loop_free(l);
}

TEST(set_site_rejects_bad_sites_and_conflicts)
{
	struct loop *l = mkloop();
	struct applied a = {0};
	struct proxy *px = mkproxy(l, "px", 0, &a);
	char err[256];
	int up[PROXY_MAX_UPSTREAMS + 1] = {0};
	for (int i = 0; i <= PROXY_MAX_UPSTREAMS; i++)
		up[i] = 9000 + i;
	const char *dom[] = {"a.example.org", "b.example.org"};
	struct proxy_site s = {.name = "web",
			       .port = 8080,
			       .domains = dom,
			       .ndomains = 2,
			       .upstreams = up,
			       .nupstreams = 1};
	CHECK_INT(proxy_set_site(px, &s, err, sizeof(err)), 0);

	struct proxy_site b = s;
	b.name = "";
	CHECK_INT(proxy_set_site(px, &b, err, sizeof(err)), -1);
	CHECK(strstr(err, "site name '' must be 1..63 bytes"));
	b = s;
	b.name = "other";
	b.port = 0;
	CHECK_INT(proxy_set_site(px, &b, err, sizeof(err)), -1);
	CHECK_STR(err, "proxy: site 'other': port 0 is not 1..65535");
	b.port = 65536;
	CHECK_INT(proxy_set_site(px, &b, err, sizeof(err)), -1);
	b.port = 9090;
	b.nupstreams = 0;
	CHECK_INT(proxy_set_site(px, &b, err, sizeof(err)), -1);
	CHECK_STR(err, "proxy: site 'other': needs either upstreams or a root");
	b.nupstreams = 1;
	b.root = "/srv";
	CHECK_INT(proxy_set_site(px, &b, err, sizeof(err)), -1);
	b.nupstreams = 0;
	b.root = "srv";
	CHECK_INT(proxy_set_site(px, &b, err, sizeof(err)), -1);
	CHECK_STR(err, "proxy: site 'other': root 'srv' is not absolute");
	b.root = NULL;
	b.nupstreams = PROXY_MAX_UPSTREAMS + 1;
	CHECK_INT(proxy_set_site(px, &b, err, sizeof(err)), -1);
	b.nupstreams = 1;
	int bad_up[] = {70000};
	b.upstreams = bad_up;
	CHECK_INT(proxy_set_site(px, &b, err, sizeof(err)), -1);
	CHECK_STR(err, "proxy: site 'other': upstream port 70000 is not 1..65535");
	b.upstreams = up;
	/* A domain of another site, in any case, on any port. */
	const char *taken[] = {"new.example.org", "B.Example.Org"};
	b.domains = taken;
	CHECK_INT(proxy_set_site(px, &b, err, sizeof(err)), -1);
	CHECK_STR(err, "proxy: site 'other': domain 'B.Example.Org' is served by site 'web'");
	const char *twice[] = {"x.example.org", "X.example.org"};
	b.domains = twice;
	CHECK_INT(proxy_set_site(px, &b, err, sizeof(err)), -1);
	const char *empty[] = {""};
	b.domains = empty;
	b.ndomains = 1;
	CHECK_INT(proxy_set_site(px, &b, err, sizeof(err)), -1);
	/* Two sites for every host on one port. */
	b.ndomains = 0;
	b.port = 3000;
	CHECK_INT(proxy_set_site(px, &b, err, sizeof(err)), 0);
	struct proxy_site c = b;
	c.name = "third";
	CHECK_INT(proxy_set_site(px, &c, err, sizeof(err)), -1);
	CHECK(strstr(err, "port 3000 already serves site 'other' for every host"));
	CHECK_INT(proxy_site_count(px), 2);
	/* Replacing a site by name is no conflict with itself. */
	b.upstreams = up + 1;
	CHECK_INT(proxy_set_site(px, &b, err, sizeof(err)), 0);
	CHECK_INT(proxy_set_site(px, &s, err, sizeof(err)), 0);
	CHECK_INT(proxy_site_count(px), 2);
	CHECK_INT(proxy_remove_site(px, "nope"), -1);
	proxy_free(px);
	proxy_free(NULL);
	loop_free(l);
}

TEST(new_rejects_bad_options)
{
	struct loop *l = mkloop();
	char err[512];
	struct proxy_opts o = {0};
	CHECK(proxy_new(l, &o, err, sizeof(err)) == NULL);
	CHECK_STR(err, "proxy: no state directory");
	o.dir = "px";
	o.listen_host = "localhost";
	CHECK(proxy_new(l, &o, err, sizeof(err)) == NULL);
	CHECK_STR(err, "proxy: listen host 'localhost' is not an IP address");
	o.listen_host = "1.2.3.4\"";
	CHECK(proxy_new(l, &o, err, sizeof(err)) == NULL);
	o.listen_host = NULL;
	o.dir = "no/such/parent";
	CHECK(proxy_new(l, &o, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "proxy: mkdir 'no/such/parent': "));
	char longdir[200];
	memset(longdir, 'd', sizeof(longdir) - 1);
	longdir[sizeof(longdir) - 1] = '\0';
	o.dir = longdir;
	CHECK(proxy_new(l, &o, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "too long for a unix socket path"));
	/* The directory is made private even when it exists. */
	CHECK_INT(mkdir("open", 0777), 0);
	CHECK_INT(chmod("open", 0777), 0);
	o.dir = "open";
	o.listen_host = "::1";
	struct proxy *px = proxy_new(l, &o, err, sizeof(err));
	CHECK(px != NULL);
	struct stat st;
	CHECK_INT(stat("open", &st), 0);
	CHECK_INT(st.st_mode & 0777, 0700);
	int up[] = {1};
	struct proxy_site s = {.name = "v6", .port = 81, .upstreams = up, .nupstreams = 1};
	CHECK_INT(proxy_set_site(px, &s, err, sizeof(err)), 0);
	struct buf c = BUF_INIT;
	proxy_config(px, &c);
	CHECK(strstr(c.data, "\"listen\":[\"[::1]:81\"]"));
	buf_release(&c);
	proxy_free(px);
	loop_free(l);
}

/* --- with the real Caddy ------------------------------------------------------ */

static int have_caddy(void)
{
	const char *path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
	char buf[256];
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, ":");
		snprintf(buf, sizeof(buf), "%.*s/caddy", (int)n, p);
		if (access(buf, X_OK) == 0)
			return 1;
		p += n + (p[n] == ':');
	}
	fprintf(stderr, "skip: caddy is not installed\n");
	return 0;
}

/* A port with nothing listening: bound and closed again. */
static int free_port(void)
{
	struct net_addr a;
	char err[256];
	CHECK_INT(net_parse("127.0.0.1:0", &a, err, sizeof(err)), 0);
	int fd = net_listen(&a, 1, err, sizeof(err));
	CHECK(fd >= 0);
	CHECK_INT(net_local_addr(fd, &a, err, sizeof(err)), 0);
	close(fd);
	return net_addr_port(&a);
}

static void write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK_INT(write(fd, text, strlen(text)), (long long)strlen(text));
	close(fd);
}

/* GET http://127.0.0.1:PORT/ with curl. Returns curl's exit status (0:
 * a 2xx reply, 7: connection refused, 22: HTTP error); body in out. */
static int get(int port, const char *host, struct buf *out)
{
	char url[64], hdr[300];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	snprintf(hdr, sizeof(hdr), "Host: %s", host ? host : "localhost");
	const char *argv[] = {"/usr/bin/curl", "-sSf", "--max-time", "5", "-H", hdr, url, NULL};
	struct run_opts o = {.argv = argv, .timeout_ms = 10000};
	struct run_result r = RUN_RESULT_INIT;
	char err[256];
	int rc = run(&o, &r, err, sizeof(err));
	CHECK_INT(rc, 0);
	buf_reset(out);
	buf_add(out, r.out.data, r.out.len);
	int st = WIFEXITED(r.status) ? WEXITSTATUS(r.status) : 255;
	run_result_release(&r);
	return st;
}

/* Can a TCP connection to 127.0.0.1:port be made? (blocking, in tests) */
static int port_open(int port)
{
	char err[256], text[32];
	struct net_addr a;
	snprintf(text, sizeof(text), "127.0.0.1:%d", port);
	CHECK_INT(net_parse(text, &a, err, sizeof(err)), 0);
	int fd = net_connect(&a, err, sizeof(err));
	if (fd < 0)
		return 0;
	for (int i = 0; i < 100; i++) {
		struct timespec ts = {0, 10 * 1000000};
		int r = net_connect_result(fd, err, sizeof(err));
		if (r == 0) {
			close(fd);
			return 1;
		}
		if (errno != EINPROGRESS && errno != EALREADY && errno != 0)
			break;
		nanosleep(&ts, NULL);
	}
	close(fd);
	return 0;
}

/* Processes a caddy_* test starts must not outlive it, even when a CHECK
 * fails (harness_fail calls _exit): guard() forks a watcher that reads
 * their pids from a pipe and, once the pipe closes because the test
 * process is gone, kills each one's process group. */
static int guard_fd = -1;

static void guard(pid_t pid)
{
	if (guard_fd < 0) {
		int fds[2];
		CHECK_INT(pipe2(fds, O_CLOEXEC), 0);
		pid_t w = fork();
		CHECK(w >= 0);
		if (w == 0) {
			close(fds[1]);
			pid_t pids[64];
			size_t n = 0;
			while (n < 64 && read(fds[0], &pids[n], sizeof(pid_t)) == sizeof(pid_t))
				n++;
			for (size_t i = 0; i < n; i++)
				kill(-pids[i], SIGKILL);
			_exit(0);
		}
		close(fds[0]);
		guard_fd = fds[1];
	}
	CHECK_INT(write(guard_fd, &pid, sizeof(pid)), sizeof(pid));
}

struct upstream {
	pid_t pid;
	int port;
};

/* python3's http.server on a free port serving DIR (made, with an
 * index.html holding text). */
static struct upstream upstream(const char *dir, const char *text)
{
	struct upstream u;
	char path[256], ps[16], err[256];
	CHECK_INT(mkdir(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/index.html", dir);
	write_text(path, text);
	u.port = free_port();
	snprintf(ps, sizeof(ps), "%d", u.port);
	const char *argv[] = {"/usr/bin/python3",
			      "-m",
			      "http.server",
			      "--bind",
			      "127.0.0.1",
			      "--directory",
			      dir,
			      ps,
			      NULL};
	struct spawn_opts o = {.argv = argv, .pgroup = SPAWN_PGROUP};
	struct spawn_proc p;
	if (spawn_start(&o, &p, err, sizeof(err)) < 0)
		harness_fail(__FILE__, __LINE__, "%s", err);
	u.pid = p.pid;
	guard(u.pid);
	for (int i = 0; i < 500 && !port_open(u.port); i++) {
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL);
	}
	CHECK(port_open(u.port));
	return u;
}

static void kill_pid(pid_t pid)
{
	if (pid > 1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

static void dump_log(void)
{
	struct buf b = BUF_INIT;
	char err[256];
	if (buf_read_file(&b, "caddy.log", 1 << 20, err, sizeof(err)) == 0)
		fprintf(stderr, "--- caddy.log (tail)\n%s\n",
			b.len > 3000 ? b.data + b.len - 3000 : b.data);
	buf_release(&b);
}

/* Run the loop until px has no change pending (bounded: 15 s). */
static void settle(struct loop *l, struct proxy *px, int line)
{
	long long end = loop_now_ms() + 15000;
	while (proxy_pending(px)) {
		if (loop_now_ms() > end) {
			dump_log();
			harness_fail(__FILE__, line, "proxy still pending: %s", proxy_error(px));
		}
		loop_run_once(l, 50);
	}
}
#define SETTLE(l, px) settle(l, px, __LINE__)

/* Start the proxy and wait for Caddy to take the (empty) model. */
static void start(struct loop *l, struct proxy *px, struct applied *a)
{
	char err[512];
	CHECK_INT(proxy_start(px, err, sizeof(err)), 0);
	CHECK(proxy_pid(px) > 1);
	guard(proxy_pid(px));
	long long end = loop_now_ms() + 15000;
	while (a->ok + a->failed == 0) {
		if (loop_now_ms() > end) {
			dump_log();
			harness_fail(__FILE__, __LINE__, "caddy never answered: %s",
				     proxy_error(px));
		}
		loop_run_once(l, 50);
	}
	CHECK_INT(a->failed, 0);
}

TEST(caddy_switches_upstream_in_one_load)
{
	if (!have_caddy())
		return;
	struct loop *l = mkloop();
	struct applied a = {0};
	struct proxy *px = mkproxy(l, "px", 0, &a);
	struct upstream ua = upstream("a", "release A\n"), ub = upstream("b", "release B\n");
	start(l, px, &a);
	pid_t caddy = proxy_pid(px);
	char err[512];
	int port = free_port();
	struct proxy_site s = {.name = "web", .port = port, .upstreams = &ua.port, .nupstreams = 1};
	CHECK_INT(proxy_set_site(px, &s, err, sizeof(err)), 0);
	CHECK(proxy_pending(px));
	SETTLE(l, px);
	CHECK_STR(proxy_error(px), "");
	struct buf body = BUF_INIT;
	CHECK_INT(get(port, NULL, &body), 0);
	CHECK_STR(body.data, "release A\n");

	unsigned loads = proxy_loads(px);
	s.upstreams = &ub.port;
	CHECK_INT(proxy_set_site(px, &s, err, sizeof(err)), 0);
	proxy_apply(px);
	SETTLE(l, px);
	CHECK_INT(proxy_loads(px), loads + 1);
	CHECK_INT(get(port, NULL, &body), 0);
	CHECK_STR(body.data, "release B\n");
	/* Re-applying the same model does not reload Caddy. */
	CHECK_INT(proxy_set_site(px, &s, err, sizeof(err)), 0);
	proxy_apply(px);
	SETTLE(l, px);
	CHECK_INT(proxy_loads(px), loads + 1);
	CHECK_INT(proxy_pid(px), caddy);

	buf_release(&body);
	proxy_free(px);
	kill_pid(caddy);
	kill_pid(ua.pid);
	kill_pid(ub.pid);
	loop_free(l);
}

static void read_text(const char *path, struct buf *out)
{
	char err[256];
	buf_reset(out);
	if (buf_read_file(out, path, 1 << 22, err, sizeof(err)) < 0)
		harness_fail(__FILE__, __LINE__, "%s", err);
}

static size_t count(const char *s, const char *needle)
{
	size_t n = 0;
	for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* A client (bounded: at most 20000 requests, and it stops when ./stop
 * exists) writes one line per request to client.out: the body, or "ERR"
 * and the error. */
static const char client_py[] =
    "import os, sys, urllib.request\n"
    "out = open('client.out', 'w', buffering=1)\n"
    "for i in range(20000):\n"
    "    if os.path.exists('stop'):\n"
    "        break\n"
    "    try:\n"
    "        with urllib.request.urlopen(sys.argv[1], timeout=5) as r:\n"
    "            out.write(r.read().decode().strip() + '\\n')\n"
    "    except Exception as e:\n"
    "        out.write('ERR %r\\n' % (e,))\n";

/* Run the loop until client.out holds want n times after offset (bounded). */
static void wait_client(struct loop *l, size_t offset, const char *want, size_t n)
{
	struct buf b = BUF_INIT;
	long long end = loop_now_ms() + 15000;
	for (;;) {
		read_text("client.out", &b);
		if (b.len > offset && count(b.data + offset, want) >= n)
			break;
		if (loop_now_ms() > end)
			harness_fail(__FILE__, __LINE__, "client never got '%s'", want);
		loop_run_once(l, 20);
	}
	buf_release(&b);
}

TEST(caddy_switch_drops_no_request)
{
	if (!have_caddy())
		return;
	struct loop *l = mkloop();
	struct applied a = {0};
	struct proxy *px = mkproxy(l, "px", 0, &a);
	struct upstream ua = upstream("a", "release A\n"), ub = upstream("b", "release B\n");
	start(l, px, &a);
	pid_t caddy = proxy_pid(px);
	char err[512], url[64];
	int port = free_port();
	struct proxy_site s = {.name = "web", .port = port, .upstreams = &ua.port, .nupstreams = 1};
	CHECK_INT(proxy_set_site(px, &s, err, sizeof(err)), 0);
	SETTLE(l, px);

	write_text("client.py", client_py);
	write_text("client.out", "");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	const char *argv[] = {"/usr/bin/python3", "client.py", url, NULL};
	struct spawn_opts o = {.argv = argv, .pgroup = SPAWN_PGROUP, .err = SPAWN_INHERIT};
	struct spawn_proc cp;
	CHECK_INT(spawn_start(&o, &cp, err, sizeof(err)), 0);
	guard(cp.pid);
	wait_client(l, 0, "release A", 20);

	/* Six switches, each one load, each while requests keep coming. */
	unsigned loads = proxy_loads(px);
	struct buf b = BUF_INIT;
	const struct upstream *order[] = {&ub, &ua, &ub, &ua, &ub, &ua};
	for (int i = 0; i < 6; i++) {
		read_text("client.out", &b);
		size_t off = b.len;
		s.upstreams = &order[i]->port;
		CHECK_INT(proxy_set_site(px, &s, err, sizeof(err)), 0);
		proxy_apply(px);
		SETTLE(l, px);
		wait_client(l, off, order[i] == &ub ? "release B" : "release A", 50);
	}
	CHECK_INT(proxy_loads(px), loads + 6);
	write_text("stop", "");
	int status;
	CHECK_INT(waitpid(cp.pid, &status, 0), cp.pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	read_text("client.out", &b);
	size_t na = count(b.data, "release A\n"), nb = count(b.data, "release B\n");
	size_t resets = count(b.data, "ConnectionResetError(104");
	size_t nerr = count(b.data, "ERR");
	/* Caddy 2.6.2 listens with SO_REUSEPORT and opens a new socket per
	 * load; connections still queued on the old socket when it closes are
	 * reset by the kernel (here: 0 to 2 connections in 6 loads, in about
	 * half the runs). Any other failure (a 502, a timeout, a wrong body), or more
	 * than one reset per load, fails the test. */
	if (nerr != resets || resets > 6)
		harness_fail(__FILE__, __LINE__, "failed requests: %.300s", strstr(b.data, "ERR"));
	CHECK(na > 0 && nb > 0);
	CHECK_INT(na + nb + nerr, count(b.data, "\n"));
	fprintf(stderr, "zero-downtime: %zu requests across 6 loads, %zu reset by caddy\n",
		na + nb + nerr, resets);

	buf_release(&b);
	proxy_free(px);
	kill_pid(caddy);
	kill_pid(ua.pid);
	kill_pid(ub.pid);
	loop_free(l);
}

TEST(caddy_static_site_hosts_and_removal)
{
	if (!have_caddy())
		return;
	struct loop *l = mkloop();
	struct applied a = {0};
	struct proxy *px = mkproxy(l, "px", 0, &a);
	struct upstream ua = upstream("a", "release A\n");
	start(l, px, &a);
	pid_t caddy = proxy_pid(px);
	char err[512], root[4096];
	CHECK_INT(mkdir("site", 0755), 0);
	write_text("site/index.html", "static docs\n");
	CHECK(realpath("site", root) != NULL);
	int port = free_port();
	const char *dom[] = {"docs.example.org"};
	struct proxy_site docs = {
	    .name = "docs", .port = port, .domains = dom, .ndomains = 1, .root = root};
	struct proxy_site web = {
	    .name = "web", .port = port, .upstreams = &ua.port, .nupstreams = 1};
	unsigned loads = proxy_loads(px);
	/* Two changes in one batch: one load. */
	CHECK_INT(proxy_set_site(px, &docs, err, sizeof(err)), 0);
	CHECK_INT(proxy_set_site(px, &web, err, sizeof(err)), 0);
	SETTLE(l, px);
	CHECK_INT(proxy_loads(px), loads + 1);
	struct buf body = BUF_INIT;
	CHECK_INT(get(port, "docs.example.org", &body), 0);
	CHECK_STR(body.data, "static docs\n");
	CHECK_INT(get(port, "DOCS.example.org", &body), 0);
	CHECK_STR(body.data, "static docs\n");
	CHECK_INT(get(port, "other.example.org", &body), 0);
	CHECK_STR(body.data, "release A\n");

	/* Without the static site its host falls to the catch-all. */
	CHECK_INT(proxy_remove_site(px, "docs"), 0);
	SETTLE(l, px);
	CHECK_INT(get(port, "docs.example.org", &body), 0);
	CHECK_STR(body.data, "release A\n");
	/* Without any site on the port, Caddy stops listening on it. */
	CHECK_INT(proxy_remove_site(px, "web"), 0);
	SETTLE(l, px);
	CHECK_INT(get(port, NULL, &body), 7);
	CHECK_INT(proxy_loads(px), loads + 3);
	CHECK_INT(a.failed, 0);

	buf_release(&body);
	proxy_free(px);
	kill_pid(caddy);
	kill_pid(ua.pid);
	loop_free(l);
}

TEST(caddy_refusal_is_reported)
{
	if (!have_caddy())
		return;
	struct loop *l = mkloop();
	struct applied a = {0};
	char err[512];
	/* 192.0.2.1 (TEST-NET-1) is not an address of this host: Caddy cannot
	 * bind it and refuses the config. */
	struct proxy_opts o = {.dir = "px",
			       .listen_host = "192.0.2.1",
			       .apply_delay_ms = 20,
			       .on_apply = on_apply,
			       .arg = &a};
	log_set_level(LOG_LVL_OFF); /* the refusals are expected */
	struct proxy *px = proxy_new(l, &o, err, sizeof(err));
	CHECK(px != NULL);
	start(l, px, &a);
	pid_t caddy = proxy_pid(px);
	int port = free_port();
	CHECK_INT(proxy_set_site(
		      px, &(struct proxy_site){.name = "web", .port = port, .root = "/nonexistent"},
		      err, sizeof(err)),
		  0);
	SETTLE(l, px);
	CHECK_INT(a.failed, 1);
	const char *e = proxy_error(px);
	if (!strstr(e, "proxy: caddy refused the config (4") || !strstr(e, "192.0.2.1"))
		harness_fail(__FILE__, __LINE__, "error: %s", e);
	/* Caddy kept its old config, which is the model again once the site
	 * is gone: nothing to load, and no error any more. */
	CHECK_INT(proxy_pid(px), caddy);
	CHECK_INT(proxy_remove_site(px, "web"), 0);
	SETTLE(l, px);
	CHECK_STR(proxy_error(px), "");
	CHECK_INT(a.ok, 2); /* the start's load, and this one without a load */
	/* Caddy still answers: a new model is sent (and refused again). */
	CHECK_INT(proxy_set_site(
		      px, &(struct proxy_site){.name = "w2", .port = port, .root = "/nonexistent"},
		      err, sizeof(err)),
		  0);
	SETTLE(l, px);
	CHECK_INT(a.failed, 2);
	CHECK_INT(proxy_pid(px), caddy);
	proxy_free(px);
	kill_pid(caddy);
	loop_free(l);
}

/* The TCP ports pid listens on (its own sockets, from /proc), as a
 * space-separated sorted-by-discovery list appended to out. */
static void listening_ports(pid_t pid, struct buf *out)
{
	char path[64], link[128];
	struct buf inodes = BUF_INIT, tab = BUF_INIT;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	CHECK(d != NULL);
	struct dirent *e;
	buf_putc(&inodes, ' ');
	while ((e = readdir(d))) {
		char fdp[320];
		snprintf(fdp, sizeof(fdp), "%s/%s", path, e->d_name);
		ssize_t n = readlink(fdp, link, sizeof(link) - 1);
		if (n > 9 && strncmp(link, "socket:[", 8) == 0) {
			link[n - 1] = '\0';
			buf_printf(&inodes, "%s ", link + 8);
		}
	}
	closedir(d);
	const char *tabs[] = {"tcp", "tcp6"};
	for (int t = 0; t < 2; t++) {
		char err[256];
		snprintf(path, sizeof(path), "/proc/%d/net/%s", (int)pid, tabs[t]);
		buf_reset(&tab);
		CHECK_INT(buf_read_file(&tab, path, 1 << 22, err, sizeof(err)), 0);
		char *save = NULL;
		for (char *line = strtok_r(tab.data, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			char local[64], st[8];
			unsigned long inode;
			if (sscanf(line, " %*s %63s %*s %7s %*s %*s %*s %*s %*s %lu", local, st,
				   &inode) != 3 ||
			    strcmp(st, "0A") != 0)
				continue;
			char key[32];
			snprintf(key, sizeof(key), " %lu ", inode);
			if (!strstr(inodes.data, key))
				continue;
			const char *colon = strrchr(local, ':');
			buf_printf(out, "%ld ", strtol(colon + 1, NULL, 16));
		}
	}
	buf_release(&inodes);
	buf_release(&tab);
}

TEST(caddy_admin_is_only_on_the_private_socket)
{
	if (!have_caddy())
		return;
	struct loop *l = mkloop();
	struct applied a = {0};
	struct proxy *px = mkproxy(l, "px", 0, &a);
	char err[512];
	start(l, px, &a);
	pid_t caddy = proxy_pid(px);
	int port = free_port();
	CHECK_INT(proxy_set_site(px, &(struct proxy_site){.name = "s", .port = port, .root = "/"},
				 err, sizeof(err)),
		  0);
	SETTLE(l, px);
	/* Caddy listens on the site's port and on no other TCP port (no
	 * localhost:2019 admin endpoint). */
	struct buf ports = BUF_INIT, want = BUF_INIT;
	listening_ports(caddy, &ports);
	buf_printf(&want, "%d ", port);
	CHECK_STR(ports.data, want.data);
	/* The admin socket sits in a directory only its owner can enter. */
	struct stat st;
	CHECK_INT(stat(proxy_admin_path(px), &st), 0);
	CHECK(S_ISSOCK(st.st_mode));
	CHECK_INT(stat("px", &st), 0);
	CHECK_INT(st.st_mode & 0777, 0700);
	/* Caddy's files stay in its directory. */
	CHECK_INT(stat("px/caddy.json", &st), 0);
	CHECK_INT(st.st_mode & 0777, 0600);
	CHECK_INT(stat("px/caddy.pid", &st), 0);
	buf_release(&ports);
	buf_release(&want);
	proxy_free(px);
	kill_pid(caddy);
	loop_free(l);
}

TEST(caddy_restarted_after_a_crash_gets_the_model_back)
{
	if (!have_caddy())
		return;
	struct loop *l = mkloop();
	struct applied a = {0};
	struct proxy *px = mkproxy(l, "px", 0, &a);
	struct upstream ua = upstream("a", "release A\n");
	start(l, px, &a);
	pid_t caddy = proxy_pid(px);
	char err[512];
	int port = free_port();
	struct proxy_site s = {.name = "web", .port = port, .upstreams = &ua.port, .nupstreams = 1};
	CHECK_INT(proxy_set_site(px, &s, err, sizeof(err)), 0);
	SETTLE(l, px);
	struct buf body = BUF_INIT;
	CHECK_INT(get(port, NULL, &body), 0);

	unsigned loads = proxy_loads(px);
	CHECK_INT(kill(caddy, SIGKILL), 0);
	long long end = loop_now_ms() + 15000;
	while (proxy_pid(px) == caddy || proxy_pid(px) < 0 || proxy_pending(px) ||
	       proxy_loads(px) == loads) {
		if (loop_now_ms() > end) {
			dump_log();
			harness_fail(__FILE__, __LINE__, "caddy not back: %s", proxy_error(px));
		}
		loop_run_once(l, 50);
	}
	caddy = proxy_pid(px);
	guard(caddy);
	CHECK_INT(get(port, NULL, &body), 0);
	CHECK_STR(body.data, "release A\n");

	/* proxy_stop ends it for good. */
	proxy_stop(px);
	end = loop_now_ms() + 15000;
	while (proxy_pid(px) > 0 && loop_now_ms() < end)
		loop_run_once(l, 50);
	CHECK_INT(proxy_pid(px), -1);
	CHECK(kill(caddy, 0) < 0);
	CHECK_INT(get(port, NULL, &body), 7);

	buf_release(&body);
	proxy_free(px);
	kill_pid(ua.pid);
	loop_free(l);
}

TEST(caddy_is_adopted_by_the_next_proxy)
{
	if (!have_caddy())
		return;
	struct loop *l = mkloop();
	struct applied a = {0}, a2 = {0};
	struct proxy *px = mkproxy(l, "px", 0, &a);
	struct upstream ua = upstream("a", "release A\n");
	start(l, px, &a);
	pid_t caddy = proxy_pid(px);
	char err[512];
	int port = free_port();
	struct proxy_site s = {.name = "web", .port = port, .upstreams = &ua.port, .nupstreams = 1};
	CHECK_INT(proxy_set_site(px, &s, err, sizeof(err)), 0);
	SETTLE(l, px);
	/* An agent restart: the proxy goes, Caddy keeps serving. */
	proxy_free(px);
	struct buf body = BUF_INIT;
	CHECK_INT(get(port, NULL, &body), 0);
	CHECK_STR(body.data, "release A\n");

	/* The next proxy sets its model first, then adopts the same Caddy. */
	px = mkproxy(l, "px", 0, &a2);
	CHECK_INT(proxy_set_site(px, &s, err, sizeof(err)), 0);
	CHECK_INT(proxy_start(px, err, sizeof(err)), 0);
	CHECK_INT(proxy_pid(px), caddy);
	SETTLE(l, px);
	CHECK_INT(a2.failed, 0);
	CHECK_INT(get(port, NULL, &body), 0);
	CHECK_STR(body.data, "release A\n");

	/* A stale record (that pid is gone) is not adopted: a new Caddy starts. */
	proxy_free(px);
	kill_pid(caddy);
	struct applied a3 = {0};
	px = mkproxy(l, "px", 0, &a3);
	CHECK_INT(proxy_set_site(px, &s, err, sizeof(err)), 0);
	start(l, px, &a3);
	CHECK(proxy_pid(px) != caddy);
	caddy = proxy_pid(px);
	SETTLE(l, px);
	CHECK_INT(get(port, NULL, &body), 0);
	CHECK_STR(body.data, "release A\n");

	buf_release(&body);
	proxy_free(px);
	kill_pid(caddy);
	kill_pid(ua.pid);
	loop_free(l);
}

TEST(missing_caddy_is_retried_not_fatal)
{
	struct loop *l = mkloop();
	log_set_level(LOG_LVL_OFF);
	struct applied a = {0};
	char err[512];
	struct proxy_opts o = {.dir = "px",
			       .caddy = "/nonexistent/caddy",
			       .apply_delay_ms = 1,
			       .backoff_min_ms = 10,
			       .on_apply = on_apply,
			       .arg = &a};
	struct proxy *px = proxy_new(l, &o, err, sizeof(err));
	CHECK(px != NULL);
	CHECK_INT(proxy_set_site(px, &(struct proxy_site){.name = "s", .port = 1, .root = "/"}, err,
				 sizeof(err)),
		  0);
	CHECK_INT(proxy_start(px, err, sizeof(err)), 0);
	/* The bootstrap config holds the admin endpoint alone. */
	struct buf b = BUF_INIT;
	CHECK_INT(buf_read_file(&b, "px/caddy.json", 4096, err, sizeof(err)), 0);
	CHECK(strncmp(b.data, "{\"admin\":{\"listen\":\"unix/", 25) == 0);
	CHECK(strstr(b.data, "\"apps\"") == NULL);
	for (int i = 0; i < 20; i++)
		loop_run_once(l, 10);
	CHECK_INT(proxy_pid(px), -1);
	CHECK(proxy_pending(px));
	CHECK_INT(a.ok + a.failed, 0);
	CHECK_INT(proxy_loads(px), 0);
	proxy_stop(px);
	buf_release(&b);
	proxy_free(px);
	loop_free(l);
}
