/* What the CLI verbs (login, instance, instances, exec) share: the
 * options every verb takes (-h, --config FILE, -o text|json), messages in
 * the form "dployr VERB: reason", and the way from the context file to a
 * connected struct client. */
#ifndef DPLOYR_APPLETS_CLI_H
#define DPLOYR_APPLETS_CLI_H

#include <stddef.h>

#include "client.h"

struct cli {
	const char *verb;     /* "instance add", for messages */
	const char *synopsis; /* the usage lines, ending in a newline */
	const char *help;     /* printed after the synopsis by -h */
	const char *config;   /* --config FILE, or NULL */
	int json;	      /* -o json */
	int outputs;	      /* whether the verb takes -o */
};

/* Results of cli_option(). */
enum { CLI_OPT_NONE = 0, CLI_OPT_TAKEN = 1, CLI_OPT_EXIT = 2 };

/* Try argv[*i] as a shared option (-h/--help, --config, -o/--output when
 * cli->outputs). CLI_OPT_TAKEN: consumed (with its value; *i advanced past
 * it). CLI_OPT_NONE: not a shared option. CLI_OPT_EXIT: the verb must exit
 * with *rc (help printed: 0; usage error printed: 2). */
int cli_option(struct cli *cli, int argc, char **argv, int *i, int *rc);
/* The value of option argv[*i] ("--opt VALUE" or "--opt=VALUE"); NULL
 * after a printed usage error. */
const char *cli_value(struct cli *cli, int argc, char **argv, int *i, const char *name);
/* "dployr VERB: message" and the synopsis on stderr; returns 2. */
int cli_usage(const struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "dployr VERB: message" on stderr; returns 1. */
int cli_fail(const struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Load the context and make a client; NULL after a printed failure. ctx
 * is filled (release it in any case). */
struct client *cli_client(const struct cli *cli, struct client_ctx *ctx);
/* Print a reply body that is JSON as one line on stdout. */
void cli_print_json(const char *text, size_t len);
/* Write all of p[0..n) to fd (blocking). */
void cli_write(int fd, const void *p, size_t n);

#endif
