/* net: addresses and non-blocking TCP sockets.
 *
 * Address text (net_parse):
 *   "127.0.0.1:8443"  IPv4 literal and port
 *   "[::1]:8443"      IPv6 literal in brackets and port
 *   "localhost:8443"  127.0.0.1 (the only name understood here)
 *   ":8443", "8443"   the IPv4 wildcard 0.0.0.0 (for listening; "[::]:8443"
 *                     is the IPv6 wildcard)
 * Ports are decimal 0..65535 (0: any free port when listening). An IPv6
 * literal without brackets ("::1:80") is refused as ambiguous. Host names
 * are refused: name resolution blocks, so it is done apart from the loop,
 * by net_resolve (getaddrinfo; musl's needs no NSS modules).
 *
 * Every socket is created SOCK_NONBLOCK | SOCK_CLOEXEC and belongs to the
 * caller, who closes it. Errors go to the caller's err buffer.
 */
#ifndef DPLOYR_NET_H
#define DPLOYR_NET_H

#include <stddef.h>
#include <sys/socket.h>

/* A socket address; filled by net_parse/net_resolve/net_accept. */
struct net_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* Longest net_addr_str text with its NUL: "[v6]:65535". */
#define NET_ADDRSTRLEN 56
/* Longest address text net_parse accepts. */
#define NET_ADDR_MAX 300

/* Parse text into addr. On failure writes every problem found to err, as
 * "address 'TEXT': problem; problem", and returns -1. */
int net_parse(const char *text, struct net_addr *addr, char *err, size_t errlen);
/* Like net_parse, but a host part that is a name is looked up with
 * getaddrinfo (the first TCP address returned). Blocks on DNS: call it at
 * start-up or in a child, never from a loop callback. */
int net_resolve(const char *text, struct net_addr *addr, char *err, size_t errlen);
/* "127.0.0.1:80" or "[::1]:80" into out (NET_ADDRSTRLEN bytes is enough);
 * returns out. */
char *net_addr_str(const struct net_addr *addr, char *out, size_t outlen);
/* Port of addr (host order), or -1 if not an IP address. */
int net_addr_port(const struct net_addr *addr);

/* A listening socket with SO_REUSEADDR (and IPV6_V6ONLY for IPv6, so that
 * "[::]" and "0.0.0.0" are separate). backlog <= 0 means SOMAXCONN. Returns
 * the fd or -1. */
int net_listen(const struct net_addr *addr, int backlog, char *err, size_t errlen);
/* The address a socket is bound to (to learn the port after binding 0). */
int net_local_addr(int fd, struct net_addr *addr, char *err, size_t errlen);

/* Accept one connection (non-blocking, CLOEXEC). peer (may be NULL) gets
 * the peer's address text (NET_ADDRSTRLEN bytes). Returns the fd; -1 with
 * errno EAGAIN when none is waiting (err untouched), or -1 with a reason
 * for other failures. */
int net_accept(int lfd, char *peer, size_t peerlen, char *err, size_t errlen);

/* Start a non-blocking connect; returns the fd (connected or in progress)
 * or -1. Completion: wait until the fd is writable (LOOP_WRITE), then call
 * net_connect_result. */
int net_connect(const struct net_addr *addr, char *err, size_t errlen);
/* 0 once the connection of fd succeeded; -1 with the reason (from
 * SO_ERROR, e.g. "connect: Connection refused") if it failed. errno is set
 * to the failure. Call it when the fd becomes writable. */
int net_connect_result(int fd, char *err, size_t errlen);

/* Disable Nagle's algorithm (small WebSocket frames go out at once). */
int net_nodelay(int fd);

#endif
