/* spool: the agent's outgoing events, kept in LMDB until base acks them.
 *
 * Every event gets the next per-agent sequence number (1, 2, ...; strictly
 * increasing for the life of the store, across restarts and acks, since the
 * counter lives in the "meta" database and never goes back). It is stored
 * in the "spool" database (big-endian seq -> kind NUL body) before it is
 * sent, and deleted only when base acks it (event_ack up_to_seq), so a
 * base restart, a network cut or an agent crash loses nothing: after a
 * reconnect the agent resends, in seq order, every event still spooled
 * (base ignores seq numbers it already applied: exactly-once apply).
 *
 * A spool borrows a store opened with the databases "spool" and "meta";
 * it holds no transaction between calls.
 */
#ifndef DPLOYR_SPOOL_H
#define DPLOYR_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "store.h"

struct spool;

/* NULL with a reason in err when the store lacks the databases. */
struct spool *spool_new(struct store *s, char *err, size_t errlen);
/* Accepts NULL. The store stays open (the caller's). */
void spool_free(struct spool *sp);

/* Spool an event in the caller's write transaction t (so an event and the
 * state change it reports commit together). kind: an id ("exec_exit");
 * body: one JSON object as text. Returns the seq (> 0), or 0 with t
 * poisoned. The event exists once t commits. */
uint64_t spool_add_txn(struct spool *sp, struct store_txn *t, const char *kind, const char *body);
/* The same in a transaction of its own: the seq, or 0 with err. */
uint64_t spool_add(struct spool *sp, const char *kind, const char *body, char *err, size_t errlen);

/* Base has stored every event with seq <= up_to: delete them. An up_to
 * beyond the last seq handed out (the store was lost or restored from a
 * backup while base kept counting) moves the counter up to it, so that
 * base does not ignore the events that follow as already applied. Returns
 * the number of events dropped, or -1 with err. */
long spool_ack(struct spool *sp, uint64_t up_to, char *err, size_t errlen);

/* The first spooled event with seq > after: 1 with *seq, kind and body
 * (appended to the caller's bufs), 0 when there is none, -1 on a store
 * error or a corrupt record (reason in err). */
int spool_next(struct spool *sp, uint64_t after, uint64_t *seq, struct buf *kind, struct buf *body,
	       char *err, size_t errlen);

/* The last seq handed out (0 before the first event). */
uint64_t spool_last_seq(struct spool *sp);
/* The highest seq base acked (0 before the first ack). */
uint64_t spool_acked(struct spool *sp);
/* Events waiting for an ack. */
size_t spool_count(struct spool *sp);

#endif
