/* dployr restart: stop the serving release of a service, then start it again. */
#include "applets.h"
#include "svcctl.h"

int restart_main(int argc, char **argv)
{
	return svcctl_main("restart", "usage: dployr restart SERVICE [--config FILE]\n", argc, argv);
}
