/* bp-findings: print the findings of bp_parse for each FILE, sorted, one a
 * line as "LINE:COL severity rule-id" (the format of the .expect files of test/corpus/bad);
 * with -m, followed by " message". Exit 0 when no finding is an error, 1
 * otherwise, 2 on a usage or read error. */
#include <stdio.h>
#include <string.h>

#include "bp.h"
#include "buf.h"
#include "diag.h"

int main(int argc, char **argv)
{
	int msgs = 0, i = 1, rc = 0;
	if (argc > 1 && strcmp(argv[1], "-m") == 0) {
		msgs = 1;
		i++;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: bp-findings [-m] FILE...\n");
		return 2;
	}
	for (; i < argc; i++) {
		struct buf data = BUF_INIT;
		struct diag_list dl;
		char err[256];
		if (buf_read_file(&data, argv[i], 1 << 22, err, sizeof err) < 0) {
			fprintf(stderr, "bp-findings: %s\n", err);
			return 2;
		}
		diag_list_init(&dl);
		bp_file_free(bp_parse(argv[i], data.data, data.len, &dl));
		diag_sort(&dl);
		for (size_t j = 0; j < dl.n; j++) {
			const struct diag *d = &dl.items[j];
			printf("%d:%d %s %s", d->line, d->col,
			       d->severity == DIAG_ERROR ? "error" : "warning", d->rule);
			if (msgs)
				printf(" %s", d->msg);
			putchar('\n');
		}
		if (diag_count(&dl, DIAG_ERROR))
			rc = 1;
		diag_list_release(&dl);
		buf_release(&data);
	}
	return rc;
}
