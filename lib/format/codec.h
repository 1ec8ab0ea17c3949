/* codec.h - binary/interchange encoders (pprof, OTLP) and the profile reader.
 *
 * The writers take a finished hm_profile; the reader turns any supported
 * file (collapsed text, speedscope JSON, pprof raw or gzip, OTLP binary or
 * JSON, optionally gzip-compressed) into a new hm_profile, detecting the
 * format from the content. Hostile input yields a negative hm_err with a
 * one-line hm_errmsg(), never a crash; decompressed input is capped. */
#ifndef HOMURA_CODEC_H
#define HOMURA_CODEC_H

#include <stddef.h>
#include <stdio.h>
#include "base/profile.h"
#include "format/encode.h"

/* Largest input accepted after gzip decompression. */
#define HM_READ_MAX_BYTES (256u << 20)
/* Stacks deeper than this are truncated (leaf side dropped) when read. */
#define HM_READ_MAX_DEPTH 4096

/* gzip-compressed pprof (perftools.profiles.Profile). */
int hm_write_pprof(const hm_profile *p, FILE *out, const hm_write_opts *o);
/* OTLP ExportProfilesServiceRequest (v1development), protobuf binary. */
int hm_write_otlp(const hm_profile *p, FILE *out, const hm_write_opts *o);
/* The same message in the OTLP/protobuf JSON mapping. */
int hm_write_otlp_json(const hm_profile *p, FILE *out, const hm_write_opts *o);

/* Encode into a malloc'd buffer (*buf, *len); caller frees. gzip selects a
 * gzip-compressed pprof (the on-disk form). */
int hm_encode_pprof(const hm_profile *p, int gzip, unsigned char **buf, size_t *len);
int hm_encode_otlp(const hm_profile *p, unsigned char **buf, size_t *len);

/* Read a profile from memory / from a file ("-" = stdin). On success *out
 * is a new profile (free with hm_profile_free) and *fmt_out (if non-NULL)
 * the detected format. */
int hm_profile_read(const void *buf, size_t len, hm_profile **out);
int hm_profile_read_fmt(const void *buf, size_t len, hm_profile **out, int *fmt_out);
int hm_profile_read_file(const char *path, hm_profile **out);

#endif
