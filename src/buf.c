#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xalloc.h"

char buf_empty_[1];

void buf_init(struct buf *b)
{
	b->data = buf_empty_;
	b->len = 0;
	b->cap = 0;
}

void buf_release(struct buf *b)
{
	if (b->cap)
		free(b->data);
	buf_init(b);
}

void buf_grow(struct buf *b, size_t extra)
{
	if (extra > SIZE_MAX - b->len - 1) {
		fprintf(stderr, "dployr: buffer size overflow\n");
		abort();
	}
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (b->cap) {
		b->data = xrealloc(b->data, cap);
	} else {
		b->data = xmalloc(cap);
		b->data[0] = '\0';
	}
	b->cap = cap;
}

void buf_reset(struct buf *b)
{
	buf_truncate(b, 0);
}

void buf_truncate(struct buf *b, size_t n)
{
	if (n > b->len)
		n = b->len;
	b->len = n;
	if (b->cap)
		b->data[n] = '\0';
}

void buf_add(struct buf *b, const void *p, size_t n)
{
	if (!n)
		return;
	buf_grow(b, n);
	memmove(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void buf_putc(struct buf *b, int c)
{
	buf_grow(b, 1);
	b->data[b->len++] = (char)c;
	b->data[b->len] = '\0';
}

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(b->data + b->len, b->cap ? b->cap - b->len : 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return;
	if (b->cap == 0 || (size_t)n >= b->cap - b->len) {
		buf_grow(b, (size_t)n);
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	}
	b->len += (size_t)n;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	buf_truncate(b, b->len - n);
}

char *buf_detach(struct buf *b, size_t *len)
{
	if (len)
		*len = b->len;
	char *p = b->cap ? b->data : xstrdup("");
	buf_init(b);
	return p;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	unsigned min;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	unsigned cp = c & (0x3f >> (len - 1));
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

void buf_json_str(struct buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	buf_grow(b, n + 2);
	buf_putc(b, '"');
	for (size_t i = 0; i < n;) {
		unsigned c = p[i];
		if (c == '"' || c == '\\') {
			buf_putc(b, '\\');
			buf_putc(b, (int)c);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			switch (c) {
			case '\n': buf_puts(b, "\\n"); break;
			case '\r': buf_puts(b, "\\r"); break;
			case '\t': buf_puts(b, "\\t"); break;
			case '\b': buf_puts(b, "\\b"); break;
			case '\f': buf_puts(b, "\\f"); break;
			default: buf_printf(b, "\\u%04x", c); break;
			}
			i++;
		} else if (c < 0x80) {
			buf_putc(b, (int)c);
			i++;
		} else {
			size_t len = utf8_seq(p + i, n - i);
			if (len) {
				buf_add(b, p + i, len);
				i += len;
			} else {
				buf_puts(b, "\\ufffd");
				i++;
			}
		}
	}
	buf_putc(b, '"');
}

void buf_json_cstr(struct buf *b, const char *s)
{
	if (!s)
		buf_puts(b, "null");
	else
		buf_json_str(b, s, strlen(s));
}

int buf_read_fd(struct buf *b, int fd, size_t max)
{
	size_t start = b->len;
	for (;;) {
		buf_grow(b, 16384);
		size_t room = b->cap - b->len - 1;
		ssize_t r = read(fd, b->data + b->len, room);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			buf_truncate(b, b->len);
			return -1;
		}
		if (r == 0)
			break;
		b->len += (size_t)r;
		b->data[b->len] = '\0';
		if (b->len - start > max) {
			errno = E2BIG;
			return -1;
		}
	}
	return 0;
}

int buf_read_file(struct buf *b, const char *path, size_t max, char *err, size_t errlen)
{
	int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "read '%s': %s", path, strerror(errno));
		return -1;
	}
	int rc = buf_read_fd(b, fd, max);
	int saved = errno;
	if (fd != 0)
		close(fd);
	if (rc < 0) {
		if (saved == E2BIG)
			snprintf(err, errlen, "read '%s': larger than %zu bytes", path, max);
		else if (saved == EISDIR)
			snprintf(err, errlen, "read '%s': is a directory", path);
		else
			snprintf(err, errlen, "read '%s': %s", path, strerror(saved));
		return -1;
	}
	return 0;
}
