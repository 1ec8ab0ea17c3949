/* memory_stub.c - TEMPORARY stand-in for analyze/memory.c (memory.h) until
 * the memory half of `homura run` lands: every function is a weak symbol,
 * so the real memory.c replaces it when both are linked. hm_memsession_new
 * fails with "memory sampler not built". Delete this file at that merge. */
#include <stddef.h>

#include "analyze/memory.h"
#include "base/error.h"

#define WEAK __attribute__((weak))

WEAK int hm_memsession_new(const hm_memopts *o, hm_memsession **out)
{
	(void)o;
	*out = NULL;
	return hm_error(HM_EINVAL, "memory sampler not built");
}

WEAK void hm_memsession_free(hm_memsession *s) { (void)s; }
WEAK char *const *hm_memsession_env(hm_memsession *s)
{
	(void)s;
	static char *const none[] = {NULL};
	return none;
}
WEAK void hm_memsession_set_pid(hm_memsession *s, pid_t pid) { (void)s; (void)pid; }
WEAK int hm_memsession_poll(hm_memsession *s) { (void)s; return 0; }
WEAK void hm_memsession_finish(hm_memsession *s, double elapsed_s) { (void)s; (void)elapsed_s; }
WEAK int hm_memsession_available(const hm_memsession *s, const char **why_not)
{
	(void)s;
	if (why_not)
		*why_not = "memory sampler not built";
	return 0;
}
WEAK uint64_t hm_memsession_samples(const hm_memsession *s) { (void)s; return 0; }
WEAK size_t hm_memsession_lines(const hm_memsession *s, const hm_memline **lines)
{
	(void)s;
	*lines = NULL;
	return 0;
}
WEAK size_t hm_memsession_functions(const hm_memsession *s, const hm_memline **funcs)
{
	(void)s;
	*funcs = NULL;
	return 0;
}
WEAK size_t hm_memsession_timeline(const hm_memsession *s, const hm_mempoint **points)
{
	(void)s;
	*points = NULL;
	return 0;
}
WEAK int hm_memsession_profile(const hm_memsession *s, const char *kind, hm_profile *out)
{
	(void)s;
	(void)kind;
	(void)out;
	return hm_error(HM_EINVAL, "memory sampler not built");
}
