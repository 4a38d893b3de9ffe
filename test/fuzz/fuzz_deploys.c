/* libFuzzer target: deploys_decode on arbitrary bytes (a stored record
 * that was corrupted). What decodes must re-encode to a record that
 * decodes to the same thing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deploys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct deploys_rec a, b;
	if (deploys_decode(data, size, &a) == 0) {
		struct buf enc = BUF_INIT, enc2 = BUF_INIT;
		deploys_encode(&enc, &a);
		if (deploys_decode(enc.data, enc.len, &b) != 0)
			abort();
		deploys_encode(&enc2, &b);
		if (enc.len != enc2.len || memcmp(enc.data, enc2.data, enc.len) != 0)
			abort();
		if (strlen(a.reason) >= sizeof a.reason || !a.blueprint || !a.title ||
		    !a.description)
			abort();
		deploys_rec_release(&b);
		buf_release(&enc);
		buf_release(&enc2);
	}
	deploys_rec_release(&a);
	return 0;
}
