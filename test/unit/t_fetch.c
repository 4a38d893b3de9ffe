#include "fetch.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "harness.h"
#include "run.h"

/* Run argv (in cwd); the test fails unless it exits 0. Output in *out. */
static void must(const char *const *argv, const char *cwd, struct buf *out)
{
	char home[600];
	snprintf(home, sizeof(home), "HOME=%s", harness_tmpdir);
	const char *e[] = {"PATH=/usr/bin:/bin", "LC_ALL=C", home, NULL};
	struct run_opts o = {
	    .argv = argv, .envp = e, .cwd = cwd, .timeout_ms = 20000, .merge_err = 1};
	struct run_result r = RUN_RESULT_INIT;
	char err[256];
	if (run(&o, &r, err, sizeof(err)) < 0)
		harness_fail(__FILE__, __LINE__, "%s: %s", argv[0], err);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
		harness_fail(__FILE__, __LINE__, "%s %s: failed: %s", argv[0], argv[1], r.out.data);
	if (out)
		buf_add(out, r.out.data, r.out.len);
	run_result_release(&r);
}

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		harness_fail(__FILE__, __LINE__, "fopen %s", path);
	fputs(text, f);
	fclose(f);
}

static int exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static void slurp(const char *path, struct buf *b)
{
	char err[256];
	buf_reset(b);
	if (buf_read_file(b, path, 1 << 20, err, sizeof(err)) < 0)
		harness_fail(__FILE__, __LINE__, "%s", err);
}

/* --- checks ----------------------------------------------------------------- */

TEST(fetch_url_check)
{
	char err[256];
	const char *ok[] = {
	    "https://git.example.org/shop/orders.git",
	    "https://user:tok@git.example.org:8443/x.git",
	    "ssh://git@git.example.org/shop/mono.git",
	    "ssh://git.example.org:2222/x",
	    "git@git.example.org:shop/mono.git",
	    "file:///srv/git/app.git",
	    "https://[::1]:3000/repo",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (fetch_check_url(ok[i], err, sizeof(err)) != 0)
			harness_fail(__FILE__, __LINE__, "'%s' refused: %s", ok[i], err);
	const char *bad[] = {
	    "",
	    "ext::sh -c touch% /tmp/pwned",
	    "fd::17",
	    "-uhttps://x/y",
	    "--upload-pack=touch /tmp/x",
	    "http://git.example.org/x.git",
	    "https://-oProxyCommand=x/y",
	    "ssh://-oProxyCommand=x/y",
	    "git@-oProxyCommand=x:y",
	    "git@host:-x",
	    "git@host:",
	    "https://host",
	    "https://host/",
	    "file://relative/path",
	    "file://",
	    "/srv/git/app.git",
	    "https://host/a b",
	    "https://host/a\nb",
	    "host:path",
	    "ftp://host/x",
	    "https://ho$st/x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (fetch_check_url(bad[i], err, sizeof(err)) != -1)
			harness_fail(__FILE__, __LINE__, "'%s' accepted", bad[i]);
	CHECK_INT(fetch_check_url(NULL, err, sizeof(err)), -1);
	/* A token in the URL never reaches a message. */
	CHECK_INT(fetch_check_url("https://user:s3cret@host", err, sizeof(err)), -1);
	CHECK(!strstr(err, "s3cret"));
	CHECK_STR(err, "url 'https://host': want https://HOST/PATH");
}

TEST(fetch_branch_and_commit_checks)
{
	char err[256];
	const char *ok[] = {"main", "release/1.2", "feature/x-y_z", "v1.0", "a.b"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (fetch_check_branch(ok[i], err, sizeof(err)) != 0)
			harness_fail(__FILE__, __LINE__, "'%s' refused: %s", ok[i], err);
	const char *bad[] = {"",     "-evil",  "--upload-pack=x",
			     "a..b", "/a",     "a/",
			     "a//b", "a b",    "a~1",
			     "a^",   "a:b",    "a?",
			     "a*",   "a[",     "a\\b",
			     "@",    "a@{1}",  ".hidden",
			     "x/.y", "a.lock", "x/a.lock/y",
			     "end.", "a\tb"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (fetch_check_branch(bad[i], err, sizeof(err)) != -1)
			harness_fail(__FILE__, __LINE__, "'%s' accepted", bad[i]);
	CHECK_INT(fetch_check_branch("-evil", err, sizeof(err)), -1);
	CHECK_STR(err, "branch '-evil': starts with '-'");
	CHECK_INT(fetch_check_commit("4f9c2e1", err, sizeof(err)), 0);
	CHECK_INT(fetch_check_commit("4F9C2E1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", err, sizeof(err)),
		  0);
	CHECK_INT(fetch_check_commit("4f9c2e", err, sizeof(err)), -1);
	CHECK_INT(fetch_check_commit("4f9c2e1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", err, sizeof(err)),
		  -1);
	CHECK_INT(fetch_check_commit("-4f9c2e1", err, sizeof(err)), -1);
	CHECK_INT(fetch_check_commit("4f9c2eg", err, sizeof(err)), -1);
	CHECK_STR(err, "commit '4f9c2eg': want 7 to 40 hex digits");
}

/* --- git ---------------------------------------------------------------------- */

struct repo {
	char url[600];
	char c1[41], c2[41], dev[41];
};

/* A bare repository with two commits on main and one on dev, pushed over
 * file:// from a work tree. */
static void make_repo(struct repo *r)
{
	struct buf out = BUF_INIT;
	const char *init_bare[] = {"git", "init", "-q", "--bare", "-b", "main", "bare.git", NULL};
	must(init_bare, NULL, NULL);
	const char *init[] = {"git", "init", "-q", "-b", "main", "work", NULL};
	must(init, NULL, NULL);
	const char *add[] = {"git", "add", "app.txt", NULL};
	const char *commit[] = {"git",	  "-c", "user.name=t", "-c", "user.email=t@t",
				"commit", "-q", "-m",	       "c",  NULL};
	const char *head[] = {"git", "rev-parse", "HEAD", NULL};
	char *ids[] = {r->c1, r->c2};
	for (int i = 0; i < 2; i++) {
		put("work/app.txt", i ? "two\n" : "one\n");
		must(add, "work", NULL);
		must(commit, "work", NULL);
		buf_reset(&out);
		must(head, "work", &out);
		CHECK(out.len >= 40);
		memcpy(ids[i], out.data, 40);
		ids[i][40] = 0;
	}
	snprintf(r->url, sizeof(r->url), "file://%s/bare.git", harness_tmpdir);
	const char *push[] = {"git", "push", "-q", r->url, "main", NULL};
	must(push, "work", NULL);
	const char *dev[] = {"git", "checkout", "-q", "-b", "dev", NULL};
	must(dev, "work", NULL);
	put("work/app.txt", "dev\n");
	must(add, "work", NULL);
	must(commit, "work", NULL);
	buf_reset(&out);
	must(head, "work", &out);
	memcpy(r->dev, out.data, 40);
	r->dev[40] = 0;
	const char *push2[] = {"git", "push", "-q", r->url, "dev", NULL};
	must(push2, "work", NULL);
	buf_release(&out);
}

TEST(fetch_git_branch_commit_and_errors)
{
	if (access("/usr/bin/git", X_OK) != 0)
		return; /* prerequisite missing: skip */
	struct repo r;
	make_repo(&r);
	char commit[41], err[512];
	struct buf b = BUF_INIT;

	/* The default branch, shallow. */
	struct fetch_git_opts o = {
	    .url = r.url, .dir = "co-default", .home = harness_tmpdir, .timeout_ms = 20000};
	CHECK_INT(fetch_git(&o, commit, err, sizeof(err)), 0);
	CHECK_STR(commit, r.c2);
	slurp("co-default/app.txt", &b);
	CHECK_STR(b.data, "two\n");

	/* A branch. */
	o.branch = "dev";
	o.dir = "co-dev";
	CHECK_INT(fetch_git(&o, commit, err, sizeof(err)), 0);
	CHECK_STR(commit, r.dev);
	slurp("co-dev/app.txt", &b);
	CHECK_STR(b.data, "dev\n");

	/* A commit by its abbreviation, on main and without a branch. */
	char abbrev[8];
	memcpy(abbrev, r.c1, 7);
	abbrev[7] = 0;
	o.branch = "main";
	o.commit = abbrev;
	o.dir = "co-c1";
	CHECK_INT(fetch_git(&o, commit, err, sizeof(err)), 0);
	CHECK_STR(commit, r.c1);
	slurp("co-c1/app.txt", &b);
	CHECK_STR(b.data, "one\n");
	o.branch = NULL;
	o.commit = r.dev;
	o.dir = "co-devc";
	CHECK_INT(fetch_git(&o, commit, err, sizeof(err)), 0);
	CHECK_STR(commit, r.dev);

	/* A missing branch, a missing commit. */
	o.branch = "nope";
	o.commit = NULL;
	o.dir = "co-nope";
	CHECK_INT(fetch_git(&o, commit, err, sizeof(err)), -1);
	CHECK(strstr(err, "git clone 'file://"));
	CHECK(strstr(err, "Remote branch nope not found"));
	o.branch = NULL;
	o.commit = "1234567";
	o.dir = "co-nocommit";
	CHECK_INT(fetch_git(&o, commit, err, sizeof(err)), -1);
	CHECK(strstr(err, "git checkout '1234567': "));

	/* Refused before git runs: nothing is created. */
	o.branch = "-evil";
	o.commit = NULL;
	o.dir = "co-evil";
	CHECK_INT(fetch_git(&o, commit, err, sizeof(err)), -1);
	CHECK_STR(err, "branch '-evil': starts with '-'");
	CHECK(!exists("co-evil"));
	o.branch = "--upload-pack=touch pwned";
	CHECK_INT(fetch_git(&o, commit, err, sizeof(err)), -1);
	o.branch = NULL;
	o.url = "ext::sh -c touch% pwned";
	CHECK_INT(fetch_git(&o, commit, err, sizeof(err)), -1);
	CHECK(!exists("co-evil") && !exists("pwned"));
	/* A missing repository. */
	char missing[700];
	snprintf(missing, sizeof(missing), "file://%s/missing.git", harness_tmpdir);
	o.url = missing;
	o.dir = "co-missing";
	CHECK_INT(fetch_git(&o, commit, err, sizeof(err)), -1);
	CHECK(strstr(err, "git clone 'file://") != NULL);
	/* A token in an https URL stays out of the message (port 1 of
	 * loopback: refused at once). */
	o.url = "https://user:s3cretTOKEN@127.0.0.1:1/x.git";
	o.dir = "co-https";
	CHECK_INT(fetch_git(&o, commit, err, sizeof(err)), -1);
	CHECK(strstr(err, "git clone 'https://127.0.0.1:1/x.git': "));
	CHECK(!strstr(err, "s3cret"));
	/* Even when git prints it: a fake git echoes its argv and fails. */
	mkdir("fakegit", 0755);
	put("fakegit/git", "#!/bin/sh\necho \"fatal: $*\" >&2\nexit 128\n");
	CHECK(chmod("fakegit/git", 0755) == 0);
	char fake[700];
	snprintf(fake, sizeof(fake), "%s/fakegit:/usr/bin:/bin", harness_tmpdir);
	o.path = fake;
	CHECK_INT(fetch_git(&o, commit, err, sizeof(err)), -1);
	CHECK(strstr(err, "https://****************@127.0.0.1:1/x.git"));
	CHECK(strstr(err, "protocol.allow=never")); /* the argv it was given */
	CHECK(strstr(err, " -- https://"));
	CHECK(!strstr(err, "s3cret"));
	o.path = NULL;
	/* A directory that is not empty. */
	o.url = r.url;
	o.dir = "co-default";
	CHECK_INT(fetch_git(&o, commit, err, sizeof(err)), -1);
	CHECK(strstr(err, "already exists"));
	buf_release(&b);
}

/* --- tar -------------------------------------------------------------------- */

/* Archives built by Python's tarfile (the real writer users have), one file
 * per case, in the test's directory. */
static const char *const tar_script =
    "import io, os, sys, tarfile, gzip\n"
    "tmp = sys.argv[1]\n"
    "def mk(name, entries, fmt=tarfile.GNU_FORMAT):\n"
    "    b = io.BytesIO()\n"
    "    with tarfile.open(fileobj=b, mode='w', format=fmt) as t:\n"
    "        for e in entries:\n"
    "            ti = tarfile.TarInfo(e[0])\n"
    "            kind = e[1]\n"
    "            data = b''\n"
    "            if kind == 'f':\n"
    "                data = e[2]; ti.size = len(data); ti.mode = e[3] if len(e) > 3 else 0o644\n"
    "            elif kind == 'd':\n"
    "                ti.type = tarfile.DIRTYPE; ti.mode = 0o755\n"
    "            elif kind == 'l':\n"
    "                ti.type = tarfile.SYMTYPE; ti.linkname = e[2]\n"
    "            elif kind == 'h':\n"
    "                ti.type = tarfile.LNKTYPE; ti.linkname = e[2]\n"
    "            elif kind == 'c':\n"
    "                ti.type = tarfile.CHRTYPE; ti.devmajor = 1; ti.devminor = 3\n"
    "            elif kind == 'p':\n"
    "                ti.type = tarfile.FIFOTYPE\n"
    "            t.addfile(ti, io.BytesIO(data) if data else None)\n"
    "    open(os.path.join(tmp, name), 'wb').write(b.getvalue())\n"
    "    return b.getvalue()\n"
    "long = 'd' * 60 + '/' + 'n' * 120 + '.txt'\n"
    "good = [('app/', 'd'), ('app/main.py', 'f', b'print(1)\\n'),\n"
    "        ('app/run.sh', 'f', b'#!/bin/sh\\n', 0o4755), ('app/lib/x.txt', 'f', b'x' * 70000),\n"
    "        ('app/link', 'l', 'lib/x.txt'), ('app/lib/up', 'l', '../main.py'),\n"
    "        ('app/hard', 'h', 'app/main.py'), (long, 'f', b'long'),\n"
    "        ('./dot/./file', 'f', b'dot'), ('app/main.py', 'f', b'print(2)\\n')]\n"
    "g = mk('good-gnu.tar', good)\n"
    "mk('good-pax.tar', good, tarfile.PAX_FORMAT)\n"
    "open(os.path.join(tmp, 'good.tar.gz'), 'wb').write(gzip.compress(g))\n"
    "import bz2\n"
    "open(os.path.join(tmp, 'good.tar.bz2'), 'wb').write(bz2.compress(g))\n"
    "mk('dotdot.tar', [('ok.txt', 'f', b'ok'), ('../evil', 'f', b'evil'),\n"
    "                  ('a/../../evil2', 'f', b'evil')])\n"
    "mk('abs.tar', [(tmp + '/abs-evil', 'f', b'evil')])\n"
    "mk('symlink-out.tar', [('out', 'l', '..'), ('out/evil', 'f', b'evil'),\n"
    "                       ('abs', 'l', tmp), ('abs/evil', 'f', b'evil')])\n"
    "mk('symlink-chain.tar', [('a/b/', 'd'), ('a/b/l', 'l', '../..'),\n"
    "                         ('x', 'l', 'a/b/l/../..'), ('x/evil', 'f', b'evil')])\n"
    "mk('symlink-through.tar', [('sub/', 'd'), ('d', 'l', 'sub'), ('d/x', 'f', b'x')])\n"
    "mk('hardlink-out.tar', [('hl', 'h', '../victim'), ('hl2', 'h', tmp + '/victim')])\n"
    "mk('device.tar', [('null', 'c'), ('fifo', 'p')])\n"
    "# size field of 8 GiB on a 10-byte entry\n"
    "b = bytearray(mk('huge.tar', [('big', 'f', b'0123456789')]))\n"
    "b[124:136] = b'77777777777\\0'\n"
    "b[148:156] = b'        '\n"
    "b[148:156] = ('%06o\\0 ' % sum(b[0:512])).encode()\n"
    "open(os.path.join(tmp, 'huge.tar'), 'wb').write(bytes(b))\n"
    "open(os.path.join(tmp, 'truncated.tar'), 'wb').write(g[:512 * 3 + 100])\n"
    "open(os.path.join(tmp, 'no-end.tar'), 'wb').write(g[:1536])\n"
    "b = bytearray(g); b[0] ^= 1\n"
    "open(os.path.join(tmp, 'badsum.tar'), 'wb').write(bytes(b))\n"
    "mk('many.tar', [('f%d' % i, 'f', b'x') for i in range(50)])\n";

static void make_tars(void)
{
	put("mktar.py", tar_script);
	const char *argv[] = {"/usr/bin/python3", "mktar.py", harness_tmpdir, NULL};
	must(argv, NULL, NULL);
	put("victim", "victim\n");
}

/* The test's directory holds only what make_tars wrote and the roots. */
static void check_nothing_outside(void)
{
	DIR *d = opendir(".");
	CHECK(d != NULL);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		size_t l = strlen(n);
		if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "mktar.py") ||
		    !strcmp(n, "victim") || !strncmp(n, "root", 4) ||
		    (l > 4 && !strcmp(n + l - 4, ".tar")) || strstr(n, ".tar."))
			continue;
		harness_fail(__FILE__, __LINE__, "'%s' written outside the root", n);
	}
	closedir(d);
	struct stat st;
	CHECK(stat("victim", &st) == 0 && st.st_nlink == 1);
	struct buf b = BUF_INIT;
	slurp("victim", &b);
	CHECK_STR(b.data, "victim\n");
	buf_release(&b);
}

static int untar_file(const char *tar, const char *root, int no_openat2, char *err, size_t errlen)
{
	mkdir(root, 0755);
	int fd = open(tar, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		harness_fail(__FILE__, __LINE__, "open %s", tar);
	struct fetch_untar_opts o = {.no_openat2 = no_openat2};
	int rc = fetch_untar_fd(fd, root, &o, err, errlen);
	close(fd);
	return rc;
}

static void check_good(const char *root)
{
	char p[512];
	struct buf b = BUF_INIT;
	struct stat st;
	snprintf(p, sizeof(p), "%s/app/main.py", root);
	slurp(p, &b);
	CHECK_STR(b.data, "print(2)\n"); /* the later entry wins */
	snprintf(p, sizeof(p), "%s/app/run.sh", root);
	CHECK(stat(p, &st) == 0);
	CHECK_INT(st.st_mode & 07777, 0755); /* setuid dropped */
	snprintf(p, sizeof(p), "%s/app/lib/x.txt", root);
	CHECK(stat(p, &st) == 0 && st.st_size == 70000);
	snprintf(p, sizeof(p), "%s/app/link", root);
	char t[256];
	ssize_t n = readlink(p, t, sizeof(t) - 1);
	CHECK(n > 0);
	t[n > 0 ? n : 0] = 0;
	CHECK_STR(t, "lib/x.txt");
	snprintf(p, sizeof(p), "%s/app/hard", root);
	slurp(p, &b);
	CHECK_STR(b.data, "print(1)\n"); /* linked to the first main.py */
	char dn[61], fn[121];
	memset(dn, 'd', 60);
	dn[60] = 0;
	memset(fn, 'n', 120);
	fn[120] = 0;
	snprintf(p, sizeof(p), "%s/%s/%s.txt", root, dn, fn);
	slurp(p, &b);
	CHECK_STR(b.data, "long");
	snprintf(p, sizeof(p), "%s/dot/file", root);
	slurp(p, &b);
	CHECK_STR(b.data, "dot");
	buf_release(&b);
}

TEST(fetch_untar_good_archives)
{
	make_tars();
	char err[1024];
	for (int w = 0; w < 2; w++) {
		char root[64];
		snprintf(root, sizeof(root), "root-gnu-%d", w);
		if (untar_file("good-gnu.tar", root, w, err, sizeof(err)) != 0)
			harness_fail(__FILE__, __LINE__, "good-gnu.tar: %s", err);
		check_good(root);
		snprintf(root, sizeof(root), "root-pax-%d", w);
		if (untar_file("good-pax.tar", root, w, err, sizeof(err)) != 0)
			harness_fail(__FILE__, __LINE__, "good-pax.tar: %s", err);
		check_good(root);
	}
	if (untar_file("good.tar.gz", "root-gz", 0, err, sizeof(err)) != 0)
		harness_fail(__FILE__, __LINE__, "good.tar.gz: %s", err);
	check_good("root-gz");
	CHECK_INT(untar_file("good.tar.bz2", "root-bz2", 0, err, sizeof(err)), -1);
	CHECK(strstr(err, "bzip2 archives are not supported"));
	/* The same bytes from memory. */
	struct buf b = BUF_INIT;
	slurp("good-gnu.tar", &b);
	mkdir("root-mem", 0755);
	CHECK_INT(fetch_untar_mem(b.data, b.len, "root-mem", NULL, err, sizeof(err)), 0);
	check_good("root-mem");
	slurp("good.tar.gz", &b);
	CHECK_INT(fetch_untar_mem(b.data, b.len, "root-mem", NULL, err, sizeof(err)), -1);
	buf_release(&b);
	check_nothing_outside();
}

TEST(fetch_untar_refuses_hostile_archives)
{
	make_tars();
	struct {
		const char *tar, *want;
	} cases[] = {
	    {"dotdot.tar", "entry '../evil': name escapes the root ('..'); "
			   "entry 'a/../../evil2': name escapes the root ('..')"},
	    {"abs.tar", ": absolute name"},
	    {"symlink-out.tar", "entry 'out': symlink target escapes the root"},
	    {"symlink-chain.tar", "entry 'x': symlink target has '..' after a name"},
	    {"symlink-through.tar", "entry 'd/x': path goes through a symlink"},
	    {"hardlink-out.tar", "entry 'hl': name escapes the root ('..')"},
	    {"device.tar", "entry 'null': device files and fifos are not allowed; "
			   "entry 'fifo': device files and fifos are not allowed"},
	    {"huge.tar", "entry 'big': 8589934591 bytes would pass the limit"},
	    {"truncated.tar", "archive: truncated"},
	    {"no-end.tar", "archive: truncated"},
	    {"badsum.tar", "archive: bad header checksum at entry 1"},
	};
	char err[2048];
	for (int w = 0; w < 2; w++) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			char root[64];
			snprintf(root, sizeof(root), "root-%d-%zu", w, i);
			err[0] = 0;
			if (untar_file(cases[i].tar, root, w, err, sizeof(err)) != -1)
				harness_fail(__FILE__, __LINE__, "%s accepted", cases[i].tar);
			if (!strstr(err, cases[i].want))
				harness_fail(__FILE__, __LINE__, "%s: '%s', want '%s'",
					     cases[i].tar, err, cases[i].want);
		}
	}
	/* Good entries of a refused archive are extracted, bad ones not. */
	CHECK(exists("root-0-0/ok.txt"));
	CHECK(!exists("evil") && !exists("evil2"));
	CHECK(!exists("abs-evil"));
	/* symlink-out: the links are refused, so out/evil went to a real
	 * directory inside the root. */
	struct stat st;
	CHECK(lstat("root-0-2/out", &st) == 0 && S_ISDIR(st.st_mode));
	CHECK(lstat("root-0-2/abs", &st) == 0 && S_ISDIR(st.st_mode));
	/* symlink-chain: the first link is allowed (it points at the root). */
	CHECK(lstat("root-0-3/a/b/l", &st) == 0 && S_ISLNK(st.st_mode));
	CHECK(lstat("root-0-3/x", &st) == 0 && S_ISDIR(st.st_mode));
	CHECK(!exists("root-0-4/sub/x"));
	check_nothing_outside();
}

TEST(fetch_untar_limits)
{
	make_tars();
	char err[1024];
	mkdir("root-n", 0755);
	struct fetch_untar_opts o = {.max_entries = 10};
	int fd = open("many.tar", O_RDONLY);
	CHECK_INT(fetch_untar_fd(fd, "root-n", &o, err, sizeof(err)), -1);
	CHECK(strstr(err, "archive: more than 10 entries"));
	close(fd);
	struct fetch_untar_opts o2 = {.max_bytes = 69999};
	mkdir("root-b", 0755);
	fd = open("good-gnu.tar", O_RDONLY);
	CHECK_INT(fetch_untar_fd(fd, "root-b", &o2, err, sizeof(err)), -1);
	CHECK(
	    strstr(err, "entry 'app/lib/x.txt': 70000 bytes would pass the limit of 69999 bytes"));
	close(fd);
	CHECK(!exists("root-b/app/lib/x.txt"));
	CHECK_INT(fetch_untar_mem("", 0, "no-such-root", NULL, err, sizeof(err)), -1);
	CHECK(strstr(err, "untar: root 'no-such-root'"));
	/* Empty input is truncated; one zero block is an empty archive. */
	mkdir("root-e", 0755);
	CHECK_INT(fetch_untar_mem("", 0, "root-e", NULL, err, sizeof(err)), -1);
	char zero[512] = {0};
	CHECK_INT(fetch_untar_mem(zero, sizeof(zero), "root-e", NULL, err, sizeof(err)), 0);
	check_nothing_outside();
}
