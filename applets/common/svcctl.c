/* See svcctl.h. */
#include "svcctl.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "client.h"

static const char help[] =
    "\n"
    "Ask the agent of SERVICE to stop, start or restart the process of its\n"
    "serving release in place (same release, same port; no deployment). A\n"
    "stopped service stays stopped until start or its next deployment.\n"
    "\n"
    "  --config FILE      context file (see dployr-login(1))\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit status: 0 done, 1 failure (unknown service, its instance offline,\n"
    "nothing runs there), 2 usage error. See dployr-services(1).\n";

static void no_output(void *arg, int stream, const void *data, size_t len)
{
	(void)arg;
	(void)stream;
	(void)data;
	(void)len;
}

int svcctl_main(const char *action, const char *synopsis, int argc, char **argv)
{
	struct cli cli = {.verb = action, .synopsis = synopsis, .help = help};
	const char *svc = NULL;
	int rc;
	for (int i = 1; i < argc; i++) {
		int r = cli_option(&cli, argc, argv, &i, &rc);
		if (r == CLI_OPT_EXIT)
			return rc;
		if (r == CLI_OPT_TAKEN)
			continue;
		if (argv[i][0] == '-')
			return cli_usage(&cli, "unknown option '%s'", argv[i]);
		if (svc)
			return cli_usage(&cli, "unexpected argument '%s'", argv[i]);
		svc = argv[i];
	}
	if (!svc)
		return cli_usage(&cli, "a SERVICE is required");
	if (strspn(svc, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
	    strlen(svc))
		return cli_usage(&cli, "'%s' is not a service name", svc);
	struct client_ctx ctx;
	struct client *cl = cli_client(&cli, &ctx);
	rc = 1;
	if (cl) {
		char err[1024], path[160];
		struct proto_json *doc = NULL;
		const char *task = NULL;
		struct client_task_exit ex;
		snprintf(path, sizeof(path), "/v1/services/%s/%s", svc, action);
		if (client_call(cl, "POST", path, "{}", NULL, &doc, NULL, err, sizeof(err)) < 0)
			cli_fail(&cli, "%s", err);
		else if (!doc || !(task = proto_jv_get_str(proto_json_root(doc), "task_id")))
			cli_fail(&cli, "bad reply from base: no task id");
		else if (client_task_stream(cl, task, no_output, NULL, NULL, &ex, err,
					    sizeof(err)) < 0)
			cli_fail(&cli, "%s", err);
		else if (ex.status != 0)
			cli_fail(&cli, "the agent could not %s '%s': nothing runs there", action,
				 svc);
		else {
			fprintf(stderr, "%s: %s asked\n", svc, action);
			rc = 0;
		}
		proto_json_free(doc);
	}
	client_free(cl);
	client_ctx_release(&ctx);
	return rc;
}
