/* Fuzz the CLI context file parser and the base URL parser: a hostile or
 * damaged ~/.config/dployr/config.json must give a reason, never a crash,
 * and whatever parses must have a canonical base that parses again to
 * itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct client_ctx ctx;
	if (client_ctx_parse(&ctx, (const char *)data, size, "fuzz", err, sizeof(err)) == 0) {
		char canon[CLIENT_URL_MAX], again[CLIENT_URL_MAX];
		if (client_base_parse(ctx.base, canon, NULL, NULL, err, sizeof(err)) < 0 ||
		    client_base_parse(canon, again, NULL, NULL, err, sizeof(err)) < 0 ||
		    strcmp(canon, again) != 0 || strcmp(canon, ctx.base) != 0)
			abort();
	}
	client_ctx_release(&ctx);

	char *s = xstrndup((const char *)data, size);
	char canon[CLIENT_URL_MAX], addr[CLIENT_URL_MAX], host[CLIENT_URL_MAX];
	if (client_base_parse(s, canon, addr, host, err, sizeof(err)) == 0) {
		char again[CLIENT_URL_MAX];
		if (client_base_parse(canon, again, NULL, NULL, err, sizeof(err)) < 0 ||
		    strcmp(canon, again) != 0)
			abort();
	}
	client_pin_check(s, err, sizeof(err));
	client_token_check(s, err, sizeof(err));
	client_name_check(s, err, sizeof(err));
	free(s);
	return 0;
}
