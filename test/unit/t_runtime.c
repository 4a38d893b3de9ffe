#include "runtime.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

/* Fake runtimes: shell scripts printing each runtime's real version format
 * (the real programs are not installed here, except python3). */
static void script(const char *dir, const char *name, const char *body)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f)
		harness_fail(__FILE__, __LINE__, "fopen %s", path);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	CHECK(chmod(path, 0755) == 0);
}

static char *fake_path(void)
{
	static char dirs[1024];
	mkdir("bin", 0755);
	mkdir("bin2", 0755);
	script("bin", "python3", "echo 'Python 3.11.2'");
	script("bin", "python3.12", "echo 'Python 3.12.1'");
	script("bin", "python3.9", "echo 'Python 3.9.18'");
	script("bin", "python3-config", "echo 'Python 9.9.9'");
	script("bin", "node", "echo v20.11.1");
	script("bin", "java",
	       "echo 'openjdk version \"17.0.15\" 2025-04-15' >&2\n"
	       "echo 'OpenJDK Runtime Environment (build 17.0.15+6-Debian-1deb12u1)' >&2");
	script("bin", "php",
	       "echo 'PHP 8.2.7 (cli) (built: Jun  9 2023 19:37:27) (NTS)'\n"
	       "echo 'Copyright (c) The PHP Group'");
	script("bin", "ruby",
	       "echo 'ruby 3.1.2p20 (2022-04-12 revision 4491bb740a) [x86_64-linux-gnu]'");
	script("bin", "go", "[ \"$1\" = version ] && echo 'go version go1.19.8 linux/amd64'");
	script("bin", "podman", "echo 'podman version 4.3.1'");
	script("bin", "dotnet", "echo 'something went wrong' >&2; exit 1");
	/* The same python again under a later directory: found, not first. */
	script("bin2", "python3", "echo 'Python 3.10.12'");
	script("bin2", "node18", "echo v18.19.0");
	/* Not executable: skipped. */
	script("bin2", "ruby3.3", "echo 'ruby 3.3.0'");
	CHECK(chmod("bin2/ruby3.3", 0644) == 0);
	snprintf(dirs, sizeof(dirs), "%s/bin:relative:%s/nonexistent:%s/bin2", harness_tmpdir,
		 harness_tmpdir, harness_tmpdir);
	return dirs;
}

TEST(runtime_parses_real_version_formats)
{
	char v[64];
	struct {
		const char *type, *out, *want;
	} ok[] = {
	    {"python", "Python 3.11.2\n", "3.11.2"},
	    {"nodejs", "v20.11.1\n", "20.11.1"},
	    {"java", "openjdk version \"17.0.15\" 2025-04-15\nOpenJDK Runtime", "17.0.15"},
	    {"java", "java version \"1.8.0_392\"\nJava(TM) SE", "8.0.392"},
	    {"java", "openjdk version \"21\" 2023-09-19", "21"},
	    {"php", "PHP 8.2.7 (cli) (built: Jun  9 2023)", "8.2.7"},
	    {"ruby", "ruby 3.1.2p20 (2022-04-12 revision 4491bb740a)", "3.1.2"},
	    {"golang", "go version go1.19.8 linux/amd64", "1.19.8"},
	    {"dotnet", "8.0.100\n", "8.0.100"},
	    {"docker", "Docker version 24.0.7, build afdd53b", "24.0.7"},
	    {"docker", "podman version 4.3.1", "4.3.1"},
	    {"python", "  Python 3.13.0rc1\n", "3.13.0"},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (runtime_parse_version(ok[i].type, ok[i].out, v, sizeof(v)) != 0)
			harness_fail(__FILE__, __LINE__, "no version in '%s'", ok[i].out);
		CHECK_STR(v, ok[i].want);
	}
	const char *bad[][2] = {
	    {"python", ""},
	    {"python", "Python\n"},
	    {"python", "bash: python3: command not found"},
	    {"nodejs", "node: error"},
	    {"dotnet", "No .NET SDKs were found."},
	    {"static", "1.0"},
	    {"cobol", "1.0"},
	    {"golang", "go: unknown subcommand"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(runtime_parse_version(bad[i][0], bad[i][1], v, sizeof(v)), -1);
	/* Too small an output buffer is a failure, not a truncation. */
	CHECK_INT(runtime_parse_version("python", "Python 3.11.2", v, 4), -1);
}

TEST(runtime_version_prefix_matches_whole_components)
{
	CHECK(runtime_version_match("3.11", "3.11.2"));
	CHECK(runtime_version_match("3.11", "3.11"));
	CHECK(runtime_version_match("3", "3.11.2"));
	CHECK(runtime_version_match("3.11.2", "3.11.2"));
	CHECK(!runtime_version_match("3.1", "3.11.2"));
	CHECK(!runtime_version_match("3.11", "3.110.1"));
	CHECK(!runtime_version_match("3.11", "3.1"));
	CHECK(!runtime_version_match("3.11.2", "3.11"));
	CHECK(!runtime_version_match("20", "2.0"));
	CHECK(!runtime_version_match("3.x", "3.11"));
	CHECK(!runtime_version_match("", "3.11"));
	CHECK(!runtime_version_match("3..1", "3.1"));
}

TEST(runtime_resolves_against_fake_path)
{
	struct runtime *rt = runtime_new(fake_path());
	struct runtime_pick pk;
	char err[512];
	char want[512];

	/* No version: the plain name found first. */
	CHECK_INT(runtime_resolve(rt, "python", NULL, &pk, err, sizeof(err)), 0);
	CHECK_STR(pk.version, "3.11.2");
	snprintf(want, sizeof(want), "%s/bin/python3", harness_tmpdir);
	CHECK_STR(pk.path, want);
	CHECK_STR(pk.type, "python");
	/* Prefixes pick the matching versioned program. */
	CHECK_INT(runtime_resolve(rt, "python", "3.12", &pk, err, sizeof(err)), 0);
	CHECK_STR(pk.version, "3.12.1");
	snprintf(want, sizeof(want), "%s/bin/python3.12", harness_tmpdir);
	CHECK_STR(pk.path, want);
	CHECK_INT(runtime_resolve(rt, "python", "3.10", &pk, err, sizeof(err)), 0);
	CHECK_STR(pk.version, "3.10.12");
	/* "3" matches several: the highest wins. */
	CHECK_INT(runtime_resolve(rt, "python", "3", &pk, err, sizeof(err)), 0);
	CHECK_STR(pk.version, "3.12.1");
	/* "3.1" is not 3.11 or 3.12. */
	CHECK_INT(runtime_resolve(rt, "python", "3.1", &pk, err, sizeof(err)), -1);
	CHECK(strstr(err, "runtime python 3.1 not installed (found python 3.11.2 at "));
	CHECK(strstr(err, "python 3.9.18 at "));
	CHECK(!strstr(err, "9.9.9")); /* python3-config is not a python */
	CHECK_INT(runtime_resolve(rt, "python", "3.13", &pk, err, sizeof(err)), -1);
	CHECK(strstr(err, "runtime python 3.13 not installed (found python 3.11.2 at "));

	CHECK_INT(runtime_resolve(rt, "nodejs", "20", &pk, err, sizeof(err)), 0);
	CHECK_STR(pk.version, "20.11.1");
	CHECK_INT(runtime_resolve(rt, "nodejs", "18", &pk, err, sizeof(err)), 0);
	CHECK_STR(pk.version, "18.19.0");
	CHECK_INT(runtime_resolve(rt, "java", "17", &pk, err, sizeof(err)), 0);
	CHECK_STR(pk.version, "17.0.15");
	CHECK_INT(runtime_resolve(rt, "php", "8.2", &pk, err, sizeof(err)), 0);
	CHECK_STR(pk.version, "8.2.7");
	CHECK_INT(runtime_resolve(rt, "ruby", "3.1", &pk, err, sizeof(err)), 0);
	CHECK_STR(pk.version, "3.1.2");
	/* ruby3.3 is not executable. */
	CHECK_INT(runtime_resolve(rt, "ruby", "3.3", &pk, err, sizeof(err)), -1);
	CHECK_INT(runtime_resolve(rt, "golang", "1.19", &pk, err, sizeof(err)), 0);
	CHECK_STR(pk.version, "1.19.8");
	CHECK_INT(runtime_resolve(rt, "docker", NULL, &pk, err, sizeof(err)), 0);
	CHECK_STR(pk.version, "4.3.1");
	CHECK(strstr(pk.path, "/bin/podman"));
	/* dotnet fails its probe: not installed. */
	CHECK_INT(runtime_resolve(rt, "dotnet", "8", &pk, err, sizeof(err)), -1);
	CHECK_STR(err, "runtime dotnet 8 not installed (no dotnet found in PATH)");
	CHECK_INT(runtime_resolve(rt, "static", NULL, &pk, err, sizeof(err)), 0);
	CHECK(pk.version == NULL && pk.path == NULL);

	CHECK_INT(runtime_resolve(rt, "cobol", NULL, &pk, err, sizeof(err)), -1);
	CHECK(strstr(err, "runtime 'cobol' unknown (known: nodejs, python, "));
	CHECK_INT(runtime_resolve(rt, "python", "3.x", &pk, err, sizeof(err)), -1);
	CHECK(strstr(err, "runtime python version '3.x' invalid"));
	CHECK_INT(runtime_resolve(rt, "python", "3.11.2.1", &pk, err, sizeof(err)), -1);
	CHECK_INT(runtime_resolve(rt, "python", "-1", &pk, err, sizeof(err)), -1);

	/* The listing, in detection order. */
	size_t n = 0;
	while (runtime_installed(rt, "python", n, &pk))
		n++;
	CHECK_INT(n, 4);
	CHECK_INT(runtime_installed(rt, "nope", 0, &pk), 0);
	runtime_free(rt);
}

TEST(runtime_caches_until_refresh)
{
	char *dirs = fake_path();
	struct runtime *rt = runtime_new(dirs);
	struct runtime_pick pk;
	char err[512];
	CHECK_INT(runtime_resolve(rt, "nodejs", NULL, &pk, err, sizeof(err)), 0);
	CHECK_STR(pk.version, "20.11.1");
	script("bin", "node", "echo v22.1.0");
	CHECK_INT(runtime_resolve(rt, "nodejs", NULL, &pk, err, sizeof(err)), 0);
	CHECK_STR(pk.version, "20.11.1");
	runtime_refresh(rt);
	CHECK_INT(runtime_resolve(rt, "nodejs", "22", &pk, err, sizeof(err)), 0);
	CHECK_STR(pk.version, "22.1.0");
	runtime_free(rt);
	runtime_free(NULL);
	/* An empty search path finds nothing. */
	rt = runtime_new(NULL);
	CHECK_INT(runtime_resolve(rt, "python", NULL, &pk, err, sizeof(err)), -1);
	CHECK_STR(err, "runtime python not installed (no python found in PATH)");
	runtime_free(rt);
}

TEST(runtime_probe_that_hangs_is_cut_off)
{
	mkdir("slow", 0755);
	/* A probe that never ends is killed at its deadline (5 s) and skipped. */
	script("slow", "ruby", "exec /bin/sleep 60");
	char dirs[512];
	snprintf(dirs, sizeof(dirs), "%s/slow", harness_tmpdir);
	struct runtime *rt = runtime_new(dirs);
	struct runtime_pick pk;
	char err[512];
	CHECK_INT(runtime_resolve(rt, "ruby", NULL, &pk, err, sizeof(err)), -1);
	CHECK_STR(err, "runtime ruby not installed (no ruby found in PATH)");
	runtime_free(rt);
}

TEST(runtime_finds_the_real_python3)
{
	if (access("/usr/bin/python3", X_OK) != 0)
		return; /* prerequisite missing: skip */
	struct runtime *rt = runtime_new("/usr/bin");
	struct runtime_pick pk;
	char err[512];
	CHECK_INT(runtime_resolve(rt, "python", "3", &pk, err, sizeof(err)), 0);
	CHECK_STR(pk.path, "/usr/bin/python3");
	CHECK(runtime_version_match("3", pk.version));
	CHECK(strchr(pk.version, '.') != NULL);
	/* The same version asked for exactly resolves to it again. */
	char v[64];
	snprintf(v, sizeof(v), "%s", pk.version);
	CHECK_INT(runtime_resolve(rt, "python", v, &pk, err, sizeof(err)), 0);
	CHECK_STR(pk.version, v);
	CHECK_INT(runtime_resolve(rt, "python", "2.7", &pk, err, sizeof(err)), -1);
	CHECK(strstr(err, "runtime python 2.7 not installed (found python 3."));
	runtime_free(rt);
}
