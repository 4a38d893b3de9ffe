/* libFuzzer target: bp_parse (YAML through ydoc, then every blueprint
 * check) on arbitrary input. Findings must always be well formed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bp.h"
#include "diag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct diag_list dl;
	diag_list_init(&dl);
	struct bp_file *f = bp_parse("fuzz.yaml", (const char *)data, size, &dl);
	for (size_t i = 0; i < dl.n; i++) {
		const struct diag *d = &dl.items[i];
		if (!d->rule || !d->msg || !*d->msg || d->line < 0 || d->col < 0)
			abort();
	}
	for (size_t i = 0; i < bp_file_count(f); i++) {
		const struct bp *b = bp_file_get(f, i);
		if (b->nerrors == 0 && (!b->name || !b->type || !b->source || !b->runtime.type))
			abort(); /* no error means complete */
	}
	bp_file_free(f);
	diag_list_release(&dl);
	return 0;
}
