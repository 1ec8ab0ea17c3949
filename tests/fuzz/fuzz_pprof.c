/* fuzz_pprof.c - the pprof (perftools.profiles.Profile) decoder on any bytes:
 * hm_decode_pprof, and hm_decode_pprof_split with ingest's plan (one profile
 * per sample type, split by per-sample labels). */
#include "fuzz.h"
#include "format/decode.h"
#include "server/ptype.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hm_profile *p = NULL;
	if (hm_decode_pprof(data, size, &p) == 0) {
		fuzz_roundtrip(p);
		hm_profile_free(p);
	}
	hm_ptype_plan plan = {.fallback = "process_cpu"};
	hm_pprof_split sp = {.group_labels = 1};
	if (hm_decode_pprof_split(data, size, hm_ptype_plan_fn, &plan, &sp) >= 0) {
		for (size_t i = 0; i < sp.n; i++) {
			FUZZ_ASSERT(sp.v[i].p && sp.v[i].pair >= 0 &&
				    sp.v[i].pair < HM_PPROF_MAX_PARTS);
			FUZZ_ASSERT(sp.v[i].nlabels <= HM_PPROF_MAX_LABEL_KEYS);
			FUZZ_ASSERT(hm_store_label_name_ok(plan.types[sp.v[i].pair]));
			fuzz_check_profile(sp.v[i].p);
		}
		hm_pprof_split_free(&sp);
	}
	return 0;
}
