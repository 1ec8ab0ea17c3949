/* pbjson.c - the protobuf JSON mapping for any protobuf-c message.
 *
 * Walks the message descriptor instead of hand-writing each message: field
 * names become lowerCamelCase, 64-bit integers are strings, bytes are base64
 * except the OTLP ids (trace_id, span_id, profile_id) which the OTLP JSON
 * encoding writes as hex. Proto3 defaults are omitted, oneof members are
 * written when set. The reverse direction (which also takes enums by name)
 * builds a heap message with malloc'd members so
 * protobuf_c_message_free_unpacked can free it; wrong types and malformed
 * numbers are errors, never crashes. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "format/pbjson.h"

static void camel(const char *in, char *out, size_t cap)
{
	size_t o = 0;
	int up = 0;
	for (; *in && o + 1 < cap; in++) {
		if (*in == '_') {
			up = 1;
			continue;
		}
		out[o++] = up ? (char)toupper((unsigned char)*in) : *in;
		up = 0;
	}
	out[o] = 0;
}

static int hex_id(const char *name)
{
	return !strcmp(name, "trace_id") || !strcmp(name, "span_id") ||
	       !strcmp(name, "profile_id");
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static json_t *bytes_json(const ProtobufCBinaryData *b, int hex)
{
	size_t cap = hex ? 2 * b->len + 1 : 4 * ((b->len + 2) / 3) + 1;
	char *s = malloc(cap);
	if (!s)
		return NULL;
	size_t o = 0;
	if (hex) {
		for (size_t i = 0; i < b->len; i++)
			o += sprintf(s + o, "%02x", b->data[i]);
	} else {
		for (size_t i = 0; i < b->len; i += 3) {
			uint32_t v = (uint32_t)b->data[i] << 16;
			if (i + 1 < b->len)
				v |= (uint32_t)b->data[i + 1] << 8;
			if (i + 2 < b->len)
				v |= b->data[i + 2];
			s[o++] = b64[v >> 18];
			s[o++] = b64[(v >> 12) & 63];
			s[o++] = i + 1 < b->len ? b64[(v >> 6) & 63] : '=';
			s[o++] = i + 2 < b->len ? b64[v & 63] : '=';
		}
	}
	s[o] = 0;
	json_t *j = json_string(s);
	free(s);
	return j;
}

/* One scalar/message value at p. */
static json_t *value_json(const ProtobufCFieldDescriptor *f, const void *p)
{
	char buf[32];
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32: case PROTOBUF_C_TYPE_ENUM:
		return json_integer(*(const int32_t *)p);
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
		return json_integer(*(const uint32_t *)p);
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
		snprintf(buf, sizeof buf, "%" PRId64, *(const int64_t *)p);
		return json_string(buf);
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
		snprintf(buf, sizeof buf, "%" PRIu64, *(const uint64_t *)p);
		return json_string(buf);
	case PROTOBUF_C_TYPE_BOOL:
		return json_boolean(*(const protobuf_c_boolean *)p);
	case PROTOBUF_C_TYPE_FLOAT:
		return json_real(*(const float *)p);
	case PROTOBUF_C_TYPE_DOUBLE:
		return json_real(*(const double *)p);
	case PROTOBUF_C_TYPE_STRING:
		return json_string(*(char *const *)p ? *(char *const *)p : "");
	case PROTOBUF_C_TYPE_BYTES:
		return bytes_json(p, hex_id(f->name));
	case PROTOBUF_C_TYPE_MESSAGE:
		return *(ProtobufCMessage *const *)p ? hm_pb_to_json(*(ProtobufCMessage *const *)p)
						      : json_object();
	}
	return json_null();
}

/* Bytes protobuf-c gives one field of type t in a message (pbjson.h). */
size_t hm_pb_type_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	default:
		return 4;
	}
}

static int is_default(const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		return !s || !*s;
	}
	case PROTOBUF_C_TYPE_BYTES:
		return ((const ProtobufCBinaryData *)p)->len == 0;
	case PROTOBUF_C_TYPE_MESSAGE:
		return *(void *const *)p == NULL;
	default: {
		static const char zero[8];
		return !memcmp(p, zero, hm_pb_type_size(f->type));
	}
	}
}

json_t *hm_pb_to_json(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	json_t *obj = json_object();
	char name[128];
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m;
		const void *p = base + f->offset;
		camel(f->name, name, sizeof name);
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			if (!n)
				continue;
			const char *arr = *(char *const *)p;
			json_t *ja = json_array();
			for (size_t k = 0; k < n; k++)
				json_array_append_new(ja, value_json(f, arr + k * hm_pb_type_size(f->type)));
			json_object_set_new(obj, name, ja);
			continue;
		}
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
				continue;
		} else if (is_default(f, p)) {
			continue;
		}
		json_object_set_new(obj, name, value_json(f, p));
	}
	return obj;
}

/* ---- JSON -> message ---- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int bytes_from(json_t *j, int hex, ProtobufCBinaryData *b)
{
	if (!json_is_string(j))
		return hm_error(HM_EINVAL, "OTLP JSON: expected a string for bytes");
	const char *s = json_string_value(j);
	size_t n = json_string_length(j);
	b->data = malloc(n + 1);
	b->len = 0;
	if (!b->data)
		return hm_error(HM_ENOMEM, "out of memory");
	if (hex) {
		if (n % 2)
			return hm_error(HM_EINVAL, "OTLP JSON: odd-length hex id");
		for (size_t i = 0; i < n; i += 2) {
			int hi = hexval(s[i]), lo = hexval(s[i + 1]);
			if (hi < 0 || lo < 0)
				return hm_error(HM_EINVAL, "OTLP JSON: bad hex id");
			b->data[b->len++] = (uint8_t)(hi << 4 | lo);
		}
		return HM_OK;
	}
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		const char *q;
		if (c == '=')
			break;
		if (c == '-') c = '+';
		if (c == '_') c = '/';
		if (!c || !(q = strchr(b64, c)))
			return hm_error(HM_EINVAL, "OTLP JSON: bad base64");
		acc = acc << 6 | (uint32_t)(q - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			b->data[b->len++] = (uint8_t)(acc >> bits);
		}
	}
	return HM_OK;
}

static int int_from(json_t *j, int is_unsigned, int64_t *v)
{
	if (json_is_integer(j)) {
		*v = json_integer_value(j);
		return HM_OK;
	}
	if (json_is_string(j)) {
		const char *s = json_string_value(j);
		char *end;
		errno = 0;
		*v = is_unsigned ? (int64_t)strtoull(s, &end, 10) : strtoll(s, &end, 10);
		if (!*s || *end || errno)
			return hm_error(HM_EINVAL, "OTLP JSON: bad integer \"%.40s\"", s);
		return HM_OK;
	}
	if (json_is_real(j)) {
		*v = (int64_t)json_real_value(j);
		return HM_OK;
	}
	return hm_error(HM_EINVAL, "OTLP JSON: expected a number");
}

static int value_from(const ProtobufCFieldDescriptor *f, json_t *j, void *p)
{
	int64_t v = 0;
	if (f->type == PROTOBUF_C_TYPE_ENUM && json_is_string(j)) {
		/* the proto3 JSON mapping writes enums by name */
		const ProtobufCEnumValue *ev =
			protobuf_c_enum_descriptor_get_value_by_name(f->descriptor,
								     json_string_value(j));
		if (!ev)
			return hm_error(HM_EINVAL, "JSON: unknown value \"%.40s\" of %s",
					json_string_value(j), f->name);
		*(int32_t *)p = ev->value;
		return HM_OK;
	}
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32: case PROTOBUF_C_TYPE_ENUM:
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
		if (int_from(j, 0, &v) < 0)
			return HM_EINVAL;
		*(int32_t *)p = (int32_t)v;
		return HM_OK;
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
		if (int_from(j, f->type == PROTOBUF_C_TYPE_UINT64 || f->type == PROTOBUF_C_TYPE_FIXED64,
			     &v) < 0)
			return HM_EINVAL;
		*(int64_t *)p = v;
		return HM_OK;
	case PROTOBUF_C_TYPE_BOOL:
		*(protobuf_c_boolean *)p = json_is_true(j);
		return HM_OK;
	case PROTOBUF_C_TYPE_FLOAT:
		*(float *)p = (float)json_number_value(j);
		return HM_OK;
	case PROTOBUF_C_TYPE_DOUBLE:
		*(double *)p = json_number_value(j);
		return HM_OK;
	case PROTOBUF_C_TYPE_STRING:
		if (!json_is_string(j))
			return hm_error(HM_EINVAL, "OTLP JSON: field %s must be a string", f->name);
		*(char **)p = strndup(json_string_value(j), json_string_length(j));
		return *(char **)p ? HM_OK : hm_error(HM_ENOMEM, "out of memory");
	case PROTOBUF_C_TYPE_BYTES:
		return bytes_from(j, hex_id(f->name), p);
	case PROTOBUF_C_TYPE_MESSAGE:
		*(ProtobufCMessage **)p = hm_pb_from_json(f->descriptor, j);
		return *(void **)p ? HM_OK : HM_EINVAL;
	}
	return hm_error(HM_EINVAL, "OTLP JSON: unsupported field type");
}

static void set_string_defaults(const ProtobufCMessageDescriptor *d, ProtobufCMessage *m)
{
	/* protobuf-c's init points strings at a shared "": replace with heap
	 * copies so free_unpacked may free every member uniformly. */
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->type == PROTOBUF_C_TYPE_STRING && f->label != PROTOBUF_C_LABEL_REPEATED &&
		    !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
			*(char **)((char *)m + f->offset) = NULL;
	}
}

ProtobufCMessage *hm_pb_from_json(const ProtobufCMessageDescriptor *d, json_t *j)
{
	if (!json_is_object(j)) {
		hm_error(HM_EINVAL, "OTLP JSON: expected an object for %s", d->short_name);
		return NULL;
	}
	ProtobufCMessage *m = calloc(1, d->sizeof_message);
	if (!m) {
		hm_error(HM_ENOMEM, "out of memory");
		return NULL;
	}
	d->message_init(m);
	set_string_defaults(d, m);
	char name[128];
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		camel(f->name, name, sizeof name);
		json_t *v = json_object_get(j, name);
		if (!v)
			v = json_object_get(j, f->name);
		if (!v || json_is_null(v))
			continue;
		char *p = (char *)m + f->offset;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			if (!json_is_array(v)) {
				hm_error(HM_EINVAL, "OTLP JSON: field %s must be an array", name);
				goto bad;
			}
			size_t n = json_array_size(v), sz = hm_pb_type_size(f->type);
			char *arr = calloc(n ? n : 1, sz);
			if (!arr) {
				hm_error(HM_ENOMEM, "out of memory");
				goto bad;
			}
			*(char **)p = arr;
			size_t *cnt = (size_t *)((char *)m + f->quantifier_offset);
			for (size_t k = 0; k < n; k++) {
				if (value_from(f, json_array_get(v, k), arr + k * sz) < 0)
					goto bad;
				*cnt = k + 1;
			}
			continue;
		}
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t *cs = (uint32_t *)((char *)m + f->quantifier_offset);
			if (*cs)
				continue;       /* first member wins */
			if (value_from(f, v, p) < 0)
				goto bad;
			*cs = f->id;
			continue;
		}
		if (value_from(f, v, p) < 0)
			goto bad;
	}
	return m;
bad:
	protobuf_c_message_free_unpacked(m, NULL);
	return NULL;
}
