/* health: a service's health check, probed on the loop.
 *
 * Kinds (the blueprint's health_check):
 *   HEALTH_HTTP     GET PATH on 127.0.0.1:PORT over HTTP/1.1
 *                   ("Connection: close"); only the status line is read
 *                   (at most HEALTH_LINE_MAX bytes): 2xx and 3xx are healthy.
 *   HEALTH_TCP      a TCP connection to 127.0.0.1:PORT is accepted.
 *   HEALTH_COMMAND  `/bin/sh -c COMMAND` exits 0. The shell is the
 *                   blueprint's documented contract, run with the service's
 *                   environment, directory and user; it is a process group,
 *                   killed as a whole at the timeout.
 *
 * Every probe has a deadline (timeout_ms). After a probe ends the next one
 * starts interval_ms later; probes never overlap. Status starts STARTING;
 * a passing probe makes it HEALTHY at once; `retries` failures in a row make
 * it UNHEALTHY. Failures during start_period_ms (from health_start) are not
 * counted, but a pass during it counts. on_change is called on every change
 * of status. Nothing blocks: connect, send and read are non-blocking on the
 * loop, and the command is a child watched by the loop.
 */
#ifndef DPLOYR_HEALTH_H
#define DPLOYR_HEALTH_H

#include <stddef.h>
#include <sys/types.h>

#include "loop.h"

#define HEALTH_LINE_MAX 1024
#define HEALTH_PATH_MAX 1024

struct health;

enum health_kind { HEALTH_HTTP = 0, HEALTH_TCP, HEALTH_COMMAND };
enum health_status { HEALTH_STARTING = 0, HEALTH_HEALTHY, HEALTH_UNHEALTHY };

/* status: the new enum health_status. Must not call health_free. */
typedef void (*health_fn)(struct health *h, void *arg, int status);

/* Filled by the caller, copied by health_new; zero means the default. */
struct health_opts {
	enum health_kind kind;
	int port;		 /* HTTP, TCP: 1..65535 */
	const char *path;	 /* HTTP: starts with '/', printable, no spaces; default "/" */
	const char *command;	 /* COMMAND */
	const char *const *envp; /* COMMAND: its exact environment */
	const char *cwd;	 /* COMMAND */
	int set_ids;		 /* COMMAND: run as uid/gid */
	uid_t uid;
	gid_t gid;
	long long interval_ms;	   /* default 10000 */
	long long timeout_ms;	   /* default 5000 */
	long long start_period_ms; /* default 0 */
	int retries;		   /* default 3 */
	health_fn on_change;
	void *arg;
};

/* NULL with "health check: reason" in err for bad options. */
struct health *health_new(struct loop *loop, const struct health_opts *o, char *err, size_t errlen);
/* Cancels a probe in flight (a command's group is killed and left to the
 * loop to reap). Accepts NULL. */
void health_free(struct health *h);

/* Status back to STARTING, the start period begins, first probe now. */
void health_start(struct health *h);
/* No more probes (one in flight is cancelled); the status stays. */
void health_stop(struct health *h);

enum health_status health_status(const struct health *h);
/* "starting", "healthy", "unhealthy". */
const char *health_status_name(enum health_status st);
/* Why the last probe failed ("" if it passed); owned by h. E.g.
 * "http 127.0.0.1:8080/healthz: status 503". */
const char *health_error(const struct health *h);
/* Probes finished, and failures in a row that counted. */
unsigned health_probes(const struct health *h);
unsigned health_failures(const struct health *h);

#endif
