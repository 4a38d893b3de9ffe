#include "net.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <unistd.h>

#include "buf.h"
#include "harness.h"
#include "loop.h"

static const char *parsed(const char *text)
{
	static char out[NET_ADDRSTRLEN];
	char err[512];
	struct net_addr a;
	if (net_parse(text, &a, err, sizeof(err)) < 0)
		harness_fail(__FILE__, __LINE__, "net_parse(%s): %s", text, err);
	return net_addr_str(&a, out, sizeof(out));
}

TEST(net_parse_accepts_the_documented_forms)
{
	CHECK_STR(parsed("127.0.0.1:80"), "127.0.0.1:80");
	CHECK_STR(parsed("10.1.2.3:65535"), "10.1.2.3:65535");
	CHECK_STR(parsed("[::1]:8443"), "[::1]:8443");
	CHECK_STR(parsed("[::]:0"), "[::]:0");
	CHECK_STR(parsed("[2001:db8::a:b]:1"), "[2001:db8::a:b]:1");
	CHECK_STR(parsed(":9000"), "0.0.0.0:9000");
	CHECK_STR(parsed("9000"), "0.0.0.0:9000");
	CHECK_STR(parsed("localhost:7"), "127.0.0.1:7");
	CHECK_STR(parsed("LocalHost:007"), "127.0.0.1:7");
	struct net_addr a;
	char err[256];
	CHECK_INT(net_parse("[::1]:8443", &a, err, sizeof(err)), 0);
	CHECK_INT(net_addr_port(&a), 8443);
	CHECK_INT(a.ss.ss_family, AF_INET6);
	CHECK_INT(a.len, sizeof(struct sockaddr_in6));
}

static const char *parse_err(const char *text)
{
	static char err[512];
	struct net_addr a;
	memset(err, 0, sizeof(err));
	if (net_parse(text, &a, err, sizeof(err)) == 0)
		harness_fail(__FILE__, __LINE__, "net_parse(%s) accepted", text ? text : "NULL");
	return err;
}

TEST(net_parse_rejects_bad_input_with_every_reason)
{
	CHECK_STR(parse_err("host:99999"),
		  "address 'host:99999': port '99999' is out of range (0-65535); "
		  "'host' is a host name, not an IP address");
	CHECK_STR(parse_err("[::1"), "address '[::1': missing ']'");
	CHECK_STR(parse_err("::1:80"),
		  "address '::1:80': an IPv6 address needs brackets, as in '[::1]:80'");
	CHECK_STR(parse_err(""), "address '': empty");
	CHECK_STR(parse_err(NULL), "address '': empty");
	CHECK_STR(parse_err(" 127.0.0.1:80"),
		  "address ' 127.0.0.1:80': contains spaces or control characters");
	CHECK_STR(parse_err("127.0.0.1:80\n"),
		  "address '127.0.0.1:80?': contains spaces or control characters");
	CHECK_STR(parse_err("127.0.0.1"), "address '127.0.0.1': missing port");
	CHECK_STR(parse_err("127.0.0.1:"), "address '127.0.0.1:': missing port");
	CHECK_STR(parse_err("[::1]"), "address '[::1]': missing port");
	CHECK_STR(parse_err("127.0.0.1:8o"), "address '127.0.0.1:8o': port '8o' is not a number");
	CHECK_STR(parse_err("127.0.0.1:-1"), "address '127.0.0.1:-1': port '-1' is not a number");
	CHECK_STR(parse_err("1.2.3.256:80"), "address '1.2.3.256:80': '1.2.3.256' is not an IPv4 address");
	CHECK_STR(parse_err("[::1]x80"), "address '[::1]x80': expected ':' and a port after ']'");
	CHECK_STR(parse_err("[]:80"), "address '[]:80': empty IPv6 address in '[]'");
	CHECK_STR(parse_err("[1.2.3.4]:80"), "address '[1.2.3.4]:80': '1.2.3.4' is not an IPv6 address");
	CHECK_STR(parse_err("a..b:80"), "address 'a..b:80': 'a..b' is not a valid host");
	CHECK_STR(parse_err("-a:80"), "address '-a:80': '-a' is not a valid host");
	CHECK_STR(parse_err("example.com"),
		  "address 'example.com': missing port; 'example.com' is a host name, not an IP address");
	CHECK_STR(parse_err("[::1]:99999x"), "address '[::1]:99999x': port '99999x' is not a number");
	CHECK_STR(parse_err("99999"), "address '99999': port '99999' is out of range (0-65535)");
	CHECK_STR(parse_err("1:2:3"), "address '1:2:3': an IPv6 address needs brackets, as in '[1:2]:3'");

	/* overlong: refused, and the message stays short */
	char big[1000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	const char *e = parse_err(big);
	CHECK(strstr(e, ": longer than 300 characters") != NULL);
	CHECK(strlen(e) < 120);
	/* a long but acceptable-length host name with an invalid label */
	memset(big, 'a', 100);
	strcpy(big + 100, ":80");
	CHECK(strstr(parse_err(big), "is not a valid host") != NULL);
}

TEST(net_resolve_uses_getaddrinfo_for_names)
{
	struct net_addr a;
	char err[512], out[NET_ADDRSTRLEN];
	CHECK_INT(net_resolve("127.0.0.2:5", &a, err, sizeof(err)), 0);
	CHECK_STR(net_addr_str(&a, out, sizeof(out)), "127.0.0.2:5");
	CHECK_INT(net_resolve("localhost:5", &a, err, sizeof(err)), 0);
	CHECK_STR(net_addr_str(&a, out, sizeof(out)), "127.0.0.1:5");
	/* invalid names fail before any lookup */
	CHECK_INT(net_resolve("bad_name:80", &a, err, sizeof(err)), -1);
	CHECK_STR(err, "address 'bad_name:80': 'bad_name' is not a valid host");
	CHECK_INT(net_resolve("name:x", &a, err, sizeof(err)), -1);
	CHECK_STR(err, "address 'name:x': port 'x' is not a number");
	/* a name from /etc/hosts (no network needed) goes through getaddrinfo */
	struct buf hosts = BUF_INIT;
	char name[256] = "";
	if (buf_read_file(&hosts, "/etc/hosts", 1 << 20, err, sizeof(err)) == 0) {
		char *save = NULL;
		for (char *line = strtok_r(hosts.data, "\n", &save); line && !*name;
		     line = strtok_r(NULL, "\n", &save)) {
			char ip[64], n1[200];
			if (sscanf(line, "127.0.0.%*d %199s", n1) == 1 && strcmp(n1, "localhost") &&
			    sscanf(line, "%63s", ip) == 1) {
				snprintf(name, sizeof(name), "%s", n1);
				char text[300];
				snprintf(text, sizeof(text), "%s:99", name);
				CHECK_INT(net_resolve(text, &a, err, sizeof(err)), 0);
				char want[100];
				snprintf(want, sizeof(want), "%s:99", ip);
				CHECK_STR(net_addr_str(&a, out, sizeof(out)), want);
				CHECK_INT(net_parse(text, &a, err, sizeof(err)), -1);
			}
		}
	}
	if (!*name)
		fprintf(stderr, "    (no extra loopback name in /etc/hosts: getaddrinfo path skipped)\n");
	buf_release(&hosts);
}

static void wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	if (poll(&p, 1, 5000) != 1)
		harness_fail(__FILE__, __LINE__, "fd %d not ready", fd);
}

static void on_write(struct loop *loop, long long id, void *arg, int mask)
{
	int *got = arg;
	*got = mask;
	loop_del_fd(loop, (int)id);
}

/* Listen, connect (completion seen by the loop), accept, exchange. */
static void roundtrip(const char *text, const char *peer_prefix)
{
	char err[512], out[NET_ADDRSTRLEN], peer[NET_ADDRSTRLEN];
	struct net_addr a, bound;
	CHECK_INT(net_parse(text, &a, err, sizeof(err)), 0);
	int lfd = net_listen(&a, 16, err, sizeof(err));
	if (lfd < 0)
		harness_fail(__FILE__, __LINE__, "%s", err);
	CHECK_INT(net_accept(lfd, peer, sizeof(peer), err, sizeof(err)), -1);
	CHECK_INT(errno, EAGAIN);
	CHECK_INT(net_local_addr(lfd, &bound, err, sizeof(err)), 0);
	CHECK(net_addr_port(&bound) > 0);
	int cfd = net_connect(&bound, err, sizeof(err));
	CHECK(cfd >= 0);
	CHECK_INT(net_nodelay(cfd), 0);
	struct loop *loop = loop_new(0, err, sizeof(err));
	CHECK(loop != NULL);
	int got = 0;
	CHECK_INT(loop_add_fd(loop, cfd, LOOP_WRITE, on_write, &got), 0);
	while (!got)
		CHECK(loop_run_once(loop, 5000) >= 0);
	CHECK_INT(got, LOOP_WRITE);
	CHECK_INT(net_connect_result(cfd, err, sizeof(err)), 0);
	loop_free(loop);
	wait_fd(lfd, POLLIN);
	int sfd = net_accept(lfd, peer, sizeof(peer), err, sizeof(err));
	CHECK(sfd >= 0);
	CHECK(strncmp(peer, peer_prefix, strlen(peer_prefix)) == 0);
	struct net_addr local;
	CHECK_INT(net_local_addr(cfd, &local, err, sizeof(err)), 0);
	CHECK_STR(peer, net_addr_str(&local, out, sizeof(out)));
	CHECK(write(cfd, "ping", 4) == 4);
	wait_fd(sfd, POLLIN);
	char b[8];
	CHECK(read(sfd, b, sizeof(b)) == 4);
	CHECK(memcmp(b, "ping", 4) == 0);
	/* non-blocking: nothing more to read */
	CHECK(read(sfd, b, sizeof(b)) < 0 && errno == EAGAIN);
	/* the same port again: in use */
	CHECK_INT(net_listen(&bound, 0, err, sizeof(err)), -1);
	char want[128];
	snprintf(want, sizeof(want), "listen %s: %s", net_addr_str(&bound, out, sizeof(out)),
		 strerror(EADDRINUSE));
	CHECK_STR(err, want);
	close(sfd);
	close(cfd);
	close(lfd);
}

TEST(net_tcp_roundtrip_ipv4)
{
	roundtrip("127.0.0.1:0", "127.0.0.1:");
}

TEST(net_tcp_roundtrip_ipv6)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 s = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	if (fd < 0 || bind(fd, (struct sockaddr *)&s, sizeof(s)) < 0) {
		fprintf(stderr, "    (no IPv6 loopback: skipped)\n");
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	roundtrip("[::1]:0", "[::1]:");
}

TEST(net_connect_refused_is_reported)
{
	char err[512];
	struct net_addr a, bound;
	CHECK_INT(net_parse("127.0.0.1:0", &a, err, sizeof(err)), 0);
	int lfd = net_listen(&a, 0, err, sizeof(err));
	CHECK(lfd >= 0);
	CHECK_INT(net_local_addr(lfd, &bound, err, sizeof(err)), 0);
	close(lfd); /* nobody listens on that port now */
	int cfd = net_connect(&bound, err, sizeof(err));
	CHECK(cfd >= 0);
	wait_fd(cfd, POLLOUT);
	CHECK_INT(net_connect_result(cfd, err, sizeof(err)), -1);
	CHECK_INT(errno, ECONNREFUSED);
	char want[128];
	snprintf(want, sizeof(want), "connect: %s", strerror(ECONNREFUSED));
	CHECK_STR(err, want);
	close(cfd);
	/* accept on something that is not a listener */
	CHECK_INT(net_accept(12345, NULL, 0, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "accept: %s", strerror(EBADF));
	CHECK_STR(err, want);
}
