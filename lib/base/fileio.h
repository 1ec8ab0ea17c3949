/* fileio.h - creating files without following links.
 *
 * Every file homura creates (profiles from record/convert/diff, the agent's
 * --dir files and spool, statistics files) goes through these helpers, so a
 * symbolic link or FIFO planted where a file is about to be created is never
 * written through: new files are opened with O_CREAT|O_EXCL|O_NOFOLLOW under
 * an unpredictable temporary name, in a directory held open by descriptor,
 * and renamed into place (rename replaces a link, it does not follow it). */
#ifndef HOMURA_FILEIO_H
#define HOMURA_FILEIO_H

#include <stdio.h>
#include <sys/types.h>

/* Create dir/name, which must not exist (a symlink there counts as
 * existing): O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC. dirfd may be
 * AT_FDCWD. The descriptor, or -1 with errno. */
int hm_create_file(int dirfd, const char *name, mode_t mode);

/* Create a new file named ".<prefix>.<random>" in dirfd. Its name goes to
 * tmp (cap bytes). The descriptor, or -1 with errno. */
int hm_create_tmp(int dirfd, const char *prefix, mode_t mode, char *tmp, size_t cap);

/* An output file being written. */
typedef struct hm_outfile {
	FILE *f;                 /* write here */
	int dirfd;               /* -1: stdout or written in place */
	char *tmp, *name;        /* in dirfd: the temporary and final names */
	const char *path;        /* for messages */
} hm_outfile;

/* Whether path may be an output: "-" (stdout), /dev/null, or a path that is
 * absent or a regular file (not a symbolic link, FIFO or device) in a
 * directory where a file can be created (tried: a temporary file is created
 * and removed). HM_OK, or an hm_error with one line. */
int hm_output_check(const char *path);

/* Open an output: "-" is stdout and /dev/null is written in place; any other
 * path is checked as hm_output_check does and written to a temporary file in
 * the same directory, which hm_output_commit renames over path, so a failed
 * write never leaves half a file. mode is for the new file (umask applies). */
int hm_output_open(hm_outfile *o, const char *path, mode_t mode);
/* Flush, close and rename into place. HM_OK or an hm_error (the temporary
 * file is removed). */
int hm_output_commit(hm_outfile *o);
/* Close and remove the temporary file. */
void hm_output_abort(hm_outfile *o);

#endif
