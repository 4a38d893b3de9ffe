#include "http.h"

#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "xalloc.h"

/* Parse s whole; returns the result, *used the bytes consumed. */
static int parse_all(struct http_parser *p, const char *s, size_t *used)
{
	size_t u = 0;
	int r = http_parse(p, s, strlen(s), &u);
	if (used)
		*used = u;
	return r;
}

/* Parse s one byte at a time; returns the result of the last call. */
static int parse_bytes(struct http_parser *p, const char *s, size_t *used)
{
	size_t n = strlen(s), total = 0;
	int r = HTTP_MORE;
	for (size_t i = 0; i < n && r == HTTP_MORE; i++) {
		size_t u;
		r = http_parse(p, s + i, 1, &u);
		total += u;
	}
	if (used)
		*used = total;
	return r;
}

/* Expect a request to fail with status, both whole and byte by byte. */
static void expect_req_error(const char *s, int status, const char *reason_part)
{
	for (int mode = 0; mode < 2; mode++) {
		struct http_parser *p = http_new(HTTP_REQUEST);
		int r = mode ? parse_bytes(p, s, NULL) : parse_all(p, s, NULL);
		if (r != HTTP_ERROR || http_error_status(p) != status ||
		    (reason_part && !strstr(http_error(p), reason_part)))
			harness_fail(__FILE__, __LINE__, "request %s: r=%d status=%d reason='%s'", s, r,
				     http_error_status(p), http_error(p));
		http_free(p);
	}
}

TEST(http_get_request)
{
	const char *s = "GET /api/v1/apps?name=web&x=%41 HTTP/1.1\r\nHost: base\r\n"
			"User-Agent: t\r\nX-Empty:\r\nAccept:  text/plain  \r\n\r\n";
	for (int mode = 0; mode < 2; mode++) {
		struct http_parser *p = http_new(HTTP_REQUEST);
		size_t used;
		int r = mode ? parse_bytes(p, s, &used) : parse_all(p, s, &used);
		CHECK_INT(r, HTTP_DONE);
		CHECK_INT(used, strlen(s));
		CHECK_STR(http_method(p), "GET");
		CHECK_STR(http_target(p), "/api/v1/apps?name=web&x=%41");
		CHECK_STR(http_path(p), "/api/v1/apps");
		CHECK_STR(http_query(p), "name=web&x=%41");
		CHECK_INT(http_minor(p), 1);
		CHECK_INT(http_header_count(p), 4);
		CHECK_STR(http_header(p, "HOST"), "base");
		CHECK_STR(http_header(p, "accept"), "text/plain");
		CHECK_STR(http_header(p, "x-empty"), "");
		CHECK_STR(http_header_name(p, 1), "User-Agent");
		CHECK(http_header(p, "missing") == NULL);
		CHECK(http_keep_alive(p));
		size_t blen;
		http_body(p, &blen);
		CHECK_INT(blen, 0);
		http_free(p);
	}
}

TEST(http_post_with_body_and_more_calls)
{
	const char *s = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
	struct http_parser *p = http_new(HTTP_REQUEST);
	size_t used;
	CHECK_INT(parse_all(p, s, &used), HTTP_DONE);
	CHECK_INT(used, strlen(s) - 5);
	size_t blen;
	CHECK_STR(http_body(p, &blen), "hello");
	CHECK_INT(blen, 5);
	CHECK_INT(http_parse(p, "zz", 2, &used), HTTP_DONE);
	CHECK_INT(used, 0);
	http_free(p);
}

TEST(http_chunked_request_with_extension_and_trailer)
{
	const char *s = "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
			"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n";
	for (int mode = 0; mode < 2; mode++) {
		struct http_parser *p = http_new(HTTP_REQUEST);
		size_t used;
		int r = mode ? parse_bytes(p, s, &used) : parse_all(p, s, &used);
		CHECK_INT(r, HTTP_DONE);
		CHECK_INT(used, strlen(s));
		CHECK_STR(http_body(p, NULL), "hello world");
		CHECK(http_header(p, "x-sum") == NULL); /* trailers are discarded */
		http_free(p);
	}
}

TEST(http_pipelined_requests)
{
	const char *s = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
			"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
	struct http_parser *p = http_new(HTTP_REQUEST);
	size_t used, off = 0, n = strlen(s);
	CHECK_INT(http_parse(p, s, n, &used), HTTP_DONE);
	CHECK_STR(http_path(p), "/a");
	CHECK(http_keep_alive(p));
	off += used;
	http_reset(p);
	CHECK_INT(http_parse(p, s + off, n - off, &used), HTTP_DONE);
	CHECK_INT(off + used, n);
	CHECK_STR(http_method(p), "POST");
	CHECK_STR(http_body(p, NULL), "ok");
	CHECK(!http_keep_alive(p));
	http_reset(p);
	CHECK_INT(http_finish(p), HTTP_MORE);
	http_free(p);
}

TEST(http_10_keep_alive_and_empty_lines)
{
	struct http_parser *p = http_new(HTTP_REQUEST);
	CHECK_INT(parse_all(p, "\r\nGET / HTTP/1.0\r\n\r\n", NULL), HTTP_DONE);
	CHECK_INT(http_minor(p), 0);
	CHECK(!http_keep_alive(p));
	http_reset(p);
	CHECK_INT(parse_all(p, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", NULL), HTTP_DONE);
	CHECK(http_keep_alive(p));
	http_reset(p);
	CHECK_INT(parse_all(p, "GET * HTTP/1.1\r\nHost: a\r\n\r\n", NULL), HTTP_ERROR);
	http_reset(p);
	CHECK_INT(parse_all(p, "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", NULL), HTTP_DONE);
	http_free(p);
}

TEST(http_limits_lines)
{
	struct buf b = BUF_INIT;
	/* a request line of exactly 8192 bytes passes, 8193 is 414 */
	buf_puts(&b, "GET /");
	while (b.len < 8192 - 9)
		buf_putc(&b, 'a');
	buf_puts(&b, " HTTP/1.1");
	CHECK_INT(b.len, 8192);
	buf_puts(&b, "\r\nHost: a\r\n\r\n");
	struct http_parser *p = http_new(HTTP_REQUEST);
	CHECK_INT(parse_all(p, b.data, NULL), HTTP_DONE);
	http_free(p);
	buf_reset(&b);
	buf_puts(&b, "GET /");
	while (b.len < 8193 - 9)
		buf_putc(&b, 'a');
	buf_puts(&b, " HTTP/1.1\r\nHost: a\r\n\r\n");
	expect_req_error(b.data, 414, "start line exceeds 8192");

	/* a header line over 8 KiB: 431 */
	buf_reset(&b);
	buf_puts(&b, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
	for (int i = 0; i < 8190; i++)
		buf_putc(&b, 'v');
	buf_puts(&b, "\r\n\r\n");
	expect_req_error(b.data, 431, "header line exceeds");

	/* lowered limits apply */
	p = http_new(HTTP_REQUEST);
	http_limits(p)->start_line = 16;
	CHECK_INT(parse_all(p, "GET /0123456789abc HTTP/1.1\r\n", NULL), HTTP_ERROR);
	CHECK_INT(http_error_status(p), 414);
	http_free(p);
	buf_release(&b);
}

TEST(http_limits_head_and_count)
{
	struct buf b = BUF_INIT;
	buf_puts(&b, "GET / HTTP/1.1\r\nHost: a\r\n");
	for (int i = 0; i < 99; i++)
		buf_printf(&b, "X-%d: v\r\n", i);
	buf_puts(&b, "\r\n");
	struct http_parser *p = http_new(HTTP_REQUEST);
	CHECK_INT(parse_all(p, b.data, NULL), HTTP_DONE);
	CHECK_INT(http_header_count(p), 100);
	http_free(p);

	buf_truncate(&b, b.len - 2);
	buf_puts(&b, "X-last: v\r\n\r\n");
	expect_req_error(b.data, 431, "more than 100 headers");

	/* 5 headers of 7000 bytes: each line fits, the head does not */
	buf_reset(&b);
	buf_puts(&b, "GET / HTTP/1.1\r\nHost: a\r\n");
	for (int i = 0; i < 5; i++) {
		buf_printf(&b, "X-%d: ", i);
		for (int k = 0; k < 7000; k++)
			buf_putc(&b, 'v');
		buf_puts(&b, "\r\n");
	}
	buf_puts(&b, "\r\n");
	expect_req_error(b.data, 431, "head exceeds 32768");
	buf_release(&b);
}

/* When one piece crosses two limits, the error is the one crossed first,
 * however the input is split. */
TEST(http_limits_do_not_depend_on_splits)
{
	const char *s = "GET / HTTP/1.1\r\nHost: a\r\n"
			"X-Long: 0123456789012345678901234567890123456789012345678901234567890\r\n\r\n";
	const char *want[2] = {"head exceeds 40", "header line exceeds 30"};
	for (int lim = 0; lim < 2; lim++) {
		for (int mode = 0; mode < 2; mode++) {
			struct http_parser *p = http_new(HTTP_REQUEST);
			http_limits(p)->head = lim ? 60 : 40;
			http_limits(p)->header_line = 30;
			int r = mode ? parse_bytes(p, s, NULL) : parse_all(p, s, NULL);
			CHECK_INT(r, HTTP_ERROR);
			CHECK_INT(http_error_status(p), 431);
			if (!strstr(http_error(p), want[lim]))
				harness_fail(__FILE__, __LINE__, "lim %d mode %d: %s", lim, mode,
					     http_error(p));
			http_free(p);
		}
	}
}

TEST(http_limits_body)
{
	expect_req_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n", 413, NULL);
	struct http_parser *p = http_new(HTTP_REQUEST);
	http_limits(p)->body = 10;
	CHECK_INT(parse_all(p, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789",
			    NULL),
		  HTTP_DONE);
	http_reset(p);
	CHECK_INT(parse_all(p, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
			       "6\r\nabcdef\r\n5\r\n",
			    NULL),
		  HTTP_ERROR);
	CHECK_INT(http_error_status(p), 413);
	http_reset(p);
	/* trailers are bounded */
	http_limits(p)->trailers = 20;
	CHECK_INT(parse_all(p, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
			       "0\r\nX-Trailer: 0123456789abcdef\r\n\r\n",
			    NULL),
		  HTTP_ERROR);
	CHECK_INT(http_error_status(p), 431);
	http_free(p);
}

TEST(http_smuggling_rejected)
{
	expect_req_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
			 "Transfer-Encoding: chunked\r\n\r\n",
			 400, "both transfer-encoding and content-length");
	expect_req_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
			 400, "different values");
	expect_req_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400,
			 "not a number");
	expect_req_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400,
			 "not a number");
	expect_req_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400,
			 "not a number");
	expect_req_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
			 400, "overflows");
	expect_req_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400, "empty");
	expect_req_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
			 501, "not supported");
	expect_req_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
			 "Transfer-Encoding: chunked\r\n\r\n",
			 501, NULL);
	expect_req_error("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "http/1.0");
	const char *te = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
	char s[256];
	const char *bad_chunks[] = {
		"zz\r\n",			 /* not hex */
		"-5\r\n",			 /* negative */
		"0x5\r\nhello\r\n0\r\n\r\n",	 /* 0x prefix */
		"11111111111111111\r\n",	 /* 17 hex digits: overflow */
		"5\r\nhelloXX0\r\n\r\n",	 /* data not followed by CRLF */
		"5;ext\nhello\r\n",		 /* bare LF in the size line */
		"5;e\rx\r\nhello\r\n",		 /* bare CR in an extension */
		"5 x\r\n",			 /* junk after the size */
		"\r\n",				 /* empty size */
	};
	for (size_t i = 0; i < sizeof(bad_chunks) / sizeof(*bad_chunks); i++) {
		snprintf(s, sizeof(s), "%s%s", te, bad_chunks[i]);
		expect_req_error(s, 400, NULL);
	}
	/* the NUL case cannot be a C string: feed bytes */
	struct http_parser *p = http_new(HTTP_REQUEST);
	size_t used;
	CHECK_INT(parse_all(p, te, NULL), HTTP_MORE);
	CHECK_INT(http_parse(p, "5;a\0b\r\n", 7, &used), HTTP_ERROR);
	CHECK_INT(http_error_status(p), 400);
	http_free(p);
}

TEST(http_line_endings_and_bytes)
{
	/* bare LF is rejected everywhere (documented in http.h) */
	expect_req_error("GET / HTTP/1.1\nHost: a\n\n", 400, "bare LF");
	expect_req_error("GET / HTTP/1.1\r\nHost: a\n\r\n", 400, "bare LF");
	expect_req_error("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400, "bare CR");
	expect_req_error("GET /a\001 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "origin-form");
	expect_req_error("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, NULL);
	expect_req_error("GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "origin-form");
	expect_req_error("GET http://evil/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "origin-form");
	expect_req_error("CONNECT evil:443 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "origin-form");
	expect_req_error("GET /#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400, "origin-form");
	expect_req_error("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "not a token");
	expect_req_error("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, NULL);
	expect_req_error("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "not supported");
	expect_req_error("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "version");
	expect_req_error("GET / http/1.1\r\nHost: a\r\n\r\n", 400, "version");
	expect_req_error("GET / HTTP/1.1\r\nHost a\r\n\r\n", 400, "no colon");
	expect_req_error("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "whitespace before its colon");
	expect_req_error("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n  folded\r\n\r\n", 400,
			 "obsolete line folding");
	expect_req_error("GET / HTTP/1.1\r\nHo[st: a\r\n\r\n", 400, "not a token");
	expect_req_error("GET / HTTP/1.1\r\n: a\r\n\r\n", 400, "not a token");
	expect_req_error("GET / HTTP/1.1\r\nHost: a\r\nX: a\033b\r\n\r\n", 400, "control character");
	expect_req_error("GET / HTTP/1.1\r\n\r\n", 400, "Host");
	expect_req_error("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400, "Host");
	struct http_parser *p = http_new(HTTP_REQUEST);
	size_t used;
	CHECK_INT(http_parse(p, "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n", 29, &used), HTTP_ERROR);
	CHECK_INT(http_error_status(p), 400);
	http_free(p);
	/* truncated at end of stream */
	p = http_new(HTTP_REQUEST);
	CHECK_INT(parse_all(p, "GET / HTTP/1.1\r\nHost: a\r\n", NULL), HTTP_MORE);
	CHECK_INT(http_finish(p), HTTP_ERROR);
	CHECK(strstr(http_error(p), "truncated"));
	http_free(p);
}

TEST(http_responses)
{
	struct http_parser *p = http_new(HTTP_RESPONSE);
	const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
	CHECK_INT(parse_bytes(p, s, NULL), HTTP_DONE);
	CHECK_INT(http_status(p), 200);
	CHECK_STR(http_reason(p), "OK");
	CHECK_STR(http_body(p, NULL), "abc");
	CHECK(http_keep_alive(p));
	http_reset(p);

	/* no length: read until close */
	CHECK_INT(parse_all(p, "HTTP/1.0 200 Fine\r\nServer: x\r\n\r\npart1", NULL), HTTP_MORE);
	CHECK_INT(parse_all(p, "part2", NULL), HTTP_MORE);
	CHECK_INT(http_finish(p), HTTP_DONE);
	CHECK_STR(http_body(p, NULL), "part1part2");
	CHECK(!http_keep_alive(p));
	http_reset(p);

	/* chunked response */
	CHECK_INT(parse_bytes(p, "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
				 "3\r\nnot\r\nA\r\n found...!\r\n0\r\n\r\n",
			      NULL),
		  HTTP_DONE);
	CHECK_INT(http_status(p), 404);
	CHECK_STR(http_body(p, NULL), "not found...!");
	http_reset(p);

	/* 204 and 304 have no body; neither does the answer to HEAD */
	CHECK_INT(parse_all(p, "HTTP/1.1 204 No Content\r\n\r\n", NULL), HTTP_DONE);
	http_reset(p);
	http_set_head_request(p, 1);
	CHECK_INT(parse_all(p, "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", NULL), HTTP_DONE);
	http_set_head_request(p, 0);
	http_reset(p);

	/* empty reason, missing reason separator */
	CHECK_INT(parse_all(p, "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", NULL), HTTP_DONE);
	CHECK_STR(http_reason(p), "");
	http_reset(p);
	CHECK_INT(parse_all(p, "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", NULL), HTTP_DONE);
	http_reset(p);

	/* bad status lines */
	CHECK_INT(parse_all(p, "HTTP/1.1 20 OK\r\n", NULL), HTTP_ERROR);
	http_reset(p);
	CHECK_INT(parse_all(p, "HTTP/1.1 2000 OK\r\n", NULL), HTTP_ERROR);
	http_reset(p);
	CHECK_INT(parse_all(p, "HTTP/3.0 200 OK\r\n", NULL), HTTP_ERROR);
	CHECK_INT(http_error_status(p), 505);
	http_reset(p);
	CHECK_INT(parse_all(p, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
			    NULL),
		  HTTP_ERROR);
	http_reset(p);
	/* oversize body read until close */
	http_limits(p)->body = 4;
	CHECK_INT(parse_all(p, "HTTP/1.1 200 OK\r\n\r\n12345", NULL), HTTP_ERROR);
	CHECK_INT(http_error_status(p), 413);
	http_free(p);
}

TEST(http_101_leaves_the_rest)
{
	struct http_parser *p = http_new(HTTP_RESPONSE);
	const char *s = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			"Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n\x81\x02hi";
	size_t used;
	CHECK_INT(parse_all(p, s, &used), HTTP_DONE);
	CHECK_INT(used, strlen(s) - 4);
	CHECK_INT(http_status(p), 101);
	CHECK(http_header_has_token(p, "connection", "upgrade"));
	CHECK(http_header_has_token(p, "UPGRADE", "WebSocket"));
	CHECK(!http_header_has_token(p, "connection", "close"));
	http_free(p);

	/* upgrade request: GET without body leaves the frames */
	p = http_new(HTTP_REQUEST);
	s = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n\r\n\x81";
	CHECK_INT(parse_all(p, s, &used), HTTP_DONE);
	CHECK_INT(used, strlen(s) - 1);
	CHECK(http_header_has_token(p, "Connection", "upgrade"));
	CHECK(http_header_has_token(p, "Connection", "keep-alive"));
	CHECK(!http_header_has_token(p, "Connection", "keep"));
	http_free(p);
}

TEST(http_pct_decode_and_query)
{
	struct buf b = BUF_INIT;
	CHECK_INT(http_pct_decode(&b, "/a%20b%2Fc+d", 12, 0), 0);
	CHECK_STR(b.data, "/a b/c+d");
	buf_reset(&b);
	CHECK_INT(http_pct_decode(&b, "a+b%2b", 6, 1), 0);
	CHECK_STR(b.data, "a b+");
	buf_reset(&b);
	buf_puts(&b, "keep");
	CHECK_INT(http_pct_decode(&b, "x%00y", 5, 0), -1);
	CHECK_INT(http_pct_decode(&b, "x%4", 3, 0), -1);
	CHECK_INT(http_pct_decode(&b, "x%", 2, 0), -1);
	CHECK_INT(http_pct_decode(&b, "%zz", 3, 0), -1);
	CHECK_INT(http_pct_decode(&b, "%4g", 3, 0), -1);
	CHECK_STR(b.data, "keep");
	buf_reset(&b);

	const char *q = "name=web%20app&flag&empty=&a%62c=1&name=second";
	CHECK_INT(http_query_param(&b, q, "name"), 1);
	CHECK_STR(b.data, "web app");
	buf_reset(&b);
	CHECK_INT(http_query_param(&b, q, "flag"), 1);
	CHECK_STR(b.data, "");
	CHECK_INT(http_query_param(&b, q, "empty"), 1);
	CHECK_INT(http_query_param(&b, q, "abc"), 1);
	CHECK_STR(b.data, "1");
	CHECK_INT(http_query_param(&b, q, "nam"), 0);
	CHECK_INT(http_query_param(&b, q, "nothere"), 0);
	CHECK_INT(http_query_param(&b, "", "x"), 0);
	CHECK_INT(http_query_param(&b, "a=%00", "a"), -1);
	CHECK_INT(http_query_param(&b, "a=1&b=%G0", "a"), -1);
	buf_release(&b);
}

TEST(http_writers)
{
	struct buf b = BUF_INIT;
	CHECK_INT(http_write_response_head(&b, 404, "Content-Length", "0", "X-A", "b c", NULL), 0);
	CHECK_STR(b.data, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nX-A: b c\r\n\r\n");
	size_t len = b.len;
	CHECK_INT(http_write_response_head(&b, 200, "X", "a\r\nSet-Cookie: evil", NULL), -1);
	CHECK_INT(http_write_response_head(&b, 200, "Bad Name", "v", NULL), -1);
	CHECK_INT(http_write_response_head(&b, 42, NULL), -1);
	CHECK_INT(b.len, len);
	buf_reset(&b);
	CHECK_INT(http_write_request_head(&b, "GET", "/ws?x=1", "Host", "base", NULL), 0);
	CHECK_STR(b.data, "GET /ws?x=1 HTTP/1.1\r\nHost: base\r\n\r\n");
	CHECK_INT(http_write_request_head(&b, "GET", "/a b", NULL), -1);
	CHECK_INT(http_write_request_head(&b, "GET", "http://x/", NULL), -1);
	CHECK_INT(http_write_request_head(&b, "G T", "/", NULL), -1);

	/* what we write, we parse */
	struct http_parser *p = http_new(HTTP_REQUEST);
	size_t used;
	CHECK_INT(http_parse(p, b.data, b.len, &used), HTTP_DONE);
	CHECK_STR(http_header(p, "host"), "base");
	CHECK_STR(http_status_text(101), "Switching Protocols");
	CHECK_STR(http_status_text(999), "Unknown");
	http_free(p);
	buf_release(&b);
}
