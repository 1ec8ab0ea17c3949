/* fuzz.h - shared by the libFuzzer targets in tests/fuzz/ (see run.sh).
 *
 * fuzz_check_profile walks every id of a decoded profile (so a dangling
 * stack, frame or string id shows up under ASan) and fuzz_roundtrip writes it
 * in every format and reads all but the SVG back: whatever a decoder
 * accepts, the encoders must handle too. A broken invariant abort()s, which
 * libFuzzer reports as a crash with the input saved. */
#ifndef HOMURA_FUZZ_H
#define HOMURA_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/profile.h"
#include "format/codec.h"
#include "format/encode.h"

#define FUZZ_ASSERT(c)                                                              \
	do {                                                                        \
		if (!(c)) {                                                         \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,  \
				__LINE__, #c);                                      \
			abort();                                                    \
		}                                                                   \
	} while (0)

/* "Remote" memory for the walker and object-reader targets: the fuzzer's
 * bytes mapped at base, zeros after them up to base + virt, unreadable
 * elsewhere (a read that leaves that range fails, as process_vm_readv
 * would). */
struct fuzz_mem {
	const uint8_t *p;
	size_t n;
	uint64_t base;
	size_t virt;
};

static inline int fuzz_mem_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	const struct fuzz_mem *m = ctx;
	if (addr < m->base || addr - m->base > m->virt || len > m->virt - (addr - m->base))
		return -1;
	uint64_t off = addr - m->base;
	size_t have = off < m->n ? m->n - (size_t)off : 0;
	if (have > len)
		have = len;
	if (have)
		memcpy(buf, m->p + off, have);
	memset((uint8_t *)buf + have, 0, len - have);
	return 0;
}

static inline void fuzz_check_profile(const hm_profile *p)
{
	uint32_t ns = hm_profile_nstrings(p), nf = hm_profile_nframes(p);
	uint32_t nst = hm_profile_nstacks(p), nt = hm_profile_nthreads(p);
	size_t sum = 0;
	for (uint32_t i = 0; i < ns; i++)
		sum += strlen(hm_profile_str(p, i));
	for (uint32_t i = 0; i < nf; i++) {
		const hm_frame *f = hm_profile_frame(p, i);
		FUZZ_ASSERT(f->name < ns && f->file < ns);
	}
	for (uint32_t i = 0; i < nst; i++) {
		uint32_t n;
		const uint32_t *fr = hm_profile_stack(p, i, &n);
		for (uint32_t k = 0; k < n; k++)
			FUZZ_ASSERT(fr[k] < nf);
	}
	for (uint32_t i = 0; i < nt; i++)
		FUZZ_ASSERT(hm_profile_thread(p, i)->name < ns);
	for (size_t i = 0; i < hm_profile_nsamples(p); i++) {
		const hm_sample *s = hm_profile_sample(p, i);
		FUZZ_ASSERT(s->stack < nst && s->thread < nt);
	}
	const hm_profile_meta *m = hm_profile_meta_cget(p);
	FUZZ_ASSERT(m->nlabels <= sizeof m->labels / sizeof m->labels[0]);
	for (uint32_t i = 0; i < m->nlabels; i++)
		FUZZ_ASSERT(m->labels[i].key < ns && m->labels[i].value < ns);
	(void)sum;
}

/* Write p as fmt into a malloc'd buffer; HM_OK or the writer's error. */
static inline int fuzz_write(const hm_profile *p, int fmt, char **buf, size_t *len)
{
	*buf = NULL;
	*len = 0;
	FILE *f = open_memstream(buf, len);
	if (!f)
		return -1;
	hm_write_opts wo = {.title = "fuzz"};
	int rc = hm_profile_write(p, fmt, f, &wo);
	fclose(f);
	return rc;
}

static inline void fuzz_roundtrip(const hm_profile *p)
{
	static const int fmts[] = {HM_FMT_COLLAPSED, HM_FMT_SPEEDSCOPE, HM_FMT_SVG,
				   HM_FMT_PPROF, HM_FMT_OTLP, HM_FMT_OTLP_JSON};
	fuzz_check_profile(p);
	for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
		char *buf;
		size_t len;
		int rc = fuzz_write(p, fmts[i], &buf, &len);
		if (rc == 0 && fmts[i] != HM_FMT_SVG && hm_profile_nsamples(p)) {
			hm_profile *q = NULL;
			if (hm_profile_read(buf, len, &q) == 0) {
				fuzz_check_profile(q);
				hm_profile_free(q);
			}
		}
		free(buf);
	}
}

#endif
