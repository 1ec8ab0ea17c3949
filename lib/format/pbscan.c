/* pbscan.c - bound what decoding a protobuf or JSON message will cost
 * before it is decoded.
 *
 * protobuf-c unpacks a whole message tree at once, and a few wire bytes can
 * cost far more once unpacked: an empty string is 2 bytes on the wire but a
 * pointer, a heap block and a 32-byte scan record in memory (a 60 KB gzip
 * body of 30M empty strings took 3.3 GB). hm_pb_check walks the wire format
 * first (tag, varint, fixed, length-delimited), guided by the message's
 * protobuf-c descriptor so that it descends into submessages, and counts
 * the entries of every repeated field, all elements of the tree, the depth
 * and an estimate of the memory protobuf-c would allocate (blocks rounded as
 * malloc does, its scan records, unknown fields); past a limit the message
 * is refused before anything is allocated. Malformed wire data is left to
 * protobuf-c to reject. A caller probing for the message type may give a
 * small cap on unknown fields of the outermost message: past it the bytes
 * are not this type (pprof
 * read as OTLP is mostly unknown fields) and hm_pb_check returns 1. hm_json_check bounds the number of values (and the
 * nesting) of a JSON text the same way before jansson builds it. */
#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "format/decode.h"
#include "format/pbjson.h"

typedef struct scan {
	const char *what;          /* "OTLP", "pprof", ... for messages */
	uint64_t elements, bytes, unknown;
	uint64_t top_unknown, max_top_unknown;   /* in the outermost message */
} scan;

/* A heap block of n bytes as glibc malloc sizes it (16-byte steps, 32 min). */
static uint64_t block(uint64_t n)
{
	uint64_t b = (n + 8 + 15) & ~(uint64_t)15;
	return b < 32 ? 32 : b;
}

#define SCANNED_MEMBER 32          /* protobuf-c's per-field scan record */

static int rd_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t x = 0;
	for (int sh = 0; *p < end && sh < 70; sh += 7) {
		uint8_t c = *(*p)++;
		x |= (uint64_t)(c & 0x7f) << (sh < 64 ? sh : 0);
		if (!(c & 0x80)) {
			*v = x;
			return 1;
		}
	}
	return 0;
}

/* Whether wire type wt can carry field f (packed repeated scalars too). */
static int wire_ok(const ProtobufCFieldDescriptor *f, int wt)
{
	int want;
	switch (f->type) {
	case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_SFIXED64: case PROTOBUF_C_TYPE_DOUBLE:
		want = 1;
		break;
	case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_SFIXED32: case PROTOBUF_C_TYPE_FLOAT:
		want = 5;
		break;
	case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_BYTES: case PROTOBUF_C_TYPE_MESSAGE:
		return wt == 2;
	default:
		want = 0;
	}
	return wt == want || (wt == 2 && f->label == PROTOBUF_C_LABEL_REPEATED);
}

static int over(const scan *s, const char *fmt, unsigned long long n, const char *field)
{
	char msg[160];
	snprintf(msg, sizeof msg, fmt, n, field);
	return hm_error(HM_EINVAL, "%s message over the decoding limit: %s", s->what, msg);
}

static int check_totals(const scan *s)
{
	if (s->elements > HM_PB_MAX_ELEMENTS)
		return over(s, "more than %llu elements in all%s", HM_PB_MAX_ELEMENTS, "");
	if (s->bytes > HM_PB_MAX_MEMORY)
		return over(s, "it would take more than %llu MiB to decode%s",
			    HM_PB_MAX_MEMORY >> 20, "");
	return HM_OK;
}

static int walk(scan *s, const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
		unsigned depth)
{
	if (depth > HM_PB_MAX_DEPTH)
		return over(s, "messages nested more than %llu deep%s", HM_PB_MAX_DEPTH, "");
	const uint8_t *end = p + len;
	uint64_t counts[64];       /* entries per repeated field (by index) */
	unsigned nf = d->n_fields < 64 ? d->n_fields : 64;
	memset(counts, 0, sizeof counts);
	while (p < end) {
		uint64_t key, v;
		if (!rd_varint(&p, end, &key))
			return HM_OK;      /* malformed: protobuf-c will say so */
		const ProtobufCFieldDescriptor *f = key >> 3 && key >> 3 <= 0x1fffffff ?
			protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3)) : NULL;
		const uint8_t *val = p;
		uint64_t vlen = 0;
		switch (key & 7) {
		case 0:
			if (!rd_varint(&p, end, &v))
				return HM_OK;
			vlen = (uint64_t)(p - val);
			break;
		case 1:
		case 5:
			vlen = (key & 7) == 1 ? 8 : 4;
			if ((uint64_t)(end - p) < vlen)
				return HM_OK;
			p += vlen;
			break;
		case 2:
			if (!rd_varint(&p, end, &vlen) || vlen > (uint64_t)(end - p))
				return HM_OK;
			val = p;
			p += vlen;
			break;
		default:
			return HM_OK;      /* groups and bad wire types: refused later */
		}
		if (f && !wire_ok(f, (int)(key & 7)))
			return HM_OK;      /* not this message type: protobuf-c refuses it */
		s->elements++;
		s->bytes += SCANNED_MEMBER;
		if (!f) {                  /* kept as an unknown field */
			s->bytes += 32 + block(vlen);
			if (!depth && s->max_top_unknown && ++s->top_unknown > s->max_top_unknown)
				return 1;
			if (++s->unknown > HM_PB_MAX_REPEATED)
				return over(s, "more than %llu unknown fields%s", HM_PB_MAX_REPEATED, "");
		} else {
			int repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
			int packed = repeated && (key & 7) == 2 && f->type != PROTOBUF_C_TYPE_STRING &&
				     f->type != PROTOBUF_C_TYPE_BYTES &&
				     f->type != PROTOBUF_C_TYPE_MESSAGE;
			uint64_t n = 1;
			if (packed) {
				size_t sz = hm_pb_type_size(f->type);
				if (f->type == PROTOBUF_C_TYPE_FIXED32 || f->type == PROTOBUF_C_TYPE_SFIXED32 ||
				    f->type == PROTOBUF_C_TYPE_FLOAT || f->type == PROTOBUF_C_TYPE_FIXED64 ||
				    f->type == PROTOBUF_C_TYPE_SFIXED64 || f->type == PROTOBUF_C_TYPE_DOUBLE) {
					n = vlen / sz;
				} else {
					n = 0;
					for (uint64_t i = 0; i < vlen; i++)
						n += !(val[i] & 0x80);
				}
				s->elements += n;
			}
			if (repeated) {
				unsigned idx = (unsigned)(f - d->fields);
				s->bytes += n * hm_pb_type_size(f->type);
				if (idx < nf && (counts[idx] += n) > HM_PB_MAX_REPEATED)
					return over(s, "more than %llu entries in %s",
						    HM_PB_MAX_REPEATED, f->name);
			}
			if ((key & 7) == 2 && !packed) {
				if (f->type == PROTOBUF_C_TYPE_STRING)
					s->bytes += block(vlen + 1);
				else if (f->type == PROTOBUF_C_TYPE_BYTES)
					s->bytes += block(vlen);
				else if (f->type == PROTOBUF_C_TYPE_MESSAGE && f->descriptor) {
					const ProtobufCMessageDescriptor *sub = f->descriptor;
					s->bytes += block(sub->sizeof_message);
					int rc = walk(s, sub, val, (size_t)vlen, depth + 1);
					if (rc)
						return rc;
				}
			}
		}
		int rc = check_totals(s);
		if (rc < 0)
			return rc;
	}
	return HM_OK;
}

int hm_pb_check(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
		const char *what, uint64_t max_unknown)
{
	scan s = {.what = what, .bytes = block(d->sizeof_message)};
	s.max_top_unknown = max_unknown;
	return walk(&s, d, buf, len, 0);
}

int hm_json_check(const char *buf, size_t len, const char *what)
{
	uint64_t values = 1;
	unsigned depth = 0, max_depth = 0;
	int in_str = 0;
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		switch (c) {
		case '"': in_str = 1; break;
		case '[': case '{': values++; depth++; break;
		case ']': case '}': if (depth) depth--; break;
		case ',': case ':': values++; break;
		default: break;
		}
		if (depth > max_depth)
			max_depth = depth;
	}
	if (values > HM_JSON_MAX_VALUES)
		return hm_error(HM_EINVAL, "%s JSON over the decoding limit: more than %llu values",
				what, (unsigned long long)HM_JSON_MAX_VALUES);
	if (max_depth > HM_PB_MAX_DEPTH * 2)
		return hm_error(HM_EINVAL, "%s JSON over the decoding limit: nested more than "
				"%llu deep", what, HM_PB_MAX_DEPTH * 2);
	return HM_OK;
}
