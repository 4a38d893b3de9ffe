/* fetch: get a service's sources into a release directory.
 *
 * Both ways BLOCK until done (or their deadline): they are meant for a
 * deploy's own worker process or for tests, not for the agent's event loop
 * (which would start the same git argv with spawn_start and watch it).
 *
 * git (`source: remote`): git is run by argv (never a shell), through run()
 * in its own process group with one deadline for all steps; at the deadline
 * the group is killed. URL, branch and commit are checked first (see the
 * fetch_check_* functions) and passed after "--" or as option values, so
 * none can be read as an option. git runs with:
 *   - GIT_TERMINAL_PROMPT=0, GCM_INTERACTIVE=never, no DISPLAY or askpass
 *     program, and GIT_SSH_COMMAND="ssh -o BatchMode=yes": nothing can
 *     prompt, a missing credential is an error;
 *   - -c protocol.allow=never plus https, ssh and file allowed: the same
 *     policy as the URL check, for anything git itself would contact;
 *   - no submodules.
 * Messages never show the user part of an https URL (it may be a token):
 * it is left out of the URL we quote and masked in git's own words.
 * Steps: `git clone` (branch only: --depth 1 --single-branch; with a commit:
 * the full history of the branch, or of all branches without one), then
 * `git checkout --detach COMMIT --` when a commit is asked for, then
 * `git rev-parse HEAD`, which is reported as the resolved commit.
 *
 * archives (`source: upload`): a tar reader of our own (ustar, pax and GNU
 * long names; gzip through a child `gzip -dc`, for archive files only)
 * extracts into an existing root directory and refuses, with nothing
 * written outside the root:
 *   - absolute names, ".." components, names with NUL, names over 4096 bytes;
 *   - device files and FIFOs; other entry types but file, directory,
 *     symlink and hardlink (and the pax/GNU headers that describe them);
 *   - symlinks whose target is absolute, or whose ".." components are not
 *     all leading, or are more than the link's depth (so every link stays
 *     inside the root, even through other links);
 *   - hardlinks whose target is not a valid name inside the archive;
 *   - entries below an existing symlink (paths are resolved with openat2
 *     RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS where the
 *     kernel has it, else component by component with O_NOFOLLOW from a
 *     directory fd);
 *   - more file bytes or entries than the limits; bad header checksums;
 *     an archive that ends before its end-of-archive blocks.
 * Modes keep only the permission bits (setuid, setgid and sticky are
 * dropped; directories get at least 0700). Owners and times are not
 * restored: files belong to the extracting user. A later entry of the same
 * name replaces a file or link (never a directory). Problems with single
 * entries are all reported (the entries skipped); a broken archive stops
 * at once. On failure the root may hold part of the archive: the caller
 * removes it.
 */
#ifndef DPLOYR_FETCH_H
#define DPLOYR_FETCH_H

#include <stddef.h>

/* Checks, each 0 or -1 with a reason in err. */
/* https://HOST/..., ssh://[USER@]HOST[:PORT]/..., USER@HOST:PATH, or
 * file:///ABSOLUTE; no whitespace or control characters, nothing that git
 * reads as an option or a transport helper (ext::, fd::). */
int fetch_check_url(const char *url, char *err, size_t errlen);
/* A git ref name (git check-ref-format's rules) not starting with '-'. */
int fetch_check_branch(const char *branch, char *err, size_t errlen);
/* 7 to 40 hex digits. */
int fetch_check_commit(const char *commit, char *err, size_t errlen);

struct fetch_git_opts {
	const char *url;
	const char *branch; /* NULL: the remote's default branch */
	const char *commit; /* NULL: the branch's head */
	const char *dir;    /* created by the clone: must not exist, or be empty */
	const char *home;   /* HOME for git (ssh keys, config) [/nonexistent] */
	const char *path;   /* PATH for git [/usr/local/bin:/usr/bin:/bin] */
	int timeout_ms;	    /* for all steps together [600000] */
};

/* Clone and check out; the resolved commit (40 hex digits) in commit.
 * -1 with a reason in err ("git clone 'URL': fatal: Remote branch x not
 * found in upstream origin", "git: timed out ..."). */
int fetch_git(const struct fetch_git_opts *o, char commit[41], char *err, size_t errlen);

struct fetch_untar_opts {
	unsigned long long max_bytes; /* regular file bytes in total [1 GiB] */
	size_t max_entries;	      /* entries of any kind [100000] */
	int no_openat2;		      /* always resolve component by component (tests) */
};

/* Extract the archive file open on fd (read from offset 0; gzip detected by
 * its magic bytes) into the existing directory root. 0, or -1 with every
 * problem in err ("entry '../x': name escapes the root; ..."). */
int fetch_untar_fd(int fd, const char *root, const struct fetch_untar_opts *o, char *err,
		   size_t errlen);
/* The same for an uncompressed archive in memory (gzip is refused). */
int fetch_untar_mem(const void *data, size_t n, const char *root, const struct fetch_untar_opts *o,
		    char *err, size_t errlen);

#endif
