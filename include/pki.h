/* pki: P-256 keys, the cluster CA, server and client certificates, CSRs.
 *
 * The only module that includes libmbedx509 (and mbedTLS's pk layer); no
 * mbedTLS type or error code appears here. Certificates, CSRs and keys
 * cross this interface as PEM text (NUL-terminated strings), which is what
 * the data directory stores and tls_config_new_*() takes.
 *
 * Certificates are X.509 v3, signed ECDSA-with-SHA256 by a P-256 key:
 *   CA      basicConstraints CA:true, pathlen 0 (critical); keyUsage
 *           keyCertSign, cRLSign; self-signed.
 *   server  keyUsage digitalSignature; extendedKeyUsage serverAuth;
 *           subjectAltName with the given DNS names and IP addresses.
 *   client  keyUsage digitalSignature; extendedKeyUsage clientAuth; subject
 *           CN chosen by the signer (the instance id), never the CSR's.
 * All carry a random 16-byte serial (positive) and subject/authority key
 * identifiers.
 *
 * Functions that fail return -1 or NULL and write a reason to err.
 */
#ifndef DPLOYR_PKI_H
#define DPLOYR_PKI_H

#include <stddef.h>
#include <time.h>

#include "crypt.h"

/* --- keys --------------------------------------------------------------- */

struct pki_key; /* a P-256 (secp256r1) private key */

struct pki_key *pki_key_generate(struct crypt_rng *rng);
/* Parse a PEM private key (SEC1 "EC PRIVATE KEY" or PKCS#8); only P-256
 * keys are accepted. */
struct pki_key *pki_key_load_pem(const char *pem, char *err, size_t errlen);
struct pki_key *pki_key_load_file(const char *path, char *err, size_t errlen);
void pki_key_free(struct pki_key *key);
/* The private key as PEM (SEC1). The caller frees it, after crypt_wipe(). */
char *pki_key_pem(const struct pki_key *key);
/* Write the private key as PEM to path, mode 0600, atomically (a temporary
 * file in the same directory, fsync, rename, fsync of the directory). */
int pki_key_write_file(const struct pki_key *key, const char *path, char *err, size_t errlen);
/* Write any text (a certificate) to path atomically with the given mode. */
int pki_write_file(const char *path, const char *text, unsigned mode, char *err, size_t errlen);

/* --- issuing ----------------------------------------------------------------- */

/* Filled in by the caller; only cn and the validity are required. */
struct pki_cert_opts {
	const char *cn; /* subject common name: 1 to 64 printable ASCII
			   characters, none of , + = \ " < > ; */
	time_t not_before, not_after;
	const char *const *dns; /* server certificates: DNS names */
	size_t ndns;
	const char *const *ips; /* server certificates: IPv4/IPv6 literals */
	size_t nips;
};

/* A self-signed CA certificate for ca_key. Returns PEM; caller frees. */
char *pki_ca_create(const struct pki_key *ca_key, const struct pki_cert_opts *o,
		    struct crypt_rng *rng, char *err, size_t errlen);
/* A server certificate for key's public half, signed by the CA. At least
 * one DNS name or IP address is required. Returns PEM; caller frees. */
char *pki_server_cert(const char *ca_pem, const struct pki_key *ca_key, const struct pki_key *key,
		      const struct pki_cert_opts *o, struct crypt_rng *rng, char *err,
		      size_t errlen);
/* A CSR for key (subject CN = cn, a placeholder: the signer decides the
 * identity). Returns PEM; caller frees. */
char *pki_csr_create(const struct pki_key *key, const char *cn, struct crypt_rng *rng, char *err,
		     size_t errlen);
/* Check a CSR's self-signature (proof that the requester holds the key)
 * and that its key is P-256, then issue a client certificate for that key
 * with subject CN o->cn (the CSR's subject is ignored). o->dns and o->ips
 * are ignored. Returns PEM; caller frees. */
char *pki_csr_sign(const char *ca_pem, const struct pki_key *ca_key, const char *csr_pem,
		   const struct pki_cert_opts *o, struct crypt_rng *rng, char *err, size_t errlen);

/* --- reading and checking ---------------------------------------------------- */

/* "sha256:" + 64 lowercase hex digits of the SHA-256 of the certificate's
 * DER: the CA pin an agent is given at join. */
#define PKI_FINGERPRINT_LEN (7 + 64)
int pki_cert_fingerprint(const char *pem, char out[PKI_FINGERPRINT_LEN + 1], char *err,
			 size_t errlen);

struct pki_cert_info {
	char cn[65];	    /* subject CN ("" when there is none) */
	char issuer_cn[65]; /* issuer CN */
	char serial[41];    /* lowercase hex, leading zero bytes dropped */
	time_t not_before, not_after;
	int is_ca;
};
/* Parse the first certificate in pem. */
int pki_cert_info(const char *pem, struct pki_cert_info *info, char *err, size_t errlen);

/* The same for one DER certificate (tls.c hands over the peer's); -1 when
 * it does not parse. */
int pki_der_info(const void *der, size_t n, struct pki_cert_info *info);
/* 1 when the DER certificate's subjectAltName covers name: a DNS name
 * (ASCII case-insensitive, a leading "*." label matches one label) or an
 * IP address literal (iPAddress entries only; mbedTLS 2.28 itself matches
 * dNSName entries only). Else 0, also when it does not parse. */
int pki_der_matches_name(const void *der, size_t n, const char *name);

/* Verify cert_pem's chain to ca_pem (signature, validity period now,
 * CA flags) and, when name is not NULL, that the certificate is for that
 * DNS name or IP address. err lists every problem found. */
int pki_cert_verify(const char *ca_pem, const char *cert_pem, const char *name, char *err,
		    size_t errlen);

#endif
