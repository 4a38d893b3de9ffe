/* dployr services: list the services and their state. */
#include <stdio.h>
#include <string.h>

#include "applets.h"
#include "buf.h"
#include "cli.h"
#include "client.h"
#include "table.h"

static const char synopsis[] = "usage: dployr services [-i INSTANCE] [-o json] [--config FILE]\n";

static const char help[] =
    "\n"
    "List the services that have deployments, as their agents last reported\n"
    "them: name, instance, type, state (running, backoff, stopped, exited,\n"
    "failed, ...), the serving release (its deployment), the port it answers\n"
    "on, its process, restarts and health (\"unknown\" while its instance is\n"
    "offline; \"-\" while base has no report).\n"
    "\n"
    "  -i, --instance NAME only the services of this instance\n"
    "  -o, --output FMT    text (default) or json (base's array as it is)\n"
    "  --config FILE       context file (see dployr-login(1))\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status: 0 ok, 1 failure, 2 usage error. See dployr-services(1).\n";

/* Member key as a number: "" for 0 or less (none) unless zero_shows,
 * and for null or missing (not known). */
static void num(const struct proto_jv *v, const char *key, int zero_shows, char *out, size_t n)
{
	int64_t x = 0;
	out[0] = 0;
	if (proto_jv_int(proto_jv_get(v, key), &x) == 0 && (x > 0 || (zero_shows && x == 0)))
		snprintf(out, n, "%lld", (long long)x);
}

static int list(struct cli *cli, struct client *cl, const char *inst)
{
	char err[1024];
	struct buf raw = BUF_INIT, path = BUF_INIT;
	struct proto_json *doc = NULL;
	int rc = 1;
	buf_puts(&path, "/v1/services");
	if (inst) {
		buf_puts(&path, "?instance=");
		for (const char *c = inst; *c; c++)
			if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			    (*c >= '0' && *c <= '9') || strchr("-._~", *c))
				buf_putc(&path, *c);
			else
				buf_printf(&path, "%%%02X", (unsigned char)*c);
	}
	if (client_call(cl, "GET", path.data, NULL, NULL, &doc, &raw, err, sizeof(err)) < 0) {
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
	struct table *t = table_new(9, "NAME", "INSTANCE", "TYPE", "STATE", "RELEASE", "PORT",
				    "PID", "RESTARTS", "HEALTH");
	for (const struct proto_jv *v = proto_jv_first(root); v; v = proto_jv_next(v)) {
		char port[24], pid[24], restarts[24];
		int on = 1;
		num(v, "port", 0, port, sizeof(port));
		num(v, "pid", 0, pid, sizeof(pid));
		num(v, "restarts", 1, restarts, sizeof(restarts));
		/* an offline instance's last report may be stale: its health is
		 * not known now (its processes outlive the agent, so the rest
		 * stays as last seen) */
		if (proto_jv_bool(proto_jv_get(v, "online"), &on) < 0)
			on = 1;
		table_add(t, proto_jv_get_str(v, "name"), proto_jv_get_str(v, "instance"),
			  proto_jv_get_str(v, "type"), proto_jv_get_str(v, "state"),
			  proto_jv_get_str(v, "release"), port, pid, restarts,
			  on ? proto_jv_get_str(v, "health") : "unknown");
	}
	if (table_rows(t) == 0)
		fprintf(stderr,
			"no services (deploy one with: dployr deploy -f FILE -i INSTANCE)\n");
	else
		table_print(t, stdout);
	table_free(t);
	rc = 0;
out:
	proto_json_free(doc);
	buf_release(&raw);
	buf_release(&path);
	return rc;
}

int services_main(int argc, char **argv)
{
	struct cli cli = {.verb = "services", .synopsis = synopsis, .help = help, .outputs = 1};
	const char *inst = NULL;
	int rc;
	for (int i = 1; i < argc; i++) {
		int r = cli_option(&cli, argc, argv, &i, &rc);
		if (r == CLI_OPT_EXIT)
			return rc;
		if (r == CLI_OPT_TAKEN)
			continue;
		if (!strcmp(argv[i], "-i") || !strncmp(argv[i], "--instance", 10)) {
			if (!(inst = cli_value(&cli, argc, argv, &i, "--instance")))
				return 2;
		} else {
			return argv[i][0] == '-'
				   ? cli_usage(&cli, "unknown option '%s'", argv[i])
				   : cli_usage(&cli, "unexpected argument '%s'", argv[i]);
		}
	}
	struct client_ctx ctx;
	struct client *cl = cli_client(&cli, &ctx);
	rc = cl ? list(&cli, cl, inst) : 1;
	client_free(cl);
	client_ctx_release(&ctx);
	return rc;
}
