/* Fuzz svctail_parse_off (the saved offset file, read back at agent start)
 * with arbitrary bytes. Whatever parses must format to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "svctail.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned long long off, ino;
	if (svctail_parse_off((const char *)data, size, &off, &ino) == 0) {
		char line[SVCTAIL_OFF_LEN + 1];
		svctail_fmt_off(off, ino, line);
		if (size != SVCTAIL_OFF_LEN || memcmp(line, data, size) != 0)
			abort();
	}
	return 0;
}
