/* The agent daemon against the real base module, run in a child process
 * with short heartbeat, token and certificate lifetimes (the e2e test,
 * t0310-agent.sh, covers tasks with base's default settings). */
#include "agent.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base.h"
#include "basedir.h"
#include "buf.h"
#include "conn.h"
#include "crypt.h"
#include "harness.h"
#include "join.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "pki.h"
#include "proto.h"
#include "tls.h"

static pid_t start_base(int *api_port)
{
	int p[2];
	CHECK_INT(pipe(p), 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		char err[512];
		close(p[0]);
		struct basedir *d = basedir_open("b", err, sizeof(err));
		struct loop *l = d ? loop_new(0, err, sizeof(err)) : NULL;
		struct base_opts o = {.listen = "127.0.0.1:0",
				      .agent_listen = "127.0.0.1:0",
				      .heartbeat_ms = 200,
				      .token_ttl_s = 4,
				      .cert_ttl_s = 120};
		struct base *b = l ? base_new(l, d, &o, err, sizeof(err)) : NULL;
		if (!b) {
			fprintf(stderr, "base: %s\n", err);
			_exit(1);
		}
		struct net_addr a;
		base_api_addr(b, &a);
		dprintf(p[1], "%d\n", net_addr_port(&a));
		close(p[1]);
		loop_run(l);
		_exit(0);
	}
	close(p[1]);
	char line[32] = "";
	ssize_t n = read(p[0], line, sizeof(line) - 1);
	close(p[0]);
	CHECK(n > 0);
	*api_port = atoi(line);
	CHECK(*api_port > 0);
	return pid;
}

/* Occurrences of needle in the log file. */
static int log_count(const char *needle)
{
	struct buf b = BUF_INIT;
	char err[256];
	int n = 0;
	if (buf_read_file(&b, "agent.log", 1 << 24, err, sizeof(err)) == 0)
		for (const char *p = b.data; (p = strstr(p, needle)); p++)
			n++;
	buf_release(&b);
	return n;
}

/* Run the loop until needle is logged at least n times (bounded). */
static void run_until_logged(struct loop *loop, const char *needle, int n)
{
	for (int i = 0; i < 200 && log_count(needle) < n; i++)
		loop_run_once(loop, 100);
	if (log_count(needle) < n)
		harness_fail(__FILE__, __LINE__, "'%s' not logged %d times", needle, n);
}

static void cert_serial(char *out, size_t cap)
{
	struct buf b = BUF_INIT;
	struct pki_cert_info info;
	char err[256];
	CHECK_INT(buf_read_file(&b, "a/agent.crt", 65536, err, sizeof(err)), 0);
	CHECK_INT(pki_cert_info(b.data, &info, err, sizeof(err)), 0);
	snprintf(out, cap, "%s", info.serial);
	buf_release(&b);
}

TEST(agent_session_refreshes_renews_and_survives_a_dead_base)
{
	char err[1024], fp[PKI_FINGERPRINT_LEN + 1];
	char *owner = NULL;
	struct crypt_rng *rng = crypt_rng_new();
	if (basedir_init("b", "localhost", NULL, 0, rng, fp, &owner, err, sizeof(err)) < 0)
		harness_fail(__FILE__, __LINE__, "basedir_init: %s", err);
	crypt_rng_free(rng);
	int port;
	pid_t base = start_base(&port);

	/* An instance and its join token, through the API. */
	char addr_text[64];
	snprintf(addr_text, sizeof(addr_text), "127.0.0.1:%d", port);
	struct net_addr addr;
	CHECK_INT(net_parse(addr_text, &addr, err, sizeof(err)), 0);
	struct buf ca = BUF_INIT, body = BUF_INIT, auth = BUF_INIT;
	CHECK_INT(buf_read_file(&ca, "b/ca.crt", 65536, err, sizeof(err)), 0);
	struct tls_config *tls = tls_config_new_client(ca.data, NULL, NULL, err, sizeof(err));
	CHECK(tls);
	buf_printf(&auth, "Bearer %s", owner);
	const char *headers[] = {"Authorization", auth.data, NULL};
	int status = 0;
	const char *req = "{\"name\":\"web-1\"}";
	if (conn_request_sync(&addr, tls, "localhost", "POST", "/v1/instances", headers, req,
			      strlen(req), &status, &body, 10000, err, sizeof(err)) < 0)
		harness_fail(__FILE__, __LINE__, "POST /v1/instances: %s", err);
	CHECK(status == 200 || status == 201);
	struct proto_json *doc = proto_json_parse(body.data, body.len, err, sizeof(err));
	CHECK(doc);
	struct join_opts jo = {.base = addr_text,
			       .token = proto_jv_get_str(proto_json_root(doc), "join_token"),
			       .ca_fingerprint = fp,
			       .data_dir = "a"};
	struct join_result jr;
	if (join_run(&jo, &jr, err, sizeof(err)) < 0)
		harness_fail(__FILE__, __LINE__, "join: %s", err);
	/* The token is single use. */
	CHECK_INT(join_run(&jo, &jr, err, sizeof(err)), -1);
	jo.data_dir = "a2";
	CHECK_INT(join_run(&jo, &jr, err, sizeof(err)), -1);
	CHECK(strstr(err, "join token refused") != NULL);
	proto_json_free(doc);
	tls_config_free(tls);
	buf_release(&ca);
	buf_release(&body);
	crypt_wipe(auth.data, auth.len);
	buf_release(&auth);
	crypt_wipe(owner, strlen(owner));
	free(owner);

	char serial0[64], serial1[64];
	cert_serial(serial0, sizeof(serial0));
	log_set_level(LOG_LVL_DEBUG);
	log_set_stderr(0);
	CHECK_INT(log_open_file("agent.log", err, sizeof(err)), 0);
	struct loop *loop = loop_new(0, err, sizeof(err));
	struct agent *a = agent_new(loop, "a", err, sizeof(err));
	if (!a)
		harness_fail(__FILE__, __LINE__, "agent_new: %s", err);
	agent_start(a);
	run_until_logged(loop, "\"msg\":\"online\"", 1);
	/* A certificate with a backdated start and 120 s to live is in its last
	 * third: renewed at once, and written. */
	run_until_logged(loop, "\"msg\":\"certificate renewed\"", 1);
	cert_serial(serial1, sizeof(serial1));
	CHECK(strcmp(serial0, serial1) != 0);
	/* Tokens live 4 s: refreshed at half-life, so base keeps the session. */
	run_until_logged(loop, "\"msg\":\"access token refreshed\"", 2);
	CHECK_INT(log_count("\"msg\":\"disconnected\""), 0);
	/* A base that stops answering is dead after 3 heartbeats. */
	CHECK_INT(kill(base, SIGSTOP), 0);
	run_until_logged(loop, "idle timeout", 1);
	CHECK_INT(kill(base, SIGCONT), 0);
	/* Back online with the renewed certificate (base accepts only the
	 * serial it issued last). */
	run_until_logged(loop, "\"msg\":\"online\"", 2);
	CHECK_INT(log_count("4003"), 0);
	agent_stop(a);
	CHECK_INT(loop_run(loop), 0);
	CHECK_INT(log_count("\"msg\":\"stopped\""), 1);
	/* Tokens and keys never reach the log (debug level included). */
	CHECK_INT(log_count("dpya_"), 0);
	CHECK_INT(log_count("dpyj_"), 0);
	CHECK_INT(log_count("PRIVATE KEY"), 0);
	agent_free(a);
	for (int i = 0; i < 50 && loop_timer_count(loop) > 0; i++)
		loop_run_once(loop, 100);
	loop_free(loop);
	log_close();
	kill(base, SIGKILL);
	waitpid(base, NULL, 0);
}

TEST(agent_refuses_a_bad_data_dir)
{
	char err[1024];
	struct agent_identity id;
	CHECK_INT(agent_check("missing", &id, err, sizeof(err)), -1);
	CHECK(strstr(err, "agent.json") && strstr(err, "agent.key") && strstr(err, "ca.crt"));
	CHECK_INT(system("mkdir d && echo '{\"instance_id\":5}' >d/agent.json && "
			 "echo junk >d/ca.crt && echo junk >d/agent.crt && echo junk >d/agent.key"),
		  0);
	CHECK_INT(agent_check("d", &id, err, sizeof(err)), -1);
	CHECK(strstr(err, "'instance_id' must be a string"));
	CHECK(strstr(err, "ca.crt:") && strstr(err, "agent.crt:"));
	struct loop *loop = loop_new(0, err, sizeof(err));
	CHECK(agent_new(loop, "d", err, sizeof(err)) == NULL);
	loop_free(loop);
}
