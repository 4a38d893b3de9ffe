#include "proto.h"

#include <stdio.h>

#include "harness.h"
#include "xalloc.h"

static char *caps[] = {"exec", "logs", "caf\xc3\xa9"};
static int64_t vers[] = {1, 2};

/* One filled-in message per type; fails for a type without a sample, so a
 * new message in proto_msgs.def needs one here. */
static struct proto_msg sample(enum proto_type t)
{
	struct proto_msg m = {.type = t, .id = "m-1"};
	switch (t) {
	case PROTO_HELLO:
		m.u.hello = (struct proto_hello){.agent_version = "0.1.0",
						 .proto_versions = vers,
						 .proto_versions_len = 2,
						 .capabilities = caps,
						 .capabilities_len = 3,
						 .instance_id = "i-0042",
						 .last_event_seq = 9007199254740991};
		break;
	case PROTO_WELCOME:
		m.u.welcome = (struct proto_welcome){.session = "s-1",
						     .heartbeat_ms = 5000,
						     .access_token = "tok\"en\\x",
						     .token_expires_at = 1795000000};
		break;
	case PROTO_PING:
		m.u.ping = (struct proto_ping){.ts = 123, .has_ts = 1};
		break;
	case PROTO_PONG:
		m.id = NULL;
		break;
	case PROTO_ERROR:
		m.u.error = (struct proto_error){
		    .code = "bad_request", .message = "line1\nline2\t\x01", .ref = "m-0"};
		break;
	case PROTO_TASK:
		m.u.task =
		    (struct proto_task){.task_id = "t-1",
					.kind = "deploy",
					.payload = "{\"service\":\"web\",\"n\":[1,2.5,\"x\"]}",
					.lease_ms = 30000};
		break;
	case PROTO_TASK_ACK:
		m.u.task_ack = (struct proto_task_ack){.task_id = "t-1", .status = "duplicate"};
		break;
	case PROTO_EVENT:
		m.u.event = (struct proto_event){
		    .seq = 77, .kind = "deploy.stage", .body = "{\"stage\":\"build\",\"ok\":true}"};
		break;
	case PROTO_EVENT_ACK:
		m.u.event_ack = (struct proto_event_ack){.up_to_seq = 0};
		break;
	case PROTO_TOKEN_REFRESH:
		m.u.token_refresh = (struct proto_token_refresh){.session = "s-1"};
		break;
	case PROTO_TOKEN:
		m.u.token = (struct proto_token){.access_token = "abc", .expires_at = 1};
		break;
	case PROTO_CERT_RENEW:
		m.u.cert_renew = (struct proto_cert_renew){
		    .csr = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE "
			   "REQUEST-----\n"};
		break;
	case PROTO_CERT:
		m.u.cert =
		    (struct proto_cert){.cert = "-----BEGIN CERTIFICATE-----\n", .chain = "chain"};
		break;
	case PROTO_EXEC_OUTPUT:
		m.u.exec_output = (struct proto_exec_output){
		    .task_id = "t-2", .stream = "stderr", .data = "AP8="};
		break;
	case PROTO_EXEC_EXIT:
		m.u.exec_exit = (struct proto_exec_exit){
		    .task_id = "t-2", .status = -1, .signal = 9, .has_signal = 1};
		break;
	case PROTO_CANCEL:
		m.u.cancel = (struct proto_cancel){.task_id = "t-3"};
		break;
	default:
		harness_fail(__FILE__, __LINE__, "no sample for type %d (%s)", (int)t,
			     proto_type_name(t) ? proto_type_name(t) : "?");
	}
	return m;
}

TEST(proto_every_type_round_trips)
{
	char err[512] = "";
	for (int t = PROTO_NONE + 1; t < PROTO_TYPE_COUNT; t++) {
		struct proto_msg in = sample((enum proto_type)t), out;
		struct buf b = BUF_INIT, b2 = BUF_INIT;
		if (proto_encode(&b, &in, err, sizeof err) < 0)
			harness_fail(__FILE__, __LINE__, "encode %s: %s", proto_type_name(t), err);
		if (proto_decode(&out, b.data, b.len, err, sizeof err) < 0)
			harness_fail(__FILE__, __LINE__, "decode %s: %s", b.data, err);
		if (!proto_msg_equal(&in, &out))
			harness_fail(__FILE__, __LINE__, "round trip of %s differs", b.data);
		CHECK_INT(out.type, t);
		CHECK((int)proto_type_from_name(proto_type_name(t)) == t);
		/* a decoded message encodes to the same bytes */
		CHECK_INT(proto_encode(&b2, &out, err, sizeof err), 0);
		CHECK_STR(b2.data, b.data);
		proto_msg_release(&out);
		proto_msg_release(&out);
		CHECK_INT(out.type, PROTO_NONE);
		buf_release(&b);
		buf_release(&b2);
	}
	CHECK(proto_type_name(PROTO_NONE) == NULL);
	CHECK(proto_type_name(PROTO_TYPE_COUNT) == NULL);
	CHECK(proto_type_from_name("nope") == PROTO_NONE);
}

TEST(proto_encodes_the_envelope)
{
	char err[256];
	struct buf b = BUF_INIT;
	struct proto_ping p = {.ts = 5, .has_ts = 1};
	CHECK_INT(proto_encode_ping(&b, "p1", &p, err, sizeof err), 0);
	CHECK_STR(b.data, "{\"v\":1,\"type\":\"ping\",\"id\":\"p1\",\"ts\":5}");
	buf_reset(&b);
	struct proto_pong q = {0};
	CHECK_INT(proto_encode_pong(&b, NULL, &q, err, sizeof err), 0);
	CHECK_STR(b.data, "{\"v\":1,\"type\":\"pong\"}");
	buf_reset(&b);
	/* RAW text is passed through as given; big integers in it survive */
	struct proto_event e = {.seq = 1, .kind = "k", .body = "{ \"n\": 18446744073709551615 }"};
	CHECK_INT(proto_encode_event(&b, NULL, &e, err, sizeof err), 0);
	CHECK_STR(b.data, "{\"v\":1,\"type\":\"event\",\"seq\":1,\"kind\":\"k\",\"body\":{ \"n\": "
			  "18446744073709551615 }}");
	/* a required list may be empty */
	buf_reset(&b);
	struct proto_hello h = {.agent_version = "1", .instance_id = "i", .last_event_seq = 0};
	CHECK_INT(proto_encode_hello(&b, NULL, &h, err, sizeof err), 0);
	CHECK_STR(b.data,
		  "{\"v\":1,\"type\":\"hello\",\"agent_version\":\"1\",\"proto_versions\":[],"
		  "\"capabilities\":[],\"instance_id\":\"i\",\"last_event_seq\":0}");
	buf_release(&b);
}

struct bad {
	const char *in;
	const char *err;
	const char *id; /* the id still reported, or NULL */
};

static void check_bad(const struct bad *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char err[512] = "";
		struct proto_msg m;
		int rc = proto_decode(&m, c[i].in, strlen(c[i].in), err, sizeof err);
		if (rc != -1 || strcmp(err, c[i].err))
			harness_fail(__FILE__, __LINE__,
				     "decode %s: rc %d, err \"%s\", expected \"%s\"", c[i].in, rc,
				     err, c[i].err);
		if (!c[i].id ? m.id != NULL : !m.id || strcmp(m.id, c[i].id))
			harness_fail(__FILE__, __LINE__, "decode %s: id %s, expected %s", c[i].in,
				     m.id ? m.id : "NULL", c[i].id ? c[i].id : "NULL");
		proto_msg_release(&m);
	}
}

TEST(proto_rejects_bad_envelopes)
{
	static const struct bad cases[] = {
	    {"", "message: empty", NULL},
	    {"[1]", "message: not a JSON object", NULL},
	    {"\"x\"", "message: not a JSON object", NULL},
	    {"{\"v\":1,", "message: invalid JSON at byte 6", NULL},
	    {"{\"v\":1,\"type\":\"ping\"} x", "message: trailing data at byte 22", NULL},
	    {"{\"v\":1,\"type\":\"ping\"}{}", "message: trailing data at byte 21", NULL},
	    {"{\"type\":\"ping\",\"id\":\"a\"}", "message 'ping': field 'v' is required", "a"},
	    {"{\"v\":2,\"type\":\"ping\",\"id\":\"a\"}",
	     "message 'ping': unsupported protocol version 2 (this end speaks 1)", "a"},
	    {"{\"v\":\"1\",\"type\":\"ping\"}", "message 'ping': field 'v' must be an integer",
	     NULL},
	    {"{\"v\":1.5,\"type\":\"ping\"}", "message 'ping': field 'v' must be an integer", NULL},
	    {"{\"v\":1,\"type\":\"frobnicate\",\"id\":\"x7\"}",
	     "message: unknown type 'frobnicate'", "x7"},
	    {"{\"v\":1,\"type\":\"a b'c\\u0001d\"}", "message: unknown type 'a?b?c?d'", NULL},
	    {"{\"v\":1,\"type\":5}", "message: field 'type' must be a string", NULL},
	    {"{\"v\":1}", "message: field 'type' is required", NULL},
	    {"{\"v\":1,\"type\":\"PING\"}", "message: unknown type 'PING'", NULL},
	    {"{\"v\":1,\"type\":\"ping\",\"id\":\"has space\"}",
	     "message 'ping': field 'id' must be 1 to 128 printable ASCII characters without "
	     "spaces",
	     NULL},
	    {"{\"v\":1,\"type\":\"ping\",\"id\":7}",
	     "message 'ping': field 'id' must be 1 to 128 printable ASCII characters without "
	     "spaces",
	     NULL},
	    {"{\"v\":1,\"type\":\"ping\",\"type\":\"pong\"}",
	     "message 'ping': key 'type' appears more than once", NULL},
	};
	check_bad(cases, sizeof cases / sizeof *cases);
}

TEST(proto_rejects_bad_fields_and_lists_every_problem)
{
	static const struct bad cases[] = {
	    {"{\"v\":1,\"type\":\"hello\",\"id\":\"h1\",\"agent_version\":5,\"proto_versions\":[1],"
	     "\"capabilities\":[],\"last_event_seq\":0}",
	     "message 'hello': field 'agent_version' must be a string; field 'instance_id' is "
	     "required",
	     "h1"},
	    {"{\"v\":1,\"type\":\"hello\",\"agent_version\":\"1\",\"proto_versions\":[1,\"2\",-3],"
	     "\"capabilities\":\"exec\",\"instance_id\":\"i\",\"last_event_seq\":null}",
	     "message 'hello': field 'proto_versions' item 1 must be an integer between "
	     "-9007199254740991 and 9007199254740991; field 'proto_versions' item 2 must not be "
	     "negative; field 'capabilities' must be an array of strings; field "
	     "'last_event_seq' is required",
	     NULL},
	    {"{\"v\":1,\"type\":\"task_ack\",\"task_id\":\"t\",\"status\":\"ok\"}",
	     "message 'task_ack': field 'status' must be one of accepted, done, failed, "
	     "duplicate",
	     NULL},
	    {"{\"v\":1,\"type\":\"task_ack\",\"task_id\":\"t\",\"status\":\"done\",\"result\":[]}",
	     "message 'task_ack': field 'result' must be an object", NULL},
	    {"{\"v\":1,\"type\":\"task\",\"task_id\":\"\",\"kind\":\"k\",\"payload\":\"{}\","
	     "\"lease_ms\":true}",
	     "message 'task': field 'task_id' must be 1 to 128 printable ASCII characters "
	     "without spaces; field 'payload' must be an object; field 'lease_ms' must be an "
	     "integer between -9007199254740991 and 9007199254740991",
	     NULL},
	    {"{\"v\":1,\"type\":\"event\",\"seq\":1.5,\"kind\":\"k\",\"body\":{}}",
	     "message 'event': field 'seq' must be an integer between -9007199254740991 and "
	     "9007199254740991",
	     NULL},
	    {"{\"v\":1,\"type\":\"event\",\"seq\":-1,\"kind\":\"k\",\"body\":{}}",
	     "message 'event': field 'seq' must not be negative", NULL},
	    {"{\"v\":1,\"type\":\"exec_output\",\"task_id\":\"t\",\"stream\":\"stdin\","
	     "\"data\":\"abc\"}",
	     "message 'exec_output': field 'stream' must be one of stdout, stderr; field 'data' "
	     "must be base64",
	     NULL},
	    {"{\"v\":1,\"type\":\"cancel\",\"task_id\":\"a\",\"task_id\":\"b\"}",
	     "message 'cancel': key 'task_id' appears more than once", NULL},
	    {"{\"v\":1,\"type\":\"cancel\",\"task_id\":null}",
	     "message 'cancel': field 'task_id' is required", NULL},
	};
	check_bad(cases, sizeof cases / sizeof *cases);
}

TEST(proto_int64_beyond_2_53_rejected)
{
	static const struct bad cases[] = {
	    {"{\"v\":1,\"type\":\"event_ack\",\"up_to_seq\":9007199254740992}",
	     "message 'event_ack': field 'up_to_seq' must be an integer between "
	     "-9007199254740991 and 9007199254740991",
	     NULL},
	    {"{\"v\":1,\"type\":\"event_ack\",\"up_to_seq\":18446744073709551616}",
	     "message 'event_ack': field 'up_to_seq' must be an integer between "
	     "-9007199254740991 and 9007199254740991",
	     NULL},
	    {"{\"v\":1,\"type\":\"event_ack\",\"up_to_seq\":1e400}",
	     "message 'event_ack': field 'up_to_seq' must be an integer between "
	     "-9007199254740991 and 9007199254740991",
	     NULL},
	    {"{\"v\":1,\"type\":\"exec_exit\",\"task_id\":\"t\",\"status\":-9007199254740992}",
	     "message 'exec_exit': field 'status' must be an integer between "
	     "-9007199254740991 and 9007199254740991",
	     NULL},
	};
	check_bad(cases, sizeof cases / sizeof *cases);
	/* the limits themselves pass, exactly */
	char err[256];
	struct proto_msg m;
	const char *ok = "{\"v\":1,\"type\":\"exec_exit\",\"task_id\":\"t\",\"status\":"
			 "-9007199254740991,\"signal\":9007199254740991}";
	CHECK_INT(proto_decode(&m, ok, strlen(ok), err, sizeof err), 0);
	CHECK(m.u.exec_exit.status == -PROTO_MAX_INT);
	CHECK(m.u.exec_exit.signal == PROTO_MAX_INT && m.u.exec_exit.has_signal);
	proto_msg_release(&m);
	/* the encoder refuses what the decoder would */
	struct buf b = BUF_INIT;
	struct proto_event_ack a = {.up_to_seq = PROTO_MAX_INT + 1};
	CHECK_INT(proto_encode_event_ack(&b, NULL, &a, err, sizeof err), -1);
	CHECK_STR(err, "message 'event_ack': field 'up_to_seq' must be an integer between "
		       "-9007199254740991 and 9007199254740991");
	CHECK_INT(b.len, 0);
	buf_release(&b);
}

TEST(proto_rejects_bad_text)
{
	static const struct bad cases[] = {
	    {"{\"v\":1,\"type\":\"cancel\",\"id\":\"q\",\"task_id\":\"a\\u0000b\"}",
	     "message 'cancel': NUL character (\\u0000) in a string at byte 44", "q"},
	    {"{\"v\":1,\"type\":\"cancel\",\"task_id\":\"a\",\"x\":\"\xc3\x28\"}",
	     "message 'cancel': invalid UTF-8 at byte 42", NULL},
	    {"{\"v\":1,\"type\":\"cancel\",\"task_id\":\"a\",\"x\":\"\xed\xa0\x80\"}",
	     "message 'cancel': invalid UTF-8 at byte 42", NULL},
	    {"{\"v\":1,\"type\":\"cancel\",\"task_id\":\"a\",\"x\":\"\xc0\xaf\"}",
	     "message 'cancel': invalid UTF-8 at byte 42", NULL},
	    {"{\"v\":1,\"type\":\"cancel\",\"task_id\":\"a\",\"x\":\"tab\there\"}",
	     "message 'cancel': control character in a string at byte 45", NULL},
	    {"{\"v\":1,\"type\":\"cancel\",\"task_id\":\"a\",\"x\":01}",
	     "message 'cancel': malformed number at byte 41", NULL},
	    {"{\"v\":1,\"type\":\"cancel\",\"task_id\":\"a\",\"x\":1.}",
	     "message 'cancel': malformed number at byte 41", NULL},
	    /* a lone surrogate escape: cJSON itself refuses */
	    {"{\"v\":1,\"type\":\"cancel\",\"task_id\":\"\\ud800\"}",
	     "message: invalid JSON at byte 34", NULL},
	};
	check_bad(cases, sizeof cases / sizeof *cases);
	/* escaped control characters and \\ before u0000 are fine */
	char err[256];
	struct proto_msg m;
	const char *ok =
	    "{\"v\":1,\"type\":\"error\",\"code\":\"c\",\"message\":\"a\\tb\\\\u0000\\u00e9\"}";
	CHECK_INT(proto_decode(&m, ok, strlen(ok), err, sizeof err), 0);
	CHECK_STR(m.u.error.message, "a\tb\\u0000\xc3\xa9");
	proto_msg_release(&m);
	/* a NUL byte is never valid */
	const char nul[] = "{\"v\":1,\"type\":\"pong\"}\0";
	CHECK_INT(proto_decode(&m, nul, sizeof nul - 1, err, sizeof err), -1);
	CHECK_STR(err, "message: trailing data at byte 21");
	proto_msg_release(&m);
}

TEST(proto_size_and_nesting_limits)
{
	char err[256];
	struct proto_msg m;
	/* one byte over the limit, even though it is valid JSON */
	size_t n = PROTO_MAX_MSG + 1;
	char *big = xmalloc(n);
	const char *head = "{\"v\":1,\"type\":\"error\",\"code\":\"c\",\"message\":\"";
	memset(big, 'a', n);
	memcpy(big, head, strlen(head));
	memcpy(big + n - 2, "\"}", 2);
	CHECK_INT(proto_decode(&m, big, n, err, sizeof err), -1);
	CHECK_STR(err, "message: 1048577 bytes, limit 1048576");
	proto_msg_release(&m);
	/* at the limit it decodes */
	memcpy(big + n - 3, "\"}", 2);
	CHECK_INT(proto_decode(&m, big, n - 1, err, sizeof err), 0);
	CHECK_INT(strlen(m.u.error.message), PROTO_MAX_MSG - strlen(head) - 2);
	/* and the encoder refuses to make a message bigger than the limit */
	struct buf b = BUF_INIT;
	m.u.error.message[0] = '"';
	CHECK_INT(proto_encode(&b, &m, err, sizeof err), -1);
	CHECK_STR(err, "message 'error': 1048577 bytes, limit 1048576");
	CHECK_INT(b.len, 0);
	proto_msg_release(&m);

	/* a nesting bomb: cJSON stops at its CJSON_NESTING_LIMIT (1000) */
	size_t depth = 200000;
	char *bomb = xmalloc(depth * 2);
	memset(bomb, '[', depth);
	memset(bomb + depth, ']', depth);
	CHECK_INT(proto_decode(&m, bomb, depth * 2, err, sizeof err), -1);
	CHECK_STR(err, "message: invalid JSON at byte 1000");
	proto_msg_release(&m);
	/* below cJSON's limit ours applies: 64 levels, the message included */
	for (int extra = 0; extra < 2; extra++) {
		buf_reset(&b);
		buf_puts(&b, "{\"v\":1,\"type\":\"event\",\"seq\":1,\"kind\":\"k\",\"body\":");
		for (int i = 0; i < 62 + extra; i++)
			buf_puts(&b, "{\"a\":");
		buf_puts(&b, "[1]");
		for (int i = 0; i < 62 + extra; i++)
			buf_puts(&b, "}");
		buf_puts(&b, "}");
		if (extra) {
			CHECK_INT(proto_decode(&m, b.data, b.len, err, sizeof err), -1);
			CHECK_STR(err, "message: nested deeper than 64 levels");
			proto_msg_release(&m);
			continue;
		}
		CHECK_INT(proto_decode(&m, b.data, b.len, err, sizeof err), 0);
		/* the encoder accepts that body */
		struct buf c = BUF_INIT;
		CHECK_INT(proto_encode(&c, &m, err, sizeof err), 0);
		CHECK_STR(c.data, b.data);
		buf_release(&c);
		proto_msg_release(&m);
	}
	/* and refuses a deeper one */
	struct buf body = BUF_INIT;
	buf_puts(&body, "{\"a\":");
	for (int i = 0; i < 63; i++)
		buf_puts(&body, "[");
	for (int i = 0; i < 63; i++)
		buf_puts(&body, "]");
	buf_puts(&body, "}");
	struct proto_task_ack ack = {.task_id = "t", .status = "done", .result = body.data};
	buf_reset(&b);
	CHECK_INT(proto_encode_task_ack(&b, NULL, &ack, err, sizeof err), -1);
	CHECK_STR(err, "message 'task_ack': field 'result' is nested deeper than 63 levels");
	body.data[body.len - 2] = ' ';
	memmove(body.data + 6, body.data + 7, body.len - 7);
	buf_truncate(&body, body.len - 1);
	CHECK_INT(proto_encode_task_ack(&b, NULL, &ack, err, sizeof err), 0);
	buf_release(&body);
	buf_release(&b);
	free(big);
	free(bomb);
}

TEST(proto_ignores_unknown_fields)
{
	char err[256];
	struct proto_msg m;
	const char *in = "{\"future\":{\"x\":[1,{}]},\"v\":1,\"type\":\"cancel\",\"task_id\":\"t\","
			 "\"also\":null,\"also\":2}";
	CHECK_INT(proto_decode(&m, in, strlen(in), err, sizeof err), 0);
	CHECK_INT(m.type, PROTO_CANCEL);
	CHECK_STR(m.u.cancel.task_id, "t");
	CHECK(m.id == NULL);
	proto_msg_release(&m);
	/* whitespace around the object is fine; the input need not end in NUL */
	char buf[64];
	const char *ws = " \n{\"v\":1,\"type\":\"pong\",\"ts\":-4}\r\n\t";
	memcpy(buf, ws, strlen(ws));
	CHECK_INT(proto_decode(&m, buf, strlen(ws), err, sizeof err), 0);
	CHECK(m.u.pong.has_ts && m.u.pong.ts == -4);
	proto_msg_release(&m);
	/* optional fields: absent and null are the same */
	in = "{\"v\":1,\"type\":\"exec_exit\",\"task_id\":\"t\",\"status\":0,\"signal\":null}";
	CHECK_INT(proto_decode(&m, in, strlen(in), err, sizeof err), 0);
	CHECK(!m.u.exec_exit.has_signal);
	proto_msg_release(&m);
}

TEST(proto_encoder_checks_fields)
{
	char err[512];
	struct buf b = BUF_INIT;
	buf_puts(&b, "keep");
	struct proto_task t = {
	    .task_id = NULL, .kind = "bad kind", .payload = "[1]", .lease_ms = -1};
	CHECK_INT(proto_encode_task(&b, "bad id", &t, err, sizeof err), -1);
	CHECK_STR(err, "message 'task': field 'id' must be 1 to 128 printable ASCII characters "
		       "without spaces; field 'task_id' is required; field 'kind' must be 1 to 128 "
		       "printable ASCII characters without spaces; field 'payload' must be a JSON "
		       "object; field 'lease_ms' must not be negative");
	CHECK_STR(b.data, "keep");
	struct proto_error e = {.code = "c", .message = "\xff"};
	CHECK_INT(proto_encode_error(&b, NULL, &e, err, sizeof err), -1);
	CHECK_STR(err, "message 'error': field 'message' is not valid UTF-8");
	struct proto_task_ack a = {.task_id = "t", .status = "done", .result = "{\"a\":1} x"};
	CHECK_INT(proto_encode_task_ack(&b, NULL, &a, err, sizeof err), -1);
	CHECK_STR(err, "message 'task_ack': field 'result' must be a JSON object");
	a.result = "\xef\xbb\xbf{}";
	CHECK_INT(proto_encode_task_ack(&b, NULL, &a, err, sizeof err), -1);
	CHECK_STR(err, "message 'task_ack': field 'result' must be a JSON object");
	a.result = "{\"a\":\"\\u0000\"}";
	CHECK_INT(proto_encode_task_ack(&b, NULL, &a, err, sizeof err), -1);
	CHECK_STR(err, "message 'task_ack': field 'result': NUL character (\\u0000) in a string at "
		       "byte 6");
	char *list[] = {"ok", NULL};
	struct proto_hello h = {.agent_version = "1",
				.capabilities = list,
				.capabilities_len = 2,
				.instance_id = "i",
				.proto_versions_len = 1};
	CHECK_INT(proto_encode_hello(&b, NULL, &h, err, sizeof err), -1);
	CHECK_STR(err, "message 'hello': field 'proto_versions' has 1 items but no array; field "
		       "'capabilities' item 1 is NULL");
	struct proto_msg none = {.type = PROTO_NONE};
	CHECK_INT(proto_encode(&b, &none, err, sizeof err), -1);
	CHECK_STR(err, "message: unknown type 0");
	CHECK_STR(b.data, "keep");
	buf_release(&b);
}

TEST(proto_base64)
{
	struct buf b = BUF_INIT, d = BUF_INIT;
	static const char *const vec[][2] = {{"", ""},
					     {"f", "Zg=="},
					     {"fo", "Zm8="},
					     {"foo", "Zm9v"},
					     {"foob", "Zm9vYg=="},
					     {"fooba", "Zm9vYmE="},
					     {"foobar", "Zm9vYmFy"}};
	for (size_t i = 0; i < sizeof vec / sizeof *vec; i++) {
		buf_reset(&b);
		proto_b64_encode(&b, vec[i][0], strlen(vec[i][0]));
		CHECK_STR(b.data, vec[i][1]);
		buf_reset(&d);
		CHECK_INT(proto_b64_decode(&d, b.data, b.len), 0);
		CHECK_STR(d.data, vec[i][0]);
	}
	unsigned char bin[256];
	for (int i = 0; i < 256; i++)
		bin[i] = (unsigned char)i;
	buf_reset(&b);
	buf_reset(&d);
	proto_b64_encode(&b, bin, sizeof bin);
	CHECK_INT(proto_b64_decode(&d, b.data, b.len), 0);
	CHECK(d.len == 256 && memcmp(d.data, bin, 256) == 0);
	static const char *const bad[] = {"Zg=", "Z===", "Zg=a", "Zm9v!A==", "=Zg=", "Zg==Zg=="};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		buf_reset(&d);
		buf_puts(&d, "x");
		if (proto_b64_decode(&d, bad[i], strlen(bad[i])) != -1)
			harness_fail(__FILE__, __LINE__, "'%s' decoded", bad[i]);
		CHECK_STR(d.data, "x");
	}
	buf_release(&b);
	buf_release(&d);
}

TEST(proto_typed_decoder_insists_on_its_type)
{
	char err[256];
	struct proto_msg m;
	const char *ping = "{\"v\":1,\"type\":\"ping\",\"id\":\"p\",\"ts\":1}";
	CHECK_INT(proto_decode_hello(&m, ping, strlen(ping), err, sizeof err), -1);
	CHECK_STR(err, "message 'ping': expected 'hello'");
	CHECK_INT(m.type, PROTO_PING); /* still answerable */
	CHECK_STR(m.id, "p");
	proto_msg_release(&m);
	CHECK_INT(proto_decode_ping(&m, ping, strlen(ping), err, sizeof err), 0);
	CHECK(m.u.ping.has_ts && m.u.ping.ts == 1);
	proto_msg_release(&m);
	CHECK_INT(proto_decode_ping(&m, "{}", 2, err, sizeof err), -1);
	CHECK_STR(err, "message: field 'v' is required; field 'type' is required");
	proto_msg_release(&m);
}

TEST(proto_json_reads_any_document)
{
	char err[256];
	const char *s = "{\"name\":\"web-1\",\"argv\":[\"uname\",\"-a\"],\"n\":42,\"q\":true,"
			"\"big\":9007199254740992,\"f\":1.5,\"nil\":null}";
	struct proto_json *d = proto_json_parse(s, strlen(s), err, sizeof err);
	CHECK(d != NULL);
	const struct proto_jv *r = proto_json_root(d);
	CHECK_INT(proto_jv_type(r), PROTO_J_OBJ);
	CHECK_INT(proto_jv_len(r), 7);
	CHECK_STR(proto_jv_get_str(r, "name"), "web-1");
	const struct proto_jv *argv = proto_jv_get(r, "argv");
	CHECK_INT(proto_jv_type(argv), PROTO_J_ARR);
	CHECK_INT(proto_jv_len(argv), 2);
	CHECK_STR(proto_jv_str(proto_jv_at(argv, 1)), "-a");
	CHECK(proto_jv_at(argv, 2) == NULL);
	int64_t n;
	CHECK_INT(proto_jv_int(proto_jv_get(r, "n"), &n), 0);
	CHECK_INT(n, 42);
	CHECK_INT(proto_jv_int(proto_jv_get(r, "big"), &n), -1);
	CHECK_INT(proto_jv_int(proto_jv_get(r, "f"), &n), -1);
	CHECK_INT(proto_jv_int(proto_jv_get(r, "name"), &n), -1);
	int b;
	CHECK_INT(proto_jv_bool(proto_jv_get(r, "q"), &b), 0);
	CHECK_INT(b, 1);
	CHECK_INT(proto_jv_type(proto_jv_get(r, "nil")), PROTO_J_NULL);
	CHECK(proto_jv_get(r, "missing") == NULL);
	CHECK(proto_jv_get_str(r, "n") == NULL);
	size_t count = 0;
	for (const struct proto_jv *m = proto_jv_first(r); m; m = proto_jv_next(m))
		count += proto_jv_key(m) != NULL;
	CHECK_INT(count, 7);
	proto_json_free(d);
}

TEST(proto_json_rejects_hostile_input)
{
	char err[256];
	static const struct {
		const char *in, *why;
	} bad[] = {
		{ "", "json: empty" },
		{ "{\"a\":1} x", "json: trailing data at byte 8" },
		{ "{\"a\":", "json: invalid JSON at byte 4" },
		{ "\"\\u0000\"", "json: NUL character (\\u0000) in a string at byte 1" },
		{ "\"\xff\"", "json: invalid UTF-8 at byte 1" },
		{ "[01]", "json: malformed number at byte 1" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK(proto_json_parse(bad[i].in, strlen(bad[i].in), err, sizeof err) == NULL);
		CHECK_STR(err, bad[i].why);
	}
	char deep[200];
	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	CHECK(proto_json_parse(deep, sizeof deep, err, sizeof err) == NULL);
	CHECK_STR(err, "json: nested deeper than 64 levels");
	/* a duplicated key is ambiguous: not readable */
	const char *dup = "{\"a\":1,\"a\":2}";
	struct proto_json *d = proto_json_parse(dup, strlen(dup), err, sizeof err);
	CHECK(d != NULL);
	CHECK(proto_jv_get(proto_json_root(d), "a") == NULL);
	proto_json_free(d);
}
