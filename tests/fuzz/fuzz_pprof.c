/* fuzz_pprof.c - the pprof (perftools.profiles.Profile) decoder on any bytes. */
#include "fuzz.h"
#include "format/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hm_profile *p = NULL;
	if (hm_decode_pprof(data, size, &p) == 0) {
		fuzz_roundtrip(p);
		hm_profile_free(p);
	}
	return 0;
}
