/* fileio.c - creating files without following links (fileio.h).
 *
 * New files are opened with O_CREAT|O_EXCL|O_NOFOLLOW: O_EXCL alone already
 * fails on any existing name, a dangling symbolic link included, and
 * O_NOFOLLOW says so twice. Temporary names carry 64 random bits from
 * getrandom (a counter and the clock if that fails) and are retried on a
 * clash, so another user cannot plant a link under the name in advance.
 * Outputs are created in a directory opened once (O_DIRECTORY) and renamed
 * with renameat in that same directory. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "base/error.h"
#include "base/fileio.h"

int hm_create_file(int dirfd, const char *name, mode_t mode)
{
	return openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
}

static uint64_t random64(void)
{
	static __thread uint64_t counter;
	uint64_t r;
	if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r)
		return r;
	uint64_t ns = hm_mono_ns();
	r = ns ^ (ns << 30) ^ ((uint64_t)getpid() << 40) ^
	    (++counter * 0x9E3779B97F4A7C15ull);
	return r * 0xD6E8FEB86659FD93ull;
}

int hm_create_tmp(int dirfd, const char *prefix, mode_t mode, char *tmp, size_t cap)
{
	for (int tries = 0; tries < 100; tries++) {
		int n = snprintf(tmp, cap, ".%s.%016llx", prefix, (unsigned long long)random64());
		if (n < 0 || (size_t)n >= cap) {
			errno = ENAMETOOLONG;
			return -1;
		}
		int fd = hm_create_file(dirfd, tmp, mode);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	return -1;
}

/* Split path into its directory (opened) and final name. */
static int open_parent(const char *path, char **name)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
		errno = EISDIR;
		return -1;
	}
	int dfd;
	if (!slash) {
		dfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		size_t dl = slash == path ? 1 : (size_t)(slash - path);
		char *dir = strndup(path, dl);
		if (!dir)
			return -1;
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		free(dir);
	}
	if (dfd < 0)
		return -1;
	*name = strdup(base);
	if (!*name) {
		close(dfd);
		return -1;
	}
	return dfd;
}

/* 0: a file to replace atomically (absent or regular); 1: write in place
 * (/dev/null); -1: refused (hm_error set). */
static int classify(int dirfd, const char *name, const char *path)
{
	struct stat sb;
	if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno == ENOENT)
			return 0;
		return hm_error(HM_ESYS, "cannot write %s: %s", path, strerror(errno)), -1;
	}
	if (S_ISREG(sb.st_mode))
		return 0;
	if (S_ISLNK(sb.st_mode))
		return hm_error(HM_EINVAL, "refusing to write %s: it is a symbolic link", path), -1;
	if (S_ISDIR(sb.st_mode))
		return hm_error(HM_EINVAL, "cannot write %s: it is a directory", path), -1;
	struct stat dn;
	if (S_ISCHR(sb.st_mode) && stat("/dev/null", &dn) == 0 && dn.st_rdev == sb.st_rdev)
		return 1;
	return hm_error(HM_EINVAL, "refusing to write %s: it is not a regular file (%s)", path,
			S_ISFIFO(sb.st_mode) ? "a FIFO" : S_ISSOCK(sb.st_mode) ? "a socket"
							      : "a device"), -1;
}

static int output_open(hm_outfile *o, int dirfd, const char *name, const char *path, mode_t mode)
{
	int k = classify(dirfd, name, path);
	if (k < 0)
		return hm_errcode();
	if (k == 1) {
		o->f = fopen("/dev/null", "wb");
		if (!o->f)
			return hm_error(HM_ESYS, "cannot write %s: %s", path, strerror(errno));
		return HM_OK;
	}
	char tmp[512], pre[64];
	/* the final name's start keeps the temporary file recognisable */
	snprintf(pre, sizeof pre, "%.40s", name[0] == '.' ? name + 1 : name);
	int fd = hm_create_tmp(dirfd, pre, mode, tmp, sizeof tmp);
	if (fd < 0)
		return hm_error(HM_ESYS, "cannot write %s: %s", path, strerror(errno));
	o->f = fdopen(fd, "wb");
	o->tmp = strdup(tmp);
	o->name = strdup(name);
	o->dirfd = dirfd;
	if (!o->f || !o->tmp || !o->name) {
		if (o->f)
			fclose(o->f);
		else
			close(fd);
		o->f = NULL;
		unlinkat(dirfd, tmp, 0);
		free(o->tmp);
		free(o->name);
		o->tmp = o->name = NULL;
		o->dirfd = -1;
		return hm_error(HM_ENOMEM, "out of memory");
	}
	return HM_OK;
}

int hm_output_open(hm_outfile *o, const char *path, mode_t mode)
{
	memset(o, 0, sizeof *o);
	o->dirfd = -1;
	o->path = path;
	if (!strcmp(path, "-")) {
		o->f = stdout;
		return HM_OK;
	}
	char *name = NULL;
	int dfd = open_parent(path, &name);
	if (dfd < 0)
		return hm_error(HM_ESYS, "cannot write %s: %s", path, strerror(errno));
	int rc = output_open(o, dfd, name, path, mode);
	free(name);
	if (o->dirfd < 0)
		close(dfd);
	return rc;
}

static void output_release(hm_outfile *o)
{
	if (o->dirfd >= 0)
		close(o->dirfd);
	free(o->tmp);
	free(o->name);
	memset(o, 0, sizeof *o);
	o->dirfd = -1;
}

int hm_output_commit(hm_outfile *o)
{
	if (!o->f)
		return hm_error(HM_EINVAL, "cannot write %s: not open", o->path ? o->path : "?");
	int err = 0;
	if (o->f == stdout) {
		err = fflush(stdout) != 0 ? errno : 0;
		o->f = NULL;
	} else {
		err = ferror(o->f) ? EIO : 0;
		if (fclose(o->f) != 0 && !err)
			err = errno ? errno : EIO;
		o->f = NULL;
	}
	int rc = HM_OK;
	if (!err && o->dirfd >= 0 && renameat(o->dirfd, o->tmp, o->dirfd, o->name) != 0)
		err = errno;
	if (err) {
		rc = hm_error(HM_ESYS, "cannot write %s: %s", o->path ? o->path : o->name,
			      strerror(err));
		if (o->dirfd >= 0)
			unlinkat(o->dirfd, o->tmp, 0);
	}
	output_release(o);
	return rc;
}

void hm_output_abort(hm_outfile *o)
{
	if (o->f && o->f != stdout)
		fclose(o->f);
	else if (o->f == stdout)
		fflush(stdout);
	o->f = NULL;
	if (o->dirfd >= 0)
		unlinkat(o->dirfd, o->tmp, 0);
	output_release(o);
}

int hm_output_check(const char *path)
{
	hm_outfile o;
	int rc = hm_output_open(&o, path, 0600);
	if (rc != HM_OK)
		return rc;
	if (o.f == stdout)
		o.f = NULL;
	hm_output_abort(&o);
	return HM_OK;
}
