#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"

/* Quote (a bounded, printable copy of) the caller's text in messages, so a
 * hostile address cannot flood or forge a log line. */
static void net_quote(struct buf *b, const char *text)
{
	size_t n = strlen(text);
	buf_putc(b, '\'');
	for (size_t i = 0; i < n && i < 64; i++) {
		unsigned char c = (unsigned char)text[i];
		buf_putc(b, c < 0x20 || c == 0x7f ? '?' : c);
	}
	if (n > 64)
		buf_puts(b, "...");
	buf_putc(b, '\'');
}

static void net_problem(struct buf *probs, const char *fmt, const char *arg)
{
	if (probs->len)
		buf_puts(probs, "; ");
	const char *q = strstr(fmt, "%q");
	if (!q) {
		buf_puts(probs, fmt);
		return;
	}
	buf_add(probs, fmt, (size_t)(q - fmt));
	net_quote(probs, arg);
	buf_puts(probs, q + 2);
}

static int net_is_hostname(const char *h)
{
	size_t n = strlen(h), label = 0;
	if (!n || n > 253 || h[0] == '.' || h[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = h[i];
		if (c == '.') {
			if (!label || h[i - 1] == '-')
				return 0;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9') || c == '-') {
			if (++label > 63 || (label == 1 && c == '-'))
				return 0;
		} else {
			return 0;
		}
	}
	return 1;
}

static int net_all_digits_dots(const char *s)
{
	for (; *s; s++)
		if (!(*s == '.' || (*s >= '0' && *s <= '9')))
			return 0;
	return 1;
}

static void net_set4(struct net_addr *addr, const struct in_addr *a, int port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&addr->ss;
	memset(addr, 0, sizeof(*addr));
	sin->sin_family = AF_INET;
	sin->sin_addr = *a;
	sin->sin_port = htons((unsigned short)port);
	addr->len = sizeof(*sin);
}

static void net_set6(struct net_addr *addr, const struct in6_addr *a, int port)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&addr->ss;
	memset(addr, 0, sizeof(*addr));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_addr = *a;
	sin6->sin6_port = htons((unsigned short)port);
	addr->len = sizeof(*sin6);
}

static int net_lookup(const char *host, int port, struct net_addr *addr, struct buf *probs)
{
	struct addrinfo hints = { 0 }, *res = NULL;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	int r = getaddrinfo(host, NULL, &hints, &res);
	if (r != 0 || !res) {
		char why[160];
		snprintf(why, sizeof(why), "resolve %%q: %s",
			 r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		net_problem(probs, why, host);
		return -1;
	}
	int rc = -1;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET) {
			net_set4(addr, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, port);
			rc = 0;
			break;
		}
		if (ai->ai_family == AF_INET6) {
			net_set6(addr, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, port);
			rc = 0;
			break;
		}
	}
	freeaddrinfo(res);
	if (rc < 0)
		net_problem(probs, "resolve %q: no IP address", host);
	return rc;
}

/* Returns the port, or -1 after noting the problem. */
static int net_parse_port(const char *p, size_t n, struct buf *probs)
{
	char text[NET_ADDR_MAX + 1];
	memcpy(text, p, n);
	text[n] = '\0';
	if (!n) {
		net_problem(probs, "missing port", NULL);
		return -1;
	}
	long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9') {
			net_problem(probs, "port %q is not a number", text);
			return -1;
		}
		if (v <= 65535)
			v = v * 10 + (p[i] - '0');
	}
	if (v > 65535) {
		net_problem(probs, "port %q is out of range (0-65535)", text);
		return -1;
	}
	return (int)v;
}

static int net_parse_any(const char *text, struct net_addr *addr, int resolve, char *err,
			 size_t errlen)
{
	struct buf probs = BUF_INIT;
	char host[NET_ADDR_MAX + 1] = "";
	int port = -1, v6 = 0, hostok = 0;
	size_t n = text ? strlen(text) : 0;
	if (!n) {
		net_problem(&probs, "empty", NULL);
		goto done;
	}
	if (n > NET_ADDR_MAX) {
		net_problem(&probs, "longer than 300 characters", NULL);
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c <= ' ' || c == 0x7f) {
			net_problem(&probs, "contains spaces or control characters", NULL);
			goto done;
		}
	}
	const char *port_text;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close) {
			net_problem(&probs, "missing ']'", NULL);
			goto done;
		}
		memcpy(host, text + 1, (size_t)(close - text - 1));
		host[close - text - 1] = '\0';
		v6 = 1;
		if (close[1] == ':') {
			port_text = close + 2;
		} else if (!close[1]) {
			port_text = close + 1;
		} else {
			net_problem(&probs, "expected ':' and a port after ']'", NULL);
			port_text = NULL;
		}
	} else {
		const char *colon = strchr(text, ':');
		if (colon && strchr(colon + 1, ':')) {
			const char *last = strrchr(text, ':');
			char hint[NET_ADDR_MAX + 8];
			snprintf(hint, sizeof(hint), "[%.*s]:%s", (int)(last - text), text, last + 1);
			net_problem(&probs, "an IPv6 address needs brackets, as in %q", hint);
			goto done;
		}
		if (colon) {
			memcpy(host, text, (size_t)(colon - text));
			host[colon - text] = '\0';
			port_text = colon + 1;
		} else if (net_all_digits_dots(text) && !strchr(text, '.')) {
			port_text = text; /* "8443" */
		} else {
			snprintf(host, sizeof(host), "%s", text);
			port_text = text + n;
		}
	}
	if (port_text)
		port = net_parse_port(port_text, strlen(port_text), &probs);

	struct in_addr a4;
	struct in6_addr a6;
	if (v6) {
		if (!*host)
			net_problem(&probs, "empty IPv6 address in '[]'", NULL);
		else if (inet_pton(AF_INET6, host, &a6) == 1)
			hostok = 1;
		else
			net_problem(&probs, "%q is not an IPv6 address", host);
	} else if (!*host) {
		a4.s_addr = htonl(INADDR_ANY);
		hostok = 1;
	} else if (!strcasecmp(host, "localhost")) {
		a4.s_addr = htonl(INADDR_LOOPBACK);
		hostok = 1;
	} else if (inet_pton(AF_INET, host, &a4) == 1) {
		hostok = 1;
	} else if (net_all_digits_dots(host)) {
		net_problem(&probs, "%q is not an IPv4 address", host);
	} else if (!net_is_hostname(host)) {
		net_problem(&probs, "%q is not a valid host", host);
	} else if (!resolve) {
		net_problem(&probs, "%q is a host name, not an IP address", host);
	} else if (port >= 0 && !probs.len) {
		if (net_lookup(host, port, addr, &probs) == 0)
			goto done;
	}
	if (hostok && port >= 0 && !probs.len) {
		if (v6)
			net_set6(addr, &a6, port);
		else
			net_set4(addr, &a4, port);
	}
done:;
	int rc = probs.len ? -1 : 0;
	if (rc < 0) {
		struct buf msg = BUF_INIT;
		buf_puts(&msg, "address ");
		net_quote(&msg, text ? text : "");
		buf_printf(&msg, ": %s", probs.data);
		snprintf(err, errlen, "%s", msg.data);
		buf_release(&msg);
		errno = EINVAL;
	}
	buf_release(&probs);
	return rc;
}

int net_parse(const char *text, struct net_addr *addr, char *err, size_t errlen)
{
	return net_parse_any(text, addr, 0, err, errlen);
}

int net_resolve(const char *text, struct net_addr *addr, char *err, size_t errlen)
{
	return net_parse_any(text, addr, 1, err, errlen);
}

char *net_addr_str(const struct net_addr *addr, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN];
	if (addr->ss.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&addr->ss;
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(out, outlen, "%s:%u", ip, ntohs(sin->sin_port));
	} else if (addr->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&addr->ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		snprintf(out, outlen, "[%s]:%u", ip, ntohs(sin6->sin6_port));
	} else {
		snprintf(out, outlen, "(family %d)", addr->ss.ss_family);
	}
	return out;
}

int net_addr_port(const struct net_addr *addr)
{
	if (addr->ss.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&addr->ss)->sin_port);
	if (addr->ss.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&addr->ss)->sin6_port);
	return -1;
}

static int net_fail(int fd, const char *what, const struct net_addr *addr, char *err,
		    size_t errlen)
{
	int saved = errno;
	char a[NET_ADDRSTRLEN];
	snprintf(err, errlen, "%s %s: %s", what, net_addr_str(addr, a, sizeof(a)),
		 strerror(saved));
	if (fd >= 0)
		close(fd);
	errno = saved;
	return -1;
}

int net_listen(const struct net_addr *addr, int backlog, char *err, size_t errlen)
{
	int family = addr->ss.ss_family;
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return net_fail(-1, "listen", addr, err, errlen);
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return net_fail(fd, "listen", addr, err, errlen);
	if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		return net_fail(fd, "listen", addr, err, errlen);
	if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0)
		return net_fail(fd, "listen", addr, err, errlen);
	if (listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0)
		return net_fail(fd, "listen", addr, err, errlen);
	return fd;
}

int net_local_addr(int fd, struct net_addr *addr, char *err, size_t errlen)
{
	memset(addr, 0, sizeof(*addr));
	addr->len = sizeof(addr->ss);
	if (getsockname(fd, (struct sockaddr *)&addr->ss, &addr->len) < 0) {
		snprintf(err, errlen, "getsockname: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int net_accept(int lfd, char *peer, size_t peerlen, char *err, size_t errlen)
{
	struct net_addr a;
	memset(&a, 0, sizeof(a));
	a.len = sizeof(a.ss);
	int fd;
	while ((fd = accept4(lfd, (struct sockaddr *)&a.ss, &a.len,
			     SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0 &&
	       errno == EINTR)
		;
	if (fd < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			int saved = errno;
			snprintf(err, errlen, "accept: %s", strerror(saved));
			errno = saved;
		}
		return -1;
	}
	if (peer)
		net_addr_str(&a, peer, peerlen);
	return fd;
}

int net_connect(const struct net_addr *addr, char *err, size_t errlen)
{
	int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return net_fail(-1, "connect", addr, err, errlen);
	int r;
	while ((r = connect(fd, (const struct sockaddr *)&addr->ss, addr->len)) < 0 &&
	       errno == EINTR)
		;
	if (r < 0 && errno != EINPROGRESS)
		return net_fail(fd, "connect", addr, err, errlen);
	return fd;
}

int net_connect_result(int fd, char *err, size_t errlen)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (!soerr) {
		/* Writable without an error but not connected would be a misuse:
		 * called before the fd became writable. */
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
			return 0;
		soerr = errno == ENOTCONN ? EINPROGRESS : errno;
	}
	snprintf(err, errlen, "connect: %s", strerror(soerr));
	errno = soerr;
	return -1;
}

int net_nodelay(int fd)
{
	int one = 1;
	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}
