/* ws-echo: a WebSocket echo server on 127.0.0.1 for end-to-end tests.
 *
 *   ws-echo PORTFILE
 *
 * Listens on an ephemeral loopback port, writes the port number to PORTFILE
 * once listening (readiness), and serves connections one at a time with
 * blocking sockets (a test tool, not daemon code): the upgrade is parsed
 * with http and answered by ws_server_handshake, then every message is
 * echoed. Text commands: "close-me" makes the server close with 4001
 * "asked", "ping-me" makes it ping and answer "pong" when the pong comes.
 * Each connection's end is printed on stdout ("closed CODE REASON", or
 * "rejected REASON" for a failed upgrade). The message limit is 1 MiB.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "buf.h"
#include "http.h"
#include "ws.h"

struct conn {
	int fd;
	struct ws *ws;
};

static ssize_t conn_write(void *arg, const void *data, size_t len)
{
	struct conn *c = arg;
	const char *p = data;
	size_t done = 0;
	while (done < len) {
		ssize_t r = send(c->fd, p + done, len - done, MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return (ssize_t)len;
}

static void conn_message(void *arg, enum ws_type type, const void *data, size_t len)
{
	struct conn *c = arg;
	if (type == WS_TEXT && len == 8 && memcmp(data, "close-me", 8) == 0)
		ws_close(c->ws, 4001, "asked");
	else if (type == WS_TEXT && len == 7 && memcmp(data, "ping-me", 7) == 0)
		ws_ping(c->ws);
	else if (ws_send(c->ws, type, data, len) != 0)
		fprintf(stderr, "ws-echo: %s\n", ws_error(c->ws));
}

static void conn_pong(void *arg, uint64_t rtt_us)
{
	struct conn *c = arg;
	ws_send(c->ws, WS_TEXT, "pong", 4);
}

static void conn_close(void *arg, int code, const char *reason)
{
	printf("closed %d %s\n", code, reason);
	fflush(stdout);
}

/* Closing with unread input makes the kernel send a reset, which can
 * destroy the close frame in flight: end our side, then drain the peer's
 * until it closes (bounded by a receive timeout). */
static void linger_close(int fd)
{
	char sink[16384];
	struct timeval tv = {.tv_sec = 2};
	shutdown(fd, SHUT_WR);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (recv(fd, sink, sizeof(sink), 0) > 0)
		;
}

static void serve(int fd)
{
	struct http_parser *p = http_new(HTTP_REQUEST);
	struct buf out = BUF_INIT;
	char in[16384], err[160];
	size_t used = 0;
	ssize_t n;
	int r = HTTP_MORE;
	while (r == HTTP_MORE && (n = recv(fd, in, sizeof(in), 0)) > 0)
		r = http_parse(p, in, (size_t)n, &used);
	if (r != HTTP_DONE) {
		printf("rejected %s\n", r == HTTP_ERROR ? http_error(p) : "end of stream");
		if (r == HTTP_ERROR)
			http_write_response_head(&out, http_error_status(p), "Connection", "close",
						 "Content-Length", "0", NULL);
	} else if (ws_server_handshake(p, &out, err, sizeof(err)) != 0) {
		printf("rejected %s\n", err);
		r = HTTP_ERROR;
	}
	fflush(stdout);
	struct conn c = {.fd = fd};
	if (out.len)
		conn_write(&c, out.data, out.len);
	if (r == HTTP_DONE) {
		struct ws_handlers h = {.write = conn_write, .message = conn_message,
					.pong = conn_pong, .close = conn_close};
		c.ws = ws_new(WS_SERVER, &h, &c);
		ws_feed(c.ws, in + used, (size_t)n - used);
		while (!ws_closed(c.ws) && (n = recv(fd, in, sizeof(in), 0)) > 0)
			ws_feed(c.ws, in, (size_t)n);
		if (!ws_closed(c.ws))
			printf("closed 1006 end of stream\n");
		fflush(stdout);
		ws_free(c.ws);
		linger_close(fd);
	}
	buf_release(&out);
	http_free(p);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: ws-echo PORTFILE\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 8) != 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &alen) != 0) {
		perror("ws-echo: listen");
		return 1;
	}
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]);
	FILE *f = fopen(tmp, "w");
	if (!f || fprintf(f, "%d\n", ntohs(a.sin_port)) < 0 || fclose(f) != 0 ||
	    rename(tmp, argv[1]) != 0) {
		perror("ws-echo: port file");
		return 1;
	}
	for (;;) {
		int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			perror("ws-echo: accept");
			return 1;
		}
		serve(fd);
		close(fd);
	}
}
