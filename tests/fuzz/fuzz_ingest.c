/* fuzz_ingest.c - Pyroscope's POST /ingest: query arguments (name=app.cpu{k=v},
 * format=folded|lines|pprof, from=, sampleRate=), multipart bodies, gzip.
 *
 * Input: "QUERY\nCONTENT-TYPE\nBODY": the first line is the query string
 * (k=v&k=v, already URL-decoded), the second the Content-Type (empty for
 * none; multipart/form-data; boundary=X selects the multipart reader). */
#include "fuzz_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl1 = memchr(data, '\n', size);
	if (!nl1)
		return 0;
	const uint8_t *nl2 = memchr(nl1 + 1, '\n', size - (size_t)(nl1 + 1 - data));
	if (!nl2)
		return 0;
	char *query = strndup((const char *)data, (size_t)(nl1 - data));
	char *ctype = strndup((const char *)nl1 + 1, (size_t)(nl2 - nl1 - 1));
	if (query && ctype)
		fuzz_ingest("/ingest", *ctype ? ctype : NULL, NULL, nl2 + 1,
			    size - (size_t)(nl2 + 1 - data), query);
	free(query);
	free(ctype);
	return 0;
}
