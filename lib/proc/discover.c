/* discover.c - finding CPython processes via /proc (see discover.h).
 *
 * A /proc scan lists the numeric directories. The Python test is cheap on
 * purpose (it runs for every new process every scan period): the basename of
 * /proc/PID/exe, then a line-by-line look through /proc/PID/maps for
 * "libpython" (an embedded or shared-library interpreter such as uwsgi). */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc/discover.h"

int hm_discover_pids(pid_t *out, int max)
{
	return hm_discover_pids_ino(out, NULL, max);
}

int hm_discover_pids_ino(pid_t *out, uint64_t *ino, int max)
{
	DIR *d = opendir("/proc");
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while (n < max && (de = readdir(d))) {
		char *end;
		long v = strtol(de->d_name, &end, 10);
		if (*end || v <= 0 || !isdigit((unsigned char)de->d_name[0]))
			continue;
		if (ino)
			ino[n] = (uint64_t)de->d_ino;
		out[n++] = (pid_t)v;
	}
	closedir(d);
	return n;
}

/* Field `want` (>= 4) of /proc/PID/stat as a number; 0 if gone. comm may
 * hold spaces and parentheses: fields start after the last ')'. */
static uint64_t stat_field(pid_t pid, int want)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	p++;
	/* field 3 (state) is the first after ')'. */
	for (int field = 3; field < want && p; field++)
		p = strchr(p + 1, ' ');
	return p ? strtoull(p + 1, NULL, 10) : 0;
}

pid_t hm_proc_ppid(pid_t pid)
{
	return (pid_t)stat_field(pid, 4);
}

uint64_t hm_proc_starttime(pid_t pid)
{
	return stat_field(pid, 22);
}

int hm_proc_looks_python(pid_t pid)
{
	char path[64], exe[4096];
	snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
	ssize_t n = readlink(path, exe, sizeof exe - 1);
	if (n <= 0)
		return 0;   /* kernel thread, gone, or not ours to see */
	exe[n] = 0;
	const char *base = strrchr(exe, '/');
	base = base ? base + 1 : exe;
	if (!strncmp(base, "python", 6))
		return 1;
	snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	char line[4096];
	int found = 0;
	while (!found && fgets(line, sizeof line, f))
		found = strstr(line, "/libpython") != NULL;
	fclose(f);
	return found;
}

int hm_proc_exe_id(pid_t pid, uint64_t *dev, uint64_t *ino)
{
	char path[64];
	struct stat st;
	snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
	if (stat(path, &st) != 0)
		return -1;
	*dev = (uint64_t)st.st_dev;
	*ino = (uint64_t)st.st_ino;
	return 0;
}

char *hm_proc_cmdline(pid_t pid, size_t max)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	char *buf = malloc(max + 1);
	size_t len = 0;
	ssize_t r;
	while (buf && len < max && (r = read(fd, buf + len, max - len)) > 0)
		len += (size_t)r;
	close(fd);
	if (!buf || !len) {
		free(buf);
		return NULL;
	}
	while (len && buf[len - 1] == 0)
		len--;
	for (size_t i = 0; i < len; i++)
		if (buf[i] == 0)
			buf[i] = ' ';
	buf[len] = 0;
	return buf;
}

void hm_proc_program_name(const char *cmdline, size_t len, char *buf, size_t cap)
{
	const char *args[64];
	int n = 0;
	for (size_t i = 0; i < len && n < 64;) {
		args[n++] = cmdline + i;
		i += strnlen(cmdline + i, len - i) + 1;
	}
	const char *pick = NULL;
	int strip_py = 0;
	/* Interpreter options and the script are looked for only after a
	 * Python interpreter: a program embedding Python (uwsgi) or one that
	 * rewrote its command line is named by its own argv[0]. */
	const char *arg0 = n ? strrchr(args[0], '/') : NULL;
	arg0 = arg0 ? arg0 + 1 : n ? args[0] : "";
	int interp = !strncmp(arg0, "python", 6) || !strncmp(arg0, "pypy", 4);
	for (int i = 1; i < n && !pick && interp; i++) {
		const char *a = args[i];
		if (!strcmp(a, "-m") && i + 1 < n) {
			pick = args[i + 1];
		} else if (!strncmp(a, "-m", 2) && a[2]) {
			pick = a + 2;
		} else if (!strcmp(a, "-c") || !strcmp(a, "-")) {
			break;
		} else if (a[0] == '-') {
			if (!strcmp(a, "-X") || !strcmp(a, "-W") || !strcmp(a, "-Q"))
				i++;
		} else {
			pick = a;
			strip_py = 1;
		}
	}
	if (!pick)
		pick = n ? args[0] : "python";
	const char *base = strrchr(pick, '/');
	base = base ? base + 1 : pick;
	if (!*base)
		base = "python";
	snprintf(buf, cap, "%s", base);
	size_t bl = strlen(buf);
	if (strip_py && bl > 3 && !strcmp(buf + bl - 3, ".py"))
		buf[bl - 3] = 0;
}
