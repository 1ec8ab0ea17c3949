/* ptype.h - profile type ids <-> store types, and which profile types a
 * pprof's sample types become at ingest.
 *
 * Pyroscope names a profile type with five parts,
 * name:sample_type:sample_unit:period_type:period_unit. The store keeps a
 * type name per series; homura's own two-valued types keep their names
 * ("process_cpu": cpu nanoseconds + sample counts, "wall" likewise), any
 * other sample type is stored under its five parts joined by '.'
 * ("memory.alloc_space.bytes.space.bytes") with its value in both the count
 * and the weight column. Names stored before (a bare "memory") still list
 * and select as they did. */
#ifndef HOMURA_PTYPE_H
#define HOMURA_PTYPE_H

#include <stddef.h>
#include "format/decode.h"
#include "store/store.h"

#define HM_PTYPE_ID_MAX (5 * HM_STORE_MAX_NAME + 8)

typedef struct hm_ptype {
	char id[HM_PTYPE_ID_MAX];
	char name[HM_STORE_MAX_NAME + 1], sample_type[HM_STORE_MAX_NAME + 1],
		sample_unit[HM_STORE_MAX_NAME + 1], period_type[HM_STORE_MAX_NAME + 1],
		period_unit[HM_STORE_MAX_NAME + 1];
	int value_kind;            /* enum hm_value_kind that selects it */
} hm_ptype;

/* The profile type ids of a store type (1 or 2); returns how many. */
int hm_ptype_ids(const char *store_type, hm_ptype out[2]);
/* A profile type id (or a bare name) -> store type and value kind.
 * HM_EINVAL on a malformed id. */
int hm_ptype_from_id(const char *id, size_t len, char *store_type, size_t cap, int *value_kind);
/* After hm_selector_parse(text, sel): point sel at the store type that the
 * five-part id before '{' names (no change for bare names). */
int hm_ptype_fix_selector(const char *text, hm_selector *sel);

/* Ingest: the plan for hm_decode_pprof_split. fallback is the store type
 * the application name's suffix gave ("process_cpu" without one), used
 * only where the pprof names no sample types. types[i] receives the store
 * type of pair i. */
typedef struct hm_ptype_plan {
	const char *fallback;
	char types[HM_PPROF_MAX_PARTS][HM_STORE_MAX_NAME + 1];
} hm_ptype_plan;
int hm_ptype_plan_fn(void *arg, const hm_pprof_vt *st, size_t n, hm_pprof_vt period,
		     int (*pairs)[2], int max);

#endif
