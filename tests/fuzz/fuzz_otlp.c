/* fuzz_otlp.c - OTLP profiles, protobuf: the decoder on any bytes, then the
 * same bytes as a POST /v1development/profiles (one series per resource). */
#include "fuzz_server.h"
#include "format/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hm_profile *p = NULL;
	if (hm_decode_otlp(data, size, &p) == 0) {
		fuzz_roundtrip(p);
		hm_profile_free(p);
	}
	fuzz_ingest("/v1development/profiles", "application/x-protobuf", NULL, data, size, NULL);
	return 0;
}
