/* dployr's entry point: dispatch on argv[0], then on the first argument.
 *
 * `dployr NAME ARGS...` and a program named after an alias or `dployr-NAME`
 * run applet NAME. The table and the help come from applets.def alone. */
#include <stdio.h>
#include <string.h>

#include "applets.h"
#include "suggest.h"
#include "version.h"

struct applet {
	const char *name;
	int (*fn)(int, char **);
	const char *group;
	const char *summary;
};

static const struct applet applets[] = {
#define APPLET(n, f, g, s) { #n, f, #g, s },
#define ALIAS(a, n)
#include "applets.def"
#undef APPLET
#undef ALIAS
};
#define NAPPLETS (sizeof(applets) / sizeof(applets[0]))

static const struct {
	const char *argv0;
	const char *name;
} aliases[] = {
#define APPLET(n, f, g, s)
#define ALIAS(a, n) { a, #n },
#include "applets.def"
#undef APPLET
#undef ALIAS
};

static const struct applet *find(const char *name)
{
	for (size_t i = 0; i < NAPPLETS; i++)
		if (strcmp(applets[i].name, name) == 0)
			return &applets[i];
	return NULL;
}

static void usage(FILE *f)
{
	static const struct {
		const char *group, *title;
	} groups[] = {
		{ "ROLE", "Daemons" },
		{ "CLI", "Commands (talk to base)" },
		{ "TOOL", "Tools (offline)" },
	};
	fprintf(f, "usage: dployr COMMAND [ARGS...]\n"
		   "       dployr --help | --version | help COMMAND\n");
	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		fprintf(f, "\n%s:\n", groups[g].title);
		for (size_t i = 0; i < NAPPLETS; i++)
			if (strcmp(applets[i].group, groups[g].group) == 0)
				fprintf(f, "  %-12s %s\n", applets[i].name, applets[i].summary);
	}
	fprintf(f, "\nRun 'dployr COMMAND -h' for a command's options; "
		   "'man dployr' for the whole story.\n");
}

static int unknown(const char *name)
{
	const char *names[NAPPLETS];
	for (size_t i = 0; i < NAPPLETS; i++)
		names[i] = applets[i].name;
	const char *close = suggest_closest(name, names, NAPPLETS);
	fprintf(stderr, "dployr: '%s' is not a dployr command", name);
	if (close)
		fprintf(stderr, "; did you mean '%s'?", close);
	fprintf(stderr, " (see 'dployr --help')\n");
	return EXIT_UNKNOWN;
}

static int run(const struct applet *a, int argc, char **argv)
{
	char *saved = argv[0];
	argv[0] = (char *)a->name;
	int rc = a->fn(argc, argv);
	argv[0] = saved;
	return rc;
}

int main(int argc, char **argv)
{
	const char *prog = argc > 0 && argv[0] ? argv[0] : "dployr";
	const char *slash = strrchr(prog, '/');
	if (slash)
		prog = slash + 1;

	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (strcmp(prog, aliases[i].argv0) == 0)
			return run(find(aliases[i].name), argc, argv);
	if (strncmp(prog, "dployr-", 7) == 0 && find(prog + 7))
		return run(find(prog + 7), argc, argv);

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
		printf("dployr %s\n", DPLOYR_VERSION);
		return 0;
	}
	if (strcmp(cmd, "help") == 0) {
		if (argc < 3) {
			usage(stdout);
			return 0;
		}
		const struct applet *a = find(argv[2]);
		if (!a)
			return unknown(argv[2]);
		char *hargv[] = { argv[2], "--help", NULL };
		return run(a, 2, hargv);
	}
	if (cmd[0] == '-') {
		fprintf(stderr, "dployr: unknown option '%s' (see 'dployr --help')\n", cmd);
		return EXIT_USAGE;
	}
	const struct applet *a = find(cmd);
	if (!a)
		return unknown(cmd);
	return run(a, argc - 1, argv + 1);
}
