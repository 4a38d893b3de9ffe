/* dployr start: start a stopped service's serving release again. */
#include "applets.h"
#include "svcctl.h"

int start_main(int argc, char **argv)
{
	return svcctl_main("start", "usage: dployr start SERVICE [--config FILE]\n", argc, argv);
}
