/* tls: non-blocking TLS 1.2 with mutual authentication over a socket.
 *
 * The only module that includes libmbedtls; no mbedTLS type or error code
 * appears here. The policy is fixed (DESIGN.md section 3): TLS 1.2 only,
 * ECDHE-ECDSA with AEAD only (AES-128-GCM-SHA256, AES-256-GCM-SHA384,
 * CHACHA20-POLY1305-SHA256), curve P-256 only, certificates with P-256 keys
 * signed with SHA-256 or better, no renegotiation, no session tickets.
 *
 * A struct tls_config holds the trust anchor (the cluster CA), our own
 * certificate and key, and its own random generator; it is shared by any
 * number of connections and reference-counted: each connection holds a
 * reference, so tls_config_free() may be called while connections still
 * use it (handy when a renewed certificate brings a new config).
 *
 * A struct tls_conn runs over a socket the caller owns (opened, made
 * non-blocking, watched and closed by the caller; tls_conn_free() does not
 * close it). Every call returns at once: TLS_WANT_READ or TLS_WANT_WRITE
 * says what the socket must become before the same call is repeated.
 *
 * TLS decrypts whole records: after tls_read() the connection may hold
 * decrypted bytes that epoll cannot see. While tls_pending() > 0 the event
 * loop must call tls_read() again instead of sleeping.
 *
 * Memory: an idle connection holds about 37 KiB of heap with mbedTLS's
 * default configuration, mostly its two record buffers (16.3 KiB each);
 * build/asan/tools/tls-mem measures it. The peer's CN and serial are taken
 * during verification, so a configuration without
 * MBEDTLS_SSL_KEEP_PEER_CERTIFICATE works unchanged.
 */
#ifndef DPLOYR_TLS_H
#define DPLOYR_TLS_H

#include <stddef.h>
#include <sys/types.h>

/* Results of tls_handshake() and tls_close_notify(); tls_read() and
 * tls_write() return a byte count or one of the negative values. */
enum tls_result {
	TLS_OK = 0,
	TLS_ERROR = -1,	     /* fatal: see tls_error(); free the connection */
	TLS_WANT_READ = -2,  /* repeat the call when the socket is readable */
	TLS_WANT_WRITE = -3, /* repeat the call when the socket is writable */
};

struct tls_config;
struct tls_conn;

/* Server side: our certificate chain (cert_pem, leaf first) and key, and
 * the CA client certificates must chain to. With require_client_cert, a
 * client without a valid certificate (chain to ca_pem, in its validity
 * period, extendedKeyUsage clientAuth when present) fails the handshake;
 * without, clients may present none (ca_pem may then be NULL). */
struct tls_config *tls_config_new_server(const char *ca_pem, const char *cert_pem,
					 const char *key_pem, int require_client_cert, char *err,
					 size_t errlen);
/* Client side: the server's certificate must chain to ca_pem (the CA
 * obtained and pinned at join). cert_pem and key_pem (both or neither) are
 * our client certificate. */
struct tls_config *tls_config_new_client(const char *ca_pem, const char *cert_pem,
					 const char *key_pem, char *err, size_t errlen);
/* Client side WITHOUT any verification of the server: encryption only,
 * no authentication. Its one legitimate use is fetching the CA certificate
 * (GET /v1/ca) to compare with a fingerprint pin obtained out of band;
 * nothing received over it may be trusted before that comparison. */
struct tls_config *tls_config_new_client_insecure(char *err, size_t errlen);
/* Take another reference (for an object that keeps cfg); returns cfg. */
struct tls_config *tls_config_ref(struct tls_config *cfg);
/* Drop the caller's reference. Accepts NULL. */
void tls_config_free(struct tls_config *cfg);

/* A connection over fd (not owned). Takes a reference on cfg. */
struct tls_conn *tls_conn_new(struct tls_config *cfg, int fd);
/* Client only, before the handshake: the server certificate must also be
 * valid for name (a DNS name, also sent as SNI, or an IP literal). */
int tls_conn_set_server_name(struct tls_conn *c, const char *name);
/* Frees the connection state; does not close the socket. Accepts NULL. */
void tls_conn_free(struct tls_conn *c);

/* TLS_OK once the handshake (including verification of the peer) is
 * complete, then on every later call. */
enum tls_result tls_handshake(struct tls_conn *c);
/* Up to n decrypted bytes into p: the count (> 0), 0 when the peer sent
 * close_notify (an orderly end), TLS_WANT_READ / TLS_WANT_WRITE, or
 * TLS_ERROR (also for a connection cut without close_notify). */
ssize_t tls_read(struct tls_conn *c, void *p, size_t n);
/* Encrypt and send up to n bytes (at most one record, 16 KiB, per call):
 * the count taken (> 0), TLS_WANT_WRITE / TLS_WANT_READ, or TLS_ERROR.
 * After a TLS_WANT_* the next tls_write() must pass the same bytes again
 * (part of them may already sit encrypted in the output buffer). */
ssize_t tls_write(struct tls_conn *c, const void *p, size_t n);
/* Nonzero when tls_read() can return data without the socket becoming
 * readable: the number of decrypted bytes not yet read, or 1 when a
 * received record is not processed yet. */
size_t tls_pending(const struct tls_conn *c);
/* Send close_notify: TLS_OK, TLS_WANT_WRITE (repeat) or TLS_ERROR. */
enum tls_result tls_close_notify(struct tls_conn *c);

/* After a successful handshake, from the peer's (verified) certificate:
 * its subject CN and serial (lowercase hex, as pki_cert_info() gives it).
 * NULL before that or when the peer presented no certificate. The strings
 * belong to the connection. */
const char *tls_peer_cn(const struct tls_conn *c);
const char *tls_peer_serial(const struct tls_conn *c);
/* The negotiated ciphersuite as mbedTLS names it
 * ("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"), or NULL before the
 * handshake. */
const char *tls_ciphersuite(const struct tls_conn *c);
/* Why the last call returned TLS_ERROR ("" if it did not). */
const char *tls_error(const struct tls_conn *c);

#endif
