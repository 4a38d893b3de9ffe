/* dployr lint: check blueprint files (BLUEPRINT.md), for people and CI.
 *
 * Reads each file (bounded), runs the blueprint checker and renders every
 * finding of every file as one output. Never executes or fetches anything.
 * Exit: 0 no errors (warnings allowed unless --strict), 1 an error (or a
 * warning with --strict), 2 usage error or an unreadable file. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "applets.h"
#include "bp.h"
#include "buf.h"
#include "diag.h"
#include "version.h"
#include "xalloc.h"

/* The checker's size bound (ydoc's max_bytes): a larger file is a finding,
 * and reading stops just past it so that no input is held unbounded. */
#define LINT_MAX_BYTES ((size_t)1 << 20)

static const char synopsis[] =
    "usage: dployr lint [--format text|json|github|sarif] [--strict] [-q | --quiet] FILE... | -\n";

static const char help[] =
    "\n"
    "Check blueprint files (the dployr-blueprint(5) format) without a base or\n"
    "network; '-' reads standard input.\n"
    "\n"
    "  --format FMT  output format: text (default), json, github (GitHub Actions\n"
    "                annotations), sarif (SARIF 2.1.0)\n"
    "  --strict      warnings fail too (exit 1)\n"
    "  -q, --quiet   no summary line on stderr (text format)\n"
    "  -h, --help    show this help\n"
    "\n"
    "Exit status: 0 no errors, 1 errors (or warnings with --strict),\n"
    "2 usage error or an unreadable file. See dployr-lint(1).\n";

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("dployr lint: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\n", stderr);
	va_end(ap);
	fputs(synopsis, stderr);
	return EXIT_USAGE;
}

/* Check one file, appending its findings. 0, or -1 when it cannot be read
 * (reported on stderr). data is scratch space, reused from file to file so
 * that thousands of files do not each map and unmap a fresh buffer. */
static int lint_file(const char *path, struct buf *data, struct diag_list *diags)
{
	char err[512];
	int rc = 0;
	buf_reset(data);
	if (buf_read_file(data, path, LINT_MAX_BYTES, err, sizeof(err)) < 0) {
		if (data->len > LINT_MAX_BYTES) {
			diag_add(diags, path, 1, 1, DIAG_ERROR, bp_rules[BP_R_YAML_LIMITS].id,
				 "file is larger than %zu bytes (1 MiB); not checked",
				 LINT_MAX_BYTES);
		} else {
			fprintf(stderr, "dployr lint: %s\n", err);
			rc = -1;
		}
	} else {
		bp_file_free(bp_parse(path, data->data, data->len, diags));
	}
	return rc;
}

/* Options and files may be mixed; "--" ends the options. */
static int run(int argc, char **argv, const char **files)
{
	enum diag_format fmt = DIAG_TEXT;
	int strict = 0, quiet = 0, stdin_seen = 0, only_files = 0;
	size_t nfiles = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (only_files || a[0] != '-' || strcmp(a, "-") == 0) {
			if (strcmp(a, "-") == 0 && stdin_seen++)
				return usage_error("'%s' (standard input) given twice", a);
			files[nfiles++] = a;
		} else if (strcmp(a, "--") == 0) {
			only_files = 1;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(synopsis, stdout);
			fputs(help, stdout);
			return 0;
		} else if (strcmp(a, "--strict") == 0) {
			strict = 1;
		} else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
			quiet = 1;
		} else if (strcmp(a, "--format") == 0 || strncmp(a, "--format=", 9) == 0) {
			const char *v = a[8] == '=' ? a + 9 : NULL;
			if (!v && i + 1 >= argc)
				return usage_error("option '%s' needs a value", a);
			if (!v)
				v = argv[++i];
			if (diag_format_parse(v, &fmt) < 0)
				return usage_error(
				    "unknown format '%s' (text, json, github, sarif)", v);
		} else {
			return usage_error("unknown option '%s'", a);
		}
	}
	if (nfiles == 0)
		return usage_error("%s", "no file to check (use '-' for standard input)");

	struct diag_list diags;
	int rc;
	diag_list_init(&diags);
	size_t checked = 0;
	int unreadable = 0;
	struct buf data = BUF_INIT;
	for (size_t i = 0; i < nfiles; i++) {
		if (lint_file(files[i], &data, &diags) < 0)
			unreadable = 1;
		else
			checked++;
	}
	buf_release(&data);
	diag_sort(&diags);

	struct buf out = BUF_INIT;
	diag_render(&diags, fmt, bp_rules, BP_NRULES, DPLOYR_VERSION, &out);
	size_t nerr = diag_count(&diags, DIAG_ERROR), nwarn = diag_count(&diags, DIAG_WARNING);
	rc = nerr || (strict && nwarn) ? 1 : 0;
	if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0) {
		fprintf(stderr, "dployr lint: write standard output: %s\n", strerror(errno));
		rc = EXIT_USAGE;
	}
	if (fmt == DIAG_TEXT && !quiet)
		fprintf(stderr, "%zu error%s, %zu warning%s in %zu file%s\n", nerr,
			nerr == 1 ? "" : "s", nwarn, nwarn == 1 ? "" : "s", checked,
			checked == 1 ? "" : "s");
	if (unreadable)
		rc = EXIT_USAGE;
	buf_release(&out);
	diag_list_release(&diags);
	return rc;
}

int lint_main(int argc, char **argv)
{
	const char **files = xcalloc((size_t)argc + 1, sizeof(*files));
	int rc = run(argc, argv, files);
	free(files);
	return rc;
}
