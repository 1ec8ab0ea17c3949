/* parse.h - parsing times, durations and sizes given as text (command-line
 * options, query arguments). Each returns HM_OK, or HM_EINVAL with one
 * error line (error.h) and *out untouched. */
#ifndef HOMURA_PARSE_H
#define HOMURA_PARSE_H

#include <stdint.h>

/* Times: unix seconds, milliseconds (> 1e11), "now", "now-1h" (s m h d w).
 * HM_EINVAL on anything else. */
int hm_parse_time(const char *text, int64_t now_s, int64_t *out);
/* Durations: "30s", "15m", "7d", plain seconds. */
int hm_parse_duration(const char *text, int64_t *out);
/* Sizes: bytes ("1048576"), or a number (fraction allowed: "1.5G") with a
 * K, M, G or T suffix (powers of 1024), optionally followed by "i" and/or
 * "B" ("64M", "64MB", "64MiB", "100B"); at most 1 PiB. HM_EINVAL otherwise. */
int hm_parse_size(const char *text, int64_t *out);

#endif
