/* dployr deploy: lint a blueprint, queue its deployment on an instance and
 * follow the deploy log until it ends (issue 4). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "applets.h"
#include "bp.h"
#include "buf.h"
#include "cli.h"
#include "client.h"
#include "crypt.h"
#include "deployfollow.h"
#include "diag.h"
#include "version.h"

static const char synopsis[] =
    "usage: dployr deploy -f FILE -i INSTANCE [--dir DIR] [--title TEXT] [--detach]\n"
    "                     [-o json] [--config FILE]\n";

static const char help[] =
    "\n"
    "Check the blueprint FILE as dployr lint does (errors: nothing is sent),\n"
    "queue its deployment on INSTANCE, and print the deploy log as it comes\n"
    "until the deployment ends.\n"
    "\n"
    "  -f, --file FILE     the blueprint (one service)\n"
    "  -i, --instance NAME the instance to deploy to\n"
    "  --dir DIR           source: upload: send DIR (a tar.gz of at most 512 KiB)\n"
    "  --title TEXT        a title shown by dployr deployments\n"
    "  --detach            print the deployment id and return once queued\n"
    "  -o, --output FMT    text (default) or json (the final record)\n"
    "  --config FILE       context file (see dployr-login(1))\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status: 0 running and healthy (or queued, with --detach), 1 failed\n"
    "or cancelled, 2 usage error. See dployr-deployments(1), dployr-cancel(1).\n";

#define UPLOAD_MAX ((size_t)512 << 10)

/* DIR as a gzipped tar (`tar -czf - -C DIR .`, run by argv, no shell) in
 * out: 0, or 1 after a printed failure. */
static int pack(const struct cli *cli, const char *dir, struct buf *out)
{
	struct stat st;
	int fds[2];
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return cli_fail(cli, "--dir: '%s' is not a directory", dir);
	if (pipe(fds) < 0)
		return cli_fail(cli, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		return cli_fail(cli, "fork: %s", strerror(errno));
	if (pid == 0) {
		char *const argv[] = {"tar", "-czf", "-", "-C", (char *)dir, ".", NULL};
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execvp("tar", argv);
		_exit(127);
	}
	close(fds[1]);
	int rd = buf_read_fd(out, fds[0], UPLOAD_MAX);
	int e = errno;
	close(fds[0]);
	int status = 0;
	if (rd < 0)
		kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	if (rd < 0)
		return e == E2BIG ? cli_fail(cli, "--dir: '%s' packs to more than %zu KiB", dir,
					     UPLOAD_MAX >> 10)
				  : cli_fail(cli, "--dir: reading tar: %s", strerror(e));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return cli_fail(cli, "--dir: tar failed on '%s'", dir);
	return 0;
}

/* Lint text: 0 when it may be sent, else 1 after printing the findings. */
static int lint(const struct cli *cli, const char *path, const struct buf *text)
{
	struct diag_list dl;
	struct buf out = BUF_INIT;
	diag_list_init(&dl);
	struct bp_file *f = bp_parse(path, text->data, text->len, &dl);
	size_t nerr = diag_count(&dl, DIAG_ERROR), n = bp_file_count(f);
	bp_file_free(f);
	diag_sort(&dl);
	diag_render(&dl, DIAG_TEXT, bp_rules, BP_NRULES, DPLOYR_VERSION, &out);
	if (out.len)
		fwrite(out.data, 1, out.len, stderr);
	buf_release(&out);
	diag_list_release(&dl);
	if (nerr) {
		cli_fail(cli, "'%s' has %zu error%s: nothing was deployed", path, nerr,
			 nerr == 1 ? "" : "s");
		return 1;
	}
	if (n != 1) {
		cli_fail(cli, "'%s' must hold exactly one service (it holds %zu)", path, n);
		return 1;
	}
	return 0;
}

int deploy_main(int argc, char **argv)
{
	struct cli cli = {.verb = "deploy", .synopsis = synopsis, .help = help, .outputs = 1};
	const char *file = NULL, *inst = NULL, *title = NULL, *dir = NULL;
	int detach = 0, rc;
	for (int i = 1; i < argc; i++) {
		int r = cli_option(&cli, argc, argv, &i, &rc);
		if (r == CLI_OPT_EXIT)
			return rc;
		if (r == CLI_OPT_TAKEN)
			continue;
		const char *a = argv[i];
		const char **dst = NULL, *name = NULL;
		if (!strcmp(a, "-f") || !strncmp(a, "--file", 6))
			dst = &file, name = "--file";
		else if (!strcmp(a, "-i") || !strncmp(a, "--instance", 10))
			dst = &inst, name = "--instance";
		else if (!strncmp(a, "--title", 7))
			dst = &title, name = "--title";
		else if (!strncmp(a, "--dir", 5))
			dst = &dir, name = "--dir";
		if (dst) {
			if (!(*dst = cli_value(&cli, argc, argv, &i, name)))
				return 2;
		} else if (!strcmp(a, "--detach")) {
			detach = 1;
		} else {
			return a[0] == '-' ? cli_usage(&cli, "unknown option '%s'", a)
					   : cli_usage(&cli, "unexpected argument '%s'", a);
		}
	}
	if (!file || !inst)
		return cli_usage(&cli, "-f FILE and -i INSTANCE are required");

	struct buf text = BUF_INIT;
	char err[1024];
	if (buf_read_file(&text, file, (size_t)256 << 10, err, sizeof(err)) < 0) {
		buf_release(&text);
		return cli_fail(&cli, "%s", err);
	}
	if (lint(&cli, file, &text)) {
		buf_release(&text);
		return 1;
	}
	struct buf archive = BUF_INIT;
	{
		struct diag_list dl;
		diag_list_init(&dl);
		struct bp_file *f = bp_parse(file, text.data, text.len, &dl);
		int upload = bp_file_get(f, 0)->source == BP_SOURCE_UPLOAD;
		bp_file_free(f);
		diag_list_release(&dl);
		int bad = upload != (dir != NULL);
		if (bad)
			cli_fail(&cli, "%s",
				 upload ? "the blueprint has source upload: give --dir DIR"
					: "--dir is only for a blueprint with source upload");
		if (bad || (dir && pack(&cli, dir, &archive))) {
			buf_release(&text);
			buf_release(&archive);
			return 1;
		}
	}
	struct client_ctx ctx;
	struct client *cl = cli_client(&cli, &ctx);
	rc = 1;
	if (!cl)
		goto out;
	struct buf body = BUF_INIT;
	struct proto_json *doc = NULL;
	buf_puts(&body, "{\"instance\":");
	buf_json_cstr(&body, inst);
	buf_puts(&body, ",\"blueprint\":");
	buf_json_str(&body, text.data, text.len);
	buf_puts(&body, ",\"title\":");
	buf_json_cstr(&body, title ? title : "");
	if (dir) {
		buf_puts(&body, ",\"upload\":\"");
		crypt_b64_encode(&body, archive.data, archive.len, CRYPT_B64_STD);
		buf_puts(&body, "\"");
	}
	buf_puts(&body, "}");
	int c = client_call(cl, "POST", "/v1/deployments", body.data, NULL, &doc, NULL, err,
			    sizeof(err));
	buf_release(&body);
	const char *id = doc ? proto_jv_get_str(proto_json_root(doc), "id") : NULL;
	if (c < 0 || !id) {
		cli_fail(&cli, "%s", c < 0 ? err : "bad reply from base: no deployment id");
		proto_json_free(doc);
		goto out;
	}
	int64_t seq = 0;
	proto_jv_int(proto_jv_get(proto_json_root(doc), "seq"), &seq);
	const char *st = proto_jv_get_str(proto_json_root(doc), "status");
	if (detach) {
		if (cli.json)
			printf("{\"id\":\"%s\",\"seq\":%lld,\"status\":\"%s\"}\n", id,
			       (long long)seq, st ? st : "");
		else
			printf("%s\n", id);
		rc = 0;
	} else {
		fprintf(stderr, "deployment %s (#%lld) %s\n", id, (long long)seq, st ? st : "");
		rc = deployfollow(&cli, cl, id, 1);
	}
	proto_json_free(doc);
out:
	client_free(cl);
	client_ctx_release(&ctx);
	buf_release(&text);
	buf_release(&archive);
	return rc;
}
