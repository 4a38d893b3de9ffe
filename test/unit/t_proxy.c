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
	struct proxy_site web = {.name = "web", .port = 8080, .domains = dom, .ndomains = 2,
				 .upstreams = up, .nupstreams = 2};
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
	struct proxy_site s = {.name = name, .port = 8080, .domains = dom, .ndomains = 3,
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
	const struct proto_jv *hosts = proto_jv_get(proto_jv_first(proto_jv_get(route, "match")),
						    "host");
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
	const char *dom[] = {"shop.example.org", "localhost", "app.local", "10.0.0.1",
			     "api.internal", "x.localhost", "::1", "Shop2.Example.COM."};
	int up[] = {9001};
	struct proxy_site web = {.name = "web", .port = 8080, .domains = dom, .ndomains = 8,
				 .upstreams = up, .nupstreams = 1};
	const char *ldom[] = {"intranet.lan"};
	struct proxy_site priv = {.name = "priv", .port = 8081, .domains = ldom, .ndomains = 1,
				  .root = "/srv"};
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
	const struct proto_jv *hosts = proto_jv_get(proto_jv_first(proto_jv_get(r, "match")), "host");
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
	/* Port 443 belongs to the https server. */
	struct proxy_site p443 = {.name = "x", .port = 443, .root = "/srv"};
	CHECK_INT(proxy_set_site(px, &p443, err, sizeof(err)), -1);
	CHECK_STR(err, "proxy: site 'x': port 443 is the proxy's https port");
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
	struct proxy_site s = {.name = "web", .port = 8080, .domains = dom, .ndomains = 2,
			       .upstreams = up, .nupstreams = 1};
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
