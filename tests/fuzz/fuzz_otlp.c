/* fuzz_otlp.c - OTLP profiles, protobuf: the decoder on any bytes (whole, and
 * split by sample attributes), then the same bytes as a POST
 * /v1development/profiles (one series per resource and attribute set). */
#include "fuzz_server.h"
#include "format/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hm_profile *p = NULL;
	if (hm_decode_otlp(data, size, &p) == 0) {
		fuzz_roundtrip(p);
		hm_profile_free(p);
	}
	hm_pprof_split sp;
	if (hm_decode_otlp_split(data, size, &sp) == 0) {
		for (size_t i = 0; i < sp.n; i++) {
			FUZZ_ASSERT(sp.v[i].p && sp.v[i].nlabels <= HM_PPROF_MAX_LABEL_KEYS);
			fuzz_check_profile(sp.v[i].p);
		}
		hm_pprof_split_free(&sp);
	}
	fuzz_ingest("/v1development/profiles", "application/x-protobuf", NULL, data, size, NULL);
	return 0;
}
