/* Fuzz net_parse: any bytes must give an address or a bounded message,
 * and an accepted address must print and parse back to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[1024];
	if (size >= sizeof(text))
		size = sizeof(text) - 1;
	memcpy(text, data, size);
	text[size] = '\0';
	struct net_addr a, b;
	char err[512], out[NET_ADDRSTRLEN], out2[NET_ADDRSTRLEN];
	if (net_parse(text, &a, err, sizeof(err)) < 0) {
		if (!err[0] || strncmp(err, "address '", 9) != 0)
			abort();
		return 0;
	}
	net_addr_str(&a, out, sizeof(out));
	if (net_parse(out, &b, err, sizeof(err)) < 0)
		abort();
	net_addr_str(&b, out2, sizeof(out2));
	if (strcmp(out, out2) != 0 || a.len != b.len)
		abort();
	return 0;
}
