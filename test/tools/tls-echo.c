/* tls-echo DIR PORTFILE: a TLS echo server on 127.0.0.1 for the e2e tests,
 * using the tls module with the certificates pki-make wrote into DIR
 * (ca.pem, server.pem, server.key); client certificates are required.
 *
 * It binds an ephemeral port and writes its number to PORTFILE (readiness),
 * then serves one connection at a time: handshake, then echo everything
 * back until the peer closes or a received chunk contains "bye" (then it
 * sends close_notify and closes). Each connection has a 10 s deadline.
 * One line per event on stderr:
 *   handshake ok cn=CN serial=HEX suite=NAME | handshake failed: REASON |
 *   closed | error: REASON
 * Runs until killed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "pki.h"
#include "tls.h"
#include "xalloc.h"

static char *slurp(const char *dir, const char *name)
{
	struct buf b = BUF_INIT;
	char err[300], *path = xasprintf("%s/%s", dir, name);
	if (buf_read_file(&b, path, 1 << 20, err, sizeof(err)) < 0) {
		fprintf(stderr, "tls-echo: %s\n", err);
		exit(1);
	}
	free(path);
	return buf_detach(&b, NULL);
}

static long ms_left(const struct timespec *deadline)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long ms = (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms > 0 ? ms : 0;
}

/* Wait for what a TLS_WANT_* result asks; 0 ok, -1 deadline passed. */
static int wait_io(int fd, int want, const struct timespec *deadline)
{
	struct pollfd p = { .fd = fd, .events = want == TLS_WANT_WRITE ? POLLOUT : POLLIN };
	long ms = ms_left(deadline);
	if (ms == 0 || poll(&p, 1, (int)ms) <= 0)
		return -1;
	return 0;
}

static int write_all(struct tls_conn *c, int fd, const char *p, size_t n,
		     const struct timespec *deadline)
{
	while (n > 0) {
		ssize_t k = tls_write(c, p, n);
		if (k > 0) {
			p += k;
			n -= (size_t)k;
		} else if (k == TLS_ERROR || wait_io(fd, (int)k, deadline) < 0) {
			return -1;
		}
	}
	return 0;
}

static void serve(struct tls_config *cfg, int fd)
{
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += 10;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	struct tls_conn *c = tls_conn_new(cfg, fd);
	int r;
	while ((r = tls_handshake(c)) != TLS_OK) {
		if (r == TLS_ERROR || wait_io(fd, r, &deadline) < 0) {
			fprintf(stderr, "handshake failed: %s\n",
				r == TLS_ERROR ? tls_error(c) : "timed out");
			goto out;
		}
	}
	fprintf(stderr, "handshake ok cn=%s serial=%s suite=%s\n", tls_peer_cn(c),
		tls_peer_serial(c), tls_ciphersuite(c));
	for (;;) {
		char b[16384];
		ssize_t n = tls_read(c, b, sizeof(b));
		if (n > 0) {
			if (write_all(c, fd, b, (size_t)n, &deadline) < 0) {
				fprintf(stderr, "error: %s\n", tls_error(c));
				goto out;
			}
			if (memmem(b, (size_t)n, "bye", 3)) {
				while ((r = tls_close_notify(c)) == TLS_WANT_WRITE &&
				       wait_io(fd, r, &deadline) == 0)
					;
				fprintf(stderr, "closed\n");
				goto out;
			}
			continue;
		}
		if (n == 0) {
			fprintf(stderr, "closed\n");
			goto out;
		}
		/* decrypted bytes epoll/poll cannot see: read them first */
		if (tls_pending(c) > 0)
			continue;
		if (n == TLS_ERROR || wait_io(fd, (int)n, &deadline) < 0) {
			fprintf(stderr, "error: %s\n", n == TLS_ERROR ? tls_error(c) : "timed out");
			goto out;
		}
	}
out:
	tls_conn_free(c);
	close(fd);
}

int main(int argc, char **argv)
{
	char err[300];
	if (argc != 3) {
		fprintf(stderr, "usage: tls-echo DIR PORTFILE\n");
		return 2;
	}
	setvbuf(stderr, NULL, _IOLBF, 0);
	char *ca = slurp(argv[1], "ca.pem"), *crt = slurp(argv[1], "server.pem"),
	     *key = slurp(argv[1], "server.key");
	struct tls_config *cfg = tls_config_new_server(ca, crt, key, 1, err, sizeof(err));
	if (!cfg) {
		fprintf(stderr, "tls-echo: %s\n", err);
		return 1;
	}
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 16) < 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &alen) < 0) {
		fprintf(stderr, "tls-echo: listen: %s\n", strerror(errno));
		return 1;
	}
	char port[16];
	snprintf(port, sizeof(port), "%d\n", ntohs(a.sin_port));
	if (pki_write_file(argv[2], port, 0644, err, sizeof(err)) < 0) {
		fprintf(stderr, "tls-echo: %s\n", err);
		return 1;
	}
	for (;;) {
		int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "tls-echo: accept: %s\n", strerror(errno));
			return 1;
		}
		serve(cfg, fd);
	}
}
