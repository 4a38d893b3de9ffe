#include "client.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "crypt.h"
#include "harness.h"
#include "pki.h"
#include "xalloc.h"

#define GOOD_TOKEN "dpy_good-token_0123456789"

/* --- the context file ------------------------------------------------------- */

TEST(config_path_precedence)
{
	char err[256];
	char *p = client_config_path_from("/f/c.json", "/e/c.json", "/x", "/h", err, sizeof(err));
	CHECK_STR(p, "/f/c.json");
	free(p);
	p = client_config_path_from(NULL, "/e/c.json", "/x", "/h", err, sizeof(err));
	CHECK_STR(p, "/e/c.json");
	free(p);
	p = client_config_path_from("", "", "/x", "/h", err, sizeof(err));
	CHECK_STR(p, "/x/dployr/config.json");
	free(p);
	p = client_config_path_from(NULL, NULL, NULL, "/h", err, sizeof(err));
	CHECK_STR(p, "/h/.config/dployr/config.json");
	free(p);
	/* a relative XDG_CONFIG_HOME is ignored (XDG base directory spec) */
	p = client_config_path_from(NULL, NULL, "rel", "/h", err, sizeof(err));
	CHECK_STR(p, "/h/.config/dployr/config.json");
	free(p);
	CHECK(client_config_path_from(NULL, "", "", NULL, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "DPLOYR_CONFIG") != NULL);
}

TEST(config_path_reads_the_environment)
{
	char err[256];
	setenv("HOME", "/home/u", 1);
	unsetenv("XDG_CONFIG_HOME");
	unsetenv("DPLOYR_CONFIG");
	char *p = client_config_path(NULL, err, sizeof(err));
	CHECK_STR(p, "/home/u/.config/dployr/config.json");
	free(p);
	setenv("XDG_CONFIG_HOME", "/xdg", 1);
	p = client_config_path(NULL, err, sizeof(err));
	CHECK_STR(p, "/xdg/dployr/config.json");
	free(p);
	setenv("DPLOYR_CONFIG", "/env.json", 1);
	p = client_config_path(NULL, err, sizeof(err));
	CHECK_STR(p, "/env.json");
	free(p);
	p = client_config_path("flag.json", err, sizeof(err));
	CHECK_STR(p, "flag.json");
	free(p);
}

/* A real CA certificate, for contexts that must parse. */
static char *make_ca(struct pki_key **keyp)
{
	char err[256];
	time_t now = time(NULL);
	struct crypt_rng *rng = crypt_rng_new();
	struct pki_key *key = pki_key_generate(rng);
	struct pki_cert_opts o = { .cn = "test CA", .not_before = now - 60, .not_after = now + 3600 };
	char *ca = pki_ca_create(key, &o, rng, err, sizeof(err));
	if (!ca)
		harness_fail(__FILE__, __LINE__, "%s", err);
	crypt_rng_free(rng);
	if (keyp)
		*keyp = key;
	else
		pki_key_free(key);
	return ca;
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		harness_fail(__FILE__, __LINE__, "stat '%s': %s", path, strerror(errno));
	return st.st_mode & 07777;
}

TEST(context_save_modes_and_round_trip)
{
	char err[512];
	char *ca = make_ca(NULL);
	struct client_ctx ctx = { xstrdup("https://127.0.0.1:7443"), ca, xstrdup(GOOD_TOKEN) };
	umask(0); /* the modes must not depend on the umask */
	CHECK_INT(client_ctx_save(&ctx, "a/b/dployr/config.json", err, sizeof(err)), 0);
	CHECK_INT(mode_of("a/b/dployr/config.json"), 0600);
	CHECK_INT(mode_of("a/b/dployr"), 0700);
	CHECK_INT(mode_of("a/b"), 0700);
	CHECK_INT(mode_of("a"), 0700);

	struct client_ctx got;
	CHECK_INT(client_ctx_load(&got, "a/b/dployr/config.json", err, sizeof(err)), 0);
	CHECK_STR(got.base, ctx.base);
	CHECK_STR(got.ca, ctx.ca);
	CHECK_STR(got.token, ctx.token);
	client_ctx_release(&got);
	client_ctx_release(&got);
	client_ctx_release(&ctx);
	CHECK(ctx.token == NULL);
}

TEST(context_save_keeps_an_existing_directory_and_replaces_atomically)
{
	char err[512];
	umask(022);
	CHECK_INT(mkdir("shared", 0755), 0);
	FILE *f = fopen("shared/c.json", "w");
	CHECK(f != NULL);
	fputs("old and longer content that must disappear entirely ...............\n", f);
	fclose(f);
	CHECK_INT(chmod("shared/c.json", 0644), 0);
	struct stat before;
	CHECK_INT(stat("shared/c.json", &before), 0);

	struct client_ctx ctx = { xstrdup("https://[::1]:1"), make_ca(NULL), xstrdup(GOOD_TOKEN) };
	CHECK_INT(client_ctx_save(&ctx, "shared/c.json", err, sizeof(err)), 0);
	CHECK_INT(mode_of("shared"), 0755); /* not ours to change */
	CHECK_INT(mode_of("shared/c.json"), 0600);
	struct stat after;
	CHECK_INT(stat("shared/c.json", &after), 0);
	CHECK(after.st_ino != before.st_ino); /* a new file renamed over the old */
	struct buf b = BUF_INIT;
	CHECK_INT(buf_read_file(&b, "shared/c.json", 1 << 16, err, sizeof(err)), 0);
	CHECK(strstr(b.data, "old and longer") == NULL);
	CHECK(strstr(b.data, "\"token\": \"" GOOD_TOKEN "\"") != NULL);
	buf_release(&b);
	/* no temporary file left behind */
	CHECK(access("shared/c.json.tmp.0", F_OK) < 0);
	char tmp[64];
	snprintf(tmp, sizeof(tmp), "shared/c.json.tmp.%ld", (long)getpid());
	CHECK(access(tmp, F_OK) < 0);

	/* an unwritable place fails with the path in the reason */
	CHECK_INT(chmod("shared", 0500), 0);
	if (geteuid() != 0) {
		CHECK_INT(client_ctx_save(&ctx, "shared/c.json", err, sizeof(err)), -1);
		CHECK(strstr(err, "shared/c.json") != NULL);
		CHECK_INT(client_ctx_save(&ctx, "shared/sub/c.json", err, sizeof(err)), -1);
		CHECK(strstr(err, "create directory 'shared/sub'") != NULL);
	}
	CHECK_INT(chmod("shared", 0755), 0);
	/* an incomplete context is refused */
	free(ctx.token);
	ctx.token = NULL;
	CHECK_INT(client_ctx_save(&ctx, "x.json", err, sizeof(err)), -1);
	CHECK(access("x.json", F_OK) < 0);
	client_ctx_release(&ctx);
}

TEST(context_missing_file_says_not_logged_in)
{
	char err[512];
	struct client_ctx ctx;
	CHECK_INT(client_ctx_load(&ctx, "nope/config.json", err, sizeof(err)), -1);
	CHECK(strstr(err, "not logged in: run dployr login") == err);
	CHECK(strstr(err, "nope/config.json") != NULL);
	client_ctx_release(&ctx);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	fputs(text, f);
	fclose(f);
}

TEST(context_damaged_files_report_every_problem)
{
	char err[1024];
	struct client_ctx ctx;
	write_file("c", "{\"base\": \"https://a:1\", ");
	CHECK_INT(client_ctx_load(&ctx, "c", err, sizeof(err)), -1);
	CHECK(strstr(err, "context 'c': ") == err);
	client_ctx_release(&ctx);

	write_file("c", "[1,2]");
	CHECK_INT(client_ctx_load(&ctx, "c", err, sizeof(err)), -1);
	CHECK(strstr(err, "not a JSON object") != NULL);
	client_ctx_release(&ctx);

	write_file("c", "{\"base\": 5, \"ca\": \"nonsense\"}");
	CHECK_INT(client_ctx_load(&ctx, "c", err, sizeof(err)), -1);
	CHECK(strstr(err, "'base' must be a string") != NULL);
	CHECK(strstr(err, "'token' is missing") != NULL);
	CHECK(strstr(err, "'ca': ") != NULL);
	client_ctx_release(&ctx);

	write_file("c", "{\"base\": \"http://a:1\", \"ca\": \"x\", \"token\": \"has space\"}");
	CHECK_INT(client_ctx_load(&ctx, "c", err, sizeof(err)), -1);
	CHECK(strstr(err, "'base': ") != NULL);
	CHECK(strstr(err, "'token': not a token") != NULL);
	CHECK(strstr(err, "has space") == NULL); /* a token is never echoed */
	client_ctx_release(&ctx);

	/* a duplicated key is ambiguous, hence missing */
	write_file("c", "{\"base\":\"https://a:1\",\"base\":\"https://b:1\"}");
	CHECK_INT(client_ctx_load(&ctx, "c", err, sizeof(err)), -1);
	CHECK(strstr(err, "'base' is missing") != NULL);
	client_ctx_release(&ctx);

	/* too large */
	struct buf big = BUF_INIT;
	buf_puts(&big, "{\"base\":\"");
	for (int i = 0; i < CLIENT_CTX_MAX; i++)
		buf_putc(&big, 'a');
	buf_puts(&big, "\"}");
	write_file("c", big.data);
	buf_release(&big);
	CHECK_INT(client_ctx_load(&ctx, "c", err, sizeof(err)), -1);
	CHECK(strstr(err, "larger than") != NULL);
	client_ctx_release(&ctx);

	/* a good file with extra members and a base to canonicalise */
	char *ca = make_ca(NULL);
	struct buf ok = BUF_INIT;
	buf_puts(&ok, "{\"extra\":1,\"base\":\"localhost:7443/\",\"ca\":");
	buf_json_cstr(&ok, ca);
	buf_puts(&ok, ",\"token\":\"" GOOD_TOKEN "\"}");
	write_file("c", ok.data);
	CHECK_INT(client_ctx_load(&ctx, "c", err, sizeof(err)), 0);
	CHECK_STR(ctx.base, "https://localhost:7443");
	client_ctx_release(&ctx);
	buf_release(&ok);
	free(ca);
}

/* --- checks -------------------------------------------------------------------- */

TEST(base_url_forms)
{
	char canon[CLIENT_URL_MAX], addr[CLIENT_URL_MAX], host[CLIENT_URL_MAX], err[256];
	CHECK_INT(client_base_parse("https://127.0.0.1:7443", canon, addr, host, err, sizeof(err)),
		  0);
	CHECK_STR(canon, "https://127.0.0.1:7443");
	CHECK_STR(addr, "127.0.0.1:7443");
	CHECK_STR(host, "127.0.0.1");
	CHECK_INT(client_base_parse("https://[::1]:8443/", canon, addr, host, err, sizeof(err)), 0);
	CHECK_STR(canon, "https://[::1]:8443");
	CHECK_STR(addr, "[::1]:8443");
	CHECK_STR(host, "::1");
	CHECK_INT(client_base_parse("base.example.org", canon, addr, host, err, sizeof(err)), 0);
	CHECK_STR(canon, "https://base.example.org:443");
	CHECK_INT(client_base_parse("base:1", canon, NULL, NULL, err, sizeof(err)), 0);
	CHECK_STR(canon, "https://base:1");

	const char *bad[] = { "http://a:1",   "https://",	"https://:1",	  "https://a:0",
			      "https://a:65536", "https://a:1/x", "https://a:1?q",   "https://u@a:1",
			      "https://[::1",	 "https://[zz]:1", "https://a:99999999999999",
			      "https://a:",	 "",		 "https://a b:1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		if (client_base_parse(bad[i], canon, addr, host, err, sizeof(err)) != -1)
			harness_fail(__FILE__, __LINE__, "accepted '%s'", bad[i]);
		CHECK(err[0] != 0);
	}
	char longurl[400];
	memset(longurl, 'a', sizeof(longurl) - 1);
	longurl[sizeof(longurl) - 1] = 0;
	CHECK_INT(client_base_parse(longurl, canon, NULL, NULL, err, sizeof(err)), -1);
}

TEST(pin_token_and_name_checks)
{
	char err[256], pin[80];
	snprintf(pin, sizeof(pin), "sha256:%s",
		 "0123456789abcdefABCDEF0123456789abcdef0123456789abcdef0123456789");
	CHECK_INT(client_pin_check(pin, err, sizeof(err)), 0);
	pin[20] = 'g';
	CHECK_INT(client_pin_check(pin, err, sizeof(err)), -1);
	CHECK_INT(client_pin_check("sha256:00", err, sizeof(err)), -1);
	CHECK_INT(client_pin_check("md5:0123456789abcdefABCDEF0123456789abcdef0123456789abcdef012345678",
				   err, sizeof(err)),
		  -1);
	CHECK_INT(client_token_check(GOOD_TOKEN, err, sizeof(err)), 0);
	CHECK_INT(client_token_check("short", err, sizeof(err)), -1);
	CHECK_INT(client_token_check("dpy_abc\r\nX-Evil: 1", err, sizeof(err)), -1);
	CHECK(strstr(err, "Evil") == NULL);
	CHECK_INT(client_name_check("web-1", err, sizeof(err)), 0);
	const char *bad[] = { "w", "Web-1", "1web", "web-", "we--b", "web/../x", "web 1", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (client_name_check(bad[i], err, sizeof(err)) != -1)
			harness_fail(__FILE__, __LINE__, "accepted '%s'", bad[i]);
}

TEST(times_parse_and_print)
{
	char err[128];
	struct proto_json *d = proto_json_parse(
	    "[1700000000,\"2026-11-22T01:25:00Z\",\"2026-11-22T02:25:00.5+01:00\",\"x\","
	    "\"2026-13-01T00:00:00Z\",\"2026-11-22T01:25:00\",1.5,null]",
	    strlen("[1700000000,\"2026-11-22T01:25:00Z\",\"2026-11-22T02:25:00.5+01:00\",\"x\","
		   "\"2026-13-01T00:00:00Z\",\"2026-11-22T01:25:00\",1.5,null]"),
	    err, sizeof(err));
	if (!d)
		harness_fail(__FILE__, __LINE__, "%s", err);
	const struct proto_jv *r = proto_json_root(d);
	time_t t;
	CHECK_INT(client_time(proto_jv_at(r, 0), &t), 0);
	CHECK_INT(t, 1700000000);
	CHECK_INT(client_time(proto_jv_at(r, 1), &t), 0);
	char s[64];
	client_utc(t, s, sizeof(s));
	CHECK_STR(s, "2026-11-22T01:25:00Z");
	time_t t2;
	CHECK_INT(client_time(proto_jv_at(r, 2), &t2), 0);
	CHECK_INT(t2, t);
	for (size_t i = 3; i < 8; i++)
		CHECK_INT(client_time(proto_jv_at(r, i), &t), -1);
	CHECK_INT(client_time(NULL, &t), -1);
	proto_json_free(d);

	client_reltime(1000, 1003, s, sizeof(s));
	CHECK_STR(s, "3s ago");
	client_reltime(1000, 1000 + 125, s, sizeof(s));
	CHECK_STR(s, "2m ago");
	client_reltime(1000, 1000 + 7300, s, sizeof(s));
	CHECK_STR(s, "2h ago");
	client_reltime(1000, 1000 + 86400 * 3, s, sizeof(s));
	CHECK_STR(s, "3d ago");
	client_reltime(1000 + 900, 1000, s, sizeof(s));
	CHECK_STR(s, "in 15m");
}

/* --- against a stand-in base --------------------------------------------------------
 *
 * A mock: the real base is another module (and e2e test t0300 runs it);
 * here a conn listener in a child process answers the few routes the
 * client's behaviour depends on. */

struct mock {
	const char *ca;
};

static void send_output(struct conn *c, const char *stream, const char *text)
{
	struct buf m = BUF_INIT;
	buf_printf(&m, "{\"type\":\"output\",\"stream\":\"%s\",\"data\":\"", stream);
	proto_b64_encode(&m, text, strlen(text));
	buf_puts(&m, "\"}");
	conn_ws_send_text(c, m.data);
	buf_release(&m);
}

static const struct conn_handlers stubborn_h;

static void mock_request(struct conn *c, void *arg, struct http_parser *req)
{
	struct mock *m = arg;
	const char *path = http_path(req);
	const char *auth = http_header(req, "Authorization");
	int authed = auth && strcmp(auth, "Bearer " GOOD_TOKEN) == 0;
	if (!strcmp(path, "/v1/ca")) {
		conn_reply(c, 200, NULL, "text/plain", m->ca, strlen(m->ca));
	} else if (!authed) {
		conn_reply_error(c, 401, "invalid token");
	} else if (!strcmp(path, "/v1/whoami")) {
		conn_reply_json(c, 200, "{\"user\":\"owner\",\"role\":\"owner\"}");
	} else if (!strcmp(path, "/v1/instances/web-1/exec")) {
		conn_reply_error(c, 409, "instance 'web-1' is offline\x1b[2J");
	} else if (!strcmp(path, "/v1/plain-404")) {
		conn_reply(c, 404, NULL, "text/plain", "no", 2);
	} else if (!strcmp(path, "/v1/garbage")) {
		conn_reply(c, 200, NULL, "application/json", "{nope", 5);
	} else if (!strcmp(path, "/v1/tasks/t-lost")) {
		conn_reply_json(c, 200, "{\"task_id\":\"t-lost\",\"state\":\"done\",\"exit_status\":7}");
	} else if (!strncmp(path, "/v1/tasks/", 10) && strstr(path, "/stream")) {
		if (conn_upgrade(c) < 0)
			return;
		if (strstr(path, "/t-ok/")) {
			send_output(c, "stdout", "hello\n");
			send_output(c, "stderr", "oops\n");
			send_output(c, "stdout", "");
			conn_ws_send_text(c, "{\"type\":\"progress\"}");
			conn_ws_send_text(c, "{\"type\":\"exit\",\"status\":3,\"signal\":0}");
		} else if (strstr(path, "/t-cancel/")) {
			send_output(c, "stdout", "started\n");
		} else if (strstr(path, "/t-stubborn/")) {
			conn_set_handlers(c, &stubborn_h, m);
			send_output(c, "stdout", "started\n");
		} else if (strstr(path, "/t-lost/") || strstr(path, "/t-gone/")) {
			send_output(c, "stdout", "partial\n");
			conn_close(c); /* flushes, then ends TLS without a close frame */
		}
	} else {
		conn_reply_error(c, 404, "no such route");
	}
}

/* t-cancel: a cancel ends the task by SIGTERM. t-stubborn: it does not. */
static void mock_message(struct conn *c, void *arg, enum ws_type type, const void *data, size_t len)
{
	(void)arg;
	(void)type;
	if (len == 17 && !memcmp(data, "{\"type\":\"cancel\"}", 17)) {
		send_output(c, "stderr", "got cancel\n");
		conn_ws_send_text(c, "{\"type\":\"exit\",\"status\":0,\"signal\":15}");
	} else {
		send_output(c, "stderr", "unexpected message\n");
	}
}

/* t-stubborn: the task ignores the cancel. */
static void stubborn_message(struct conn *c, void *arg, enum ws_type type, const void *data,
			     size_t len)
{
	(void)arg;
	(void)type;
	(void)data;
	(void)len;
	send_output(c, "stderr", "ignored\n");
}

static const struct conn_handlers stubborn_h = {
	.message = stubborn_message,
};

static const struct conn_handlers mock_h = {
	.request = mock_request,
	.message = mock_message,
};

/* Serve until killed; the server certificate is for 127.0.0.1. */
static pid_t mock_start(char **ca_out, struct net_addr *addr)
{
	char err[256];
	struct pki_key *ca_key;
	char *ca = make_ca(&ca_key);
	time_t now = time(NULL);
	struct crypt_rng *rng = crypt_rng_new();
	struct pki_key *sk = pki_key_generate(rng);
	const char *ips[] = { "127.0.0.1" };
	struct pki_cert_opts s = { .cn = "base", .not_before = now - 60, .not_after = now + 3600,
				   .ips = ips, .nips = 1 };
	char *srv = pki_server_cert(ca, ca_key, sk, &s, rng, err, sizeof(err));
	char *skp = pki_key_pem(sk);
	if (!srv)
		harness_fail(__FILE__, __LINE__, "%s", err);
	int p[2];
	CHECK_INT(pipe(p), 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		/* a failing test must not leave its server behind */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(p[0]);
		struct loop *loop = loop_new(0, err, sizeof(err));
		struct tls_config *tls = tls_config_new_server(NULL, srv, skp, 0, err, sizeof(err));
		struct net_addr a;
		struct mock m = { ca };
		if (!loop || !tls || net_parse("127.0.0.1:0", &a, err, sizeof(err)) < 0)
			_exit(1);
		struct listener *l = listener_new(loop, &a, tls, NULL, &mock_h, &m, err, sizeof(err));
		if (!l || listener_local_addr(l, &a) < 0)
			_exit(1);
		if (write(p[1], &a, sizeof(a)) != sizeof(a))
			_exit(1);
		close(p[1]);
		loop_run(loop);
		_exit(0);
	}
	close(p[1]);
	CHECK_INT(read(p[0], addr, sizeof(*addr)), (long long)sizeof(*addr));
	close(p[0]);
	free(srv);
	free(skp);
	pki_key_free(sk);
	pki_key_free(ca_key);
	crypt_rng_free(rng);
	*ca_out = ca;
	return pid;
}

static void mock_stop(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static char *url_of(const struct net_addr *a)
{
	char t[NET_ADDRSTRLEN];
	return xasprintf("https://%s", net_addr_str(a, t, sizeof(t)));
}

TEST(fetch_ca_compares_the_pin)
{
	char *ca, err[512], fp[PKI_FINGERPRINT_LEN + 1];
	struct net_addr a;
	pid_t pid = mock_start(&ca, &a);
	char *url = url_of(&a);
	CHECK_INT(pki_cert_fingerprint(ca, fp, err, sizeof(err)), 0);
	char *got = client_fetch_ca(url, fp, 5000, err, sizeof(err));
	if (!got)
		harness_fail(__FILE__, __LINE__, "%s", err);
	CHECK_STR(got, ca);
	free(got);
	/* the pin in upper case is the same pin */
	char up[PKI_FINGERPRINT_LEN + 1];
	for (size_t i = 0; i <= PKI_FINGERPRINT_LEN; i++)
		up[i] = i < 7 ? fp[i] : (char)toupper((unsigned char)fp[i]);
	got = client_fetch_ca(url, up, 5000, err, sizeof(err));
	CHECK(got != NULL);
	free(got);
	/* one digit off: refused, and both fingerprints are named */
	char bad[PKI_FINGERPRINT_LEN + 1];
	memcpy(bad, fp, sizeof(bad));
	bad[PKI_FINGERPRINT_LEN - 1] = bad[PKI_FINGERPRINT_LEN - 1] == '0' ? '1' : '0';
	CHECK(client_fetch_ca(url, bad, 5000, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "ca fingerprint mismatch") != NULL);
	CHECK(strstr(err, bad) != NULL);
	CHECK(strstr(err, fp) != NULL);
	/* a malformed pin never reaches the network */
	CHECK(client_fetch_ca(url, "sha256:abc", 5000, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "not sha256:") != NULL);
	free(url);
	free(ca);
	mock_stop(pid);
}

TEST(calls_verify_the_ca_and_map_errors)
{
	char *ca, err[512];
	struct net_addr a;
	pid_t pid = mock_start(&ca, &a);
	char *url = url_of(&a);
	struct client *cl = client_new(url, ca, GOOD_TOKEN, err, sizeof(err));
	if (!cl)
		harness_fail(__FILE__, __LINE__, "%s", err);
	int status;
	struct proto_json *doc;
	struct buf raw = BUF_INIT;
	CHECK_INT(client_call(cl, "GET", "/v1/whoami", NULL, &status, &doc, &raw, err, sizeof(err)),
		  0);
	CHECK_INT(status, 200);
	CHECK_STR(proto_jv_get_str(proto_json_root(doc), "role"), "owner");
	CHECK(strstr(raw.data, "\"user\"") != NULL);
	proto_json_free(doc);
	/* base's error message, control characters neutralised */
	CHECK_INT(client_call(cl, "POST", "/v1/instances/web-1/exec", "{\"argv\":[\"x\"]}", &status,
			      &doc, NULL, err, sizeof(err)),
		  -1);
	CHECK_INT(status, 409);
	CHECK(doc == NULL);
	CHECK_STR(err, "instance 'web-1' is offline?[2J");
	CHECK_INT(client_call(cl, "GET", "/v1/plain-404", NULL, &status, NULL, NULL, err,
			      sizeof(err)),
		  -1);
	CHECK_STR(err, "base answered 404 Not Found");
	CHECK_INT(client_call(cl, "GET", "/v1/garbage", NULL, &status, &doc, NULL, err,
			      sizeof(err)),
		  -1);
	CHECK(strstr(err, "bad reply from base") != NULL);
	client_free(cl);

	/* a wrong token: 401 and the base's message */
	cl = client_new(url, ca, "dpy_wrong-token-00000", err, sizeof(err));
	CHECK_INT(client_call(cl, "GET", "/v1/whoami", NULL, &status, NULL, NULL, err, sizeof(err)),
		  -1);
	CHECK_INT(status, 401);
	CHECK_STR(err, "invalid token");
	client_free(cl);

	/* another CA: the handshake fails, nothing is sent */
	char *other = make_ca(NULL);
	cl = client_new(url, other, GOOD_TOKEN, err, sizeof(err));
	CHECK(cl != NULL);
	CHECK_INT(client_call(cl, "GET", "/v1/whoami", NULL, &status, NULL, NULL, err, sizeof(err)),
		  -1);
	CHECK_INT(status, 0);
	CHECK(strstr(err, GOOD_TOKEN) == NULL);
	client_free(cl);
	free(other);

	/* a client for a name the certificate is not for */
	char *byname = xasprintf("https://localhost:%d", net_addr_port(&a));
	cl = client_new(byname, ca, GOOD_TOKEN, err, sizeof(err));
	CHECK(cl != NULL);
	CHECK_INT(client_call(cl, "GET", "/v1/whoami", NULL, &status, NULL, NULL, err, sizeof(err)),
		  -1);
	CHECK(strstr(err, "localhost") != NULL);
	client_free(cl);
	free(byname);

	/* a bad token is refused before any connection, and not echoed */
	CHECK(client_new(url, ca, "dpy_x y z secret", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "secret") == NULL);
	CHECK(client_new(url, "not a pem", GOOD_TOKEN, err, sizeof(err)) == NULL);
	buf_release(&raw);
	free(url);
	free(ca);
	mock_stop(pid);
}

struct sink {
	struct buf out, err;
	int raises; /* raise SIGINT on each of the first `raises` outputs */
	int outputs, interrupts;
};

static void sink_output(void *arg, int stream, const void *data, size_t len)
{
	struct sink *s = arg;
	buf_add(stream == 2 ? &s->err : &s->out, data, len);
	s->outputs++;
	if (s->outputs <= s->raises)
		raise(SIGINT);
}

static void sink_interrupt(void *arg, int count)
{
	struct sink *s = arg;
	s->interrupts = count;
}

TEST(task_stream_output_exit_cancel_and_loss)
{
	char *ca, err[512];
	struct net_addr a;
	pid_t pid = mock_start(&ca, &a);
	char *url = url_of(&a);
	struct client *cl = client_new(url, ca, GOOD_TOKEN, err, sizeof(err));
	struct client_task_exit ex;

	struct sink s = { BUF_INIT, BUF_INIT, 0, 0, 0 };
	int rc = client_task_stream(cl, "t-ok", sink_output, sink_interrupt, &s, &ex, err,
				    sizeof(err));
	if (rc != 0)
		harness_fail(__FILE__, __LINE__, "%s", err);
	CHECK_STR(s.out.data, "hello\n");
	CHECK_STR(s.err.data, "oops\n");
	CHECK_INT(ex.status, 3);
	CHECK_INT(ex.signal, 0);
	CHECK_INT(ex.lost, 0);

	/* Ctrl-C: a cancel goes to base, and the stream waits for the exit */
	buf_reset(&s.out);
	buf_reset(&s.err);
	s.raises = 1;
	s.outputs = 0;
	rc = client_task_stream(cl, "t-cancel", sink_output, sink_interrupt, &s, &ex, err,
				sizeof(err));
	if (rc != 0)
		harness_fail(__FILE__, __LINE__, "%s", err);
	CHECK_INT(s.interrupts, 1);
	CHECK_STR(s.err.data, "got cancel\n");
	CHECK_INT(ex.signal, 15);

	/* output, then the connection breaks: the result comes from GET */
	s.raises = 0;
	buf_reset(&s.out);
	rc = client_task_stream(cl, "t-lost", sink_output, NULL, &s, &ex, err, sizeof(err));
	CHECK_INT(rc, 0);
	CHECK_INT(ex.status, 7);
	CHECK_INT(ex.lost, 1);
	CHECK_STR(s.out.data, "partial\n");
	/* the same without a result to fall back on */
	rc = client_task_stream(cl, "t-gone", sink_output, NULL, &s, &ex, err, sizeof(err));
	CHECK_INT(rc, -1);
	CHECK(strstr(err, "task 't-gone': stream ended before the task's exit") == err);
	/* ids that do not belong in a path */
	CHECK_INT(client_task_stream(cl, "../x", sink_output, NULL, &s, &ex, err, sizeof(err)), -1);
	/* SIGINT is the process's own again afterwards */
	sigset_t set;
	sigprocmask(SIG_BLOCK, NULL, &set);
	CHECK(!sigismember(&set, SIGINT));
	buf_release(&s.out);
	buf_release(&s.err);
	client_free(cl);
	free(url);
	free(ca);
	mock_stop(pid);
}

TEST(task_stream_second_interrupt_stops_waiting)
{
	char *ca, err[512];
	struct net_addr a;
	pid_t pid = mock_start(&ca, &a);
	char *url = url_of(&a);
	struct client *cl = client_new(url, ca, GOOD_TOKEN, err, sizeof(err));
	struct client_task_exit ex;
	struct sink s = { BUF_INIT, BUF_INIT, 2, 0, 0 };
	/* "started" raises the first SIGINT (cancel sent); the task ignores
	 * it, and its next output raises the second: the wait ends */
	int rc = client_task_stream(cl, "t-stubborn", sink_output, sink_interrupt, &s, &ex, err,
				    sizeof(err));
	CHECK_INT(rc, CLIENT_INTERRUPTED);
	CHECK_INT(s.interrupts, 2);
	CHECK_STR(s.out.data, "started\n");
	CHECK_STR(s.err.data, "ignored\n");
	CHECK(strstr(err, "interrupted") == err);
	buf_release(&s.out);
	buf_release(&s.err);
	client_free(cl);
	free(url);
	free(ca);
	mock_stop(pid);
}
