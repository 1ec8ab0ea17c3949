/* export_dir.c - the directory exporter (--dir PATH).
 *
 * Writes each profile synchronously (a local write takes well under a
 * millisecond) as homura-<service>-<pid>-<UTC time>.<suffix> in the chosen
 * format, through a hidden temporary file renamed into place so readers never
 * see half a file. The directory is opened once and files are created in it
 * by descriptor under random names with O_CREAT|O_EXCL|O_NOFOLLOW (fileio.h):
 * a symbolic link planted in the directory is never written through. Retention: when the homura-* files in the directory add
 * up to more than dir_max_bytes, the oldest (by modification time, then
 * name) are deleted until they take at most 90% of it; the newest file is
 * always kept. The directory is only listed when the running total (from the
 * last listing plus what was written since) passes the bound, so the cost of
 * a write does not grow with the number of files kept. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/export.h"
#include "base/error.h"
#include "base/fileio.h"
#include "format/encode.h"

typedef struct dir_impl {
	char *path;
	int dirfd;               /* the directory, held open */
	int fmt;
	uint64_t max_bytes;
	uint64_t known_total;    /* homura-* bytes at the last scan + written since */
	int scanned;
} dir_impl;

typedef struct dfile {
	char *name;
	time_t mtime;
	long mtime_ns;
	uint64_t size;
} dfile;

static const char *suffix_of(int fmt)
{
	switch (fmt) {
	case HM_FMT_COLLAPSED: return "txt";
	case HM_FMT_SPEEDSCOPE: return "speedscope.json";
	case HM_FMT_OTLP: return "otlp.pb";
	case HM_FMT_OTLP_JSON: return "otlp.json";
	case HM_FMT_SVG: return "svg";
	default: return "pb.gz";
	}
}

static int cmp_dfile(const void *a, const void *b)
{
	const dfile *x = a, *y = b;
	if (x->mtime != y->mtime)
		return x->mtime < y->mtime ? -1 : 1;
	if (x->mtime_ns != y->mtime_ns)
		return x->mtime_ns < y->mtime_ns ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Delete the oldest homura-* files until the total fits; returns how many
 * were deleted. */
static uint64_t enforce_retention(dir_impl *d)
{
	if (!d->max_bytes)
		return 0;
	int dfd = fcntl(d->dirfd, F_DUPFD_CLOEXEC, 0);
	DIR *dir = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!dir) {
		if (dfd >= 0)
			close(dfd);
		return 0;
	}
	rewinddir(dir);
	dfile *files = NULL;
	size_t n = 0, cap = 0;
	uint64_t total = 0;
	struct dirent *de;
	while ((de = readdir(dir))) {
		if (strncmp(de->d_name, "homura-", 7))
			continue;
		struct stat sb;
		if (fstatat(dirfd(dir), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(sb.st_mode))
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			dfile *nf = realloc(files, nc * sizeof *nf);
			if (!nf)
				break;
			files = nf;
			cap = nc;
		}
		files[n].name = strdup(de->d_name);
		if (!files[n].name)
			break;
		files[n].mtime = sb.st_mtim.tv_sec;
		files[n].mtime_ns = sb.st_mtim.tv_nsec;
		files[n].size = (uint64_t)sb.st_size;
		total += files[n].size;
		n++;
	}
	uint64_t deleted = 0;
	uint64_t target = d->max_bytes - d->max_bytes / 10;
	if (n > 1 && total > d->max_bytes) {
		qsort(files, n, sizeof *files, cmp_dfile);
		for (size_t i = 0; i + 1 < n && total > target; i++) {
			if (unlinkat(dirfd(dir), files[i].name, 0) == 0) {
				total -= files[i].size;
				deleted++;
			}
		}
	}
	closedir(dir);
	d->known_total = total;
	d->scanned = 1;
	for (size_t i = 0; i < n; i++)
		free(files[i].name);
	free(files);
	return deleted;
}

static int dir_write(void *impl, const hm_profile *p, hm_export_stats *st)
{
	dir_impl *d = impl;
	const hm_profile_meta *m = hm_profile_meta_cget(p);
	/* Labels may come from the target's environment: keep them from
	 * steering the path. */
	char svc[128], pid[32];
	const char *service = hm_export_label(p, "service.name");
	const char *pidl = hm_export_label(p, "process.pid");
	snprintf(svc, sizeof svc, "%s", service && *service ? service : "python");
	snprintf(pid, sizeof pid, "%s", pidl && *pidl ? pidl : "0");
	for (char *c = svc; *c; c++)
		if (*c == '/' || *c == ' ' || (unsigned char)*c < 32)
			*c = '_';
	for (char *c = pid; *c; c++)
		if (*c < '0' || *c > '9')
			*c = '_';
	uint64_t t = m->start_ns ? m->start_ns : (uint64_t)time(NULL) * 1000000000ull;
	time_t secs = (time_t)(t / 1000000000ull);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char stamp[64];
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
	char name[512], tmp[128];
	snprintf(name, sizeof name, "homura-%s-%s-%s.%03dZ.%s", svc, pid, stamp,
		 (int)((t / 1000000ull) % 1000), suffix_of(d->fmt));
	/* A new file under a random name in the directory we hold open, never
	 * through a link someone planted there; renameat replaces a link at the
	 * final name instead of following it. */
	int fd = hm_create_tmp(d->dirfd, "tmp-homura", 0666, tmp, sizeof tmp);
	FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
	if (!f) {
		int err = errno;
		if (fd >= 0) {
			close(fd);
			unlinkat(d->dirfd, tmp, 0);
		}
		return hm_error(HM_ESYS, "cannot write in %s: %s", d->path, strerror(err));
	}
	hm_write_opts wo = {NULL, 0};
	int rc = hm_profile_write(p, d->fmt, f, &wo);
	long size = ftell(f);
	if (fclose(f) != 0 && rc == HM_OK)
		rc = hm_error(HM_ESYS, "cannot write %s/%s: %s", d->path, name, strerror(errno));
	if (rc == HM_OK && renameat(d->dirfd, tmp, d->dirfd, name) != 0)
		rc = hm_error(HM_ESYS, "cannot write %s/%s: %s", d->path, name, strerror(errno));
	if (rc != HM_OK) {
		unlinkat(d->dirfd, tmp, 0);
		return rc;
	}
	st->sent_bytes = size > 0 ? (uint64_t)size : 0;
	d->known_total += st->sent_bytes;
	if (d->max_bytes && (!d->scanned || d->known_total > d->max_bytes))
		st->files_deleted = enforce_retention(d);
	return HM_OK;
}

static void dir_free(void *impl)
{
	dir_impl *d = impl;
	if (d) {
		free(d->path);
		if (d->dirfd >= 0)
			close(d->dirfd);
	}
	free(d);
}

static const hm_exporter_ops dir_ops = {
	.kind = "dir",
	.write = dir_write,
	.free = dir_free,
};

int hm_exporter_dir(const char *path, const hm_export_opts *o, hm_exporter **out)
{
	*out = NULL;
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		return hm_error(HM_ESYS, "cannot create %s: %s", path, strerror(errno));
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return hm_error(HM_EINVAL, "%s is not a directory: %s", path, strerror(errno));
	dir_impl *d = calloc(1, sizeof *d);
	if (!d || !(d->path = strdup(path))) {
		free(d);
		close(dfd);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	d->dirfd = dfd;
	d->fmt = o->dir_format ? o->dir_format : HM_FMT_PPROF;
	d->max_bytes = o->dir_max_bytes;
	char name[4200];
	snprintf(name, sizeof name, "dir %s", path);
	return hm_exporter_new(&dir_ops, d, name, o, out);
}
