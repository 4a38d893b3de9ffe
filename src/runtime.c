#include "runtime.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "run.h"
#include "xalloc.h"

#define RUNTIME_PROBE_MS     5000
#define RUNTIME_MAX_OUT	     4096
#define RUNTIME_MAX_PER_TYPE 32
#define RUNTIME_MAX_COMP     4

struct rt_type {
	const char *name;
	const char *progs[3]; /* plain program names */
	const char *arg;      /* the version argument */
	const char *marker;   /* the version follows this ("": at the start) */
	int java;	      /* "1.8.0_392" rules */
};

/* In the blueprint's order (BLUEPRINT.md). */
static const struct rt_type types[] = {
    {"nodejs", {"node", "nodejs"}, "--version", "v", 0},
    {"python", {"python3"}, "--version", "Python ", 0},
    {"golang", {"go"}, "version", "go version go", 0},
    {"php", {"php"}, "--version", "PHP ", 0},
    {"ruby", {"ruby"}, "--version", "ruby ", 0},
    {"dotnet", {"dotnet"}, "--version", "", 0},
    {"java", {"java"}, "-version", "version \"", 1},
    {"static", {NULL}, NULL, NULL, 0},
    {"docker", {"docker", "podman"}, "--version", "version ", 0},
};
#define NTYPES (sizeof(types) / sizeof(types[0]))

struct found {
	char *path;
	char *real;
	char *version;
	int plain; /* found under a plain name, not a versioned one */
};

struct rt_cache {
	int done;
	struct found *f;
	size_t n, cap;
};

struct runtime {
	char *search;
	struct rt_cache cache[NTYPES];
};

static const struct rt_type *type_of(const char *name, size_t *idx)
{
	for (size_t i = 0; name && i < NTYPES; i++)
		if (!strcmp(types[i].name, name)) {
			if (idx)
				*idx = i;
			return &types[i];
		}
	return NULL;
}

int runtime_type_known(const char *type)
{
	return type_of(type, NULL) != NULL;
}

/* --- versions --------------------------------------------------------------- */

/* Components of a dotted version; -1 if s is not digits separated by dots
 * (1..max parts, each at most 9 digits). */
static int parse_dotted(const char *s, long comp[], int max)
{
	int n = 0;
	for (;;) {
		if (*s < '0' || *s > '9' || n == max)
			return -1;
		long v = 0;
		int d = 0;
		for (; *s >= '0' && *s <= '9'; s++, d++)
			v = v * 10 + (*s - '0');
		if (d > 9)
			return -1;
		comp[n++] = v;
		if (*s == 0)
			return n;
		if (*s != '.')
			return -1;
		s++;
	}
}

int runtime_version_match(const char *prefix, const char *version)
{
	long a[RUNTIME_MAX_COMP], b[RUNTIME_MAX_COMP];
	int na = parse_dotted(prefix, a, RUNTIME_MAX_COMP);
	int nb = parse_dotted(version, b, RUNTIME_MAX_COMP);
	if (na < 0 || nb < 0 || na > nb)
		return 0;
	for (int i = 0; i < na; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

/* Compare two dotted versions (missing components count as -1, so 3.11 <
 * 3.11.0). */
static int version_cmp(const char *x, const char *y)
{
	long a[RUNTIME_MAX_COMP], b[RUNTIME_MAX_COMP];
	int na = parse_dotted(x, a, RUNTIME_MAX_COMP);
	int nb = parse_dotted(y, b, RUNTIME_MAX_COMP);
	for (int i = 0; i < RUNTIME_MAX_COMP; i++) {
		long u = i < na ? a[i] : -1, v = i < nb ? b[i] : -1;
		if (u != v)
			return u < v ? -1 : 1;
	}
	return 0;
}

int runtime_parse_version(const char *type, const char *out, char *version, size_t len)
{
	const struct rt_type *t = type_of(type, NULL);
	if (!t || !t->marker || len == 0)
		return -1;
	const char *p = out;
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	if (*t->marker) {
		/* The marker at the start of a line of the output. */
		const char *m = p;
		size_t ml = strlen(t->marker);
		for (;;) {
			m = strstr(m, t->marker);
			if (!m)
				return -1;
			if (t->java || m == p || m[-1] == '\n' || m[-1] == ' ')
				break;
			m++;
		}
		p = m + ml;
	}
	long comp[RUNTIME_MAX_COMP];
	int n = 0;
	while (n < RUNTIME_MAX_COMP && *p >= '0' && *p <= '9') {
		long v = 0;
		int d = 0;
		for (; *p >= '0' && *p <= '9'; p++, d++)
			if (d < 9)
				v = v * 10 + (*p - '0');
		comp[n++] = v;
		if ((*p == '.' || (t->java && *p == '_')) && p[1] >= '0' && p[1] <= '9')
			p++;
		else
			break;
	}
	if (n == 0)
		return -1;
	int first = 0;
	if (t->java && n >= 2 && comp[0] == 1 && comp[1] <= 8)
		first = 1; /* 1.8.0_392: Java 8 */
	size_t off = 0;
	for (int i = first; i < n; i++) {
		int w = snprintf(version + off, len - off, "%s%ld", i > first ? "." : "", comp[i]);
		if (w < 0 || (size_t)w >= len - off)
			return -1;
		off += (size_t)w;
	}
	return 0;
}

/* --- detection ------------------------------------------------------------- */

/* 1 if name is one of t's program names, optionally followed by a suffix
 * of digits and dots that starts with a digit or ".digit"; *plain says
 * which. */
static int name_matches(const struct rt_type *t, const char *name, int *plain)
{
	for (int i = 0; i < 3 && t->progs[i]; i++) {
		size_t l = strlen(t->progs[i]);
		if (strncmp(name, t->progs[i], l))
			continue;
		const char *s = name + l;
		if (*s == 0) {
			*plain = 1;
			return 1;
		}
		/* docker and podman: no versioned names. */
		if (!strcmp(t->name, "docker") || !strcmp(t->name, "dotnet"))
			continue;
		if (*s == '.')
			s++;
		if (*s < '0' || *s > '9')
			continue;
		while ((*s >= '0' && *s <= '9') || (*s == '.' && s[1] >= '0' && s[1] <= '9'))
			s++;
		if (*s == 0) {
			*plain = 0;
			return 1;
		}
	}
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void probe(struct runtime *rt, const struct rt_type *t, struct rt_cache *c, const char *path,
		  int plain)
{
	char *real = realpath(path, NULL);
	struct stat st;
	if (!real)
		return;
	if (stat(real, &st) < 0 || !S_ISREG(st.st_mode) || access(real, X_OK) < 0)
		goto skip;
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->f[i].real, real))
			goto skip;
	if (c->n >= RUNTIME_MAX_PER_TYPE)
		goto skip;
	char *env_path = xasprintf("PATH=%s", rt->search);
	const char *envp[] = {env_path, "LC_ALL=C", NULL};
	const char *argv[] = {path, t->arg, NULL};
	struct run_opts o = {.argv = argv,
			     .envp = envp,
			     .cwd = "/",
			     .timeout_ms = RUNTIME_PROBE_MS,
			     .max_out = RUNTIME_MAX_OUT,
			     .merge_err = 1};
	struct run_result r = RUN_RESULT_INIT;
	char err[256], version[64];
	int rc = run(&o, &r, err, sizeof(err));
	free(env_path);
	if (rc < 0 || !WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0 ||
	    runtime_parse_version(t->name, r.out.data, version, sizeof(version)) < 0) {
		if (rc == 0)
			snprintf(err, sizeof(err), "no version in its output");
		log_debug("runtime", "probe failed", "path", path, "error", err, NULL);
		run_result_release(&r);
		goto skip;
	}
	run_result_release(&r);
	XGROW(c->f, c->cap, c->n + 1);
	c->f[c->n++] = (struct found){xstrdup(path), real, xstrdup(version), plain};
	return;
skip:
	free(real);
}

static void detect(struct runtime *rt, size_t ti)
{
	const struct rt_type *t = &types[ti];
	struct rt_cache *c = &rt->cache[ti];
	c->done = 1;
	if (!t->progs[0])
		return;
	const char *s = rt->search;
	while (*s) {
		const char *e = strchr(s, ':');
		size_t l = e ? (size_t)(e - s) : strlen(s);
		char *dir = xstrndup(s, l);
		s += l + (e ? 1 : 0);
		if (!*dir || *dir != '/') { /* relative PATH entries are ignored */
			free(dir);
			continue;
		}
		DIR *d = opendir(dir);
		if (!d) {
			free(dir);
			continue;
		}
		/* Plain names first (in the type's order), then versioned ones
		 * sorted by name. */
		char **names = NULL;
		size_t n = 0, cap = 0;
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			int plain;
			if (name_matches(t, de->d_name, &plain) && !plain) {
				XGROW(names, cap, n + 1);
				names[n++] = xstrdup(de->d_name);
			}
		}
		closedir(d);
		if (n > 1)
			qsort(names, n, sizeof(*names), cmp_names);
		for (int i = 0; i < 3 && t->progs[i]; i++) {
			char *p = xasprintf("%s/%s", dir, t->progs[i]);
			probe(rt, t, c, p, 1);
			free(p);
		}
		for (size_t i = 0; i < n; i++) {
			char *p = xasprintf("%s/%s", dir, names[i]);
			probe(rt, t, c, p, 0);
			free(p);
			free(names[i]);
		}
		free(names);
		free(dir);
	}
}

static struct rt_cache *cached(struct runtime *rt, size_t ti)
{
	if (!rt->cache[ti].done)
		detect(rt, ti);
	return &rt->cache[ti];
}

/* --- API ----------------------------------------------------------------------- */

struct runtime *runtime_new(const char *search_path)
{
	struct runtime *rt = xcalloc(1, sizeof(*rt));
	rt->search = xstrdup(search_path ? search_path : "");
	return rt;
}

void runtime_refresh(struct runtime *rt)
{
	for (size_t i = 0; i < NTYPES; i++) {
		struct rt_cache *c = &rt->cache[i];
		for (size_t j = 0; j < c->n; j++) {
			free(c->f[j].path);
			free(c->f[j].real);
			free(c->f[j].version);
		}
		free(c->f);
		memset(c, 0, sizeof(*c));
	}
}

void runtime_free(struct runtime *rt)
{
	if (!rt)
		return;
	runtime_refresh(rt);
	free(rt->search);
	free(rt);
}

static void pick_of(const struct rt_type *t, const struct found *f, struct runtime_pick *pk)
{
	pk->type = t->name;
	pk->version = f ? f->version : NULL;
	pk->path = f ? f->path : NULL;
}

int runtime_installed(struct runtime *rt, const char *type, size_t i, struct runtime_pick *pick)
{
	size_t ti;
	const struct rt_type *t = type_of(type, &ti);
	if (!t)
		return 0;
	struct rt_cache *c = cached(rt, ti);
	if (i >= c->n)
		return 0;
	pick_of(t, &c->f[i], pick);
	return 1;
}

int runtime_resolve(struct runtime *rt, const char *type, const char *version,
		    struct runtime_pick *pick, char *err, size_t errlen)
{
	size_t ti;
	const struct rt_type *t = type_of(type, &ti);
	if (!t) {
		struct buf b = BUF_INIT;
		for (size_t i = 0; i < NTYPES; i++)
			buf_printf(&b, "%s%s", i ? ", " : "", types[i].name);
		snprintf(err, errlen, "runtime '%s' unknown (known: %s)", type ? type : "", b.data);
		buf_release(&b);
		return -1;
	}
	long comp[RUNTIME_MAX_COMP];
	if (version && parse_dotted(version, comp, 3) < 0) {
		snprintf(
		    err, errlen,
		    "runtime %s version '%s' invalid: want digits separated by dots, 1-3 parts",
		    t->name, version);
		return -1;
	}
	if (!t->progs[0]) {
		pick_of(t, NULL, pick);
		return 0;
	}
	struct rt_cache *c = cached(rt, ti);
	const struct found *best = NULL;
	for (size_t i = 0; i < c->n; i++) {
		const struct found *f = &c->f[i];
		if (version) {
			if (runtime_version_match(version, f->version) &&
			    (!best || version_cmp(f->version, best->version) > 0))
				best = f;
		} else if (f->plain) {
			best = f;
			break;
		} else if (!best || version_cmp(f->version, best->version) > 0) {
			best = f;
		}
	}
	if (best) {
		pick_of(t, best, pick);
		return 0;
	}
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < c->n && i < 8; i++)
		buf_printf(&b, "%s%s %s at %s", i ? ", " : "", t->name, c->f[i].version,
			   c->f[i].path);
	if (c->n > 8)
		buf_printf(&b, ", and %zu more", c->n - 8);
	snprintf(err, errlen, "runtime %s%s%s not installed (%s%s%s)", t->name, version ? " " : "",
		 version ? version : "", c->n ? "found " : "no ", c->n ? b.data : t->name,
		 c->n ? "" : " found in PATH");
	buf_release(&b);
	return -1;
}
