/* fuzz_collapsed.c - the folded / collapsed-stacks reader on any text. */
#include "fuzz.h"
#include "format/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hm_profile *p = NULL;
	if (hm_decode_collapsed((const char *)data, size, &p) == 0) {
		fuzz_roundtrip(p);
		hm_profile_free(p);
	}
	return 0;
}
