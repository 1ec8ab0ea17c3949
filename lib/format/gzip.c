/* gzip.c - gzip compression and decompression over zlib (gzip.h).
 *
 * hm_gzip makes the on-disk pprof form. hm_gunzip inflates gzip (or zlib)
 * data into a growing buffer and stops with an error as soon as the output
 * would pass the caller's cap, so a small "gzip bomb" cannot exhaust memory. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/error.h"
#include "format/gzip.h"

int hm_gzip(const void *in, size_t len, unsigned char **out, size_t *outlen)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return hm_error(HM_ENOMEM, "zlib: deflateInit failed");
	size_t cap = deflateBound(&z, len) + 64;
	unsigned char *buf = malloc(cap);
	if (!buf) {
		deflateEnd(&z);
		return hm_error(HM_ENOMEM, "out of memory compressing");
	}
	z.next_in = (Bytef *)in;
	z.next_out = buf;
	size_t left = len;
	int zr;
	do {
		uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
		z.avail_in = chunk;
		left -= chunk;
		z.avail_out = (uInt)(cap - z.total_out > (1u << 30) ? (1u << 30) : cap - z.total_out);
		zr = deflate(&z, left ? Z_NO_FLUSH : Z_FINISH);
	} while (zr == Z_OK || (zr == Z_BUF_ERROR && left));
	if (zr != Z_STREAM_END) {
		deflateEnd(&z);
		free(buf);
		return hm_error(HM_ESYS, "zlib: compression failed");
	}
	*outlen = z.total_out;
	*out = buf;
	deflateEnd(&z);
	return HM_OK;
}

int hm_gunzip(const void *in, size_t len, size_t max, unsigned char **out, size_t *outlen)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	if (inflateInit2(&z, 15 + 32) != Z_OK)   /* auto-detect gzip / zlib */
		return hm_error(HM_ENOMEM, "zlib: inflateInit failed");
	size_t cap = len * 4 + 4096, used = 0;
	if (cap > max + 1)
		cap = max + 1;
	unsigned char *buf = malloc(cap);
	if (!buf) {
		inflateEnd(&z);
		return hm_error(HM_ENOMEM, "out of memory decompressing");
	}
	z.next_in = (Bytef *)in;
	z.avail_in = len > UINT32_MAX ? UINT32_MAX : (uInt)len;
	int zr;
	for (;;) {
		if (used == cap) {
			if (cap > max) {
				free(buf);
				inflateEnd(&z);
				return hm_error(HM_EINVAL, "gzip data expands beyond the %zu MiB limit",
						max >> 20);
			}
			size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			unsigned char *nb = realloc(buf, ncap);
			if (!nb) {
				free(buf);
				inflateEnd(&z);
				return hm_error(HM_ENOMEM, "out of memory decompressing");
			}
			buf = nb;
			cap = ncap;
		}
		z.next_out = buf + used;
		z.avail_out = (uInt)(cap - used > (1u << 30) ? (1u << 30) : cap - used);
		zr = inflate(&z, Z_NO_FLUSH);
		used = z.total_out;
		if (zr == Z_STREAM_END)
			break;
		if (zr != Z_OK && !(zr == Z_BUF_ERROR && used == cap)) {
			free(buf);
			inflateEnd(&z);
			return hm_error(HM_EINVAL, "corrupt or truncated gzip data");
		}
	}
	inflateEnd(&z);
	if (used > max) {
		free(buf);
		return hm_error(HM_EINVAL, "gzip data expands beyond the %zu MiB limit", max >> 20);
	}
	*out = buf;
	*outlen = used;
	return HM_OK;
}
