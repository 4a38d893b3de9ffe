/* proxy: the agent's one Caddy instance, driven through its admin API.
 *
 *   struct proxy_opts o = { .dir = "/var/lib/dployr/proxy", .https = 1,
 *                           .on_apply = applied, .arg = agent };
 *   struct proxy *px = proxy_new(loop, &o, err, sizeof(err));
 *   proxy_start(px);                       adopt a running Caddy, or start one
 *   struct proxy_site s = { .name = "web", .port = 3000,
 *                           .domains = doms, .ndomains = 1,
 *                           .upstreams = ports, .nupstreams = 1 };
 *   proxy_set_site(px, &s, err, sizeof(err));   the model changes...
 *   proxy_apply(px);                       ...and one POST /load applies it
 *
 * The model is a set of sites, each a service name, its listen port (the
 * blueprint's `port`: the proxy serves it on the VM), its domains (may be
 * none) and either upstream ports on 127.0.0.1 (web: one per running
 * replica of the current release) or a static root directory (file_server).
 * A zero-downtime switch to a new release is one proxy_set_site with the
 * new upstream port and one apply: Caddy swaps the config behind listeners
 * it keeps open, and requests in flight finish on the old one.
 *
 * The generated config (proxy_config, deterministic: sites sorted by name,
 * servers by port, every string escaped):
 *
 *   admin   "listen": "unix/DIR/admin.sock", "origins": ["localhost"],
 *           "config": {"persist": false}. No TCP admin endpoint (Caddy's
 *           default localhost:2019 appears only when "admin" is missing).
 *           DIR is made 0700, so only its owner reaches the socket (Caddy
 *           2.6 creates it with the umask's mode, and again on each load).
 *   storage file_system under DIR/data (certificates, ACME accounts).
 *   servers "port-N": listens on LISTEN_HOST:N (":N" without one), plain
 *           HTTP, "automatic_https": {"disable": true}. One route per site
 *           on that port, "@id": "dployr.NAME", matching its domains
 *           (Host), sites with domains first (by name), then the one site
 *           without domains, which matches every host.
 *           "https" (only with opts.https and at least one public domain):
 *           listens on :443 with a route "@id": "dployr.NAME.https" per
 *           site for its public domains; Caddy's automatic HTTPS gets their
 *           certificates and redirects http:// to https://. A public
 *           domain is a name that is not an IP address, not "localhost" and
 *           not under .localhost .local .internal .test .example .invalid
 *           .lan .home.arpa, which no public CA certifies.
 *
 * Tests listen on 127.0.0.1 with https off: only the plain port servers.
 *
 * Known limit of Caddy 2.6.2 (Debian 12): it listens with SO_REUSEPORT and
 * opens new sockets on every load, so a client connection still queued on
 * an old socket when it closes is reset by the kernel (a zero-downtime test
 * here sees 0 to 2 resets in 6 loads under a tight request loop; requests
 * in flight and later connections are served). Proxied WebSockets are
 * closed by every load. Hence the batching: one load per deploy switch.
 *
 * Caddy runs as `caddy run --config DIR/caddy.json` under supervise (its
 * own process group, restarted with backoff when it dies), with HOME and
 * XDG dirs inside DIR. caddy.json is a bootstrap (the admin endpoint alone,
 * always valid); after every start, and after every change of the model,
 * the whole config goes in one POST /load. So a crashed Caddy comes back
 * with the current model, never with a stale file that may no longer load.
 * DIR/caddy.pid records the running Caddy (pid and start time), so that a
 * restarted agent adopts it (proxy_start) and sites keep serving;
 * proxy_free leaves Caddy running for that reason, proxy_stop stops it.
 *
 * Order at agent start: set the sites (from the agent's records) first,
 * then proxy_start, so an adopted Caddy goes straight from the config it
 * runs to the same model, without serving an empty one in between.
 *
 * Batching: proxy_set_site and proxy_remove_site only change the model and
 * arm a timer (opts.apply_delay_ms); every change made before it fires goes
 * in one load, since every load closes proxied WebSockets. proxy_apply
 * loads at once. A load that is in flight when the model changes is
 * followed by another. A model whose config equals the one Caddy last
 * accepted is not sent (nothing to load: on_apply is called with ok 1, so
 * a caller waiting for its change learns that Caddy serves it, and the
 * error of a refused load is cleared: Caddy runs the model). on_apply may
 * then be called from inside proxy_apply.
 *
 * Errors: a config Caddy refuses (4xx/5xx) is reported through on_apply
 * (ok 0) and proxy_error ("proxy: caddy refused the config (400): loading
 * config: ...", the text of Caddy's JSON "error"); Caddy keeps the config
 * it had, and the same model is not retried. An admin socket that does not
 * answer (Caddy starting or restarting) is retried with backoff (50 ms up
 * to 2 s) while Caddy runs, without calling on_apply.
 */
#ifndef DPLOYR_PROXY_H
#define DPLOYR_PROXY_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"
#include "loop.h"

#define PROXY_NAME_MAX	    63
#define PROXY_DOMAIN_MAX    253
#define PROXY_MAX_DOMAINS   32
#define PROXY_MAX_UPSTREAMS 16

struct proxy;

/* After a load Caddy answered: ok 1 (applied) or 0 (refused, see
 * proxy_error). Must not call proxy_free. */
typedef void (*proxy_fn)(struct proxy *px, void *arg, int ok);

/* Filled by the caller, copied by proxy_new; zero means the default. */
struct proxy_opts {
	const char *dir;	 /* required: Caddy's state dir, created 0700 */
	const char *caddy;	 /* the program [caddy, looked up in PATH] */
	const char *listen_host; /* IP literal the site ports bind to [all] */
	int https;		 /* serve public domains on :443 with certificates */
	/* Caddy's whole environment [HOME=DIR, XDG_CONFIG_HOME=DIR/config,
	 * XDG_DATA_HOME=DIR/data, PATH=/usr/local/bin:/usr/bin:/bin]. */
	const char *const *envp;
	/* > 0: Caddy's stdout and stderr, kept open by the caller while the
	 * proxy lives (every restart writes to it) [/dev/null]. */
	int log_fd;
	long long apply_delay_ms; /* batching window [200] */
	long long timeout_ms;	  /* one admin request's deadline [10000] */
	long long backoff_min_ms; /* Caddy restart backoff [500] */
	long long backoff_max_ms; /* [30000] */
	proxy_fn on_apply;
	void *arg;
};

/* A site, borrowed by proxy_set_site (which copies it). Exactly one of
 * upstreams (web) and root (static). */
struct proxy_site {
	const char *name;	    /* 1..PROXY_NAME_MAX bytes, unique key */
	int port;		    /* 1..65535, the port served on the VM */
	const char *const *domains; /* 0..PROXY_MAX_DOMAINS, each unique */
	size_t ndomains;
	const int *upstreams; /* 127.0.0.1 ports, 1..PROXY_MAX_UPSTREAMS */
	size_t nupstreams;
	const char *root; /* absolute directory for file_server */
};

/* NULL with "proxy: reason" in err (bad options, dir not creatable). The
 * loop must outlive the proxy. */
struct proxy *proxy_new(struct loop *loop, const struct proxy_opts *o, char *err, size_t errlen);
/* Cancels a load in flight and forgets Caddy, which keeps running (see
 * above). Accepts NULL. */
void proxy_free(struct proxy *px);

/* Adopt the Caddy recorded in DIR/caddy.pid if it still runs, else start
 * one; then load the model. -1 with the reason in err when the bootstrap
 * config cannot be written (a failed spawn is retried by supervise). */
int proxy_start(struct proxy *px, char *err, size_t errlen);
/* Stop Caddy (TERM, then KILL after 5 s); no restart until proxy_start. */
void proxy_stop(struct proxy *px);

/* Add or replace the site named s->name. -1 with the reason in err, the
 * model unchanged, for a bad site or a conflict with another site: a domain
 * served by two sites, two sites without domains on one port, or port 443
 * or 80 while https is on (Caddy's own: certificates, ACME challenges and
 * redirects to https). */
int proxy_set_site(struct proxy *px, const struct proxy_site *s, char *err, size_t errlen);
/* Remove the site; -1 if there is none of that name. */
int proxy_remove_site(struct proxy *px, const char *name);
size_t proxy_site_count(const struct proxy *px);

/* Load the model now instead of at the end of the batching window. */
void proxy_apply(struct proxy *px);
/* 1 while a change of the model has not been answered by Caddy (waiting
 * for the window, in flight, or retrying). */
int proxy_pending(const struct proxy *px);
/* Why the last load failed, or "" after a success; owned by px. */
const char *proxy_error(const struct proxy *px);
/* Loads Caddy has accepted. */
unsigned proxy_loads(const struct proxy *px);
/* The running Caddy's pid, or -1. */
pid_t proxy_pid(const struct proxy *px);
/* The admin socket's path; owned by px. */
const char *proxy_admin_path(const struct proxy *px);

/* Append the whole Caddy config for the model to out. */
void proxy_config(const struct proxy *px, struct buf *out);

#endif
