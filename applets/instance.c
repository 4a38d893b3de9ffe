/* dployr instance add NAME | rm NAME: enroll or revoke a VM.
 *
 * add asks base for a single-use join token and prints it with the exact
 * `dployr agent join` command to run on the VM (the one place the CLI shows
 * a secret: the token exists to be copied there). rm revokes the
 * instance's certificate and closes its session. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "applets.h"
#include "buf.h"
#include "cli.h"
#include "client.h"
#include "pki.h"

static const char synopsis[] = "usage: dployr instance add NAME [-o json] [--config FILE]\n"
			       "       dployr instance rm NAME [-o json] [--config FILE]\n";

static const char help[] =
    "\n"
    "Add an instance (a VM) and print the command that enrolls its agent, or\n"
    "remove one (its certificate is revoked and its session closed).\n"
    "\n"
    "  -o, --output FMT   text (default) or json\n"
    "  --config FILE      context file (see dployr-login(1))\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit status: 0 ok, 1 failure, 2 usage error. See dployr-instance(1).\n";

#define AGENT_DATA "/var/lib/dployrd"

static int add(struct cli *cli, struct client *cl, const struct client_ctx *ctx, const char *name)
{
	char err[1024], fp[PKI_FINGERPRINT_LEN + 1];
	struct buf body = BUF_INIT, raw = BUF_INIT;
	struct proto_json *doc = NULL;
	int rc = 1;
	if (pki_cert_fingerprint(ctx->ca, fp, err, sizeof(err)) < 0) {
		cli_fail(cli, "context ca: %s", err);
		goto out;
	}
	buf_puts(&body, "{\"name\":");
	buf_json_cstr(&body, name);
	buf_puts(&body, "}");
	if (client_call(cl, "POST", "/v1/instances", body.data, NULL, &doc, &raw, err,
			sizeof(err)) < 0) {
		cli_fail(cli, "%s", err);
		goto out;
	}
	const struct proto_jv *root = doc ? proto_json_root(doc) : NULL;
	const char *id = proto_jv_get_str(root, "id");
	const char *token = proto_jv_get_str(root, "join_token");
	time_t exp = 0;
	int has_exp = client_time(proto_jv_get(root, "expires_at"), &exp) == 0;
	if (!token || client_token_check(token, err, sizeof(err)) < 0) {
		cli_fail(cli, "base's reply has no valid join token");
		goto out;
	}
	char when[64] = "?", rel[32] = "";
	if (has_exp) {
		client_utc(exp, when, sizeof(when));
		client_reltime(exp, time(NULL), rel, sizeof(rel));
	}
	/* agent join takes the API address as HOST:PORT */
	char addr[CLIENT_URL_MAX];
	if (client_base_parse(ctx->base, NULL, addr, NULL, err, sizeof(err)) < 0) {
		cli_fail(cli, "context base: %s", err);
		goto out;
	}
	struct buf cmd = BUF_INIT;
	buf_printf(&cmd, "dployr agent join --base %s --token %s --ca-fingerprint %s --data %s",
		   addr, token, fp, AGENT_DATA);
	if (cli->json) {
		buf_reset(&body);
		buf_puts(&body, "{\"id\":");
		buf_json_cstr(&body, id);
		buf_puts(&body, ",\"name\":");
		buf_json_cstr(&body, name);
		buf_puts(&body, ",\"join_token\":");
		buf_json_cstr(&body, token);
		buf_puts(&body, ",\"expires_at\":");
		buf_json_cstr(&body, has_exp ? when : NULL);
		buf_puts(&body, ",\"ca_fingerprint\":");
		buf_json_cstr(&body, fp);
		buf_puts(&body, ",\"join_command\":");
		buf_json_cstr(&body, cmd.data);
		buf_puts(&body, "}");
		cli_print_json(body.data, body.len);
	} else {
		printf("instance %s added (id %s)\n", name, id ? id : "?");
		printf("join token (single use, expires %s%s%s):\n  %s\n", when,
		       has_exp ? ", " : "", rel, token);
		printf("\nrun this on the VM, as root:\n\n  %s\n", cmd.data);
	}
	buf_release(&cmd);
	rc = 0;
out:
	proto_json_free(doc);
	buf_release(&body);
	buf_release(&raw);
	return rc;
}

static int rm(struct cli *cli, struct client *cl, const char *name)
{
	char err[1024], path[128];
	struct buf raw = BUF_INIT;
	struct proto_json *doc = NULL;
	snprintf(path, sizeof(path), "/v1/instances/%s", name);
	int rc = 1;
	if (client_call(cl, "DELETE", path, NULL, NULL, &doc, &raw, err, sizeof(err)) < 0) {
		cli_fail(cli, "%s", err);
		goto out;
	}
	if (cli->json) {
		cli_print_json(raw.data, raw.len);
	} else {
		const char *id = doc ? proto_jv_get_str(proto_json_root(doc), "id") : NULL;
		printf("instance %s removed (id %s, certificate revoked)\n", name, id ? id : "?");
	}
	rc = 0;
out:
	proto_json_free(doc);
	buf_release(&raw);
	return rc;
}

int instance_main(int argc, char **argv)
{
	struct cli cli = {.verb = "instance", .synopsis = synopsis, .help = help, .outputs = 1};
	const char *words[3];
	size_t nwords = 0;
	int rc, only_words = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!only_words && strcmp(a, "--") == 0) {
			only_words = 1;
			continue;
		}
		if (!only_words && a[0] == '-') {
			int r = cli_option(&cli, argc, argv, &i, &rc);
			if (r == CLI_OPT_EXIT)
				return rc;
			if (r == CLI_OPT_NONE)
				return cli_usage(&cli, "unknown option '%s'", a);
			continue;
		}
		if (nwords == 2)
			return cli_usage(&cli, "unexpected argument '%s'", a);
		words[nwords++] = a;
	}
	if (nwords == 0)
		return cli_usage(&cli, "missing subcommand (add or rm)");
	int is_add = strcmp(words[0], "add") == 0;
	if (!is_add && strcmp(words[0], "rm") != 0)
		return cli_usage(&cli, "unknown subcommand '%s' (add or rm)", words[0]);
	cli.verb = is_add ? "instance add" : "instance rm";
	if (nwords < 2)
		return cli_usage(&cli, "missing instance name");
	char err[256];
	if (client_name_check(words[1], err, sizeof(err)) < 0)
		return cli_usage(&cli, "%s", err);

	struct client_ctx ctx;
	struct client *cl = cli_client(&cli, &ctx);
	rc = 1;
	if (cl)
		rc = is_add ? add(&cli, cl, &ctx, words[1]) : rm(&cli, cl, words[1]);
	client_free(cl);
	client_ctx_release(&ctx);
	return rc;
}
