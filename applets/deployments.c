/* dployr deployments: list a service's deployments, newest first. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "applets.h"
#include "buf.h"
#include "cli.h"
#include "client.h"
#include "table.h"

static const char synopsis[] =
    "usage: dployr deployments SERVICE [-n COUNT] [-o json] [--config FILE]\n";

static const char help[] =
    "\n"
    "List the deployments of SERVICE, newest first: id (and #number), title,\n"
    "status (queued, running, done, error, cancelled), stage, when it was\n"
    "made, how long it took, source revision and runtime version.\n"
    "\n"
    "  -n COUNT           at most COUNT deployments (default 50)\n"
    "  -o, --output FMT   text (default) or json (base's array as it is)\n"
    "  --config FILE      context file (see dployr-login(1))\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit status: 0 ok, 1 failure, 2 usage error. See dployr-deploy(1).\n";

static void took(const struct proto_jv *v, char *out, size_t n)
{
	int64_t a = 0, b = 0;
	out[0] = 0;
	if (proto_jv_int(proto_jv_get(v, "started_ms"), &a) < 0 ||
	    proto_jv_int(proto_jv_get(v, "finished_ms"), &b) < 0 || b < a)
		return;
	long long s = (long long)((b - a + 500) / 1000);
	if (s < 60)
		snprintf(out, n, "%llds", s);
	else
		snprintf(out, n, "%lldm%02llds", s / 60, s % 60);
}

static int list(struct cli *cli, struct client *cl, const char *svc, const char *count)
{
	char err[1024], path[256];
	struct buf raw = BUF_INIT;
	struct proto_json *doc = NULL;
	int rc = 1;
	snprintf(path, sizeof(path), "/v1/services/%s/deployments?limit=%s", svc, count);
	if (client_call(cl, "GET", path, NULL, NULL, &doc, &raw, err, sizeof(err)) < 0) {
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
	struct table *t = table_new(8, "ID", "TITLE", "STATUS", "STAGE", "CREATED", "TOOK",
				    "REVISION", "RUNTIME");
	time_t now = time(NULL);
	for (const struct proto_jv *v = proto_jv_first(root); v; v = proto_jv_next(v)) {
		char id[48], created[32] = "", dur[32], rev[16] = "";
		int64_t seq = 0, ms = 0;
		proto_jv_int(proto_jv_get(v, "seq"), &seq);
		snprintf(id, sizeof(id), "%s #%lld",
			 proto_jv_get_str(v, "id") ? proto_jv_get_str(v, "id") : "?",
			 (long long)seq);
		if (proto_jv_int(proto_jv_get(v, "created_ms"), &ms) == 0 && ms > 0)
			client_reltime((time_t)(ms / 1000), now, created, sizeof(created));
		took(v, dur, sizeof(dur));
		const char *r = proto_jv_get_str(v, "revision");
		if (r)
			snprintf(rev, sizeof(rev), "%.12s", r);
		table_add(t, id, proto_jv_get_str(v, "title"), proto_jv_get_str(v, "status"),
			  proto_jv_get_str(v, "stage"), created, dur, rev,
			  proto_jv_get_str(v, "runtime_version"));
	}
	if (table_rows(t) == 0)
		fprintf(stderr, "no deployments of '%s'\n", svc);
	else
		table_print(t, stdout);
	table_free(t);
	rc = 0;
out:
	proto_json_free(doc);
	buf_release(&raw);
	return rc;
}

int deployments_main(int argc, char **argv)
{
	struct cli cli = {.verb = "deployments", .synopsis = synopsis, .help = help, .outputs = 1};
	const char *svc = NULL, *count = "50";
	int rc;
	for (int i = 1; i < argc; i++) {
		int r = cli_option(&cli, argc, argv, &i, &rc);
		if (r == CLI_OPT_EXIT)
			return rc;
		if (r == CLI_OPT_TAKEN)
			continue;
		if (!strcmp(argv[i], "-n")) {
			if (!(count = cli_value(&cli, argc, argv, &i, "-n")))
				return 2;
			if (strspn(count, "0123456789") != strlen(count) || !*count)
				return cli_usage(&cli, "-n: '%s' is not a number", count);
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
	struct client_ctx ctx;
	struct client *cl = cli_client(&cli, &ctx);
	rc = cl ? list(&cli, cl, svc, count) : 1;
	client_free(cl);
	client_ctx_release(&ctx);
	return rc;
}
