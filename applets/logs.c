/* dployr logs: a service's output, or a deployment's log. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "applets.h"
#include "buf.h"
#include "cli.h"
#include "client.h"
#include "deployfollow.h"
#include "svclog.h"

static const char synopsis[] =
    "usage: dployr logs SERVICE [-f] [-n LINES] [--since TIME] [--raw] [--config FILE]\n"
    "       dployr logs SERVICE --deployment ID [-f] [--config FILE]\n";

static const char help[] =
    "\n"
    "Print the output of SERVICE (stdout and stderr of its serving release,\n"
    "kept by its agent with a timestamp per line and rotated), one line as\n"
    "  2026-11-22T01:25:00.123Z out listening on :3000\n"
    "or, with --deployment, the deploy log of deployment ID.\n"
    "\n"
    "  -n LINES           the last LINES lines (default 200; 10 with -f)\n"
    "  --since TIME       the lines since TIME: a duration before now (30s,\n"
    "                     10m, 2h, 1d, 1h30m) or an RFC 3339 time\n"
    "                     (2026-11-22T10:00:00Z); with -n, the last LINES of them\n"
    "  -f, --follow       then keep printing new lines until Ctrl-C (a slow\n"
    "                     reader skips lines: \"--- N bytes dropped\" on stderr);\n"
    "                     with --deployment, follow the deploy log until it ends\n"
    "  --raw              the text alone, without timestamp and stream\n"
    "  --deployment ID    the deploy log of deployment ID\n"
    "  --config FILE      context file (see dployr-login(1))\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit status: 0 ok (also when -f ends with Ctrl-C), 1 failure, 2 usage\n"
    "error. See dployr-logs(1).\n";

static void out_cb(void *arg, int stream, const void *data, size_t len)
{
	(void)arg;
	cli_write(stream == 2 ? 2 : 1, data, len);
}

int logs_main(int argc, char **argv)
{
	struct cli cli = {.verb = "logs", .synopsis = synopsis, .help = help};
	const char *svc = NULL, *dep = NULL, *lines = NULL, *since = NULL;
	int follow = 0, raw = 0, rc;
	long long since_ms = -1;
	for (int i = 1; i < argc; i++) {
		int r = cli_option(&cli, argc, argv, &i, &rc);
		if (r == CLI_OPT_EXIT)
			return rc;
		if (r == CLI_OPT_TAKEN)
			continue;
		if (!strcmp(argv[i], "-n") || !strncmp(argv[i], "--lines", 7)) {
			if (!(lines = cli_value(&cli, argc, argv, &i, "-n")))
				return 2;
			if (!*lines || strspn(lines, "0123456789") != strlen(lines) ||
			    strlen(lines) > 6 || atoi(lines) < 1 || atoi(lines) > 100000)
				return cli_usage(
				    &cli, "-n: '%s' is not a number of lines (1 to 100000)", lines);
		} else if (!strncmp(argv[i], "--since", 7)) {
			char err[256];
			if (!(since = cli_value(&cli, argc, argv, &i, "--since")))
				return 2;
			if (svclog_parse_since(since, (long long)time(NULL) * 1000, &since_ms, err,
					       sizeof(err)) < 0)
				return cli_usage(&cli, "--since: %s", err);
		} else if (!strncmp(argv[i], "--deployment", 12)) {
			if (!(dep = cli_value(&cli, argc, argv, &i, "--deployment")))
				return 2;
		} else if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--follow")) {
			follow = 1;
		} else if (!strcmp(argv[i], "--raw")) {
			raw = 1;
		} else if (argv[i][0] == '-') {
			return cli_usage(&cli, "unknown option '%s'", argv[i]);
		} else if (svc) {
			return cli_usage(&cli, "unexpected argument '%s'", argv[i]);
		} else {
			svc = argv[i];
		}
	}
	if (!svc)
		return cli_usage(&cli, "a SERVICE is required");
	if (dep && (lines || since || raw))
		return cli_usage(&cli, "--deployment shows a whole deploy log: no -n, --since "
				       "or --raw");
	if (strspn(svc, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
	    strlen(svc))
		return cli_usage(&cli, "'%s' is not a service name", svc);
	if (dep && strspn(dep, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(dep))
		return cli_usage(&cli, "'%s' is not a deployment id", dep);
	struct client_ctx ctx;
	struct client *cl = cli_client(&cli, &ctx);
	rc = 1;
	if (cl && dep) {
		rc = deployfollow(&cli, cl, dep, follow);
	} else if (cl) {
		char err[1024], path[160];
		struct buf body = BUF_INIT;
		struct proto_json *doc = NULL;
		const char *task = NULL;
		snprintf(path, sizeof(path), "/v1/services/%s/logs", svc);
		buf_putc(&body, '{');
		if (lines)
			buf_printf(&body, "\"lines\":%s,", lines);
		if (since_ms >= 0)
			buf_printf(&body, "\"since_ms\":%lld,", since_ms);
		if (follow)
			buf_puts(&body, "\"follow\":true,");
		if (raw)
			buf_puts(&body, "\"raw\":true,");
		if (body.len > 1)
			body.len--;
		buf_putc(&body, '}');
		if (client_call(cl, "POST", path, body.data, NULL, &doc, NULL, err, sizeof(err)) <
		    0)
			cli_fail(&cli, "%s", err);
		else if (!doc || !(task = proto_jv_get_str(proto_json_root(doc), "task_id")))
			cli_fail(&cli, "bad reply from base: no task id");
		else {
			struct client_task_exit ex;
			/* a background job of a non-interactive shell starts with
			 * SIGINT ignored; the stream takes it over (signalfd): the
			 * first Ctrl-C cancels the follow, which then ends */
			signal(SIGINT, SIG_DFL);
			int s =
			    client_task_stream(cl, task, out_cb, NULL, NULL, &ex, err, sizeof(err));
			if (s == CLIENT_INTERRUPTED)
				rc = 128 + SIGINT;
			else if (s < 0)
				cli_fail(&cli, "%s", err);
			else
				rc = ex.status ? 1 : 0;
		}
		buf_release(&body);
		proto_json_free(doc);
	}
	client_free(cl);
	client_ctx_release(&ctx);
	return rc;
}
