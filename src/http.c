#include "http.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "xalloc.h"

enum state {
	S_START,      /* request or status line */
	S_HEADER,     /* header lines up to the blank line */
	S_BODY,       /* Content-Length bytes */
	S_CHUNK_SIZE, /* chunk-size [; ext] CRLF */
	S_CHUNK_DATA, /* chunk bytes */
	S_CHUNK_END,  /* the CRLF after chunk data */
	S_TRAILER,    /* trailer lines up to the blank line, discarded */
	S_EOF_BODY,   /* response body read until the peer closes */
	S_DONE,
	S_ERROR,
};

#define NONE SIZE_MAX

struct field {
	size_t name, value; /* offsets into strs */
};

struct http_parser {
	enum http_kind kind;
	struct http_limits lim;
	int head_request;

	enum state state;
	struct buf line; /* the line being read, without its LF */
	size_t head_len; /* bytes of the head so far */
	size_t trailer_len;
	uint64_t remaining; /* of the body or of the current chunk */

	struct buf strs; /* NUL-separated strings of the head */
	size_t method, target, path, query, reason;
	int status, minor, keep_alive;
	struct field *fields;
	size_t nfields, cap;
	struct buf body;

	int err_status;
	char err[160];
};

static const char tchar_tab[] = "!#$%&'*+-.^_`|~";

static int is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr(tchar_tab, c));
}

static int is_token(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_tchar((unsigned char)s[i]))
			return 0;
	return 1;
}

/* field-value characters: HTAB, SP, VCHAR, obs-text. */
static int is_vchar(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A printable excerpt of untrusted bytes for an error message. */
static const char *excerpt(char *out, size_t outlen, const char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n && k + 4 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];
		out[k++] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
	}
	if (n > 0 && k + 4 >= outlen) {
		memcpy(out + k, "...", 3);
		k += 3;
	}
	out[k] = 0;
	return out;
}

__attribute__((format(printf, 3, 4))) static int fail(struct http_parser *p, int status,
						       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
	p->err_status = status;
	p->state = S_ERROR;
	return HTTP_ERROR;
}

struct http_parser *http_new(enum http_kind kind)
{
	struct http_parser *p = xcalloc(1, sizeof(*p));
	p->kind = kind;
	p->lim.start_line = 8192;
	p->lim.header_line = 8192;
	p->lim.head = 32768;
	p->lim.headers = 100;
	p->lim.body = 1 << 20;
	p->lim.trailers = 8192;
	buf_init(&p->line);
	buf_init(&p->strs);
	buf_init(&p->body);
	http_reset(p);
	return p;
}

void http_free(struct http_parser *p)
{
	if (!p)
		return;
	buf_release(&p->line);
	buf_release(&p->strs);
	buf_release(&p->body);
	free(p->fields);
	free(p);
}

struct http_limits *http_limits(struct http_parser *p)
{
	return &p->lim;
}

void http_set_head_request(struct http_parser *p, int head)
{
	p->head_request = head;
}

void http_reset(struct http_parser *p)
{
	p->state = S_START;
	buf_reset(&p->line);
	buf_reset(&p->strs);
	buf_reset(&p->body);
	p->head_len = p->trailer_len = 0;
	p->remaining = 0;
	p->method = p->target = p->path = p->query = p->reason = NONE;
	p->status = p->minor = p->keep_alive = 0;
	p->nfields = 0;
	p->err_status = 0;
	p->err[0] = 0;
}

static size_t add_str(struct http_parser *p, const char *s, size_t n)
{
	size_t off = p->strs.len;
	buf_add(&p->strs, s, n);
	buf_putc(&p->strs, 0);
	return off;
}

static const char *str_at(const struct http_parser *p, size_t off)
{
	return off == NONE ? NULL : p->strs.data + off;
}

static int valid_target(const char *method, size_t mlen, const char *t, size_t n)
{
	if (n == 1 && t[0] == '*')
		return mlen == 7 && memcmp(method, "OPTIONS", 7) == 0;
	if (n == 0 || t[0] != '/')
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];
		if (c <= 0x20 || c >= 0x7f || c == '#')
			return 0;
	}
	return 1;
}

/* "HTTP/1.1" -> 1, "HTTP/1.0" -> 0, another HTTP/d.d -> -2, else -1. */
static int parse_version(const char *s, size_t n)
{
	if (n != 8 || memcmp(s, "HTTP/", 5) != 0 || s[6] != '.' || hexval((unsigned char)s[5]) < 0 ||
	    s[5] > '9' || s[7] < '0' || s[7] > '9')
		return -1;
	if (s[5] == '1' && (s[7] == '1' || s[7] == '0'))
		return s[7] - '0';
	return -2;
}

static int request_line(struct http_parser *p, const char *s, size_t n)
{
	char ex[48];
	const char *sp1 = memchr(s, ' ', n);
	if (!sp1)
		return fail(p, 400, "request line '%s' has no target",
			    excerpt(ex, sizeof(ex), s, n));
	size_t mlen = (size_t)(sp1 - s);
	if (!is_token(s, mlen))
		return fail(p, 400, "request method '%s' is not a token",
			    excerpt(ex, sizeof(ex), s, mlen));
	const char *t = sp1 + 1;
	const char *sp2 = memchr(t, ' ', n - mlen - 1);
	if (!sp2)
		return fail(p, 400, "request line '%s' has no version",
			    excerpt(ex, sizeof(ex), s, n));
	size_t tlen = (size_t)(sp2 - t);
	if (!valid_target(s, mlen, t, tlen))
		return fail(p, 400, "request target '%s' is not origin-form",
			    excerpt(ex, sizeof(ex), t, tlen));
	const char *v = sp2 + 1;
	size_t vlen = n - (size_t)(v - s);
	int minor = parse_version(v, vlen);
	if (minor == -2)
		return fail(p, 505, "http version '%s' is not supported",
			    excerpt(ex, sizeof(ex), v, vlen));
	if (minor < 0)
		return fail(p, 400, "http version '%s' is invalid", excerpt(ex, sizeof(ex), v, vlen));
	p->minor = minor;
	p->method = add_str(p, s, mlen);
	p->target = add_str(p, t, tlen);
	const char *q = memchr(t, '?', tlen);
	size_t plen = q ? (size_t)(q - t) : tlen;
	p->path = add_str(p, t, plen);
	p->query = q ? add_str(p, q + 1, tlen - plen - 1) : add_str(p, "", 0);
	return 0;
}

static int status_line(struct http_parser *p, const char *s, size_t n)
{
	char ex[48];
	const char *sp = memchr(s, ' ', n);
	size_t vlen = sp ? (size_t)(sp - s) : n;
	int minor = parse_version(s, vlen);
	if (minor == -2)
		return fail(p, 505, "http version '%s' is not supported",
			    excerpt(ex, sizeof(ex), s, vlen));
	if (minor < 0 || !sp)
		return fail(p, 400, "status line '%s' is invalid", excerpt(ex, sizeof(ex), s, n));
	const char *c = sp + 1;
	size_t rest = n - vlen - 1;
	if (rest < 3 || c[0] < '1' || c[0] > '9' || c[1] < '0' || c[1] > '9' || c[2] < '0' ||
	    c[2] > '9' || (rest > 3 && c[3] != ' '))
		return fail(p, 400, "status line '%s' has no valid status code",
			    excerpt(ex, sizeof(ex), s, n));
	const char *r = rest > 3 ? c + 4 : c + 3;
	size_t rlen = rest > 3 ? rest - 4 : 0;
	for (size_t i = 0; i < rlen; i++)
		if (!is_vchar((unsigned char)r[i]))
			return fail(p, 400, "status line reason has a control character");
	p->minor = minor;
	p->status = (c[0] - '0') * 100 + (c[1] - '0') * 10 + (c[2] - '0');
	p->reason = add_str(p, r, rlen);
	return 0;
}

/* Check a header or trailer line; store it when store is set. */
static int field_line(struct http_parser *p, const char *s, size_t n, int store)
{
	char ex[48];
	const char *what = store ? "header" : "trailer";
	if (s[0] == ' ' || s[0] == '\t')
		return fail(p, 400, "%s line '%s' is obsolete line folding", what,
			    excerpt(ex, sizeof(ex), s, n));
	const char *colon = memchr(s, ':', n);
	if (!colon)
		return fail(p, 400, "%s '%s' has no colon", what, excerpt(ex, sizeof(ex), s, n));
	size_t nlen = (size_t)(colon - s);
	if (nlen > 0 && (s[nlen - 1] == ' ' || s[nlen - 1] == '\t'))
		return fail(p, 400, "%s '%s' has whitespace before its colon", what,
			    excerpt(ex, sizeof(ex), s, nlen));
	if (!is_token(s, nlen))
		return fail(p, 400, "%s name '%s' is not a token", what,
			    excerpt(ex, sizeof(ex), s, nlen));
	const char *v = colon + 1, *end = s + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (const char *c = v; c < end; c++)
		if (!is_vchar((unsigned char)*c))
			return fail(p, 400, "%s '%s' has a control character in its value", what,
				    excerpt(ex, sizeof(ex), s, nlen));
	if (!store)
		return 0;
	if (p->nfields >= p->lim.headers)
		return fail(p, 431, "head has more than %zu headers", p->lim.headers);
	XGROW(p->fields, p->cap, p->nfields + 1);
	struct field *f = &p->fields[p->nfields++];
	f->name = add_str(p, s, nlen);
	f->value = add_str(p, v, (size_t)(end - v));
	return 0;
}

/* Decide how the body is framed once the head is complete. */
static int end_of_head(struct http_parser *p)
{
	char ex[48];
	size_t hosts = 0, tes = 0, cls = 0;
	uint64_t cl = 0;
	const char *te = NULL;
	for (size_t i = 0; i < p->nfields; i++) {
		const char *name = str_at(p, p->fields[i].name);
		const char *val = str_at(p, p->fields[i].value);
		if (strcasecmp(name, "host") == 0) {
			hosts++;
		} else if (strcasecmp(name, "transfer-encoding") == 0) {
			tes++;
			te = val;
		} else if (strcasecmp(name, "content-length") == 0) {
			uint64_t v = 0;
			size_t len = strlen(val);
			if (len == 0)
				return fail(p, 400, "content-length is empty");
			for (size_t k = 0; k < len; k++) {
				if (val[k] < '0' || val[k] > '9')
					return fail(p, 400, "content-length '%s' is not a number",
						    excerpt(ex, sizeof(ex), val, len));
				if (v > (UINT64_MAX - 9) / 10)
					return fail(p, 400, "content-length '%s' overflows",
						    excerpt(ex, sizeof(ex), val, len));
				v = v * 10 + (uint64_t)(val[k] - '0');
			}
			if (cls > 0 && v != cl)
				return fail(p, 400, "content-length given twice with different values");
			cl = v;
			cls++;
		}
	}
	int close = http_header_has_token(p, "connection", "close");
	int ka = http_header_has_token(p, "connection", "keep-alive");
	p->keep_alive = !close && (p->minor == 1 || ka);

	if (p->kind == HTTP_REQUEST) {
		if (p->minor == 1 && hosts != 1)
			return fail(p, 400, hosts ? "request has %zu 'Host' headers"
						  : "request has %zu 'Host' header",
				    hosts);
	} else if (p->status < 200 || p->status == 204 || p->status == 304 || p->head_request) {
		p->state = S_DONE;
		return 0;
	}
	if (tes > 0) {
		if (cls > 0)
			return fail(p, 400, "message has both transfer-encoding and content-length");
		if (p->minor == 0)
			return fail(p, 400, "http/1.0 message has a transfer-encoding");
		if (tes > 1 || strcasecmp(te, "chunked") != 0)
			return fail(p, 501, "transfer-encoding '%s' is not supported",
				    tes > 1 ? "(repeated)" : excerpt(ex, sizeof(ex), te, strlen(te)));
		p->state = S_CHUNK_SIZE;
		return 0;
	}
	if (cls > 0) {
		if (cl > p->lim.body)
			return fail(p, 413, "content-length %llu exceeds the %zu-byte limit",
				    (unsigned long long)cl, p->lim.body);
		p->remaining = cl;
		p->state = cl ? S_BODY : S_DONE;
		return 0;
	}
	if (p->kind == HTTP_RESPONSE) {
		p->keep_alive = 0;
		p->state = S_EOF_BODY;
		return 0;
	}
	p->state = S_DONE;
	return 0;
}

static int chunk_size_line(struct http_parser *p, const char *s, size_t n)
{
	char ex[48];
	uint64_t v = 0;
	size_t i = 0;
	for (; i < n && hexval((unsigned char)s[i]) >= 0; i++) {
		if (i >= 16)
			return fail(p, 400, "chunk size '%s' overflows", excerpt(ex, sizeof(ex), s, n));
		v = v << 4 | (uint64_t)hexval((unsigned char)s[i]);
	}
	if (i == 0)
		return fail(p, 400, "chunk size '%s' is not hexadecimal",
			    excerpt(ex, sizeof(ex), s, n));
	size_t k = i;
	while (k < n && (s[k] == ' ' || s[k] == '\t'))
		k++;
	if (k < n && s[k] != ';')
		return fail(p, 400, "chunk size '%s' is not hexadecimal",
			    excerpt(ex, sizeof(ex), s, n));
	for (; k < n; k++)
		if (!is_vchar((unsigned char)s[k]))
			return fail(p, 400, "chunk extension has a control character");
	if (v > p->lim.body - p->body.len)
		return fail(p, 413, "chunked body exceeds the %zu-byte limit", p->lim.body);
	p->remaining = v;
	p->state = v ? S_CHUNK_DATA : S_TRAILER;
	return 0;
}

/* A complete line s[0..n) (CRLF removed) in state p->state. */
static int line_done(struct http_parser *p, const char *s, size_t n)
{
	switch (p->state) {
	case S_START:
		if (n == 0)
			return 0; /* RFC 9112 2.2: ignore empty lines before a request */
		if (p->kind == HTTP_REQUEST ? request_line(p, s, n) : status_line(p, s, n))
			return HTTP_ERROR;
		p->state = S_HEADER;
		return 0;
	case S_HEADER:
		if (n == 0)
			return end_of_head(p);
		return field_line(p, s, n, 1);
	case S_CHUNK_SIZE:
		return chunk_size_line(p, s, n);
	case S_CHUNK_END:
		if (n != 0)
			return fail(p, 400, "chunk data is not followed by CRLF");
		p->state = S_CHUNK_SIZE;
		return 0;
	case S_TRAILER:
		if (n == 0) {
			p->state = S_DONE;
			return 0;
		}
		return field_line(p, s, n, 0);
	default:
		return fail(p, 500, "http parser in a bad state");
	}
}

static size_t line_limit(const struct http_parser *p)
{
	switch (p->state) {
	case S_START:
		return p->lim.start_line;
	case S_CHUNK_END:
		return 0;
	default:
		return p->lim.header_line;
	}
}

static int line_too_long(struct http_parser *p)
{
	switch (p->state) {
	case S_START:
		return fail(p, p->kind == HTTP_REQUEST ? 414 : 400, "start line exceeds %zu bytes",
			    p->lim.start_line);
	case S_CHUNK_END:
		return fail(p, 400, "chunk data is not followed by CRLF");
	case S_CHUNK_SIZE:
		return fail(p, 400, "chunk size line exceeds %zu bytes", p->lim.header_line);
	default:
		return fail(p, 431, "header line exceeds %zu bytes", p->lim.header_line);
	}
}

/* Take bytes of a line; returns bytes consumed, or -1 after an error. */
static long feed_line(struct http_parser *p, const char *d, size_t len)
{
	const char *nl = memchr(d, '\n', len);
	size_t take = nl ? (size_t)(nl - d) + 1 : len;
	/* Two limits may be crossed within this piece: the line's and the
	 * head's (or the trailers'). The error is the one crossed at the
	 * earlier byte, so how the input is split never changes it. */
	size_t *total = NULL, total_lim = 0;
	if (p->state == S_START || p->state == S_HEADER)
		total = &p->head_len, total_lim = p->lim.head;
	else if (p->state == S_TRAILER)
		total = &p->trailer_len, total_lim = p->lim.trailers;
	size_t lim = line_limit(p), plain = take - (nl ? 1 : 0);
	/* the 1-based position in d of the byte crossing each limit, if any */
	size_t at_line = p->line.len + plain > lim + 1 ? lim + 2 - p->line.len : SIZE_MAX;
	size_t at_total = total && *total + take > total_lim ? total_lim - *total + 1 : SIZE_MAX;
	if (at_line != SIZE_MAX && at_line <= at_total)
		return line_too_long(p), -1;
	if (at_total != SIZE_MAX)
		return p->state == S_TRAILER
			       ? fail(p, 431, "trailers exceed %zu bytes", p->lim.trailers)
			       : fail(p, 431, "head exceeds %zu bytes", p->lim.head),
		       -1;
	if (total)
		*total += take;
	buf_add(&p->line, d, take - (nl ? 1 : 0));
	if (!nl)
		return (long)take;
	size_t n = p->line.len;
	if (n == 0 || p->line.data[n - 1] != '\r')
		return fail(p, 400, "line ends in a bare LF"), -1;
	n--;
	if (memchr(p->line.data, '\r', n))
		return fail(p, 400, "line holds a bare CR"), -1;
	if (memchr(p->line.data, 0, n))
		return fail(p, 400, "line holds a NUL byte"), -1;
	int r = line_done(p, p->line.data, n);
	buf_reset(&p->line);
	return r == HTTP_ERROR ? -1 : (long)take;
}

int http_parse(struct http_parser *p, const void *data, size_t len, size_t *used)
{
	const char *d = data;
	size_t i = 0;
	*used = 0;
	while (i < len && p->state != S_DONE && p->state != S_ERROR) {
		size_t avail = len - i, take;
		switch (p->state) {
		case S_BODY:
		case S_CHUNK_DATA:
			take = avail < p->remaining ? avail : (size_t)p->remaining;
			buf_add(&p->body, d + i, take);
			p->remaining -= take;
			if (p->remaining == 0)
				p->state = p->state == S_BODY ? S_DONE : S_CHUNK_END;
			break;
		case S_EOF_BODY:
			if (avail > p->lim.body - p->body.len) {
				fail(p, 413, "response body exceeds the %zu-byte limit", p->lim.body);
				return HTTP_ERROR;
			}
			take = avail;
			buf_add(&p->body, d + i, take);
			break;
		default: {
			long r = feed_line(p, d + i, avail);
			if (r < 0)
				return HTTP_ERROR;
			take = (size_t)r;
		}
		}
		i += take;
		*used = i;
	}
	if (p->state == S_ERROR)
		return HTTP_ERROR;
	return p->state == S_DONE ? HTTP_DONE : HTTP_MORE;
}

int http_finish(struct http_parser *p)
{
	switch (p->state) {
	case S_EOF_BODY:
		p->state = S_DONE;
		return HTTP_DONE;
	case S_DONE:
		return HTTP_DONE;
	case S_ERROR:
		return HTTP_ERROR;
	case S_START:
		if (p->head_len == 0)
			return HTTP_MORE;
		/* fall through */
	default:
		return fail(p, 400, "message truncated by end of stream");
	}
}

const char *http_error(const struct http_parser *p)
{
	return p->err;
}

int http_error_status(const struct http_parser *p)
{
	return p->err_status;
}

const char *http_method(const struct http_parser *p)
{
	return str_at(p, p->method);
}

const char *http_target(const struct http_parser *p)
{
	return str_at(p, p->target);
}

const char *http_path(const struct http_parser *p)
{
	return str_at(p, p->path);
}

const char *http_query(const struct http_parser *p)
{
	return str_at(p, p->query);
}

int http_status(const struct http_parser *p)
{
	return p->status;
}

const char *http_reason(const struct http_parser *p)
{
	return str_at(p, p->reason);
}

int http_minor(const struct http_parser *p)
{
	return p->minor;
}

size_t http_header_count(const struct http_parser *p)
{
	return p->nfields;
}

const char *http_header_name(const struct http_parser *p, size_t i)
{
	return i < p->nfields ? str_at(p, p->fields[i].name) : NULL;
}

const char *http_header_value(const struct http_parser *p, size_t i)
{
	return i < p->nfields ? str_at(p, p->fields[i].value) : NULL;
}

const char *http_header(const struct http_parser *p, const char *name)
{
	for (size_t i = 0; i < p->nfields; i++)
		if (strcasecmp(str_at(p, p->fields[i].name), name) == 0)
			return str_at(p, p->fields[i].value);
	return NULL;
}

int http_header_has_token(const struct http_parser *p, const char *name, const char *token)
{
	size_t tlen = strlen(token);
	for (size_t i = 0; i < p->nfields; i++) {
		if (strcasecmp(str_at(p, p->fields[i].name), name) != 0)
			continue;
		const char *s = str_at(p, p->fields[i].value);
		while (*s) {
			while (*s == ' ' || *s == '\t' || *s == ',')
				s++;
			const char *e = s;
			while (*e && *e != ',')
				e++;
			const char *t = e;
			while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
				t--;
			if ((size_t)(t - s) == tlen && strncasecmp(s, token, tlen) == 0)
				return 1;
			s = e;
		}
	}
	return 0;
}

const char *http_body(const struct http_parser *p, size_t *len)
{
	if (len)
		*len = p->body.len;
	return p->body.data;
}

int http_keep_alive(const struct http_parser *p)
{
	return p->keep_alive;
}

int http_pct_decode(struct buf *out, const char *s, size_t n, int plus_space)
{
	size_t start = out->len;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
			int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				buf_truncate(out, start);
				return -1;
			}
			buf_putc(out, hi << 4 | lo);
			i += 2;
		} else {
			buf_putc(out, plus_space && c == '+' ? ' ' : c);
		}
	}
	return 0;
}

int http_query_param(struct buf *out, const char *query, const char *name)
{
	struct buf scratch = BUF_INIT;
	size_t qlen = strlen(query);
	int r = http_pct_decode(&scratch, query, qlen, 1);
	const char *s = query, *end = query + qlen;
	while (r == 0 && s < end) {
		const char *amp = memchr(s, '&', (size_t)(end - s));
		const char *e = amp ? amp : end;
		const char *eq = memchr(s, '=', (size_t)(e - s));
		const char *ke = eq ? eq : e;
		buf_reset(&scratch);
		http_pct_decode(&scratch, s, (size_t)(ke - s), 1);
		if (ke > s && strcmp(scratch.data, name) == 0 && scratch.len == strlen(name)) {
			if (eq)
				http_pct_decode(out, eq + 1, (size_t)(e - eq - 1), 1);
			r = 1;
			break;
		}
		s = amp ? amp + 1 : end;
	}
	buf_release(&scratch);
	return r;
}

const char *http_status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

static int add_fields(struct buf *out, size_t start, va_list ap)
{
	const char *name;
	while ((name = va_arg(ap, const char *))) {
		const char *value = va_arg(ap, const char *);
		if (!is_token(name, strlen(name)) || !value)
			goto fail;
		for (const char *c = value; *c; c++)
			if (!is_vchar((unsigned char)*c))
				goto fail;
		buf_printf(out, "%s: %s\r\n", name, value);
	}
	buf_puts(out, "\r\n");
	return 0;
fail:
	buf_truncate(out, start);
	return -1;
}

int http_write_response_head(struct buf *out, int status, ...)
{
	if (status < 100 || status > 999)
		return -1;
	size_t start = out->len;
	buf_printf(out, "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
	va_list ap;
	va_start(ap, status);
	int r = add_fields(out, start, ap);
	va_end(ap);
	return r;
}

int http_write_request_head(struct buf *out, const char *method, const char *target, ...)
{
	size_t mlen = strlen(method);
	if (!is_token(method, mlen) || !valid_target(method, mlen, target, strlen(target)))
		return -1;
	size_t start = out->len;
	buf_printf(out, "%s %s HTTP/1.1\r\n", method, target);
	va_list ap;
	va_start(ap, target);
	int r = add_fields(out, start, ap);
	va_end(ap);
	return r;
}
