/* join: enroll this VM with a base (dployr agent join; DESIGN.md section 4).
 *
 *   1. GET /v1/ca on base's API port without verification, and pin it: its
 *      fingerprint must equal ca_fingerprint (conn_fetch_pinned_ca).
 *   2. Generate a P-256 key (it never leaves the VM) and a CSR.
 *   3. POST /v1/join {"token","csr","name"?} over TLS verified against the
 *      pinned CA -> {"instance_id","name","cert","ca","agent_addr"}.
 *   4. Check the certificate (chains to the CA, CN is the instance id, key
 *      matches), then write into the data directory (0700): agent.key
 *      (0600), agent.crt, ca.crt and last agent.json, each atomically, so
 *      a directory with agent.json is a complete one.
 *
 * Blocks (a command, not the daemon). The token is never logged or printed.
 */
#ifndef DPLOYR_JOIN_H
#define DPLOYR_JOIN_H

#include <stddef.h>

struct join_opts {
	const char *base;	    /* "HOST:PORT" of base's API */
	const char *token;	    /* "dpyj_..." */
	const char *ca_fingerprint; /* "sha256:<hex>" */
	const char *data_dir;
	const char *name; /* NULL: base chooses */
	int timeout_ms;	  /* per request; 0: 15 s */
};

/* The identity given by base. */
struct join_result {
	char instance_id[129];
	char name[64];
	char agent_addr[301];
};

/* 0, or -1 with the reason in err (e.g. "join token refused ...", "ca
 * fingerprint mismatch: ..."). */
int join_run(const struct join_opts *o, struct join_result *res, char *err, size_t errlen);

#endif
