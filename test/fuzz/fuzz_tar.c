/* Fuzz the tar extractor: unpack arbitrary bytes into a fresh root inside
 * a cage directory, then check that nothing appeared beside the root, that
 * the root holds only directories, regular files and symlinks whose
 * targets stay inside, and remove it. The first byte picks openat2 or the
 * component walk. */
#include <dirent.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char cage[64];
static char root[96];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	if (flag == FTW_DP || flag == FTW_D)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static int check_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)f;
	if (flag == FTW_SL) {
		char t[4097];
		ssize_t n = readlink(path, t, sizeof(t) - 1);
		if (n <= 0 || t[0] == '/')
			abort(); /* an absolute or unreadable link was made */
		return 0;
	}
	if (flag == FTW_F && !S_ISREG(st->st_mode))
		abort(); /* a device, fifo or socket was made */
	if (flag == FTW_F && (st->st_mode & 07000))
		abort(); /* setuid/setgid/sticky kept */
	return 0;
}

/* The cage must hold exactly one entry: the root. */
static void check_cage(void)
{
	DIR *d = opendir(cage);
	if (!d)
		abort();
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, "root"))
			abort(); /* written outside the root */
	closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!cage[0]) {
		snprintf(cage, sizeof(cage), "/tmp/fuzz_tar.XXXXXX");
		if (!mkdtemp(cage))
			abort();
		snprintf(root, sizeof(root), "%s/root", cage);
	}
	if (size < 1)
		return 0;
	if (mkdir(root, 0755) < 0)
		abort();
	struct fetch_untar_opts o = {
	    .max_bytes = 1 << 20, .max_entries = 64, .no_openat2 = data[0] & 1};
	char err[4096];
	fetch_untar_mem(data + 1, size - 1, root, &o, err, sizeof(err));
	check_cage();
	nftw(root, check_one, 16, FTW_PHYS);
	nftw(root, rm_one, 16, FTW_PHYS | FTW_DEPTH);
	if (access(root, F_OK) == 0)
		abort(); /* could not be removed: something odd was made */
	return 0;
}
