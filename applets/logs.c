/* dployr logs: a service's output, or a deployment's log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "applets.h"
#include "buf.h"
#include "cli.h"
#include "client.h"
#include "deployfollow.h"

static const char synopsis[] = "usage: dployr logs SERVICE [-n LINES] [--config FILE]\n"
			       "       dployr logs SERVICE --deployment ID [-f] [--config FILE]\n";

static const char help[] = "\n"
			   "Print the last LINES (default 200) lines of the output of SERVICE's\n"
			   "serving release, read by its agent; or, with --deployment, the deploy\n"
			   "log of deployment ID (with -f: followed until it ends).\n"
			   "\n"
			   "  -n LINES           how many lines of the service's output\n"
			   "  --deployment ID    the deploy log of deployment ID\n"
			   "  -f, --follow       follow the deploy log until the deployment ends\n"
			   "  --config FILE      context file (see dployr-login(1))\n"
			   "  -h, --help         show this help\n"
			   "\n"
			   "Exit status: 0 ok, 1 failure, 2 usage error. See dployr-deploy(1).\n";

static void out_cb(void *arg, int stream, const void *data, size_t len)
{
	(void)arg;
	cli_write(stream == 2 ? 2 : 1, data, len);
}

int logs_main(int argc, char **argv)
{
	struct cli cli = {.verb = "logs", .synopsis = synopsis, .help = help};
	const char *svc = NULL, *dep = NULL, *lines = "200";
	int follow = 0, rc;
	for (int i = 1; i < argc; i++) {
		int r = cli_option(&cli, argc, argv, &i, &rc);
		if (r == CLI_OPT_EXIT)
			return rc;
		if (r == CLI_OPT_TAKEN)
			continue;
		if (!strcmp(argv[i], "-n")) {
			if (!(lines = cli_value(&cli, argc, argv, &i, "-n")))
				return 2;
			if (!*lines || strspn(lines, "0123456789") != strlen(lines) ||
			    strlen(lines) > 6 || atoi(lines) < 1)
				return cli_usage(&cli, "-n: '%s' is not a number of lines", lines);
		} else if (!strncmp(argv[i], "--deployment", 12)) {
			if (!(dep = cli_value(&cli, argc, argv, &i, "--deployment")))
				return 2;
		} else if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--follow")) {
			follow = 1;
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
	if (follow && !dep)
		return cli_usage(&cli, "-f follows a deploy log: give --deployment ID");
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
		char err[1024], path[160], body[64];
		struct proto_json *doc = NULL;
		const char *task = NULL;
		snprintf(path, sizeof(path), "/v1/services/%s/logs", svc);
		snprintf(body, sizeof(body), "{\"lines\":%s}", lines);
		if (client_call(cl, "POST", path, body, NULL, &doc, NULL, err, sizeof(err)) < 0)
			cli_fail(&cli, "%s", err);
		else if (!doc || !(task = proto_jv_get_str(proto_json_root(doc), "task_id")))
			cli_fail(&cli, "bad reply from base: no task id");
		else {
			struct client_task_exit ex;
			if (client_task_stream(cl, task, out_cb, NULL, NULL, &ex, err,
					       sizeof(err)) < 0)
				cli_fail(&cli, "%s", err);
			else
				rc = ex.status ? 1 : 0;
		}
		proto_json_free(doc);
	}
	client_free(cl);
	client_ctx_release(&ctx);
	return rc;
}
