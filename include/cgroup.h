/* cgroup: one control group per service, with the blueprint's `resources`
 * (memory, cpu, pids) as limits.
 *
 * Two layouts, detected from the root (normally /sys/fs/cgroup):
 *   v2 (unified): ROOT/cgroup.controllers exists. The group is ROOT/PATH;
 *     limits go to memory.max, cpu.max ("QUOTA 100000"), pids.max. The
 *     controllers needed are enabled in cgroup.subtree_control of every
 *     ancestor below ROOT (v2's "no internal processes" rule: the agent must
 *     not itself live in one of those ancestors, e.g. systemd's Delegate=yes
 *     with the agent in a leaf of its own).
 *   v1 (hybrid or legacy): one hierarchy per controller, ROOT/memory,
 *     ROOT/cpu, ROOT/pids. The group is ROOT/CTRL/PATH in each hierarchy
 *     that is mounted; limits go to memory.limit_in_bytes,
 *     cpu.cfs_period_us + cpu.cfs_quota_us, pids.max. A limit asked for in
 *     a hierarchy that is missing is an error.
 *
 * Joining: the group's cgroup.procs files are kept open, and spawn_opts's
 * cgroup_fds make the child join them right after fork, before it drops
 * privileges or execs, so no instruction of the service runs outside its
 * limits (and its own children inherit them).
 */
#ifndef DPLOYR_CGROUP_H
#define DPLOYR_CGROUP_H

#include <stddef.h>
#include <sys/types.h>

enum cgroup_mode { CGROUP_NONE = 0, CGROUP_V1, CGROUP_V2 };

/* Zero means no limit. */
struct cgroup_limits {
	long long memory; /* bytes */
	int cpu_millis;	  /* thousandths of one CPU: 500 is half a CPU */
	int pids;	  /* most tasks at once */
};

struct cgroup;

/* The layout under root: V2, V1 (a memory, cpu or pids hierarchy mounted
 * below root), or NONE. */
enum cgroup_mode cgroup_detect(const char *root);

/* Create the group PATH (relative, '/'-separated, no "." or ".." parts;
 * missing parents are created) under root, write limits, and open its
 * cgroup.procs files. An existing group is reused (limits rewritten).
 * NULL on failure, with "cgroup 'PATH': reason" in err. */
struct cgroup *cgroup_open(const char *root, const char *path, const struct cgroup_limits *limits,
			   char *err, size_t errlen);
/* Closes the fds; the group stays (processes in it keep running). Accepts
 * NULL. */
void cgroup_free(struct cgroup *cg);
enum cgroup_mode cgroup_mode(const struct cgroup *cg);
/* The open cgroup.procs fds for spawn_opts.cgroup_fds; owned by cg. */
const int *cgroup_fds(const struct cgroup *cg, size_t *n);
/* 1 if pid is a member of the group (in every hierarchy), 0 if not, -1 on
 * a read error. */
int cgroup_has(const struct cgroup *cg, pid_t pid);
/* Remove the group's directories (not its parents). Fails (EBUSY) while
 * processes remain in it. */
int cgroup_remove(struct cgroup *cg, char *err, size_t errlen);

#endif
