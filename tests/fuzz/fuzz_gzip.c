/* fuzz_gzip.c - hm_gunzip on any bytes, under a cap chosen by the input.
 *
 * The first byte picks the cap (1 B .. 1 MiB); the output may never pass it,
 * and what inflates must compress and inflate back to the same bytes. */
#include "format/gzip.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t cap = (size_t)1 << (data[0] % 21);
	unsigned char *out = NULL;
	size_t n = 0;
	if (hm_gunzip(data + 1, size - 1, cap, &out, &n) != 0)
		return 0;
	FUZZ_ASSERT(n <= cap);
	unsigned char *z = NULL, *back = NULL;
	size_t zn = 0, bn = 0;
	FUZZ_ASSERT(hm_gzip(out, n, &z, &zn) == 0);
	FUZZ_ASSERT(hm_gunzip(z, zn, cap, &back, &bn) == 0);
	FUZZ_ASSERT(bn == n && (!n || !memcmp(back, out, n)));
	free(z);
	free(back);
	free(out);
	return 0;
}
