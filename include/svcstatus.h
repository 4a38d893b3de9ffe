/* svcstatus: the live state of services as their agents report it (the
 * agent event "service_status"), kept by base in LMDB.
 *
 * Database (open it with the store, see SVCSTATUS_DBS):
 *   svc_status  cluster "/" service "/" instance "/" -> JSON record
 *               ({"v":1,...}, struct svcstatus): the latest report of
 *               that service on that instance; a prefix scan of
 *               cluster "/" service "/" lists the instances reporting it
 *
 * The agent is not trusted: svcstatus_parse_event checks every field of
 * an event body (names, enums, ranges, types) and refuses the whole
 * report on any problem, naming each one. Only the free-text error is
 * cut to fit (SVCSTATUS_ERROR_MAX) rather than refused.
 *
 * Reports are ordered by the agent's clock (ts_ms): svcstatus_put keeps
 * the stored report when the new one is older (an equal ts_ms replaces
 * it: events of one agent are applied in their seq order).
 *
 * Every function works inside the caller's transaction. Names follow
 * deploys.h: cluster and service 1 to 63 of [A-Za-z0-9._-], an instance 1
 * to 63 printable ASCII characters without '/'.
 */
#ifndef DPLOYR_SVCSTATUS_H
#define DPLOYR_SVCSTATUS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "deploys.h"
#include "store.h"

#define SVCSTATUS_DBS	    "svc_status"
#define SVCSTATUS_ERROR_MAX 512 /* error text kept: 511 bytes and the NUL */
#define SVCSTATUS_WORD_MAX  16	/* state and health names */
/* svcstatus_put: the stored report is newer, nothing written. */
#define SVCSTATUS_STALE 3

/* One report. Fixed-size strings are NUL-terminated. */
struct svcstatus {
	char cluster[DEPLOYS_NAME_MAX];
	char service[DEPLOYS_NAME_MAX];
	char instance[DEPLOYS_NAME_MAX];
	char release[DEPLOYS_ID_MAX];	 /* deployment id of the serving release, "" if none */
	char state[SVCSTATUS_WORD_MAX];	 /* svcstatus_state_valid */
	char health[SVCSTATUS_WORD_MAX]; /* svcstatus_health_valid */
	int64_t pid;			 /* group leader, 0 if none */
	int64_t restarts;
	int port;	     /* the release's internal port, 0 if none */
	int64_t since_ms;    /* agent clock: when state last changed (0: unknown) */
	int64_t ts_ms;	     /* agent clock: when the report was made */
	int64_t received_ms; /* base clock: when it was stored */
	char error[SVCSTATUS_ERROR_MAX];
};

/* 1 for a supervisor state name ("stopped", "waiting", "running",
 * "backoff", "stopping", "exited", "failed") or "none" (no serving
 * release); else 0. */
int svcstatus_state_valid(const char *s);
/* 1 for "starting", "healthy", "unhealthy" or "none"; else 0. */
int svcstatus_health_valid(const char *s);

/* Parse and check the body (JSON text of len bytes) of a service_status
 * event of instance in cluster, made at most now_ms + 24 h (a report from
 * the far future would hide every later one). Fills *out (received_ms =
 * now_ms) and returns 0, or returns -1 with every problem in err. */
int svcstatus_parse_event(const char *body, size_t len, const char *cluster, const char *instance,
			  int64_t now_ms, struct svcstatus *out, char *err, size_t errlen);

/* Store st as the latest report of its (cluster, service, instance)
 * unless the stored one is newer: 0 (stored), SVCSTATUS_STALE (kept the
 * stored one), or -1 (store failure, or st's names are invalid). */
int svcstatus_put(struct store_txn *t, const struct svcstatus *st);
/* The latest report: 0 and *out, STORE_NOTFOUND, or -1 (a record that
 * does not decode fails the transaction). */
int svcstatus_get(struct store_txn *t, const char *cluster, const char *service,
		  const char *instance, struct svcstatus *out);

/* The record as JSON text ({"v":1,...}) and back (0 or -1: a record with
 * a bad field is refused like an event). For the store and tests. */
void svcstatus_encode(struct buf *out, const struct svcstatus *st);
int svcstatus_decode(const void *data, size_t len, struct svcstatus *out);

#endif
