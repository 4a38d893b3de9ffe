/* proto: the base <-> agent message codec over JSON (DESIGN.md section 3).
 *
 * A message is one JSON object (one WebSocket text frame):
 *
 *   {"v":1,"type":"task","id":"m-42","task_id":"t-1","kind":"deploy",...}
 *
 * "v" is the protocol version (PROTO_VERSION), "type" names the message and
 * "id" (optional, 1..128 printable ASCII characters) correlates a reply with
 * its request. Every message type and its fields are declared once in
 * proto_msgs.def, which generates enum proto_type, struct proto_<name>, the
 * member of union proto_msg.u, the encoder proto_encode_<name>(), the typed
 * decoder proto_decode_<name>() and the field table proto_decode() checks.
 *
 * Decoding is strict: a message larger than PROTO_MAX_MSG, not one JSON
 * object, with trailing bytes, v != 1, an unknown type, a key repeated at
 * the top level, a missing required field, a field of the wrong type or
 * failing its check, invalid UTF-8 anywhere, a raw control character or a
 * NUL (\u0000) in a string, or nesting deeper than PROTO_MAX_DEPTH is
 * rejected, with every problem found listed in one reason:
 *
 *   message 'hello': field 'agent_version' must be a string; field
 *   'instance_id' is required
 *
 * Unknown fields are ignored (forward compatibility: a newer peer may add
 * optional fields). Duplicate keys inside a RAW object are kept as they
 * are. Integers: JSON numbers are doubles in cJSON, so an INT field accepts
 * only integral values within +-(2^53 - 1) and the encoder refuses others;
 * larger identifiers travel as strings. A RAW field is encoded as the
 * caller's text, but decoded by re-printing cJSON's tree: numbers inside it
 * go through doubles too (integers beyond 2^53 lose precision). The encoder checks exactly what the
 * decoder checks, so what one end sends the other accepts.
 *
 * Memory: the encoder borrows the caller's struct (strings are not freed or
 * kept). A decoded struct proto_msg owns its strings and lists; release it
 * with proto_msg_release() (also after a failed decode). A caller may take
 * a field over by setting it to NULL before the release.
 *
 * cJSON's allocator hooks are process-wide: proto sets them to xmalloc/free
 * once, in a constructor, so cJSON's out-of-memory is fatal like ours. No
 * other module may use cJSON (it is included only by src/proto.c).
 */
#ifndef DPLOYR_PROTO_H
#define DPLOYR_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define PROTO_VERSION	1
#define PROTO_MAX_MSG	((size_t)1 << 20)	    /* bytes per message */
#define PROTO_MAX_DEPTH 64			    /* object and array nesting */
#define PROTO_MAX_INT	((int64_t)9007199254740991) /* 2^53 - 1 */
#define PROTO_ID_MAX	128

enum proto_type {
	PROTO_NONE = 0, /* not decoded */
#define PROTO_MSG(NAME, name) PROTO_##NAME,
#define PROTO_FIELD(name, field, type, presence, check)
#define PROTO_END(name)
#include "proto_msgs.def"
#undef PROTO_MSG
#undef PROTO_FIELD
#undef PROTO_END
	PROTO_TYPE_COUNT
};

/* C members per field type and presence (see proto_msgs.def). */
#define PROTO_MEMBER_STR_REQ(f) char *f;
#define PROTO_MEMBER_STR_OPT(f) char *f;
#define PROTO_MEMBER_RAW_REQ(f) char *f;
#define PROTO_MEMBER_RAW_OPT(f) char *f;
#define PROTO_MEMBER_INT_REQ(f) int64_t f;
#define PROTO_MEMBER_INT_OPT(f)                                                                    \
	int64_t f;                                                                                 \
	int has_##f;
#define PROTO_MEMBER_BOOL_REQ(f) int f;
#define PROTO_MEMBER_BOOL_OPT(f)                                                                   \
	int f;                                                                                     \
	int has_##f;
#define PROTO_MEMBER_STRS_REQ(f)                                                                   \
	char **f;                                                                                  \
	size_t f##_len;
#define PROTO_MEMBER_STRS_OPT(f) PROTO_MEMBER_STRS_REQ(f)
#define PROTO_MEMBER_INTS_REQ(f)                                                                   \
	int64_t *f;                                                                                \
	size_t f##_len;
#define PROTO_MEMBER_INTS_OPT(f) PROTO_MEMBER_INTS_REQ(f)

#define PROTO_MSG(NAME, name)				struct proto_##name {
#define PROTO_FIELD(name, field, type, presence, check) PROTO_MEMBER_##type##_##presence(field)
#define PROTO_END(name)                                                                            \
	}                                                                                          \
	;
#include "proto_msgs.def"
#undef PROTO_MSG
#undef PROTO_FIELD
#undef PROTO_END

/* A message: type, envelope id (NULL when absent) and the body. */
struct proto_msg {
	enum proto_type type;
	char *id;
	union {
#define PROTO_MSG(NAME, name) struct proto_##name name;
#define PROTO_FIELD(name, field, type, presence, check)
#define PROTO_END(name)
#include "proto_msgs.def"
#undef PROTO_MSG
#undef PROTO_FIELD
#undef PROTO_END
	} u;
};

/* Encoders: append the message as one JSON object to out. id may be NULL.
 * Return 0, or -1 (out unchanged) with the reason in err when a field would
 * not pass the decoder (e.g. a required string is NULL). */
#define PROTO_MSG(NAME, name)                                                                      \
	int proto_encode_##name(struct buf *out, const char *id, const struct proto_##name *m,     \
				char *err, size_t errlen);
#define PROTO_FIELD(name, field, type, presence, check)
#define PROTO_END(name)
#include "proto_msgs.def"
#undef PROTO_MSG
#undef PROTO_FIELD
#undef PROTO_END

/* Encode m according to m->type. */
int proto_encode(struct buf *out, const struct proto_msg *m, char *err, size_t errlen);

/* Decode one message of len bytes (need not be NUL-terminated) into m
 * (overwritten). Returns 0, or -1 with every problem in err. Even on
 * failure m->id is set when the envelope carried a valid id, and m->type
 * when the type was known, so the caller can send an error reply. Call
 * proto_msg_release(m) in both cases. */
int proto_decode(struct proto_msg *m, const void *data, size_t len, char *err, size_t errlen);

/* Decoders per type: proto_decode, and then the message must be of that
 * type ("message 'ping': expected 'hello'" otherwise). For a peer that may
 * send only one thing, e.g. hello first on a connection. */
#define PROTO_MSG(NAME, name)                                                                      \
	int proto_decode_##name(struct proto_msg *m, const void *data, size_t len, char *err,      \
				size_t errlen);
#define PROTO_FIELD(name, field, type, presence, check)
#define PROTO_END(name)
#include "proto_msgs.def"
#undef PROTO_MSG
#undef PROTO_FIELD
#undef PROTO_END

/* Free what m owns and reset it to PROTO_NONE. Safe to call twice. */
void proto_msg_release(struct proto_msg *m);

/* Field-by-field equality (RAW fields compare as text). */
int proto_msg_equal(const struct proto_msg *a, const struct proto_msg *b);

/* The wire name of a type ("task_ack"), or NULL. */
const char *proto_type_name(enum proto_type type);
/* The type called name, or PROTO_NONE. */
enum proto_type proto_type_from_name(const char *name);

/* Base64 (standard alphabet, padded) for exec_output data. decode appends
 * the bytes to out and returns 0, or -1 for invalid input (out unchanged). */
void proto_b64_encode(struct buf *out, const void *data, size_t len);
int proto_b64_decode(struct buf *out, const char *s, size_t len);

/* --- any JSON document (HTTP API bodies) ----------------------------------------
 *
 * A read-only view of a parsed JSON value, with the same strictness as
 * proto_decode: at most PROTO_MAX_MSG bytes, nesting at most PROTO_MAX_DEPTH,
 * valid UTF-8, no raw control characters or \u0000 in strings, JSON's number
 * grammar, nothing after the value. Values belong to their document and live
 * until proto_json_free(). Writing JSON needs no tree: buf_json_str() and
 * buf_printf() build it. */
struct proto_json;
struct proto_jv; /* a value inside a document */

enum proto_jtype { PROTO_J_NULL, PROTO_J_BOOL, PROTO_J_NUM, PROTO_J_STR, PROTO_J_ARR, PROTO_J_OBJ };

/* NULL on failure, with the reason ("json: invalid JSON at byte 3") in err. */
struct proto_json *proto_json_parse(const void *data, size_t len, char *err, size_t errlen);
void proto_json_free(struct proto_json *doc);
const struct proto_jv *proto_json_root(const struct proto_json *doc);
enum proto_jtype proto_jv_type(const struct proto_jv *v);
/* Member key of an object (case-sensitive); NULL if v is not an object, the
 * key is missing, or it appears more than once (ambiguous input). */
const struct proto_jv *proto_jv_get(const struct proto_jv *obj, const char *key);
/* Elements of an array or members of an object (then proto_jv_key names
 * them). proto_jv_at is O(i): iterate with proto_jv_next instead. */
size_t proto_jv_len(const struct proto_jv *v);
const struct proto_jv *proto_jv_first(const struct proto_jv *v);
const struct proto_jv *proto_jv_next(const struct proto_jv *elem);
const struct proto_jv *proto_jv_at(const struct proto_jv *v, size_t i);
const char *proto_jv_key(const struct proto_jv *member);
/* Typed reads: the string (borrowed), or NULL when v is not a string. */
const char *proto_jv_str(const struct proto_jv *v);
/* 0 and *out for an integral number within +-(2^53 - 1); else -1. */
int proto_jv_int(const struct proto_jv *v, int64_t *out);
int proto_jv_bool(const struct proto_jv *v, int *out);
/* Convenience: member key's string, or NULL when missing or not a string. */
const char *proto_jv_get_str(const struct proto_jv *obj, const char *key);

#endif
