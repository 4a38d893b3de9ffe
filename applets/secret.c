/* dployr secret: set, list or remove a service's secrets (write-only). */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "applets.h"
#include "buf.h"
#include "cli.h"
#include "client.h"
#include "crypt.h"
#include "table.h"

static const char synopsis[] = "usage: dployr secret set SERVICE NAME < FILE\n"
			       "       dployr secret ls SERVICE [-o json]\n"
			       "       dployr secret rm SERVICE NAME\n";

static const char help[] =
    "\n"
    "Secrets are write-only: set stores a value (read from standard input,\n"
    "never from the command line; one trailing newline is dropped), ls shows\n"
    "names and times, never values, rm deletes. A service gets its secrets\n"
    "in its environment at its next deployment.\n"
    "\n"
    "  -o, --output FMT   text (default) or json\n"
    "  --config FILE      context file (see dployr-login(1))\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit status: 0 ok, 1 failure, 2 usage error. See dployr-deploy(1).\n";

#define VALUE_MAX (64 * 1024)

static void path_of(struct buf *p, const char *svc, const char *name)
{
	buf_printf(p, "/v1/services/%s/secrets", svc);
	if (name)
		buf_printf(p, "/%s", name);
}

static int set(struct cli *cli, struct client *cl, const char *svc, const char *name)
{
	char err[1024];
	struct buf v = BUF_INIT, body = BUF_INIT, path = BUF_INIT;
	int rc = 1;
	if (isatty(0))
		fprintf(stderr, "reading the value of %s from standard input (end with Ctrl-D)\n",
			name);
	if (buf_read_fd(&v, 0, VALUE_MAX + 2) < 0) {
		cli_fail(cli, "standard input: read failed");
		goto out;
	}
	if (v.len > VALUE_MAX + 1 || (v.len == VALUE_MAX + 1 && v.data[v.len - 1] != '\n')) {
		cli_fail(cli, "the value is larger than %d bytes", VALUE_MAX);
		goto out;
	}
	if (v.len && v.data[v.len - 1] == '\n')
		v.len--;
	if (v.len && memchr(v.data, 0, v.len)) {
		cli_fail(cli, "the value holds a NUL byte");
		goto out;
	}
	buf_puts(&body, "{\"value\":");
	buf_json_str(&body, v.data ? v.data : "", v.len);
	buf_puts(&body, "}");
	path_of(&path, svc, name);
	if (client_call(cl, "PUT", path.data, body.data, NULL, NULL, NULL, err, sizeof(err)) < 0) {
		cli_fail(cli, "%s", err);
		goto out;
	}
	fprintf(stderr, "secret %s of %s set\n", name, svc);
	rc = 0;
out:
	crypt_wipe(v.data, v.len);
	crypt_wipe(body.data, body.len);
	buf_release(&v);
	buf_release(&body);
	buf_release(&path);
	return rc;
}

static int ls(struct cli *cli, struct client *cl, const char *svc)
{
	char err[1024];
	struct buf raw = BUF_INIT, path = BUF_INIT;
	struct proto_json *doc = NULL;
	int rc = 1;
	path_of(&path, svc, NULL);
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
	struct table *t = table_new(3, "NAME", "CREATED", "UPDATED");
	for (const struct proto_jv *v = proto_jv_first(root); v; v = proto_jv_next(v)) {
		char c[32] = "", u[32] = "";
		int64_t ms;
		if (proto_jv_int(proto_jv_get(v, "created_ms"), &ms) == 0)
			client_utc((time_t)(ms / 1000), c, sizeof(c));
		if (proto_jv_int(proto_jv_get(v, "updated_ms"), &ms) == 0)
			client_utc((time_t)(ms / 1000), u, sizeof(u));
		table_add(t, proto_jv_get_str(v, "name"), c, u);
	}
	if (table_rows(t) == 0)
		fprintf(stderr, "no secrets for '%s'\n", svc);
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

static int rm(struct cli *cli, struct client *cl, const char *svc, const char *name)
{
	char err[1024];
	struct buf path = BUF_INIT;
	path_of(&path, svc, name);
	int c = client_call(cl, "DELETE", path.data, NULL, NULL, NULL, NULL, err, sizeof(err));
	buf_release(&path);
	if (c < 0)
		return cli_fail(cli, "%s", err);
	fprintf(stderr, "secret %s of %s removed\n", name, svc);
	return 0;
}

static int name_ok(const char *s)
{
	if (!*s || strlen(s) > 128)
		return 0;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' ||
		      *c == '.' || *c == '-' || (*c >= '0' && *c <= '9')))
			return 0;
	return 1;
}

int secret_main(int argc, char **argv)
{
	struct cli cli = {.verb = "secret", .synopsis = synopsis, .help = help, .outputs = 1};
	const char *args[3] = {NULL, NULL, NULL};
	size_t n = 0;
	int rc;
	for (int i = 1; i < argc; i++) {
		int r = cli_option(&cli, argc, argv, &i, &rc);
		if (r == CLI_OPT_EXIT)
			return rc;
		if (r == CLI_OPT_TAKEN)
			continue;
		if (argv[i][0] == '-')
			return cli_usage(&cli, "unknown option '%s'", argv[i]);
		if (n == 3)
			return cli_usage(&cli, "unexpected argument '%s'", argv[i]);
		args[n++] = argv[i];
	}
	const char *op = args[0];
	size_t want = op && !strcmp(op, "ls") ? 2 : 3;
	if (!op || (strcmp(op, "set") && strcmp(op, "ls") && strcmp(op, "rm")))
		return cli_usage(&cli, "expected set, ls or rm");
	if (n != want)
		return cli_usage(&cli, "secret %s takes %s", op,
				 want == 2 ? "SERVICE" : "SERVICE and NAME");
	for (size_t i = 1; i < n; i++)
		if (!name_ok(args[i]))
			return cli_usage(&cli, "'%s' is not a valid name", args[i]);
	struct client_ctx ctx;
	struct client *cl = cli_client(&cli, &ctx);
	rc = 1;
	if (cl)
		rc = !strcmp(op, "set")	 ? set(&cli, cl, args[1], args[2])
		     : !strcmp(op, "ls") ? ls(&cli, cl, args[1])
					 : rm(&cli, cl, args[1], args[2]);
	client_free(cl);
	client_ctx_release(&ctx);
	return rc;
}
