/* pbjson.h - private: the protobuf JSON mapping for protobuf-c messages,
 * driven by message descriptors (used for OTLP JSON in and out). */
#ifndef HOMURA_PBJSON_H
#define HOMURA_PBJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

/* Message -> JSON object (lowerCamelCase names, 64-bit ints as strings,
 * trace/span/profile ids as hex, other bytes base64, defaults omitted). */
json_t *hm_pb_to_json(const ProtobufCMessage *m);
/* JSON object -> newly allocated message (free with
 * protobuf_c_message_free_unpacked(m, NULL)). NULL + hm_error on bad input. */
ProtobufCMessage *hm_pb_from_json(const ProtobufCMessageDescriptor *d, json_t *j);
/* Bytes protobuf-c gives one field of type t inside a message (a repeated
 * field's element, a pointer for strings and messages). */
size_t hm_pb_type_size(ProtobufCType t);

#endif
