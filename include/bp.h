/* bp: the blueprint model (BLUEPRINT.md) and its checker.
 *
 * bp_parse() reads every document of a blueprint file into struct bp values
 * and reports each problem as a finding (struct diag) with the position of
 * the offending key or value. The same model feeds `dployr lint` and, later,
 * `dployr deploy`: a blueprint with no error findings (nerrors == 0) is
 * complete and valid, and every field below is then checked and normalised.
 *
 * Everything a struct bp points to is owned by its struct bp_file and lives
 * until bp_file_free().
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

/* The *_NONE values mean "not given or not valid" (an error was reported). */
enum bp_type { BP_TYPE_NONE, BP_TYPE_WEB, BP_TYPE_WORKER, BP_TYPE_STATIC, BP_TYPE_JOB };
enum bp_source { BP_SOURCE_NONE, BP_SOURCE_REMOTE, BP_SOURCE_IMAGE, BP_SOURCE_UPLOAD };
enum bp_runtime_type {
	BP_RUNTIME_NONE,
	BP_RUNTIME_NODEJS,
	BP_RUNTIME_PYTHON,
	BP_RUNTIME_GOLANG,
	BP_RUNTIME_PHP,
	BP_RUNTIME_RUBY,
	BP_RUNTIME_DOTNET,
	BP_RUNTIME_JAVA,
	BP_RUNTIME_STATIC,
	BP_RUNTIME_DOCKER
};
enum bp_restart { BP_RESTART_ALWAYS, BP_RESTART_ON_FAILURE, BP_RESTART_NEVER };
enum bp_health_kind { BP_HEALTH_NONE, BP_HEALTH_HTTP, BP_HEALTH_TCP, BP_HEALTH_COMMAND };

/* Default health check timings, applied when a health check is given. */
#define BP_HEALTH_INTERVAL_MS 10000
#define BP_HEALTH_TIMEOUT_MS  5000
#define BP_HEALTH_RETRIES     3
#define BP_WEB_DEFAULT_PORT   3000

struct bp_env {
	char *name;
	char *value; /* the scalar's text as written: `DEBUG: 1` gives "1" */
};

/* One blueprint. Optional strings are NULL when not given. */
struct bp {
	int line, col;		/* start of the document's mapping */
	int nerrors, nwarnings; /* findings reported for this document */
	char *name;
	char *description;
	enum bp_type type;
	enum bp_source source;
	struct {
		enum bp_runtime_type type;
		char *version; /* "3.12" (1-3 dot-separated numbers) or NULL */
	} runtime;
	struct {
		char *url;
		char *branch;	   /* NULL: the remote's default branch */
		char *commit_hash; /* 7-40 hex digits, or NULL */
	} remote;
	char *image;
	char *working_dir; /* relative, no ".." */
	char *static_dir;  /* relative, no ".." */
	char *build_cmd;
	char *run_cmd;
	int port; /* 1-65535; BP_WEB_DEFAULT_PORT for web when not given; else 0 */
	struct {
		enum bp_health_kind kind;
		char *path;    /* BP_HEALTH_HTTP: starts with '/' */
		char *command; /* BP_HEALTH_COMMAND */
		long long interval_ms, timeout_ms, start_period_ms;
		int retries;
	} health_check;
	char **domains; /* `domain: x` gives one entry */
	size_t ndomains;
	struct bp_env *env_vars; /* in document order */
	size_t nenv_vars;
	char **secrets; /* names */
	size_t nsecrets;
	/* Mapping form (a warning): secret_values[i] is the value of
	 * secrets[i]; NULL with the list form. */
	char **secret_values;
	int secrets_have_values;
	int force_rebuild;
	char **instances; /* names or label=value selectors */
	size_t ninstances;
	int replicas; /* default 1 */
	struct {
		unsigned long long memory_bytes; /* 0: no limit */
		int cpu_millis;			 /* 0: no limit; 0.5 CPU is 500 */
		int pids;			 /* 0: no limit */
	} resources;
	enum bp_restart restart; /* default: never for job, else always */
	char *schedule;		 /* 5-field cron expression or @macro (job only) */
	long long timeout_ms;	 /* 0: none */
	struct {
		char *pre_deploy;
		char *post_deploy;
	} hooks;
};

struct bp_file; /* every blueprint of one file */

/* Parse and check `data` (the contents of file `filename`, used in findings).
 * Appends every finding to diags. Never returns NULL. Each mapping document
 * gives one struct bp, valid or not (see nerrors); other documents give
 * none. */
struct bp_file *bp_parse(const char *filename, const char *data, size_t len,
			 struct diag_list *diags);
void bp_file_free(struct bp_file *f);
size_t bp_file_count(const struct bp_file *f);
const struct bp *bp_file_get(const struct bp_file *f, size_t i);

/* Names of enum values as written in blueprints ("web", "on-failure"). */
const char *bp_type_name(enum bp_type t);
const char *bp_source_name(enum bp_source s);
const char *bp_runtime_name(enum bp_runtime_type r);
const char *bp_restart_name(enum bp_restart r);

/* Value syntaxes shared with the rest of dployr. Each returns 0 and the
 * value, or -1 with a reason (lowercase, no subject) in err. */
/* "500ms", "5s", "1m30s", "2h": milliseconds, at most 30 days. */
int bp_parse_duration(const char *s, long long *ms, char *err, size_t errlen);
/* "256M", "1G", "512Mi", "1048576": bytes (K, M, G, T are powers of 1024). */
int bp_parse_memory(const char *s, unsigned long long *bytes, char *err, size_t errlen);
/* 5-field cron (minute hour day-of-month month day-of-week; *, lists,
 * ranges, steps, jan-dec, sun-sat) or @hourly @daily @midnight @weekly
 * @monthly @yearly @annually. */
int bp_check_cron(const char *s, char *err, size_t errlen);

#endif
