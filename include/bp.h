/* bp: the blueprint model (BLUEPRINT.md) and its checker.
 *
 * bp_parse() reads every document of a blueprint file into struct bp values
 * and reports each problem as a finding (struct diag) with the position of
 * the offending key or value. The same model feeds `dployr lint` and, later,
 * `dployr deploy`: a blueprint with no error findings is complete and valid.
 */
#ifndef DPLOYR_BP_H
#define DPLOYR_BP_H

#include <stddef.h>

#include "diag.h"

/* Rule identifiers: BP_R_YAML_SYNTAX, ... (see bp_rules.def). */
enum bp_rule_id {
#define BP_RULE(ident, id, sev, summary) BP_R_##ident,
#include "bp_rules.def"
#undef BP_RULE
	BP_NRULES
};

/* Every rule, indexed by enum bp_rule_id. */
extern const struct diag_rule bp_rules[BP_NRULES];

struct bp;      /* one blueprint (one YAML document); fields: see below */
struct bp_file; /* every blueprint of one file */

/* Parse and check `data` (the contents of file `filename`, used in findings).
 * Appends every finding to diags. Never returns NULL. */
struct bp_file *bp_parse(const char *filename, const char *data, size_t len,
			 struct diag_list *diags);
void bp_file_free(struct bp_file *f);
size_t bp_file_count(const struct bp_file *f);
const struct bp *bp_file_get(const struct bp_file *f, size_t i);

#endif
