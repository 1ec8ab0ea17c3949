/* decode.c - read a profile from bytes, detecting the format from content.
 *
 * gzip (1f 8b) is inflated first, capped at HM_READ_MAX_BYTES. Text that
 * starts with '{' is JSON: speedscope ("shared"/"profiles") or OTLP JSON
 * ("resourceProfiles"). Other text made of "frames count" lines is collapsed
 * stacks. Anything else is tried as an OTLP ExportProfilesServiceRequest and
 * then as pprof; the two differ in the wire types of fields 1 and 2, so a
 * message of one does not parse as the other. Each message is first checked
 * against the decoding limits (pbscan.c) so that a small body cannot unpack
 * into gigabytes. The readers are decode_*.c; what they share (frame text,
 * frame kinds) is decode_frame.c. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "format/codec.h"
#include "format/gzip.h"
#include "format/decode.h"
#include "format/encode.h"

static int looks_collapsed(const unsigned char *b, size_t len)
{
	size_t n = len < 4096 ? len : 4096;
	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (b[i] == 0 || (b[i] < 0x20 && b[i] != '\n' && b[i] != '\r' && b[i] != '\t'))
			return 0;
	return 1;
}

static int read_json(const unsigned char *buf, size_t len, hm_profile **out, int *fmt)
{
	int rc = hm_json_check((const char *)buf, len, "profile");
	if (rc < 0)
		return rc;
	json_error_t err;
	json_t *root = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &err);
	if (!root)
		return hm_error(HM_EINVAL, "invalid JSON at line %d: %s", err.line, err.text);
	if (json_is_object(root) && (json_object_get(root, "resourceProfiles") ||
				     json_object_get(root, "resource_profiles"))) {
		*fmt = HM_FMT_OTLP_JSON;
		rc = hm_decode_otlp_json(root, out);
	} else if (json_is_object(root) && (json_object_get(root, "shared") ||
					    json_object_get(root, "profiles"))) {
		*fmt = HM_FMT_SPEEDSCOPE;
		rc = hm_decode_speedscope(root, out);
	} else {
		rc = hm_error(HM_EINVAL, "JSON is neither speedscope nor OTLP profiles");
	}
	json_decref(root);
	return rc;
}

int hm_profile_read_fmt(const void *data, size_t len, hm_profile **out, int *fmt_out)
{
	const unsigned char *buf = data;
	unsigned char *inflated = NULL;
	int fmt = HM_FMT_UNKNOWN, rc;
	*out = NULL;
	if (len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) {
		size_t n;
		rc = hm_gunzip(buf, len, HM_READ_MAX_BYTES, &inflated, &n);
		if (rc < 0)
			return rc;
		buf = inflated;
		len = n;
	}
	if (len > HM_READ_MAX_BYTES) {
		free(inflated);
		return hm_error(HM_EINVAL, "input larger than %u MiB", HM_READ_MAX_BYTES >> 20);
	}
	size_t i = 0;
	while (i < len && isspace(buf[i]))
		i++;
	if (!len) {
		rc = hm_error(HM_EINVAL, "empty profile");
	} else if (i < len && buf[i] == '{' && looks_collapsed(buf, len)) {
		rc = read_json(buf, len, out, &fmt);
	} else if (looks_collapsed(buf, len)) {
		fmt = HM_FMT_COLLAPSED;
		rc = hm_decode_collapsed((const char *)buf, len, out);
	} else {
		fmt = HM_FMT_OTLP;
		rc = hm_decode_otlp(buf, len, out);
		if (rc == 1) {
			fmt = HM_FMT_PPROF;
			rc = hm_decode_pprof(buf, len, out);
		}
		if (rc == 1)
			rc = hm_error(HM_EINVAL, "unrecognised profile format (not collapsed, "
					"speedscope, pprof or OTLP)");
	}
	free(inflated);
	if (rc == HM_OK && fmt_out)
		*fmt_out = fmt;
	return rc;
}

int hm_profile_read(const void *buf, size_t len, hm_profile **out)
{
	return hm_profile_read_fmt(buf, len, out, NULL);
}

int hm_profile_read_file(const char *path, hm_profile **out)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	if (!f)
		return hm_error(HM_EINVAL, "cannot open %s: %s", path, strerror(errno));
	size_t cap = 1 << 16, len = 0;
	unsigned char *buf = malloc(cap);
	int rc = HM_OK;
	while (buf) {
		if (len == cap) {
			if (cap > HM_READ_MAX_BYTES) {
				rc = hm_error(HM_EINVAL, "%s: larger than %u MiB", path,
					      HM_READ_MAX_BYTES >> 20);
				break;
			}
			unsigned char *nb = realloc(buf, cap * 2);
			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0) {
			if (ferror(f))
				rc = hm_error(HM_EINVAL, "cannot read %s: %s", path, strerror(errno));
			break;
		}
	}
	if (f != stdin)
		fclose(f);
	if (!buf)
		return hm_error(HM_ENOMEM, "out of memory reading %s", path);
	if (rc == HM_OK) {
		rc = hm_profile_read(buf, len, out);
		if (rc < 0) {
			char msg[512];
			snprintf(msg, sizeof msg, "%s", hm_errmsg());
			hm_error(rc, "%s: %s", path, msg);
		}
	}
	free(buf);
	return rc;
}
