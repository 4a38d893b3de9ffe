#include "fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "run.h"
#include "spawn.h"
#include "xalloc.h"

#define FETCH_GIT_TIMEOUT  600000
#define FETCH_MAX_BYTES	   (1ULL << 30)
#define FETCH_MAX_ENTRIES  100000
#define FETCH_MAX_NAME	   4096
#define FETCH_MAX_PAX	   (1u << 20)
#define FETCH_MAX_PROBLEMS 20

/* --- checks ----------------------------------------------------------------- */

static int host_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

/* Check "[USER@]HOST[:PORT]" in s[0..n); user_ok: a user part is allowed. */
static int check_authority(const char *s, size_t n)
{
	const char *at = memchr(s, '@', n);
	if (at) {
		/* https may carry user:token@: not shown in messages, not
		 * checked beyond being printable. */
		n -= (size_t)(at + 1 - s);
		s = at + 1;
	}
	if (n == 0 || s[0] == '-' || s[0] == '.')
		return -1;
	size_t i = 0;
	if (s[0] == '[') { /* [IPv6] */
		const char *e = memchr(s, ']', n);
		if (!e)
			return -1;
		i = (size_t)(e - s) + 1;
	} else {
		while (i < n && host_char((unsigned char)s[i]))
			i++;
	}
	if (i < n && s[i] == ':') {
		size_t p = ++i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == p)
			return -1;
	}
	return i == n ? 0 : -1;
}

/* The URL as it may appear in messages: any user part is left out (an
 * https URL may carry a token there). */
static void url_shown(const char *url, char *out, size_t outlen)
{
	const char *p = strstr(url, "://");
	const char *auth = p ? p + 3 : url;
	size_t alen = strcspn(auth, "/");
	const char *at = memchr(auth, '@', alen);
	if (p && at)
		snprintf(out, outlen, "%.*s%s", (int)(auth - url), url, at + 1);
	else
		snprintf(out, outlen, "%s", url);
	for (char *c = out; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
}

int fetch_check_url(const char *url, char *err, size_t errlen)
{
	char shown[256];
	if (!url || !*url) {
		snprintf(err, errlen, "url: empty");
		return -1;
	}
	url_shown(url, shown, sizeof(shown));
	for (const char *c = url; *c; c++) {
		if ((unsigned char)*c <= 0x20 || *c == 0x7f) {
			snprintf(err, errlen, "url '%s': whitespace or control character", shown);
			return -1;
		}
	}
	if (url[0] == '-') {
		snprintf(err, errlen, "url '%s': starts with '-'", shown);
		return -1;
	}
	const char *scheme_end = strstr(url, "://");
	if (!strncmp(url, "https://", 8) || !strncmp(url, "ssh://", 6)) {
		const char *a = scheme_end + 3;
		size_t n = strcspn(a, "/");
		if (check_authority(a, n) < 0 || a[n] != '/' || a[n + 1] == 0) {
			snprintf(err, errlen, "url '%s': want %s://HOST/PATH", shown,
				 url[0] == 'h' ? "https" : "ssh");
			return -1;
		}
		return 0;
	}
	if (!strncmp(url, "file://", 7)) {
		if (url[7] != '/' || url[8] == 0) {
			snprintf(err, errlen, "url '%s': want file:///ABSOLUTE/PATH", shown);
			return -1;
		}
		return 0;
	}
	/* scp-like USER@HOST:PATH (git reads it as ssh). */
	const char *at = strchr(url, '@'), *colon = strchr(url, ':');
	if (!scheme_end && at && colon && at < colon && at > url) {
		int ok = 1;
		for (const char *c = url; c < at; c++)
			ok &= host_char((unsigned char)*c);
		for (const char *c = at + 1; c < colon; c++)
			ok &= host_char((unsigned char)*c);
		if (ok && colon > at + 1 && at[1] != '-' && at[1] != '.' && colon[1] != 0 &&
		    colon[1] != '-')
			return 0;
		snprintf(err, errlen, "url '%s': want USER@HOST:PATH", shown);
		return -1;
	}
	snprintf(err, errlen, "url '%s': want https://, ssh://, USER@HOST:PATH or file:///", shown);
	return -1;
}

int fetch_check_branch(const char *b, char *err, size_t errlen)
{
	const char *why = NULL;
	size_t n = b ? strlen(b) : 0;
	if (n == 0)
		why = "empty";
	else if (n > 255)
		why = "longer than 255 bytes";
	else if (b[0] == '-')
		why = "starts with '-'";
	else if (b[0] == '/' || b[n - 1] == '/' || strstr(b, "//"))
		why = "empty path component";
	else if (strstr(b, ".."))
		why = "contains '..'";
	else if (strstr(b, "@{") || !strcmp(b, "@"))
		why = "contains '@{' or is '@'";
	else if (b[n - 1] == '.')
		why = "ends with '.'";
	for (const char *c = b; !why && *c; c++) {
		unsigned char u = (unsigned char)*c;
		if (u <= 0x20 || u == 0x7f || strchr("~^:?*[\\", u))
			why = "contains a space, a control character or one of ~^:?*[\\";
		else if (*c == '.' && (c == b || c[-1] == '/'))
			why = "a component starts with '.'";
	}
	for (const char *c = b; !why && c && *c;) {
		size_t l = strcspn(c, "/");
		if (l >= 5 && !memcmp(c + l - 5, ".lock", 5))
			why = "a component ends with '.lock'";
		c += l + (c[l] == '/');
	}
	if (!why)
		return 0;
	char shown[128];
	snprintf(shown, sizeof(shown), "%s", b ? b : "");
	for (char *c = shown; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	snprintf(err, errlen, "branch '%s': %s", shown, why);
	return -1;
}

int fetch_check_commit(const char *c, char *err, size_t errlen)
{
	size_t n = c ? strlen(c) : 0;
	size_t hex = c ? strspn(c, "0123456789abcdefABCDEF") : 0;
	if (n >= 7 && n <= 40 && hex == n)
		return 0;
	snprintf(err, errlen, "commit '%.64s': want 7 to 40 hex digits", c ? c : "");
	for (char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return -1;
}

/* --- git ---------------------------------------------------------------------- */

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The last non-empty line of git's output, for a message. */
static void last_line(const struct buf *b, char *out, size_t outlen)
{
	const char *end = b->data + b->len;
	while (end > b->data && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		end--;
	const char *s = end;
	while (s > b->data && s[-1] != '\n')
		s--;
	snprintf(out, outlen, "%.*s", (int)(end - s), s);
	if (!*out)
		snprintf(out, outlen, "no output");
}

struct git_ctx {
	const struct fetch_git_opts *o;
	const char *envp[9];
	long long deadline;
	int timeout;
};

/* Mask the user part of an https URL (it may be a token) wherever git's
 * message repeats it. */
static void redact(char *msg, const char *url)
{
	if (strncmp(url, "https://", 8))
		return;
	const char *a = url + 8;
	size_t alen = strcspn(a, "/");
	const char *at = memchr(a, '@', alen);
	size_t ul = at ? (size_t)(at - a) : 0;
	if (ul < 4)
		return;
	char *u = xstrndup(a, ul);
	for (char *m = strstr(msg, u); m; m = strstr(m + ul, u))
		memset(m, '*', ul);
	free(u);
}

/* Run git with args (after the fixed options) in cwd; 0 if it exited 0. On
 * failure err gets "git WHAT: reason". */
static int git(struct git_ctx *g, const char *const *args, const char *cwd, const char *what,
	       struct buf *out, char *err, size_t errlen)
{
	const char *argv[32];
	size_t n = 0;
	static const char *const fixed[] = {
	    "git",
	    "-c",
	    "protocol.allow=never",
	    "-c",
	    "protocol.https.allow=always",
	    "-c",
	    "protocol.ssh.allow=always",
	    "-c",
	    "protocol.file.allow=always",
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		argv[n++] = fixed[i];
	for (; *args && n < 31; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	long long left = g->deadline - mono_ms();
	if (left <= 0) {
		snprintf(err, errlen, "git %s: timed out after %d ms", what, g->timeout);
		return -1;
	}
	struct run_opts ro = {.argv = argv,
			      .envp = g->envp,
			      .cwd = cwd,
			      .timeout_ms = (int)left,
			      .max_out = 64 << 10,
			      .merge_err = 1};
	struct run_result r = RUN_RESULT_INIT;
	char why[256];
	int rc = run(&ro, &r, why, sizeof(why));
	if (rc < 0) {
		if (r.timed_out)
			snprintf(err, errlen, "git %s: timed out after %d ms", what, g->timeout);
		else
			snprintf(err, errlen, "git %s: %s", what, why);
	} else if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0) {
		last_line(&r.out, why, sizeof(why));
		snprintf(err, errlen, "git %s: %s", what, why);
		rc = -1;
	} else if (out) {
		buf_add(out, r.out.data, r.out.len);
	}
	if (rc < 0)
		redact(err, g->o->url);
	run_result_release(&r);
	return rc;
}

int fetch_git(const struct fetch_git_opts *o, char commit[41], char *err, size_t errlen)
{
	if (fetch_check_url(o->url, err, errlen) < 0)
		return -1;
	if (o->branch && fetch_check_branch(o->branch, err, errlen) < 0)
		return -1;
	if (o->commit && fetch_check_commit(o->commit, err, errlen) < 0)
		return -1;
	if (!o->dir || !*o->dir) {
		snprintf(err, errlen, "git clone: no directory");
		return -1;
	}
	struct git_ctx g = {.o = o};
	g.timeout = o->timeout_ms > 0 ? o->timeout_ms : FETCH_GIT_TIMEOUT;
	g.deadline = mono_ms() + g.timeout;
	char *path = xasprintf("PATH=%s", o->path ? o->path : "/usr/local/bin:/usr/bin:/bin");
	char *home = xasprintf("HOME=%s", o->home ? o->home : "/nonexistent");
	const char *env[] = {path,
			     home,
			     "LC_ALL=C",
			     "GIT_TERMINAL_PROMPT=0",
			     "GCM_INTERACTIVE=never",
			     "GIT_SSH_COMMAND=ssh -o BatchMode=yes",
			     NULL};
	memcpy(g.envp, env, sizeof(env));

	char shown[256], what[320];
	url_shown(o->url, shown, sizeof(shown));
	snprintf(what, sizeof(what), "clone '%s'", shown);
	const char *args[16];
	size_t n = 0;
	args[n++] = "clone";
	args[n++] = "-q";
	args[n++] = "--no-recurse-submodules";
	if (!o->commit) {
		args[n++] = "--depth";
		args[n++] = "1";
	} else {
		args[n++] = "--no-checkout";
	}
	if (o->branch) {
		args[n++] = "--single-branch";
		args[n++] = "--branch";
		args[n++] = o->branch;
	}
	args[n++] = "--";
	args[n++] = o->url;
	args[n++] = o->dir;
	args[n] = NULL;
	struct buf out = BUF_INIT;
	int rc = git(&g, args, NULL, what, NULL, err, errlen);
	if (rc == 0 && o->commit) {
		snprintf(what, sizeof(what), "checkout '%s'", o->commit);
		const char *co[] = {"checkout", "-q", "--detach", o->commit, "--", NULL};
		rc = git(&g, co, o->dir, what, NULL, err, errlen);
	}
	if (rc == 0) {
		const char *rp[] = {"rev-parse", "--verify", "HEAD", NULL};
		rc = git(&g, rp, o->dir, "rev-parse HEAD", &out, err, errlen);
	}
	if (rc == 0) {
		while (out.len && (out.data[out.len - 1] == '\n' || out.data[out.len - 1] == '\r'))
			buf_truncate(&out, out.len - 1);
		if (out.len != 40 || strspn(out.data, "0123456789abcdef") != 40) {
			snprintf(err, errlen, "git rev-parse HEAD: unexpected output '%.60s'",
				 out.data);
			rc = -1;
		} else if (o->commit && strncasecmp(out.data, o->commit, strlen(o->commit))) {
			snprintf(err, errlen, "git checkout '%s': HEAD is %s", o->commit, out.data);
			rc = -1;
		} else {
			memcpy(commit, out.data, 41);
		}
	}
	buf_release(&out);
	free(path);
	free(home);
	return rc;
}

/* --- tar ------------------------------------------------------------------------- */

#ifndef SYS_openat2
#define SYS_openat2 437 /* the same number on every architecture */
#endif
#define FETCH_RESOLVE_NO_MAGICLINKS 0x02
#define FETCH_RESOLVE_NO_SYMLINKS   0x04
#define FETCH_RESOLVE_IN_ROOT	    0x10

/* struct open_how of <linux/openat2.h>, which musl builds may not see. */
struct fetch_open_how {
	uint64_t flags;
	uint64_t mode;
	uint64_t resolve;
};

struct tar {
	unsigned long long max_bytes, total;
	size_t max_entries, entries;
	int rootfd;
	int use_openat2;
	int fd; /* input: fd, or mem when fd < 0 */
	const unsigned char *mem;
	size_t memlen, memoff;
	int fatal;
	size_t nproblems;
	struct buf problems;
	char *pax_path, *pax_link, *gnu_name, *gnu_link;
	long long pax_size; /* -1: none */
	unsigned char io[65536];
};

static void problem(struct tar *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct tar *t, const char *fmt, ...)
{
	if (t->nproblems++ >= FETCH_MAX_PROBLEMS)
		return;
	if (t->problems.len)
		buf_puts(&t->problems, "; ");
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&t->problems, fmt, ap);
	va_end(ap);
}

/* A name as it may appear in a message: at most 200 bytes, control
 * characters shown as '?'. */
static void shown_name(const char *s, char out[204])
{
	size_t i = 0;
	for (; s[i] && i < 200; i++)
		out[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	if (s[i]) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = 0;
}

/* Read exactly n bytes: 0, or -1 at end of input (errno 0) or on error. */
static int rd(struct tar *t, void *dst, size_t n)
{
	if (t->fd < 0) {
		if (t->memlen - t->memoff < n) {
			errno = 0;
			return -1;
		}
		memcpy(dst, t->mem + t->memoff, n);
		t->memoff += n;
		return 0;
	}
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(t->fd, (char *)dst + got, n - got);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			errno = 0;
		return -1;
	}
	return 0;
}

static void truncated(struct tar *t)
{
	if (errno)
		problem(t, "archive: read: %s", strerror(errno));
	else
		problem(t, "archive: truncated (it ends before its end-of-archive block)");
	t->fatal = 1;
}

static int skip(struct tar *t, unsigned long long n)
{
	while (n > 0) {
		size_t c = n < sizeof(t->io) ? (size_t)n : sizeof(t->io);
		if (rd(t, t->io, c) < 0) {
			truncated(t);
			return -1;
		}
		n -= c;
	}
	return 0;
}

static unsigned long long padded(unsigned long long n)
{
	return (n + 511) / 512 * 512;
}

/* An octal field (spaces and NULs around it) or GNU base-256 (first byte
 * 0x80). -1 if malformed or too large. */
static long long num_field(const unsigned char *f, size_t n)
{
	unsigned long long v = 0;
	if (f[0] & 0x80) {
		if (f[0] != 0x80)
			return -1; /* negative, or more than 63 bits */
		for (size_t i = 1; i < n; i++) {
			if (v >> 55)
				return -1;
			v = v << 8 | f[i];
		}
		return (long long)v;
	}
	size_t i = 0;
	while (i < n && f[i] == ' ')
		i++;
	int digits = 0;
	for (; i < n && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
		if (v >> 60)
			return -1;
		v = v << 3 | (unsigned)(f[i] - '0');
	}
	for (; i < n; i++)
		if (f[i] != ' ' && f[i] != 0)
			return -1;
	return digits ? (long long)v : (n && f[0] == 0 ? 0 : -1);
}

static int checksum_ok(const unsigned char *h)
{
	long long want = num_field(h + 148, 8);
	unsigned long u = 0;
	long s = 0;
	for (int i = 0; i < 512; i++) {
		unsigned char c = (i >= 148 && i < 156) ? ' ' : h[i];
		u += c;
		s += (signed char)c;
	}
	return want >= 0 && (want == (long long)u || want == (long long)s);
}

/* Normalise an archive name: relative, no "..", "." and empty components
 * dropped. NULL (with *why) if refused. *depth: the number of components. */
static char *clean_name(const char *in, size_t inlen, const char **why, int *depth)
{
	if (memchr(in, 0, inlen)) {
		*why = "name contains NUL";
		return NULL;
	}
	if (inlen > FETCH_MAX_NAME) {
		*why = "name longer than 4096 bytes";
		return NULL;
	}
	if (inlen && in[0] == '/') {
		*why = "absolute name";
		return NULL;
	}
	struct buf b = BUF_INIT;
	int d = 0;
	for (size_t i = 0; i < inlen;) {
		size_t l = 0;
		while (i + l < inlen && in[i + l] != '/')
			l++;
		if (l == 2 && in[i] == '.' && in[i + 1] == '.') {
			buf_release(&b);
			*why = "name escapes the root ('..')";
			return NULL;
		}
		if (l && !(l == 1 && in[i] == '.')) {
			if (b.len)
				buf_putc(&b, '/');
			buf_add(&b, in + i, l);
			d++;
		}
		i += l + 1;
	}
	*depth = d;
	return buf_detach(&b, NULL);
}

/* A symlink target is kept inside the root: relative, its ".." components
 * all leading and no more than the link's own depth (parent directories),
 * so by induction no chain of links leads out. */
static const char *check_link_target(const char *target, int parent_depth)
{
	if (!*target)
		return "empty symlink target";
	if (target[0] == '/')
		return "symlink target is absolute";
	if (strlen(target) > FETCH_MAX_NAME)
		return "symlink target longer than 4096 bytes";
	int up = 0, forward = 0;
	for (const char *c = target; *c;) {
		size_t l = strcspn(c, "/");
		if (l == 2 && c[0] == '.' && c[1] == '.') {
			if (forward)
				return "symlink target has '..' after a name";
			up++;
		} else if (l && !(l == 1 && c[0] == '.')) {
			forward = 1;
		}
		c += l + (c[l] == '/');
	}
	if (up > parent_depth)
		return "symlink target escapes the root";
	return NULL;
}

/* Open directory `path` (cleaned, relative; "" is the root) below the root
 * without following any symlink; create missing components when asked.
 * -1 with *why set. */
static int open_dir(struct tar *t, const char *path, int create, const char **why)
{
	if (!*path) {
		int fd = fcntl(t->rootfd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			*why = strerror(errno);
		return fd;
	}
	if (t->use_openat2) {
		struct fetch_open_how how = {
		    .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
		    .resolve = FETCH_RESOLVE_IN_ROOT | FETCH_RESOLVE_NO_SYMLINKS |
			       FETCH_RESOLVE_NO_MAGICLINKS,
		};
		long fd = syscall(SYS_openat2, t->rootfd, path, &how, sizeof(how));
		if (fd >= 0)
			return (int)fd;
		if (errno == ENOSYS || errno == EPERM || errno == E2BIG || errno == EINVAL) {
			t->use_openat2 = 0; /* old kernel or a seccomp filter */
		} else if (errno == ELOOP) {
			*why = "path goes through a symlink";
			return -1;
		} else if (errno != ENOENT || !create) {
			*why = errno == ENOTDIR ? "a non-directory is in the way" : strerror(errno);
			return -1;
		}
	}
	int cur = fcntl(t->rootfd, F_DUPFD_CLOEXEC, 0);
	if (cur < 0) {
		*why = strerror(errno);
		return -1;
	}
	char *copy = xstrdup(path), *save = NULL;
	for (char *comp = strtok_r(copy, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		int fd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT && create) {
			if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST) {
				*why = strerror(errno);
				goto fail;
			}
			fd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (fd < 0) {
			struct stat st;
			if (errno == ELOOP || (fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
					       S_ISLNK(st.st_mode)))
				*why = "path goes through a symlink";
			else if (errno == ENOTDIR)
				*why = "a non-directory is in the way";
			else
				*why = strerror(errno);
			goto fail;
		}
		close(cur);
		cur = fd;
	}
	free(copy);
	return cur;
fail:
	free(copy);
	close(cur);
	return -1;
}

/* Split a cleaned name into its directory (returned, malloc'ed) and *base. */
static char *split_name(const char *name, const char **base)
{
	const char *slash = strrchr(name, '/');
	*base = slash ? slash + 1 : name;
	return slash ? xstrndup(name, (size_t)(slash - name)) : xstrdup("");
}

/* Make room for a new non-directory `base` in dirfd: an old file or link
 * goes; a directory stays and is an error. */
static const char *clear_slot(int dirfd, const char *base)
{
	struct stat st;
	if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? NULL : strerror(errno);
	if (S_ISDIR(st.st_mode))
		return "a directory is in the way";
	if (unlinkat(dirfd, base, 0) < 0)
		return strerror(errno);
	return NULL;
}

/* Copy size bytes of entry data (plus padding) into fd (-1: discard). */
static int copy_data(struct tar *t, int fd, unsigned long long size, const char **why)
{
	unsigned long long left = padded(size), data = size;
	while (left > 0) {
		size_t c = left < sizeof(t->io) ? (size_t)left : sizeof(t->io);
		if (rd(t, t->io, c) < 0) {
			truncated(t);
			return -1;
		}
		size_t w = data < c ? (size_t)data : c;
		data -= w;
		left -= c;
		for (size_t off = 0; fd >= 0 && off < w;) {
			ssize_t n = write(fd, t->io + off, w - off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				*why = strerror(n < 0 ? errno : EIO);
				fd = -1; /* keep reading: the archive goes on */
				break;
			}
			off += (size_t)n;
		}
	}
	return 0;
}

enum entry_kind { ENT_FILE, ENT_DIR, ENT_SYMLINK, ENT_HARDLINK };

/* Extract one entry whose data (size bytes) follows. Returns -1 only when
 * the archive cannot be read on (t->fatal). */
static int extract(struct tar *t, enum entry_kind kind, const char *rawname, size_t rawlen,
		   const char *link, unsigned mode, unsigned long long size)
{
	char shown[204];
	const char *why = NULL;
	int depth = 0, dirfd = -1, fd = -1;
	char *dir = NULL, *name = clean_name(rawname, rawlen, &why, &depth);
	char *raw = xstrndup(rawname, rawlen);
	shown_name(raw, shown);
	free(raw);
	const char *base = NULL;
	if (!name)
		goto bad;
	if (!*name) {
		if (kind == ENT_DIR)
			goto skip_data;
		why = "empty name";
		goto bad;
	}
	dir = split_name(name, &base);
	if (kind == ENT_SYMLINK && (why = check_link_target(link, depth - 1)) != NULL)
		goto bad;
	dirfd = open_dir(t, dir, 1, &why);
	if (dirfd < 0)
		goto bad;
	switch (kind) {
	case ENT_DIR: {
		struct stat st;
		if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode) &&
		    unlinkat(dirfd, base, 0) < 0) {
			why = strerror(errno);
			goto bad;
		}
		if (mkdirat(dirfd, base, 0700) < 0 && errno != EEXIST) {
			why = strerror(errno);
			goto bad;
		}
		fd = openat(dirfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fchmod(fd, (mode & 0777) | 0700) < 0) {
			why = strerror(errno);
			goto bad;
		}
		break;
	}
	case ENT_FILE:
		if ((why = clear_slot(dirfd, base)) != NULL)
			goto bad;
		fd =
		    openat(dirfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 || fchmod(fd, (mode & 0777) | 0600) < 0) {
			why = strerror(errno);
			goto bad;
		}
		if (copy_data(t, fd, size, &why) < 0)
			goto out;
		close(fd);
		fd = -1;
		size = 0;
		if (why)
			goto bad_nodata;
		break;
	case ENT_SYMLINK:
		if ((why = clear_slot(dirfd, base)) != NULL)
			goto bad;
		if (symlinkat(link, dirfd, base) < 0) {
			why = strerror(errno);
			goto bad;
		}
		break;
	case ENT_HARDLINK: {
		int tdepth;
		const char *tbase;
		char *target = clean_name(link, strlen(link), &why, &tdepth);
		if (!target || !*target) {
			if (!why)
				why = "empty hardlink target";
			free(target);
			goto bad;
		}
		char *tdir = split_name(target, &tbase);
		int tfd = open_dir(t, tdir, 0, &why);
		struct stat st;
		if (tfd >= 0 &&
		    (fstatat(tfd, tbase, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)))
			why = "hardlink target is not a file extracted before";
		else if (tfd >= 0 && !(why = clear_slot(dirfd, base)) &&
			 linkat(tfd, tbase, dirfd, base, 0) < 0)
			why = strerror(errno);
		if (tfd >= 0)
			close(tfd);
		free(tdir);
		free(target);
		if (why)
			goto bad;
		break;
	}
	}
skip_data:
	if (size && copy_data(t, -1, size, &why) < 0)
		goto out;
	goto out;
bad:
	if (copy_data(t, -1, size, &why) < 0)
		goto out;
bad_nodata:
	problem(t, "entry '%s': %s", shown, why);
out:
	if (fd >= 0)
		close(fd);
	if (dirfd >= 0)
		close(dirfd);
	free(dir);
	free(name);
	return t->fatal ? -1 : 0;
}

/* Parse pax records "LEN key=value\n" for path, linkpath and size. */
static int parse_pax(struct tar *t, const char *p, size_t n)
{
	while (n > 0) {
		size_t i = 0, len = 0;
		while (i < n && p[i] >= '0' && p[i] <= '9' && i < 8)
			len = len * 10 + (size_t)(p[i++] - '0');
		if (i == 0 || i >= n || p[i] != ' ' || len <= i + 1 || len > n ||
		    p[len - 1] != '\n')
			return -1;
		const char *kv = p + i + 1, *end = p + len - 1;
		const char *eq = memchr(kv, '=', (size_t)(end - kv));
		if (!eq)
			return -1;
		size_t kl = (size_t)(eq - kv), vl = (size_t)(end - eq - 1);
		const char *v = eq + 1;
		if (kl == 4 && !memcmp(kv, "path", 4)) {
			free(t->pax_path);
			t->pax_path = xstrndup(v, vl);
			if (strlen(t->pax_path) != vl)
				return -1; /* NUL inside */
		} else if (kl == 8 && !memcmp(kv, "linkpath", 8)) {
			free(t->pax_link);
			t->pax_link = xstrndup(v, vl);
			if (strlen(t->pax_link) != vl)
				return -1;
		} else if (kl == 4 && !memcmp(kv, "size", 4)) {
			long long s = 0;
			if (vl == 0 || vl > 18)
				return -1;
			for (size_t k = 0; k < vl; k++) {
				if (v[k] < '0' || v[k] > '9')
					return -1;
				s = s * 10 + (v[k] - '0');
			}
			t->pax_size = s;
		}
		p += len;
		n -= len;
	}
	return 0;
}

/* Read a metadata entry's data (pax header, GNU long name) whole. */
static char *read_meta(struct tar *t, unsigned long long size, size_t max)
{
	if (size > max) {
		problem(t, "archive: metadata entry of %llu bytes (limit %zu)", size, max);
		t->fatal = 1;
		return NULL;
	}
	char *d = xmalloc((size_t)padded(size) + 1);
	if (rd(t, d, (size_t)padded(size)) < 0) {
		free(d);
		truncated(t);
		return NULL;
	}
	d[size] = 0;
	return d;
}

static void clear_pending(struct tar *t)
{
	free(t->pax_path);
	free(t->pax_link);
	free(t->gnu_name);
	free(t->gnu_link);
	t->pax_path = t->pax_link = t->gnu_name = t->gnu_link = NULL;
	t->pax_size = -1;
}

static void untar(struct tar *t)
{
	unsigned char h[512];
	t->pax_size = -1;
	for (;;) {
		if (rd(t, h, 512) < 0) {
			truncated(t);
			break;
		}
		int zero = 1;
		for (int i = 0; i < 512 && zero; i++)
			zero = h[i] == 0;
		if (zero)
			break; /* end of archive (a second zero block may follow) */
		if (!checksum_ok(h)) {
			problem(t, "archive: bad header checksum at entry %zu", t->entries + 1);
			t->fatal = 1;
			break;
		}
		if (++t->entries > t->max_entries) {
			problem(t, "archive: more than %zu entries", t->max_entries);
			t->fatal = 1;
			break;
		}
		long long size = num_field(h + 124, 12);
		long long mode = num_field(h + 100, 8);
		char type = (char)h[156];
		if (t->pax_size >= 0 && type != 'x' && type != 'g' && type != 'L' && type != 'K')
			size = t->pax_size;
		if (size < 0 || mode < 0) {
			problem(t, "archive: bad size or mode field at entry %zu", t->entries);
			t->fatal = 1;
			break;
		}
		if (type == 'x' || type == 'g') {
			char *d = read_meta(t, (unsigned long long)size, FETCH_MAX_PAX);
			if (!d)
				break;
			if (type == 'x' && parse_pax(t, d, (size_t)size) < 0) {
				problem(t, "archive: malformed pax header at entry %zu",
					t->entries);
				t->fatal = 1;
			}
			free(d);
			if (t->fatal)
				break;
			continue;
		}
		if (type == 'L' || type == 'K') {
			char *d = read_meta(t, (unsigned long long)size, FETCH_MAX_NAME + 1);
			if (!d)
				break;
			char **slot = type == 'L' ? &t->gnu_name : &t->gnu_link;
			free(*slot);
			*slot = d;
			continue;
		}
		char name[256 + 1], link[100 + 1];
		size_t nl = strnlen((char *)h, 100);
		if (!memcmp(h + 257, "ustar\0", 6) && h[345]) {
			size_t pl = strnlen((char *)h + 345, 155);
			memcpy(name, h + 345, pl);
			name[pl] = '/';
			memcpy(name + pl + 1, h, nl);
			nl += pl + 1;
		} else {
			memcpy(name, h, nl);
		}
		name[nl] = 0;
		size_t ll = strnlen((char *)h + 157, 100);
		memcpy(link, h + 157, ll);
		link[ll] = 0;
		const char *ename = t->pax_path ? t->pax_path : t->gnu_name ? t->gnu_name : name;
		size_t elen = t->pax_path   ? strlen(t->pax_path)
			      : t->gnu_name ? strlen(t->gnu_name)
					    : nl;
		const char *elink = t->pax_link ? t->pax_link : t->gnu_link ? t->gnu_link : link;
		char shown[204];
		shown_name(ename, shown);

		enum entry_kind kind = ENT_FILE;
		int refuse = 0;
		switch (type) {
		case '0':
		case '\0':
		case '7':
			kind = ENT_FILE;
			break;
		case '5':
			kind = ENT_DIR;
			break;
		case '2':
			kind = ENT_SYMLINK;
			break;
		case '1':
			kind = ENT_HARDLINK;
			break;
		case '3':
		case '4':
		case '6':
			problem(t, "entry '%s': device files and fifos are not allowed", shown);
			refuse = 1;
			break;
		default:
			problem(t, "entry '%s': unsupported entry type '%c'", shown,
				type >= 0x21 && type < 0x7f ? type : '?');
			refuse = 1;
			break;
		}
		unsigned long long usize = (unsigned long long)size;
		if (!refuse && kind == ENT_FILE) {
			if (usize > t->max_bytes - t->total) {
				problem(t,
					"entry '%s': %llu bytes would pass the limit of %llu bytes",
					shown, usize, t->max_bytes);
				t->fatal = 1;
				break;
			}
			t->total += usize;
		}
		if (refuse || kind != ENT_FILE) {
			/* Links and directories carry no data; skip what is there. */
			if (!refuse)
				extract(t, kind, ename, elen, elink, (unsigned)mode, 0);
			if (!t->fatal)
				skip(t, padded(usize));
		} else {
			extract(t, kind, ename, elen, elink, (unsigned)mode, usize);
		}
		clear_pending(t);
		if (t->fatal)
			break;
	}
	clear_pending(t);
}

static int untar_run(struct tar *t, const char *root, const struct fetch_untar_opts *o,
		     const char *prefix, char *err, size_t errlen)
{
	t->max_bytes = o && o->max_bytes ? o->max_bytes : FETCH_MAX_BYTES;
	t->max_entries = o && o->max_entries ? o->max_entries : FETCH_MAX_ENTRIES;
	t->use_openat2 = !(o && o->no_openat2);
	buf_init(&t->problems);
	t->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->rootfd < 0) {
		snprintf(err, errlen, "untar: root '%s': %s", root, strerror(errno));
		buf_release(&t->problems);
		return -1;
	}
	untar(t);
	close(t->rootfd);
	int rc = 0;
	if (t->nproblems) {
		if (t->nproblems > FETCH_MAX_PROBLEMS)
			buf_printf(&t->problems, "; and %zu more",
				   t->nproblems - FETCH_MAX_PROBLEMS);
		snprintf(err, errlen, "%s%s", prefix, t->problems.data);
		rc = -1;
	}
	buf_release(&t->problems);
	return rc;
}

static const char *compression(const unsigned char *m, size_t n)
{
	if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b)
		return "gzip";
	if (n >= 3 && !memcmp(m, "BZh", 3))
		return "bzip2";
	if (n >= 6 && !memcmp(m,
			      "\xfd"
			      "7zXZ\0",
			      6))
		return "xz";
	if (n >= 4 && !memcmp(m, "\x28\xb5\x2f\xfd", 4))
		return "zstd";
	return NULL;
}

int fetch_untar_mem(const void *data, size_t n, const char *root, const struct fetch_untar_opts *o,
		    char *err, size_t errlen)
{
	const char *c = compression(data, n);
	if (c) {
		snprintf(err, errlen,
			 "untar: %s data in memory is not supported (only uncompressed)", c);
		return -1;
	}
	struct tar *t = xcalloc(1, sizeof(*t));
	t->fd = -1;
	t->mem = data;
	t->memlen = n;
	int rc = untar_run(t, root, o, "", err, errlen);
	free(t);
	return rc;
}

int fetch_untar_fd(int fd, const char *root, const struct fetch_untar_opts *o, char *err,
		   size_t errlen)
{
	unsigned char m[6];
	ssize_t got = pread(fd, m, sizeof(m), 0);
	const char *c = compression(m, got > 0 ? (size_t)got : 0);
	if (c && strcmp(c, "gzip")) {
		snprintf(err, errlen, "untar: %s archives are not supported (tar or tar.gz)", c);
		return -1;
	}
	if (got >= 0)
		lseek(fd, 0, SEEK_SET);
	struct tar *t = xcalloc(1, sizeof(*t));
	t->fd = fd;
	struct spawn_proc p = {.pid = -1};
	if (c) {
		static const char *const argv[] = {"gzip", "-dc", NULL};
		static const char *const envp[] = {"PATH=/usr/bin:/bin", NULL};
		struct spawn_opts so = {.argv = argv,
					.envp = envp,
					.pgroup = SPAWN_PGROUP,
					.in = SPAWN_FD,
					.in_fd = fd,
					.out = SPAWN_PIPE};
		if (spawn_start(&so, &p, err, errlen) < 0) {
			free(t);
			return -1;
		}
		int fl = fcntl(p.out_fd, F_GETFL);
		if (fl >= 0)
			fcntl(p.out_fd, F_SETFL, fl & ~O_NONBLOCK);
		t->fd = p.out_fd;
	}
	int rc = untar_run(t, root, o, "", err, errlen);
	if (c) {
		close(p.out_fd);
		spawn_kill_group(p.pgid, SIGKILL);
		int st;
		while (waitpid(p.pid, &st, 0) < 0 && errno == EINTR)
			;
		if (rc < 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0) {
			size_t l = strlen(err);
			snprintf(err + l, errlen - l, " (gzip -dc exited with status %d)",
				 WEXITSTATUS(st));
		}
	}
	free(t);
	return rc;
}
