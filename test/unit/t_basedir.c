#include "basedir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth.h"
#include "harness.h"

static int mode_of(const char *p)
{
	struct stat sb;
	if (stat(p, &sb) < 0)
		return -1;
	return (int)(sb.st_mode & 07777);
}

TEST(basedir_init_creates_everything_once)
{
	char err[512], fp[PKI_FINGERPRINT_LEN + 1], *tok = NULL;
	struct crypt_rng *rng = crypt_rng_new();
	const char *sans[] = {"base.example", "10.1.2.3"};
	CHECK_INT(basedir_init("d", "base", sans, 2, rng, fp, &tok, err, sizeof err), 0);
	CHECK(strncmp(fp, "sha256:", 7) == 0);
	CHECK(tok && strncmp(tok, "dpy_", 4) == 0);
	CHECK_INT(mode_of("d"), 0700);
	CHECK_INT(mode_of("d/ca.key"), 0600);
	CHECK_INT(mode_of("d/server.key"), 0600);
	CHECK_INT(mode_of("d/master.key"), 0600);
	CHECK(mode_of("d/ca.crt") >= 0 && mode_of("d/server.crt") >= 0);
	char *again = NULL;
	CHECK_INT(basedir_init("d", "base", NULL, 0, rng, fp, &again, err, sizeof err), -1);
	CHECK(strstr(err, "already initialised") != NULL);
	CHECK(again == NULL);

	struct basedir *d = basedir_open("d", err, sizeof err);
	CHECK(d);
	char got[PKI_FINGERPRINT_LEN + 1];
	CHECK_INT(pki_cert_fingerprint(d->ca_pem, got, err, sizeof err), 0);
	CHECK_STR(got, fp);
	/* the server certificate covers the name, the defaults and the SANs */
	const char *names[] = {"base", "localhost", "127.0.0.1", "::1", "base.example", "10.1.2.3"};
	for (size_t i = 0; i < 6; i++)
		CHECK_INT(pki_cert_verify(d->ca_pem, d->server_pem, names[i], err, sizeof err), 0);
	CHECK_INT(pki_cert_verify(d->ca_pem, d->server_pem, "other", err, sizeof err), -1);
	/* the owner token is stored (as its hash) and works */
	char hdr[128], user[64];
	enum auth_role role;
	snprintf(hdr, sizeof hdr, "Bearer %s", tok);
	struct store_txn *t = store_txn_begin(d->store, 1);
	CHECK_INT(auth_check_bearer(t, hdr, user, sizeof user, &role), 0);
	store_txn_abort(t);
	CHECK_INT(role, AUTH_OWNER);
	basedir_free(d);
	free(tok);
	crypt_rng_free(rng);
}

TEST(basedir_open_refuses_missing_open_or_foreign_files)
{
	char err[512], fp[PKI_FINGERPRINT_LEN + 1], *tok = NULL;
	struct crypt_rng *rng = crypt_rng_new();
	CHECK(basedir_open("nowhere", err, sizeof err) == NULL);
	CHECK(strstr(err, "nowhere") != NULL);
	CHECK_INT(basedir_init("d", "base", NULL, 0, rng, fp, &tok, err, sizeof err), 0);
	free(tok);
	CHECK_INT(basedir_init("e", "base", NULL, 0, rng, fp, &tok, err, sizeof err), 0);
	free(tok);
	/* a key readable by others */
	CHECK_INT(chmod("d/server.key", 0644), 0);
	CHECK(basedir_open("d", err, sizeof err) == NULL);
	CHECK(strstr(err, "server.key: mode 0644 is too open") != NULL);
	CHECK_INT(chmod("d/server.key", 0600), 0);
	/* a server certificate of another CA */
	CHECK_INT(rename("e/server.crt", "d/server.crt"), 0);
	CHECK(basedir_open("d", err, sizeof err) == NULL);
	CHECK(strstr(err, "server.crt") != NULL);
	crypt_rng_free(rng);
}
