#include "basedir.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "buf.h"
#include "deploys.h"
#include "fleet.h"
#include "queue.h"
#include "secrets.h"
#include "svcstatus.h"
#include "xalloc.h"

static const char *const dbnames[] = {FLEET_DBS,   QUEUE_DBS,	  AUTH_DBS, DEPLOYS_DBS,
				      SECRETS_DBS, SVCSTATUS_DBS, "meta",   NULL};

static char *join(const char *dir, const char *name)
{
	struct buf b = BUF_INIT;
	buf_printf(&b, "%s/%s", dir, name);
	return buf_detach(&b, NULL);
}

/* 1 when dir exists and holds anything, 0 when missing or empty, -1. */
static int dir_nonempty(const char *path, char *err, size_t errlen)
{
	DIR *d = opendir(path);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "data directory '%s': %s", path, strerror(errno));
		return -1;
	}
	struct dirent *e;
	int found = 0;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			found = 1;
	closedir(d);
	return found;
}

static int write_secret(const char *path, const void *p, size_t n, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "write '%s': %s", path, strerror(errno));
		return -1;
	}
	ssize_t w = write(fd, p, n);
	int rc = (w == (ssize_t)n && fsync(fd) == 0) ? 0 : -1;
	if (rc < 0)
		snprintf(err, errlen, "write '%s': %s", path, strerror(errno));
	close(fd);
	return rc;
}

static int is_ip(const char *s)
{
	unsigned char tmp[16];
	return inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1;
}

int basedir_init(const char *path, const char *name, const char *const *sans, size_t nsans,
		 struct crypt_rng *rng, char fingerprint[PKI_FINGERPRINT_LEN + 1],
		 char **owner_token, char *err, size_t errlen)
{
	struct pki_key *ca_key = NULL, *srv_key = NULL;
	char *ca_pem = NULL, *srv_pem = NULL, *p = NULL;
	const char **dns = NULL, **ips = NULL;
	struct store *st = NULL;
	size_t ndns = 0, nips = 0;
	int rc = -1;
	*owner_token = NULL;

	int ne = dir_nonempty(path, err, errlen);
	if (ne < 0)
		return -1;
	if (ne) {
		snprintf(err, errlen, "data directory '%s' is already initialised (or not empty)",
			 path);
		return -1;
	}
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "create '%s': %s", path, strerror(errno));
		return -1;
	}
	if (chmod(path, 0700) < 0) {
		snprintf(err, errlen, "chmod '%s': %s", path, strerror(errno));
		return -1;
	}

	time_t now = time(NULL);
	struct pki_cert_opts o = {0};
	o.cn = "dployr CA";
	o.not_before = now - 3600;
	o.not_after = now + 10L * 366 * 86400;
	ca_key = pki_key_generate(rng);
	ca_pem = pki_ca_create(ca_key, &o, rng, err, errlen);
	if (!ca_pem)
		goto out;

	dns = xcalloc(nsans + 4, sizeof *dns);
	ips = xcalloc(nsans + 4, sizeof *ips);
	const char *fixed[] = {name, "localhost", "127.0.0.1", "::1"};
	for (size_t i = 0; i < 4 + nsans; i++) {
		const char *s = i < 4 ? fixed[i] : sans[i - 4];
		const char **list = is_ip(s) ? ips : dns;
		size_t *cnt = is_ip(s) ? &nips : &ndns;
		int dup = 0;
		for (size_t j = 0; j < *cnt; j++)
			dup |= strcmp(list[j], s) == 0;
		if (!dup)
			list[(*cnt)++] = s;
	}
	o.cn = name;
	o.not_after = now + 825L * 86400;
	o.dns = dns;
	o.ndns = ndns;
	o.ips = ips;
	o.nips = nips;
	srv_key = pki_key_generate(rng);
	srv_pem = pki_server_cert(ca_pem, ca_key, srv_key, &o, rng, err, errlen);
	if (!srv_pem)
		goto out;

	uint8_t master[CRYPT_KEY_LEN];
	crypt_random(rng, master, sizeof master);
	p = join(path, "master.key");
	int mrc = write_secret(p, master, sizeof master, err, errlen);
	crypt_wipe(master, sizeof master);
	free(p);
	p = NULL;
	if (mrc < 0)
		goto out;

#define WRITE_KEY(file, key)                                                                       \
	p = join(path, file);                                                                      \
	if (pki_key_write_file(key, p, err, errlen) < 0)                                           \
		goto out;                                                                          \
	free(p);                                                                                   \
	p = NULL;
#define WRITE_CERT(file, pem)                                                                      \
	p = join(path, file);                                                                      \
	if (pki_write_file(p, pem, 0644, err, errlen) < 0)                                         \
		goto out;                                                                          \
	free(p);                                                                                   \
	p = NULL;
	WRITE_KEY("ca.key", ca_key)
	WRITE_KEY("server.key", srv_key)
	WRITE_CERT("ca.crt", ca_pem)
	WRITE_CERT("server.crt", srv_pem)
#undef WRITE_KEY
#undef WRITE_CERT

	p = join(path, "store");
	st = store_open(p, dbnames, 0, 0, err, errlen);
	if (!st)
		goto out;
	struct store_txn *t = store_txn_begin(st, 0);
	char *tok = auth_token_create(t, rng, "owner", AUTH_OWNER);
	if (store_txn_commit(t, err, errlen) < 0) {
		if (tok)
			crypt_wipe(tok, strlen(tok));
		free(tok);
		goto out;
	}
	if (pki_cert_fingerprint(ca_pem, fingerprint, err, errlen) < 0) {
		crypt_wipe(tok, strlen(tok));
		free(tok);
		goto out;
	}
	*owner_token = tok;
	rc = 0;
out:
	store_close(st);
	free(p);
	free(dns);
	free(ips);
	free(ca_pem);
	free(srv_pem);
	pki_key_free(ca_key);
	pki_key_free(srv_key);
	return rc;
}

static char *read_text(const char *dir, const char *name, char *err, size_t errlen)
{
	char *p = join(dir, name);
	struct buf b = BUF_INIT;
	int rc = buf_read_file(&b, p, 1 << 20, err, errlen);
	free(p);
	if (rc < 0) {
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b, NULL);
}

struct basedir *basedir_open(const char *path, char *err, size_t errlen)
{
	struct basedir *d = xcalloc(1, sizeof *d);
	char *p = NULL;
	d->path = xstrdup(path);
	if (!(d->ca_pem = read_text(path, "ca.crt", err, errlen)) ||
	    !(d->server_pem = read_text(path, "server.crt", err, errlen)) ||
	    !(d->server_key_pem = read_text(path, "server.key", err, errlen)))
		goto fail;
	/* Private keys readable by others are refused, like ssh does. */
	const char *const secret[] = {"ca.key", "server.key", "master.key"};
	for (size_t i = 0; i < sizeof secret / sizeof *secret; i++) {
		struct stat kb;
		p = join(path, secret[i]);
		int rc = stat(p, &kb);
		free(p);
		p = NULL;
		if (rc < 0) {
			snprintf(err, errlen, "data directory '%s': %s: %s", path, secret[i],
				 strerror(errno));
			goto fail;
		}
		if (kb.st_mode & 077) {
			snprintf(err, errlen,
				 "data directory '%s': %s: mode %04o is too open (want 0600)", path,
				 secret[i], (unsigned)(kb.st_mode & 07777));
			goto fail;
		}
	}
	p = join(path, "ca.key");
	d->ca_key = pki_key_load_file(p, err, errlen);
	free(p);
	if (!d->ca_key)
		goto fail;
	char verr[512];
	if (pki_cert_verify(d->ca_pem, d->server_pem, NULL, verr, sizeof verr) < 0) {
		snprintf(err, errlen, "data directory '%s': server.crt: %s", path, verr);
		goto fail;
	}
	p = join(path, "store");
	struct stat sb;
	if (stat(p, &sb) < 0) {
		snprintf(err, errlen, "data directory '%s': store: %s (run 'dployr base init')",
			 path, strerror(errno));
		free(p);
		goto fail;
	}
	d->store = store_open(p, dbnames, 0, 0, err, errlen);
	free(p);
	if (!d->store)
		goto fail;
	return d;
fail:
	basedir_free(d);
	return NULL;
}

void basedir_free(struct basedir *d)
{
	if (!d)
		return;
	store_close(d->store);
	pki_key_free(d->ca_key);
	if (d->server_key_pem)
		crypt_wipe(d->server_key_pem, strlen(d->server_key_pem));
	free(d->server_key_pem);
	free(d->server_pem);
	free(d->ca_pem);
	free(d->path);
	free(d);
}
