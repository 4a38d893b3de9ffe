/* dployr agent (dployrd): the daemon on a VM, and `agent join` to enroll it.
 * See dployr-agent(8). Exit: 0 ok, 1 failure, 2 usage. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "applets.h"
#include "join.h"
#include "log.h"
#include "loop.h"

#define DEFAULT_DATA "/var/lib/dployrd"
#define DEFAULT_LOG  "/var/log/dployrd/app.log"

static const char synopsis[] =
    "usage: dployr agent [--data DIR] [--log FILE] [--log-level LEVEL] [--proxy-listen IP] [-n]\n"
    "       dployr agent join --base HOST:PORT --token TOKEN --ca-fingerprint sha256:HEX\n"
    "                         [--data DIR] [--name NAME]\n";

static const char help[] =
    "\n"
    "Run the agent in the foreground: one outbound mTLS WebSocket to base, no\n"
    "listening port. 'join' enrolls this VM with base's API port first.\n"
    "\n"
    "  --data DIR          data directory (default " DEFAULT_DATA ")\n"
    "  --log FILE          JSON log lines (default " DEFAULT_LOG ")\n"
    "  --log-level LEVEL   debug, info (default), warn, error\n"
    "  --proxy-listen IP   the address Caddy serves service ports on (default:\n"
    "                      every address); given on every start\n"
    "  -n                  check the data directory and exit\n"
    "  --base HOST:PORT    join: base's API address\n"
    "  --token TOKEN       join: the join token (or $DPLOYR_JOIN_TOKEN)\n"
    "  --ca-fingerprint F  join: the CA pin printed by 'dployr base init'\n"
    "  --name NAME         join: the instance name to ask for\n"
    "  -h, --help          show this help\n"
    "\n"
    "See dployr-agent(8).\n";

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("dployr agent: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\n", stderr);
	va_end(ap);
	fputs(synopsis, stderr);
	return EXIT_USAGE;
}

/* "--name value" or "--name=value": 1 when argv[*i] is option name (value
 * stored, *i advanced), 0 when it is not, -1 when the value is missing. */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **value)
{
	size_t n = strlen(name);
	if (strncmp(argv[*i], name, n) != 0)
		return 0;
	if (argv[*i][n] == '=') {
		*value = argv[*i] + n + 1;
		return 1;
	}
	if (argv[*i][n] != 0)
		return 0;
	if (*i + 1 >= argc)
		return -1;
	*value = argv[++*i];
	return 1;
}

static int join_main(int argc, char **argv)
{
	struct join_opts o = {.data_dir = DEFAULT_DATA};
	static const char *const names[] = {"--base", "--token", "--ca-fingerprint", "--data",
					    "--name"};
	const char **slots[] = {&o.base, &o.token, &o.ca_fingerprint, &o.data_dir, &o.name};
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(synopsis, stdout);
			fputs(help, stdout);
			return 0;
		}
		int hit = 0;
		for (size_t k = 0; k < sizeof(names) / sizeof(names[0]) && !hit; k++) {
			hit = opt_value(argc, argv, &i, names[k], slots[k]);
			if (hit < 0)
				return usage_error("option '%s' needs a value", names[k]);
		}
		if (!hit)
			return usage_error("join: unknown argument '%s'", argv[i]);
	}
	if (!o.token)
		o.token = getenv("DPLOYR_JOIN_TOKEN");
	if (!o.base || !o.token || !o.ca_fingerprint)
		return usage_error("join needs --base, --token and --ca-fingerprint");
	if (!*o.data_dir)
		return usage_error("--data must not be empty");
	struct join_result r;
	char err[1024];
	if (join_run(&o, &r, err, sizeof(err)) < 0) {
		fprintf(stderr, "dployr agent join: %s\n", err);
		return 1;
	}
	printf("joined as %s (%s); agent address %s\n"
	       "start the agent with: dployr agent --data %s\n",
	       r.name, r.instance_id, r.agent_addr, o.data_dir);
	return 0;
}

int agent_main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "join") == 0)
		return join_main(argc - 1, argv + 1);
	const char *data = DEFAULT_DATA, *logfile = DEFAULT_LOG, *level = NULL, *plisten = NULL;
	int check = 0;
	for (int i = 1; i < argc; i++) {
		int hit;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(synopsis, stdout);
			fputs(help, stdout);
			return 0;
		}
		if (strcmp(argv[i], "-n") == 0) {
			check = 1;
			continue;
		}
		if ((hit = opt_value(argc, argv, &i, "--data", &data)) ||
		    (hit = opt_value(argc, argv, &i, "--log", &logfile)) ||
		    (hit = opt_value(argc, argv, &i, "--log-level", &level)) ||
		    (hit = opt_value(argc, argv, &i, "--proxy-listen", &plisten))) {
			if (hit < 0)
				return usage_error("option '%s' needs a value", argv[i]);
			continue;
		}
		return usage_error("unknown argument '%s'", argv[i]);
	}
	enum log_level lvl = LOG_LVL_INFO;
	if (level && log_level_parse(level, &lvl) < 0)
		return usage_error("unknown log level '%s'", level);
	log_set_level(lvl);
	log_set_role("agent");

	char err[1024];
	if (check) {
		struct agent_identity id;
		if (agent_check(data, &id, err, sizeof(err)) < 0) {
			fprintf(stderr, "dployr agent: %s\n", err);
			return 1;
		}
		printf("data dir '%s' ok: instance %s (%s), agent address %s, certificate valid "
		       "until %s\n",
		       data, id.instance_id, id.name, id.agent_addr, id.cert_not_after);
		return 0;
	}
	if (log_open_file(logfile, err, sizeof(err)) < 0) {
		fprintf(stderr, "dployr agent: %s\n", err);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	struct loop *loop = loop_new(0, err, sizeof(err));
	if (!loop) {
		fprintf(stderr, "dployr agent: %s\n", err);
		log_close();
		return 1;
	}
	struct agent *a = agent_new(loop, data, err, sizeof(err));
	if (a && agent_proxy(a, plisten && *plisten ? plisten : NULL, err, sizeof(err)) < 0) {
		agent_free(a);
		a = NULL;
	}
	if (!a) {
		log_error("agent", "cannot start", "error", err, NULL);
		fprintf(stderr, "dployr agent: %s\n", err);
		loop_free(loop);
		log_close();
		return 1;
	}
	agent_start(a);
	int rc = loop_run(loop);
	agent_free(a);
	/* A closed session lingers under the loop's timers (close_notify, then
	 * draining input) for up to 2 s: let it finish and free itself. */
	long long until = loop_now_ms() + 3000;
	while (loop_timer_count(loop) > 0 && loop_now_ms() < until && loop_run_once(loop, 100) >= 0)
		;
	loop_free(loop);
	log_close();
	return rc < 0 ? 1 : 0;
}
