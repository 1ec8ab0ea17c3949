/* fuzz_speedscope.c - the speedscope JSON reader on any bytes. */
#include <jansson.h>

#include "fuzz.h"
#include "format/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!root)
		return 0;
	hm_profile *p = NULL;
	if (hm_decode_speedscope(root, &p) == 0) {
		fuzz_roundtrip(p);
		hm_profile_free(p);
	}
	json_decref(root);
	return 0;
}
