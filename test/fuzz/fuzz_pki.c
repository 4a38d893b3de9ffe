/* Fuzz pki's readers on hostile input: a certificate as DER (info and
 * the subjectAltName matcher, which walks raw GeneralNames) and as PEM,
 * a private key and a CSR as PEM. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pki_cert_info info;
	char err[300], fp[PKI_FINGERPRINT_LEN + 1];
	if (pki_der_info(data, size, &info) == 0) {
		if (strlen(info.cn) > 64 || strlen(info.serial) > 40)
			abort();
	}
	pki_der_matches_name(data, size, "localhost");
	pki_der_matches_name(data, size, "a.example.com");
	pki_der_matches_name(data, size, "127.0.0.1");
	pki_der_matches_name(data, size, "::1");

	char *pem = strndup((const char *)data, size);
	if (pki_cert_info(pem, &info, err, sizeof(err)) == 0 &&
	    pki_cert_fingerprint(pem, fp, err, sizeof(err)) != 0)
		abort();
	pki_key_free(pki_key_load_pem(pem, err, sizeof(err)));
	free(pem);
	return 0;
}
