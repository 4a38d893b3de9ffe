#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "crypt.h"
#include "mbedtls/error.h"
#include "mbedtls/net_sockets.h"
#include "mbedtls/pk.h"
#include "mbedtls/ssl.h"
#include "mbedtls/x509_crt.h"
#include "pki.h"
#include "xalloc.h"

/* The policy (DESIGN.md section 3). Static: mbedTLS keeps the pointers. */
static const int suites[] = {
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	0,
};
static const mbedtls_ecp_group_id curves[] = { MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_NONE };
static const int sig_hashes[] = { MBEDTLS_MD_SHA256, MBEDTLS_MD_SHA384, MBEDTLS_MD_SHA512,
				  MBEDTLS_MD_NONE };
static const mbedtls_x509_crt_profile profile = {
	.allowed_mds = MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA256) |
		       MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA384) |
		       MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA512),
	.allowed_pks = MBEDTLS_X509_ID_FLAG(MBEDTLS_PK_ECKEY) |
		       MBEDTLS_X509_ID_FLAG(MBEDTLS_PK_ECDSA),
	.allowed_curves = MBEDTLS_X509_ID_FLAG(MBEDTLS_ECP_DP_SECP256R1),
	.rsa_min_bitlen = 0xffffffff, /* no RSA at all */
};

struct tls_config {
	int refs;
	int is_server;
	mbedtls_ssl_config conf;
	mbedtls_x509_crt ca, cert;
	mbedtls_pk_context key;
	struct crypt_rng *rng;
};

struct tls_conn {
	struct tls_config *cfg;
	mbedtls_ssl_context ssl;
	int fd;
	int done;	/* handshake complete */
	int sys_errno;	/* errno of a failed send/recv */
	char *name;	/* client: expected server name */
	char *peer_cn;	/* set from the leaf during verification */
	char *peer_serial;
	char err[256];
};

static void fmt_err(char *err, size_t errlen, const char *what, int rc)
{
	char m[160];
	mbedtls_strerror(rc, m, sizeof(m));
	snprintf(err, errlen, "%s: %s", what, m);
}

/* --- configuration -------------------------------------------------------- */

struct tls_config *tls_config_ref(struct tls_config *cfg)
{
	cfg->refs++;
	return cfg;
}

void tls_config_free(struct tls_config *cfg)
{
	if (!cfg || --cfg->refs > 0)
		return;
	mbedtls_ssl_config_free(&cfg->conf);
	mbedtls_x509_crt_free(&cfg->ca);
	mbedtls_x509_crt_free(&cfg->cert);
	mbedtls_pk_free(&cfg->key);
	crypt_rng_free(cfg->rng);
	free(cfg);
}

static int parse_pem_crt(mbedtls_x509_crt *crt, const char *pem, const char *what, char *err,
			 size_t errlen)
{
	int rc = mbedtls_x509_crt_parse(crt, (const unsigned char *)pem, strlen(pem) + 1);
	if (rc != 0) {
		fmt_err(err, errlen, what, rc);
		return -1;
	}
	return 0;
}

static struct tls_config *config_new(int endpoint, const char *ca_pem, const char *cert_pem,
				     const char *key_pem, int authmode, char *err, size_t errlen)
{
	struct tls_config *cfg = xcalloc(1, sizeof(*cfg));
	int rc;
	cfg->refs = 1;
	cfg->is_server = endpoint == MBEDTLS_SSL_IS_SERVER;
	mbedtls_ssl_config_init(&cfg->conf);
	mbedtls_x509_crt_init(&cfg->ca);
	mbedtls_x509_crt_init(&cfg->cert);
	mbedtls_pk_init(&cfg->key);
	cfg->rng = crypt_rng_new();

	if (!cert_pem != !key_pem) {
		snprintf(err, errlen, "tls config: a certificate needs its key and a key its "
				      "certificate");
		goto fail;
	}
	if (ca_pem && parse_pem_crt(&cfg->ca, ca_pem, "tls config: CA certificate", err, errlen) < 0)
		goto fail;
	if (cert_pem) {
		if (parse_pem_crt(&cfg->cert, cert_pem, "tls config: certificate", err, errlen) < 0)
			goto fail;
		if ((rc = mbedtls_pk_parse_key(&cfg->key, (const unsigned char *)key_pem,
					       strlen(key_pem) + 1, NULL, 0)) != 0) {
			fmt_err(err, errlen, "tls config: private key", rc);
			goto fail;
		}
		if (mbedtls_pk_check_pair(&cfg->cert.pk, &cfg->key) != 0) {
			snprintf(err, errlen, "tls config: the key does not match the certificate");
			goto fail;
		}
	}
	if ((rc = mbedtls_ssl_config_defaults(&cfg->conf, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
					      MBEDTLS_SSL_PRESET_DEFAULT)) != 0) {
		fmt_err(err, errlen, "tls config", rc);
		goto fail;
	}
	mbedtls_ssl_conf_min_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
				     MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_max_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
				     MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_ciphersuites(&cfg->conf, suites);
	mbedtls_ssl_conf_curves(&cfg->conf, curves);
	mbedtls_ssl_conf_sig_hashes(&cfg->conf, sig_hashes);
	mbedtls_ssl_conf_cert_profile(&cfg->conf, &profile);
	mbedtls_ssl_conf_renegotiation(&cfg->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
	mbedtls_ssl_conf_session_tickets(&cfg->conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
	mbedtls_ssl_conf_rng(&cfg->conf, crypt_rng_cb, cfg->rng);
	mbedtls_ssl_conf_authmode(&cfg->conf, authmode);
	if (ca_pem)
		mbedtls_ssl_conf_ca_chain(&cfg->conf, &cfg->ca, NULL);
	if (cert_pem && (rc = mbedtls_ssl_conf_own_cert(&cfg->conf, &cfg->cert, &cfg->key)) != 0) {
		fmt_err(err, errlen, "tls config", rc);
		goto fail;
	}
	return cfg;
fail:
	tls_config_free(cfg);
	return NULL;
}

struct tls_config *tls_config_new_server(const char *ca_pem, const char *cert_pem,
					 const char *key_pem, int require_client_cert, char *err,
					 size_t errlen)
{
	if (!cert_pem || !key_pem) {
		snprintf(err, errlen, "tls config: a server needs a certificate and a key");
		return NULL;
	}
	if (require_client_cert && !ca_pem) {
		snprintf(err, errlen, "tls config: verifying clients needs a CA certificate");
		return NULL;
	}
	return config_new(MBEDTLS_SSL_IS_SERVER, ca_pem, cert_pem, key_pem,
			  require_client_cert ? MBEDTLS_SSL_VERIFY_REQUIRED : MBEDTLS_SSL_VERIFY_NONE,
			  err, errlen);
}

struct tls_config *tls_config_new_client(const char *ca_pem, const char *cert_pem,
					 const char *key_pem, char *err, size_t errlen)
{
	if (!ca_pem) {
		snprintf(err, errlen, "tls config: a client needs the CA certificate");
		return NULL;
	}
	return config_new(MBEDTLS_SSL_IS_CLIENT, ca_pem, cert_pem, key_pem,
			  MBEDTLS_SSL_VERIFY_REQUIRED, err, errlen);
}

struct tls_config *tls_config_new_client_insecure(char *err, size_t errlen)
{
	return config_new(MBEDTLS_SSL_IS_CLIENT, NULL, NULL, NULL, MBEDTLS_SSL_VERIFY_NONE, err,
			  errlen);
}

/* --- connections ------------------------------------------------------------ */

static int bio_send(void *arg, const unsigned char *p, size_t n)
{
	struct tls_conn *c = arg;
	ssize_t r = send(c->fd, p, n, MSG_NOSIGNAL);
	if (r < 0 && errno == ENOTSOCK)
		r = write(c->fd, p, n);
	if (r >= 0)
		return (int)r;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	c->sys_errno = errno;
	return errno == EPIPE || errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET
						     : MBEDTLS_ERR_NET_SEND_FAILED;
}

static int bio_recv(void *arg, unsigned char *p, size_t n)
{
	struct tls_conn *c = arg;
	ssize_t r = read(c->fd, p, n);
	if (r >= 0)
		return (int)r;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return MBEDTLS_ERR_SSL_WANT_READ;
	c->sys_errno = errno;
	return errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET : MBEDTLS_ERR_NET_RECV_FAILED;
}

/* Called for each certificate of the peer's chain, root first; depth 0 is
 * the peer's own. mbedTLS has already set flags for chain problems. */
static int verify_cb(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
	struct tls_conn *c = arg;
	if (depth != 0)
		return 0;
	if (c->name && !pki_der_matches_name(crt->raw.p, crt->raw.len, c->name))
		*flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
	struct pki_cert_info info;
	free(c->peer_cn);
	free(c->peer_serial);
	c->peer_cn = c->peer_serial = NULL;
	if (pki_der_info(crt->raw.p, crt->raw.len, &info) == 0) {
		c->peer_cn = xstrdup(info.cn);
		c->peer_serial = xstrdup(info.serial);
	}
	return 0;
}

struct tls_conn *tls_conn_new(struct tls_config *cfg, int fd)
{
	struct tls_conn *c = xcalloc(1, sizeof(*c));
	int rc;
	c->cfg = cfg;
	cfg->refs++;
	c->fd = fd;
	mbedtls_ssl_init(&c->ssl);
	if ((rc = mbedtls_ssl_setup(&c->ssl, &cfg->conf)) != 0) {
		/* only fails to allocate its buffers */
		fprintf(stderr, "dployr: tls: out of memory (mbedtls -0x%04x)\n", (unsigned)-rc);
		abort();
	}
	mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
	mbedtls_ssl_set_verify(&c->ssl, verify_cb, c);
	return c;
}

int tls_conn_set_server_name(struct tls_conn *c, const char *name)
{
	struct in_addr ip4;
	free(c->name);
	c->name = xstrdup(name);
	/* SNI carries DNS names only (RFC 6066 section 3). mbedTLS also checks
	 * a name set here, but on dNSName entries only: IPs are ours alone. */
	if (strchr(name, ':') || inet_pton(AF_INET, name, &ip4) == 1)
		return 0;
	return mbedtls_ssl_set_hostname(&c->ssl, name) == 0 ? 0 : -1;
}

void tls_conn_free(struct tls_conn *c)
{
	if (!c)
		return;
	mbedtls_ssl_free(&c->ssl);
	tls_config_free(c->cfg);
	free(c->name);
	free(c->peer_cn);
	free(c->peer_serial);
	free(c);
}

/* Map an mbedTLS result; records the reason for TLS_ERROR. */
static int result(struct tls_conn *c, int rc, const char *what)
{
	uint32_t flags;
	if (rc == MBEDTLS_ERR_SSL_WANT_READ)
		return TLS_WANT_READ;
	if (rc == MBEDTLS_ERR_SSL_WANT_WRITE)
		return TLS_WANT_WRITE;
	if (rc == MBEDTLS_ERR_SSL_CONN_EOF) {
		snprintf(c->err, sizeof(c->err), "%s: connection closed by peer", what);
	} else if (rc == MBEDTLS_ERR_NET_SEND_FAILED || rc == MBEDTLS_ERR_NET_RECV_FAILED ||
		   rc == MBEDTLS_ERR_NET_CONN_RESET) {
		snprintf(c->err, sizeof(c->err), "%s: %s", what,
			 strerror(c->sys_errno ? c->sys_errno : ECONNRESET));
	} else if ((rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED ||
		    rc == MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE) &&
		   (flags = mbedtls_ssl_get_verify_result(&c->ssl)) != 0 && flags != UINT32_MAX) {
		/* BAD_HS_CERTIFICATE with flags: the key usage did not match */
		char info[400] = "", *save = NULL;
		struct buf b = BUF_INIT;
		if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH && c->name) {
			flags &= ~(uint32_t)MBEDTLS_X509_BADCERT_CN_MISMATCH;
			buf_printf(&b, "not valid for '%s'", c->name);
		}
		if (flags)
			mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags);
		/* one problem per line -> "a; b", lowercased */
		for (char *l = strtok_r(info, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
			if (l[0] >= 'A' && l[0] <= 'Z' && l[1] >= 'a' && l[1] <= 'z')
				l[0] = (char)(l[0] - 'A' + 'a');
			buf_printf(&b, "%s%s", b.len ? "; " : "", l);
		}
		snprintf(c->err, sizeof(c->err), "%s: peer certificate rejected: %s", what, b.data);
		buf_release(&b);
	} else {
		fmt_err(c->err, sizeof(c->err), what, rc);
	}
	return TLS_ERROR;
}

enum tls_result tls_handshake(struct tls_conn *c)
{
	if (c->done)
		return TLS_OK;
	int rc = mbedtls_ssl_handshake(&c->ssl);
	if (rc == 0) {
		c->done = 1;
		return TLS_OK;
	}
	return (enum tls_result)result(c, rc, "tls handshake");
}

ssize_t tls_read(struct tls_conn *c, void *p, size_t n)
{
	int rc = mbedtls_ssl_read(&c->ssl, p, n);
	if (rc >= 0 && !(rc == 0 && n > 0))
		return rc;
	if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
		return 0;
	if (rc == 0)
		rc = MBEDTLS_ERR_SSL_CONN_EOF;
	return result(c, rc, "tls read");
}

ssize_t tls_write(struct tls_conn *c, const void *p, size_t n)
{
	int rc = mbedtls_ssl_write(&c->ssl, p, n);
	if (rc >= 0)
		return rc;
	return result(c, rc, "tls write");
}

size_t tls_pending(const struct tls_conn *c)
{
	size_t n = mbedtls_ssl_get_bytes_avail(&c->ssl);
	if (n == 0 && mbedtls_ssl_check_pending(&c->ssl))
		n = 1;
	return n;
}

enum tls_result tls_close_notify(struct tls_conn *c)
{
	int rc = mbedtls_ssl_close_notify(&c->ssl);
	return rc == 0 ? TLS_OK : (enum tls_result)result(c, rc, "tls close");
}

const char *tls_peer_cn(const struct tls_conn *c)
{
	return c->done ? c->peer_cn : NULL;
}

const char *tls_peer_serial(const struct tls_conn *c)
{
	return c->done ? c->peer_serial : NULL;
}

const char *tls_ciphersuite(const struct tls_conn *c)
{
	return c->done ? mbedtls_ssl_get_ciphersuite(&c->ssl) : NULL;
}

const char *tls_error(const struct tls_conn *c)
{
	return c->err;
}
