/* bp internals shared by src/bp.c (model, driver) and src/bp_check.c
 * (reading and checking one document). Not a public header. */
#ifndef DPLOYR_BP_INT_H
#define DPLOYR_BP_INT_H

#include "bp.h"
#include "ydoc.h"

/* Append a finding of rule r (its severity and id from bp_rules) and count
 * it in bp (which may be NULL for file-level findings). */
void bp_report(struct bp *bp, const char *file, struct diag_list *diags, int line, int col,
	       enum bp_rule_id r, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* Read mapping document `map` into bp (zeroed by the caller), reporting
 * every problem. Returns the node of the `name` value when it is a valid
 * string, for the file-wide duplicate check, else NULL. */
const struct ydoc_node *bp_check_doc(struct bp *bp, const struct ydoc_node *map, const char *file,
				     struct diag_list *diags);

/* Free everything bp owns (not bp itself). */
void bp_release(struct bp *bp);

#endif
