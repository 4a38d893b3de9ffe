/* Entry points of the applets listed in applets.def.
 * Each takes argv with argv[0] set to the applet's name and returns the
 * process exit status: 0 ok, 1 failure, 2 usage, 127 unknown applet. */
#ifndef DPLOYR_APPLETS_H
#define DPLOYR_APPLETS_H

#define EXIT_USAGE 2
#define EXIT_UNKNOWN 127

#define APPLET(name, fn, group, summary) int fn(int argc, char **argv);
#define ALIAS(argv0, name)
#include "applets.def"
#undef APPLET
#undef ALIAS

#endif
