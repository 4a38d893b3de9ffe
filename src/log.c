#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "xalloc.h"

/* The only global mutable state of dployr: the log settings. */
static struct {
	enum log_level level;
	int to_stderr;
	const char *role;
	int fd;
	char *path;
} lg = { LOG_LVL_INFO, 1, NULL, -1, NULL };

static const char *const level_names[] = { "debug", "info", "warn", "error", "off" };

void log_set_level(enum log_level level)
{
	lg.level = level;
}

enum log_level log_get_level(void)
{
	return lg.level;
}

int log_level_parse(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

void log_set_role(const char *role)
{
	lg.role = role;
}

void log_set_stderr(int on)
{
	lg.to_stderr = on;
}

static int mkdir_parents(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		int rc = mkdir(path, 0750);
		*p = '/';
		if (rc < 0 && errno != EEXIST)
			return -1;
	}
	return 0;
}

static int open_log(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

int log_open_file(const char *path, char *err, size_t errlen)
{
	char *copy = xstrdup(path);
	int fd = -1;
	if (mkdir_parents(copy) == 0)
		fd = open_log(path);
	if (fd < 0) {
		snprintf(err, errlen, "open log file '%s': %s", path, strerror(errno));
		free(copy);
		return -1;
	}
	log_close();
	lg.fd = fd;
	lg.path = copy;
	return 0;
}

int log_reopen(void)
{
	if (!lg.path)
		return 0;
	int fd = open_log(lg.path);
	if (fd < 0)
		return -1;
	close(lg.fd);
	lg.fd = fd;
	return 0;
}

void log_close(void)
{
	if (lg.fd >= 0)
		close(lg.fd);
	lg.fd = -1;
	free(lg.path);
	lg.path = NULL;
}

static void timestamp(char *out, size_t len)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* Human form of a value: printable bytes as they are, the rest escaped. */
static void put_human(struct buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f)
			buf_printf(b, "\\x%02x", c);
		else
			buf_putc(b, c);
	}
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

void log_write(enum log_level level, const char *mod, const char *msg, ...)
{
	if (level < lg.level || level >= LOG_LVL_OFF)
		return;
	if (!lg.to_stderr && lg.fd < 0)
		return;
	int saved_errno = errno;
	char ts[40];
	timestamp(ts, sizeof(ts));
	struct buf h = BUF_INIT, j = BUF_INIT;
	va_list ap;

	if (lg.to_stderr) {
		buf_printf(&h, "%s %s %s: ", ts, level_names[level], mod);
		put_human(&h, msg);
		va_start(ap, msg);
		for (const char *k; (k = va_arg(ap, const char *));) {
			const char *v = va_arg(ap, const char *);
			buf_putc(&h, ' ');
			put_human(&h, k);
			buf_putc(&h, '=');
			put_human(&h, v ? v : "null");
		}
		va_end(ap);
		buf_putc(&h, '\n');
		write_all(2, h.data, h.len);
	}
	if (lg.fd >= 0) {
		buf_printf(&j, "{\"ts\":\"%s\",\"level\":\"%s\"", ts, level_names[level]);
		if (lg.role) {
			buf_puts(&j, ",\"role\":");
			buf_json_cstr(&j, lg.role);
		}
		buf_puts(&j, ",\"mod\":");
		buf_json_cstr(&j, mod);
		buf_puts(&j, ",\"msg\":");
		buf_json_cstr(&j, msg);
		va_start(ap, msg);
		for (const char *k; (k = va_arg(ap, const char *));) {
			const char *v = va_arg(ap, const char *);
			buf_putc(&j, ',');
			buf_json_cstr(&j, k);
			buf_putc(&j, ':');
			buf_json_cstr(&j, v);
		}
		va_end(ap);
		buf_puts(&j, "}\n");
		/* One write() per line: O_APPEND keeps concurrent writers' lines whole. */
		write_all(lg.fd, j.data, j.len);
	}
	buf_release(&h);
	buf_release(&j);
	errno = saved_errno;
}
