/* fuzz_read.c - hm_profile_read, the entry point for profile files: gzip,
 * format detection and every decoder behind it. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hm_profile *p = NULL;
	int fmt = 0;
	if (hm_profile_read_fmt(data, size, &p, &fmt) == 0) {
		FUZZ_ASSERT(fmt != HM_FMT_UNKNOWN);
		fuzz_roundtrip(p);
		hm_profile_free(p);
	}
	return 0;
}
