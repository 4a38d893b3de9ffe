#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "applets.h"

__attribute__((format(printf, 2, 0))) static void vmessage(const struct cli *cli, const char *fmt,
							   va_list ap)
{
	fprintf(stderr, "dployr %s: ", cli->verb);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int cli_usage(const struct cli *cli, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage(cli, fmt, ap);
	va_end(ap);
	fputs(cli->synopsis, stderr);
	return EXIT_USAGE;
}

int cli_fail(const struct cli *cli, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage(cli, fmt, ap);
	va_end(ap);
	return 1;
}

const char *cli_value(struct cli *cli, int argc, char **argv, int *i, const char *name)
{
	const char *a = argv[*i];
	size_t n = strlen(name);
	if (strncmp(a, name, n) == 0 && a[n] == '=')
		return a + n + 1;
	if (*i + 1 >= argc) {
		cli_usage(cli, "option '%s' needs a value", name);
		return NULL;
	}
	return argv[++*i];
}

/* Whether a is the option name, alone or as "name=value". */
static int is_opt(const char *a, const char *name)
{
	size_t n = strlen(name);
	return strncmp(a, name, n) == 0 && (a[n] == '\0' || a[n] == '=');
}

int cli_option(struct cli *cli, int argc, char **argv, int *i, int *rc)
{
	const char *a = argv[*i];
	if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
		fputs(cli->synopsis, stdout);
		fputs(cli->help, stdout);
		*rc = 0;
		return CLI_OPT_EXIT;
	}
	if (is_opt(a, "--config")) {
		const char *v = cli_value(cli, argc, argv, i, "--config");
		if (v && !*v)
			cli_usage(cli, "--config needs a file name");
		if (!v || !*v) {
			*rc = EXIT_USAGE;
			return CLI_OPT_EXIT;
		}
		cli->config = v;
		return CLI_OPT_TAKEN;
	}
	if (cli->outputs && (is_opt(a, "-o") || is_opt(a, "--output"))) {
		const char *v = cli_value(cli, argc, argv, i, a[1] == 'o' ? "-o" : "--output");
		if (!v) {
			*rc = EXIT_USAGE;
			return CLI_OPT_EXIT;
		}
		if (strcmp(v, "json") == 0) {
			cli->json = 1;
		} else if (strcmp(v, "text") == 0) {
			cli->json = 0;
		} else {
			*rc = cli_usage(cli, "unknown output format '%s' (text, json)", v);
			return CLI_OPT_EXIT;
		}
		return CLI_OPT_TAKEN;
	}
	return CLI_OPT_NONE;
}

struct client *cli_client(const struct cli *cli, struct client_ctx *ctx)
{
	char err[1024];
	memset(ctx, 0, sizeof(*ctx));
	char *path = client_config_path(cli->config, err, sizeof(err));
	if (!path) {
		cli_fail(cli, "%s", err);
		return NULL;
	}
	struct client *cl = NULL;
	if (client_ctx_load(ctx, path, err, sizeof(err)) < 0 ||
	    !(cl = client_new_ctx(ctx, err, sizeof(err))))
		cli_fail(cli, "%s", err);
	free(path);
	return cl;
}

void cli_write(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		c += w;
		n -= (size_t)w;
	}
}

void cli_print_json(const char *text, size_t len)
{
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
		len--;
	fwrite(text, 1, len, stdout);
	fputc('\n', stdout);
}
