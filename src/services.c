/* services: see services.h. */
#include "services.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bp.h"
#include "crypt.h"
#include "diag.h"
#include "health.h"
#include "log.h"
#include "pipeline.h"
#include "proto.h"
#include "run.h"
#include "proxy.h"
#include "supervise.h"
#include "svclog.h"
#include "svctail.h"
#include "xalloc.h"

#define MOD	      "services"
#define LOG_FLUSH_MS  100
#define LOG_FLUSH_MAX 8192
#define TASK_PREFIX   "svctask/"
#define STATUS_MIN_MS 200 /* service_status: at most one per service this often */
#define SVC_PREFIX    "svc/"
#define STATIC_PORT   80 /* static sites: served on HTTP's port for their domains */
#define CADDY_PATH    "/usr/local/bin:/usr/bin:/bin"
#define PROXY_BATCH_MS 30 /* proxy changes made this close together share a load */

/* What the proxy serves for one service (a copy of a struct proxy_site). */
struct site {
	int port;
	char **domains;
	size_t ndomains;
	int upstream; /* web: the release's PORT */
	char *root;   /* static: the release's static root */
};
#define LOGF_PREFIX   "svclogf/"

struct svc {
	struct services *ss;
	char *name;
	struct pipeline *p;
	char *task;   /* the deploy task in progress, or NULL */
	char *dep;    /* its deployment id */
	char *upload; /* its archive (source: upload), removed at the end */
	struct buf log;
	long long flush_timer;
	long long restart_timer;  /* restart: waiting for the stop to end */
	/* service_status events (status_*) and the live health check of the
	 * serving release (monitor_*). */
	struct health *mon; /* probing mon_rel's process mon_pid, or NULL */
	char *mon_rel;	    /* the running process mon_* was set up for */
	pid_t mon_pid;
	int mon_none;	      /* that release has nothing to probe */
	char mon_err[256];    /* why its check could not be made */
	const char *st_state; /* the state last seen (static string) */
	char *st_rel;	      /* and its release */
	long long st_since;   /* when they last changed (wall ms) */
	long long st_last;    /* loop_now_ms of the last event */
	int st_sent;	      /* an event was spooled */
	long long st_timer;   /* flushes the coalesced event */
	/* proxy (H1): the site Caddy serves for the serving release, and the
	 * one of the deploy in progress (want_set once given to the proxy,
	 * proxy_wait while its switch waits for Caddy's answer) */
	struct site *site, *want;
	int want_set, proxy_wait;
	/* persistence (H1): the serving release (id, blueprint text, secrets
	 * sealed with the agent's key, base64) and the deploy's, promoted at
	 * its switch; the last record written */
	char *cur_rel, *cur_bp, *cur_sec;
	char *dep_rel, *dep_bp, *dep_sec;
	struct buf persisted;
	int new_noted; /* "svcnew/NAME" holds the deploy's new process */
	struct svclog *slog;	  /* logs/service.log, the service's output */
	struct svctail *tail;	  /* following the serving release's raw file */
	char *tail_rel;		  /* that release */
	struct svctail *old_tail; /* the release before, while it stops */
	long long old_timer;
	struct svc *next;
};

/* A service_logs task with follow: streaming until cancelled. */
struct logf {
	struct services *ss;
	struct svc *v;
	char *task;
	long long fid; /* svclog follower */
	int raw;
	/* The newest record sent (in out or spooled): its time, and how many
	 * records with that time were sent; saved with every batch as
	 * LOGF_PREFIX TASK, so a follow resumed after an agent restart goes
	 * on right after it. */
	long long last_ts, last_n;
	struct buf out, err; /* formatted, not yet spooled */
	long long timer;
	struct logf *next;
};

struct services {
	struct loop *loop;
	struct store *store;
	struct spool *spool;
	char *dir; /* DATA/services */
	loop_fn notify;
	void *arg;
	int meta;
	struct svc *list;
	long long status_timer; /* one service_status per service at start */
	char *data;	  /* DATA */
	struct proxy *px; /* NULL: services answer on their own PORT */
	char *caddy;	  /* the program the proxy runs */
	int px_started;
	int px_log; /* Caddy's output (DATA/proxy/caddy.log), or -1 */
	struct crypt_rng *rng;
	struct logf *follows;
};

static void status_release(struct svc *v);
static void status_flush_now(struct svc *v);
static void status_announce(struct loop *loop, long long id, void *arg, int mask);
static void logs_start_all(struct services *ss);
static void logs_release(struct svc *v);
static void logs_end_follows(struct services *ss, int stopping);

static void notify(struct services *ss)
{
	if (ss->notify)
		ss->notify(ss->loop, 0, ss->arg, 0);
}

/* --- proxy (H1) ------------------------------------------------------------- */

static void site_free(struct site *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->ndomains; i++)
		free(t->domains[i]);
	free(t->domains);
	free(t->root);
	free(t);
}

/* The site a blueprint asks for (its upstream or root not set yet): web on
 * its port, static on STATIC_PORT; NULL for worker and job. */
static struct site *proxy_site_of(const struct bp *bp)
{
	int port = bp->type == BP_TYPE_WEB	? bp->port
		   : bp->type == BP_TYPE_STATIC ? STATIC_PORT
						: 0;
	if (port < 1)
		return NULL;
	struct site *t = xcalloc(1, sizeof(*t));
	t->port = port;
	t->domains = xcalloc(bp->ndomains + 1, sizeof(char *));
	for (size_t i = 0; i < bp->ndomains; i++)
		t->domains[t->ndomains++] = xstrdup(bp->domains[i]);
	return t;
}

/* Give the proxy t as the site of service name: 0, or -1 with err. */
static int proxy_put(struct services *ss, const char *name, const struct site *t, char *err,
		     size_t errlen)
{
	struct proxy_site ps = {.name = name,
				.port = t->port,
				.domains = (const char *const *)t->domains,
				.ndomains = t->ndomains,
				.upstreams = t->root ? NULL : &t->upstream,
				.nupstreams = t->root ? 0 : 1,
				.root = t->root};
	return proxy_set_site(ss->px, &ps, err, errlen);
}

/* The site of v back to what its serving release has (none: removed). */
static void proxy_revert(struct svc *v)
{
	char err[512];
	if (!v->ss->px || !v->want_set)
		return;
	v->want_set = 0;
	if (!v->site)
		proxy_remove_site(v->ss->px, v->name);
	else if (proxy_put(v->ss, v->name, v->site, err, sizeof(err)) < 0)
		log_error(MOD, "proxy site not restored", "service", v->name, "error", err, NULL);
}

/* Whether the proxy's program can run: 0, or -1 with the fix in err. */
static int proxy_check(struct services *ss, char *err, size_t errlen)
{
	const char *c = ss->caddy;
	if (strchr(c, '/')) {
		if (access(c, X_OK) == 0)
			return 0;
	} else {
		const char *d = CADDY_PATH;
		while (*d) {
			size_t n = strcspn(d, ":");
			char *path = xasprintf("%.*s/%s", (int)n, d, c);
			int ok = access(path, X_OK) == 0;
			free(path);
			if (ok)
				return 0;
			d += n + (d[n] == ':');
		}
	}
	snprintf(err, errlen,
		 "proxy: '%s' is not installed (looked in %s): web and static services are "
		 "served through Caddy; install it with 'apt-get install caddy'",
		 c, strchr(c, '/') ? "its path" : CADDY_PATH);
	return -1;
}

static void proxy_ensure_started(struct services *ss)
{
	char err[512];
	if (!ss->px || ss->px_started)
		return;
	if (proxy_start(ss->px, err, sizeof(err)) < 0) {
		log_error(MOD, "proxy not started", "error", err, NULL);
		return;
	}
	ss->px_started = 1;
}

/* SWITCH: the deploy's site now points at the new release; the switch
 * waits for Caddy (proxy_applied). */
static int on_proxy(struct pipeline *p, void *arg, const struct pipeline_target *t, char *err,
		    size_t errlen)
{
	struct svc *v = arg;
	(void)p;
	if (!v->want)
		return 0;
	if (proxy_check(v->ss, err, errlen) < 0)
		return -1;
	free(v->want->root);
	v->want->root = t->root ? xstrdup(t->root) : NULL;
	v->want->upstream = t->port;
	if (proxy_put(v->ss, v->name, v->want, err, errlen) < 0)
		return -1; /* the model is unchanged */
	v->want_set = 1;
	v->proxy_wait = 1;
	proxy_ensure_started(v->ss);
	return 1;
}

/* Caddy answered a load (or had the model already): switches waiting for
 * it go on, or fail when it refused (their sites reverted). */
static void proxy_applied(struct proxy *px, void *arg, int ok)
{
	struct services *ss = arg;
	if (ok && proxy_pending(px))
		return; /* a later change is on its way: wait for its answer */
	char why[1024];
	snprintf(why, sizeof(why), "%s", ok ? "" : proxy_error(px));
	for (struct svc *v = ss->list; v; v = v->next) {
		if (!v->proxy_wait)
			continue;
		v->proxy_wait = 0;
		if (!ok)
			proxy_revert(v);
		pipeline_proxy_done(v->p, ok, why);
	}
}

int services_proxy(struct services *ss, const char *listen_host, const char *caddy, char *err,
		   size_t errlen)
{
	char *dir = xasprintf("%s/proxy", ss->data);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "proxy: mkdir '%s': %s", dir, strerror(errno));
		free(dir);
		return -1;
	}
	char *logp = xasprintf("%s/caddy.log", dir);
	int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	free(logp);
	struct proxy_opts o = {.dir = dir,
			       .caddy = caddy,
			       .listen_host = listen_host,
			       .log_fd = fd,
			       /* A deploy's switch waits for the load: keep the
				* batching window short (switches within it still
				* share one load). */
			       .apply_delay_ms = PROXY_BATCH_MS,
			       .on_apply = proxy_applied,
			       .arg = ss};
	proxy_free(ss->px);
	ss->px = proxy_new(ss->loop, &o, err, errlen);
	free(dir);
	/* Caddy gets its own copy of the descriptor at every start. */
	if (!ss->px) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (ss->px_log >= 0)
		close(ss->px_log);
	ss->px_log = fd;
	free(ss->caddy);
	ss->caddy = xstrdup(caddy ? caddy : "caddy");
	return 0;
}

/* --- persistence (H1) ---------------------------------------------------------- */

/* The agent-local key for secrets at rest (DATA/secrets.key, 0600), made
 * when create is set and there is none. 0, or -1 with err. */
static int persist_key(struct services *ss, int create, uint8_t key[CRYPT_KEY_LEN], char *err,
		       size_t errlen)
{
	char *path = xasprintf("%s/secrets.key", ss->data);
	int rc = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT && create) {
		crypt_random(ss->rng, key, CRYPT_KEY_LEN);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd >= 0 && write(fd, key, CRYPT_KEY_LEN) == CRYPT_KEY_LEN && fsync(fd) == 0 &&
		    close(fd) == 0) {
			free(path);
			return 0;
		}
		snprintf(err, errlen, "secrets key '%s': cannot write it: %s", path,
			 strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(path);
		}
		crypt_wipe(key, CRYPT_KEY_LEN);
		free(path);
		return -1;
	}
	if (fd < 0) {
		snprintf(err, errlen, "secrets key '%s': %s", path, strerror(errno));
	} else {
		struct stat st;
		ssize_t n =
		    fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == CRYPT_KEY_LEN
			? read(fd, key, CRYPT_KEY_LEN)
			: -1;
		close(fd);
		if (n == CRYPT_KEY_LEN)
			rc = 0;
		else
			snprintf(err, errlen, "secrets key '%s': not a %d-byte key file", path,
				 CRYPT_KEY_LEN);
	}
	if (rc < 0)
		crypt_wipe(key, CRYPT_KEY_LEN);
	free(path);
	return rc;
}

/* "svc/NAME/RELEASE": binds a sealed blob to its service and release. */
static char *persist_aad(const char *name, const char *rel)
{
	return xasprintf("dployr/" SVC_PREFIX "%s/%s", name, rel);
}

/* The secrets "NAME=value" sealed for (name, rel), base64; NULL when there
 * are none, or (logged) when the key cannot be had. */
static char *persist_seal(struct services *ss, const char *name, const char *rel, char **env,
			  size_t n)
{
	if (!n)
		return NULL;
	uint8_t key[CRYPT_KEY_LEN];
	char err[512];
	if (persist_key(ss, 1, key, err, sizeof(err)) < 0) {
		log_error(MOD, "secrets not kept for restarts after an agent restart", "service",
			  name, "error", err, NULL);
		return NULL;
	}
	struct buf pt = BUF_INIT, out = BUF_INIT;
	for (size_t i = 0; i < n; i++)
		buf_add(&pt, env[i], strlen(env[i]) + 1);
	char *aad = persist_aad(name, rel);
	uint8_t *ct = xmalloc(pt.len + CRYPT_SEAL_OVERHEAD);
	crypt_seal(ss->rng, key, aad, strlen(aad), pt.data, pt.len, ct);
	crypt_b64_encode(&out, ct, pt.len + CRYPT_SEAL_OVERHEAD, CRYPT_B64_STD);
	crypt_wipe(pt.data, pt.len);
	crypt_wipe(key, sizeof(key));
	free(ct);
	free(aad);
	buf_release(&pt);
	return buf_detach(&out, NULL);
}

/* Open a sealed blob into "NAME=value" strings (free with free_env): 0, or
 * -1 with err (no key, wrong key, tampered, moved to another service). */
static int persist_open(struct services *ss, const char *name, const char *rel, const char *b64,
			char ***env, size_t *n, char *err, size_t errlen)
{
	*env = NULL;
	*n = 0;
	uint8_t key[CRYPT_KEY_LEN];
	if (persist_key(ss, 0, key, err, errlen) < 0)
		return -1;
	struct buf ct = BUF_INIT;
	int rc = -1;
	if (crypt_b64_decode(&ct, b64, strlen(b64), CRYPT_B64_STD) < 0 ||
	    ct.len < CRYPT_SEAL_OVERHEAD) {
		snprintf(err, errlen, "secrets of '%s': not a sealed blob", name);
		goto out;
	}
	size_t ptlen = ct.len - CRYPT_SEAL_OVERHEAD;
	char *pt = xmalloc(ptlen + 1);
	char *aad = persist_aad(name, rel);
	if (crypt_open(key, aad, strlen(aad), (const uint8_t *)ct.data, ct.len, (uint8_t *)pt) <
	    0) {
		snprintf(err, errlen, "secrets of '%s': cannot be opened with this agent's key",
			 name);
	} else {
		pt[ptlen] = 0;
		size_t cnt = 0;
		for (size_t i = 0; i < ptlen; i++)
			cnt += pt[i] == 0;
		*env = xcalloc(cnt + 1, sizeof(char *));
		for (size_t off = 0; off < ptlen;) {
			size_t k = strlen(pt + off);
			(*env)[(*n)++] = xstrdup(pt + off);
			off += k + 1;
		}
		rc = 0;
	}
	crypt_wipe(pt, ptlen + 1);
	free(pt);
	free(aad);
out:
	crypt_wipe(key, sizeof(key));
	buf_release(&ct);
	return rc;
}

static char *svc_key(const char *name)
{
	return xasprintf(SVC_PREFIX "%s", name);
}

/* Write what a restarted agent needs to take v's serving release back
 * (none: the record is removed). Only when it changed. */
static void persist_write(struct svc *v)
{
	struct services *ss = v->ss;
	pid_t pid;
	int port;
	const char *rel = pipeline_current(v->p, &pid, &port);
	struct buf b = BUF_INIT;
	if (rel && v->cur_bp && v->cur_rel && !strcmp(rel, v->cur_rel)) {
		struct supervise_record rec;
		int have = pipeline_record(v->p, &rec) == 0;
		buf_puts(&b, "{\"release\":");
		buf_json_cstr(&b, rel);
		buf_printf(&b, ",\"run\":%d,\"port\":%d", pipeline_running(v->p), port);
		if (have)
			buf_printf(&b, ",\"pid\":%d,\"pgid\":%d,\"start_time\":%llu", (int)rec.pid,
				   (int)rec.pgid, rec.start_time);
		if (v->site && v->site->root) {
			buf_puts(&b, ",\"root\":");
			buf_json_cstr(&b, v->site->root);
		}
		if (v->cur_sec) {
			buf_puts(&b, ",\"secrets\":");
			buf_json_cstr(&b, v->cur_sec);
		}
		buf_puts(&b, ",\"blueprint\":");
		buf_json_cstr(&b, v->cur_bp);
		buf_puts(&b, "}");
	} else if (rel) {
		log_warn(MOD, "serving release not persisted: its blueprint is unknown", "service",
			 v->name, "release", rel, NULL);
		buf_release(&b);
		return;
	}
	if (b.len == v->persisted.len && (!b.len || !memcmp(b.data, v->persisted.data, b.len))) {
		buf_release(&b);
		return;
	}
	char err[256];
	char *key = svc_key(v->name);
	struct store_txn *t = store_txn_begin(ss->store, 0);
	if (b.len)
		store_put(t, ss->meta, key, strlen(key), b.data, b.len);
	else
		store_del(t, ss->meta, key, strlen(key));
	if (store_txn_commit(t, err, sizeof(err)) < 0) {
		log_error(MOD, "service record not written", "service", v->name, "error", err,
			  NULL);
	} else {
		buf_reset(&v->persisted);
		buf_add(&v->persisted, b.data ? b.data : "", b.len);
	}
	free(key);
	buf_release(&b);
}

/* "svcnew/NAME": the process of a deploy's new release before its switch,
 * so that the next agent ends it if this one dies meanwhile. */
static char *adopt_new_key(const char *name)
{
	return xasprintf("svcnew/%s", name);
}

/* Record (rec) or forget (NULL) the deploy's new process. */
static void adopt_note_new(struct svc *v, const struct supervise_record *rec)
{
	char err[256];
	char *key = adopt_new_key(v->name);
	struct store_txn *t = store_txn_begin(v->ss->store, 0);
	if (rec) {
		char val[96];
		int n = snprintf(val, sizeof(val), "%d %d %llu", (int)rec->pid, (int)rec->pgid,
				 rec->start_time);
		store_put(t, v->ss->meta, key, strlen(key), val, (size_t)n);
	} else {
		store_del(t, v->ss->meta, key, strlen(key));
	}
	if (store_txn_commit(t, err, sizeof(err)) < 0)
		log_error(MOD, "service record not written", "service", v->name, "error", err,
			  NULL);
	free(key);
	v->new_noted = rec != NULL;
}

/* on_stage of the deploy (H1): note its new process once started. */
static void adopt_on_stage(struct svc *v, int stage)
{
	struct supervise_record rec;
	if ((stage == PIPELINE_HEALTH || stage == PIPELINE_SWITCH) &&
	    pipeline_new_record(v->p, &rec) == 0)
		adopt_note_new(v, &rec);
}

/* The deploy in progress became the serving release (its switch): its
 * blueprint, secrets and site are the service's now. */
static void adopt_promote(struct svc *v)
{
	free(v->cur_rel);
	free(v->cur_bp);
	free(v->cur_sec);
	v->cur_rel = v->dep_rel;
	v->cur_bp = v->dep_bp;
	v->cur_sec = v->dep_sec;
	v->dep_rel = v->dep_bp = v->dep_sec = NULL;
	if (v->new_noted)
		adopt_note_new(v, NULL); /* it is the serving one now */
	if (v->ss->px) {
		if (v->site && !v->want)
			proxy_remove_site(v->ss->px, v->name); /* no longer web or static */
		site_free(v->site);
		v->site = v->want;
		v->want = NULL;
		v->want_set = 0;
	}
}

/* The deploy is over: what it held for the switch is dropped. */
static void adopt_drop_deploy(struct svc *v)
{
	proxy_revert(v);
	site_free(v->want);
	v->want = NULL;
	v->proxy_wait = 0;
	free(v->dep_rel);
	free(v->dep_bp);
	free(v->dep_sec);
	v->dep_rel = v->dep_bp = v->dep_sec = NULL;
	if (v->new_noted)
		adopt_note_new(v, NULL);
}

static void adopt_forget(struct svc *v)
{
	site_free(v->site);
	site_free(v->want);
	v->site = v->want = NULL;
	free(v->cur_rel);
	free(v->cur_bp);
	free(v->cur_sec);
	free(v->dep_rel);
	free(v->dep_bp);
	free(v->dep_sec);
	buf_release(&v->persisted);
}

/* on_service: the serving release changed. */
static void persist_on_service(struct svc *v)
{
	const char *rel = pipeline_current(v->p, NULL, NULL);
	if (rel && v->dep_rel && !strcmp(rel, v->dep_rel))
		adopt_promote(v);
	persist_write(v);
}

int services_handles(const char *kind)
{
	return !strcmp(kind, "deploy") || !strcmp(kind, "deploy_cancel") ||
	       !strcmp(kind, "service_logs") || !strcmp(kind, "service_ctl");
}

struct services *services_new(struct loop *loop, struct store *s, struct spool *sp,
			      const char *data_dir, loop_fn notify_fn, void *arg, char *err,
			      size_t errlen)
{
	int meta = store_db(s, "meta");
	if (meta < 0) {
		snprintf(err, errlen, "services: the store has no 'meta' database");
		return NULL;
	}
	struct services *ss = xcalloc(1, sizeof(*ss));
	ss->loop = loop;
	ss->store = s;
	ss->spool = sp;
	ss->dir = xasprintf("%s/services", data_dir);
	ss->notify = notify_fn;
	ss->arg = arg;
	ss->meta = meta;
	ss->status_timer = loop_timer_add(loop, 0, status_announce, ss);
	ss->data = xstrdup(data_dir);
	ss->rng = crypt_rng_new();
	ss->px_log = -1;
	logs_start_all(ss);
	return ss;
}

static void svc_free(struct svc *v)
{
	if (v->flush_timer)
		loop_timer_cancel(v->ss->loop, v->flush_timer);
	if (v->restart_timer)
		loop_timer_cancel(v->ss->loop, v->restart_timer);
	pipeline_free(v->p);
	status_release(v);
	logs_release(v);
	free(v->name);
	free(v->task);
	free(v->dep);
	if (v->upload)
		unlink(v->upload);
	free(v->upload);
	buf_release(&v->log);
	adopt_forget(v);
	free(v);
}

void services_free(struct services *ss)
{
	if (!ss)
		return;
	logs_end_follows(ss, -1);
	while (ss->list) {
		struct svc *v = ss->list;
		ss->list = v->next;
		svc_free(v);
	}
	if (ss->status_timer)
		loop_timer_cancel(ss->loop, ss->status_timer);
	free(ss->dir);
	proxy_free(ss->px); /* Caddy keeps running: the next agent adopts it */
	if (ss->px_log >= 0)
		close(ss->px_log);
	free(ss->caddy);
	free(ss->data);
	crypt_rng_free(ss->rng);
	free(ss);
}

size_t services_busy(const struct services *ss)
{
	size_t n = 0;
	for (const struct svc *v = ss->list; v; v = v->next)
		n += v->task != NULL;
	return n;
}

/* Record task_id's state ("running", "done") and spool an event (kind may
 * be NULL) in one transaction. 0, or -1 with err. */
static int record(struct services *ss, const char *task_id, const char *state, const char *kind,
		  const char *body, char *err, size_t errlen)
{
	struct buf key = BUF_INIT;
	buf_printf(&key, TASK_PREFIX "%s", task_id);
	struct store_txn *t = store_txn_begin(ss->store, 0);
	store_put(t, ss->meta, key.data, key.len, state, strlen(state));
	if (kind)
		spool_add_txn(ss->spool, t, kind, body);
	buf_release(&key);
	return store_txn_commit(t, err, errlen);
}

/* The recorded state of task_id appended to out: 1, 0 unknown, -1. */
static int recorded(struct services *ss, const char *task_id, struct buf *out)
{
	struct buf key = BUF_INIT;
	buf_printf(&key, TASK_PREFIX "%s", task_id);
	struct store_txn *t = store_txn_begin(ss->store, 1);
	int rc = store_get_buf(t, ss->meta, key.data, key.len, out);
	int failed = store_txn_failed(t);
	store_txn_abort(t);
	buf_release(&key);
	return failed ? -1 : rc == 0 ? 1 : 0;
}

static void spool_event(struct services *ss, const char *kind, const char *body)
{
	char err[256];
	if (spool_add(ss->spool, kind, body, err, sizeof(err)) == 0)
		log_error(MOD, "event not spooled", "kind", kind, "error", err, NULL);
	notify(ss);
}

static void body_start(struct buf *b, const char *task, const char *dep)
{
	buf_puts(b, "{\"task_id\":");
	buf_json_cstr(b, task);
	buf_puts(b, ",\"deployment_id\":");
	buf_json_cstr(b, dep);
}

static void flush_log(struct svc *v)
{
	if (v->flush_timer) {
		loop_timer_cancel(v->ss->loop, v->flush_timer);
		v->flush_timer = 0;
	}
	if (!v->log.len || !v->task)
		return;
	struct buf b = BUF_INIT;
	body_start(&b, v->task, v->dep);
	buf_puts(&b, ",\"text\":");
	buf_json_str(&b, v->log.data, v->log.len);
	buf_puts(&b, "}");
	spool_event(v->ss, "deploy_log", b.data);
	buf_release(&b);
	buf_reset(&v->log);
}

static void flush_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct svc *v = arg;
	(void)loop;
	(void)id;
	(void)mask;
	v->flush_timer = 0;
	flush_log(v);
}

static void on_stage(struct pipeline *p, void *arg, int stage)
{
	struct svc *v = arg;
	(void)p;
	adopt_on_stage(v, stage); /* H1 */
	if (!v->task)
		return;
	flush_log(v);
	struct buf b = BUF_INIT;
	body_start(&b, v->task, v->dep);
	buf_puts(&b, ",\"stage\":");
	buf_json_cstr(&b, pipeline_stage_name((enum pipeline_stage)stage));
	buf_puts(&b, "}");
	spool_event(v->ss, "deploy_stage", b.data);
	buf_release(&b);
}

static void on_log(struct pipeline *p, void *arg, const char *line)
{
	struct svc *v = arg;
	(void)p;
	if (!v->task)
		return;
	buf_puts(&v->log, line);
	buf_putc(&v->log, '\n');
	if (v->log.len >= LOG_FLUSH_MAX)
		flush_log(v);
	else if (!v->flush_timer)
		v->flush_timer = loop_timer_add(v->ss->loop, LOG_FLUSH_MS, flush_cb, v);
}

/* The end of task/dep: deploy_done, and the task recorded done. */
static void finish(struct services *ss, const char *task, const char *dep,
		   const struct pipeline_result *r, const char *outcome, const char *reason)
{
	char err[256];
	struct buf b = BUF_INIT;
	body_start(&b, task, dep);
	buf_puts(&b, ",\"outcome\":");
	buf_json_cstr(&b, outcome);
	buf_puts(&b, ",\"reason\":");
	buf_json_cstr(&b, reason ? reason : "");
	if (r) {
		buf_puts(&b, ",\"stage\":");
		buf_json_cstr(&b, pipeline_stage_name(r->stage));
		buf_puts(&b, ",\"release\":");
		buf_json_cstr(&b, r->release ? r->release : "");
		buf_puts(&b, ",\"runtime_version\":");
		buf_json_cstr(&b, r->runtime_version ? r->runtime_version : "");
		buf_puts(&b, ",\"revision\":");
		buf_json_cstr(&b, r->revision ? r->revision : "");
		buf_printf(&b, ",\"pid\":%d,\"port\":%d", (int)r->pid, r->port);
	}
	buf_puts(&b, "}");
	if (record(ss, task, "done", "deploy_done", b.data, err, sizeof(err)) < 0)
		log_error(MOD, "deploy end not recorded", "task", task, "error", err, NULL);
	log_info(MOD, "deploy ended", "deployment", dep, "outcome", outcome, NULL);
	buf_release(&b);
	notify(ss);
}

static void on_done(struct pipeline *p, void *arg, const struct pipeline_result *r)
{
	struct svc *v = arg;
	(void)p;
	adopt_drop_deploy(v);
	if (!v->task)
		return;
	flush_log(v);
	char *task = v->task, *dep = v->dep;
	v->task = v->dep = NULL;
	if (v->upload) {
		unlink(v->upload);
		free(v->upload);
		v->upload = NULL;
	}
	/* A coalesced service_status goes first, so base knows the serving
	 * release by the time it learns the deploy ended. */
	status_flush_now(v);
	finish(v->ss, task, dep, r, pipeline_outcome_name(r->outcome), r->reason);
	free(task);
	free(dep);
}

/* --- service_status events and the live health check (status_*, monitor_*) --- */


static void monitor_stop(struct svc *v)
{
	health_free(v->mon);
	v->mon = NULL;
	free(v->mon_rel);
	v->mon_rel = NULL;
	v->mon_pid = 0;
	v->mon_none = 0;
	v->mon_err[0] = 0;
}

static void status_changed(struct svc *v);

static void monitor_changed(struct health *h, void *arg, int status)
{
	(void)h;
	(void)status;
	status_changed(arg);
}

/* Probe the serving release's process while it runs: a new check when the
 * release or its process changed, none while nothing runs. */
static void monitor_sync(struct svc *v)
{
	pid_t pid = 0;
	const char *rel = pipeline_current(v->p, &pid, NULL);
	struct supervise *sv = pipeline_supervisor(v->p);
	if (!rel || !sv || supervise_state(sv) != SUPERVISE_RUNNING) {
		monitor_stop(v);
		return;
	}
	if (v->mon_rel && !strcmp(v->mon_rel, rel) && v->mon_pid == pid)
		return;
	monitor_stop(v);
	v->mon_rel = xstrdup(rel);
	v->mon_pid = pid;
	struct health_opts ho;
	if (pipeline_health(v->p, &ho) != 1) {
		v->mon_none = 1;
		return;
	}
	ho.on_change = monitor_changed;
	ho.arg = v;
	v->mon = health_new(v->ss->loop, &ho, v->mon_err, sizeof(v->mon_err));
	if (!v->mon) {
		log_warn(MOD, "no live health check", "service", v->name, "error", v->mon_err,
			 NULL);
		return;
	}
	health_start(v->mon);
}

/* The state reported for the serving release rel (see services.h). */
static const char *status_state(struct svc *v, const char *rel)
{
	struct supervise *sv = pipeline_supervisor(v->p);
	if (!rel)
		return "none";
	if (sv)
		return supervise_state_name(supervise_state(sv));
	/* static: served while current; otherwise pipeline_stop is at work */
	return pipeline_type(v->p) == BP_TYPE_STATIC ? "running" : "stopping";
}

/* The health reported for the serving release rel (see services.h). */
static const char *status_health(struct svc *v, const char *rel)
{
	struct health_opts ho;
	if (!rel || v->mon_none)
		return "none";
	if (v->mon)
		return health_status_name(health_status(v->mon));
	if (v->mon_err[0])
		return "unhealthy";
	/* nothing runs: unhealthy when there is something to probe */
	return pipeline_health(v->p, &ho) == 1 ? "unhealthy" : "none";
}

/* Spool one service_status event with the state as it is now. */
static void status_emit(struct svc *v)
{
	pid_t pid = 0;
	int port = 0;
	const char *rel = pipeline_current(v->p, &pid, &port);
	struct supervise *sv = pipeline_supervisor(v->p);
	enum supervise_state st = sv ? supervise_state(sv) : SUPERVISE_STOPPED;
	const char *state = status_state(v, rel);
	char why[256] = "";
	if (sv && *supervise_error(sv))
		snprintf(why, sizeof(why), "%s", supervise_error(sv));
	else if (sv && (st == SUPERVISE_BACKOFF || st == SUPERVISE_FAILED) &&
		 supervise_last_status(sv) >= 0)
		run_status_str(supervise_last_status(sv), why, sizeof(why));
	else if (v->mon_err[0])
		snprintf(why, sizeof(why), "%s", v->mon_err);
	else if (v->mon)
		snprintf(why, sizeof(why), "%s", health_error(v->mon));
	if (!v->st_since)
		v->st_since = loop_wall_ms();
	struct buf b = BUF_INIT;
	buf_puts(&b, "{\"service\":");
	buf_json_cstr(&b, v->name);
	buf_puts(&b, ",\"release\":");
	buf_json_cstr(&b, rel ? rel : "");
	buf_puts(&b, ",\"state\":");
	buf_json_cstr(&b, state);
	buf_printf(&b, ",\"pid\":%d,\"restarts\":%u,\"health\":", (int)pid,
		   sv ? supervise_restarts(sv) : 0);
	buf_json_cstr(&b, status_health(v, rel));
	buf_printf(&b, ",\"port\":%d,\"since_ms\":%lld,\"ts_ms\":%lld,\"error\":", port,
		   v->st_since, loop_wall_ms());
	buf_json_cstr(&b, why);
	buf_puts(&b, "}");
	spool_event(v->ss, "service_status", b.data);
	buf_release(&b);
	v->st_last = loop_now_ms();
	v->st_sent = 1;
}

static void status_flush(struct loop *loop, long long id, void *arg, int mask)
{
	struct svc *v = arg;
	(void)loop;
	(void)id;
	(void)mask;
	v->st_timer = 0;
	status_emit(v);
}

/* The coalesced event, if one waits, spooled now. */
static void status_flush_now(struct svc *v)
{
	if (!v->st_timer)
		return;
	loop_timer_cancel(v->ss->loop, v->st_timer);
	v->st_timer = 0;
	status_emit(v);
}

/* Something changed: an event now, or when STATUS_MIN_MS have passed since
 * the last one (it then says the state of that moment: the latest wins). */
static void status_changed(struct svc *v)
{
	if (v->st_timer)
		return;
	long long wait = v->st_sent ? v->st_last + STATUS_MIN_MS - loop_now_ms() : 0;
	if (wait > 0)
		v->st_timer = loop_timer_add(v->ss->loop, wait, status_flush, v);
	else
		status_emit(v);
}

/* on_service: the serving release or its state changed. */
static void status_on_service(struct svc *v)
{
	const char *rel = pipeline_current(v->p, NULL, NULL);
	const char *state = status_state(v, rel);
	if (!v->st_state || strcmp(v->st_state, state) || !v->st_rel != !rel ||
	    (rel && strcmp(v->st_rel, rel))) {
		v->st_state = state;
		free(v->st_rel);
		v->st_rel = rel ? xstrdup(rel) : NULL;
		v->st_since = loop_wall_ms();
	}
	monitor_sync(v);
	status_changed(v);
}

/* At agent start (after the services were taken back): one event for each
 * service that has not said anything yet. */
static void status_announce(struct loop *loop, long long id, void *arg, int mask)
{
	struct services *ss = arg;
	(void)loop;
	(void)id;
	(void)mask;
	ss->status_timer = 0;
	for (struct svc *v = ss->list; v; v = v->next)
		if (!v->st_sent)
			status_changed(v);
}

static void status_release(struct svc *v)
{
	if (v->st_timer)
		loop_timer_cancel(v->ss->loop, v->st_timer);
	v->st_timer = 0;
	monitor_stop(v);
	free(v->st_rel);
	v->st_rel = NULL;
}
static void logs_on_service(struct svc *v);

static void on_service(struct pipeline *p, void *arg)
{
	struct svc *v = arg;
	(void)p;
	persist_on_service(v); /* H1 */
	status_on_service(v);  /* H5 */
	logs_on_service(v);    /* H2 */
}

/* A service name as blueprints have them (a DNS label): safe as a path
 * component. */
static int svc_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n < 1 || n > 63 || !strchr("abcdefghijklmnopqrstuvwxyz0123456789", name[0]))
		return 0;
	return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

static struct svc *find_svc(struct services *ss, const char *name)
{
	for (struct svc *v = ss->list; v; v = v->next)
		if (!strcmp(v->name, name))
			return v;
	return NULL;
}

static struct svc *get_svc(struct services *ss, const char *name, char *err, size_t errlen)
{
	struct svc *v = find_svc(ss, name);
	if (v)
		return v;
	mkdir(ss->dir, 0700);
	char *dir = xasprintf("%s/%s", ss->dir, name);
	v = xcalloc(1, sizeof(*v));
	v->ss = ss;
	v->name = xstrdup(name);
	buf_init(&v->log);
	struct pipeline_opts o = {0};
	o.name = name;
	o.dir = dir;
	o.on_stage = on_stage;
	o.on_log = on_log;
	o.on_done = on_done;
	o.on_proxy = on_proxy; /* answers 0 (nothing to wait for) without a proxy */
	o.on_service = on_service;
	o.arg = v;
	v->p = pipeline_new(ss->loop, &o, err, errlen);
	free(dir);
	if (!v->p) {
		svc_free(v);
		return NULL;
	}
	v->next = ss->list;
	ss->list = v;
	return v;
}

/* Secrets of the payload as "NAME=value" strings (wipe and free with
 * free_env). */
static char **secret_env(const struct proto_jv *sec, size_t *n)
{
	*n = 0;
	if (!sec || proto_jv_type(sec) != PROTO_J_OBJ)
		return NULL;
	char **env = xcalloc(proto_jv_len(sec) + 1, sizeof(*env));
	for (const struct proto_jv *m = proto_jv_first(sec); m; m = proto_jv_next(m))
		if (proto_jv_str(m))
			env[(*n)++] = xasprintf("%s=%s", proto_jv_key(m), proto_jv_str(m));
	return env;
}

static void free_env(char **env, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		crypt_wipe(env[i], strlen(env[i]));
		free(env[i]);
	}
	free(env);
}

/* A deploy of release rel of bp (its YAML text, its secrets) starts on v:
 * keep what its switch makes the service's (site, record). -1 with why
 * when it cannot be served (no Caddy for a web or static service). */
static int adopt_prepare(struct svc *v, const struct bp *bp, const char *text, const char *rel,
			 char **sec, size_t nsec, char *why, size_t whylen)
{
	adopt_drop_deploy(v);
	if (v->ss->px) {
		v->want = proxy_site_of(bp);
		if (v->want && proxy_check(v->ss, why, whylen) < 0) {
			site_free(v->want);
			v->want = NULL;
			return -1;
		}
	}
	v->dep_rel = xstrdup(rel);
	v->dep_bp = xstrdup(text);
	v->dep_sec = persist_seal(v->ss, v->name, rel, sec, nsec);
	return 0;
}

static void deploy(struct services *ss, const char *task_id, const struct proto_jv *o)
{
	char why[1024];
	const char *dep = proto_jv_get_str(o, "deployment_id");
	const char *text = proto_jv_get_str(o, "blueprint");
	const char *rb = proto_jv_get_str(o, "rollback_of");
	struct diag_list dl;
	diag_list_init(&dl);
	struct bp_file *f = NULL;
	size_t nsec = 0;
	char **sec = NULL;
	if (!dep || !text) {
		finish(ss, task_id, dep ? dep : "", NULL, "error",
		       "deploy task: 'deployment_id' and 'blueprint' are required");
		goto out;
	}
	f = bp_parse("blueprint", text, strlen(text), &dl);
	const struct bp *bp = bp_file_count(f) == 1 ? bp_file_get(f, 0) : NULL;
	if (!bp || bp->nerrors || !bp->name) {
		finish(ss, task_id, dep, NULL, "error", "deploy task: the blueprint is not valid");
		goto out;
	}
	struct svc *v = get_svc(ss, bp->name, why, sizeof(why));
	if (!v) {
		finish(ss, task_id, dep, NULL, "error", why);
		goto out;
	}
	if (v->task) {
		snprintf(why, sizeof(why), "service '%s' is deploying '%s'", bp->name, v->dep);
		finish(ss, task_id, dep, NULL, "error", why);
		goto out;
	}
	const char *up = proto_jv_get_str(o, "upload");
	if (up) {
		struct buf raw = BUF_INIT;
		char *path = xasprintf("%s/upload-%s.tar", ss->dir, dep);
		FILE *fp = NULL;
		int ok = crypt_b64_decode(&raw, up, strlen(up), CRYPT_B64_STD) == 0 &&
			 (fp = fopen(path, "wb")) != NULL &&
			 fwrite(raw.data, 1, raw.len, fp) == raw.len;
		if (fp && fclose(fp) != 0)
			ok = 0;
		buf_release(&raw);
		if (!ok) {
			unlink(path);
			free(path);
			finish(ss, task_id, dep, NULL, "error",
			       "upload: the archive cannot be kept");
			goto out;
		}
		free(v->upload);
		v->upload = path;
	}
	sec = secret_env(proto_jv_get(o, "secrets"), &nsec);
	struct pipeline_req req = {0};
	req.upload = v->upload;
	req.id = rb && *rb ? rb : dep;
	if (adopt_prepare(v, bp, text, req.id, sec, nsec, why, sizeof(why)) < 0) {
		if (v->upload) {
			unlink(v->upload);
			free(v->upload);
			v->upload = NULL;
		}
		finish(ss, task_id, dep, NULL, "error", why);
		goto out;
	}
	req.bp = bp;
	req.secrets = (const char *const *)sec;
	req.nsecrets = nsec;
	v->task = xstrdup(task_id);
	v->dep = xstrdup(dep);
	int rc = rb && *rb ? pipeline_rollback(v->p, &req, why, sizeof(why))
			   : pipeline_deploy(v->p, &req, why, sizeof(why));
	if (rc < 0) {
		adopt_drop_deploy(v);
		free(v->task);
		free(v->dep);
		v->task = v->dep = NULL;
		if (v->upload) {
			unlink(v->upload);
			free(v->upload);
			v->upload = NULL;
		}
		finish(ss, task_id, dep, NULL, "error", why);
		goto out;
	}
	log_info(MOD, "deploy started", "service", bp->name, "deployment", dep, NULL);
out:
	free_env(sec, nsec);
	bp_file_free(f);
	diag_list_release(&dl);
}

/* --- re-adoption (H1) ------------------------------------------------------------ */

struct adopt_rec {
	char *name, *json;
	struct adopt_rec *next;
};

/* The records under a prefix, collected before anything acts on them. */
struct adopt_scan {
	struct adopt_rec *list;
	size_t plen;
};

static int adopt_collect(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	struct adopt_scan *sc = arg;
	struct adopt_rec *r = xcalloc(1, sizeof(*r));
	r->name = xasprintf("%.*s", (int)(klen - sc->plen), (const char *)key + sc->plen);
	r->json = xasprintf("%.*s", (int)vlen, (const char *)val);
	r->next = sc->list;
	sc->list = r;
	return 0;
}

static struct adopt_rec *adopt_scan(struct services *ss, const char *prefix)
{
	struct adopt_scan sc = {NULL, strlen(prefix)};
	struct store_txn *t = store_txn_begin(ss->store, 1);
	store_scan_prefix(t, ss->meta, prefix, sc.plen, 0, adopt_collect, &sc);
	store_txn_abort(t);
	return sc.list;
}

static int64_t jint(const struct proto_jv *o, const char *k)
{
	int64_t n = 0;
	if (proto_jv_int(proto_jv_get(o, k), &n) < 0)
		return 0;
	return n;
}

/* Take back the serving release of service name from its record: 0, or -1
 * with err (the record is left for a later deploy to replace). */
static int adopt_one(struct services *ss, const char *name, const char *json, char *err,
		     size_t errlen)
{
	char why[512];
	int rc = -1;
	struct diag_list dl;
	diag_list_init(&dl);
	struct bp_file *f = NULL;
	char **sec = NULL;
	size_t nsec = 0;
	struct proto_json *doc = proto_json_parse(json, strlen(json), why, sizeof(why));
	const struct proto_jv *o = doc ? proto_json_root(doc) : NULL;
	const char *rel = o ? proto_jv_get_str(o, "release") : NULL;
	const char *text = o ? proto_jv_get_str(o, "blueprint") : NULL;
	const char *sealed = o ? proto_jv_get_str(o, "secrets") : NULL;
	const char *root = o ? proto_jv_get_str(o, "root") : NULL;
	if (!svc_name_ok(name) || !rel || !text) {
		snprintf(err, errlen, "record of '%.64s' is not valid", name);
		goto out;
	}
	f = bp_parse("blueprint", text, strlen(text), &dl);
	const struct bp *bp = bp_file_count(f) == 1 ? bp_file_get(f, 0) : NULL;
	if (!bp || bp->nerrors || !bp->name || strcmp(bp->name, name) != 0) {
		snprintf(err, errlen, "record of '%s': its blueprint is not valid", name);
		goto out;
	}
	int secrets_ok = 1;
	if (sealed && persist_open(ss, name, rel, sealed, &sec, &nsec, why, sizeof(why)) < 0) {
		log_error(MOD,
			  "secrets not restored: the service is adopted if it runs, not "
			  "started; deploy it again",
			  "service", name, "error", why, NULL);
		secrets_ok = 0;
	}
	struct svc *v = get_svc(ss, name, err, errlen);
	if (!v)
		goto out;
	free(v->cur_rel);
	free(v->cur_bp);
	free(v->cur_sec);
	v->cur_rel = xstrdup(rel);
	v->cur_bp = xstrdup(text);
	v->cur_sec = sealed ? xstrdup(sealed) : NULL;
	buf_reset(&v->persisted);
	buf_puts(&v->persisted, json); /* what is stored: written again only on a change */
	int64_t pid = jint(o, "pid"), pgid = jint(o, "pgid"), port = jint(o, "port");
	int64_t start = jint(o, "start_time");
	struct supervise_record rec = {0};
	int have = pid > 1 && pgid > 1 && pid <= INT_MAX && pgid <= INT_MAX && start > 0;
	if (have) {
		rec.pid = (pid_t)pid;
		rec.pgid = (pid_t)pgid;
		rec.start_time = (unsigned long long)start;
		if (port > 0 && port <= 65535) {
			rec.ports[0] = (int)port;
			rec.nports = 1;
		}
	}
	int run = jint(o, "run") != 0;
	if (port < 0 || port > 65535)
		port = 0;
	struct pipeline_req req = {.id = rel, .bp = bp};
	req.secrets = (const char *const *)sec;
	req.nsecrets = nsec;
	const char *how = "adopted";
	if (secrets_ok) {
		rc = pipeline_restore(v->p, &req, have ? &rec : NULL, (int)port, run, &how, err,
				      errlen);
	} else {
		rc = have ? pipeline_adopt(v->p, &req, &rec, why, sizeof(why)) : -1;
		if (rc < 0) {
			how = "stopped";
			rc = pipeline_restore(v->p, &req, NULL, (int)port, 0, NULL, err, errlen);
		}
	}
	if (rc < 0)
		goto out;
	log_info(MOD, "service restored", "service", name, "release", rel, "process", how, NULL);
	if (ss->px) {
		struct site *t = proxy_site_of(bp);
		int cport = 0;
		pipeline_current(v->p, NULL, &cport);
		if (t && bp->type == BP_TYPE_STATIC && root && root[0] == '/')
			t->root = xstrdup(root);
		else if (t && bp->type == BP_TYPE_WEB && cport > 0)
			t->upstream = cport;
		else if (t) {
			site_free(t);
			t = NULL;
		}
		if (t && proxy_put(ss, name, t, why, sizeof(why)) < 0) {
			log_error(MOD, "proxy site not restored", "service", name, "error", why,
				  NULL);
			site_free(t);
			t = NULL;
		}
		site_free(v->site);
		v->site = t;
	}
	persist_write(v);
out:
	free_env(sec, nsec);
	bp_file_free(f);
	diag_list_release(&dl);
	proto_json_free(doc);
	return rc;
}

/* The pid the record "svc/NAME" names, or 0. */
static pid_t adopt_serving_pid(struct services *ss, const char *name)
{
	struct buf raw = BUF_INIT;
	char *key = svc_key(name), e[64];
	struct store_txn *t = store_txn_begin(ss->store, 1);
	int rc = store_get_buf(t, ss->meta, key, strlen(key), &raw);
	store_txn_abort(t);
	free(key);
	struct proto_json *doc = rc == 0 ? proto_json_parse(raw.data, raw.len, e, sizeof(e)) : NULL;
	int64_t pid = doc ? jint(proto_json_root(doc), "pid") : 0;
	proto_json_free(doc);
	buf_release(&raw);
	return pid > 0 && pid <= INT_MAX ? (pid_t)pid : 0;
}

/* A deploy's new process left by an agent that died before the switch:
 * killed (its group) if it is still that process. */
static void adopt_end_leftovers(struct services *ss)
{
	struct adopt_rec *list = adopt_scan(ss, "svcnew/");
	while (list) {
		struct adopt_rec *r = list;
		list = r->next;
		int pid = 0, pgid = 0;
		unsigned long long st = 0, now = 0;
		if (sscanf(r->json, "%d %d %llu", &pid, &pgid, &st) == 3 && pid > 1 && pgid > 1 &&
		    supervise_proc_start_time(pid, &now) == 0 && now == st &&
		    adopt_serving_pid(ss, r->name) != pid) {
			char ps[16];
			snprintf(ps, sizeof(ps), "%d", pid);
			log_warn(MOD, "ending the new release of a deploy the agent did not finish",
				 "service", r->name, "pid", ps, NULL);
			kill(-pgid, SIGKILL);
		}
		char *key = adopt_new_key(r->name);
		char err[256];
		struct store_txn *t = store_txn_begin(ss->store, 0);
		store_del(t, ss->meta, key, strlen(key));
		if (store_txn_commit(t, err, sizeof(err)) < 0)
			log_error(MOD, "service record not removed", "error", err, NULL);
		free(key);
		free(r->name);
		free(r->json);
		free(r);
	}
}

void services_restore(struct services *ss)
{
	adopt_end_leftovers(ss);
	struct adopt_rec *list = adopt_scan(ss, SVC_PREFIX);
	while (list) {
		struct adopt_rec *r = list;
		list = r->next;
		char err[1024];
		if (adopt_one(ss, r->name, r->json, err, sizeof(err)) < 0)
			log_error(MOD, "service not restored", "service", r->name, "error", err,
				  NULL);
		free(r->name);
		free(r->json);
		free(r);
	}
	if (!ss->px)
		return;
	/* Caddy runs when a site needs it, or was left by the previous agent. */
	char *pidf = xasprintf("%s/proxy/caddy.pid", ss->data);
	if (proxy_site_count(ss->px) > 0 || access(pidf, F_OK) == 0)
		proxy_ensure_started(ss);
	free(pidf);
}

/* --- logs (H2) --------------------------------------------------------------
 *
 * Each service has an svclog (logs/service.log, rotated LOGS_FILE_MAX x
 * LOGS_KEEP) fed by an svctail following the serving release's raw file
 * (logs/RELEASE.log). service_logs tasks read it back (svclog_tail,
 * svclog_since) and, with follow, stream new records until cancelled. */

#define LOGS_MAX	  ((size_t)4 << 20) /* output of one answer (base keeps 4 MiB) */
#define LOGS_FILE_MAX	  ((size_t)10 << 20)
#define LOGS_KEEP	  5
#define LOGS_FOLLOW_QUEUE ((size_t)256 << 10) /* a follower's svclog queue */
#define LOGS_SPOOL_MAX	  256		      /* unacked events above which followers wait */
#define LOGS_CHUNK	  12288		      /* output bytes per exec_output event */
/* How long the release switched away from is still followed: what it
 * prints while it stops (STOP_OLD: TERM, KILL after 10 s) is kept too. */
#define LOGS_OLD_MS 15000

/* The serving release of v: the pipeline's, else the one `current` names
 * (after an agent restart, before or without an adopt). NULL if none; the
 * string is owned by the pipeline or lives in buf. */
static const char *logs_serving(struct svc *v, char *buf, size_t cap)
{
	const char *rel = pipeline_current(v->p, NULL, NULL);
	if (rel)
		return rel;
	char *cur = xasprintf("%s/%s/current", v->ss->dir, v->name);
	ssize_t n = readlink(cur, buf, cap - 1);
	free(cur);
	if (n <= 0)
		return NULL;
	buf[n] = 0;
	const char *slash = strrchr(buf, '/');
	return slash ? slash + 1 : buf;
}

/* Offset files whose raw file is gone (the release was pruned). */
static void logs_prune_offsets(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (n < 9 || strcmp(e->d_name + n - 8, ".log.off") != 0)
			continue;
		char *off = xasprintf("%s/%s", dir, e->d_name);
		char *raw = xasprintf("%.*s", (int)strlen(off) - 4, off);
		if (access(raw, F_OK) < 0)
			unlink(off);
		free(raw);
		free(off);
	}
	closedir(d);
}

/* The release switched away from is done: read to its end. */
static void logs_old_done(struct svc *v)
{
	if (v->old_timer)
		loop_timer_cancel(v->ss->loop, v->old_timer);
	v->old_timer = 0;
	if (v->old_tail)
		svctail_finish(v->old_tail);
	svctail_free(v->old_tail);
	v->old_tail = NULL;
}

static void logs_old_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct svc *v = arg;
	(void)loop;
	(void)id;
	(void)mask;
	v->old_timer = 0;
	logs_old_done(v);
}

/* Follow the serving release's raw file. The previous one is read to its
 * end and still followed for LOGS_OLD_MS (its last words as it stops). */
static void logs_on_service(struct svc *v)
{
	char target[4096], err[512];
	const char *rel = logs_serving(v, target, sizeof(target));
	if (!rel || !*rel || !strcmp(rel, ".") || !strcmp(rel, ".."))
		return;
	if (v->tail_rel && !strcmp(v->tail_rel, rel))
		return;
	char *dir = xasprintf("%s/%s/logs", v->ss->dir, v->name);
	mkdir(dir, 0750);
	if (!v->slog) {
		char *path = xasprintf("%s/service.log", dir);
		struct svclog_opts o = {.path = path, .max_file = LOGS_FILE_MAX, .keep = LOGS_KEEP};
		v->slog = svclog_new(v->ss->loop, &o, err, sizeof(err));
		free(path);
		if (!v->slog) {
			log_error(MOD, "service log not opened", "service", v->name, "error", err,
				  NULL);
			free(dir);
			return;
		}
	}
	char *relcopy = xstrdup(rel); /* rel may live in the pipeline */
	char *raw = xasprintf("%s/%s.log", dir, relcopy);
	/* never two tailers on one file (a rollback to it within LOGS_OLD_MS) */
	if (v->old_tail && !strcmp(svctail_path(v->old_tail), raw))
		logs_old_done(v);
	if (v->tail) {
		logs_old_done(v);
		svctail_poll(v->tail, 0);
		v->old_tail = v->tail;
		v->old_timer = loop_timer_add(v->ss->loop, LOGS_OLD_MS, logs_old_cb, v);
		v->tail = NULL;
	}
	free(v->tail_rel);
	v->tail_rel = relcopy;
	struct svctail_opts to = {.path = raw, .log = v->slog};
	v->tail = svctail_new(v->ss->loop, &to, err, sizeof(err));
	if (!v->tail)
		log_error(MOD, "release output not followed", "service", v->name, "error", err,
			  NULL);
	else
		log_info(MOD, "following the release's output", "service", v->name, "release",
			 relcopy, NULL);
	free(raw);
	logs_prune_offsets(dir);
	free(dir);
}

/* At start: every service with a `current` release is followed again (the
 * release kept running while the agent was away). */
static void logs_start_all(struct services *ss)
{
	DIR *d = opendir(ss->dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!svc_name_ok(e->d_name))
			continue;
		char *cur = xasprintf("%s/%s/current", ss->dir, e->d_name);
		struct stat st;
		int has = lstat(cur, &st) == 0;
		free(cur);
		if (!has)
			continue;
		char err[512];
		struct svc *v = get_svc(ss, e->d_name, err, sizeof(err));
		if (v)
			logs_on_service(v);
		else
			log_warn(MOD, "service not followed", "service", e->d_name, "error", err,
				 NULL);
	}
	closedir(d);
}

static void logs_release(struct svc *v)
{
	if (v->old_timer)
		loop_timer_cancel(v->ss->loop, v->old_timer);
	svctail_free(v->old_tail);
	v->old_tail = NULL;
	svctail_free(v->tail);
	svclog_free(v->slog);
	free(v->tail_rel);
	v->tail = NULL;
	v->slog = NULL;
	v->tail_rel = NULL;
}

/* A record as the CLI shows it: "2026-11-22T01:25:00.123Z out text\n"
 * (out+ for a continued record), or with raw the text alone. */
static void logs_fmt(struct buf *b, const struct svclog_rec *r, int raw)
{
	char ts[25];
	svclog_fmt_ts(r->ts_ms, ts);
	if (r->stream == SVCLOG_MARK) {
		buf_printf(b, "%s --- %.*s\n", ts, (int)r->len, r->line);
		return;
	}
	if (!raw) {
		buf_add(b, ts, 24);
		buf_puts(b, r->stream == SVCLOG_STDERR ? " err" : " out");
		buf_puts(b, r->cont ? "+ " : " ");
	}
	buf_add(b, r->line, r->len);
	if (!raw || !r->cont)
		buf_putc(b, '\n');
}

/* data as exec_output events of task in t. */
static void logs_output_txn(struct services *ss, struct store_txn *t, const char *task,
			    const char *stream, const char *data, size_t len)
{
	struct buf ev = BUF_INIT;
	for (size_t off = 0; off < len; off += LOGS_CHUNK) {
		size_t k = len - off < LOGS_CHUNK ? len - off : LOGS_CHUNK;
		buf_reset(&ev);
		buf_puts(&ev, "{\"task_id\":");
		buf_json_cstr(&ev, task);
		buf_printf(&ev, ",\"stream\":\"%s\",\"data\":\"", stream);
		crypt_b64_encode(&ev, data + off, k, CRYPT_B64_STD);
		buf_puts(&ev, "\"}");
		spool_add_txn(ss->spool, t, "exec_output", ev.data);
	}
	buf_release(&ev);
}

/* The task's exit (extra: ",\"status\":0...") and its record, in t. */
static void logs_exit_txn(struct services *ss, struct store_txn *t, const char *task,
			  const char *extra)
{
	struct buf ev = BUF_INIT, key = BUF_INIT;
	buf_puts(&ev, "{\"task_id\":");
	buf_json_cstr(&ev, task);
	buf_puts(&ev, extra);
	buf_putc(&ev, '}');
	spool_add_txn(ss->spool, t, "exec_exit", ev.data);
	buf_printf(&key, TASK_PREFIX "%s", task);
	store_put(t, ss->meta, key.data, key.len, "done", 4);
	buf_release(&ev);
	buf_release(&key);
}

/* Count r as sent (see struct logf). */
static void logs_sent(long long *last_ts, long long *last_n, const struct svclog_rec *r)
{
	if (r->stream == SVCLOG_MARK)
		return;
	if (r->ts_ms == *last_ts) {
		(*last_n)++;
	} else {
		*last_ts = r->ts_ms;
		*last_n = 1;
	}
}

/* The records asked for (since >= 0: since then, but for the first `skip`
 * of time `since`, the last `lines` of them if lines > 0; else the last
 * `lines`) formatted into out, the newest LOGS_MAX bytes at most; the
 * newest is counted in *last_ts, *last_n. -1 with why. */
static int logs_collect(struct svc *v, long long lines, long long since, long long skip, int raw,
			struct buf *out, long long *last_ts, long long *last_n, char *why,
			size_t whylen)
{
	struct svclog_list l = SVCLOG_LIST_INIT;
	char err[512];
	int rc = since >= 0 ? svclog_since(v->slog, since, 0, &l, err, sizeof(err))
			    : svclog_tail(v->slog, (size_t)lines, &l, err, sizeof(err));
	if (rc < 0) {
		snprintf(why, whylen, "service '%s': %.400s", v->name, err);
		svclog_list_release(&l);
		return -1;
	}
	size_t first = 0;
	while (first < l.n && skip > 0 && l.recs[first].ts_ms == since) {
		first++;
		skip--;
	}
	size_t from =
	    since >= 0 && lines > 0 && l.n - first > (size_t)lines ? l.n - (size_t)lines : first;
	size_t i = l.n, bytes = 0;
	while (i > from && bytes + l.recs[i - 1].len + 32 <= LOGS_MAX)
		bytes += l.recs[--i].len + 32;
	for (; i < l.n; i++) {
		logs_fmt(out, &l.recs[i], raw);
		logs_sent(last_ts, last_n, &l.recs[i]);
	}
	svclog_list_release(&l);
	return 0;
}

static struct logf *logs_find(struct services *ss, const char *task)
{
	for (struct logf *lf = ss->follows; lf; lf = lf->next)
		if (!strcmp(lf->task, task))
			return lf;
	return NULL;
}

/* Where a follow is (struct logf), in t; -1 deletes it. */
static void logs_mark_txn(struct services *ss, struct store_txn *t, const char *task,
			  long long last_ts, long long last_n)
{
	struct buf key = BUF_INIT, val = BUF_INIT;
	buf_printf(&key, LOGF_PREFIX "%s", task);
	if (last_n < 0) {
		store_del(t, ss->meta, key.data, key.len);
	} else {
		buf_printf(&val, "%lld %lld", last_ts, last_n);
		store_put(t, ss->meta, key.data, key.len, val.data, val.len);
	}
	buf_release(&key);
	buf_release(&val);
}

/* Spool what lf has formatted. */
static void logs_flush(struct logf *lf)
{
	if (!lf->out.len && !lf->err.len)
		return;
	char err[256];
	struct store_txn *t = store_txn_begin(lf->ss->store, 0);
	logs_output_txn(lf->ss, t, lf->task, "stdout", lf->out.data, lf->out.len);
	logs_output_txn(lf->ss, t, lf->task, "stderr", lf->err.data, lf->err.len);
	if (lf->last_n > 0)
		logs_mark_txn(lf->ss, t, lf->task, lf->last_ts, lf->last_n);
	if (store_txn_commit(t, err, sizeof(err)) < 0)
		log_error(MOD, "log output not spooled", "task", lf->task, "error", err, NULL);
	buf_reset(&lf->out);
	buf_reset(&lf->err);
	notify(lf->ss);
}

static void logs_drain(struct logf *lf);

static void logs_follow_timer(struct loop *loop, long long id, void *arg, int mask)
{
	struct logf *lf = arg;
	(void)id;
	(void)mask;
	lf->timer = 0;
	/* Base is not taking events (offline, slow): wait, and let the svclog
	 * queue drop its oldest records meanwhile; never grow without bound. */
	if (spool_last_seq(lf->ss->spool) - spool_acked(lf->ss->spool) > LOGS_SPOOL_MAX) {
		lf->timer = loop_timer_add(loop, LOG_FLUSH_MS, logs_follow_timer, lf);
		return;
	}
	logs_flush(lf);
	logs_drain(lf);
}

/* Take records from the follower queue into lf's batch (at most
 * LOG_FLUSH_MAX bytes); the timer spools the batch within LOG_FLUSH_MS,
 * at once when full. Never spools here: this runs inside svclog_feed. */
static void logs_drain(struct logf *lf)
{
	struct svclog_rec r;
	int full = 0;
	for (;;) {
		if (lf->out.len + lf->err.len >= LOG_FLUSH_MAX) {
			full = 1;
			break;
		}
		if (svclog_follow_next(lf->v->slog, lf->fid, &r) <= 0)
			break;
		logs_fmt(r.stream == SVCLOG_MARK ? &lf->err : &lf->out, &r, lf->raw);
		logs_sent(&lf->last_ts, &lf->last_n, &r);
	}
	if (full && lf->timer) {
		loop_timer_cancel(lf->ss->loop, lf->timer);
		lf->timer = 0;
	}
	if (!lf->timer && (full || lf->out.len || lf->err.len))
		lf->timer =
		    loop_timer_add(lf->ss->loop, full ? 0 : LOG_FLUSH_MS, logs_follow_timer, lf);
}

static void logs_follow_cb(struct loop *loop, long long id, void *arg, int mask)
{
	(void)loop;
	(void)id;
	(void)mask;
	logs_drain(arg);
}

/* End a follow: its batch, a last stderr message (may be NULL), its
 * exec_exit (extra) and its record, in one transaction; then free it. */
static void logs_end(struct logf *lf, const char *extra, const char *msg)
{
	struct services *ss = lf->ss;
	char err[256];
	/* what is still queued in the svclog goes with the follower */
	if (msg)
		buf_puts(&lf->err, msg);
	struct store_txn *t = store_txn_begin(ss->store, 0);
	logs_output_txn(ss, t, lf->task, "stdout", lf->out.data, lf->out.len);
	logs_output_txn(ss, t, lf->task, "stderr", lf->err.data, lf->err.len);
	logs_exit_txn(ss, t, lf->task, extra);
	logs_mark_txn(ss, t, lf->task, 0, -1);
	if (store_txn_commit(t, err, sizeof(err)) < 0)
		log_error(MOD, "log follow end not recorded", "task", lf->task, "error", err, NULL);
	svclog_unfollow(lf->v->slog, lf->fid);
	if (lf->timer)
		loop_timer_cancel(ss->loop, lf->timer);
	struct logf **pp = &ss->follows;
	while (*pp != lf)
		pp = &(*pp)->next;
	*pp = lf->next;
	log_info(MOD, "log follow ended", "task", lf->task, NULL);
	free(lf->task);
	buf_release(&lf->out);
	buf_release(&lf->err);
	free(lf);
	notify(ss);
}

/* stopping 1: end each follow with an exec_exit saying so; -1: free them
 * silently (their tasks stay recorded running: re-delivered after a
 * restart, they resume). */
static void logs_end_follows(struct services *ss, int stopping)
{
	while (ss->follows) {
		struct logf *lf = ss->follows;
		if (stopping > 0) {
			logs_end(lf, ",\"status\":1,\"error\":\"the agent stopped\"",
				 "dployr: the agent stopped; the follow ended\n");
			continue;
		}
		ss->follows = lf->next;
		svclog_unfollow(lf->v->slog, lf->fid);
		if (lf->timer)
			loop_timer_cancel(ss->loop, lf->timer);
		free(lf->task);
		buf_release(&lf->out);
		buf_release(&lf->err);
		free(lf);
	}
}

void services_stop_follows(struct services *ss)
{
	logs_end_follows(ss, 1);
}

int services_cancel(struct services *ss, const char *task_id)
{
	struct logf *lf = logs_find(ss, task_id);
	if (!lf)
		return -1;
	logs_flush(lf);
	logs_end(lf, ",\"status\":0,\"cancelled\":true", NULL);
	return 0;
}

/* service_logs {"service","lines"?,"since_ms"?,"follow"?,"raw"?}: the
 * records asked for as exec_output events, then with follow new records as
 * they come until cancelled, else the exec_exit (status 0, or 1 with
 * "error") at once. resume: the task was following when the agent died;
 * it goes on right after the last record it sent (LOGF_PREFIX TASK), or
 * from the start if it sent none. */
static int service_logs(struct services *ss, const char *task_id, const struct proto_jv *o,
			int resume, char *err, size_t errlen)
{
	const char *name = o ? proto_jv_get_str(o, "service") : NULL;
	int64_t lines = -1, since = -1;
	int follow = 0, raw = 0;
	if (o) {
		proto_jv_int(proto_jv_get(o, "lines"), &lines);
		proto_jv_int(proto_jv_get(o, "since_ms"), &since);
		proto_jv_bool(proto_jv_get(o, "follow"), &follow);
		proto_jv_bool(proto_jv_get(o, "raw"), &raw);
	}
	if (lines < 1)
		lines = since >= 0 ? 0 : follow ? 10 : 200;
	long long skip = 0, last_ts = 0, last_n = 0;
	if (follow && resume) {
		struct buf key = BUF_INIT, val = BUF_INIT;
		buf_printf(&key, LOGF_PREFIX "%s", task_id);
		struct store_txn *rt = store_txn_begin(ss->store, 1);
		long long ts, n;
		if (store_get_buf(rt, ss->meta, key.data, key.len, &val) == 0 &&
		    sscanf(val.data, "%lld %lld", &ts, &n) == 2 && ts >= 0 && n > 0) {
			since = ts;
			skip = n;
			lines = 0;
		}
		store_txn_abort(rt);
		buf_release(&key);
		buf_release(&val);
	}
	char why[512] = "";
	struct buf data = BUF_INIT;
	struct svc *v = svc_name_ok(name) ? find_svc(ss, name) : NULL;
	if (!v || !v->slog)
		snprintf(why, sizeof(why), "service '%.64s' has no output here", name ? name : "");
	else
		logs_collect(v, lines, since, skip, raw, &data, &last_ts, &last_n, why,
			     sizeof(why));
	struct store_txn *t = store_txn_begin(ss->store, 0);
	logs_output_txn(ss, t, task_id, "stdout", data.data, data.len);
	buf_release(&data);
	if (follow && !why[0]) {
		if (last_n > 0)
			logs_mark_txn(ss, t, task_id, last_ts, last_n);
		if (store_txn_commit(t, err, errlen) < 0)
			return -1;
		struct logf *lf = xcalloc(1, sizeof(*lf));
		lf->ss = ss;
		lf->v = v;
		lf->task = xstrdup(task_id);
		lf->raw = raw;
		lf->last_ts = last_ts;
		lf->last_n = last_n;
		buf_init(&lf->out);
		buf_init(&lf->err);
		lf->fid = svclog_follow(v->slog, 0, LOGS_FOLLOW_QUEUE, 0, logs_follow_cb, lf);
		lf->next = ss->follows;
		ss->follows = lf;
		log_info(MOD, "log follow started", "task", task_id, "service", v->name, NULL);
		notify(ss);
		return 0;
	}
	struct buf extra = BUF_INIT;
	if (why[0]) {
		buf_puts(&extra, ",\"status\":1,\"error\":");
		buf_json_cstr(&extra, why);
	} else {
		buf_puts(&extra, ",\"status\":0");
	}
	logs_exit_txn(ss, t, task_id, extra.data);
	logs_mark_txn(ss, t, task_id, 0, -1);
	buf_release(&extra);
	int rc = store_txn_commit(t, err, errlen);
	notify(ss);
	return rc;
}

/* A service_logs task delivered again. Following here: a duplicate.
 * Recorded running but not following: the agent restarted while it ran;
 * it goes on after the last record it sent. Done: a duplicate. */
static enum services_status logs_redelivered(struct services *ss, const char *task_id, int running,
					     const char *payload, struct buf *result, char *err,
					     size_t errlen)
{
	if (logs_find(ss, task_id) || !running) {
		if (!running && result)
			buf_puts(result, "{\"status\":0}");
		return SERVICES_DUPLICATE;
	}
	char why[256];
	struct proto_json *doc = proto_json_parse(payload, strlen(payload), why, sizeof(why));
	int rc = service_logs(ss, task_id, doc ? proto_json_root(doc) : NULL, 1, err, errlen);
	proto_json_free(doc);
	return rc < 0 ? SERVICES_ERROR : SERVICES_ACCEPTED;
}

static void restart_cb(struct loop *loop, long long id, void *arg, int mask)
{
	struct svc *v = arg;
	(void)id;
	(void)mask;
	v->restart_timer = 0;
	struct supervise *sv = pipeline_supervisor(v->p);
	if (!sv)
		return;
	if (supervise_state(sv) == SUPERVISE_STOPPING) {
		v->restart_timer = loop_timer_add(loop, 100, restart_cb, v);
		return;
	}
	supervise_start(sv);
	log_info(MOD, "service restarted", "service", v->name, NULL);
}

/* stop, start or restart the serving release of name in place: 0, or -1
 * with why. */
static int service_ctl(struct services *ss, const char *name, const char *action, char *why,
		       size_t whylen)
{
	struct svc *v = name ? find_svc(ss, name) : NULL;
	struct supervise *sv = v ? pipeline_supervisor(v->p) : NULL;
	if (!sv) {
		snprintf(why, whylen, "service '%.64s' has no running release here",
			 name ? name : "");
		return -1;
	}
	if (!strcmp(action, "stop")) {
		supervise_stop(sv);
	} else if (!strcmp(action, "start")) {
		supervise_start(sv);
	} else if (!strcmp(action, "restart")) {
		supervise_stop(sv);
		if (!v->restart_timer)
			v->restart_timer = loop_timer_add(ss->loop, 100, restart_cb, v);
	} else {
		snprintf(why, whylen, "unknown action '%.32s'", action);
		return -1;
	}
	log_info(MOD, "service control", "service", name, "action", action, NULL);
	return 0;
}

enum services_status services_submit(struct services *ss, const char *task_id, const char *kind,
				     const char *payload, struct buf *result, char *err,
				     size_t errlen)
{
	struct buf st = BUF_INIT;
	int rc = recorded(ss, task_id, &st);
	if (rc < 0) {
		snprintf(err, errlen, "task '%s': store failure", task_id);
		buf_release(&st);
		return SERVICES_ERROR;
	}
	if (rc == 1) {
		int running = st.len && !strcmp(st.data, "running");
		buf_release(&st);
		if (!strcmp(kind, "service_logs"))
			return logs_redelivered(ss, task_id, running, payload, result, err, errlen);
		int mine = 0;
		for (struct svc *v = ss->list; v; v = v->next)
			mine |= v->task && !strcmp(v->task, task_id);
		if (running && !mine) {
			/* recorded, but its pipeline died with an earlier agent */
			char e2[128];
			struct proto_json *doc =
			    proto_json_parse(payload, strlen(payload), e2, sizeof(e2));
			const char *dep =
			    doc ? proto_jv_get_str(proto_json_root(doc), "deployment_id") : NULL;
			finish(ss, task_id, dep ? dep : "", NULL, "error",
			       "the agent restarted during the deploy");
			proto_json_free(doc);
		}
		if (!running && result && strcmp(kind, "deploy") != 0)
			buf_puts(result, "{\"status\":0}");
		return SERVICES_DUPLICATE;
	}
	buf_release(&st);
	if (record(ss, task_id, "running", NULL, NULL, err, errlen) < 0)
		return SERVICES_ERROR;
	char why[256];
	struct proto_json *doc = proto_json_parse(payload, strlen(payload), why, sizeof(why));
	const struct proto_jv *o = doc ? proto_json_root(doc) : NULL;
	if (!strcmp(kind, "deploy")) {
		if (o)
			deploy(ss, task_id, o);
		else
			finish(ss, task_id, "", NULL, "error", "deploy task: payload is not JSON");
		proto_json_free(doc);
		return SERVICES_ACCEPTED;
	}
	if (!strcmp(kind, "service_logs")) {
		int rc2 = service_logs(ss, task_id, o, 0, err, errlen);
		proto_json_free(doc);
		return rc2 < 0 ? SERVICES_ERROR : SERVICES_ACCEPTED;
	}
	if (!strcmp(kind, "service_ctl")) {
		const char *name = o ? proto_jv_get_str(o, "service") : NULL;
		const char *action = o ? proto_jv_get_str(o, "action") : NULL;
		int status = service_ctl(ss, name, action ? action : "", why, sizeof(why)) < 0;
		proto_json_free(doc);
		if (record(ss, task_id, "done", NULL, NULL, err, errlen) < 0)
			return SERVICES_ERROR;
		if (result)
			buf_printf(result, "{\"status\":%d}", status);
		return SERVICES_DONE;
	}
	/* deploy_cancel */
	const char *dep = o ? proto_jv_get_str(o, "deployment_id") : NULL;
	const char *name = o ? proto_jv_get_str(o, "service") : NULL;
	struct svc *v = name ? find_svc(ss, name) : NULL;
	int status = 1;
	if (v && v->dep && dep && !strcmp(v->dep, dep))
		status = pipeline_cancel(v->p) == 0 ? 0 : 1;
	proto_json_free(doc);
	if (record(ss, task_id, "done", NULL, NULL, err, errlen) < 0)
		return SERVICES_ERROR;
	if (result)
		buf_printf(result, "{\"status\":%d}", status);
	return SERVICES_DONE;
}
