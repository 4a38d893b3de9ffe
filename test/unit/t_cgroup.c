#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "harness.h"
#include "spawn.h"

#define CG_ROOT "/sys/fs/cgroup"

/* Real cgroups need root and a writable hierarchy; skip (pass) otherwise. */
static int cg_usable(const char *root, enum cgroup_mode want)
{
	if (geteuid() != 0 || cgroup_detect(root) != want) {
		fprintf(stderr, "    (no writable cgroup %s at %s: skipped)\n",
			want == CGROUP_V2 ? "v2" : "v1", root);
		return 0;
	}
	return 1;
}

static const char *slurp(const char *path)
{
	static struct buf b;
	char err[256];
	buf_release(&b);
	if (buf_read_file(&b, path, 4096, err, sizeof(err)) < 0)
		harness_fail(__FILE__, __LINE__, "%s", err);
	while (b.len && b.data[b.len - 1] == '\n')
		buf_truncate(&b, b.len - 1);
	return b.data;
}

/* Start argv in cg; returns the pid (stdout+stderr into out_fd if >= 0). */
static pid_t start_in(struct cgroup *cg, const char *const *argv, int out_fd)
{
	size_t n;
	const int *fds = cgroup_fds(cg, &n);
	struct spawn_opts o = {.argv = argv,
			       .cgroup_fds = fds,
			       .ncgroup_fds = n,
			       .out = out_fd >= 0 ? SPAWN_FD : SPAWN_NULL,
			       .out_fd = out_fd,
			       .err = SPAWN_STDOUT};
	struct spawn_proc p;
	char err[256];
	if (spawn_start(&o, &p, err, sizeof(err)) < 0)
		harness_fail(__FILE__, __LINE__, "%s", err);
	return p.pid;
}

static int wait_for(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			harness_fail(__FILE__, __LINE__, "waitpid: %s", strerror(errno));
	return st;
}

static void rmdir_all(const char *const *dirs)
{
	for (; *dirs; dirs++)
		rmdir(*dirs);
}

TEST(cgroup_refuses_bad_paths_and_missing_hierarchies)
{
	char err[256];
	const char *bad[] = {"", "/abs", "a/../b", "..", "a//b", "a/", "./a", NULL};
	for (int i = 0; bad[i]; i++) {
		CHECK(cgroup_open(CG_ROOT, bad[i], NULL, err, sizeof(err)) == NULL);
		CHECK(strstr(err, "not a relative path of names"));
	}
	/* the test's temp dir holds no hierarchy */
	CHECK_INT(cgroup_detect("."), CGROUP_NONE);
	CHECK(cgroup_open(".", "svc", NULL, err, sizeof(err)) == NULL);
	CHECK_STR(err, "cgroup 'svc': no cgroup hierarchy under '.'");
	struct cgroup_limits neg = {.memory = -1};
	CHECK(cgroup_open(CG_ROOT, "svc", &neg, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "negative limit"));
	cgroup_free(NULL);
}

TEST(cgroup_spawn_reports_a_failed_join)
{
	int ro = open("/dev/null", O_RDONLY | O_CLOEXEC);
	CHECK(ro >= 0);
	const char *argv[] = {"/bin/true", NULL};
	struct spawn_opts o = {.argv = argv, .cgroup_fds = &ro, .ncgroup_fds = 1};
	struct spawn_proc p;
	char err[256];
	CHECK_INT(spawn_start(&o, &p, err, sizeof(err)), -1);
	CHECK_STR(err, "spawn '/bin/true': join cgroup: Bad file descriptor");
	close(ro);
}

/* This host's layout: v1 hierarchies under /sys/fs/cgroup (Debian 12 hosts
 * are v2, tested below where a v2 mount is present). */
TEST(cgroup_v1_limits_and_join)
{
	if (!cg_usable(CG_ROOT, CGROUP_V1))
		return;
	char top[64], path[96], err[512];
	snprintf(top, sizeof(top), "dployr-test-%d", (int)getpid());
	snprintf(path, sizeof(path), "%s/web", top);
	struct cgroup_limits l = {.memory = 64 << 20, .cpu_millis = 500, .pids = 2};
	struct cgroup *cg = cgroup_open(CG_ROOT, path, &l, err, sizeof(err));
	if (!cg)
		harness_fail(__FILE__, __LINE__, "%s", err);
	CHECK_INT(cgroup_mode(cg), CGROUP_V1);
	char f[256];
	snprintf(f, sizeof(f), CG_ROOT "/memory/%s/memory.limit_in_bytes", path);
	CHECK_STR(slurp(f), "67108864");
	snprintf(f, sizeof(f), CG_ROOT "/cpu/%s/cpu.cfs_quota_us", path);
	CHECK_STR(slurp(f), "50000");
	snprintf(f, sizeof(f), CG_ROOT "/cpu/%s/cpu.cfs_period_us", path);
	CHECK_STR(slurp(f), "100000");
	snprintf(f, sizeof(f), CG_ROOT "/pids/%s/pids.max", path);
	CHECK_STR(slurp(f), "2");

	/* the child is a member before it runs anything */
	const char *cat[] = {"/bin/cat", "/proc/self/cgroup", NULL};
	int out = open("out", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(out >= 0);
	CHECK(WIFEXITED(wait_for(start_in(cg, cat, out))));
	close(out);
	char want[128];
	snprintf(want, sizeof(want), ":memory:/%s\n", path);
	CHECK(strstr(slurp("out"), want));
	snprintf(want, sizeof(want), ":pids:/%s\n", path);
	CHECK(strstr(slurp("out"), want));

	const char *sl[] = {"/bin/sleep", "30", NULL};
	pid_t pid = start_in(cg, sl, -1);
	CHECK_INT(cgroup_has(cg, pid), 1);
	CHECK_INT(cgroup_has(cg, getpid()), 0);
	CHECK_INT(cgroup_remove(cg, err, sizeof(err)), -1); /* busy */
	if (!strstr(err, "busy"))
		harness_fail(__FILE__, __LINE__, "%s", err);
	kill(pid, SIGKILL);
	wait_for(pid);

	/* pids.max = 2: a shell cannot start three sleeps at once */
	const char *sh[] = {"/bin/sh", "-c", "sleep 5 & sleep 5 & sleep 5 & wait; echo done", NULL};
	out = open("out2", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	pid = start_in(cg, sh, out);
	int st = wait_for(pid);
	close(out);
	spawn_kill_group(pid, SIGKILL); /* none: not a group leader; harmless */
	const char *o2 = slurp("out2");
	CHECK(strstr(o2, "fork") || strstr(o2, "Resource temporarily unavailable") ||
	      !WIFEXITED(st) || WEXITSTATUS(st) != 0);
	/* let the sleeps that did start go */
	for (int i = 0; i < 200 && cgroup_remove(cg, err, sizeof(err)) < 0; i++) {
		char procs[256];
		snprintf(procs, sizeof(procs), CG_ROOT "/pids/%s/cgroup.procs", path);
		struct buf b = BUF_INIT;
		buf_read_file(&b, procs, 4096, err, sizeof(err));
		for (char *s = b.data; *s;
		     s = strchr(s, '\n') ? strchr(s, '\n') + 1 : s + strlen(s))
			if (atoi(s) > 1)
				kill(atoi(s), SIGKILL);
		buf_release(&b);
		usleep(20000);
	}
	CHECK_INT(cgroup_remove(cg, err, sizeof(err)), 0);
	char d1[128], d2[128], d3[128];
	snprintf(d1, sizeof(d1), CG_ROOT "/memory/%s", top);
	snprintf(d2, sizeof(d2), CG_ROOT "/cpu/%s", top);
	snprintf(d3, sizeof(d3), CG_ROOT "/pids/%s", top);
	const char *dirs[] = {d1, d2, d3, NULL};
	rmdir_all(dirs);
	struct stat stt;
	CHECK(stat(d1, &stt) < 0);
	cgroup_free(cg);
}

/* cgroup v2: on this hybrid host the unified mount has no memory/cpu/pids
 * controllers (they are bound to v1), so only joining, and the refusal of
 * a limit whose controller is missing, can be tested here. */
TEST(cgroup_v2_join_and_missing_controller)
{
	const char *root = CG_ROOT "/unified";
	if (cgroup_detect(CG_ROOT) == CGROUP_V2)
		root = CG_ROOT;
	if (!cg_usable(root, CGROUP_V2))
		return;
	char top[64], path[96], err[512], dir[256];
	snprintf(top, sizeof(top), "dployr-test-%d", (int)getpid());
	snprintf(path, sizeof(path), "%s/job", top);
	struct cgroup *cg = cgroup_open(root, path, NULL, err, sizeof(err));
	if (!cg)
		harness_fail(__FILE__, __LINE__, "%s", err);
	CHECK_INT(cgroup_mode(cg), CGROUP_V2);
	const char *sl[] = {"/bin/sleep", "30", NULL};
	pid_t pid = start_in(cg, sl, -1);
	CHECK_INT(cgroup_has(cg, pid), 1);
	char want[128], f[64];
	snprintf(want, sizeof(want), "0::/%s\n", path);
	snprintf(f, sizeof(f), "/proc/%d/cgroup", (int)pid);
	struct buf b = BUF_INIT;
	CHECK_INT(buf_read_file(&b, f, 4096, err, sizeof(err)), 0);
	CHECK(strstr(b.data, want));
	buf_release(&b);
	kill(pid, SIGKILL);
	wait_for(pid);
	for (int i = 0; i < 100 && cgroup_remove(cg, err, sizeof(err)) < 0; i++)
		usleep(20000);
	CHECK_INT(cgroup_remove(cg, err, sizeof(err)), 0);
	cgroup_free(cg);

	snprintf(dir, sizeof(dir), "%s/cgroup.controllers", root);
	struct buf c = BUF_INIT;
	CHECK_INT(buf_read_file(&c, dir, 4096, err, sizeof(err)), 0);
	if (!strstr(c.data, "memory")) {
		struct cgroup_limits l = {.memory = 1 << 26};
		CHECK(cgroup_open(root, path, &l, err, sizeof(err)) == NULL);
		CHECK(strstr(err, "controller 'memory' is not available in"));
		snprintf(dir, sizeof(dir), "%s/%s", root, path);
		rmdir(dir);
	} else {
		/* a real v2 host: the limits are written */
		struct cgroup_limits l = {.memory = 1 << 26, .cpu_millis = 250, .pids = 8};
		cg = cgroup_open(root, path, &l, err, sizeof(err));
		if (!cg)
			harness_fail(__FILE__, __LINE__, "%s", err);
		snprintf(dir, sizeof(dir), "%s/%s/memory.max", root, path);
		CHECK_STR(slurp(dir), "67108864");
		snprintf(dir, sizeof(dir), "%s/%s/cpu.max", root, path);
		CHECK_STR(slurp(dir), "25000 100000");
		snprintf(dir, sizeof(dir), "%s/%s/pids.max", root, path);
		CHECK_STR(slurp(dir), "8");
		CHECK_INT(cgroup_remove(cg, err, sizeof(err)), 0);
		cgroup_free(cg);
	}
	buf_release(&c);
	snprintf(dir, sizeof(dir), "%s/%s", root, top);
	CHECK_INT(rmdir(dir), 0);
}
