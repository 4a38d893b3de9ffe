#include <stdio.h>

#include "applets.h"

int lint_main(int argc, char **argv)
{
	fprintf(stderr, "dployr lint: not yet implemented\n");
	return EXIT_USAGE;
}
