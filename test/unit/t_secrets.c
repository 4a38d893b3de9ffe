#include "secrets.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "log.h"
#include "xalloc.h"

static const char *const dbnames[] = {SECRETS_DBS, NULL};

static struct store *open_store(void)
{
	char err[256] = "";
	struct store *s = store_open("data", dbnames, 0, 0, err, sizeof err);
	if (!s)
		harness_fail(__FILE__, __LINE__, "store_open: %s", err);
	return s;
}

static void commit(struct store_txn *t)
{
	char err[256] = "";
	if (store_txn_commit(t, err, sizeof err) < 0)
		harness_fail(__FILE__, __LINE__, "commit: %s", err);
}

static void set_ok(struct store_txn *t, struct crypt_rng *rng, const uint8_t *master,
		   const char *cluster, const char *service, const char *name, const char *value,
		   int64_t now)
{
	char err[256] = "";
	if (secrets_set(t, rng, master, cluster, service, name, value, strlen(value), now, err,
			sizeof err) != 0)
		harness_fail(__FILE__, __LINE__, "secrets_set: %s", err);
}

static void skey(struct store_key *k, const char *c, const char *s, const char *name)
{
	store_key_init(k);
	store_key_str(k, c);
	store_key_str(k, s);
	store_key_raw(k, name, strlen(name));
}

static const uint8_t master[CRYPT_KEY_LEN] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
					      12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
					      23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

TEST(secrets_set_list_update_delete)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	char err[256] = "";
	struct store_txn *t = store_txn_begin(s, 0);
	set_ok(t, rng, master, "c1", "web", "DB_URL", "postgres://u:p@db/x", 100);
	set_ok(t, rng, master, "c1", "web", "API_KEY", "k-1", 110);
	set_ok(t, rng, master, "c1", "web", "EMPTY", "", 120);
	set_ok(t, rng, master, "c1", "web-2", "DB_URL", "other service", 130);
	set_ok(t, rng, master, "c2", "web", "DB_URL", "other cluster", 140);
	commit(t);

	t = store_txn_begin(s, 0);
	struct secrets_meta *m;
	size_t n;
	CHECK_INT(secrets_list(t, "c1", "web", &m, &n, err, sizeof err), 0);
	CHECK_INT(n, 3);
	CHECK_STR(m[0].name, "API_KEY");
	CHECK_INT(m[0].created_ms, 110);
	CHECK_STR(m[1].name, "DB_URL");
	CHECK_INT(m[1].created_ms, 100);
	CHECK_INT(m[1].updated_ms, 100);
	CHECK_STR(m[2].name, "EMPTY");
	free(m);

	/* update keeps created, moves updated, changes the value */
	set_ok(t, rng, master, "c1", "web", "DB_URL", "postgres://new", 500);
	CHECK_INT(secrets_list(t, "c1", "web", &m, &n, err, sizeof err), 0);
	CHECK_INT(n, 3);
	CHECK_INT(m[1].created_ms, 100);
	CHECK_INT(m[1].updated_ms, 500);
	free(m);

	struct secrets_pair *p;
	CHECK_INT(secrets_open_for_agent(t, master, "c1", "web", &p, &n, err, sizeof err), 0);
	CHECK_INT(n, 3);
	CHECK_STR(p[0].name, "API_KEY");
	CHECK_STR(p[0].value, "k-1");
	CHECK_INT(p[0].len, 3);
	CHECK_STR(p[1].value, "postgres://new");
	CHECK_STR(p[2].name, "EMPTY");
	CHECK_STR(p[2].value, "");
	CHECK_INT(p[2].len, 0);
	secrets_pairs_free(p, n);
	CHECK_INT(secrets_open_for_agent(t, master, "c1", "web-2", &p, &n, err, sizeof err), 0);
	CHECK_INT(n, 1);
	CHECK_STR(p[0].value, "other service");
	secrets_pairs_free(p, n);

	CHECK_INT(secrets_delete(t, "c1", "web", "API_KEY", err, sizeof err), 0);
	CHECK_INT(secrets_delete(t, "c1", "web", "API_KEY", err, sizeof err), STORE_NOTFOUND);
	CHECK_STR(err, "secret 'API_KEY' of service 'c1/web' not found");
	CHECK_INT(secrets_list(t, "c1", "web", &m, &n, err, sizeof err), 0);
	CHECK_INT(n, 2);
	CHECK_STR(m[0].name, "DB_URL");
	free(m);
	CHECK_INT(secrets_list(t, "c1", "nothing", &m, &n, err, sizeof err), 0);
	CHECK_INT(n, 0);
	CHECK(m == NULL);
	CHECK_INT(secrets_open_for_agent(t, master, "c1", "nothing", &p, &n, err, sizeof err), 0);
	CHECK_INT(n, 0);
	CHECK(p == NULL);
	secrets_pairs_free(NULL, 0);
	commit(t);
	store_close(s);

	/* survives a reopen */
	s = open_store();
	t = store_txn_begin(s, 1);
	CHECK_INT(secrets_open_for_agent(t, master, "c2", "web", &p, &n, err, sizeof err), 0);
	CHECK_INT(n, 1);
	CHECK_STR(p[0].value, "other cluster");
	secrets_pairs_free(p, n);
	store_txn_abort(t);
	crypt_rng_free(rng);
	store_close(s);
}

TEST(secrets_value_limits_and_binary_values)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	char err[256] = "";
	struct store_txn *t = store_txn_begin(s, 0);
	char *big = xmalloc(SECRETS_VALUE_MAX + 1);
	for (size_t i = 0; i < SECRETS_VALUE_MAX + 1; i++)
		big[i] = (char)(1 + i % 255); /* every byte but NUL */
	CHECK_INT(secrets_set(t, rng, master, "c1", "web", "BIG", big, SECRETS_VALUE_MAX + 1, 1,
			      err, sizeof err),
		  -1);
	CHECK_STR(err, "secret 'BIG': value is 65537 bytes, more than 65536");
	CHECK_INT(secrets_set(t, rng, master, "c1", "web", "BIG", big, SECRETS_VALUE_MAX, 1, err,
			      sizeof err),
		  0);
	CHECK_INT(secrets_set(t, rng, master, "c1", "web", "NUL", "a\0b", 3, 1, err, sizeof err),
		  -1);
	CHECK(strstr(err, "secret 'NUL': value holds a NUL byte") == err);
	struct secrets_pair *p;
	size_t n;
	CHECK_INT(secrets_open_for_agent(t, master, "c1", "web", &p, &n, err, sizeof err), 0);
	CHECK_INT(n, 1);
	CHECK_INT(p[0].len, SECRETS_VALUE_MAX);
	CHECK(memcmp(p[0].value, big, SECRETS_VALUE_MAX) == 0);
	CHECK_INT(p[0].value[SECRETS_VALUE_MAX], 0);
	secrets_pairs_free(p, n);
	CHECK(!store_txn_failed(t));
	commit(t);
	free(big);
	crypt_rng_free(rng);
	store_close(s);
}

TEST(secrets_names)
{
	const char *good[] = {"A", "_", "DB_URL", "a1", "_9", "x_Y_z"};
	const char *bad[] = {"", "1A", "A-B", "A.B", "A B", "A/B", "é", "A=B", NULL};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		CHECK(secrets_name_valid(good[i]));
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		CHECK(!secrets_name_valid(bad[i]));
	char longname[SECRETS_NAME_MAX + 2];
	memset(longname, 'A', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	CHECK(!secrets_name_valid(longname));
	longname[SECRETS_NAME_MAX] = '\0';
	CHECK(secrets_name_valid(longname));

	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	char err[256] = "";
	struct store_txn *t = store_txn_begin(s, 0);
	CHECK_INT(secrets_set(t, rng, master, "c1", "web", "1BAD", "v", 1, 1, err, sizeof err), -1);
	CHECK_STR(err, "secret '1BAD': not a valid name ([A-Za-z_][A-Za-z0-9_]*, at most 128 "
		       "characters)");
	/* an unprintable name is quoted harmlessly */
	CHECK_INT(secrets_set(t, rng, master, "c1", "web", "A\nB", "v", 1, 1, err, sizeof err), -1);
	CHECK(strstr(err, "secret 'A?B'") == err);
	CHECK_INT(secrets_set(t, rng, master, "c/1", "web", "A", "v", 1, 1, err, sizeof err), -1);
	CHECK_STR(err, "secrets: cluster 'c/1' is not a valid name");
	CHECK_INT(secrets_set(t, rng, master, "c1", "", "A", "v", 1, 1, err, sizeof err), -1);
	CHECK_STR(err, "secrets: service '' is not a valid name");
	CHECK_INT(secrets_delete(t, "c1", "web", "A B", err, sizeof err), -1);
	struct secrets_meta *m;
	size_t n;
	CHECK_INT(secrets_list(t, "c1", NULL, &m, &n, err, sizeof err), -1);
	CHECK(!store_txn_failed(t));
	store_txn_abort(t);
	crypt_rng_free(rng);
	store_close(s);
}

/* Copy the stored record of (c, s, name) to (c2, s2, name2). */
static void move_record(struct store_txn *t, const char *c, const char *s, const char *name,
			const char *c2, const char *s2, const char *name2)
{
	struct store_key k;
	struct buf b = BUF_INIT;
	skey(&k, c, s, name);
	CHECK_INT(store_get_buf(t, 0, k.data, k.len, &b), 0);
	skey(&k, c2, s2, name2);
	CHECK_INT(store_put(t, 0, k.data, k.len, b.data, b.len), 0);
	buf_release(&b);
}

TEST(secrets_blob_is_bound_to_its_name)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	char err[512] = "";
	struct store_txn *t = store_txn_begin(s, 0);
	set_ok(t, rng, master, "c1", "web", "DB_URL", "the value", 1);
	move_record(t, "c1", "web", "DB_URL", "c1", "web", "OTHER");
	move_record(t, "c1", "web", "DB_URL", "c1", "api", "DB_URL");
	move_record(t, "c1", "web", "DB_URL", "c2", "web", "DB_URL");
	struct secrets_pair *p;
	size_t n;
	CHECK_INT(secrets_open_for_agent(t, master, "c1", "web", &p, &n, err, sizeof err), -1);
	CHECK(p == NULL && n == 0);
	CHECK_STR(err, "secret 'OTHER' of service 'c1/web': open secret: authentication failed "
		       "(tampered blob, wrong context or wrong master key)");
	CHECK_INT(secrets_open_for_agent(t, master, "c1", "api", &p, &n, err, sizeof err), -1);
	CHECK(strstr(err, "secret 'DB_URL' of service 'c1/api'") == err);
	CHECK_INT(secrets_open_for_agent(t, master, "c2", "web", &p, &n, err, sizeof err), -1);
	CHECK(strstr(err, "authentication failed") != NULL);
	/* the original still opens, the listing still shows the moved ones */
	CHECK_INT(secrets_delete(t, "c1", "web", "OTHER", err, sizeof err), 0);
	CHECK_INT(secrets_open_for_agent(t, master, "c1", "web", &p, &n, err, sizeof err), 0);
	CHECK_INT(n, 1);
	CHECK_STR(p[0].value, "the value");
	secrets_pairs_free(p, n);
	commit(t);
	crypt_rng_free(rng);
	store_close(s);
}

TEST(secrets_tampering_and_wrong_key_are_detected)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	char err[512] = "";
	struct store_txn *t = store_txn_begin(s, 0);
	set_ok(t, rng, master, "c1", "web", "TOKEN", "abcdefghijklmnopqrstuvwxyz", 1);
	struct secrets_pair *p;
	size_t n;
	uint8_t other[CRYPT_KEY_LEN];
	memcpy(other, master, sizeof other);
	other[31] ^= 1;
	CHECK_INT(secrets_open_for_agent(t, other, "c1", "web", &p, &n, err, sizeof err), -1);
	CHECK(strstr(err, "authentication failed") != NULL);

	/* flip bits at several places of the blob (in its base64 text) */
	struct store_key k;
	skey(&k, "c1", "web", "TOKEN");
	struct buf orig = BUF_INIT;
	CHECK_INT(store_get_buf(t, 0, k.data, k.len, &orig), 0);
	char *b64 = strstr(orig.data, "\"blob\":\"");
	CHECK(b64 != NULL);
	size_t start = (size_t)(b64 - orig.data) + 8, end = orig.len - 2;
	size_t places[] = {start + 1, start + 20, start + 100, (start + end) / 2, end - 4};
	for (size_t i = 0; i < sizeof places / sizeof *places; i++) {
		struct buf m = BUF_INIT;
		buf_add(&m, orig.data, orig.len);
		m.data[places[i]] = m.data[places[i]] == 'A' ? 'B' : 'A';
		CHECK_INT(store_put(t, 0, k.data, k.len, m.data, m.len), 0);
		CHECK_INT(secrets_open_for_agent(t, master, "c1", "web", &p, &n, err, sizeof err),
			  -1);
		CHECK(strstr(err, "secret 'TOKEN'") == err);
		buf_release(&m);
	}
	/* a record that is not even JSON */
	CHECK_INT(store_put(t, 0, k.data, k.len, "garbage", 7), 0);
	CHECK_INT(secrets_open_for_agent(t, master, "c1", "web", &p, &n, err, sizeof err), -1);
	CHECK(strstr(err, "record does not decode") != NULL);
	CHECK_INT(secrets_set(t, rng, master, "c1", "web", "TOKEN", "x", 1, 2, err, sizeof err),
		  -1);
	CHECK(strstr(err, "does not decode") != NULL);
	store_txn_abort(t);
	buf_release(&orig);
	crypt_rng_free(rng);
	store_close(s);
}

static void write_key(const char *path, size_t n, mode_t mode)
{
	unsigned char b[64];
	for (size_t i = 0; i < sizeof b; i++)
		b[i] = (unsigned char)(i * 7 + 1);
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, b, n) == (ssize_t)n);
	close(fd);
	CHECK(chmod(path, mode) == 0);
}

TEST(secrets_master_key_file_checks)
{
	uint8_t key[CRYPT_KEY_LEN], zero[CRYPT_KEY_LEN];
	char err[512] = "";
	memset(key, 0, sizeof key);
	memset(zero, 0, sizeof zero);

	write_key("master.key", 32, 0600);
	CHECK_INT(secrets_master_load("master.key", key, err, sizeof err), 0);
	CHECK_INT(key[0], 1);
	CHECK_INT(key[31], (31 * 7 + 1) & 0xff);
	write_key("master.key", 32, 0400);
	CHECK_INT(secrets_master_load("master.key", key, err, sizeof err), 0);

	const mode_t bad[] = {0640, 0604, 0644, 0620, 0602, 0610, 0601, 0666};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		memset(key, 0, sizeof key);
		write_key("master.key", 32, bad[i]);
		CHECK_INT(secrets_master_load("master.key", key, err, sizeof err), -1);
		char want[160];
		snprintf(want, sizeof want,
			 "master key 'master.key': mode %04o lets group or others at it; run "
			 "chmod 600 'master.key'",
			 (unsigned)bad[i]);
		CHECK_STR(err, want);
		CHECK(memcmp(key, zero, sizeof key) == 0); /* untouched */
	}
	write_key("master.key", 31, 0600);
	CHECK_INT(secrets_master_load("master.key", key, err, sizeof err), -1);
	CHECK_STR(err, "master key 'master.key': 31 bytes, expected 32");
	write_key("master.key", 33, 0600);
	CHECK_INT(secrets_master_load("master.key", key, err, sizeof err), -1);
	CHECK_STR(err, "master key 'master.key': longer than 32 bytes");
	write_key("master.key", 0, 0600);
	CHECK_INT(secrets_master_load("master.key", key, err, sizeof err), -1);
	CHECK_STR(err, "master key 'master.key': 0 bytes, expected 32");
	CHECK_INT(secrets_master_load("missing.key", key, err, sizeof err), -1);
	CHECK_STR(err, "master key 'missing.key': No such file or directory");
	CHECK(mkdir("dir.key", 0700) == 0);
	CHECK_INT(secrets_master_load("dir.key", key, err, sizeof err), -1);
	CHECK_STR(err, "master key 'dir.key': not a regular file");
	CHECK(mkfifo("fifo.key", 0600) == 0); /* must not block */
	CHECK_INT(secrets_master_load("fifo.key", key, err, sizeof err), -1);
	CHECK_STR(err, "master key 'fifo.key': not a regular file");
	CHECK(memcmp(key, zero, sizeof key) == 0);

	/* another owner (only root can make such a file here) */
	if (geteuid() == 0) {
		write_key("master.key", 32, 0600);
		CHECK(chown("master.key", 65534, 65534) == 0);
		CHECK_INT(secrets_master_load("master.key", key, err, sizeof err), -1);
		CHECK(strstr(err, "master key 'master.key': owned by uid 65534") == err);
	}
}

TEST(secrets_pairs_wipe_zeroes_values)
{
	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	char err[256] = "";
	struct store_txn *t = store_txn_begin(s, 0);
	set_ok(t, rng, master, "c1", "web", "A", "first-value", 1);
	set_ok(t, rng, master, "c1", "web", "B", "second", 1);
	struct secrets_pair *p;
	size_t n;
	CHECK_INT(secrets_open_for_agent(t, master, "c1", "web", &p, &n, err, sizeof err), 0);
	CHECK_INT(n, 2);
	char *v0 = p[0].value, *v1 = p[1].value, *n0 = p[0].name;
	secrets_pairs_wipe(p, n);
	for (size_t i = 0; i < strlen("first-value"); i++)
		CHECK_INT(v0[i], 0);
	for (size_t i = 0; i < strlen("second"); i++)
		CHECK_INT(v1[i], 0);
	CHECK_INT(n0[0], 0);
	CHECK_INT(p[0].len, 0);
	secrets_pairs_free(p, n);
	store_txn_abort(t);
	crypt_rng_free(rng);
	store_close(s);
}

static int file_has(const char *path, const char *needle, size_t *size)
{
	struct buf b = BUF_INIT;
	char err[256];
	CHECK_INT(buf_read_file(&b, path, 1 << 24, err, sizeof err), 0);
	*size = b.len;
	int found = memmem(b.data, b.len, needle, strlen(needle)) != NULL;
	buf_release(&b);
	return found;
}

TEST(secrets_value_never_in_errors_or_logs)
{
	static const char planted[] = "PLANTED-s3cr3t-VALUE-7f3a91";
	char err[512] = "", lerr[256] = "";
	struct buf errs = BUF_INIT;

	/* capture both log outputs at the most verbose level */
	log_set_level(LOG_LVL_DEBUG);
	CHECK_INT(log_open_file("log/dployr.json", lerr, sizeof lerr), 0);
	fflush(stderr);
	int saved = dup(2);
	int fd = open("stderr.txt", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && saved >= 0);
	CHECK(dup2(fd, 2) == 2);
	close(fd);

	struct store *s = open_store();
	struct crypt_rng *rng = crypt_rng_new();
	struct store_txn *t = store_txn_begin(s, 0);
	struct secrets_pair *p;
	struct secrets_meta *m;
	size_t n;
#define RECORD() buf_printf(&errs, "%s\n", err)
	/* success paths: set, replace, list, open */
	CHECK_INT(secrets_set(t, rng, master, "c1", "web", "PLANT", planted, strlen(planted), 1,
			      err, sizeof err),
		  0);
	CHECK_INT(secrets_set(t, rng, master, "c1", "web", "PLANT", planted, strlen(planted), 2,
			      err, sizeof err),
		  0);
	CHECK_INT(secrets_list(t, "c1", "web", &m, &n, err, sizeof err), 0);
	for (size_t i = 0; i < n; i++)
		buf_printf(&errs, "%s %lld %lld\n", m[i].name, (long long)m[i].created_ms,
			   (long long)m[i].updated_ms);
	free(m);
	CHECK_INT(secrets_open_for_agent(t, master, "c1", "web", &p, &n, err, sizeof err), 0);
	CHECK_STR(p[0].value, planted);
	secrets_pairs_free(p, n);

	/* every refusal of set, with the planted value in the call */
	char *big = xmalloc(SECRETS_VALUE_MAX + 100);
	for (size_t i = 0; i + sizeof planted <= SECRETS_VALUE_MAX + 100; i += sizeof planted - 1)
		memcpy(big + i, planted, sizeof planted - 1);
	CHECK_INT(secrets_set(t, rng, master, "c1", "web", "BIG", big, SECRETS_VALUE_MAX + 50, 3,
			      err, sizeof err),
		  -1);
	RECORD();
	char withnul[64];
	snprintf(withnul, sizeof withnul, "%s", planted);
	withnul[5] = '\0';
	CHECK_INT(secrets_set(t, rng, master, "c1", "web", "NUL", withnul, strlen(planted), 3, err,
			      sizeof err),
		  -1);
	RECORD();
	CHECK_INT(secrets_set(t, rng, master, "c1", "web", "bad name", planted, strlen(planted), 3,
			      err, sizeof err),
		  -1);
	RECORD();
	CHECK_INT(secrets_set(t, rng, master, "c/1", "web", "A", planted, strlen(planted), 3, err,
			      sizeof err),
		  -1);
	RECORD();
	CHECK_INT(secrets_set(t, rng, master, "c1", "w/eb", "A", planted, strlen(planted), 3, err,
			      sizeof err),
		  -1);
	RECORD();
	/* opening: wrong key, moved blob, tampered blob, garbage record */
	uint8_t other[CRYPT_KEY_LEN];
	memcpy(other, master, sizeof other);
	other[0] ^= 0x80;
	CHECK_INT(secrets_open_for_agent(t, other, "c1", "web", &p, &n, err, sizeof err), -1);
	RECORD();
	move_record(t, "c1", "web", "PLANT", "c1", "api", "PLANT");
	CHECK_INT(secrets_open_for_agent(t, master, "c1", "api", &p, &n, err, sizeof err), -1);
	RECORD();
	struct store_key k;
	skey(&k, "c1", "api", "PLANT");
	struct buf rec = BUF_INIT;
	CHECK_INT(store_get_buf(t, 0, k.data, k.len, &rec), 0);
	char *q = strstr(rec.data, "\"blob\":\"") + 40;
	*q = *q == 'A' ? 'B' : 'A';
	CHECK_INT(store_put(t, 0, k.data, k.len, rec.data, rec.len), 0);
	CHECK_INT(secrets_open_for_agent(t, master, "c1", "api", &p, &n, err, sizeof err), -1);
	RECORD();
	buf_release(&rec);
	CHECK_INT(store_put(t, 0, k.data, k.len, "{", 1), 0);
	CHECK_INT(secrets_open_for_agent(t, master, "c1", "api", &p, &n, err, sizeof err), -1);
	RECORD();
	CHECK_INT(secrets_set(t, rng, master, "c1", "api", "PLANT", planted, strlen(planted), 3,
			      err, sizeof err),
		  -1);
	RECORD();
	CHECK_INT(secrets_list(t, "c1", "api", &m, &n, err, sizeof err), -1);
	RECORD();
	CHECK_INT(secrets_open_for_agent(t, master, "c/1", "web", &p, &n, err, sizeof err), -1);
	RECORD();
	/* deletes */
	CHECK_INT(secrets_delete(t, "c1", "web", "NOPE", err, sizeof err), STORE_NOTFOUND);
	RECORD();
	CHECK_INT(secrets_delete(t, "c1", "web", "PLANT", err, sizeof err), 0);
	store_txn_abort(t);
	/* a store failure: the database is not open */
	static const char *const none[] = {"other", NULL};
	struct store *s2 = store_open("data2", none, 0, 0, err, sizeof err);
	CHECK(s2 != NULL);
	t = store_txn_begin(s2, 0);
	CHECK_INT(secrets_set(t, rng, master, "c1", "web", "PLANT", planted, strlen(planted), 3,
			      err, sizeof err),
		  -1);
	RECORD();
	CHECK(strstr(err, "database 'secrets' is not open") != NULL);
	store_txn_abort(t);
	store_close(s2);
#undef RECORD
	free(big);
	crypt_rng_free(rng);
	store_close(s);

	fflush(stderr);
	CHECK(dup2(saved, 2) == 2);
	close(saved);
	log_close();

	/* the errors say something, and never the value */
	CHECK(strstr(errs.data, "secret 'BIG': value is") != NULL);
	CHECK(strstr(errs.data, "authentication failed") != NULL);
	CHECK(memmem(errs.data, errs.len, planted, 12) == NULL);
	CHECK(memmem(errs.data, errs.len, "PLANTED", 7) == NULL);
	buf_release(&errs);
	size_t sz;
	/* the module did log (debug lines), and not the value */
	CHECK(!file_has("log/dployr.json", "PLANTED", &sz));
	CHECK(sz > 0);
	CHECK(!file_has("log/dployr.json", "s3cr3t", &sz));
	CHECK(!file_has("stderr.txt", "PLANTED", &sz));
	CHECK(sz > 0);
	CHECK(!file_has("stderr.txt", "s3cr3t", &sz));
}
