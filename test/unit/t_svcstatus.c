/* svcstatus: checking service_status events, storing the latest one. */
#include "svcstatus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "xalloc.h"

static const char *const dbnames[] = {SVCSTATUS_DBS, NULL};

#define NOW 1790000000000LL

/* A valid event body with one member replaced (key NULL: none). */
static char *body_with(const char *key, const char *json)
{
	static const char *const keys[] = {"service", "release", "state",    "pid",   "restarts",
					   "health",  "port",	 "since_ms", "ts_ms", "error"};
	static const char *const vals[] = {
	    "\"web\"", "\"d-0123456789ab\"", "\"running\"",   "1234", "3", "\"healthy\"",
	    "40123",   "1789999990000",	     "1790000000000", "\"\""};
	struct buf b = BUF_INIT;
	buf_putc(&b, '{');
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
		const char *v = key && strcmp(key, keys[i]) == 0 ? json : vals[i];
		if (!v)
			continue; /* member left out */
		if (b.len > 1)
			buf_putc(&b, ',');
		buf_printf(&b, "\"%s\":%s", keys[i], v);
	}
	buf_putc(&b, '}');
	return buf_detach(&b, NULL);
}

static int parse(const char *body, struct svcstatus *st, char *err, size_t errlen)
{
	return svcstatus_parse_event(body, strlen(body), "default", "i-1", NOW, st, err, errlen);
}

TEST(svcstatus_parses_a_full_event)
{
	struct svcstatus st;
	char err[512] = "";
	char *b = body_with(NULL, NULL);
	CHECK_INT(parse(b, &st, err, sizeof err), 0);
	CHECK_STR(err, "");
	CHECK_STR(st.cluster, "default");
	CHECK_STR(st.service, "web");
	CHECK_STR(st.instance, "i-1");
	CHECK_STR(st.release, "d-0123456789ab");
	CHECK_STR(st.state, "running");
	CHECK_STR(st.health, "healthy");
	CHECK_INT(st.pid, 1234);
	CHECK_INT(st.restarts, 3);
	CHECK_INT(st.port, 40123);
	CHECK(st.since_ms == 1789999990000LL);
	CHECK(st.ts_ms == 1790000000000LL);
	CHECK(st.received_ms == NOW);
	CHECK_STR(st.error, "");
	free(b);
	/* "none": no serving release, release may be "", null or absent */
	b = body_with("state", "\"none\"");
	char *b2 = xstrdup(b);
	free(b);
	b = body_with("release", "null");
	CHECK_INT(parse(b, &st, err, sizeof err), -1); /* running needs a release */
	CHECK(strstr(err, "'state' 'running' needs a release"));
	free(b);
	CHECK_INT(parse(b2, &st, err, sizeof err), 0);
	free(b2);
	b = body_with("error", NULL);
	CHECK_INT(parse(b, &st, err, sizeof err), 0);
	CHECK_STR(st.error, "");
	free(b);
}

TEST(svcstatus_refuses_hostile_fields_naming_each)
{
	static const struct {
		const char *key, *json, *want;
	} cases[] = {
	    {"service", "\"../etc\"", "'service' '../etc' is not a valid name"},
	    {"service", "\"a/b\"", "is not a valid name"},
	    {"service", "\"\"", "is not a valid name"},
	    {"service", NULL, "'service' is missing"},
	    {"service", "42", "'service' is not a string"},
	    {"release", "\"r-1\"", "'release' 'r-1' is not a deployment id"},
	    {"release", "[1]", "'release' is not a string"},
	    {"state", "\"dancing\"", "'state' 'dancing' is not a known state"},
	    {"state", "\"RUNNING\"", "is not a known state"},
	    {"health", "\"great\"", "'health' 'great' is not a known health"},
	    {"health", NULL, "'health' is missing"},
	    {"pid", "-1", "'pid' is not an integer"},
	    {"pid", "1.5", "'pid' is not an integer"},
	    {"pid", "\"12\"", "'pid' is not an integer"},
	    {"pid", "4294967296", "'pid' is not an integer"},
	    {"restarts", "true", "'restarts' is not an integer"},
	    {"port", "65536", "'port' is not an integer in [0, 65535]"},
	    {"port", "1e400", "'port' is not an integer"},
	    {"since_ms", "-5", "'since_ms' is not an integer"},
	    {"ts_ms", "0", "'ts_ms' is not an integer"},
	    {"ts_ms", "9007199254740993", "'ts_ms' is not an integer"},
	    {"ts_ms", "1800000000000", "'ts_ms' is more than a day ahead"},
	    {"error", "{}", "'error' is not a string"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct svcstatus st;
		char err[512] = "";
		char *b = body_with(cases[i].key, cases[i].json);
		if (parse(b, &st, err, sizeof err) != -1 || !strstr(err, cases[i].want))
			harness_fail(__FILE__, __LINE__, "case %zu (%s): err '%s'", i, b, err);
		CHECK_STR(st.service, ""); /* nothing half-filled */
		free(b);
	}
	/* several problems at once: all named */
	struct svcstatus st;
	char err[512];
	const char *bad = "{\"service\":\"-\\u0001\",\"state\":7,\"health\":\"x\",\"pid\":-1}";
	CHECK_INT(parse(bad, &st, err, sizeof err), -1);
	CHECK(strstr(err, "'service' '-?' is not a valid name"));
	CHECK(strstr(err, "'state' is not a string"));
	CHECK(strstr(err, "'health' 'x'"));
	CHECK(strstr(err, "'pid'"));
	CHECK(strstr(err, "'ts_ms' is missing"));
	/* not JSON, not an object, a bad instance */
	CHECK_INT(parse("{\"service\":", &st, err, sizeof err), -1);
	CHECK_INT(parse("[]", &st, err, sizeof err), -1);
	CHECK(strstr(err, "not a JSON object"));
	char *b = body_with(NULL, NULL);
	CHECK_INT(svcstatus_parse_event(b, strlen(b), "default", "a/b", NOW, &st, err, sizeof err),
		  -1);
	CHECK(strstr(err, "instance name is invalid"));
	CHECK_INT(svcstatus_parse_event(b, strlen(b), "", "i-1", NOW, &st, err, sizeof err), -1);
	free(b);
}

TEST(svcstatus_cuts_a_huge_error_and_refuses_huge_names)
{
	struct svcstatus st;
	char err[512];
	struct buf big = BUF_INIT;
	buf_putc(&big, '"');
	for (int i = 0; i < 100000; i++)
		buf_puts(&big, "\xc3\xa9"); /* é: two bytes, so the cut must not split one */
	buf_putc(&big, '"');
	char *b = body_with("error", big.data);
	CHECK_INT(parse(b, &st, err, sizeof err), 0);
	CHECK_INT((int)strlen(st.error), SVCSTATUS_ERROR_MAX - 2);
	CHECK_INT((unsigned char)st.error[strlen(st.error) - 1], 0xa9);
	free(b);
	b = body_with("service", big.data);
	CHECK_INT(parse(b, &st, err, sizeof err), -1);
	CHECK(strstr(err, "is not a valid name"));
	CHECK(strlen(err) < 200); /* the quote is cut too */
	free(b);
	b = body_with("state", big.data);
	CHECK_INT(parse(b, &st, err, sizeof err), -1);
	free(b);
	buf_release(&big);
}

static struct store *open_store(void)
{
	char err[256];
	struct store *s = store_open("st", dbnames, 0, 0, err, sizeof err);
	if (!s)
		harness_fail(__FILE__, __LINE__, "open: %s", err);
	return s;
}

TEST(svcstatus_keeps_the_latest_report_per_instance)
{
	struct store *s = open_store();
	struct svcstatus a, b, got;
	char err[256];
	char *body = body_with(NULL, NULL);
	CHECK_INT(parse(body, &a, err, sizeof err), 0);
	free(body);
	struct store_txn *t = store_txn_begin(s, 0);
	CHECK_INT(svcstatus_get(t, "default", "web", "i-1", &got), STORE_NOTFOUND);
	CHECK_INT(svcstatus_put(t, &a), 0);
	/* older: ignored */
	b = a;
	b.ts_ms = a.ts_ms - 1;
	snprintf(b.state, sizeof b.state, "stopped");
	CHECK_INT(svcstatus_put(t, &b), SVCSTATUS_STALE);
	CHECK_INT(svcstatus_get(t, "default", "web", "i-1", &got), 0);
	CHECK_STR(got.state, "running");
	/* same time: the later one wins (events apply in seq order) */
	b.ts_ms = a.ts_ms;
	CHECK_INT(svcstatus_put(t, &b), 0);
	CHECK_INT(svcstatus_get(t, "default", "web", "i-1", &got), 0);
	CHECK_STR(got.state, "stopped");
	/* another instance of the same service: its own record */
	b.ts_ms = 5;
	snprintf(b.instance, sizeof b.instance, "i-10");
	snprintf(b.state, sizeof b.state, "backoff");
	CHECK_INT(svcstatus_put(t, &b), 0);
	CHECK_INT(svcstatus_get(t, "default", "web", "i-1", &got), 0);
	CHECK_STR(got.state, "stopped");
	CHECK_INT(svcstatus_get(t, "default", "web", "i-10", &got), 0);
	CHECK_STR(got.state, "backoff");
	CHECK_INT(svcstatus_get(t, "default", "web", "i-100", &got), STORE_NOTFOUND);
	CHECK_INT(svcstatus_get(t, "default", "../x", "i-1", &got), STORE_NOTFOUND);
	/* names that cannot be keys are refused without poisoning t */
	snprintf(b.service, sizeof b.service, "a/b");
	CHECK_INT(svcstatus_put(t, &b), -1);
	CHECK(!store_txn_failed(t));
	CHECK_INT(store_txn_commit(t, err, sizeof err), 0);
	/* survives a reopen, every field */
	store_close(s);
	s = open_store();
	t = store_txn_begin(s, 1);
	CHECK_INT(svcstatus_get(t, "default", "web", "i-10", &got), 0);
	store_txn_abort(t);
	CHECK_STR(got.service, "web");
	CHECK_STR(got.release, "d-0123456789ab");
	CHECK_STR(got.health, "healthy");
	CHECK_INT(got.pid, 1234);
	CHECK_INT(got.restarts, 3);
	CHECK_INT(got.port, 40123);
	CHECK(got.ts_ms == 5 && got.received_ms == NOW);
	store_close(s);
}

TEST(svcstatus_record_round_trip_and_bad_records)
{
	struct svcstatus a, got;
	char err[256];
	char *body = body_with("error", "\"exited with \\\"status\\\" 3\\n\"");
	CHECK_INT(parse(body, &a, err, sizeof err), 0);
	free(body);
	struct buf b = BUF_INIT;
	svcstatus_encode(&b, &a);
	CHECK(strncmp(b.data, "{\"v\":1,", 7) == 0);
	CHECK_INT(svcstatus_decode(b.data, b.len, &got), 0);
	CHECK(memcmp(&a, &got, sizeof a) == 0);
	/* another version, a missing field: refused */
	buf_reset(&b);
	svcstatus_encode(&b, &a);
	b.data[5] = '2';
	CHECK_INT(svcstatus_decode(b.data, b.len, &got), -1);
	CHECK_INT(svcstatus_decode("{\"v\":1}", 7, &got), -1);
	CHECK_INT(svcstatus_decode("", 0, &got), -1);
	/* a record that does not decode fails the transaction */
	struct store *s = open_store();
	struct store_txn *t = store_txn_begin(s, 0);
	struct store_key k;
	store_key_init(&k);
	store_key_str(&k, "default");
	store_key_str(&k, "web");
	store_key_str(&k, "i-1");
	CHECK_INT(store_put(t, store_db(s, SVCSTATUS_DBS), k.data, k.len, "{}", 2), 0);
	CHECK_INT(svcstatus_get(t, "default", "web", "i-1", &got), -1);
	CHECK(store_txn_failed(t));
	store_txn_abort(t);
	store_close(s);
	buf_release(&b);
}

TEST(svcstatus_state_and_health_names)
{
	CHECK(svcstatus_state_valid("running") && svcstatus_state_valid("none"));
	CHECK(svcstatus_state_valid("waiting") && svcstatus_state_valid("failed"));
	CHECK(!svcstatus_state_valid("") && !svcstatus_state_valid(NULL));
	CHECK(!svcstatus_state_valid("deploying"));
	CHECK(svcstatus_health_valid("unhealthy") && svcstatus_health_valid("none"));
	CHECK(!svcstatus_health_valid("unknown") && !svcstatus_health_valid(NULL));
}
