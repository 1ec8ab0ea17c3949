/* gzip.h - gzip compression and decompression over zlib (gzip.c): the
 * on-disk pprof form, OTLP bodies, compressed uploads. */
#ifndef HOMURA_GZIP_H
#define HOMURA_GZIP_H

#include <stddef.h>

/* hm_gunzip refuses to produce more than max bytes. */
int hm_gzip(const void *in, size_t len, unsigned char **out, size_t *outlen);
int hm_gunzip(const void *in, size_t len, size_t max, unsigned char **out, size_t *outlen);

#endif
