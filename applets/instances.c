/* dployr instances: list the instances and whether they are online. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "applets.h"
#include "buf.h"
#include "cli.h"
#include "client.h"
#include "table.h"

static const char synopsis[] = "usage: dployr instances [-o json] [--config FILE]\n";

static const char help[] =
    "\n"
    "List the instances: name, id, state (online, offline, pending, revoked),\n"
    "when base last heard of it, agent version and address.\n"
    "\n"
    "  -o, --output FMT   text (default) or json (base's array as it is)\n"
    "  --config FILE      context file (see dployr-login(1))\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit status: 0 ok, 1 failure, 2 usage error. See dployr-instance(1).\n";

static int list(struct cli *cli, struct client *cl)
{
	char err[1024];
	struct buf raw = BUF_INIT;
	struct proto_json *doc = NULL;
	int rc = 1;
	if (client_call(cl, "GET", "/v1/instances", NULL, NULL, &doc, &raw, err, sizeof(err)) < 0) {
		cli_fail(cli, "%s", err);
		goto out;
	}
	const struct proto_jv *root = doc ? proto_json_root(doc) : NULL;
	if (!root || proto_jv_type(root) != PROTO_J_ARR) {
		cli_fail(cli, "bad reply from base: not a JSON array");
		goto out;
	}
	if (cli->json) {
		cli_print_json(raw.data, raw.len);
		rc = 0;
		goto out;
	}
	struct table *t = table_new(6, "NAME", "ID", "STATE", "LAST SEEN", "VERSION", "ADDRESS");
	time_t now = time(NULL);
	for (const struct proto_jv *v = proto_jv_first(root); v; v = proto_jv_next(v)) {
		char seen[32] = "never";
		time_t ts;
		if (client_time(proto_jv_get(v, "last_seen"), &ts) == 0 && ts > 0)
			client_reltime(ts, now, seen, sizeof(seen));
		table_add(t, proto_jv_get_str(v, "name"), proto_jv_get_str(v, "id"),
			  proto_jv_get_str(v, "state"), seen, proto_jv_get_str(v, "agent_version"),
			  proto_jv_get_str(v, "addr"));
	}
	if (table_rows(t) == 0)
		fprintf(stderr, "no instances (add one with: dployr instance add NAME)\n");
	else
		table_print(t, stdout);
	table_free(t);
	rc = 0;
out:
	proto_json_free(doc);
	buf_release(&raw);
	return rc;
}

int instances_main(int argc, char **argv)
{
	struct cli cli = {.verb = "instances", .synopsis = synopsis, .help = help, .outputs = 1};
	int rc;
	for (int i = 1; i < argc; i++) {
		int r = cli_option(&cli, argc, argv, &i, &rc);
		if (r == CLI_OPT_EXIT)
			return rc;
		if (r == CLI_OPT_NONE)
			return argv[i][0] == '-'
				   ? cli_usage(&cli, "unknown option '%s'", argv[i])
				   : cli_usage(&cli, "unexpected argument '%s'", argv[i]);
	}
	struct client_ctx ctx;
	struct client *cl = cli_client(&cli, &ctx);
	rc = cl ? list(&cli, cl) : 1;
	client_free(cl);
	client_ctx_release(&ctx);
	return rc;
}
