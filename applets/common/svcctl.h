/* svcctl: what `dployr stop`, `start` and `restart` share: ask the agent
 * of a service to act on its serving release in place (no deployment).
 * Each verb has its own applet file (stop.c, start.c, restart.c). */
#ifndef DPLOYR_SVCCTL_H
#define DPLOYR_SVCCTL_H

/* Run verb `action` ("stop", "start", "restart") with its usage line
 * `synopsis` on argv: the exit status (0 done, 1 failure, 2 usage). */
int svcctl_main(const char *action, const char *synopsis, int argc, char **argv);

#endif
