/* dployr rollback: re-activate an earlier release of a service. */
#include <stdio.h>
#include <string.h>

#include "applets.h"
#include "buf.h"
#include "cli.h"
#include "client.h"
#include "deployfollow.h"

static const char synopsis[] =
    "usage: dployr rollback SERVICE [--to ID] [--detach] [-o json] [--config FILE]\n";

static const char help[] =
    "\n"
    "Queue a deployment of SERVICE that starts the kept release of an earlier\n"
    "done deployment again (no fetch, no build): by default the one before\n"
    "the release that serves now, or deployment ID. Its log is followed as\n"
    "for dployr deploy.\n"
    "\n"
    "  --to ID            the deployment whose release to re-activate\n"
    "  --detach           print the new deployment's id and return\n"
    "  -o, --output FMT   text (default) or json (the final record)\n"
    "  --config FILE      context file (see dployr-login(1))\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit status: 0 running and healthy, 1 failure, 2 usage error.\n";

int rollback_main(int argc, char **argv)
{
	struct cli cli = {.verb = "rollback", .synopsis = synopsis, .help = help, .outputs = 1};
	const char *svc = NULL, *to = NULL;
	int detach = 0, rc;
	for (int i = 1; i < argc; i++) {
		int r = cli_option(&cli, argc, argv, &i, &rc);
		if (r == CLI_OPT_EXIT)
			return rc;
		if (r == CLI_OPT_TAKEN)
			continue;
		if (!strncmp(argv[i], "--to", 4)) {
			if (!(to = cli_value(&cli, argc, argv, &i, "--to")))
				return 2;
		} else if (!strcmp(argv[i], "--detach")) {
			detach = 1;
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
	if (strspn(svc, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
	    strlen(svc))
		return cli_usage(&cli, "'%s' is not a service name", svc);
	struct client_ctx ctx;
	struct client *cl = cli_client(&cli, &ctx);
	rc = 1;
	if (cl) {
		char err[1024], path[160];
		struct proto_json *doc = NULL;
		struct buf body = BUF_INIT;
		buf_puts(&body, "{\"to\":");
		buf_json_cstr(&body, to ? to : "");
		buf_puts(&body, "}");
		snprintf(path, sizeof(path), "/v1/services/%s/rollback", svc);
		const char *id = NULL;
		if (client_call(cl, "POST", path, body.data, NULL, &doc, NULL, err, sizeof(err)) <
		    0)
			cli_fail(&cli, "%s", err);
		else if (!doc || !(id = proto_jv_get_str(proto_json_root(doc), "id")))
			cli_fail(&cli, "bad reply from base: no deployment id");
		else if (detach) {
			printf("%s\n", id);
			rc = 0;
		} else {
			int64_t seq = 0;
			proto_jv_int(proto_jv_get(proto_json_root(doc), "seq"), &seq);
			fprintf(stderr, "deployment %s (#%lld) %s\n", id, (long long)seq,
				proto_jv_get_str(proto_json_root(doc), "title"));
			rc = deployfollow(&cli, cl, id, 1);
		}
		proto_json_free(doc);
		buf_release(&body);
	}
	client_free(cl);
	client_ctx_release(&ctx);
	return rc;
}
