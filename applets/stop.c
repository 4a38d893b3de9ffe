/* dployr stop: stop the serving release of a service (TERM, then KILL); it stays stopped. */
#include "applets.h"
#include "svcctl.h"

int stop_main(int argc, char **argv)
{
	return svcctl_main("stop", "usage: dployr stop SERVICE [--config FILE]\n", argc, argv);
}
