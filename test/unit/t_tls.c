#include "tls.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "crypt.h"
#include "harness.h"
#include "pki.h"
#include "xalloc.h"

/* Certificates for the tests: two CAs, a server certificate for localhost
 * and 127.0.0.1, client certificates good, expired and from the other CA,
 * all made by pki (t_pki.c checks them against openssl). */
struct certs {
	struct crypt_rng *rng;
	char *ca, *ca2, *srv, *srv_key, *cli, *cli_key, *old, *other, *other_key;
	struct pki_key *ca_key, *ca2_key;
};

static char *sign_client(struct certs *k, const char *ca, struct pki_key *ca_key, const char *cn,
			 time_t nb, time_t na, char **key_pem)
{
	char err[256];
	struct pki_key *key = pki_key_generate(k->rng);
	char *csr = pki_csr_create(key, "x", k->rng, err, sizeof(err));
	struct pki_cert_opts o = { .cn = cn, .not_before = nb, .not_after = na };
	char *crt = pki_csr_sign(ca, ca_key, csr, &o, k->rng, err, sizeof(err));
	if (!crt)
		harness_fail(__FILE__, __LINE__, "%s", err);
	*key_pem = pki_key_pem(key);
	pki_key_free(key);
	free(csr);
	return crt;
}

static void certs_make(struct certs *k)
{
	char err[256];
	time_t now = time(NULL);
	memset(k, 0, sizeof(*k));
	k->rng = crypt_rng_new();
	k->ca_key = pki_key_generate(k->rng);
	k->ca2_key = pki_key_generate(k->rng);
	struct pki_cert_opts o = { .cn = "test CA", .not_before = now - 60, .not_after = now + 3600 };
	k->ca = pki_ca_create(k->ca_key, &o, k->rng, err, sizeof(err));
	k->ca2 = pki_ca_create(k->ca2_key, &o, k->rng, err, sizeof(err));
	struct pki_key *sk = pki_key_generate(k->rng);
	const char *dns[] = { "localhost" }, *ips[] = { "127.0.0.1" };
	struct pki_cert_opts s = { .cn = "base", .not_before = now - 60, .not_after = now + 3600,
				   .dns = dns, .ndns = 1, .ips = ips, .nips = 1 };
	k->srv = pki_server_cert(k->ca, k->ca_key, sk, &s, k->rng, err, sizeof(err));
	if (!k->ca || !k->ca2 || !k->srv)
		harness_fail(__FILE__, __LINE__, "%s", err);
	k->srv_key = pki_key_pem(sk);
	pki_key_free(sk);
	k->cli = sign_client(k, k->ca, k->ca_key, "i-1", now - 60, now + 3600, &k->cli_key);
	k->other = sign_client(k, k->ca2, k->ca2_key, "i-1", now - 60, now + 3600, &k->other_key);
	char *old_key;
	k->old = sign_client(k, k->ca, k->ca_key, "i-1", now - 7200, now - 3600, &old_key);
	free(old_key);
}

static void certs_free(struct certs *k)
{
	free(k->ca);
	free(k->ca2);
	free(k->srv);
	free(k->srv_key);
	free(k->cli);
	free(k->cli_key);
	free(k->old);
	free(k->other);
	free(k->other_key);
	pki_key_free(k->ca_key);
	pki_key_free(k->ca2_key);
	crypt_rng_free(k->rng);
}

struct pair {
	int sfd, cfd;
	struct tls_conn *s, *c;
	int rs, rc; /* last handshake results */
};

static void pair_open(struct pair *p, struct tls_config *scfg, struct tls_config *ccfg)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
		harness_fail(__FILE__, __LINE__, "socketpair");
	p->sfd = sv[0];
	p->cfd = sv[1];
	p->s = tls_conn_new(scfg, p->sfd);
	p->c = tls_conn_new(ccfg, p->cfd);
	p->rs = p->rc = TLS_WANT_READ;
}

/* Step both sides until both are done, one failed and the other stalled,
 * or 200 rounds passed. */
static void pair_handshake(struct pair *p)
{
	for (int i = 0; i < 200; i++) {
		if (p->rc != TLS_OK && p->rc != TLS_ERROR)
			p->rc = tls_handshake(p->c);
		if (p->rs != TLS_OK && p->rs != TLS_ERROR)
			p->rs = tls_handshake(p->s);
		if ((p->rs == TLS_OK || p->rs == TLS_ERROR) && (p->rc == TLS_OK || p->rc == TLS_ERROR))
			break;
	}
}

static void pair_close(struct pair *p)
{
	tls_conn_free(p->s);
	tls_conn_free(p->c);
	close(p->sfd);
	close(p->cfd);
}

static struct tls_config *server_cfg(struct certs *k, int require)
{
	char err[256];
	struct tls_config *c = tls_config_new_server(k->ca, k->srv, k->srv_key, require, err,
						     sizeof(err));
	if (!c)
		harness_fail(__FILE__, __LINE__, "%s", err);
	return c;
}

static struct tls_config *client_cfg(const char *ca, const char *cert, const char *key)
{
	char err[256];
	struct tls_config *c = tls_config_new_client(ca, cert, key, err, sizeof(err));
	if (!c)
		harness_fail(__FILE__, __LINE__, "%s", err);
	return c;
}

TEST(mutual_tls_succeeds_and_names_the_peer)
{
	struct certs k;
	struct pair p;
	certs_make(&k);
	struct tls_config *s = server_cfg(&k, 1), *c = client_cfg(k.ca, k.cli, k.cli_key);
	pair_open(&p, s, c);
	/* connections hold references: the configs may go now */
	tls_config_free(s);
	tls_config_free(c);
	CHECK(tls_peer_cn(p.s) == NULL);
	CHECK(tls_ciphersuite(p.c) == NULL);
	CHECK_INT(tls_conn_set_server_name(p.c, "localhost"), 0);
	pair_handshake(&p);
	if (p.rs != TLS_OK || p.rc != TLS_OK)
		harness_fail(__FILE__, __LINE__, "server %d '%s', client %d '%s'", p.rs,
			     tls_error(p.s), p.rc, tls_error(p.c));
	CHECK_STR(tls_peer_cn(p.s), "i-1");
	CHECK_STR(tls_peer_cn(p.c), "base");
	struct pki_cert_info in;
	char err[256];
	CHECK(pki_cert_info(k.cli, &in, err, sizeof(err)) == 0);
	CHECK_STR(tls_peer_serial(p.s), in.serial);
	CHECK_STR(tls_ciphersuite(p.c), "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256");
	CHECK_STR(tls_ciphersuite(p.s), tls_ciphersuite(p.c));
	CHECK_STR(tls_error(p.s), "");
	CHECK_INT(tls_handshake(p.s), TLS_OK); /* idempotent */

	/* a little data, then an orderly close */
	char b[64];
	CHECK_INT(tls_read(p.s, b, sizeof(b)), TLS_WANT_READ);
	CHECK_INT(tls_write(p.c, "ping", 4), 4);
	CHECK_INT(tls_read(p.s, b, sizeof(b)), 4);
	CHECK(memcmp(b, "ping", 4) == 0);
	CHECK_INT(tls_write(p.s, "pong", 4), 4);
	CHECK_INT(tls_read(p.c, b, sizeof(b)), 4);
	CHECK_INT(tls_close_notify(p.c), TLS_OK);
	CHECK_INT(tls_read(p.s, b, sizeof(b)), 0);
	pair_close(&p);
	certs_free(&k);
}

TEST(server_name_checked_by_the_client)
{
	struct certs k;
	certs_make(&k);
	struct tls_config *s = server_cfg(&k, 1), *c = client_cfg(k.ca, k.cli, k.cli_key);
	const char *good[] = { "localhost", "LocalHost", "127.0.0.1" };
	const char *bad[] = { "example.com", "127.0.0.2", "::1", "base" };
	for (size_t i = 0; i < 3; i++) {
		struct pair p;
		pair_open(&p, s, c);
		CHECK_INT(tls_conn_set_server_name(p.c, good[i]), 0);
		pair_handshake(&p);
		if (p.rc != TLS_OK)
			harness_fail(__FILE__, __LINE__, "%s: %s", good[i], tls_error(p.c));
		pair_close(&p);
	}
	for (size_t i = 0; i < 4; i++) {
		struct pair p;
		pair_open(&p, s, c);
		CHECK_INT(tls_conn_set_server_name(p.c, bad[i]), 0);
		pair_handshake(&p);
		if (p.rc != TLS_ERROR)
			harness_fail(__FILE__, __LINE__, "%s accepted", bad[i]);
		CHECK(strstr(tls_error(p.c), "tls handshake: peer certificate rejected") != NULL);
		char want[100];
		snprintf(want, sizeof(want), "peer certificate rejected: not valid for '%s'", bad[i]);
		if (!strstr(tls_error(p.c), want))
			harness_fail(__FILE__, __LINE__, "%s", tls_error(p.c));
		CHECK(p.rs != TLS_OK);
		pair_close(&p);
	}
	tls_config_free(s);
	tls_config_free(c);
	certs_free(&k);
}

/* The server refuses; returns its error. */
static void expect_refused_by_server(struct certs *k, const char *cert, const char *key,
				     const char *want)
{
	struct pair p;
	struct tls_config *s = server_cfg(k, 1), *c = client_cfg(k->ca, cert, key);
	pair_open(&p, s, c);
	pair_handshake(&p);
	if (p.rs != TLS_ERROR || !strstr(tls_error(p.s), want))
		harness_fail(__FILE__, __LINE__, "server %d '%s', want '%s'", p.rs, tls_error(p.s),
			     want);
	CHECK(p.rc != TLS_OK || tls_read(p.c, (char[8]){ 0 }, 8) < 0);
	CHECK(tls_peer_cn(p.s) == NULL);
	pair_close(&p);
	tls_config_free(s);
	tls_config_free(c);
}

TEST(client_without_certificate_refused)
{
	struct certs k;
	certs_make(&k);
	expect_refused_by_server(&k, NULL, NULL, "tls handshake: ");
	certs_free(&k);
}

TEST(client_certificate_from_another_ca_refused)
{
	struct certs k;
	certs_make(&k);
	expect_refused_by_server(&k, k.other, k.other_key, "not correctly signed");
	certs_free(&k);
}

TEST(expired_client_certificate_refused)
{
	struct certs k;
	certs_make(&k);
	char *key;
	time_t now = time(NULL);
	char *old = sign_client(&k, k.ca, k.ca_key, "i-1", now - 7200, now - 3600, &key);
	expect_refused_by_server(&k, old, key, "expired");
	free(old);
	free(key);
	certs_free(&k);
}

TEST(server_certificate_as_client_certificate_refused)
{
	/* extendedKeyUsage serverAuth only: not a client */
	struct certs k;
	certs_make(&k);
	expect_refused_by_server(&k, k.srv, k.srv_key, "peer certificate rejected: usage does not match the extendedKeyUsage extension");
	certs_free(&k);
}

TEST(client_refuses_server_of_another_ca)
{
	struct certs k;
	struct pair p;
	certs_make(&k);
	struct tls_config *s = server_cfg(&k, 1), *c = client_cfg(k.ca2, k.other, k.other_key);
	pair_open(&p, s, c);
	pair_handshake(&p);
	CHECK_INT(p.rc, TLS_ERROR);
	CHECK(strstr(tls_error(p.c), "not correctly signed") != NULL);
	CHECK(p.rs != TLS_OK);
	pair_close(&p);
	tls_config_free(s);
	tls_config_free(c);
	certs_free(&k);
}

TEST(optional_client_certificate)
{
	struct certs k;
	struct pair p;
	certs_make(&k);
	struct tls_config *s = server_cfg(&k, 0), *c = client_cfg(k.ca, NULL, NULL);
	pair_open(&p, s, c);
	pair_handshake(&p);
	CHECK_INT(p.rs, TLS_OK);
	CHECK_INT(p.rc, TLS_OK);
	CHECK(tls_peer_cn(p.s) == NULL);
	CHECK(tls_peer_serial(p.s) == NULL);
	CHECK_STR(tls_peer_cn(p.c), "base");
	pair_close(&p);
	tls_config_free(s);
	tls_config_free(c);
	certs_free(&k);
}

TEST(bad_configurations_rejected)
{
	struct certs k;
	char err[256];
	certs_make(&k);
	CHECK(tls_config_new_server(k.ca, k.srv, k.cli_key, 1, err, sizeof(err)) == NULL);
	CHECK_STR(err, "tls config: the key does not match the certificate");
	CHECK(tls_config_new_server(k.ca, k.srv, NULL, 1, err, sizeof(err)) == NULL);
	CHECK(tls_config_new_server(NULL, k.srv, k.srv_key, 1, err, sizeof(err)) == NULL);
	CHECK(tls_config_new_server("junk", k.srv, k.srv_key, 1, err, sizeof(err)) == NULL);
	CHECK(strncmp(err, "tls config: CA certificate: ", 28) == 0);
	CHECK(tls_config_new_client(NULL, NULL, NULL, err, sizeof(err)) == NULL);
	CHECK(tls_config_new_client(k.ca, k.cli, NULL, err, sizeof(err)) == NULL);
	CHECK(tls_config_new_client(k.ca, k.cli, "junk", err, sizeof(err)) == NULL);
	if (strncmp(err, "tls config: private key: ", 25) != 0)
		harness_fail(__FILE__, __LINE__, "%s", err);
	struct tls_config *s = tls_config_new_server(NULL, k.srv, k.srv_key, 0, err, sizeof(err));
	CHECK(s != NULL);
	tls_config_free(s);
	tls_config_free(NULL);
	tls_conn_free(NULL);
	certs_free(&k);
}

/* Move n bytes from one end to the other, stepping both (the socket buffer
 * is smaller than n, so the writer sees TLS_WANT_WRITE on the way). */
static void transfer(struct tls_conn *w, struct tls_conn *r, const unsigned char *data, size_t n,
		     unsigned char *got)
{
	size_t sent = 0, recvd = 0;
	int want_write = 0;
	for (int i = 0; i < 100000 && recvd < n; i++) {
		if (sent < n) {
			size_t chunk = n - sent < 20000 ? n - sent : 20000;
			ssize_t k = tls_write(w, data + sent, chunk);
			if (k > 0)
				sent += (size_t)k;
			else if (k == TLS_WANT_WRITE)
				want_write++;
			else
				harness_fail(__FILE__, __LINE__, "write %zd: %s", k, tls_error(w));
		}
		for (;;) {
			ssize_t k = tls_read(r, got + recvd, n - recvd);
			if (k > 0) {
				recvd += (size_t)k;
				continue;
			}
			if (k != TLS_WANT_READ)
				harness_fail(__FILE__, __LINE__, "read %zd: %s", k, tls_error(r));
			break;
		}
	}
	CHECK_INT(recvd, n);
	CHECK(memcmp(data, got, n) == 0);
}

TEST(data_both_ways_100k_and_pending)
{
	struct certs k;
	struct pair p;
	certs_make(&k);
	struct tls_config *s = server_cfg(&k, 1), *c = client_cfg(k.ca, k.cli, k.cli_key);
	pair_open(&p, s, c);
	int small = 16384;
	setsockopt(p.sfd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	setsockopt(p.cfd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	pair_handshake(&p);
	CHECK_INT(p.rs, TLS_OK);
	CHECK_INT(p.rc, TLS_OK);

	size_t n = 100 * 1024 + 7;
	unsigned char *data = xmalloc(n), *got = xmalloc(n);
	crypt_random(k.rng, data, n);
	transfer(p.c, p.s, data, n, got);
	crypt_random(k.rng, data, n);
	transfer(p.s, p.c, data, n, got);

	/* one 1000-byte record: after reading 10 bytes, 990 are decrypted and
	 * waiting, yet the socket is not readable */
	CHECK_INT(tls_pending(p.c), 0);
	CHECK_INT(tls_write(p.s, data, 1000), 1000);
	unsigned char b[2000];
	CHECK_INT(tls_read(p.c, b, 10), 10);
	CHECK_INT(tls_pending(p.c), 990);
	struct pollfd pf = { .fd = p.cfd, .events = POLLIN };
	CHECK_INT(poll(&pf, 1, 0), 0);
	CHECK_INT(tls_read(p.c, b + 10, sizeof(b) - 10), 990); /* one record per read */
	CHECK(memcmp(b, data, 1000) == 0);
	CHECK_INT(tls_pending(p.c), 0);
	CHECK_INT(tls_read(p.c, b, sizeof(b)), TLS_WANT_READ);

	/* an abrupt end is an error, not an orderly 0 */
	close(p.sfd);
	p.sfd = -1;
	ssize_t r = tls_read(p.c, b, sizeof(b));
	CHECK_INT(r, TLS_ERROR);
	CHECK_STR(tls_error(p.c), "tls read: connection closed by peer");
	free(data);
	free(got);
	pair_close(&p);
	tls_config_free(s);
	tls_config_free(c);
	certs_free(&k);
}

TEST(garbage_from_peer_is_an_error)
{
	struct certs k;
	struct pair p;
	certs_make(&k);
	struct tls_config *s = server_cfg(&k, 1), *c = client_cfg(k.ca, k.cli, k.cli_key);
	pair_open(&p, s, c);
	CHECK_INT(write(p.cfd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27), 27);
	int r = TLS_WANT_READ;
	for (int i = 0; i < 10 && r == TLS_WANT_READ; i++)
		r = tls_handshake(p.s);
	CHECK_INT(r, TLS_ERROR);
	CHECK(strncmp(tls_error(p.s), "tls handshake: ", 15) == 0);
	pair_close(&p);
	tls_config_free(s);
	tls_config_free(c);
	certs_free(&k);
}
