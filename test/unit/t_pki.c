#include "pki.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "harness.h"
#include "xalloc.h"

#define OPENSSL "/usr/bin/openssl"

/* Run argv with stdout and stderr into out; returns the exit status. */
static int run(char *const argv[], struct buf *out)
{
	int fds[2];
	if (pipe(fds) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	buf_reset(out);
	buf_read_fd(out, fds[0], 1 << 20);
	close(fds[0]);
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void write_text(const char *path, const char *text)
{
	char err[200];
	if (pki_write_file(path, text, 0644, err, sizeof(err)) < 0)
		harness_fail(__FILE__, __LINE__, "%s", err);
}

struct fixture {
	struct crypt_rng *rng;
	struct pki_key *ca_key, *srv_key, *cli_key;
	char *ca, *srv, *csr, *cli;
	time_t now;
};

static void fixture_make(struct fixture *f)
{
	char err[256];
	memset(f, 0, sizeof(*f));
	f->rng = crypt_rng_new();
	f->now = time(NULL);
	f->ca_key = pki_key_generate(f->rng);
	f->srv_key = pki_key_generate(f->rng);
	f->cli_key = pki_key_generate(f->rng);
	struct pki_cert_opts o = { .cn = "dployr test CA",
				   .not_before = f->now - 60,
				   .not_after = f->now + 86400 * 3650 };
	f->ca = pki_ca_create(f->ca_key, &o, f->rng, err, sizeof(err));
	if (!f->ca)
		harness_fail(__FILE__, __LINE__, "%s", err);
	const char *dns[] = { "localhost", "base.example.com" };
	const char *ips[] = { "127.0.0.1", "::1" };
	struct pki_cert_opts s = { .cn = "base",
				   .not_before = f->now - 60,
				   .not_after = f->now + 86400 * 365,
				   .dns = dns,
				   .ndns = 2,
				   .ips = ips,
				   .nips = 2 };
	f->srv = pki_server_cert(f->ca, f->ca_key, f->srv_key, &s, f->rng, err, sizeof(err));
	if (!f->srv)
		harness_fail(__FILE__, __LINE__, "%s", err);
	f->csr = pki_csr_create(f->cli_key, "pending", f->rng, err, sizeof(err));
	if (!f->csr)
		harness_fail(__FILE__, __LINE__, "%s", err);
	struct pki_cert_opts c = { .cn = "i-0123abcd", .not_before = f->now - 60,
				   .not_after = f->now + 86400 };
	f->cli = pki_csr_sign(f->ca, f->ca_key, f->csr, &c, f->rng, err, sizeof(err));
	if (!f->cli)
		harness_fail(__FILE__, __LINE__, "%s", err);
}

static void fixture_free(struct fixture *f)
{
	pki_key_free(f->ca_key);
	pki_key_free(f->srv_key);
	pki_key_free(f->cli_key);
	free(f->ca);
	free(f->srv);
	free(f->csr);
	free(f->cli);
	crypt_rng_free(f->rng);
}

TEST(key_pem_round_trip_and_file_mode)
{
	struct crypt_rng *rng = crypt_rng_new();
	struct pki_key *k = pki_key_generate(rng);
	char err[256];
	char *pem = pki_key_pem(k);
	CHECK(strstr(pem, "-----BEGIN EC PRIVATE KEY-----") == pem);
	umask(022);
	CHECK(pki_key_write_file(k, "agent.key", err, sizeof(err)) == 0);
	struct stat st;
	CHECK(stat("agent.key", &st) == 0);
	CHECK_INT(st.st_mode & 0777, 0600);
	CHECK(access("agent.key.tmp.1", F_OK) != 0);
	/* replacing an existing file keeps it 0600 */
	CHECK(pki_key_write_file(k, "agent.key", err, sizeof(err)) == 0);
	CHECK(stat("agent.key", &st) == 0);
	CHECK_INT(st.st_mode & 0777, 0600);
	struct pki_key *k2 = pki_key_load_file("agent.key", err, sizeof(err));
	CHECK(k2 != NULL);
	char *pem2 = pki_key_pem(k2);
	CHECK_STR(pem, pem2);
	struct buf b = BUF_INIT;
	char *argv[] = { OPENSSL, "ec", "-in", "agent.key", "-noout", "-text", NULL };
	CHECK_INT(run(argv, &b), 0);
	CHECK(strstr(b.data, "prime256v1") != NULL);

	CHECK(pki_key_load_file("nonexistent.key", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "nonexistent.key") != NULL);
	CHECK(pki_key_load_pem("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE "
			       "KEY-----\n",
			       err, sizeof(err)) == NULL);
	CHECK(strncmp(err, "parse private key: ", 19) == 0);
	CHECK(pki_key_load_pem("", err, sizeof(err)) == NULL);
	CHECK(pki_write_file("no/such/dir/k", "x", 0600, err, sizeof(err)) == -1);
	CHECK(strstr(err, "write 'no/such/dir/k'") == err);

	/* a P-384 key is refused */
	char *gen[] = { OPENSSL, "ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out",
			"p384.key", NULL };
	CHECK_INT(run(gen, &b), 0);
	CHECK(pki_key_load_file("p384.key", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "not a P-256") != NULL);

	buf_release(&b);
	free(pem);
	free(pem2);
	pki_key_free(k);
	pki_key_free(k2);
	pki_key_free(NULL);
	crypt_rng_free(rng);
}

TEST(ca_server_client_chain)
{
	struct fixture f;
	struct pki_cert_info in;
	char err[512];
	fixture_make(&f);

	CHECK(pki_cert_info(f.ca, &in, err, sizeof(err)) == 0);
	CHECK_STR(in.cn, "dployr test CA");
	CHECK_STR(in.issuer_cn, "dployr test CA");
	CHECK(in.is_ca);
	CHECK_INT(strlen(in.serial), 32);
	CHECK_INT(in.not_before, f.now - 60);
	CHECK_INT(in.not_after, f.now + 86400 * 3650);
	char ca_serial[41];
	strcpy(ca_serial, in.serial);

	CHECK(pki_cert_info(f.srv, &in, err, sizeof(err)) == 0);
	CHECK_STR(in.cn, "base");
	CHECK_STR(in.issuer_cn, "dployr test CA");
	CHECK(!in.is_ca);
	CHECK(strcmp(in.serial, ca_serial) != 0);

	CHECK(pki_cert_info(f.cli, &in, err, sizeof(err)) == 0);
	CHECK_STR(in.cn, "i-0123abcd"); /* base's choice, not the CSR's "pending" */
	CHECK_INT(in.not_after - in.not_before, 86400 + 60);

	CHECK(pki_cert_verify(f.ca, f.ca, NULL, err, sizeof(err)) == 0);
	if (pki_cert_verify(f.ca, f.srv, "localhost", err, sizeof(err)) != 0)
		harness_fail(__FILE__, __LINE__, "%s", err);
	CHECK(pki_cert_verify(f.ca, f.srv, "LOCALHOST", err, sizeof(err)) == 0);
	CHECK(pki_cert_verify(f.ca, f.srv, "base.example.com", err, sizeof(err)) == 0);
	CHECK(pki_cert_verify(f.ca, f.srv, "127.0.0.1", err, sizeof(err)) == 0);
	CHECK(pki_cert_verify(f.ca, f.srv, "::1", err, sizeof(err)) == 0);
	CHECK(pki_cert_verify(f.ca, f.srv, "0:0::1", err, sizeof(err)) == 0);
	CHECK(pki_cert_verify(f.ca, f.srv, "127.0.0.2", err, sizeof(err)) == -1);
	CHECK_STR(err, "verify certificate: not valid for '127.0.0.2'");
	CHECK(pki_cert_verify(f.ca, f.srv, "example.com", err, sizeof(err)) == -1);
	CHECK(pki_cert_verify(f.ca, f.srv, "base", err, sizeof(err)) == -1); /* CN is not a SAN */
	CHECK(pki_cert_verify(f.ca, f.cli, NULL, err, sizeof(err)) == 0);

	/* another CA */
	struct pki_key *k2 = pki_key_generate(f.rng);
	struct pki_cert_opts o = { .cn = "dployr test CA", .not_before = f.now - 60,
				   .not_after = f.now + 3600 };
	char *ca2 = pki_ca_create(k2, &o, f.rng, err, sizeof(err));
	CHECK(ca2 != NULL);
	CHECK(pki_cert_verify(ca2, f.srv, NULL, err, sizeof(err)) == -1);
	CHECK(strstr(err, "verify certificate: ") == err);
	CHECK(strstr(err, "not correctly signed") != NULL);
	CHECK(pki_cert_verify(ca2, f.cli, NULL, err, sizeof(err)) == -1);
	/* a CA key that does not match the CA certificate cannot sign */
	CHECK(pki_csr_sign(f.ca, k2, f.csr, &o, f.rng, err, sizeof(err)) == NULL);
	CHECK_STR(err, "CA key does not match the CA certificate");
	/* a non-CA certificate cannot act as CA */
	CHECK(pki_csr_sign(f.srv, f.srv_key, f.csr, &o, f.rng, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "not a CA") != NULL);
	free(ca2);
	pki_key_free(k2);
	fixture_free(&f);
}

TEST(expired_and_not_yet_valid_refused)
{
	struct fixture f;
	char err[512];
	fixture_make(&f);
	struct pki_cert_opts o = { .cn = "i-old", .not_before = f.now - 7200,
				   .not_after = f.now - 3600 };
	char *old = pki_csr_sign(f.ca, f.ca_key, f.csr, &o, f.rng, err, sizeof(err));
	CHECK(old != NULL);
	CHECK(pki_cert_verify(f.ca, old, NULL, err, sizeof(err)) == -1);
	CHECK(strstr(err, "expired") != NULL);
	o.not_before = f.now + 3600;
	o.not_after = f.now + 7200;
	char *future = pki_csr_sign(f.ca, f.ca_key, f.csr, &o, f.rng, err, sizeof(err));
	CHECK(pki_cert_verify(f.ca, future, NULL, err, sizeof(err)) == -1);
	CHECK(strstr(err, "future") != NULL);
	free(old);
	free(future);
	fixture_free(&f);
}

TEST(bad_requests_rejected)
{
	struct fixture f;
	char err[512];
	fixture_make(&f);
	struct pki_cert_opts o = { .cn = "a,b", .not_before = f.now, .not_after = f.now + 60 };
	CHECK(pki_ca_create(f.ca_key, &o, f.rng, err, sizeof(err)) == NULL);
	CHECK_STR(err, "certificate: invalid common name 'a,b'");
	o.cn = "";
	CHECK(pki_ca_create(f.ca_key, &o, f.rng, err, sizeof(err)) == NULL);
	o.cn = "x\ny";
	CHECK(pki_csr_create(f.cli_key, o.cn, f.rng, err, sizeof(err)) == NULL);
	o.cn = "ok";
	o.not_after = f.now;
	CHECK(pki_ca_create(f.ca_key, &o, f.rng, err, sizeof(err)) == NULL);
	CHECK_STR(err, "certificate: validity ends before it starts");
	o.not_after = f.now + 60;
	/* server certificates need names, and valid ones */
	CHECK(pki_server_cert(f.ca, f.ca_key, f.srv_key, &o, f.rng, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "needs a DNS name") != NULL);
	const char *dns[] = { "bad name" }, *ips[] = { "300.1.1.1" };
	o.dns = dns;
	o.ndns = 1;
	o.ips = ips;
	o.nips = 1;
	CHECK(pki_server_cert(f.ca, f.ca_key, f.srv_key, &o, f.rng, err, sizeof(err)) == NULL);
	CHECK_STR(err, "certificate: invalid IP address '300.1.1.1'");
	o.nips = 0;
	CHECK(pki_server_cert(f.ca, f.ca_key, f.srv_key, &o, f.rng, err, sizeof(err)) == NULL);
	CHECK_STR(err, "certificate: invalid DNS name 'bad name'");

	/* a CSR whose signature does not match its content */
	char *t = xstrdup(f.csr);
	char *mid = t + strlen(t) / 2;
	*mid = *mid == 'A' ? 'B' : 'A';
	CHECK(pki_csr_sign(f.ca, f.ca_key, t, &o, f.rng, err, sizeof(err)) == NULL);
	CHECK(strncmp(err, "parse CSR", 9) == 0);
	CHECK(pki_csr_sign(f.ca, f.ca_key, "junk", &o, f.rng, err, sizeof(err)) == NULL);
	CHECK(strncmp(err, "parse CSR: ", 11) == 0);
	CHECK(pki_cert_info("junk", &(struct pki_cert_info){ 0 }, err, sizeof(err)) == -1);
	CHECK(strncmp(err, "parse certificate: ", 19) == 0);
	char fp[PKI_FINGERPRINT_LEN + 1];
	CHECK(pki_cert_fingerprint(f.csr, fp, err, sizeof(err)) == -1);
	CHECK(pki_cert_verify("junk", f.srv, NULL, err, sizeof(err)) == -1);
	CHECK(strncmp(err, "parse CA certificate: ", 22) == 0);
	free(t);
	fixture_free(&f);
}

TEST(csr_from_openssl_signed)
{
	struct fixture f;
	char err[512];
	struct buf b = BUF_INIT;
	fixture_make(&f);
	char *key[] = { OPENSSL, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out",
			"o.key", NULL };
	CHECK_INT(run(key, &b), 0);
	char *req[] = { OPENSSL, "req", "-new", "-key", "o.key", "-subj", "/CN=evil/O=x",
			"-out", "o.csr", NULL };
	CHECK_INT(run(req, &b), 0);
	CHECK(buf_read_file(&b, "o.csr", 1 << 16, err, sizeof(err)) == 0);
	struct pki_cert_opts o = { .cn = "i-77", .not_before = f.now, .not_after = f.now + 60 };
	char *c = pki_csr_sign(f.ca, f.ca_key, b.data, &o, f.rng, err, sizeof(err));
	if (!c)
		harness_fail(__FILE__, __LINE__, "%s", err);
	struct pki_cert_info in;
	CHECK(pki_cert_info(c, &in, err, sizeof(err)) == 0);
	CHECK_STR(in.cn, "i-77");
	write_text("c.pem", c);
	char *txt[] = { OPENSSL, "x509", "-in", "c.pem", "-noout", "-subject", NULL };
	CHECK_INT(run(txt, &b), 0);
	CHECK(strstr(b.data, "CN = i-77") != NULL);
	CHECK(strstr(b.data, "evil") == NULL);
	CHECK(strstr(b.data, "O =") == NULL);
	free(c);
	buf_release(&b);
	fixture_free(&f);
}

TEST(openssl_accepts_certificates)
{
	struct fixture f;
	struct buf b = BUF_INIT;
	char err[256];
	fixture_make(&f);
	write_text("ca.pem", f.ca);
	write_text("srv.pem", f.srv);
	write_text("cli.pem", f.cli);

	char *t1[] = { OPENSSL, "x509", "-in", "ca.pem", "-noout", "-text", NULL };
	CHECK_INT(run(t1, &b), 0);
	CHECK(strstr(b.data, "CA:TRUE") != NULL);
	CHECK(strstr(b.data, "Certificate Sign, CRL Sign") != NULL);
	CHECK(strstr(b.data, "ecdsa-with-SHA256") != NULL);
	CHECK(strstr(b.data, "Subject: CN = dployr test CA") != NULL);

	char *t2[] = { OPENSSL, "x509", "-in", "srv.pem", "-noout", "-text", NULL };
	CHECK_INT(run(t2, &b), 0);
	CHECK(strstr(b.data, "DNS:localhost, DNS:base.example.com, IP Address:127.0.0.1, IP "
			     "Address:0:0:0:0:0:0:0:1") != NULL);
	CHECK(strstr(b.data, "TLS Web Server Authentication") != NULL);
	CHECK(strstr(b.data, "TLS Web Client Authentication") == NULL);
	CHECK(strstr(b.data, "CA:FALSE") != NULL);
	CHECK(strstr(b.data, "Digital Signature") != NULL);
	CHECK(strstr(b.data, "Issuer: CN = dployr test CA") != NULL);

	char *t3[] = { OPENSSL, "x509", "-in", "cli.pem", "-noout", "-text", NULL };
	CHECK_INT(run(t3, &b), 0);
	CHECK(strstr(b.data, "TLS Web Client Authentication") != NULL);
	CHECK(strstr(b.data, "Subject: CN = i-0123abcd") != NULL);
	CHECK(strstr(b.data, "Subject Alternative Name") == NULL);

	char *v1[] = { OPENSSL, "verify", "-CAfile", "ca.pem", "-purpose", "sslserver", "srv.pem",
		       NULL };
	CHECK_INT(run(v1, &b), 0);
	CHECK(strstr(b.data, "srv.pem: OK") != NULL);
	char *v2[] = { OPENSSL, "verify", "-CAfile", "ca.pem", "-purpose", "sslclient", "cli.pem",
		       NULL };
	CHECK_INT(run(v2, &b), 0);
	char *v3[] = { OPENSSL, "verify", "-CAfile", "ca.pem", "-purpose", "sslserver", "cli.pem",
		       NULL };
	CHECK(run(v3, &b) != 0); /* a client certificate is not a server's */

	/* the fingerprint is openssl's, in our format */
	char fp[PKI_FINGERPRINT_LEN + 1];
	CHECK(pki_cert_fingerprint(f.ca, fp, err, sizeof(err)) == 0);
	CHECK_INT(strlen(fp), PKI_FINGERPRINT_LEN);
	CHECK(strncmp(fp, "sha256:", 7) == 0);
	char *t4[] = { OPENSSL, "x509", "-in", "ca.pem", "-noout", "-fingerprint", "-sha256", NULL };
	CHECK_INT(run(t4, &b), 0);
	char hex[65] = "", *eq = strchr(b.data, '=');
	CHECK(eq != NULL);
	size_t k = 0;
	for (char *p = eq + 1; *p && *p != '\n' && k < 64; p++)
		if (*p != ':')
			hex[k++] = (char)(*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
	hex[k] = '\0';
	CHECK_STR(fp + 7, hex);

	/* the serial is openssl's too */
	struct pki_cert_info in;
	CHECK(pki_cert_info(f.srv, &in, err, sizeof(err)) == 0);
	char *t5[] = { OPENSSL, "x509", "-in", "srv.pem", "-noout", "-serial", NULL };
	CHECK_INT(run(t5, &b), 0);
	for (char *p = b.data; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
	CHECK(strstr(b.data, in.serial) != NULL);
	buf_release(&b);
	fixture_free(&f);
}
