/* xalloc: allocation that never returns NULL.
 *
 * Out of memory is fatal in dployr (STYLE.md): these print a message and
 * abort. Everything returned is owned by the caller and released with free().
 */
#ifndef DPLOYR_XALLOC_H
#define DPLOYR_XALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
/* Like realloc(p, n), but n == 0 still returns a valid (1-byte) block. */
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* Copies at most n bytes of s and terminates the copy. */
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* Grow *items (of *cap elements of size each) so that it holds at least
 * `need` elements; doubles, so appends are amortised O(1). */
void xgrow(void **items, size_t *cap, size_t need, size_t size);
#define XGROW(arr, cap, need) xgrow((void **)&(arr), &(cap), (need), sizeof(*(arr)))

#endif
