/* Following a deployment from the CLI (deploy, rollback, logs). */
#ifndef DPLOYR_APPLETS_DEPLOYFOLLOW_H
#define DPLOYR_APPLETS_DEPLOYFOLLOW_H

#include "cli.h"
#include "client.h"

/* Print the log of deployment id on stdout from the start, polling
 * GET /v1/deployments/ID/log, until it has ended and all of it is shown;
 * then its outcome on stderr (or its record on stdout with -o json).
 * follow 0: print what there is and return. Returns 0 when it is done, 1
 * when it failed, was cancelled, or base could not be asked. */
int deployfollow(const struct cli *cli, struct client *cl, const char *id, int follow);

#endif
