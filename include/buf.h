/* buf: a growable byte buffer, always NUL-terminated (after data[len]).
 *
 * A struct buf is embedded by its owner: BUF_INIT or buf_init(), then
 * buf_release() (safe to call twice). data is never NULL, so b.data can be
 * passed as a C string at any time; it may hold NUL bytes in the middle.
 * The buffer owns data until buf_detach() hands it to the caller.
 */
#ifndef DPLOYR_BUF_H
#define DPLOYR_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap; /* 0: data points at a shared empty string */
};

extern char buf_empty_[1];
#define BUF_INIT { buf_empty_, 0, 0 }

void buf_init(struct buf *b);
void buf_release(struct buf *b);
/* Make room for at least `extra` more bytes (plus the terminator). */
void buf_grow(struct buf *b, size_t extra);
/* Set len to 0, keeping the allocation. */
void buf_reset(struct buf *b);
/* Shrink to n bytes (n <= len). */
void buf_truncate(struct buf *b, size_t n);
void buf_add(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, int c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drop the first n bytes (n <= len), moving the rest to the front. */
void buf_consume(struct buf *b, size_t n);
/* Hand data (NUL-terminated, malloc'ed) to the caller; b is empty after. */
char *buf_detach(struct buf *b, size_t *len);

/* Append s[0..n) as a quoted JSON string. Control characters are escaped;
 * invalid UTF-8 sequences become U+FFFD so the output is always valid JSON. */
void buf_json_str(struct buf *b, const char *s, size_t n);
/* Same, for a NUL-terminated string (NULL appends null). */
void buf_json_cstr(struct buf *b, const char *s);

/* Read fd until end of file, appending. Fails (-1, errno E2BIG) once more
 * than max bytes would be held in total, or with read's errno. */
int buf_read_fd(struct buf *b, int fd, size_t max);
/* Read a whole file ("-" is standard input) with the same limit; on failure
 * writes "read 'PATH': reason" to err. */
int buf_read_file(struct buf *b, const char *path, size_t max, char *err, size_t errlen);

#endif
