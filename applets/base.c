/* dployr base: the control plane (dployr-base(8)).
 *
 *   dployr base init --data DIR --name NAME [--san HOST|IP]...
 *   dployr base --data DIR [--listen ADDR] [--agent-listen ADDR] [--log FILE] [-n]
 *
 * Exit: 0 ok (or stopped by SIGTERM/SIGINT), 1 failure, 2 usage. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "applets.h"
#include "base.h"
#include "basedir.h"
#include "crypt.h"
#include "log.h"
#include "loop.h"
#include "xalloc.h"

static const char synopsis[] =
    "usage: dployr base init --data DIR --name NAME [--san HOST|IP]...\n"
    "       dployr base --data DIR [--listen ADDR] [--agent-listen ADDR] [--log FILE] [-n]\n";

static const char help[] =
    "\n"
    "Run the control plane: the HTTPS API (default 127.0.0.1:7443) and the\n"
    "mutual-TLS agent port (default 127.0.0.1:7444), in the foreground.\n"
    "\n"
    "  init              create DIR: CA, server certificate, store, owner token\n"
    "  --data DIR        the data directory\n"
    "  --name NAME       base's host name (in its certificate)\n"
    "  --san HOST|IP     another name or address for the certificate (repeatable)\n"
    "  --listen ADDR     API address\n"
    "  --agent-listen ADDR  agent address\n"
    "  --log FILE        also write JSON log lines to FILE\n"
    "  -n                check the data directory and exit\n"
    "  -h, --help        show this help\n"
    "\n"
    "See dployr-base(8) and dployr-protocol(7).\n";

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("dployr base: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\n", stderr);
	va_end(ap);
	fputs(synopsis, stderr);
	return EXIT_USAGE;
}

/* The value of option argv[*i] (advancing *i), or NULL when missing. */
static const char *optval(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

static int base_init_main(int argc, char **argv)
{
	const char *data = NULL, *name = NULL;
	const char **sans = xcalloc((size_t)argc + 1, sizeof *sans);
	size_t nsans = 0;
	int rc = EXIT_USAGE;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], **dst = NULL;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(synopsis, stdout);
			fputs(help, stdout);
			rc = 0;
			goto out;
		}
		if (strcmp(a, "--data") == 0)
			dst = &data;
		else if (strcmp(a, "--name") == 0)
			dst = &name;
		else if (strcmp(a, "--san") == 0)
			dst = &sans[nsans++];
		else {
			rc = usage_error("unknown argument '%s'", a);
			goto out;
		}
		if (!(*dst = optval(argc, argv, &i))) {
			rc = usage_error("option '%s' needs a value", a);
			goto out;
		}
	}
	if (!data || !name) {
		rc = usage_error("init needs --data DIR and --name NAME");
		goto out;
	}
	char err[512], fp[PKI_FINGERPRINT_LEN + 1], *tok = NULL;
	struct crypt_rng *rng = crypt_rng_new();
	if (basedir_init(data, name, sans, nsans, rng, fp, &tok, err, sizeof err) < 0) {
		fprintf(stderr, "dployr base: %s\n", err);
		rc = 1;
	} else {
		printf("ca fingerprint: %s\nowner token:    %s\n", fp, tok);
		fflush(stdout);
		crypt_wipe(tok, strlen(tok));
		free(tok);
		rc = 0;
	}
	crypt_rng_free(rng);
out:
	free(sans);
	return rc;
}

static void stop_cb(struct loop *loop, long long id, void *arg, int mask)
{
	(void)arg;
	(void)mask;
	log_info("base", id == SIGTERM ? "SIGTERM: stopping" : "SIGINT: stopping", NULL);
	loop_stop(loop);
}

/* One descriptor per agent session: lift the soft limit to the hard one
 * (a service manager's default soft limit, often 1024, would cap the fleet
 * at about a thousand agents while the hard limit allows far more). */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("base", "open file limit not raised", "error", strerror(errno),
				 NULL);
	}
}

int base_main(int argc, char **argv)
{
	const char *data = NULL, *logfile = NULL;
	struct base_opts o = {0};
	int check = 0;
	if (argc >= 2 && strcmp(argv[1], "init") == 0)
		return base_init_main(argc, argv);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], **dst = NULL;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(synopsis, stdout);
			fputs(help, stdout);
			return 0;
		}
		if (strcmp(a, "-n") == 0) {
			check = 1;
			continue;
		}
		if (strcmp(a, "--data") == 0)
			dst = &data;
		else if (strcmp(a, "--listen") == 0)
			dst = &o.listen;
		else if (strcmp(a, "--agent-listen") == 0)
			dst = &o.agent_listen;
		else if (strcmp(a, "--log") == 0)
			dst = &logfile;
		else
			return usage_error("unknown argument '%s'", a);
		if (!(*dst = optval(argc, argv, &i)))
			return usage_error("option '%s' needs a value", a);
	}
	if (!data)
		return usage_error("--data DIR is required");

	char err[512];
	log_set_role("base");
	if (logfile && log_open_file(logfile, err, sizeof err) < 0) {
		fprintf(stderr, "dployr base: %s\n", err);
		return 1;
	}
	struct basedir *dir = basedir_open(data, err, sizeof err);
	if (!dir) {
		fprintf(stderr, "dployr base: %s\n", err);
		log_close();
		return 1;
	}
	if (check) {
		struct net_addr a;
		int rc = 0;
		if ((o.listen && net_parse(o.listen, &a, err, sizeof err) < 0) ||
		    (o.agent_listen && net_parse(o.agent_listen, &a, err, sizeof err) < 0)) {
			fprintf(stderr, "dployr base: %s\n", err);
			rc = 1;
		} else {
			printf("dployr base: data directory '%s' is valid\n", data);
		}
		basedir_free(dir);
		log_close();
		return rc;
	}
	int rc = 1;
	struct base *b = NULL;
	struct loop *loop = loop_new(0, err, sizeof err);
	if (!loop)
		goto out;
	if (loop_signal_add(loop, SIGTERM, stop_cb, NULL) < 0 ||
	    loop_signal_add(loop, SIGINT, stop_cb, NULL) < 0) {
		snprintf(err, sizeof err, "%s", loop_error(loop));
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	b = base_new(loop, dir, &o, err, sizeof err);
	if (!b)
		goto out;
	struct net_addr api, agent;
	char at[NET_ADDRSTRLEN], gt[NET_ADDRSTRLEN];
	base_api_addr(b, &api);
	base_agent_addr(b, &agent);
	log_info("base", "listening", "api", net_addr_str(&api, at, sizeof at), "agent",
		 net_addr_str(&agent, gt, sizeof gt), NULL);
	if (loop_run(loop) < 0) {
		snprintf(err, sizeof err, "%s", loop_error(loop));
		goto out;
	}
	log_info("base", "stopped", NULL);
	rc = 0;
out:
	if (rc)
		fprintf(stderr, "dployr base: %s\n", err);
	base_free(b);
	loop_free(loop);
	basedir_free(dir);
	log_close();
	return rc;
}
