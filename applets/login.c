/* dployr login: pin the base's CA, check a token, save the CLI context.
 *
 * The CA is fetched without verification and accepted only when its
 * fingerprint equals --ca-fingerprint; the token is then tried with
 * GET /v1/whoami over a connection verified against that CA, and only a
 * working context is saved. "--token -" reads the token from standard
 * input, so it need not appear in argv or the shell's history. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "applets.h"
#include "buf.h"
#include "cli.h"
#include "client.h"
#include "crypt.h"
#include "xalloc.h"

static const char synopsis[] =
    "usage: dployr login --base https://HOST:PORT --ca-fingerprint sha256:HEX\n"
    "                    --token TOKEN|- [--config FILE]\n";

static const char help[] =
    "\n"
    "Save a base address, its pinned CA and an API token as the CLI context.\n"
    "\n"
    "  --base URL              the base's API address (https://HOST:PORT)\n"
    "  --ca-fingerprint PIN    sha256:... as printed by 'dployr base init'\n"
    "  --token TOKEN           API token (dpy_...); '-' reads it from standard\n"
    "                          input (recommended: keeps it out of argv and history)\n"
    "  --config FILE           context file (default $DPLOYR_CONFIG, else\n"
    "                          $XDG_CONFIG_HOME/dployr/config.json or\n"
    "                          ~/.config/dployr/config.json)\n"
    "  -h, --help              show this help\n"
    "\n"
    "Exit status: 0 logged in, 1 failure, 2 usage error. See dployr-login(1).\n";

/* One line from standard input, without echo on a terminal. */
static char *read_token(void)
{
	struct termios old, quiet;
	int tty = isatty(0) && tcgetattr(0, &old) == 0;
	if (tty) {
		fputs("token: ", stderr);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(0, TCSAFLUSH, &quiet);
	}
	struct buf b = BUF_INIT;
	char c;
	while (b.len < 4096 && read(0, &c, 1) == 1 && c != '\n')
		buf_putc(&b, c);
	if (tty) {
		tcsetattr(0, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	while (b.len &&
	       (b.data[b.len - 1] == '\r' || b.data[b.len - 1] == ' ' || b.data[b.len - 1] == '\t'))
		b.data[--b.len] = '\0';
	return buf_detach(&b, NULL);
}

static void wipe_free(char *s)
{
	if (s) {
		crypt_wipe(s, strlen(s));
		free(s);
	}
}

int login_main(int argc, char **argv)
{
	struct cli cli = {.verb = "login", .synopsis = synopsis, .help = help};
	const char *base = NULL, *pin = NULL, *token_arg = NULL;
	int rc;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int r = cli_option(&cli, argc, argv, &i, &rc);
		if (r == CLI_OPT_EXIT)
			return rc;
		if (r == CLI_OPT_TAKEN)
			continue;
		const char **slot = NULL;
		const char *name = NULL;
		if (strncmp(a, "--base", 6) == 0 && (a[6] == 0 || a[6] == '='))
			slot = &base, name = "--base";
		else if (strncmp(a, "--ca-fingerprint", 16) == 0 && (a[16] == 0 || a[16] == '='))
			slot = &pin, name = "--ca-fingerprint";
		else if (strncmp(a, "--token", 7) == 0 && (a[7] == 0 || a[7] == '='))
			slot = &token_arg, name = "--token";
		if (!slot)
			return a[0] == '-' ? cli_usage(&cli, "unknown option '%s'", a)
					   : cli_usage(&cli, "unexpected argument '%s'", a);
		if (!(*slot = cli_value(&cli, argc, argv, &i, name)))
			return EXIT_USAGE;
	}
	if (!base || !pin || !token_arg)
		return cli_usage(&cli, "--base, --ca-fingerprint and --token are all needed");

	char err[1024], canon[CLIENT_URL_MAX];
	if (client_base_parse(base, canon, NULL, NULL, err, sizeof(err)) < 0 ||
	    client_pin_check(pin, err, sizeof(err)) < 0)
		return cli_usage(&cli, "%s", err);
	char *token = strcmp(token_arg, "-") == 0 ? read_token() : xstrdup(token_arg);
	if (client_token_check(token, err, sizeof(err)) < 0) {
		wipe_free(token);
		return cli_usage(&cli, "--token: %s", err);
	}

	struct client_ctx ctx = {0};
	struct client *cl = NULL;
	struct proto_json *who = NULL;
	char *path = client_config_path(cli.config, err, sizeof(err));
	rc = 1;
	if (!path) {
		cli_fail(&cli, "%s", err);
		goto out;
	}
	ctx.ca = client_fetch_ca(canon, pin, 0, err, sizeof(err));
	if (!ctx.ca) {
		cli_fail(&cli, "%s", err);
		goto out;
	}
	cl = client_new(canon, ctx.ca, token, err, sizeof(err));
	if (!cl) {
		cli_fail(&cli, "%s", err);
		goto out;
	}
	int status;
	if (client_call(cl, "GET", "/v1/whoami", NULL, &status, &who, NULL, err, sizeof(err)) < 0) {
		if (status == 401)
			cli_fail(&cli, "base %s refused the token: %s", canon, err);
		else
			cli_fail(&cli, "%s", err);
		goto out;
	}
	const char *user = who ? proto_jv_get_str(proto_json_root(who), "user") : NULL;
	const char *role = who ? proto_jv_get_str(proto_json_root(who), "role") : NULL;
	ctx.base = xstrdup(canon);
	ctx.token = token;
	token = NULL;
	if (client_ctx_save(&ctx, path, err, sizeof(err)) < 0) {
		cli_fail(&cli, "%s", err);
		goto out;
	}
	printf("logged in to %s as %s (role %s)\ncontext saved to %s\n", canon, user ? user : "?",
	       role ? role : "?", path);
	rc = 0;
out:
	proto_json_free(who);
	client_free(cl);
	client_ctx_release(&ctx);
	wipe_free(token);
	free(path);
	return rc;
}
