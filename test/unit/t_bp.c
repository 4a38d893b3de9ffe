#include "bp.h"

#include <stdio.h>
#include <string.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#include <sanitizer/lsan_interface.h>
#endif
#endif

#include "diag.h"
#include "harness.h"

/* A valid web service; tests append top-level lines to it. */
#define BASE                                                                                       \
	"name: base-app\n"                                                                         \
	"type: web\n"                                                                              \
	"source: remote\n"                                                                         \
	"runtime: {type: nodejs, version: \"22\"}\n"                                               \
	"remote: {url: https://git.example.org/app.git, branch: main}\n"                           \
	"run_cmd: npm start\n"                                                                     \
	"health_check: /healthz\n"

struct t {
	struct diag_list dl;
	struct bp_file *f;
};

static void parse(struct t *t, const char *yaml)
{
	diag_list_init(&t->dl);
	t->f = bp_parse("t.yaml", yaml, strlen(yaml), &t->dl);
	diag_sort(&t->dl);
}

static void done(struct t *t)
{
	bp_file_free(t->f);
	diag_list_release(&t->dl);
}

/* The first finding of rule (at line:col when line > 0), or NULL. */
static const struct diag *find(const struct t *t, const char *rule, int line, int col)
{
	for (size_t i = 0; i < t->dl.n; i++) {
		const struct diag *d = &t->dl.items[i];
		if (strcmp(d->rule, rule) == 0 && (line == 0 || (d->line == line && d->col == col)))
			return d;
	}
	return NULL;
}

static size_t count_rule(const struct t *t, const char *rule)
{
	size_t n = 0;
	for (size_t i = 0; i < t->dl.n; i++)
		n += strcmp(t->dl.items[i].rule, rule) == 0;
	return n;
}

static void dump(const struct t *t)
{
	for (size_t i = 0; i < t->dl.n; i++)
		fprintf(stderr, "  %d:%d %s %s\n", t->dl.items[i].line, t->dl.items[i].col,
			t->dl.items[i].rule, t->dl.items[i].msg);
}

/* Exactly one finding, of rule at line:col, whose message contains frag. */
static int only(const struct t *t, const char *rule, int line, int col, const char *frag)
{
	const struct diag *d = find(t, rule, line, col);
	if (t->dl.n != 1 || !d || (frag && !strstr(d->msg, frag))) {
		fprintf(stderr, "expected only %d:%d %s (%s), got:\n", line, col, rule,
			frag ? frag : "");
		dump(t);
		return 0;
	}
	return 1;
}

static const struct bp *first(const struct t *t)
{
	return bp_file_get(t->f, 0);
}

TEST(bp_rule_table_matches_the_ids)
{
	CHECK_INT(BP_NRULES, 31);
	CHECK_STR(bp_rules[BP_R_YAML_SYNTAX].id, "yaml-syntax");
	CHECK_STR(bp_rules[BP_R_PORT_ENV].id, "port-env");
	CHECK_INT(bp_rules[BP_R_RUNTIME_EOL].severity, DIAG_WARNING);
	CHECK_INT(bp_rules[BP_R_SECRET_IN_ENV].severity, DIAG_ERROR);
	for (int i = 0; i < BP_NRULES; i++) {
		CHECK(bp_rules[i].id && bp_rules[i].summary && *bp_rules[i].summary);
		for (int j = 0; j < i; j++)
			CHECK(strcmp(bp_rules[i].id, bp_rules[j].id) != 0);
	}
}

TEST(bp_valid_blueprint_has_no_findings_and_defaults)
{
	struct t t;
	parse(&t, BASE);
	if (t.dl.n)
		dump(&t);
	CHECK_INT(t.dl.n, 0);
	CHECK_INT(bp_file_count(t.f), 1);
	const struct bp *b = first(&t);
	CHECK_INT(b->nerrors, 0);
	CHECK_INT(b->line, 1);
	CHECK_INT(b->col, 1);
	CHECK_STR(b->name, "base-app");
	CHECK_INT(b->type, BP_TYPE_WEB);
	CHECK_INT(b->source, BP_SOURCE_REMOTE);
	CHECK_INT(b->runtime.type, BP_RUNTIME_NODEJS);
	CHECK_STR(b->runtime.version, "22");
	CHECK_STR(b->remote.url, "https://git.example.org/app.git");
	CHECK_STR(b->remote.branch, "main");
	CHECK(b->remote.commit_hash == NULL);
	CHECK_INT(b->port, 3000);
	CHECK_INT(b->replicas, 1);
	CHECK_INT(b->restart, BP_RESTART_ALWAYS);
	CHECK_INT(b->health_check.kind, BP_HEALTH_HTTP);
	CHECK_STR(b->health_check.path, "/healthz");
	CHECK_INT(b->health_check.interval_ms, 10000);
	CHECK_INT(b->health_check.timeout_ms, 5000);
	CHECK_INT(b->health_check.retries, 3);
	CHECK_INT(b->ndomains, 0);
	CHECK(bp_file_get(t.f, 1) == NULL);
	done(&t);
}

TEST(bp_reads_every_field)
{
	struct t t;
	parse(&t, "name: billing\n"
		  "description: the billing api\n"
		  "type: web\n"
		  "source: remote\n"
		  "runtime: {type: java, version: \"21\"}\n"
		  "remote: {url: 'git@git.example.org:pay/billing.git', branch: feature/x, "
		  "commit_hash: 4F9C2E1A}\n"
		  "working_dir: services/billing\n"
		  "build_cmd: make\n"
		  "run_cmd: ./run\n"
		  "port: 8443\n"
		  "health_check: {path: /up, interval: 1m30s, timeout: 500ms, start_period: 2m, "
		  "retries: 10}\n"
		  "domains: [a.example.org, b.example.org]\n"
		  "env_vars: {B: 0.50, A: true, C: text, D: 010}\n"
		  "secrets: [S1, S2]\n"
		  "force_rebuild: true\n"
		  "instances: [eu-1, region=eu]\n"
		  "replicas: 2\n"
		  "resources: {memory: 512Mi, cpu: 0.25, pids: 100}\n"
		  "restart: on-failure\n"
		  "timeout: 20m\n"
		  "hooks: {pre_deploy: ./migrate, post_deploy: ./notify}\n"
		  "x-team: {any: [thing]}\n");
	if (t.dl.n)
		dump(&t);
	CHECK_INT(t.dl.n, 0);
	const struct bp *b = first(&t);
	CHECK_STR(b->description, "the billing api");
	CHECK_INT(b->runtime.type, BP_RUNTIME_JAVA);
	CHECK_STR(b->remote.url, "git@git.example.org:pay/billing.git");
	CHECK_STR(b->remote.branch, "feature/x");
	CHECK_STR(b->remote.commit_hash, "4F9C2E1A");
	CHECK_STR(b->working_dir, "services/billing");
	CHECK_STR(b->build_cmd, "make");
	CHECK_STR(b->run_cmd, "./run");
	CHECK_INT(b->port, 8443);
	CHECK_INT(b->health_check.interval_ms, 90000);
	CHECK_INT(b->health_check.timeout_ms, 500);
	CHECK_INT(b->health_check.start_period_ms, 120000);
	CHECK_INT(b->health_check.retries, 10);
	CHECK_INT(b->ndomains, 2);
	CHECK_STR(b->domains[1], "b.example.org");
	CHECK_INT(b->nenv_vars, 4);
	CHECK_STR(b->env_vars[0].name, "B");	 /* document order */
	CHECK_STR(b->env_vars[0].value, "0.50"); /* text as written */
	CHECK_STR(b->env_vars[1].value, "true");
	CHECK_STR(b->env_vars[3].value, "010");
	CHECK_INT(b->nsecrets, 2);
	CHECK_STR(b->secrets[1], "S2");
	CHECK(b->secret_values == NULL);
	CHECK_INT(b->secrets_have_values, 0);
	CHECK_INT(b->force_rebuild, 1);
	CHECK_INT(b->ninstances, 2);
	CHECK_STR(b->instances[1], "region=eu");
	CHECK_INT(b->replicas, 2);
	CHECK_INT(b->resources.memory_bytes, 512ULL << 20);
	CHECK_INT(b->resources.cpu_millis, 250);
	CHECK_INT(b->resources.pids, 100);
	CHECK_INT(b->restart, BP_RESTART_ON_FAILURE);
	CHECK_INT(b->timeout_ms, 20 * 60 * 1000);
	CHECK_STR(b->hooks.pre_deploy, "./migrate");
	CHECK_STR(b->hooks.post_deploy, "./notify");
	done(&t);
}

TEST(bp_job_and_static_defaults)
{
	struct t t;
	parse(&t, "name: nightly\ntype: job\nsource: upload\nruntime: python@3.13\n"
		  "run_cmd: ./x\nschedule: '@daily'\n---\n"
		  "name: site\ntype: static\nsource: upload\nruntime: static\nstatic_dir: dist\n"
		  "domain: www.example.org\n");
	CHECK_INT(t.dl.n, 0);
	CHECK_INT(bp_file_count(t.f), 2);
	const struct bp *job = bp_file_get(t.f, 0), *site = bp_file_get(t.f, 1);
	CHECK_INT(job->restart, BP_RESTART_NEVER);
	CHECK_INT(job->port, 0);
	CHECK_STR(job->schedule, "@daily");
	CHECK_STR(job->runtime.version, "3.13");
	CHECK_INT(job->health_check.kind, BP_HEALTH_NONE);
	CHECK_INT(site->type, BP_TYPE_STATIC);
	CHECK_INT(site->line, 8);
	CHECK_STR(site->static_dir, "dist");
	CHECK_INT(site->ndomains, 1);
	CHECK_STR(site->domains[0], "www.example.org");
	CHECK(site->runtime.version == NULL); /* static needs none: no warning */
	done(&t);
}

TEST(bp_yaml_problems_become_findings_and_stop_the_checks)
{
	struct t t;
	parse(&t, "name: x\ntype: [web\n");
	CHECK(find(&t, "yaml-syntax", 0, 0));
	CHECK(!find(&t, "required", 0, 0)); /* a cut document is not judged */
	CHECK_INT(bp_file_count(t.f), 0);
	done(&t);

	parse(&t, BASE "name: again\n");
	CHECK(only(&t, "duplicate-key", 8, 1, "name"));
	CHECK_STR(first(&t)->name, "base-app");
	done(&t);

	char deep[300];
	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	strcpy(deep + 200, "\n");
	parse(&t, deep);
	CHECK(find(&t, "yaml-limits", 0, 0));
	done(&t);
}

TEST(bp_not_mapping)
{
	struct t t;
	parse(&t, "- a\n- b\n---\nplain\n---\n" BASE);
	CHECK(find(&t, "not-mapping", 1, 1));
	CHECK(find(&t, "not-mapping", 4, 1));
	CHECK_INT(t.dl.n, 2);
	CHECK_INT(bp_file_count(t.f), 1);
	done(&t);

	parse(&t, "# nothing\n");
	CHECK(only(&t, "not-mapping", 1, 1, "no blueprint"));
	done(&t);
}

TEST(bp_required_fields_at_the_document)
{
	struct t t;
	parse(&t, "---\n  description: x\n");
	CHECK_INT(count_rule(&t, "required"), 4);
	CHECK_INT(t.dl.n, 4);
	CHECK(find(&t, "required", 2, 3));
	done(&t);

	parse(&t, "name: st\ntype: static\nsource: upload\nruntime: static\n");
	CHECK(only(&t, "required", 1, 1, "`static_dir`"));
	done(&t);

	parse(&t, "name: wk\ntype: worker\nsource: upload\nruntime: python@3.13\n");
	CHECK(only(&t, "required", 1, 1, "`run_cmd`"));
	done(&t);

	/* an image brings its own command */
	parse(&t, "name: wk\ntype: worker\nsource: image\nruntime: docker\nimage: nginx\n");
	CHECK_INT(t.dl.n, 0);
	done(&t);

	parse(&t, "name: wk\ntype: worker\nsource: image\nruntime: docker\n");
	CHECK(only(&t, "required", 1, 1, "`image`"));
	done(&t);

	parse(&t, "name: wk\ntype: worker\nsource: remote\nruntime: python@3.13\nrun_cmd: x\n");
	CHECK(only(&t, "required", 1, 1, "`remote`"));
	done(&t);

	parse(&t, "name: wk\ntype: worker\nsource: remote\nruntime: python@3.13\nrun_cmd: x\n"
		  "remote: {branch: main}\n");
	CHECK(only(&t, "required", 6, 9, "`url`"));
	done(&t);
}

TEST(bp_unknown_keys_with_suggestions)
{
	struct t t;
	parse(&t, BASE "health_chek: /x\n");
	CHECK(only(&t, "unknown-key", 8, 1,
		   "unknown key `health_chek`; did you mean `health_check`?"));
	done(&t);

	parse(&t, BASE "database: pg\nx-mine: {a: 1}\nresources: {memroy: 1G}\n");
	CHECK(find(&t, "unknown-key", 8, 1));
	CHECK(strstr(find(&t, "unknown-key", 8, 1)->msg, "`x-`"));
	CHECK(find(&t, "unknown-key", 10, 13));
	CHECK(strstr(find(&t, "unknown-key", 10, 13)->msg, "did you mean `memory`?"));
	CHECK_INT(t.dl.n, 2);
	done(&t);
}

TEST(bp_wrong_types_name_the_expected_type)
{
	struct t t;
	parse(&t, BASE "port: \"3000\"\n");
	CHECK(only(&t, "type", 8, 7, "`port` must be an integer, not a string"));
	done(&t);

	parse(&t, BASE "force_rebuild: yes\n");
	CHECK(only(&t, "type", 8, 16, "must be a boolean"));
	done(&t);

	parse(&t, BASE "env_vars: {A: [1]}\n");
	CHECK(only(&t, "type", 8, 15, "`env_vars.A` must be a scalar"));
	done(&t);

	parse(&t, BASE "build_cmd: {a: b}\n");
	CHECK(only(&t, "type", 8, 12, "`build_cmd` must be a string, not a mapping"));
	done(&t);
}

TEST(bp_every_problem_is_reported)
{
	struct t t;
	parse(&t,
	      "name: Bad_Name\ntype: wbe\nsource: remote\nruntime: {type: nodejs, version: 3.10}\n"
	      "remote: {url: http://x.org/a.git, branch: -x, commit_hash: zz}\n"
	      "run_cmd: x\nport: 0\nhealth_check: healthz\n");
	CHECK(find(&t, "name", 1, 7));
	CHECK(find(&t, "enum", 2, 7));
	CHECK(find(&t, "runtime-version", 4, 34));
	CHECK(find(&t, "remote-url", 5, 15));
	CHECK(find(&t, "git-ref", 5, 43));
	CHECK(find(&t, "commit-hash", 5, 60));
	CHECK(find(&t, "range", 7, 7));
	CHECK(find(&t, "health-check", 8, 15));
	CHECK_INT(first(&t)->nerrors, 8);
	CHECK_INT(t.dl.n, 8);
	done(&t);
}

TEST(bp_enum_values)
{
	struct t t;
	parse(&t, "name: ab\ntype: wrker\nsource: upload\nruntime: python@3.13\nrun_cmd: x\n"
		  "restart: on_failure\n");
	CHECK(find(&t, "enum", 2, 7));
	CHECK(strstr(find(&t, "enum", 2, 7)->msg, "did you mean `worker`?"));
	CHECK(find(&t, "enum", 6, 10));
	CHECK(strstr(find(&t, "enum", 6, 10)->msg, "`on-failure`"));
	CHECK_INT(t.dl.n, 2);
	done(&t);

	parse(&t, "name: ab\ntype: worker\nsource: upload\nruntime: go@1.25\nrun_cmd: x\n");
	CHECK(only(&t, "enum", 4, 10, "did you mean `golang`?"));
	done(&t);
}

TEST(bp_ranges)
{
	struct t t;
	parse(&t, BASE "port: 65536\n");
	CHECK(only(&t, "range", 8, 7, "1 to 65535"));
	done(&t);
	parse(&t, BASE "port: 65535\nreplicas: 100\n");
	CHECK_INT(t.dl.n, 0);
	CHECK_INT(first(&t)->port, 65535);
	done(&t);
	parse(&t, BASE "port: 99999999999999999999999\n");
	CHECK(only(&t, "range", 8, 7, "too large"));
	done(&t);
	parse(&t, BASE "port: 80.5\n");
	CHECK(only(&t, "type", 8, 7, "must be an integer, not a decimal number"));
	done(&t);
	parse(&t, BASE "replicas: 101\n");
	CHECK(only(&t, "range", 8, 11, NULL));
	done(&t);
	parse(&t, "name: ab\ntype: web\nsource: upload\nruntime: python@3.13\nrun_cmd: x\n"
		  "health_check: {tcp: true, retries: 0}\n");
	CHECK(only(&t, "range", 6, 36, NULL));
	done(&t);
}

static void name_case(const char *name, int ok)
{
	char y[512];
	struct t t;
	snprintf(y, sizeof y,
		 "name: %s\ntype: worker\nsource: upload\nruntime: python@3.13\n"
		 "run_cmd: x\n",
		 name);
	parse(&t, y);
	if (ok) {
		if (t.dl.n)
			dump(&t);
		CHECK_INT(t.dl.n, 0);
	} else {
		CHECK(only(&t, "name", 1, 7, NULL));
	}
	done(&t);
}

TEST(bp_name_is_a_dns_label)
{
	name_case("ab", 1);
	name_case("a-1-b", 1);
	name_case("a23456789012345678901234567890123456789012345678901234567890123", 1);
	name_case("a234567890123456789012345678901234567890123456789012345678901234", 0);
	name_case("a", 0);
	name_case("Ab", 0);
	name_case("1ab", 0);
	name_case("ab-", 0);
	name_case("a--b", 0);
	name_case("a_b", 0);
	name_case("a.b", 0);
}

static void runtime_case(const char *rt, const char *rule, const char *version)
{
	char y[512];
	struct t t;
	snprintf(y, sizeof y, "name: ab\ntype: worker\nsource: upload\n%s\nrun_cmd: x\n", rt);
	parse(&t, y);
	if (!rule) {
		if (t.dl.n)
			dump(&t);
		CHECK_INT(t.dl.n, 0);
		CHECK_STR(first(&t)->runtime.version, version);
	} else {
		CHECK_INT(count_rule(&t, rule), 1);
		if (t.dl.n != 1)
			dump(&t);
		CHECK_INT(t.dl.n, 1);
		if (strcmp(rule, "runtime-version") == 0)
			CHECK(first(&t)->runtime.version == NULL);
	}
	done(&t);
}

TEST(bp_runtime_forms_and_versions)
{
	runtime_case("runtime: {type: python, version: \"3.12\"}", NULL, "3.12");
	runtime_case("runtime: python@3.12.7", NULL, "3.12.7");
	runtime_case("runtime: python\nversion: \"3.20\"", NULL, "3.20");
	runtime_case("runtime: {type: python, version: '3.20'}", NULL, "3.20");
	/* plain numbers that read back unchanged are accepted */
	runtime_case("runtime: {type: nodejs, version: 22}", NULL, "22");
	runtime_case("runtime: {type: python, version: 3.12}", NULL, "3.12");
	runtime_case("runtime: {type: python, version: 3.20.2}", NULL, "3.20.2");
	/* plain numbers YAML changes are errors */
	runtime_case("runtime: {type: python, version: 3.10}", "runtime-version", NULL);
	runtime_case("runtime: {type: python, version: 3.0}", "runtime-version", NULL);
	runtime_case("runtime: python\nversion: 3.10", "runtime-version", NULL);
	runtime_case("runtime: {type: nodejs, version: 020}", "runtime-version", NULL);
	/* not versions */
	runtime_case("runtime: {type: nodejs, version: \"v20\"}", "runtime-version", NULL);
	runtime_case("runtime: {type: nodejs, version: \"20.\"}", "runtime-version", NULL);
	runtime_case("runtime: {type: nodejs, version: \"1.2.3.4\"}", "runtime-version", NULL);
	runtime_case("runtime: {type: nodejs, version: 1e3}", "runtime-version", NULL);
	runtime_case("runtime: {type: nodejs, version: 0x1f}", "runtime-version", NULL);
	runtime_case("runtime: {type: nodejs, version: .5}", "runtime-version", NULL);
	runtime_case("runtime: nodejs@", "runtime-version", NULL);
	runtime_case("runtime: nodejs@lts", "runtime-version", NULL);
	runtime_case("runtime: {type: nodejs, version: true}", "type", NULL);
	runtime_case("runtime: [nodejs]", "type", NULL);
	/* the flat version only goes with a plain runtime string */
	runtime_case("runtime: {type: nodejs, version: \"22\"}\nversion: \"22\"", "unknown-key",
		     NULL);
	runtime_case("runtime: nodejs@22\nversion: \"22\"", "exclusive", NULL);
}

TEST(bp_runtime_version_message_explains_yaml)
{
	struct t t;
	parse(&t, "name: ab\ntype: worker\nsource: upload\nruntime: {type: python, version: 3.10}\n"
		  "run_cmd: x\n");
	CHECK(only(&t, "runtime-version", 4, 34, "read by YAML as the number 3.1; quote it"));
	done(&t);
}

TEST(bp_version_unpinned_and_eol)
{
	struct t t;
	parse(&t, "name: ab\ntype: worker\nsource: upload\nruntime: python\nrun_cmd: x\n");
	CHECK(only(&t, "version-unpinned", 4, 10, NULL));
	CHECK_INT(first(&t)->nwarnings, 1);
	CHECK_INT(first(&t)->nerrors, 0);
	done(&t);

	parse(&t, "name: ab\ntype: worker\nsource: upload\nruntime: {type: ruby}\nrun_cmd: x\n");
	CHECK(only(&t, "version-unpinned", 4, 10, NULL));
	done(&t);

	parse(&t, "name: ab\ntype: worker\nsource: image\nruntime: docker\nimage: redis:7\n");
	CHECK_INT(t.dl.n, 0);
	done(&t);

	const char *old[] = {"python@2.7", "python@3.6.15", "nodejs@10",   "nodejs@17.1",
			     "php@5.6",	   "ruby@2.7",	    "golang@1.19", "java@7",
			     "java@1.7",   "dotnet@5.0",    "python@2"};
	for (size_t i = 0; i < sizeof old / sizeof *old; i++) {
		char y[256];
		snprintf(y, sizeof y,
			 "name: ab\ntype: worker\nsource: upload\nruntime: %s\nrun_cmd: x\n",
			 old[i]);
		parse(&t, y);
		if (!only(&t, "runtime-eol", 4, 10, "end of life"))
			CHECK(!old[i]);
		done(&t);
	}
	const char *fine[] = {"python@3.13", "python@3",    "nodejs@22",   "nodejs@24.1",
			      "php@8.4",     "ruby@3.4",    "golang@1.25", "java@21",
			      "java@1.8",    "dotnet@10.0", "golang@1"};
	for (size_t i = 0; i < sizeof fine / sizeof *fine; i++) {
		char y[256];
		snprintf(y, sizeof y,
			 "name: ab\ntype: worker\nsource: upload\nruntime: %s\nrun_cmd: x\n",
			 fine[i]);
		parse(&t, y);
		if (t.dl.n) {
			dump(&t);
			CHECK(!fine[i]);
		}
		done(&t);
	}
}

static void remote_case(const char *remote, const char *rule)
{
	char y[512];
	struct t t;
	snprintf(y, sizeof y,
		 "name: ab\ntype: worker\nsource: remote\nruntime: python@3.13\n"
		 "run_cmd: x\nremote: %s\n",
		 remote);
	parse(&t, y);
	if (!rule) {
		if (t.dl.n)
			dump(&t);
		CHECK_INT(t.dl.n, 0);
	} else {
		if (t.dl.n != 1 || !find(&t, rule, 0, 0))
			dump(&t);
		CHECK_INT(t.dl.n, 1);
		CHECK(find(&t, rule, 0, 0));
	}
	done(&t);
}

TEST(bp_remote_urls)
{
	remote_case("{url: https://git.example.org/a/b.git}", NULL);
	remote_case("{url: 'https://user@git.example.org:8443/a'}", NULL);
	remote_case("{url: 'git@github.com:org/repo.git'}", NULL);
	remote_case("{url: 'deploy@git.example.org:repo'}", NULL);
	remote_case("{url: 'ssh://git@git.example.org:2222/org/repo.git'}", NULL);
	remote_case("{url: 'file:///srv/git/repo.git'}", NULL);
	remote_case("{url: http://git.example.org/a.git}", "remote-url");
	remote_case("{url: 'ftp://git.example.org/a.git'}", "remote-url");
	remote_case("{url: 'https://'}", "remote-url");
	remote_case("{url: 'https://host'}", "remote-url");
	remote_case("{url: 'file://relative'}", "remote-url");
	remote_case("{url: 'git@host'}", "remote-url");
	remote_case("{url: 'git@host:'}", "remote-url");
	remote_case("{url: 'git@-oProxyCommand=x:repo'}", "remote-url");
	remote_case("{url: 'ssh://-oProxyCommand=x/repo'}", "remote-url");
	remote_case("{url: '-uhttps://x/y'}", "remote-url");
	remote_case("{url: 'https://host/a b'}", "remote-url");
	remote_case("{url: 'some/path'}", "remote-url");
	remote_case("{url: 42}", "type");
	remote_case("https://git.example.org/a.git", "type");
}

TEST(bp_branches_follow_git_check_ref_format)
{
	const char *good[] = {"main", "release/2.x", "feature/a-b_c", "v1.2.3", "a@b", "HEAD"};
	const char *bad[] = {"-main",  "a..b",	   "a b",	"a~1", "a^",	"a:b",	"a?",
			     "a*",     "a[b",	   "a\\\\b",	"a/",  "/a",	"a//b", "a.",
			     "a.lock", "a.lock/b", "x/.hidden", ".a",  "a@{1}", "@",	"\\t"};
	char r[128];
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		snprintf(r, sizeof r, "{url: 'https://h/r', branch: \"%s\"}", good[i]);
		remote_case(r, NULL);
	}
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		snprintf(r, sizeof r, "{url: 'https://h/r', branch: \"%s\"}", bad[i]);
		remote_case(r, "git-ref");
	}
	struct t t;
	parse(&t, "name: ab\ntype: worker\nsource: remote\nruntime: python@3.13\nrun_cmd: x\n"
		  "remote: {url: 'https://h/r', branch: '--upload-pack=x'}\n");
	CHECK(only(&t, "git-ref", 6, 38, "option"));
	done(&t);
}

TEST(bp_commit_hashes)
{
	remote_case("{url: 'https://h/r', commit_hash: 4f9c2e1}", NULL);
	remote_case("{url: 'https://h/r', commit_hash: 1234567}", NULL); /* a plain int */
	remote_case("{url: 'https://h/r', commit_hash: 0123456789abcdef0123456789abcdef01234567}",
		    NULL);
	remote_case("{url: 'https://h/r', commit_hash: 4f9c2e}", "commit-hash");
	remote_case("{url: 'https://h/r', commit_hash: 0123456789abcdef0123456789abcdef012345678}",
		    "commit-hash");
	remote_case("{url: 'https://h/r', commit_hash: 4f9c2eg}", "commit-hash");
	remote_case("{url: 'https://h/r', commit_hash: true}", "type");
}

static void image_case(const char *image, int ok)
{
	char y[512];
	struct t t;
	snprintf(y, sizeof y,
		 "name: ab\ntype: worker\nsource: image\nruntime: docker\nimage: \"%s\"\n", image);
	parse(&t, y);
	if (ok) {
		if (t.dl.n)
			dump(&t);
		CHECK_INT(t.dl.n, 0);
		CHECK_STR(first(&t)->image, image);
	} else {
		CHECK(only(&t, "image-ref", 5, 8, NULL));
	}
	done(&t);
}

TEST(bp_image_references)
{
	image_case("nginx", 1);
	image_case("nginx:1.27-alpine", 1);
	image_case("library/nginx:latest", 1);
	image_case("registry.example.org/team/app", 1);
	image_case("localhost:5000/app:dev", 1);
	image_case("ghcr.io/o/my_app__x-y.z:v1", 1);
	image_case("nginx@sha256:0f3e9c9f2c3b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6",
		   1);
	image_case("Nginx", 0);
	image_case("", 0);
	image_case("nginx:", 0);
	image_case("nginx:.bad", 0);
	image_case("ng inx", 0);
	image_case("/nginx", 0);
	image_case("nginx/", 0);
	image_case("-nginx", 0);
	image_case("a_-b", 0);
	image_case("host:abc/app", 0);
	image_case("nginx@sha256:0F3E", 0);
	image_case("nginx@md5:0f3e9c9f2c3b4d5e6f708192a3b4c5d6", 0);
}

TEST(bp_source_and_type_constraints)
{
	struct t t;
	parse(&t, "name: ab\ntype: worker\nsource: image\nruntime: docker\nimage: nginx\n"
		  "remote: {url: 'https://h/r'}\n");
	CHECK(only(&t, "exclusive", 6, 1, "`image` and `remote`"));
	done(&t);

	parse(
	    &t,
	    "name: ab\ntype: worker\nsource: upload\nruntime: docker\nimage: nginx\nrun_cmd: x\n");
	CHECK(only(&t, "not-for-type", 5, 1, "`source: image`"));
	done(&t);

	parse(&t, "name: ab\ntype: worker\nsource: upload\nruntime: python@3.13\nrun_cmd: x\n"
		  "remote: {url: 'https://h/r'}\n");
	CHECK(only(&t, "not-for-type", 6, 1, "`source: remote`"));
	done(&t);

	parse(&t, "name: ab\ntype: worker\nsource: image\nruntime: python@3.13\nimage: python\n");
	CHECK(only(&t, "not-for-type", 4, 1, "`runtime: docker`"));
	done(&t);

	parse(&t, "name: ab\ntype: worker\nsource: upload\nruntime: python@3.13\nrun_cmd: x\n"
		  "port: 80\nreplicas: 2\n");
	CHECK(only(&t, "not-for-type", 6, 1, "`port`"));
	CHECK_INT(first(&t)->port, 0);
	CHECK_INT(first(&t)->replicas, 2);
	done(&t);

	parse(&t, "name: ab\ntype: job\nsource: upload\nruntime: python@3.13\nrun_cmd: x\n"
		  "replicas: 2\n");
	CHECK(only(&t, "not-for-type", 6, 1, "`replicas`"));
	done(&t);

	parse(&t, "name: ab\ntype: static\nsource: upload\nruntime: static\nstatic_dir: .\n"
		  "port: 80\n");
	CHECK(only(&t, "not-for-type", 6, 1, "`port`"));
	done(&t);

	parse(&t, BASE "schedule: '0 * * * *'\n");
	CHECK(only(&t, "not-for-type", 8, 1, "`schedule`"));
	done(&t);

	parse(&t, "name: ab\ntype: worker\nsource: upload\nruntime: python@3.13\nrun_cmd: x\n"
		  "domains: [a.example.org]\n");
	CHECK(only(&t, "not-for-type", 6, 1, "`domains`"));
	done(&t);

	parse(&t, "name: ab\ntype: worker\nsource: upload\nruntime: python@3.13\nrun_cmd: x\n"
		  "health_check: /up\n");
	CHECK(only(&t, "not-for-type", 6, 1, "no port"));
	done(&t);

	parse(&t, "name: ab\ntype: worker\nsource: upload\nruntime: python@3.13\nrun_cmd: x\n"
		  "health_check: {command: ./alive}\n");
	CHECK_INT(t.dl.n, 0);
	done(&t);

	parse(&t, "name: ab\ntype: job\nsource: upload\nruntime: python@3.13\nrun_cmd: x\n"
		  "health_check: {command: ./alive}\n");
	CHECK(only(&t, "not-for-type", 6, 1, "`type: job`"));
	done(&t);

	parse(&t, "name: ab\ntype: worker\nsource: image\nruntime: docker\nimage: a\n"
		  "build_cmd: make\nworking_dir: x\n");
	CHECK(find(&t, "not-for-type", 6, 1));
	CHECK(find(&t, "not-for-type", 7, 1));
	CHECK_INT(t.dl.n, 2);
	done(&t);
}

TEST(bp_paths_stay_inside)
{
	struct t t;
	parse(&t, BASE "working_dir: a/../../b\n");
	CHECK(only(&t, "path", 8, 14, "`..`"));
	done(&t);
	parse(&t, BASE "working_dir: /srv\n");
	CHECK(only(&t, "path", 8, 14, "absolute"));
	done(&t);
	parse(&t, BASE "working_dir: ..\n");
	CHECK(only(&t, "path", 8, 14, NULL));
	done(&t);
	parse(&t, BASE "working_dir: a/..b/c..\nstatic_dir: ./dist\n");
	CHECK_INT(t.dl.n, 0);
	CHECK_STR(first(&t)->working_dir, "a/..b/c..");
	done(&t);
}

TEST(bp_health_checks)
{
	struct t t;
	parse(&t, BASE);
	done(&t);
	const char *base_nohc =
	    "name: ab\ntype: web\nsource: upload\nruntime: python@3.13\nrun_cmd: x\n";
	char y[512];
	snprintf(y, sizeof y, "%shealth_check: https://example.org/healthz\n", base_nohc);
	parse(&t, y);
	CHECK(only(&t, "health-check", 6, 15, "full url"));
	done(&t);
	snprintf(y, sizeof y, "%shealth_check: healthz\n", base_nohc);
	parse(&t, y);
	CHECK(only(&t, "health-check", 6, 15, "start with '/'"));
	done(&t);
	snprintf(y, sizeof y, "%shealth_check: {}\n", base_nohc);
	parse(&t, y);
	CHECK(only(&t, "required", 6, 15, NULL));
	done(&t);
	snprintf(y, sizeof y, "%shealth_check: {tcp: true, command: ./check}\n", base_nohc);
	parse(&t, y);
	CHECK(only(&t, "exclusive", 6, 27, NULL));
	done(&t);
	snprintf(y, sizeof y, "%shealth_check: {command: ./check, timeout: 3s}\n", base_nohc);
	parse(&t, y);
	CHECK_INT(t.dl.n, 0);
	CHECK_INT(first(&t)->health_check.kind, BP_HEALTH_COMMAND);
	CHECK_STR(first(&t)->health_check.command, "./check");
	CHECK_INT(first(&t)->health_check.timeout_ms, 3000);
	done(&t);
	snprintf(y, sizeof y, "%shealth_check: {tcp: true}\n", base_nohc);
	parse(&t, y);
	CHECK_INT(t.dl.n, 0);
	CHECK_INT(first(&t)->health_check.kind, BP_HEALTH_TCP);
	done(&t);
}

TEST(bp_no_health_check_warns_for_web_only)
{
	struct t t;
	parse(&t, "\n\nname: ab\ntype: web\nsource: upload\nruntime: python@3.13\nrun_cmd: x\n");
	CHECK(only(&t, "no-health-check", 3, 1, NULL));
	CHECK_INT(first(&t)->nerrors, 0);
	done(&t);
	parse(&t, "name: ab\ntype: worker\nsource: upload\nruntime: python@3.13\nrun_cmd: x\n");
	CHECK_INT(t.dl.n, 0);
	done(&t);
}

static void domain_case(const char *d, int ok)
{
	char y[700];
	struct t t;
	snprintf(y, sizeof y, BASE "domain: \"%s\"\n", d);
	parse(&t, y);
	if (ok) {
		if (t.dl.n)
			dump(&t);
		CHECK_INT(t.dl.n, 0);
		CHECK_STR(first(&t)->domains[0], d);
	} else {
		CHECK(only(&t, "domain", 8, 9, NULL));
	}
	done(&t);
}

TEST(bp_domains_are_hostnames)
{
	char label63[64], label64[65], long254[300];
	memset(label63, 'a', 63);
	label63[63] = 0;
	memset(label64, 'a', 64);
	label64[64] = 0;
	domain_case("example.org", 1);
	domain_case("a-b.c1.example.org", 1);
	domain_case("Example.ORG", 1);
	char ok63[80];
	snprintf(ok63, sizeof ok63, "%s.org", label63);
	domain_case(ok63, 1);
	snprintf(ok63, sizeof ok63, "%s.org", label64);
	domain_case(ok63, 0);
	long254[0] = 0;
	while (strlen(long254) < 251)
		strcat(long254, "abcdefghi.");
	strcat(long254, "org");
	domain_case(long254, 0);
	domain_case("https://example.org", 0);
	domain_case("example.org:443", 0);
	domain_case("example.org/x", 0);
	domain_case("localhost", 0);
	domain_case("a..org", 0);
	domain_case(".example.org", 0);
	domain_case("example.org.", 0);
	domain_case("-a.org", 0);
	domain_case("a-.org", 0);
	domain_case("a_b.org", 0);
	domain_case("", 0);

	struct t t;
	parse(&t, BASE "domain: a.example.org\ndomains: [b.example.org]\n");
	CHECK(only(&t, "exclusive", 9, 1, "`domain` and `domains`"));
	done(&t);
}

TEST(bp_env_vars_and_secrets)
{
	struct t t;
	parse(&t, BASE "env_vars: {GOOD_1: a, 1BAD: b, B-AD: c, _ok: d, EMPTY: }\n");
	CHECK(find(&t, "env-name", 8, 23));
	CHECK(find(&t, "env-name", 8, 32));
	CHECK(find(&t, "type", 8, 49));
	CHECK_INT(t.dl.n, 3);
	CHECK_INT(first(&t)->nenv_vars, 2);
	CHECK_STR(first(&t)->env_vars[1].name, "_ok");
	done(&t);

	parse(&t, BASE "env_vars:\n  PORT: 8080\n");
	CHECK(only(&t, "port-env", 9, 3, "`PORT`"));
	done(&t);

	parse(&t, BASE "env_vars: {A: 1, TOKEN: x}\nsecrets: [TOKEN, B, 9x]\n");
	CHECK(find(&t, "secret-in-env", 9, 11));
	CHECK(find(&t, "env-name", 9, 21));
	CHECK_INT(t.dl.n, 2);
	CHECK_INT(first(&t)->nsecrets, 2);
	done(&t);

	parse(&t, BASE "secrets:\n  API_KEY: hunter2\n  OTHER:\n");
	CHECK(only(&t, "secret-value", 8, 1, "committed"));
	const struct bp *b = first(&t);
	CHECK_INT(b->secrets_have_values, 1);
	CHECK_INT(b->nsecrets, 2);
	CHECK_STR(b->secrets[0], "API_KEY");
	CHECK_STR(b->secret_values[0], "hunter2");
	CHECK_STR(b->secret_values[1], "");
	done(&t);

	parse(&t, BASE "secrets: TOKEN\n");
	CHECK(only(&t, "type", 8, 10, "list"));
	done(&t);
}

TEST(bp_durations)
{
	char err[128];
	long long ms = -1;
	CHECK_INT(bp_parse_duration("500ms", &ms, err, sizeof err), 0);
	CHECK_INT(ms, 500);
	CHECK_INT(bp_parse_duration("5s", &ms, err, sizeof err), 0);
	CHECK_INT(ms, 5000);
	CHECK_INT(bp_parse_duration("1m30s", &ms, err, sizeof err), 0);
	CHECK_INT(ms, 90000);
	CHECK_INT(bp_parse_duration("2h", &ms, err, sizeof err), 0);
	CHECK_INT(ms, 7200000);
	CHECK_INT(bp_parse_duration("1h1m1s1ms", &ms, err, sizeof err), 0);
	CHECK_INT(ms, 3661001);
	CHECK_INT(bp_parse_duration("0s", &ms, err, sizeof err), 0);
	CHECK_INT(ms, 0);
	CHECK_INT(bp_parse_duration("720h", &ms, err, sizeof err), 0);
	CHECK_INT(bp_parse_duration("721h", &ms, err, sizeof err), -1);
	CHECK(strstr(err, "too long"));
	CHECK_INT(bp_parse_duration("99999999999999999999999s", &ms, err, sizeof err), -1);
	CHECK_INT(bp_parse_duration("10", &ms, err, sizeof err), -1);
	CHECK(strstr(err, "no unit"));
	CHECK_INT(bp_parse_duration("", &ms, err, sizeof err), -1);
	CHECK_INT(bp_parse_duration("5 s", &ms, err, sizeof err), -1);
	CHECK_INT(bp_parse_duration("1d", &ms, err, sizeof err), -1);
	CHECK_INT(bp_parse_duration("s", &ms, err, sizeof err), -1);
	CHECK_INT(bp_parse_duration("-5s", &ms, err, sizeof err), -1);
	CHECK_INT(bp_parse_duration("1.5s", &ms, err, sizeof err), -1);

	struct t t;
	parse(&t, BASE "timeout: 90\n");
	CHECK(only(&t, "duration", 8, 10, "no unit"));
	done(&t);
	parse(&t, BASE "timeout: 0s\n");
	CHECK(only(&t, "duration", 8, 10, NULL));
	done(&t);
}

TEST(bp_memory_sizes_and_resources)
{
	char err[128];
	unsigned long long b = 0;
	CHECK_INT(bp_parse_memory("256M", &b, err, sizeof err), 0);
	CHECK_INT(b, 256ULL << 20);
	CHECK_INT(bp_parse_memory("1G", &b, err, sizeof err), 0);
	CHECK_INT(b, 1ULL << 30);
	CHECK_INT(bp_parse_memory("512Mi", &b, err, sizeof err), 0);
	CHECK_INT(b, 512ULL << 20);
	CHECK_INT(bp_parse_memory("64kB", &b, err, sizeof err), 0);
	CHECK_INT(b, 64ULL << 10);
	CHECK_INT(bp_parse_memory("1048576", &b, err, sizeof err), 0);
	CHECK_INT(b, 1048576);
	CHECK_INT(bp_parse_memory("0M", &b, err, sizeof err), -1);
	CHECK_INT(bp_parse_memory("1.5G", &b, err, sizeof err), -1);
	CHECK_INT(bp_parse_memory("1X", &b, err, sizeof err), -1);
	CHECK_INT(bp_parse_memory("M", &b, err, sizeof err), -1);
	CHECK_INT(bp_parse_memory("99999999999999999999T", &b, err, sizeof err), -1);
	CHECK_INT(bp_parse_memory("2000000T", &b, err, sizeof err), -1);

	struct t t;
	parse(&t, BASE "resources: {cpu: 500m, memory: 2G}\n");
	CHECK_INT(t.dl.n, 0);
	CHECK_INT(first(&t)->resources.cpu_millis, 500);
	CHECK_INT(first(&t)->resources.memory_bytes, 2ULL << 30);
	done(&t);
	parse(&t, BASE "resources: {cpu: 2}\n");
	CHECK_INT(first(&t)->resources.cpu_millis, 2000);
	done(&t);
	parse(&t, BASE "resources: {cpu: 0.0001}\n");
	CHECK(only(&t, "resources", 8, 18, NULL));
	done(&t);
	parse(&t, BASE "resources: {cpu: 0}\n");
	CHECK(only(&t, "resources", 8, 18, NULL));
	done(&t);
	parse(&t, BASE "resources: {memory: lots}\n");
	CHECK(only(&t, "resources", 8, 21, NULL));
	done(&t);
	parse(&t, BASE "resources: {pids: 0}\n");
	CHECK(only(&t, "resources", 8, 19, NULL));
	done(&t);
	parse(&t, BASE "resources: {pids: many}\n");
	CHECK(only(&t, "type", 8, 19, NULL));
	done(&t);
}

TEST(bp_cron_expressions)
{
	char err[128];
	const char *good[] = {
	    "* * * * *",       "*/5 * * * *",	 "0 3 * * *", "0,30 1-5 * * mon-fri",
	    "0 0 1 jan,jul *", "15 14 1 * 0",	 "0 0 * * 7", "0 0 1-31/2 * SUN",
	    "@hourly",	       "@daily",	 "@yearly",   "5 4 * * sun",
	    "0 22 * * 1-5",    "23 0-20/2 * * *"};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		if (bp_check_cron(good[i], err, sizeof err) != 0)
			fprintf(stderr, "%s: %s\n", good[i], err);
		CHECK_INT(bp_check_cron(good[i], err, sizeof err), 0);
	}
	const char *bad[] = {"",	   "* * * *",	   "* * * * * *", "60 * * * *",
			     "* 24 * * *", "* * 0 * *",	   "* * 32 * *",  "* * * 13 *",
			     "* * * * 8",  "5-1 * * * *",  "*/0 * * * *", "*/61 * * * *",
			     "a * * * *",  "1,,2 * * * *", ", * * * *",	  "* * * foo *",
			     "@often",	   "1- * * * *",   "*/ * * * *",  "* * * * monday"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		if (bp_check_cron(bad[i], err, sizeof err) == 0)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		CHECK_INT(bp_check_cron(bad[i], err, sizeof err), -1);
	}
	CHECK_INT(bp_check_cron("61 * * * *", err, sizeof err), -1);
	CHECK(strstr(err, "minute"));

	struct t t;
	parse(&t, "name: ab\ntype: job\nsource: upload\nruntime: python@3.13\nrun_cmd: x\n"
		  "schedule: '0 3 * *'\n");
	CHECK(only(&t, "cron", 6, 11, "5 fields"));
	done(&t);
}

TEST(bp_duplicate_names_in_one_file)
{
	struct t t;
	parse(&t, "name: ab\ntype: worker\nsource: upload\nruntime: python@3.13\nrun_cmd: x\n---\n"
		  "name: cd\ntype: worker\nsource: upload\nruntime: python@3.13\nrun_cmd: x\n---\n"
		  "name: ab\ntype: worker\nsource: upload\nruntime: python@3.13\nrun_cmd: x\n");
	CHECK(only(&t, "duplicate-name", 13, 7, "line 1"));
	CHECK_INT(bp_file_count(t.f), 3);
	CHECK_INT(bp_file_get(t.f, 2)->nerrors, 1);
	CHECK_INT(bp_file_get(t.f, 0)->nerrors, 0);
	done(&t);
}

TEST(bp_json_input)
{
	struct t t;
	parse(&t, "{\"name\": \"js\", \"type\": \"worker\", \"source\": \"upload\", "
		  "\"runtime\": {\"type\": \"python\", \"version\": \"3.13\"}, \"run_cmd\": \"x\", "
		  "\"env_vars\": {\"N\": 5}}");
	CHECK_INT(t.dl.n, 0);
	CHECK_STR(first(&t)->env_vars[0].value, "5");
	done(&t);
}

TEST(bp_hostile_input_does_not_crash)
{
	struct t t;
	/* NUL bytes inside values and keys */
	static const char nul[] =
	    "name: \"a\\0b\"\ntype: web\n\"na\\0me\": x\nenv_vars: {A: \"x\\0\"}\n";
	parse(&t, nul);
	CHECK(find(&t, "type", 1, 7));
	CHECK(find(&t, "unknown-key", 3, 1));
	done(&t);

	/* binary junk */
	char junk[512];
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (char)(i * 37 + 11);
	diag_list_init(&t.dl);
	t.f = bp_parse("junk", junk, sizeof junk, &t.dl);
	CHECK(t.f != NULL);
	CHECK(t.dl.n >= 1);
	done(&t);

	/* very long values are quoted only in part */
	char *big = malloc(200000);
	strcpy(big, "name: ");
	memset(big + 6, 'a', 150000);
	strcpy(big + 150006, "\n");
	parse(&t, big);
	const struct diag *d = find(&t, "name", 1, 7);
	CHECK(d != NULL);
	CHECK(strlen(d->msg) < 400);
	done(&t);
	free(big);

	/* keys that are not scalars */
	parse(&t, BASE "? [a, b]\n: c\n");
	CHECK(only(&t, "type", 8, 3, "key"));
	done(&t);
}

/* The harness ends a test with _exit, which skips LeakSanitizer's exit
 * check: check explicitly, after inputs that take every path that owns
 * memory (each field stored, each stored value dropped on an error). */
TEST(bp_frees_everything)
{
	static const char *const inputs[] = {
	    BASE "description: d\nbuild_cmd: b\nworking_dir: w\nstatic_dir: s\n"
		 "domains: [a.example.org, b.example.org]\nenv_vars: {A: 1, B: x}\n"
		 "secrets: [C, D]\ninstances: [i, j]\nresources: {memory: 1G, cpu: 1, pids: 9}\n"
		 "hooks: {pre_deploy: p, post_deploy: q}\ntimeout: 1m\n",
	    BASE "secrets: {A: x, B: y}\n",
	    "name: ab\ntype: job\nsource: remote\nruntime: {type: python, version: \"3.13\"}\n"
	    "remote: {url: 'https://h/r', branch: b, commit_hash: 1234567}\nrun_cmd: x\n"
	    "schedule: '@daily'\nhealth_check: {command: c}\n",
	    "name: Bad\ntype: web\nsource: image\nruntime: python@3.10.1.1\nversion: 3.10\n"
	    "image: Bad\nremote: {url: 'http://x/y', branch: -b, commit_hash: zz}\n"
	    "working_dir: /a\nstatic_dir: ../b\nport: 0\nhealth_check: {path: x, tcp: true}\n"
	    "domain: a\ndomains: [b]\nenv_vars: {1: a, PORT: 1}\nsecrets: [PORT, 2]\n"
	    "schedule: bad\ntimeout: 1\nhooks: {pre_deploy: [x]}\nrun_cmd: ''\n",
	    "name: ab\ntype: worker\nsource: upload\nruntime: python\nversion: 3.10\n"
	    "run_cmd: x\n---\nname: ab\ntype: worker\nsource: upload\nruntime: python@2.7\n"
	    "run_cmd: x\n",
	    "- a\n---\n{a: [b\n",
	    "a: &a [x, x]\nb: [*a, *a]\n",
	};
	for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
		struct t t;
		parse(&t, inputs[i]);
		CHECK(t.dl.n > 0 || i == 0);
		done(&t);
	}
#ifdef HAVE_LSAN
	CHECK_INT(__lsan_do_recoverable_leak_check(), 0);
#endif
}
