/* memring.h - the shared-memory ring between the allocation sampler
 * (preload/alloc.c, inside the program) and `homura run` (analyze/memory.c).
 *
 * homura creates the file (O_EXCL|O_NOFOLLOW, mode 0600) and names it in the
 * child's environment (HOMURA_MEM_RING). The first process that loads the
 * sampler and has CPython's symbols claims the ring (owner: its pid, set
 * with a compare-and-swap); any other process (an exec'd grandchild, a
 * forked child) leaves it alone. The producer serialises its writers with a
 * lock, so the ring is single-producer, single-consumer: the producer
 * advances `head` after writing a record, the consumer `tail` after reading
 * one. A record that does not fit is dropped and counted (the program never
 * waits for homura). Records are 8-byte aligned and never wrap: a PAD record
 * fills the end of the data area when the next record does not fit there.
 * Header-only. */
#ifndef HOMURA_MEMRING_H
#define HOMURA_MEMRING_H

#include <stdint.h>

#define HM_MEMRING_MAGIC 0x31676e69726d6d68ull   /* "hmmring1" */
#define HM_MEMRING_ENV "HOMURA_MEM_RING"
#define HM_MEMRING_MAX_FRAMES 128                 /* leaf-most frames kept */

typedef struct hm_memring {
	uint64_t magic;
	uint32_t hdr_size;          /* sizeof(hm_memring): data follows */
	uint32_t pad0;
	uint64_t data_size;         /* bytes of the data area (multiple of 8) */
	double sample_bytes;        /* mean bytes between allocation samples */
	double copy_bytes;          /* mean bytes between memcpy samples */
	int32_t owner;              /* pid of the writing process, 0: none yet */
	uint32_t pad1;
	uint64_t dropped;           /* records dropped (ring full), producer's */
	uint64_t untracked;         /* sampled blocks whose free is not followed */
	uint8_t pad2[64];
	uint64_t head;              /* producer: bytes written (monotonic) */
	uint8_t pad3[56];
	uint64_t tail;              /* consumer: bytes consumed (monotonic) */
	uint8_t pad4[56];
} hm_memring;

enum hm_memrec_type {
	HM_MR_PAD = 1,      /* skip to the start of the data area */
	HM_MR_INFO = 2,     /* hm_memrec_info: the claiming process */
	HM_MR_CODE = 3,     /* hm_memrec_code + name + file bytes */
	HM_MR_ALLOC = 4,    /* hm_memrec_alloc + nframes hm_memrec_frame */
	HM_MR_FREE = 5,     /* hm_memrec_free */
	HM_MR_COPY = 6,     /* hm_memrec_alloc (addr, size 0) + frames */
	HM_MR_FINI = 7,     /* hm_memrec_info: the interpreter finalizes; no
			     * records follow (module teardown frees all) */
};

typedef struct hm_memrec_hdr {
	uint32_t type;
	uint32_t len;               /* whole record in bytes, multiple of 8 */
} hm_memrec_hdr;

typedef struct hm_memrec_info {
	hm_memrec_hdr h;
	int32_t pid;
	uint32_t py_version;        /* PY_VERSION_HEX, 0 if unknown */
	uint64_t t_ns;              /* CLOCK_MONOTONIC */
} hm_memrec_info;

typedef struct hm_memrec_code {
	hm_memrec_hdr h;
	uint32_t id;                /* > 0, used by frames */
	int32_t firstlineno;
	uint32_t name_len, file_len;   /* bytes that follow: name, then file */
} hm_memrec_code;

typedef struct hm_memrec_frame {
	uint32_t code;              /* hm_memrec_code.id */
	int32_t line;
} hm_memrec_frame;

enum hm_memrec_flags {
	HM_MRF_PYTHON = 1,          /* allocated by the interpreter itself
				     * (Python objects and their buffers) */
	HM_MRF_NOSTACK = 2,         /* no Python stack could be read */
};

typedef struct hm_memrec_alloc {
	hm_memrec_hdr h;
	uint64_t t_ns;              /* CLOCK_MONOTONIC */
	uint64_t addr;
	uint64_t size;              /* bytes requested */
	double weight_bytes;        /* unbiased estimate of bytes it stands for */
	double weight_count;        /* ... and of allocations */
	uint32_t flags;             /* enum hm_memrec_flags */
	uint32_t nframes;           /* frames follow, leaf first */
} hm_memrec_alloc;

typedef struct hm_memrec_free {
	hm_memrec_hdr h;
	uint64_t t_ns;
	uint64_t addr;
} hm_memrec_free;

#endif
