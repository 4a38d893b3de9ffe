#include "pki.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "mbedtls/asn1.h"
#include "mbedtls/ecp.h"
#include "mbedtls/error.h"
#include "mbedtls/md.h"
#include "mbedtls/oid.h"
#include "mbedtls/pk.h"
#include "mbedtls/x509_crt.h"
#include "mbedtls/x509_csr.h"
#include "xalloc.h"

/* Enough for a certificate with a few hundred SAN entries. */
#define PEM_MAX 32768

struct pki_key {
	mbedtls_pk_context pk;
};

static void mberr(char *err, size_t errlen, const char *what, int rc)
{
	char m[160];
	mbedtls_strerror(rc, m, sizeof(m));
	snprintf(err, errlen, "%s: %s", what, m);
}

/* --- keys --------------------------------------------------------------- */

static struct pki_key *key_new(void)
{
	struct pki_key *k = xcalloc(1, sizeof(*k));
	mbedtls_pk_init(&k->pk);
	return k;
}

void pki_key_free(struct pki_key *key)
{
	if (!key)
		return;
	mbedtls_pk_free(&key->pk);
	free(key);
}

static int is_p256(const mbedtls_pk_context *pk)
{
	return mbedtls_pk_get_type(pk) == MBEDTLS_PK_ECKEY &&
	       mbedtls_pk_ec(*pk)->grp.id == MBEDTLS_ECP_DP_SECP256R1;
}

struct pki_key *pki_key_generate(struct crypt_rng *rng)
{
	struct pki_key *k = key_new();
	if (mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0 ||
	    mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(k->pk), crypt_rng_cb, rng) !=
		    0) {
		fprintf(stderr, "dployr: pki: P-256 key generation failed\n");
		abort();
	}
	return k;
}

struct pki_key *pki_key_load_pem(const char *pem, char *err, size_t errlen)
{
	struct pki_key *k = key_new();
	int rc = mbedtls_pk_parse_key(&k->pk, (const unsigned char *)pem, strlen(pem) + 1, NULL, 0);
	if (rc != 0) {
		mberr(err, errlen, "parse private key", rc);
		goto fail;
	}
	if (!is_p256(&k->pk)) {
		snprintf(err, errlen, "parse private key: not a P-256 (secp256r1) key");
		goto fail;
	}
	return k;
fail:
	pki_key_free(k);
	return NULL;
}

struct pki_key *pki_key_load_file(const char *path, char *err, size_t errlen)
{
	struct buf b = BUF_INIT;
	char e[200];
	struct pki_key *k = NULL;
	if (buf_read_file(&b, path, 1 << 20, err, errlen) < 0)
		goto out;
	if (!(k = pki_key_load_pem(b.data, e, sizeof(e))))
		snprintf(err, errlen, "load key '%s': %s", path, e);
out:
	crypt_wipe(b.data, b.len);
	buf_release(&b);
	return k;
}

char *pki_key_pem(const struct pki_key *key)
{
	unsigned char pem[1024]; /* a P-256 key takes about 230 bytes */
	if (mbedtls_pk_write_key_pem((mbedtls_pk_context *)&key->pk, pem, sizeof(pem)) != 0) {
		fprintf(stderr, "dployr: pki: cannot encode a private key\n");
		abort();
	}
	char *out = xstrdup((char *)pem);
	crypt_wipe(pem, sizeof(pem));
	return out;
}

int pki_write_file(const char *path, const char *text, unsigned mode, char *err, size_t errlen)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	size_t n = strlen(text), off = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode & 07777);
	if (fd < 0) {
		snprintf(err, errlen, "write '%s': %s", path, strerror(errno));
		free(tmp);
		return -1;
	}
	/* open's mode is filtered by the umask; the file must end up exactly
	 * mode (0600 keys must not become 0644, nor the reverse). */
	if (fchmod(fd, mode & 07777) < 0)
		goto fail;
	while (off < n) {
		ssize_t w = write(fd, text + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			goto fail;
		off += (size_t)w;
	}
	if (fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	/* make the rename itself durable (a key written at init must survive
	 * a power cut); failure here is not worth failing the write for */
	char *slash = strrchr(tmp, '/');
	if (slash)
		*slash = '\0';
	int dfd = open(slash ? tmp : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	free(tmp);
	return 0;
fail:
	snprintf(err, errlen, "write '%s': %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return -1;
}

int pki_key_write_file(const struct pki_key *key, const char *path, char *err, size_t errlen)
{
	char *pem = pki_key_pem(key);
	int rc = pki_write_file(path, pem, 0600, err, errlen);
	crypt_wipe(pem, strlen(pem));
	free(pem);
	return rc;
}

/* --- names and extensions ------------------------------------------------------ */

static int cn_ok(const char *cn)
{
	size_t n = cn ? strlen(cn) : 0;
	if (n < 1 || n > 64)
		return 0;
	for (const char *p = cn; *p; p++)
		if (*p < 0x20 || *p > 0x7e || strchr(",+=\\\"<>;", *p))
			return 0;
	return 1;
}

static int dns_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 253 || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (const char *p = s; *p; p++) {
		if (*p == '*' && (p != s || p[1] != '.'))
			return 0;
		if (!(*p == '*' || *p == '.' || *p == '-' || (*p >= '0' && *p <= '9') ||
		      (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
			return 0;
	}
	return 1;
}

/* An IP literal into 4 or 16 bytes; returns the length or 0. */
static size_t ip_parse(const char *s, unsigned char out[16])
{
	if (inet_pton(AF_INET, s, out) == 1)
		return 4;
	if (inet_pton(AF_INET6, s, out) == 1)
		return 16;
	return 0;
}

static void der_len(struct buf *b, size_t n)
{
	if (n < 0x80) {
		buf_putc(b, (int)n);
	} else if (n < 0x100) {
		buf_putc(b, 0x81);
		buf_putc(b, (int)n);
	} else {
		buf_putc(b, 0x82);
		buf_putc(b, (int)(n >> 8));
		buf_putc(b, (int)(n & 255));
	}
}

static void der_tlv(struct buf *b, int tag, const void *p, size_t n)
{
	buf_putc(b, tag);
	der_len(b, n);
	buf_add(b, p, n);
}

/* GeneralNames ::= SEQUENCE OF GeneralName; dNSName [2] IA5String,
 * iPAddress [7] OCTET STRING, both IMPLICIT (RFC 5280 4.2.1.6). */
static int san_der(const struct pki_cert_opts *o, struct buf *out, char *err, size_t errlen)
{
	struct buf names = BUF_INIT;
	int rc = 0;
	for (size_t i = 0; i < o->ndns; i++) {
		if (!dns_ok(o->dns[i])) {
			snprintf(err, errlen, "certificate: invalid DNS name '%s'", o->dns[i]);
			rc = -1;
			continue;
		}
		der_tlv(&names, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2, o->dns[i], strlen(o->dns[i]));
	}
	for (size_t i = 0; i < o->nips; i++) {
		unsigned char ip[16];
		size_t n = ip_parse(o->ips[i], ip);
		if (!n) {
			snprintf(err, errlen, "certificate: invalid IP address '%s'", o->ips[i]);
			rc = -1;
			continue;
		}
		der_tlv(&names, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7, ip, n);
	}
	if (rc == 0 && names.len > 0xffff) {
		snprintf(err, errlen, "certificate: too many subject alternative names");
		rc = -1;
	}
	if (rc == 0)
		der_tlv(out, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE, names.data, names.len);
	buf_release(&names);
	return rc;
}

static void time_str(time_t t, char out[64])
{
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, 64, "%04d%02d%02d%02d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec);
}

enum cert_kind { CERT_CA, CERT_SERVER, CERT_CLIENT };

/* Sign a certificate for subject_pk. issuer_name NULL: self-signed. */
static char *issue(enum cert_kind kind, mbedtls_pk_context *subject_pk,
		   mbedtls_pk_context *issuer_pk, const char *issuer_name,
		   const struct pki_cert_opts *o, struct crypt_rng *rng, char *err, size_t errlen)
{
	static const char eku_server[] = "\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x03\x01";
	static const char eku_client[] = "\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x03\x02";
	mbedtls_x509write_cert w;
	mbedtls_mpi serial;
	struct buf san = BUF_INIT;
	unsigned char sn[16];
	char nb[64], na[64], *subject = NULL;
	unsigned char *pem = NULL;
	int rc;

	mbedtls_x509write_crt_init(&w);
	mbedtls_mpi_init(&serial);
	if (!cn_ok(o->cn)) {
		snprintf(err, errlen, "certificate: invalid common name '%s'", o->cn ? o->cn : "");
		goto fail;
	}
	if (o->not_after <= o->not_before) {
		snprintf(err, errlen, "certificate: validity ends before it starts");
		goto fail;
	}
	if (kind == CERT_SERVER) {
		if (o->ndns + o->nips == 0) {
			snprintf(err, errlen, "certificate: a server certificate needs a DNS name "
					      "or an IP address");
			goto fail;
		}
		if (san_der(o, &san, err, errlen) < 0)
			goto fail;
	}
	subject = xasprintf("CN=%s", o->cn);
	crypt_random(rng, sn, sizeof(sn));
	sn[0] &= 0x7f; /* positive, and at most 16 bytes of DER content */
	sn[0] |= 0x40; /* no leading zero byte: always 16 bytes */
	time_str(o->not_before, nb);
	time_str(o->not_after, na);

	mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&w, subject_pk);
	mbedtls_x509write_crt_set_issuer_key(&w, issuer_pk);
	if ((rc = mbedtls_mpi_read_binary(&serial, sn, sizeof(sn))) != 0 ||
	    (rc = mbedtls_x509write_crt_set_serial(&w, &serial)) != 0 ||
	    (rc = mbedtls_x509write_crt_set_subject_name(&w, subject)) != 0 ||
	    (rc = mbedtls_x509write_crt_set_issuer_name(&w, issuer_name ? issuer_name : subject)) !=
		    0 ||
	    (rc = mbedtls_x509write_crt_set_validity(&w, nb, na)) != 0 ||
	    (rc = mbedtls_x509write_crt_set_subject_key_identifier(&w)) != 0 ||
	    (rc = mbedtls_x509write_crt_set_authority_key_identifier(&w)) != 0)
		goto mbfail;
	switch (kind) {
	case CERT_CA:
		if ((rc = mbedtls_x509write_crt_set_basic_constraints(&w, 1, 0)) != 0 ||
		    (rc = mbedtls_x509write_crt_set_key_usage(
			     &w, MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN)) != 0)
			goto mbfail;
		break;
	case CERT_SERVER:
	case CERT_CLIENT:
		if ((rc = mbedtls_x509write_crt_set_basic_constraints(&w, 0, -1)) != 0 ||
		    (rc = mbedtls_x509write_crt_set_key_usage(&w, MBEDTLS_X509_KU_DIGITAL_SIGNATURE)) !=
			    0 ||
		    (rc = mbedtls_x509write_crt_set_extension(
			     &w, MBEDTLS_OID_EXTENDED_KEY_USAGE,
			     MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0,
			     (const unsigned char *)(kind == CERT_SERVER ? eku_server : eku_client),
			     sizeof(eku_server) - 1)) != 0)
			goto mbfail;
		if (kind == CERT_SERVER &&
		    (rc = mbedtls_x509write_crt_set_extension(
			     &w, MBEDTLS_OID_SUBJECT_ALT_NAME,
			     MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0,
			     (const unsigned char *)san.data, san.len)) != 0)
			goto mbfail;
		break;
	}
	pem = xmalloc(PEM_MAX);
	if ((rc = mbedtls_x509write_crt_pem(&w, pem, PEM_MAX, crypt_rng_cb, rng)) != 0)
		goto mbfail;
	goto out;
mbfail:
	mberr(err, errlen, "certificate", rc);
fail:
	free(pem);
	pem = NULL;
out:
	free(subject);
	buf_release(&san);
	mbedtls_mpi_free(&serial);
	mbedtls_x509write_crt_free(&w);
	return (char *)pem;
}

char *pki_ca_create(const struct pki_key *ca_key, const struct pki_cert_opts *o,
		    struct crypt_rng *rng, char *err, size_t errlen)
{
	mbedtls_pk_context *pk = (mbedtls_pk_context *)&ca_key->pk;
	return issue(CERT_CA, pk, pk, NULL, o, rng, err, errlen);
}

static int parse_crt(mbedtls_x509_crt *crt, const char *pem, const char *what, char *err,
		     size_t errlen)
{
	int rc = mbedtls_x509_crt_parse(crt, (const unsigned char *)pem, strlen(pem) + 1);
	if (rc != 0) {
		mberr(err, errlen, what, rc);
		return -1;
	}
	return 0;
}

/* The CA's subject as a string for mbedtls_x509write_crt_set_issuer_name. */
static char *ca_name(const char *ca_pem, const struct pki_key *ca_key, char *err, size_t errlen)
{
	mbedtls_x509_crt ca;
	char name[512], *out = NULL;
	mbedtls_x509_crt_init(&ca);
	if (parse_crt(&ca, ca_pem, "parse CA certificate", err, errlen) < 0)
		goto out;
	if (!ca.ca_istrue) {
		snprintf(err, errlen, "parse CA certificate: not a CA (basicConstraints)");
		goto out;
	}
	if (mbedtls_pk_check_pair(&ca.pk, &ca_key->pk) != 0) {
		snprintf(err, errlen, "CA key does not match the CA certificate");
		goto out;
	}
	if (mbedtls_x509_dn_gets(name, sizeof(name), &ca.subject) < 0) {
		snprintf(err, errlen, "parse CA certificate: subject too long");
		goto out;
	}
	out = xstrdup(name);
out:
	mbedtls_x509_crt_free(&ca);
	return out;
}

char *pki_server_cert(const char *ca_pem, const struct pki_key *ca_key, const struct pki_key *key,
		      const struct pki_cert_opts *o, struct crypt_rng *rng, char *err,
		      size_t errlen)
{
	char *issuer = ca_name(ca_pem, ca_key, err, errlen), *pem;
	if (!issuer)
		return NULL;
	pem = issue(CERT_SERVER, (mbedtls_pk_context *)&key->pk, (mbedtls_pk_context *)&ca_key->pk,
		    issuer, o, rng, err, errlen);
	free(issuer);
	return pem;
}

char *pki_csr_create(const struct pki_key *key, const char *cn, struct crypt_rng *rng, char *err,
		     size_t errlen)
{
	mbedtls_x509write_csr w;
	unsigned char *pem = NULL;
	char *subject;
	int rc;
	if (!cn_ok(cn)) {
		snprintf(err, errlen, "CSR: invalid common name '%s'", cn ? cn : "");
		return NULL;
	}
	subject = xasprintf("CN=%s", cn);
	mbedtls_x509write_csr_init(&w);
	mbedtls_x509write_csr_set_md_alg(&w, MBEDTLS_MD_SHA256);
	mbedtls_x509write_csr_set_key(&w, (mbedtls_pk_context *)&key->pk);
	pem = xmalloc(4096);
	if ((rc = mbedtls_x509write_csr_set_subject_name(&w, subject)) != 0 ||
	    (rc = mbedtls_x509write_csr_pem(&w, pem, 4096, crypt_rng_cb, rng)) != 0) {
		mberr(err, errlen, "CSR", rc);
		free(pem);
		pem = NULL;
	}
	mbedtls_x509write_csr_free(&w);
	free(subject);
	return (char *)pem;
}

char *pki_csr_sign(const char *ca_pem, const struct pki_key *ca_key, const char *csr_pem,
		   const struct pki_cert_opts *o, struct crypt_rng *rng, char *err, size_t errlen)
{
	mbedtls_x509_csr csr;
	unsigned char hash[MBEDTLS_MD_MAX_SIZE];
	char *issuer = NULL, *pem = NULL;
	int rc;

	mbedtls_x509_csr_init(&csr);
	if ((rc = mbedtls_x509_csr_parse(&csr, (const unsigned char *)csr_pem,
					 strlen(csr_pem) + 1)) != 0) {
		mberr(err, errlen, "parse CSR", rc);
		goto out;
	}
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(csr.sig_md);
	if (!md || mbedtls_md(md, csr.cri.p, csr.cri.len, hash) != 0 ||
	    mbedtls_pk_verify_ext(csr.sig_pk, csr.sig_opts, &csr.pk, csr.sig_md, hash,
				  mbedtls_md_get_size(md), csr.sig.p, csr.sig.len) != 0) {
		snprintf(err, errlen, "parse CSR: signature does not verify");
		goto out;
	}
	if (!is_p256(&csr.pk)) {
		snprintf(err, errlen, "parse CSR: key is not P-256 (secp256r1)");
		goto out;
	}
	if (!(issuer = ca_name(ca_pem, ca_key, err, errlen)))
		goto out;
	struct pki_cert_opts co = *o;
	co.dns = co.ips = NULL;
	co.ndns = co.nips = 0;
	pem = issue(CERT_CLIENT, &csr.pk, (mbedtls_pk_context *)&ca_key->pk, issuer, &co, rng, err,
		    errlen);
out:
	free(issuer);
	mbedtls_x509_csr_free(&csr);
	return pem;
}

/* --- reading and checking ---------------------------------------------------- */

int pki_cert_fingerprint(const char *pem, char out[PKI_FINGERPRINT_LEN + 1], char *err,
			 size_t errlen)
{
	mbedtls_x509_crt crt;
	mbedtls_x509_crt_init(&crt);
	int rc = parse_crt(&crt, pem, "parse certificate", err, errlen);
	if (rc == 0) {
		memcpy(out, "sha256:", 7);
		crypt_sha256_hex(crt.raw.p, crt.raw.len, out + 7);
	}
	mbedtls_x509_crt_free(&crt);
	return rc;
}

static void name_cn(const mbedtls_x509_name *n, char out[65])
{
	out[0] = '\0';
	for (; n; n = n->next) {
		if (n->oid.p && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0) {
			size_t len = n->val.len < 64 ? n->val.len : 64;
			for (size_t i = 0; i < len; i++) {
				unsigned char c = n->val.p[i];
				out[i] = c < 0x20 || c > 0x7e ? '?' : (char)c;
			}
			out[len] = '\0';
			return;
		}
	}
}

static time_t x509_time(const mbedtls_x509_time *t)
{
	struct tm tm = { 0 };
	tm.tm_year = t->year - 1900;
	tm.tm_mon = t->mon - 1;
	tm.tm_mday = t->day;
	tm.tm_hour = t->hour;
	tm.tm_min = t->min;
	tm.tm_sec = t->sec;
	return timegm(&tm);
}

static void crt_info(const mbedtls_x509_crt *crt, struct pki_cert_info *info)
{
	memset(info, 0, sizeof(*info));
	name_cn(&crt->subject, info->cn);
	name_cn(&crt->issuer, info->issuer_cn);
	const unsigned char *s = crt->serial.p;
	size_t n = crt->serial.len;
	while (n > 1 && *s == 0) {
		s++;
		n--;
	}
	if (n > 20)
		n = 20;
	for (size_t i = 0; i < n; i++)
		snprintf(info->serial + 2 * i, 3, "%02x", s[i]);
	info->not_before = x509_time(&crt->valid_from);
	info->not_after = x509_time(&crt->valid_to);
	info->is_ca = crt->ca_istrue;
}

int pki_cert_info(const char *pem, struct pki_cert_info *info, char *err, size_t errlen)
{
	mbedtls_x509_crt crt;
	memset(info, 0, sizeof(*info));
	mbedtls_x509_crt_init(&crt);
	int rc = parse_crt(&crt, pem, "parse certificate", err, errlen);
	if (rc == 0)
		crt_info(&crt, info);
	mbedtls_x509_crt_free(&crt);
	return rc;
}

int pki_der_info(const void *der, size_t n, struct pki_cert_info *info)
{
	mbedtls_x509_crt crt;
	memset(info, 0, sizeof(*info));
	mbedtls_x509_crt_init(&crt);
	int rc = mbedtls_x509_crt_parse_der(&crt, der, n) == 0 ? 0 : -1;
	if (rc == 0)
		crt_info(&crt, info);
	mbedtls_x509_crt_free(&crt);
	return rc;
}

/* RFC 6125 matching, simplified: a dNSName equal to name (ASCII case
 * folded), or "*.rest" matching exactly one leftmost label; an IP literal
 * only against iPAddress entries. mbedTLS 2.28 matches dNSName only. */
static int crt_matches_name(const mbedtls_x509_crt *crt, const char *name)
{
	unsigned char ip[16];
	size_t iplen = ip_parse(name, ip), n = strlen(name);
	for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s && s->buf.p; s = s->next) {
		int tag = s->buf.tag & ~(MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED);
		const char *v = (const char *)s->buf.p;
		size_t len = s->buf.len;
		if (iplen) {
			if (tag == 7 && len == iplen && memcmp(v, ip, iplen) == 0)
				return 1;
			continue;
		}
		if (tag != 2)
			continue;
		if (len == n && strncasecmp(v, name, n) == 0)
			return 1;
		const char *dot = strchr(name, '.');
		if (len > 2 && v[0] == '*' && v[1] == '.' && dot && dot != name &&
		    (size_t)(name + n - dot) == len - 1 && strncasecmp(v + 1, dot, len - 1) == 0)
			return 1;
	}
	return 0;
}

int pki_cert_verify(const char *ca_pem, const char *cert_pem, const char *name, char *err,
		    size_t errlen)
{
	mbedtls_x509_crt ca, crt;
	uint32_t flags = 0;
	int rc = -1;
	mbedtls_x509_crt_init(&ca);
	mbedtls_x509_crt_init(&crt);
	if (parse_crt(&ca, ca_pem, "parse CA certificate", err, errlen) < 0 ||
	    parse_crt(&crt, cert_pem, "parse certificate", err, errlen) < 0)
		goto out;
	int vrc = mbedtls_x509_crt_verify(&crt, &ca, NULL, NULL, &flags, NULL, NULL);
	int name_ok = !name || crt_matches_name(&crt, name);
	if (vrc == 0 && name_ok) {
		rc = 0;
		goto out;
	}
	struct buf b = BUF_INIT;
	buf_puts(&b, "verify certificate:");
	if (vrc != 0) {
		char info[512];
		if (flags == 0) {
			mbedtls_strerror(vrc, info, sizeof(info));
		} else {
			mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags);
		}
		/* one problem per line -> "a; b" */
		char *p = info, *nl;
		const char *sep = " ";
		while (*p) {
			if ((nl = strchr(p, '\n')))
				*nl = '\0';
			*p = (char)tolower((unsigned char)*p);
			buf_printf(&b, "%s%s", sep, p);
			sep = "; ";
			if (!nl)
				break;
			p = nl + 1;
		}
		sep = "; ";
		if (!name_ok)
			buf_printf(&b, "%snot valid for '%s'", sep, name);
	} else {
		buf_printf(&b, " not valid for '%s'", name);
	}
	snprintf(err, errlen, "%s", b.data);
	buf_release(&b);
out:
	mbedtls_x509_crt_free(&ca);
	mbedtls_x509_crt_free(&crt);
	return rc;
}

int pki_der_matches_name(const void *der, size_t n, const char *name)
{
	mbedtls_x509_crt crt;
	mbedtls_x509_crt_init(&crt);
	int ok = mbedtls_x509_crt_parse_der(&crt, der, n) == 0 && crt_matches_name(&crt, name);
	mbedtls_x509_crt_free(&crt);
	return ok;
}
