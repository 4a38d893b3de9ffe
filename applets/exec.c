/* dployr exec: run a command on an instance and stream its output.
 *
 * The command is an argv array: base and agent hand it to execve, so
 * spaces, quotes and $(...) in it stay literal (no shell on either side).
 * Remote stdout goes to stdout and stderr to stderr as it arrives; the
 * exit status is the remote one, 128 + N when signal N killed it. Ctrl-C
 * (or SIGTERM) cancels the task and waits for its exit; a second one stops
 * waiting (exit 130). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "applets.h"
#include "buf.h"
#include "cli.h"
#include "client.h"

static const char synopsis[] =
    "usage: dployr exec [--queue] [--detach] [--timeout S] [-o json] [--config FILE]\n"
    "                   NAME [--] ARGV...\n";

static const char help[] =
    "\n"
    "Run ARGV (no shell) on instance NAME; stream its stdout and stderr and\n"
    "exit with its status (128+N when killed by signal N).\n"
    "\n"
    "  --queue          if the instance is offline, queue the task; it runs when\n"
    "                   the agent is back (default: fail at once)\n"
    "  --detach         print the task id and return without waiting\n"
    "  --timeout S      kill the command after S seconds\n"
    "  -o, --output FMT text (default) or json (for --detach)\n"
    "  --config FILE    context file (see dployr-login(1))\n"
    "  -h, --help       show this help\n"
    "\n"
    "Ctrl-C cancels the task and waits for it to end; a second Ctrl-C stops\n"
    "waiting. Exit status: the command's; 1 failure, 2 usage error.\n"
    "See dployr-exec(1).\n";

#define MAX_TIMEOUT_S (7 * 86400)

struct run {
	struct cli *cli;
	const char *task_id;
};

static void output(void *arg, int stream, const void *data, size_t len)
{
	(void)arg;
	cli_write(stream == 2 ? 2 : 1, data, len);
}

static void interrupt(void *arg, int count)
{
	struct run *r = arg;
	if (count == 1)
		fprintf(stderr, "dployr exec: cancelling task %s (Ctrl-C again to stop waiting)\n",
			r->task_id);
}

static int run(struct cli *cli, struct client *cl, const char *name, char **args, size_t nargs,
	       int queue, int detach, long timeout_s)
{
	char err[1024], path[128];
	struct buf body = BUF_INIT;
	struct proto_json *doc = NULL;
	int rc = 1, status = 0;
	buf_puts(&body, "{\"argv\":[");
	for (size_t i = 0; i < nargs; i++) {
		if (i)
			buf_putc(&body, ',');
		buf_json_cstr(&body, args[i]);
	}
	buf_printf(&body, "],\"queue\":%s", queue ? "true" : "false");
	if (timeout_s > 0)
		buf_printf(&body, ",\"timeout_s\":%ld", timeout_s);
	buf_putc(&body, '}');
	snprintf(path, sizeof(path), "/v1/instances/%s/exec", name);
	if (client_call(cl, "POST", path, body.data, &status, &doc, NULL, err, sizeof(err)) < 0) {
		if (status == 409 && !queue && strstr(err, "offline"))
			cli_fail(cli, "%s (--queue runs the command when it is back)", err);
		else
			cli_fail(cli, "%s", err);
		goto out;
	}
	const char *task_id = doc ? proto_jv_get_str(proto_json_root(doc), "task_id") : NULL;
	if (!task_id || !*task_id) {
		cli_fail(cli, "bad reply from base: no task_id");
		goto out;
	}
	if (detach) {
		if (cli->json) {
			buf_reset(&body);
			buf_puts(&body, "{\"task_id\":");
			buf_json_cstr(&body, task_id);
			buf_putc(&body, '}');
			cli_print_json(body.data, body.len);
		} else {
			printf("queued task %s\n", task_id);
		}
		rc = 0;
		goto out;
	}
	if (queue)
		fprintf(stderr, "queued task %s\n", task_id);
	fflush(stdout);
	struct run r = {cli, task_id};
	struct client_task_exit ex;
	/* a background job of a non-interactive shell starts with SIGINT
	 * ignored; the stream takes it over through the loop's signalfd */
	signal(SIGINT, SIG_DFL);
	int s = client_task_stream(cl, task_id, output, interrupt, &r, &ex, err, sizeof(err));
	if (s == CLIENT_INTERRUPTED) {
		cli_fail(cli, "%s", err);
		rc = 128 + SIGINT;
	} else if (s < 0) {
		cli_fail(cli, "%s", err);
	} else {
		if (ex.lost)
			fprintf(stderr, "dployr exec: the output stream broke; output may be "
					"incomplete\n");
		if (!ex.ran && !ex.signal)
			fprintf(stderr,
				"dployr exec: task %s ended without running "
				"(cancelled or failed to start)\n",
				task_id);
		rc = ex.signal ? 128 + ex.signal : ex.status;
	}
out:
	proto_json_free(doc);
	buf_release(&body);
	return rc;
}

int exec_main(int argc, char **argv)
{
	struct cli cli = {.verb = "exec", .synopsis = synopsis, .help = help, .outputs = 1};
	const char *name = NULL;
	int queue = 0, detach = 0, rc;
	long timeout_s = 0;
	int i = 1;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-') {
			if (name)
				break; /* ARGV starts here */
			name = a;
			continue;
		}
		int r = cli_option(&cli, argc, argv, &i, &rc);
		if (r == CLI_OPT_EXIT)
			return rc;
		if (r == CLI_OPT_TAKEN)
			continue;
		if (strcmp(a, "--queue") == 0) {
			queue = 1;
		} else if (strcmp(a, "--detach") == 0) {
			detach = 1;
		} else if (strncmp(a, "--timeout", 9) == 0 && (a[9] == 0 || a[9] == '=')) {
			const char *v = cli_value(&cli, argc, argv, &i, "--timeout");
			if (!v)
				return EXIT_USAGE;
			char *end;
			timeout_s = strtol(v, &end, 10);
			if (!*v || *end || timeout_s < 1 || timeout_s > MAX_TIMEOUT_S)
				return cli_usage(&cli,
						 "--timeout '%s': not a number of seconds from 1 "
						 "to %d",
						 v, MAX_TIMEOUT_S);
		} else {
			return cli_usage(&cli, "unknown option '%s'", a);
		}
	}
	if (!name && i < argc)
		name = argv[i++];
	if (!name)
		return cli_usage(&cli, "missing instance name");
	char err[256];
	if (client_name_check(name, err, sizeof(err)) < 0)
		return cli_usage(&cli, "%s", err);
	if (i >= argc)
		return cli_usage(&cli, "missing command (dployr exec NAME -- ARGV...)");

	struct client_ctx ctx;
	struct client *cl = cli_client(&cli, &ctx);
	rc = 1;
	if (cl)
		rc = run(&cli, cl, name, argv + i, (size_t)(argc - i), queue, detach, timeout_s);
	client_free(cl);
	client_ctx_release(&ctx);
	return rc;
}
