/* Fuzz a server-side WebSocket after a valid handshake: the input is fed
 * in pieces (sizes from a generator seeded by the first byte) to a ws that
 * echoes every message, pings now and then, and writes through a transport
 * that takes a varying number of bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "http.h"
#include "ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct peer {
	struct ws *ws;
	unsigned seed;
	size_t written;
	int closed;
};

static unsigned next(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 16;
}

static ssize_t fz_write(void *arg, const void *data, size_t len)
{
	struct peer *p = arg;
	size_t n = next(&p->seed) % 300;
	if (n > len)
		n = len;
	p->written += n;
	return (ssize_t)n;
}

static void fz_message(void *arg, enum ws_type type, const void *data, size_t len)
{
	struct peer *p = arg;
	if (((const char *)data)[len] != 0)
		__builtin_trap();
	ws_send(p->ws, type, data, len);
	if (len % 3 == 0)
		ws_ping(p->ws);
}

static void fz_close(void *arg, int code, const char *reason)
{
	struct peer *p = arg;
	if (p->closed++ || !reason)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char req[] = "GET /ws HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\n"
				  "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
				  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
	if (size < 1)
		return 0;
	struct http_parser *hp = http_new(HTTP_REQUEST);
	size_t used;
	struct buf out = BUF_INIT;
	char err[128];
	if (http_parse(hp, req, sizeof(req) - 1, &used) != HTTP_DONE ||
	    ws_server_handshake(hp, &out, err, sizeof(err)) != 0)
		__builtin_trap();
	struct peer p = {.seed = data[0]};
	struct ws_handlers h = {.write = fz_write, .message = fz_message, .close = fz_close};
	p.ws = ws_new(WS_SERVER, &h, &p);
	ws_set_max_message(p.ws, 64 * 1024);
	ws_set_max_queue(p.ws, 128 * 1024);
	data++;
	size--;
	size_t off = 0;
	while (off < size) {
		size_t piece = next(&p.seed) % 100 + 1;
		if (piece > size - off)
			piece = size - off;
		ws_feed(p.ws, data + off, piece);
		off += piece;
		ws_flush(p.ws);
	}
	if (!ws_closed(p.ws))
		ws_close(p.ws, 1000, "bye");
	for (int i = 0; i < 100 && ws_want_write(p.ws); i++)
		ws_flush(p.ws);
	ws_free(p.ws);
	http_free(hp);
	buf_release(&out);
	return 0;
}
