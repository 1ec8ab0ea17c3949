/* log.c - the library's one-line log (log.h): lines go to a function the
 * program sets, by default "homura: <msg>" on stderr. */
#include <stdarg.h>
#include <stdio.h>

#include "base/log.h"

static void log_stderr(int level, const char *msg)
{
	(void)level;
	fprintf(stderr, "homura: %s\n", msg);
}

static hm_log_fn log_fn = log_stderr;

void hm_log_set(hm_log_fn fn)
{
	log_fn = fn ? fn : log_stderr;
}

void hm_log(int level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	log_fn(level, buf);
}
