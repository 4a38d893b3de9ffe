/* pki-make DIR: write a test PKI into DIR (which must exist), for the e2e
 * tests of pki and tls:
 *
 *   ca.pem ca.key           the cluster CA (CN "dployr test CA")
 *   server.pem server.key   server certificate: localhost, 127.0.0.1, ::1
 *   client.pem client.key   client certificate, CN "i-e2e", signed from a CSR
 *   other-ca.pem            a second CA
 *   other.pem other.key     a client certificate from the second CA
 *   expired.pem expired.key a client certificate that expired an hour ago
 *   fingerprint             the CA fingerprint ("sha256:<hex>")
 *
 * Exit 0, or 1 with a message on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypt.h"
#include "pki.h"
#include "xalloc.h"

static const char *dir;
static char err[512];

static void die(void)
{
	fprintf(stderr, "pki-make: %s\n", err);
	exit(1);
}

static void put(const char *name, const char *text, unsigned mode)
{
	char *path = xasprintf("%s/%s", dir, name);
	if (pki_write_file(path, text, mode, err, sizeof(err)) < 0)
		die();
	free(path);
}

static void put_key(const char *name, const struct pki_key *key)
{
	char *path = xasprintf("%s/%s", dir, name);
	if (pki_key_write_file(key, path, err, sizeof(err)) < 0)
		die();
	free(path);
}

/* A client key, CSR and certificate signed by ca. */
static void client(struct crypt_rng *rng, const char *ca, const struct pki_key *ca_key,
		   const char *name, time_t nb, time_t na)
{
	struct pki_key *key = pki_key_generate(rng);
	char *csr = pki_csr_create(key, "pending", rng, err, sizeof(err));
	if (!csr)
		die();
	struct pki_cert_opts o = { .cn = "i-e2e", .not_before = nb, .not_after = na };
	char *crt = pki_csr_sign(ca, ca_key, csr, &o, rng, err, sizeof(err));
	if (!crt)
		die();
	char *f = xasprintf("%s.pem", name), *k = xasprintf("%s.key", name);
	put(f, crt, 0644);
	put_key(k, key);
	free(f);
	free(k);
	free(csr);
	free(crt);
	pki_key_free(key);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: pki-make DIR\n");
		return 2;
	}
	dir = argv[1];
	time_t now = time(NULL);
	struct crypt_rng *rng = crypt_rng_new();
	struct pki_key *ca_key = pki_key_generate(rng), *ca2_key = pki_key_generate(rng),
		       *srv_key = pki_key_generate(rng);
	struct pki_cert_opts o = { .cn = "dployr test CA", .not_before = now - 300,
				   .not_after = now + 86400 * 3650 };
	char *ca = pki_ca_create(ca_key, &o, rng, err, sizeof(err));
	if (!ca)
		die();
	o.cn = "other CA";
	char *ca2 = pki_ca_create(ca2_key, &o, rng, err, sizeof(err));
	if (!ca2)
		die();
	const char *dns[] = { "localhost" }, *ips[] = { "127.0.0.1", "::1" };
	struct pki_cert_opts s = { .cn = "base", .not_before = now - 300,
				   .not_after = now + 86400 * 365, .dns = dns, .ndns = 1,
				   .ips = ips, .nips = 2 };
	char *srv = pki_server_cert(ca, ca_key, srv_key, &s, rng, err, sizeof(err));
	if (!srv)
		die();
	char fp[PKI_FINGERPRINT_LEN + 2];
	if (pki_cert_fingerprint(ca, fp, err, sizeof(err)) < 0)
		die();
	strcat(fp, "\n");

	put("ca.pem", ca, 0644);
	put_key("ca.key", ca_key);
	put("other-ca.pem", ca2, 0644);
	put("server.pem", srv, 0644);
	put_key("server.key", srv_key);
	put("fingerprint", fp, 0644);
	client(rng, ca, ca_key, "client", now - 300, now + 86400);
	client(rng, ca2, ca2_key, "other", now - 300, now + 86400);
	client(rng, ca, ca_key, "expired", now - 7200, now - 3600);

	free(ca);
	free(ca2);
	free(srv);
	pki_key_free(ca_key);
	pki_key_free(ca2_key);
	pki_key_free(srv_key);
	crypt_rng_free(rng);
	return 0;
}
