/* fuzz_push.c - Pyroscope's Push (POST /push.v1.PusherService/Push): series
 * of labels with raw pprof samples, as protobuf or JSON.
 *
 * Input: one flags byte (bit 0: JSON body, bit 1: Content-Encoding gzip),
 * then the body. */
#include "fuzz_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	fuzz_ingest("/push.v1.PusherService/Push",
		    data[0] & 1 ? "application/json" : "application/proto",
		    data[0] & 2 ? "gzip" : NULL, data + 1, size - 1, NULL);
	return 0;
}
