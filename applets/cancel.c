/* dployr cancel: cancel a deployment. */
#include <stdio.h>
#include <string.h>

#include "applets.h"
#include "buf.h"
#include "cli.h"
#include "client.h"

static const char synopsis[] = "usage: dployr cancel ID [-o json] [--config FILE]\n";

static const char help[] =
    "\n"
    "Cancel deployment ID: a queued one at once; a running one is stopped by\n"
    "its agent at its current stage (not after it has switched to the new\n"
    "release) and the previous release keeps serving.\n"
    "\n"
    "  -o, --output FMT   text (default) or json (the deployment's record)\n"
    "  --config FILE      context file (see dployr-login(1))\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit status: 0 cancelled or asked to, 1 failure (it has ended, unknown),\n"
    "2 usage error. See dployr-deploy(1).\n";

int cancel_main(int argc, char **argv)
{
	struct cli cli = {.verb = "cancel", .synopsis = synopsis, .help = help, .outputs = 1};
	const char *id = NULL;
	int rc;
	for (int i = 1; i < argc; i++) {
		int r = cli_option(&cli, argc, argv, &i, &rc);
		if (r == CLI_OPT_EXIT)
			return rc;
		if (r == CLI_OPT_TAKEN)
			continue;
		if (argv[i][0] == '-')
			return cli_usage(&cli, "unknown option '%s'", argv[i]);
		if (id)
			return cli_usage(&cli, "unexpected argument '%s'", argv[i]);
		id = argv[i];
	}
	if (!id)
		return cli_usage(&cli, "a deployment ID is required");
	if (strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(id) || strlen(id) > 32)
		return cli_usage(&cli, "'%s' is not a deployment id", id);
	struct client_ctx ctx;
	struct client *cl = cli_client(&cli, &ctx);
	rc = 1;
	if (cl) {
		char err[1024], path[96];
		struct proto_json *doc = NULL;
		struct buf raw = BUF_INIT;
		snprintf(path, sizeof(path), "/v1/deployments/%s/cancel", id);
		if (client_call(cl, "POST", path, "{}", NULL, &doc, &raw, err, sizeof(err)) < 0) {
			cli_fail(&cli, "%s", err);
		} else if (cli.json) {
			cli_print_json(raw.data, raw.len);
			rc = 0;
		} else {
			const char *st =
			    doc ? proto_jv_get_str(proto_json_root(doc), "status") : NULL;
			if (st && !strcmp(st, "cancelled"))
				fprintf(stderr, "deployment %s cancelled\n", id);
			else
				fprintf(stderr, "deployment %s: cancel asked of its agent\n", id);
			rc = 0;
		}
		proto_json_free(doc);
		buf_release(&raw);
	}
	client_free(cl);
	client_ctx_release(&ctx);
	return rc;
}
