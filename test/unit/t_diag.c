#include "diag.h"

#include <stdio.h>

#include "buf.h"
#include "harness.h"

static const struct diag_rule rules[] = {
    {"yaml-syntax", DIAG_ERROR, "the file is not valid YAML"},
    {"unknown-key", DIAG_ERROR, "a key that is not part of the format"},
    {"no-health-check", DIAG_WARNING, "a web service without a \"health\" check"},
};
#define NRULES (sizeof(rules) / sizeof(rules[0]))

static char *render(const struct diag_list *l, enum diag_format fmt)
{
	struct buf b = BUF_INIT;
	diag_render(l, fmt, rules, NRULES, "1.2.3", &b);
	return buf_detach(&b, NULL);
}

TEST(diag_add_copies_and_counts)
{
	struct diag_list l;
	diag_list_init(&l);
	char file[] = "a.yaml";
	diag_add(&l, file, 3, 5, DIAG_ERROR, "unknown-key", "unknown key `%s`", "x");
	file[0] = 'z';
	diag_add(&l, "a.yaml", 1, 1, DIAG_WARNING, "no-health-check", "no health check");
	diag_add(&l, "a.yaml", -4, -1, DIAG_ERROR, "yaml-syntax", "bad");
	CHECK_INT(l.n, 3);
	CHECK_STR(l.items[0].file, "a.yaml");
	CHECK_STR(l.items[0].msg, "unknown key `x`");
	CHECK_INT(l.items[2].line, 0);
	CHECK_INT(l.items[2].col, 0);
	CHECK_INT(diag_count(&l, DIAG_ERROR), 2);
	CHECK_INT(diag_count(&l, DIAG_WARNING), 1);
	diag_list_release(&l);
	CHECK_INT(l.n, 0);
	diag_list_release(&l);
}

TEST(diag_sort_is_stable_and_keeps_file_order)
{
	struct diag_list l;
	diag_list_init(&l);
	diag_add(&l, "b.yaml", 9, 1, DIAG_ERROR, "x", "b9");
	diag_add(&l, "a.yaml", 2, 4, DIAG_ERROR, "x", "a2.4");
	diag_add(&l, "b.yaml", 1, 1, DIAG_ERROR, "x", "b1-first");
	diag_add(&l, "a.yaml", 2, 1, DIAG_ERROR, "x", "a2.1");
	diag_add(&l, "b.yaml", 1, 1, DIAG_ERROR, "x", "b1-second");
	diag_add(&l, "a.yaml", 0, 0, DIAG_ERROR, "x", "a0");
	for (int i = 0; i < 40; i++)
		diag_add(&l, "c.yaml", 40 - i, 1, DIAG_WARNING, "x", "c%d", 40 - i);
	diag_sort(&l);
	const char *want[] = {"b1-first", "b1-second", "b9", "a0", "a2.1", "a2.4", "c1", "c2"};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		CHECK_STR(l.items[i].msg, want[i]);
	CHECK_STR(l.items[l.n - 1].msg, "c40");
	CHECK_INT(diag_count(&l, DIAG_WARNING), 40);
	diag_list_release(&l);
}

TEST(diag_format_names)
{
	enum diag_format f = DIAG_TEXT;
	CHECK_INT(diag_format_parse("json", &f), 0);
	CHECK_INT(f, DIAG_JSON);
	CHECK_INT(diag_format_parse("github", &f), 0);
	CHECK_INT(f, DIAG_GITHUB);
	CHECK_INT(diag_format_parse("sarif", &f), 0);
	CHECK_INT(f, DIAG_SARIF);
	CHECK_INT(diag_format_parse("text", &f), 0);
	CHECK_INT(f, DIAG_TEXT);
	CHECK_INT(diag_format_parse("JSON", &f), -1);
	CHECK_INT(diag_format_parse("", &f), -1);
	CHECK_INT(diag_format_parse(NULL, &f), -1);
}

TEST(diag_text_lines)
{
	struct diag_list l;
	diag_list_init(&l);
	diag_add(&l, "app.yaml", 4, 3, DIAG_ERROR, "unknown-key",
		 "unknown key `health_chek`; did you mean `health_check`?");
	diag_add(&l, "app.yaml", 0, 0, DIAG_WARNING, "no-health-check", "no health check");
	diag_add(&l, "-", 2, 0, DIAG_ERROR, "yaml-syntax",
		 "evil\nb.yaml:1:1: error: forged\t\x1b[0m");
	char *s = render(&l, DIAG_TEXT);
	CHECK_STR(
	    s, "app.yaml:4:3: error: unknown key `health_chek`; did you mean `health_check`? "
	       "[unknown-key]\n"
	       "app.yaml:1:1: warning: no health check [no-health-check]\n"
	       "<stdin>:2:1: error: evil\\nb.yaml:1:1: error: forged\\t\\x1b[0m [yaml-syntax]\n");
	free(s);
	diag_list_release(&l);
}

TEST(diag_text_and_json_of_nothing)
{
	struct diag_list l;
	diag_list_init(&l);
	char *s = render(&l, DIAG_TEXT);
	CHECK_STR(s, "");
	free(s);
	s = render(&l, DIAG_JSON);
	CHECK_STR(s, "[]\n");
	free(s);
	s = render(&l, DIAG_GITHUB);
	CHECK_STR(s, "");
	free(s);
	s = render(&l, DIAG_SARIF);
	CHECK(strstr(s, "\"results\": []") != NULL);
	CHECK(strstr(s, "\"version\": \"2.1.0\"") != NULL);
	free(s);
}

TEST(diag_json_escapes)
{
	struct diag_list l;
	diag_list_init(&l);
	diag_add(&l, "we\"ird\\.yaml", 7, 2, DIAG_ERROR, "unknown-key", "say \"hi\"\nnow");
	diag_add(&l, "-", 0, 0, DIAG_WARNING, "no-health-check", "bad \xff\xfe utf8 \xc3");
	char *s = render(&l, DIAG_JSON);
	CHECK_STR(s, "[\n"
		     "  {\"file\": \"we\\\"ird\\\\.yaml\", \"line\": 7, \"column\": 2, "
		     "\"severity\": \"error\", \"rule\": \"unknown-key\", "
		     "\"message\": \"say \\\"hi\\\"\\nnow\"},\n"
		     "  {\"file\": \"<stdin>\", \"line\": 1, \"column\": 1, "
		     "\"severity\": \"warning\", \"rule\": \"no-health-check\", "
		     "\"message\": \"bad \\ufffd\\ufffd utf8 \\ufffd\"}\n"
		     "]\n");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		CHECK(*p < 0x80);
	free(s);
	diag_list_release(&l);
}

TEST(diag_github_escapes_properties_and_message)
{
	struct diag_list l;
	diag_list_init(&l);
	diag_add(&l, "dir,a:b%c.yaml", 3, 9, DIAG_ERROR, "unknown-key", "%s", "100%: a,b\r\nc::d");
	diag_add(&l, "ok.yaml", 0, 0, DIAG_WARNING, "no-health-check", "no check");
	char *s = render(&l, DIAG_GITHUB);
	CHECK_STR(s, "::error file=dir%2Ca%3Ab%25c.yaml,line=3,col=9,title=unknown-key::"
		     "100%25: a,b%0D%0Ac::d\n"
		     "::warning file=ok.yaml,line=1,col=1,title=no-health-check::no check\n");
	free(s);
	diag_list_release(&l);
}

TEST(diag_sarif_structure)
{
	struct diag_list l;
	diag_list_init(&l);
	diag_add(&l, "svc/app one.yaml", 4, 3, DIAG_ERROR, "unknown-key", "bad \"key\"");
	diag_add(&l, "-", 0, 0, DIAG_WARNING, "no-health-check", "no check");
	diag_add(&l, "/abs/x.yaml", 2, 1, DIAG_ERROR, "not-in-table", "odd");
	char *s = render(&l, DIAG_SARIF);
	CHECK(strstr(s, "\"$schema\": \"https://docs.oasis-open.org/sarif/") != NULL);
	CHECK(strstr(s, "\"version\": \"2.1.0\"") != NULL);
	CHECK(strstr(s, "\"name\": \"dployr\"") != NULL);
	CHECK(strstr(s, "\"version\": \"1.2.3\"") != NULL);
	CHECK(strstr(s, "{\"id\": \"no-health-check\", \"shortDescription\": {\"text\": "
			"\"a web service without a \\\"health\\\" check\"}, "
			"\"defaultConfiguration\": {\"level\": \"warning\"}}") != NULL);
	CHECK(strstr(s, "{\"ruleId\": \"unknown-key\", \"ruleIndex\": 1, \"level\": \"error\", "
			"\"message\": {\"text\": \"bad \\\"key\\\"\"}") != NULL);
	CHECK(strstr(s, "\"uri\": \"svc/app%20one.yaml\"}, \"region\": {\"startLine\": 4, "
			"\"startColumn\": 3}") != NULL);
	CHECK(
	    strstr(s,
		   "{\"ruleId\": \"no-health-check\", \"ruleIndex\": 2, \"level\": \"warning\"") !=
	    NULL);
	CHECK(strstr(s, "\"uri\": \"file:///dev/stdin\"}, \"region\": {\"startLine\": 1, "
			"\"startColumn\": 1}") != NULL);
	/* a rule missing from the table has no ruleIndex rather than a wrong one */
	CHECK(strstr(s, "{\"ruleId\": \"not-in-table\", \"level\": \"error\"") != NULL);
	CHECK(strstr(s, "\"uri\": \"file:///abs/x.yaml\"") != NULL);
	free(s);
	diag_list_release(&l);
}

TEST(diag_sarif_encodes_uri_and_message)
{
	struct diag_list l;
	diag_list_init(&l);
	diag_add(&l, "c:%\xc3\xa9.yaml", 1, 1, DIAG_ERROR, "yaml-syntax", "tab\there \xff");
	char *s = render(&l, DIAG_SARIF);
	CHECK(strstr(s, "\"uri\": \"c%3A%25%C3%A9.yaml\"") != NULL);
	CHECK(strstr(s, "\"text\": \"tab\\there \\ufffd\"") != NULL);
	free(s);
	diag_list_release(&l);
}

TEST(diag_severity_and_display_names)
{
	CHECK_STR(diag_severity_name(DIAG_ERROR), "error");
	CHECK_STR(diag_severity_name(DIAG_WARNING), "warning");
	CHECK_STR(diag_display_name("-"), "<stdin>");
	CHECK_STR(diag_display_name("a.yaml"), "a.yaml");
}

TEST(diag_sort_groups_many_interleaved_files)
{
	struct diag_list l;
	diag_list_init(&l);
	/* files f999..f0 in that order of first appearance, each with findings
	 * on lines 3, 2, 1 spread over three rounds */
	for (int line = 3; line >= 1; line--)
		for (int f = 999; f >= 0; f--) {
			char name[32];
			snprintf(name, sizeof(name), "f%d.yaml", f);
			diag_add(&l, name, line, 1, DIAG_ERROR, "x", "%d", line);
		}
	diag_sort(&l);
	CHECK_INT(l.n, 3000);
	for (size_t i = 0; i < l.n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "f%d.yaml", 999 - (int)(i / 3));
		CHECK_STR(l.items[i].file, name);
		CHECK_INT(l.items[i].line, (int)(i % 3) + 1);
	}
	diag_list_release(&l);
}
