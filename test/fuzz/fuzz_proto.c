/* Fuzz proto_decode with arbitrary bytes. Whatever decodes must encode,
 * and decode again to an equal message (the encoder and the decoder agree).
 */
#include <stdint.h>
#include <stdlib.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct proto_msg m, m2;
	if (proto_decode(&m, data, size, err, sizeof err) == 0) {
		struct buf b = BUF_INIT;
		if (proto_encode(&b, &m, err, sizeof err) < 0)
			abort();
		if (proto_decode(&m2, b.data, b.len, err, sizeof err) < 0)
			abort();
		if (!proto_msg_equal(&m, &m2))
			abort();
		proto_msg_release(&m2);
		buf_release(&b);
	}
	proto_msg_release(&m);
	return 0;
}
