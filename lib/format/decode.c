/* decode.c - read a profile from bytes, detecting the format from content.
 *
 * gzip (1f 8b) is inflated first, capped at HM_READ_MAX_BYTES. Text that
 * starts with '{' is JSON: speedscope ("shared"/"profiles") or OTLP JSON
 * ("resourceProfiles"). Other text made of "frames count" lines is collapsed
 * stacks. Anything else is tried as an OTLP ExportProfilesServiceRequest and
 * then as pprof; the two differ in the wire types of fields 1 and 2, so a
 * message of one does not parse as the other. Each message is first checked
 * against the decoding limits (pbscan.c) so that a small body cannot unpack
 * into gigabytes. Also here: the collapsed
 * reader and the parser of homura's frame text. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "format/codec.h"
#include "format/gzip.h"
#include "format/decode.h"
#include "format/encode.h"

int hm_decode_guess_kind(const char *file)
{
	size_t n = strlen(file);
	if ((n > 3 && !strcmp(file + n - 3, ".py")) || (n > 4 && !strcmp(file + n - 4, ".pyx")) ||
	    (n > 2 && file[0] == '<' && file[n - 1] == '>'))
		return HM_FRAME_PYTHON;
	return HM_FRAME_NATIVE;
}

uint32_t hm_decode_frame_text(hm_profile *p, const char *s, size_t len)
{
	hm_frame f = {0};
	size_t name_len = len;
	if (len > 3 && s[len - 1] == ')') {
		/* The last " (" opens the location. */
		for (size_t i = len - 1; i-- > 0;) {
			if (s[i] == '(' && i > 0 && s[i - 1] == ' ') {
				const char *in = s + i + 1;
				size_t in_len = len - 1 - (i + 1);
				size_t colon = in_len;
				for (size_t k = in_len; k-- > 0;)
					if (in[k] == ':') {
						colon = k;
						break;
					}
				size_t file_len = in_len;
				if (colon < in_len && colon + 1 < in_len && in_len - colon <= 10) {
					int digits = 1;
					for (size_t k = colon + 1; k < in_len; k++)
						digits &= isdigit((unsigned char)in[k]) != 0;
					if (digits) {
						file_len = colon;
						f.line = (int32_t)strtol(in + colon + 1, NULL, 10);
					}
				}
				f.file = hm_profile_intern(p, in, file_len);
				name_len = i - 1;
				break;
			}
		}
	}
	f.name = hm_profile_intern(p, s, name_len);
	const char *file = hm_profile_str(p, f.file);
	f.kind = f.file ? hm_decode_guess_kind(file) : HM_FRAME_NATIVE;
	if (!f.file && name_len > 7 && !memcmp(s, "thread ", 7))
		f.kind = HM_FRAME_THREAD;
	return hm_profile_frame_id(p, &f);
}

int hm_decode_collapsed(const char *buf, size_t len, hm_profile **out)
{
	hm_profile *p = hm_profile_new(0);
	uint32_t *frames = malloc(HM_READ_MAX_DEPTH * sizeof *frames);
	if (!p || !frames) {
		hm_profile_free(p);
		free(frames);
		return hm_error(HM_ENOMEM, "out of memory reading collapsed stacks");
	}
	uint32_t thread = hm_profile_thread_id(p, 0, 0, NULL);
	size_t lineno = 0, pos = 0, nonempty = 0;
	while (pos < len) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - line) : len - pos;
		pos += ll + 1;
		lineno++;
		while (ll && (line[ll - 1] == '\r' || line[ll - 1] == ' ' || line[ll - 1] == '\t'))
			ll--;
		if (!ll || line[0] == '#')
			continue;
		size_t sp = ll;
		while (sp && line[sp - 1] != ' ')
			sp--;
		if (!sp) {
			hm_profile_free(p);
			free(frames);
			return hm_error(HM_EINVAL, "collapsed stacks: line %zu has no count", lineno);
		}
		char num[32];
		size_t nl_ = ll - sp;
		if (nl_ >= sizeof num) {
			hm_profile_free(p);
			free(frames);
			return hm_error(HM_EINVAL, "collapsed stacks: line %zu: count too long", lineno);
		}
		memcpy(num, line + sp, nl_);
		num[nl_] = 0;
		char *end;
		errno = 0;
		long long count = strtoll(num, &end, 10);
		if (*end || errno || end == num || count < 0) {
			hm_profile_free(p);
			free(frames);
			return hm_error(HM_EINVAL, "collapsed stacks: line %zu: bad count \"%s\"%s",
					lineno, num, count < 0 && !*end && !errno ?
					" (counts cannot be negative)" : "");
		}
		size_t sl = sp - 1, start = 0;
		uint32_t n = 0;
		for (size_t i = 0; i <= sl; i++) {
			if (i == sl || line[i] == ';') {
				if (i > start && n < HM_READ_MAX_DEPTH)
					frames[n++] = hm_decode_frame_text(p, line + start, i - start);
				start = i + 1;
			}
		}
		if (!n) {
			hm_profile_free(p);
			free(frames);
			return hm_error(HM_EINVAL, "collapsed stacks: line %zu has a count but no "
					"frames", lineno);
		}
		if (nonempty >= HM_PB_MAX_REPEATED) {
			hm_profile_free(p);
			free(frames);
			return hm_error(HM_EINVAL, "collapsed stacks over the decoding limit: more "
					"than %llu stacks", HM_PB_MAX_REPEATED);
		}
		uint32_t st = hm_profile_stack_id(p, frames, n);
		hm_profile_add(p, st, thread, count, 0, 0);
		nonempty++;
	}
	free(frames);
	if (!nonempty) {
		hm_profile_free(p);
		return hm_error(HM_EINVAL, "collapsed stacks: no samples found");
	}
	*out = p;
	return HM_OK;
}

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
