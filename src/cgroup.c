#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "xalloc.h"

/* v1 hierarchies used, in this order. */
static const char *const cgroup_v1_ctrl[] = {"memory", "cpu", "pids"};
#define CGROUP_NCTRL	  3
#define CGROUP_CPU_PERIOD 100000 /* microseconds */

struct cgroup {
	enum cgroup_mode mode;
	char *path;		  /* as given, for messages */
	char *dirs[CGROUP_NCTRL]; /* v2: dirs[0] only; v1: NULL where not mounted */
	int fds[CGROUP_NCTRL];	  /* cgroup.procs of each dir, packed */
	size_t nfds;
};

static int cgroup_is_file(const char *dir, const char *name)
{
	char *p = xasprintf("%s/%s", dir, name);
	struct stat st;
	int r = stat(p, &st) == 0;
	free(p);
	return r;
}

enum cgroup_mode cgroup_detect(const char *root)
{
	if (cgroup_is_file(root, "cgroup.controllers"))
		return CGROUP_V2;
	for (int i = 0; i < CGROUP_NCTRL; i++) {
		char *d = xasprintf("%s/%s", root, cgroup_v1_ctrl[i]);
		int ok = cgroup_is_file(d, "cgroup.procs");
		free(d);
		if (ok)
			return CGROUP_V1;
	}
	return CGROUP_NONE;
}

static int cgroup_write(const char *dir, const char *file, const char *value, struct buf *why)
{
	char *p = xasprintf("%s/%s", dir, file);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	ssize_t w = -1;
	if (fd >= 0) {
		do
			w = write(fd, value, strlen(value));
		while (w < 0 && errno == EINTR);
		int e = errno;
		close(fd);
		errno = e;
	}
	if (w != (ssize_t)strlen(value)) {
		buf_printf(why, "write '%s' to '%s': %s", value, p,
			   w < 0 ? strerror(errno) : "short write");
		free(p);
		return -1;
	}
	free(p);
	return 0;
}

static int cgroup_path_ok(const char *path)
{
	if (!path[0] || path[0] == '/')
		return 0;
	for (const char *s = path; *s;) {
		size_t n = strcspn(s, "/");
		if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return 0;
		s += n;
		if (*s == '/')
			s++;
		if (!*s && s[-1] == '/')
			return 0;
	}
	return 1;
}

/* v2: enable ctrl in cgroup.subtree_control of root and every ancestor of
 * path (the leaf itself holds the processes). */
static int cgroup_v2_enable(const char *root, const char *path, const char *ctrl, struct buf *why)
{
	struct buf dir = BUF_INIT, have = BUF_INIT;
	char *tok = xasprintf("+%s", ctrl);
	int rc = -1;
	buf_puts(&dir, root);
	for (const char *s = path;;) {
		size_t n = strcspn(s, "/");
		char *cf = xasprintf("%s/cgroup.controllers", dir.data);
		buf_reset(&have);
		char e[256];
		int r = buf_read_file(&have, cf, 4096, e, sizeof(e));
		free(cf);
		if (r < 0) {
			buf_puts(why, e);
			goto out;
		}
		int found = 0;
		char *save = NULL;
		for (char *w = strtok_r(have.data, " \n", &save); w;
		     w = strtok_r(NULL, " \n", &save))
			found |= !strcmp(w, ctrl);
		if (!found) {
			buf_printf(why, "controller '%s' is not available in '%s'", ctrl, dir.data);
			goto out;
		}
		if (cgroup_write(dir.data, "cgroup.subtree_control", tok, why) < 0)
			goto out;
		if (!s[n])
			break;
		buf_putc(&dir, '/');
		buf_add(&dir, s, n);
		s += n + 1;
	}
	rc = 0;
out:
	free(tok);
	buf_release(&dir);
	buf_release(&have);
	return rc;
}

static int cgroup_mkdirs(const char *base, const char *path, struct buf *why)
{
	struct buf dir = BUF_INIT;
	buf_puts(&dir, base);
	for (const char *s = path; *s;) {
		size_t n = strcspn(s, "/");
		buf_putc(&dir, '/');
		buf_add(&dir, s, n);
		if (mkdir(dir.data, 0755) < 0 && errno != EEXIST) {
			buf_printf(why, "mkdir '%s': %s", dir.data, strerror(errno));
			buf_release(&dir);
			return -1;
		}
		s += n;
		if (*s)
			s++;
	}
	buf_release(&dir);
	return 0;
}

static int cgroup_limits_v2(struct cgroup *cg, const char *root, const struct cgroup_limits *l,
			    struct buf *why)
{
	char v[64];
	const char *dir = cg->dirs[0];
	if (l->memory > 0) {
		if (cgroup_v2_enable(root, cg->path, "memory", why) < 0)
			return -1;
		snprintf(v, sizeof(v), "%lld", l->memory);
		if (cgroup_write(dir, "memory.max", v, why) < 0)
			return -1;
	}
	if (l->cpu_millis > 0) {
		if (cgroup_v2_enable(root, cg->path, "cpu", why) < 0)
			return -1;
		snprintf(v, sizeof(v), "%lld %d",
			 (long long)l->cpu_millis * CGROUP_CPU_PERIOD / 1000, CGROUP_CPU_PERIOD);
		if (cgroup_write(dir, "cpu.max", v, why) < 0)
			return -1;
	}
	if (l->pids > 0) {
		if (cgroup_v2_enable(root, cg->path, "pids", why) < 0)
			return -1;
		snprintf(v, sizeof(v), "%d", l->pids);
		if (cgroup_write(dir, "pids.max", v, why) < 0)
			return -1;
	}
	return 0;
}

static int cgroup_limits_v1(struct cgroup *cg, const struct cgroup_limits *l, struct buf *why)
{
	char v[64];
	int want[CGROUP_NCTRL] = {l->memory > 0, l->cpu_millis > 0, l->pids > 0};
	for (int i = 0; i < CGROUP_NCTRL; i++)
		if (want[i] && !cg->dirs[i]) {
			buf_printf(why, "no '%s' hierarchy mounted for the limit",
				   cgroup_v1_ctrl[i]);
			return -1;
		}
	if (want[0]) {
		snprintf(v, sizeof(v), "%lld", l->memory);
		if (cgroup_write(cg->dirs[0], "memory.limit_in_bytes", v, why) < 0)
			return -1;
	}
	if (want[1]) {
		snprintf(v, sizeof(v), "%d", CGROUP_CPU_PERIOD);
		if (cgroup_write(cg->dirs[1], "cpu.cfs_period_us", v, why) < 0)
			return -1;
		snprintf(v, sizeof(v), "%lld", (long long)l->cpu_millis * CGROUP_CPU_PERIOD / 1000);
		if (cgroup_write(cg->dirs[1], "cpu.cfs_quota_us", v, why) < 0)
			return -1;
	}
	if (want[2]) {
		snprintf(v, sizeof(v), "%d", l->pids);
		if (cgroup_write(cg->dirs[2], "pids.max", v, why) < 0)
			return -1;
	}
	return 0;
}

struct cgroup *cgroup_open(const char *root, const char *path, const struct cgroup_limits *limits,
			   char *err, size_t errlen)
{
	static const struct cgroup_limits none;
	const struct cgroup_limits *l = limits ? limits : &none;
	struct buf why = BUF_INIT;
	struct cgroup *cg = xcalloc(1, sizeof(*cg));
	cg->path = xstrdup(path);
	if (!cgroup_path_ok(path)) {
		buf_puts(&why, "not a relative path of names");
		goto fail;
	}
	if (l->memory < 0 || l->cpu_millis < 0 || l->pids < 0) {
		buf_puts(&why, "negative limit");
		goto fail;
	}
	cg->mode = cgroup_detect(root);
	if (cg->mode == CGROUP_NONE) {
		buf_printf(&why, "no cgroup hierarchy under '%s'", root);
		goto fail;
	}
	if (cg->mode == CGROUP_V2) {
		if (cgroup_mkdirs(root, path, &why) < 0)
			goto fail;
		cg->dirs[0] = xasprintf("%s/%s", root, path);
		if (cgroup_limits_v2(cg, root, l, &why) < 0)
			goto fail;
	} else {
		for (int i = 0; i < CGROUP_NCTRL; i++) {
			char *base = xasprintf("%s/%s", root, cgroup_v1_ctrl[i]);
			if (cgroup_is_file(base, "cgroup.procs")) {
				if (cgroup_mkdirs(base, path, &why) < 0) {
					free(base);
					goto fail;
				}
				cg->dirs[i] = xasprintf("%s/%s", base, path);
			}
			free(base);
		}
		if (cgroup_limits_v1(cg, l, &why) < 0)
			goto fail;
	}
	for (int i = 0; i < CGROUP_NCTRL; i++) {
		if (!cg->dirs[i])
			continue;
		char *p = xasprintf("%s/cgroup.procs", cg->dirs[i]);
		int fd = open(p, O_WRONLY | O_CLOEXEC);
		if (fd < 0) {
			buf_printf(&why, "open '%s': %s", p, strerror(errno));
			free(p);
			goto fail;
		}
		free(p);
		cg->fds[cg->nfds++] = fd;
	}
	buf_release(&why);
	return cg;
fail:
	snprintf(err, errlen, "cgroup '%s': %s", path, why.data);
	buf_release(&why);
	cgroup_free(cg);
	return NULL;
}

void cgroup_free(struct cgroup *cg)
{
	if (!cg)
		return;
	for (size_t i = 0; i < cg->nfds; i++)
		close(cg->fds[i]);
	for (int i = 0; i < CGROUP_NCTRL; i++)
		free(cg->dirs[i]);
	free(cg->path);
	free(cg);
}

enum cgroup_mode cgroup_mode(const struct cgroup *cg)
{
	return cg->mode;
}

const int *cgroup_fds(const struct cgroup *cg, size_t *n)
{
	*n = cg->nfds;
	return cg->fds;
}

int cgroup_has(const struct cgroup *cg, pid_t pid)
{
	int all = 1;
	for (int i = 0; i < CGROUP_NCTRL; i++) {
		if (!cg->dirs[i])
			continue;
		struct buf b = BUF_INIT;
		char *p = xasprintf("%s/cgroup.procs", cg->dirs[i]);
		char e[256];
		int r = buf_read_file(&b, p, 1 << 22, e, sizeof(e));
		free(p);
		if (r < 0) {
			buf_release(&b);
			return -1;
		}
		int found = 0;
		for (char *s = b.data; *s;) {
			char *end;
			long v = strtol(s, &end, 10);
			if (end == s)
				break;
			found |= v == (long)pid;
			s = end;
			while (*s == '\n')
				s++;
		}
		buf_release(&b);
		all &= found;
	}
	return all;
}

int cgroup_remove(struct cgroup *cg, char *err, size_t errlen)
{
	int rc = 0;
	for (int i = 0; i < CGROUP_NCTRL; i++) {
		if (cg->dirs[i] && rmdir(cg->dirs[i]) < 0 && errno != ENOENT) {
			snprintf(err, errlen, "cgroup '%s': rmdir '%s': %s", cg->path, cg->dirs[i],
				 strerror(errno));
			rc = -1;
		}
	}
	return rc;
}
