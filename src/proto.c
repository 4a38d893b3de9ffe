/* proto: the message codec (the only module that includes cJSON.h). */
#include "proto.h"

#include <cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "buf.h"
#include "xalloc.h"

/* cJSON's hooks are global: install ours once, before main, so cJSON never
 * returns NULL for lack of memory and its strings can be free()d. */
__attribute__((constructor)) static void proto_hooks(void)
{
	cJSON_Hooks h = {xmalloc, free};
	cJSON_InitHooks(&h);
}

/* --- tables generated from proto_msgs.def ------------------------------ */

enum ftype { FT_STR, FT_INT, FT_BOOL, FT_RAW, FT_STRS, FT_INTS };
#define PRES_REQ 1
#define PRES_OPT 0
#define NO_AUX	 SIZE_MAX

struct field {
	const char *name;
	enum ftype type;
	int required;
	const char *check;
	size_t off;
	size_t aux; /* offset of has_<f> (OPT INT, BOOL) or <f>_len (lists), or NO_AUX */
};

#define AUX_STR_REQ(m, f)  NO_AUX
#define AUX_STR_OPT(m, f)  NO_AUX
#define AUX_RAW_REQ(m, f)  NO_AUX
#define AUX_RAW_OPT(m, f)  NO_AUX
#define AUX_INT_REQ(m, f)  NO_AUX
#define AUX_INT_OPT(m, f)  offsetof(struct proto_##m, has_##f)
#define AUX_BOOL_REQ(m, f) NO_AUX
#define AUX_BOOL_OPT(m, f) offsetof(struct proto_##m, has_##f)
#define AUX_STRS_REQ(m, f) offsetof(struct proto_##m, f##_len)
#define AUX_STRS_OPT(m, f) offsetof(struct proto_##m, f##_len)
#define AUX_INTS_REQ(m, f) offsetof(struct proto_##m, f##_len)
#define AUX_INTS_OPT(m, f) offsetof(struct proto_##m, f##_len)

#define PROTO_MSG(NAME, name) static const struct field fields_##name[] = {
#define PROTO_FIELD(name, field, type, presence, check)                                            \
	{#field,                                                                                   \
	 FT_##type,                                                                                \
	 PRES_##presence,                                                                          \
	 check,                                                                                    \
	 offsetof(struct proto_##name, field),                                                     \
	 AUX_##type##_##presence(name, field)},
#define PROTO_END(name)                                                                            \
	{                                                                                          \
		NULL, FT_STR, 0, NULL, 0, 0                                                        \
	}                                                                                          \
	}                                                                                          \
	;
#include "proto_msgs.def"
#undef PROTO_MSG
#undef PROTO_FIELD
#undef PROTO_END

static const struct msgdef {
	const char *name;
	const struct field *fields;
} msgs[PROTO_TYPE_COUNT] = {
    [PROTO_NONE] = {NULL, NULL},
#define PROTO_MSG(NAME, name) [PROTO_##NAME] = {#name, fields_##name},
#define PROTO_FIELD(name, field, type, presence, check)
#define PROTO_END(name)
#include "proto_msgs.def"
#undef PROTO_MSG
#undef PROTO_FIELD
#undef PROTO_END
};

const char *proto_type_name(enum proto_type type)
{
	return type > PROTO_NONE && type < PROTO_TYPE_COUNT ? msgs[type].name : NULL;
}

enum proto_type proto_type_from_name(const char *name)
{
	for (int t = PROTO_NONE + 1; t < PROTO_TYPE_COUNT; t++)
		if (!strcmp(msgs[t].name, name))
			return (enum proto_type)t;
	return PROTO_NONE;
}

#define AT(body, off, T)  ((T *)(void *)((char *)(body) + (off)))
#define CAT(body, off, T) ((const T *)(const void *)((const char *)(body) + (off)))

/* --- problems --------------------------------------------------------------- */

struct errs {
	struct buf b;
	int n;
};

__attribute__((format(printf, 2, 3))) static void err_add(struct errs *e, const char *fmt, ...)
{
	va_list ap;
	if (e->n++)
		buf_puts(&e->b, "; ");
	va_start(ap, fmt);
	buf_vprintf(&e->b, fmt, ap);
	va_end(ap);
}

/* "message 'type': problems" into err; releases e. */
static void err_out(struct errs *e, const char *type, char *err, size_t errlen)
{
	if (err && errlen) {
		if (type)
			snprintf(err, errlen, "message '%s': %s", type, e->b.data);
		else
			snprintf(err, errlen, "message: %s", e->b.data);
	}
	buf_release(&e->b);
}

/* --- value checks ---------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t len;
	unsigned lo = 0x80, hi = 0xbf;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f; /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

static int utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		size_t l = utf8_len(p + i, n - i);
		if (!l)
			return 0;
		i += l;
	}
	return 1;
}

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* Length of the JSON number (RFC 8259 grammar) at p, or 0 when malformed:
 * cJSON hands numbers to strtod, which also takes "01", "1." and "1.e5". */
static size_t number_len(const unsigned char *p, size_t n)
{
	size_t i = 0;
	if (i < n && p[i] == '-')
		i++;
	if (i < n && p[i] == '0')
		i++;
	else if (i < n && is_digit(p[i]))
		while (i < n && is_digit(p[i]))
			i++;
	else
		return 0;
	if (i < n && p[i] == '.') {
		if (++i >= n || !is_digit(p[i]))
			return 0;
		while (i < n && is_digit(p[i]))
			i++;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		i++;
		if (i < n && (p[i] == '+' || p[i] == '-'))
			i++;
		if (i >= n || !is_digit(p[i]))
			return 0;
		while (i < n && is_digit(p[i]))
			i++;
	}
	if (i < n && (is_digit(p[i]) || p[i] == '.' || p[i] == 'e' || p[i] == 'E' || p[i] == '+' ||
		      p[i] == '-'))
		return 0;
	return i;
}

/* Checks what cJSON lets through in JSON text it parsed: invalid UTF-8, raw
 * control characters in strings, \u0000 (a NUL would cut the C string) and
 * numbers outside JSON's grammar.
 * Returns NULL or a reason, with the byte offset in *at. */
static const char *text_scan(const char *s, size_t n, size_t *at)
{
	const unsigned char *p = (const unsigned char *)s;
	int in_str = 0;
	for (size_t i = 0; i < n;) {
		*at = i;
		unsigned c = p[i];
		if (c >= 0x80) {
			size_t l = utf8_len(p + i, n - i);
			if (!l)
				return "invalid UTF-8";
			i += l;
			continue;
		}
		if (!in_str) {
			if (c == '-' || (c >= '0' && c <= '9')) {
				size_t l = number_len(p + i, n - i);
				if (!l)
					return "malformed number";
				i += l;
				continue;
			}
			in_str = c == '"';
		} else if (c == '"') {
			in_str = 0;
		} else if (c < 0x20) {
			return "control character in a string";
		} else if (c == '\\' && i + 1 < n) {
			if (p[i + 1] == 'u' && i + 5 < n && !memcmp(p + i + 2, "0000", 4))
				return "NUL character (\\u0000) in a string";
			i += 2;
			continue;
		}
		i++;
	}
	return NULL;
}

static int id_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > PROTO_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

static const char id_rule[] = "1 to 128 printable ASCII characters without spaces";

int proto_b64_decode(struct buf *out, const char *s, size_t len)
{
	return b64_decode_buf(out, s, len, B64_STD);
}

void proto_b64_encode(struct buf *out, const void *data, size_t len)
{
	b64_encode_buf(out, data, len, B64_STD);
}

static int b64_valid(const char *s)
{
	struct buf b = BUF_INIT;
	int ok = proto_b64_decode(&b, s, strlen(s)) == 0;
	buf_release(&b);
	return ok;
}

/* The check of proto_msgs.def on a string; elem >= 0 names a list item. */
static void check_str(const struct field *f, const char *s, long elem, struct errs *e)
{
	char what[96];
	if (elem >= 0)
		snprintf(what, sizeof what, "field '%s' item %ld", f->name, elem);
	else
		snprintf(what, sizeof what, "field '%s'", f->name);
	if (!f->check)
		return;
	if (f->check[0] == '=') {
		const char *p = f->check + 1;
		size_t n = strlen(s);
		while (*p) {
			size_t l = strcspn(p, "|");
			if (l == n && !memcmp(p, s, n))
				return;
			p += l + (p[l] == '|');
		}
		struct buf alts = BUF_INIT;
		for (p = f->check + 1; *p; p++)
			buf_puts(&alts, *p == '|' ? ", " : (char[2]){*p, 0});
		err_add(e, "%s must be one of %s", what, alts.data);
		buf_release(&alts);
	} else if (!strcmp(f->check, "id")) {
		if (!id_valid(s))
			err_add(e, "%s must be %s", what, id_rule);
	} else if (!strcmp(f->check, "base64")) {
		if (!b64_valid(s))
			err_add(e, "%s must be base64", what);
	}
}

static void check_int(const struct field *f, int64_t v, long elem, struct errs *e)
{
	if (f->check && !strcmp(f->check, "nonneg") && v < 0) {
		if (elem >= 0)
			err_add(e, "field '%s' item %ld must not be negative", f->name, elem);
		else
			err_add(e, "field '%s' must not be negative", f->name);
	}
}

/* An integral JSON number within +-PROTO_MAX_INT. */
static int json_int(const cJSON *item, int64_t *out)
{
	if (!cJSON_IsNumber(item))
		return -1;
	double d = item->valuedouble;
	if (!(d >= -(double)PROTO_MAX_INT && d <= (double)PROTO_MAX_INT))
		return -1;
	int64_t v = (int64_t)d;
	if ((double)v != d)
		return -1;
	*out = v;
	return 0;
}

/* Deepest nesting of arrays and objects under item (item itself is 1). */
static int json_depth(const cJSON *item, int limit)
{
	if (!cJSON_IsArray(item) && !cJSON_IsObject(item))
		return 0;
	int max = 0;
	if (limit <= 0)
		return 1;
	for (const cJSON *c = item->child; c; c = c->next) {
		int d = json_depth(c, limit - 1);
		if (d > max)
			max = d;
		if (max >= limit)
			break;
	}
	return max + 1;
}

/* --- decoding ------------------------------------------------------------------- */

static const char int_rule[] = "an integer between -9007199254740991 and 9007199254740991";

static void decode_field(const struct field *f, const cJSON *item, void *body, struct errs *e)
{
	if (!item || cJSON_IsNull(item)) {
		if (f->required)
			err_add(e, "field '%s' is required", f->name);
		return;
	}
	switch (f->type) {
	case FT_STR:
		if (!cJSON_IsString(item)) {
			err_add(e, "field '%s' must be a string", f->name);
			return;
		}
		check_str(f, item->valuestring, -1, e);
		*AT(body, f->off, char *) = xstrdup(item->valuestring);
		return;
	case FT_INT: {
		int64_t v;
		if (json_int(item, &v) < 0) {
			err_add(e, "field '%s' must be %s", f->name, int_rule);
			return;
		}
		check_int(f, v, -1, e);
		*AT(body, f->off, int64_t) = v;
		if (f->aux != NO_AUX)
			*AT(body, f->aux, int) = 1;
		return;
	}
	case FT_BOOL:
		if (!cJSON_IsBool(item)) {
			err_add(e, "field '%s' must be true or false", f->name);
			return;
		}
		*AT(body, f->off, int) = cJSON_IsTrue(item);
		if (f->aux != NO_AUX)
			*AT(body, f->aux, int) = 1;
		return;
	case FT_RAW:
		if (!cJSON_IsObject(item)) {
			err_add(e, "field '%s' must be an object", f->name);
			return;
		}
		*AT(body, f->off, char *) = cJSON_PrintUnformatted(item);
		return;
	case FT_STRS:
	case FT_INTS: {
		const char *what = f->type == FT_STRS ? "strings" : "integers";
		if (!cJSON_IsArray(item)) {
			err_add(e, "field '%s' must be an array of %s", f->name, what);
			return;
		}
		size_t n = (size_t)cJSON_GetArraySize(item), i = 0;
		char **ss = f->type == FT_STRS ? xcalloc(n ? n : 1, sizeof *ss) : NULL;
		int64_t *is = f->type == FT_INTS ? xcalloc(n ? n : 1, sizeof *is) : NULL;
		for (const cJSON *c = item->child; c && i < n; c = c->next, i++) {
			if (ss) {
				if (!cJSON_IsString(c)) {
					err_add(e, "field '%s' item %zu must be a string", f->name,
						i);
					continue;
				}
				check_str(f, c->valuestring, (long)i, e);
				ss[i] = xstrdup(c->valuestring);
			} else {
				if (json_int(c, &is[i]) < 0) {
					err_add(e, "field '%s' item %zu must be %s", f->name, i,
						int_rule);
					continue;
				}
				check_int(f, is[i], (long)i, e);
			}
		}
		if (ss)
			*AT(body, f->off, char **) = ss;
		else
			*AT(body, f->off, int64_t *) = is;
		*AT(body, f->aux, size_t) = n;
		return;
	}
	}
}

static void release_body(enum proto_type type, void *body)
{
	for (const struct field *f = msgs[type].fields; f->name; f++) {
		switch (f->type) {
		case FT_STR:
		case FT_RAW:
			free(*AT(body, f->off, char *));
			break;
		case FT_STRS: {
			char **ss = *AT(body, f->off, char **);
			size_t n = *AT(body, f->aux, size_t);
			for (size_t i = 0; ss && i < n; i++)
				free(ss[i]);
			free(ss);
			break;
		}
		case FT_INTS:
			free(*AT(body, f->off, int64_t *));
			break;
		case FT_INT:
		case FT_BOOL:
			break;
		}
	}
}

void proto_msg_release(struct proto_msg *m)
{
	if (m->type > PROTO_NONE && m->type < PROTO_TYPE_COUNT)
		release_body(m->type, &m->u);
	free(m->id);
	memset(m, 0, sizeof *m);
}

/* Number of members of object o called name (case-sensitive). */
static int key_count(const cJSON *o, const char *name)
{
	int n = 0;
	for (const cJSON *c = o->child; c; c = c->next)
		n += c->string && !strcmp(c->string, name);
	return n;
}

/* For messages: a printable, bounded copy of an untrusted name. */
static void safe_name(char *out, size_t n, const char *s)
{
	size_t i = 0;
	for (; s[i] && i + 4 < n; i++)
		out[i] = (unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f && s[i] != '\''
			     ? s[i]
			     : '?';
	if (s[i])
		out[i++] = '.', out[i++] = '.', out[i++] = '.';
	out[i] = 0;
}

int proto_decode(struct proto_msg *m, const void *data, size_t len, char *err, size_t errlen)
{
	struct errs e = {BUF_INIT, 0};
	const char *text = data, *end = NULL, *tname = NULL;
	cJSON *root = NULL;
	memset(m, 0, sizeof *m);

	if (len == 0) {
		err_add(&e, "empty");
		goto fail;
	}
	if (len > PROTO_MAX_MSG) {
		err_add(&e, "%zu bytes, limit %zu", len, PROTO_MAX_MSG);
		goto fail;
	}
	root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (!root) {
		err_add(&e, "invalid JSON at byte %zu", end ? (size_t)(end - text) : (size_t)0);
		goto fail;
	}
	while (end < text + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
		end++;
	if (end != text + len) {
		err_add(&e, "trailing data at byte %zu", (size_t)(end - text));
		goto fail;
	}
	if (!cJSON_IsObject(root)) {
		err_add(&e, "not a JSON object");
		goto fail;
	}
	if (json_depth(root, PROTO_MAX_DEPTH + 1) > PROTO_MAX_DEPTH) {
		err_add(&e, "nested deeper than %d levels", PROTO_MAX_DEPTH);
		goto fail;
	}

	/* The envelope; the id first, so a failure can still be answered. */
	static const char *const env[] = {"v", "type", "id"};
	for (size_t i = 0; i < 3; i++)
		if (key_count(root, env[i]) > 1)
			err_add(&e, "key '%s' appears more than once", env[i]);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
	if (id && !cJSON_IsNull(id)) {
		if (!cJSON_IsString(id) || !id_valid(id->valuestring))
			err_add(&e, "field 'id' must be %s", id_rule);
		else
			m->id = xstrdup(id->valuestring);
	}
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "v");
	int64_t ver;
	if (!v)
		err_add(&e, "field 'v' is required");
	else if (json_int(v, &ver) < 0)
		err_add(&e, "field 'v' must be an integer");
	else if (ver != PROTO_VERSION)
		err_add(&e, "unsupported protocol version %" PRId64 " (this end speaks %d)", ver,
			PROTO_VERSION);
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type");
	if (!type) {
		err_add(&e, "field 'type' is required");
	} else if (!cJSON_IsString(type)) {
		err_add(&e, "field 'type' must be a string");
	} else if ((m->type = proto_type_from_name(type->valuestring)) == PROTO_NONE) {
		char nm[72];
		safe_name(nm, sizeof nm, type->valuestring);
		err_add(&e, "unknown type '%s'", nm);
	} else {
		tname = msgs[m->type].name;
	}
	if (e.n)
		goto fail;

	size_t at;
	const char *why = text_scan(text, len, &at);
	if (why) {
		err_add(&e, "%s at byte %zu", why, at);
		goto fail;
	}
	for (const struct field *f = msgs[m->type].fields; f->name; f++) {
		if (key_count(root, f->name) > 1) {
			err_add(&e, "key '%s' appears more than once", f->name);
			continue;
		}
		decode_field(f, cJSON_GetObjectItemCaseSensitive(root, f->name), &m->u, &e);
	}
	if (e.n)
		goto fail;
	cJSON_Delete(root);
	buf_release(&e.b);
	return 0;

fail:
	cJSON_Delete(root);
	if (m->type != PROTO_NONE) {
		release_body(m->type, &m->u);
		memset(&m->u, 0, sizeof m->u);
	}
	err_out(&e, tname, err, errlen);
	return -1;
}

/* --- encoding --------------------------------------------------------------------- */

static cJSON *raw_int(int64_t v)
{
	char s[24];
	snprintf(s, sizeof s, "%" PRId64, v);
	return cJSON_CreateRaw(s);
}

static int int_ok(int64_t v)
{
	return v >= -PROTO_MAX_INT && v <= PROTO_MAX_INT;
}

static void encode_str(const struct field *f, const char *s, long elem, struct errs *e)
{
	if (!utf8_valid(s, strlen(s))) {
		if (elem >= 0)
			err_add(e, "field '%s' item %ld is not valid UTF-8", f->name, elem);
		else
			err_add(e, "field '%s' is not valid UTF-8", f->name);
		return;
	}
	check_str(f, s, elem, e);
}

static void encode_field(const struct field *f, const void *body, cJSON *root, struct errs *e)
{
	switch (f->type) {
	case FT_STR: {
		const char *s = *CAT(body, f->off, char *);
		if (!s) {
			if (f->required)
				err_add(e, "field '%s' is required", f->name);
			return;
		}
		encode_str(f, s, -1, e);
		cJSON_AddItemToObject(root, f->name, cJSON_CreateString(s));
		return;
	}
	case FT_INT: {
		int64_t v = *CAT(body, f->off, int64_t);
		if (f->aux != NO_AUX && !*CAT(body, f->aux, int))
			return;
		if (!int_ok(v))
			err_add(e, "field '%s' must be %s", f->name, int_rule);
		check_int(f, v, -1, e);
		cJSON_AddItemToObject(root, f->name, raw_int(v));
		return;
	}
	case FT_BOOL:
		if (f->aux != NO_AUX && !*CAT(body, f->aux, int))
			return;
		cJSON_AddItemToObject(root, f->name, cJSON_CreateBool(*CAT(body, f->off, int)));
		return;
	case FT_RAW: {
		const char *s = *CAT(body, f->off, char *), *end = NULL;
		if (!s) {
			if (f->required)
				err_add(e, "field '%s' is required", f->name);
			return;
		}
		size_t n = strlen(s), at;
		cJSON *o = n ? cJSON_ParseWithLengthOpts(s, n, &end, 0) : NULL;
		while (o && end < s + n &&
		       (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
			end++;
		/* cJSON skips a leading byte order mark; inside a message it
		 * would be invalid, so the text must start with the object. */
		if (!o || end != s + n || !cJSON_IsObject(o) || s[strspn(s, " \t\n\r")] != '{')
			err_add(e, "field '%s' must be a JSON object", f->name);
		else if (text_scan(s, n, &at))
			err_add(e, "field '%s': %s at byte %zu", f->name, text_scan(s, n, &at), at);
		else if (json_depth(o, PROTO_MAX_DEPTH) >= PROTO_MAX_DEPTH)
			err_add(e, "field '%s' is nested deeper than %d levels", f->name,
				PROTO_MAX_DEPTH - 1);
		cJSON_Delete(o);
		/* The caller's text as it is (validated above), e.g. big numbers
		 * pass untouched. */
		cJSON_AddItemToObject(root, f->name, cJSON_CreateRaw(s));
		return;
	}
	case FT_STRS:
	case FT_INTS: {
		size_t n = *CAT(body, f->aux, size_t);
		const void *arr = *CAT(body, f->off, void *);
		if (!arr && n) {
			err_add(e, "field '%s' has %zu items but no array", f->name, n);
			return;
		}
		if (!arr && !f->required)
			return;
		cJSON *a = cJSON_CreateArray();
		for (size_t i = 0; i < n; i++) {
			if (f->type == FT_STRS) {
				const char *s = ((char *const *)arr)[i];
				if (!s) {
					err_add(e, "field '%s' item %zu is NULL", f->name, i);
					continue;
				}
				encode_str(f, s, (long)i, e);
				cJSON_AddItemToArray(a, cJSON_CreateString(s));
			} else {
				int64_t v = ((const int64_t *)arr)[i];
				if (!int_ok(v))
					err_add(e, "field '%s' item %zu must be %s", f->name, i,
						int_rule);
				check_int(f, v, (long)i, e);
				cJSON_AddItemToArray(a, raw_int(v));
			}
		}
		cJSON_AddItemToObject(root, f->name, a);
		return;
	}
	}
}

static int encode(struct buf *out, enum proto_type type, const char *id, const void *body,
		  char *err, size_t errlen)
{
	struct errs e = {BUF_INIT, 0};
	if (type <= PROTO_NONE || type >= PROTO_TYPE_COUNT) {
		err_add(&e, "unknown type %d", (int)type);
		err_out(&e, NULL, err, errlen);
		return -1;
	}
	cJSON *root = cJSON_CreateObject();
	cJSON_AddItemToObject(root, "v", raw_int(PROTO_VERSION));
	cJSON_AddItemToObject(root, "type", cJSON_CreateString(msgs[type].name));
	if (id) {
		if (!id_valid(id))
			err_add(&e, "field 'id' must be %s", id_rule);
		cJSON_AddItemToObject(root, "id", cJSON_CreateString(id));
	}
	for (const struct field *f = msgs[type].fields; f->name; f++)
		encode_field(f, body, root, &e);
	char *text = e.n ? NULL : cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (text && strlen(text) > PROTO_MAX_MSG)
		err_add(&e, "%zu bytes, limit %zu", strlen(text), PROTO_MAX_MSG);
	if (e.n) {
		free(text);
		err_out(&e, msgs[type].name, err, errlen);
		return -1;
	}
	buf_puts(out, text);
	free(text);
	buf_release(&e.b);
	return 0;
}

int proto_encode(struct buf *out, const struct proto_msg *m, char *err, size_t errlen)
{
	return encode(out, m->type, m->id, &m->u, err, errlen);
}

#define PROTO_MSG(NAME, name)                                                                      \
	int proto_encode_##name(struct buf *out, const char *id, const struct proto_##name *m,     \
				char *err, size_t errlen)                                          \
	{                                                                                          \
		return encode(out, PROTO_##NAME, id, m, err, errlen);                              \
	}
#define PROTO_FIELD(name, field, type, presence, check)
#define PROTO_END(name)
#include "proto_msgs.def"
#undef PROTO_MSG
#undef PROTO_FIELD
#undef PROTO_END

static int decode_as(struct proto_msg *m, enum proto_type want, const void *data, size_t len,
		     char *err, size_t errlen)
{
	if (proto_decode(m, data, len, err, errlen) < 0)
		return -1;
	if (m->type == want)
		return 0;
	if (err && errlen)
		snprintf(err, errlen, "message '%s': expected '%s'", msgs[m->type].name,
			 msgs[want].name);
	release_body(m->type, &m->u);
	memset(&m->u, 0, sizeof m->u);
	return -1;
}

#define PROTO_MSG(NAME, name)                                                                      \
	int proto_decode_##name(struct proto_msg *m, const void *data, size_t len, char *err,      \
				size_t errlen)                                                     \
	{                                                                                          \
		return decode_as(m, PROTO_##NAME, data, len, err, errlen);                         \
	}
#define PROTO_FIELD(name, field, type, presence, check)
#define PROTO_END(name)
#include "proto_msgs.def"
#undef PROTO_MSG
#undef PROTO_FIELD
#undef PROTO_END

/* --- equality ------------------------------------------------------------------------ */

static int str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

int proto_msg_equal(const struct proto_msg *a, const struct proto_msg *b)
{
	if (a->type != b->type || !str_eq(a->id, b->id))
		return 0;
	if (a->type <= PROTO_NONE || a->type >= PROTO_TYPE_COUNT)
		return 1;
	const void *x = &a->u, *y = &b->u;
	for (const struct field *f = msgs[a->type].fields; f->name; f++) {
		if (f->aux != NO_AUX && (f->type == FT_INT || f->type == FT_BOOL)) {
			int hx = *CAT(x, f->aux, int), hy = *CAT(y, f->aux, int);
			if (hx != hy)
				return 0;
			if (!hx)
				continue;
		}
		switch (f->type) {
		case FT_STR:
		case FT_RAW:
			if (!str_eq(*CAT(x, f->off, char *), *CAT(y, f->off, char *)))
				return 0;
			break;
		case FT_INT:
			if (*CAT(x, f->off, int64_t) != *CAT(y, f->off, int64_t))
				return 0;
			break;
		case FT_BOOL:
			if (!*CAT(x, f->off, int) != !*CAT(y, f->off, int))
				return 0;
			break;
		case FT_STRS:
		case FT_INTS: {
			size_t n = *CAT(x, f->aux, size_t);
			if (n != *CAT(y, f->aux, size_t))
				return 0;
			for (size_t i = 0; i < n; i++) {
				if (f->type == FT_STRS) {
					if (!str_eq((*CAT(x, f->off, char **))[i],
						    (*CAT(y, f->off, char **))[i]))
						return 0;
				} else if ((*CAT(x, f->off, int64_t *))[i] !=
					   (*CAT(y, f->off, int64_t *))[i]) {
					return 0;
				}
			}
			break;
		}
		}
	}
	return 1;
}

/* --- any JSON document ------------------------------------------------------------ */

/* The view types are never defined: a struct proto_jv pointer is a cJSON
 * node and a struct proto_json pointer is the document's root node. */
#define JV(v) ((const cJSON *)(const void *)(v))
#define PJV(c) ((const struct proto_jv *)(const void *)(c))

struct proto_json *proto_json_parse(const void *data, size_t len, char *err, size_t errlen)
{
	const char *text = data, *end = NULL;
	size_t at;
	const char *why;
	cJSON *root;

	if (len == 0) {
		snprintf(err, errlen, "json: empty");
		return NULL;
	}
	if (len > PROTO_MAX_MSG) {
		snprintf(err, errlen, "json: %zu bytes, limit %zu", len, PROTO_MAX_MSG);
		return NULL;
	}
	if ((why = text_scan(text, len, &at))) {
		snprintf(err, errlen, "json: %s at byte %zu", why, at);
		return NULL;
	}
	root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (!root) {
		snprintf(err, errlen, "json: invalid JSON at byte %zu",
			 end ? (size_t)(end - text) : (size_t)0);
		return NULL;
	}
	while (end < text + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
		end++;
	if (end != text + len) {
		snprintf(err, errlen, "json: trailing data at byte %zu", (size_t)(end - text));
		cJSON_Delete(root);
		return NULL;
	}
	if (json_depth(root, PROTO_MAX_DEPTH + 1) > PROTO_MAX_DEPTH) {
		snprintf(err, errlen, "json: nested deeper than %d levels", PROTO_MAX_DEPTH);
		cJSON_Delete(root);
		return NULL;
	}
	return (struct proto_json *)(void *)root;
}

void proto_json_free(struct proto_json *doc)
{
	cJSON_Delete((cJSON *)(void *)doc);
}

const struct proto_jv *proto_json_root(const struct proto_json *doc)
{
	return (const struct proto_jv *)(const void *)doc;
}

enum proto_jtype proto_jv_type(const struct proto_jv *v)
{
	const cJSON *c = JV(v);
	if (cJSON_IsBool(c))
		return PROTO_J_BOOL;
	if (cJSON_IsNumber(c))
		return PROTO_J_NUM;
	if (cJSON_IsString(c))
		return PROTO_J_STR;
	if (cJSON_IsArray(c))
		return PROTO_J_ARR;
	if (cJSON_IsObject(c))
		return PROTO_J_OBJ;
	return PROTO_J_NULL;
}

const struct proto_jv *proto_jv_get(const struct proto_jv *obj, const char *key)
{
	const cJSON *o = JV(obj);
	if (!cJSON_IsObject(o) || key_count(o, key) != 1)
		return NULL;
	return PJV(cJSON_GetObjectItemCaseSensitive(o, key));
}

size_t proto_jv_len(const struct proto_jv *v)
{
	const cJSON *c = JV(v);
	if (!cJSON_IsArray(c) && !cJSON_IsObject(c))
		return 0;
	return (size_t)cJSON_GetArraySize(c);
}

const struct proto_jv *proto_jv_first(const struct proto_jv *v)
{
	const cJSON *c = JV(v);
	if (!cJSON_IsArray(c) && !cJSON_IsObject(c))
		return NULL;
	return PJV(c->child);
}

const struct proto_jv *proto_jv_next(const struct proto_jv *elem)
{
	return elem ? PJV(JV(elem)->next) : NULL;
}

const struct proto_jv *proto_jv_at(const struct proto_jv *v, size_t i)
{
	const struct proto_jv *e = proto_jv_first(v);
	while (e && i--)
		e = proto_jv_next(e);
	return e;
}

const char *proto_jv_key(const struct proto_jv *member)
{
	return member ? JV(member)->string : NULL;
}

const char *proto_jv_str(const struct proto_jv *v)
{
	const cJSON *c = JV(v);
	return cJSON_IsString(c) ? c->valuestring : NULL;
}

int proto_jv_int(const struct proto_jv *v, int64_t *out)
{
	return cJSON_IsNumber(JV(v)) ? json_int(JV(v), out) : -1;
}

int proto_jv_bool(const struct proto_jv *v, int *out)
{
	const cJSON *c = JV(v);
	if (!cJSON_IsBool(c))
		return -1;
	*out = cJSON_IsTrue(c);
	return 0;
}

const char *proto_jv_get_str(const struct proto_jv *obj, const char *key)
{
	return proto_jv_str(proto_jv_get(obj, key));
}
