/* error.c - the last error of the calling thread.
 *
 * Every failing library call records a code and a one-line message here via
 * hm_error(); front ends read them back with hm_errmsg()/hm_errcode(). Both
 * live in thread-local storage, so sampler threads never clobber each
 * other's messages, and nothing is ever allocated. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/error.h"

#define HM_ERRMSG_MAX 512

static __thread char errmsg[HM_ERRMSG_MAX];
static __thread int errcode;

int hm_error(int code, const char *fmt, ...)
{
	char tmp[HM_ERRMSG_MAX];
	va_list ap;

	/* Format into a temporary first: callers may wrap the previous
	 * message, hm_error(c, "...: %s", hm_errmsg()), which would otherwise
	 * make vsnprintf read and write the same buffer. */
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	memcpy(errmsg, tmp, sizeof(errmsg));
	errcode = code;
	return code;
}

const char *hm_errmsg(void)
{
	return errmsg[0] ? errmsg : "no error";
}

int hm_errcode(void)
{
	return errcode;
}
