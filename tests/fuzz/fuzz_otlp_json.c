/* fuzz_otlp_json.c - OTLP profiles in the protobuf JSON mapping: the
 * decoder, then the same bytes as a JSON POST /v1development/profiles (the
 * generic JSON-to-protobuf reader in pbjson.c). */
#include <jansson.h>

#include "fuzz_server.h"
#include "format/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (root) {
		hm_profile *p = NULL;
		if (hm_decode_otlp_json(root, &p) == 0) {
			fuzz_roundtrip(p);
			hm_profile_free(p);
		}
		json_decref(root);
	}
	fuzz_ingest("/v1development/profiles", "application/json", NULL, data, size, NULL);
	return 0;
}
