/* otelspan.bpf.h - the in-kernel reader of a thread's current OpenTelemetry
 * span, included by pystack.bpf.c. It runs in the sampled thread's own
 * context, at sample time, so the span it finds is the one current when the
 * sample was taken: the ids are read here, never later from an address
 * (an object freed and reused before user space drains the ring could
 * otherwise give a wrong span).
 *
 * The chain (the same as python/otel.c's, 3.8+): thread state -> context
 * (PyContext) -> ctx_vars (HAMT) -> the node holding the SDK's ContextVar
 * (bitmap and array nodes, 5 bits of the variable's hash per level) -> the
 * SDK's Context dict (a scan of at most 8 entries for the span key object)
 * -> the span (an instance of one of two known classes; its attributes
 * through the class's shared keys: values array or managed dict, per
 * version) -> _context (SpanContext, a tuple subclass) -> trace id and span
 * id (ints, 30-bit digits) and _name (a str: its address, and a check of
 * its length, hash and first bytes that user space compares before it
 * believes the text it reads there); _parent says whether the span is its
 * trace's local root (None, or a remote SpanContext), which user space
 * remembers per trace (the local_root_span_name of the trace's samples);
 * the same reading of a span object (otel_span_at) serves the local root
 * found in a frame's local at a trace's first sample (pystack.bpf.c's
 * root_of). Every object's type is compared with
 * the constants user space found (the otel map, per process); anything
 * unexpected gives no span. */
#ifndef HOMURA_SAMPLE_BPF_OTELSPAN_BPF_H
#define HOMURA_SAMPLE_BPF_OTELSPAN_BPF_H

#define OTEL_HAMT_DEPTH 7
#define OTEL_DICT_ENTRIES 8

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HM_BPF_MAX_PROCS);
	__type(key, __u32);
	__type(value, struct hm_bpf_otel);
} otel SEC(".maps");

struct otel_buf {
	__u8 b[256];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct otel_buf);
} otelbuf SEC(".maps");

static __always_inline int otel_rd(void *dst, __u32 len, __u64 addr)
{
	if (!addr || (addr & 7))
		return -1;
	return bpf_probe_read_user(dst, len, (const void *)addr);
}

static __always_inline __u32 otel_popcount(__u32 x)
{
	x = x - ((x >> 1) & 0x55555555u);
	x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
	x = (x + (x >> 4)) & 0x0f0f0f0fu;
	return (x * 0x01010101u) >> 24;
}

/* An int of at most maxd 30-bit digits, read as 16 bytes of header (type,
 * size or tag) and 24 of digits from obj + 8. 0 and hi/lo, or -1. */
static __always_inline int otel_int(const struct hm_bpf_otel *o, __u64 obj, int maxd, __u64 *hi,
				    __u64 *lo)
{
	__u64 b[5];
	if (otel_rd(b, sizeof b, obj + 8) || b[0] != o->int_type)
		return -1;
	__s64 nd;
	if (o->long_tagged) {
		__u64 sign = b[1] & 3;
		if (sign >= 2)
			return -1;           /* negative or garbage */
		nd = sign == 1 ? 0 : (__s64)(b[1] >> 3);
	} else {
		nd = (__s64)b[1];
	}
	if (nd < 0 || nd > maxd)
		return -1;
	__u32 d[5];
	__builtin_memcpy(d, &b[2], 20);
	for (int i = 0; i < 5; i++) {
		if (i >= nd)
			d[i] = 0;
		else if (d[i] >> 30)
			return -1;
	}
	if (d[4] >> 8)
		return -1;                   /* wider than 128 bits */
	*lo = (__u64)d[0] | ((__u64)d[1] << 30) | ((__u64)d[2] << 60);
	*hi = ((__u64)d[2] >> 4) | ((__u64)d[3] << 26) | ((__u64)d[4] << 56);
	return 0;
}

/* The values array of span (its attributes by shared-keys entry), or 0. */
static __always_inline __u64 otel_values(const struct hm_bpf_otel *o,
					 const struct hm_bpf_otel_type *t, __u64 span)
{
	__u64 dict = 0, values = 0;
	if (o->inst_kind == 4) {             /* <=3.10: the dict at tp_dictoffset */
		__u64 key;
		if (otel_rd(&key, 8, t->ctx_key_at) || key != t->ctx_key ||
		    otel_rd(&dict, 8, span + (__u64)t->dictoffset))
			return 0;
	} else if (o->inst_kind == 1) {             /* 3.11: values, then dict, before the object */
		__u64 pre[2];
		if (otel_rd(pre, sizeof pre, span + (__s64)o->inst_values_ptr))
			return 0;
		if (pre[0])
			return pre[0] + (__s64)o->dv_values;
		dict = pre[1];
	} else {
		__u64 slot;
		if (otel_rd(&slot, 8, span + (__s64)o->inst_dict_ptr))
			return 0;
		if (o->inst_kind == 2) {     /* 3.12: tagged values pointer, or a dict */
			if (slot & 1)
				return slot + 1 + (__s64)o->dv_values;
			dict = slot;
		} else if (slot) {           /* 3.13: a dict, else inline values */
			dict = slot;
		} else {
			return span + (__u64)t->basicsize + (__s64)o->dv_values;
		}
	}
	if (!dict)
		return 0;
	/* A materialised dict still sharing the class's keys. */
	__u64 d[6];
	if (otel_rd(d, sizeof d, dict) || d[4] != t->keys || !d[5])
		return 0;
	values = d[5] + (__s64)o->dv_values;
	return values;
}

/* The span object at span (an instance of one of the process's span
 * classes) read whole: its ids and name into e->span (root 0: the sample's
 * span; also span_name_check, span_flags) or e->root (root 1: a local
 * root's, root_name_check). 0 when it is not a span read whole (or, root
 * 1, no local root), else the address of its _name word (1: none). */
static __noinline __u64 otel_span_at(const struct hm_bpf_otel *o, struct otel_buf *buf, __u64 span,
				     struct hm_bpf_event *e, int root)
{
	/* The span: a known class whose shared keys are still the ones its
	 * entry indices came from. */
	__u64 stype;
	if (otel_rd(&stype, 8, span + 8))
		return 0;
	const struct hm_bpf_otel_type *t = 0;
	if (stype && stype == o->types[0].type)
		t = &o->types[0];
	else if (stype && stype == o->types[1].type)
		t = &o->types[1];
	if (!t)
		return 0;
	__u64 ck;
	if (o->ht_cached_keys >= 0 &&
	    (otel_rd(&ck, 8, stype + (__s64)o->ht_cached_keys) || ck != t->keys))
		return 0;
	__u64 values = otel_values(o, t, span);
	if (!values)
		return 0;
	__u64 sctx, name = 0, parent = 0;
	if (t->vals_n > 0) {
		/* _context, _name and _parent in one read (the SDK sets them
		 * a few entries apart) */
		__u32 vlen = (__u32)t->vals_n * 8;
		if (vlen > 192 || otel_rd(buf->b, vlen & 0xff, values + 8 * (__u64)(t->vals_first & 0xff)))
			return 0;
		__builtin_memcpy(&sctx, &buf->b[(8 * (__u32)(t->idx_context - t->vals_first)) & 0xf8], 8);
		if (t->idx_name >= 0)
			__builtin_memcpy(&name, &buf->b[(8 * (__u32)(t->idx_name - t->vals_first)) & 0xf8], 8);
		if (t->idx_parent >= 0)
			__builtin_memcpy(&parent, &buf->b[(8 * (__u32)(t->idx_parent - t->vals_first)) & 0xf8], 8);
	} else {
		if (otel_rd(&sctx, 8, values + 8 * (__u64)(t->idx_context & 0xff)))
			return 0;
		if (t->idx_name >= 0 && otel_rd(&name, 8, values + 8 * (__u64)(t->idx_name & 0xff)))
			return 0;
	}
	/* SpanContext: trace_id, span_id, ... */
	__u64 sc[4];
	if (otel_rd(sc, sizeof sc, sctx + 8) || sc[0] != o->sctx_type || (__s64)sc[1] < 2)
		return 0;
	__u64 thi, tlo, shi, sid;
	if (otel_int(o, sc[2], 5, &thi, &tlo) || otel_int(o, sc[3], 3, &shi, &sid) || shi ||
	    !sid || (!thi && !tlo))
		return 0;
	/* The local root of its trace in this process: no parent (None), or
	 * a remote one (a SpanContext whose is_remote is True). Anything else,
	 * or a read that fails, says not a root (no root name is learnt from
	 * it: never a wrong one). */
	__u32 flags = 0;
	__u64 parent_id = 0;
	if (parent && o->none_addr && parent == o->none_addr) {
		flags = HM_BPF_SPAN_LOCAL_ROOT;
	} else if (parent) {
		/* A SpanContext: its span id (user space proves a span's
		 * local root through its parent's), and is_remote. */
		__u64 pc[5], phi;
		if (!otel_rd(pc, sizeof pc, parent + 8) && pc[0] == o->sctx_type &&
		    (__s64)pc[1] >= 3 && !otel_int(o, pc[3], 3, &phi, &parent_id) && !phi) {
			if (o->true_addr && pc[4] == o->true_addr)
				flags = HM_BPF_SPAN_LOCAL_ROOT;
		} else {
			parent_id = 0;
		}
	}
	__u64 check = 0;
	if (name) {
		if (otel_rd(buf->b, 48, name + 8))
			return 0;
		__u64 nt;
		__builtin_memcpy(&nt, buf->b, 8);
		if (nt != o->str_type)
			return 0;
		/* A compact str's text (its first HM_BPF_NAME_TEXT bytes;
		 * never a byte past the object), to user space and into
		 * the check. */
		__u64 slen;
		__u32 state, tl = 0;
		__builtin_memcpy(&slen, buf->b + 8, 8);
		__builtin_memcpy(&state, buf->b + 24, 4);
		unsigned char *text = (unsigned char *)(root ? e->root_text : e->span_text);
		__builtin_memset(text, 0, HM_BPF_NAME_TEXT);
		__u32 kind = (state >> 2) & 7;
		if (o->str_compact && (state & o->str_compact) && slen > 0 && slen < (1 << 24) &&
		    (kind == 1 || kind == 2 || kind == 4)) {
			__u64 bytes = slen * kind;
			__s64 at = (state & o->str_ascii) ? o->ascii_size : o->compact_size;
			__u32 n = bytes < HM_BPF_NAME_TEXT ? (__u32)bytes : HM_BPF_NAME_TEXT;
			if (!otel_rd(text, ((n - 1) & (HM_BPF_NAME_TEXT - 1)) + 1, name + at))
				tl = n | kind << 8 | (bytes < HM_BPF_NAME_TEXT ? HM_BPF_TEXT_WHOLE : 0);
			else
				__builtin_memset(text, 0, HM_BPF_NAME_TEXT);
		}
		check = hm_bpf_name_check(buf->b, o->ascii_size, text);
		if (root)
			e->root_text_len = tl;
		else
			e->span_text_len = tl;
	}
	struct hm_bpf_span *out = root ? &e->root : &e->span;
	out->trace_hi = thi;
	out->trace_lo = tlo;
	out->span_id = sid;
	out->name = name;
	out->parent_id = parent_id;
	if (root) {
		e->root_name_check = check;
		return flags & HM_BPF_SPAN_LOCAL_ROOT ? 1 : 0;
	}
	e->span_name_check = check;
	e->span_flags = flags;
	return t->idx_name >= 0 ? values + 8 * (__u64)(t->idx_name & 0xff) : 1;
}

/* The span current on the thread whose state is at ts (process pid): its
 * ids and name into e->span, the name's check (hm_bpf_name_check) into
 * e->span_name_check and whether it is its trace's local root into
 * e->span_flags; all left alone unless it returns HM_BPF_SPAN_OK. l (the
 * thread's rtlast entry, or 0) keeps the answer and the Context dict it
 * came from, for the thread's next sample. */
static __noinline int hm_otel_span(__u32 pid, __u64 ts, struct hm_bpf_rt *l,
				   struct hm_bpf_event *e)
{
	__u32 zero = 0;
	struct hm_bpf_otel *o = bpf_map_lookup_elem(&otel, &pid);
	struct otel_buf *buf = bpf_map_lookup_elem(&otelbuf, &zero);
	if (!o || !buf)
		return HM_BPF_SPAN_OFF;
	__u64 ctx, v[4];
	if (otel_rd(&ctx, 8, ts + (__s64)o->ts_context))
		return HM_BPF_SPAN_BAD;
	if (!ctx)
		return HM_BPF_SPAN_NONE;
	/* The context and its HAMT. */
	if (otel_rd(v, 8, ctx + 8) || v[0] != o->ctx_type ||
	    otel_rd(v, 8, ctx + (__s64)o->ctx_vars))
		return HM_BPF_SPAN_BAD;
	__u64 hamt = v[0];
	if (otel_rd(v, 8, hamt + 8) || v[0] != o->hamt_type ||
	    otel_rd(v, 8, hamt + (__s64)o->hamt_root))
		return HM_BPF_SPAN_BAD;
	__u64 node = v[0], dict = 0;
	__u32 h = o->var_h32, shift = 0;
	for (int depth = 0; depth < OTEL_HAMT_DEPTH && !dict; depth++) {
		if (otel_rd(v, 32, node))
			return HM_BPF_SPAN_BAD;
		if (o->array_type && v[1] == o->array_type) {
			__u64 child;
			if (otel_rd(&child, 8, node + 16 + 8 * (__u64)((h >> shift) & 31)))
				return HM_BPF_SPAN_BAD;
			if (!child)
				return HM_BPF_SPAN_NONE;
			node = child;
			shift += 5;
			continue;
		}
		if (v[1] != o->bitmap_type)
			return HM_BPF_SPAN_BAD;  /* a collision node, or garbage */
		__u32 bitmap = (__u32)v[3], bit = 1u << ((h >> shift) & 31);
		if ((__s64)v[2] != 2 * (__s64)otel_popcount(bitmap))
			return HM_BPF_SPAN_BAD;
		if (!(bitmap & bit))
			return HM_BPF_SPAN_NONE;
		__u64 idx = otel_popcount(bitmap & (bit - 1));
		if (otel_rd(v, 16, node + 32 + 16 * idx))
			return HM_BPF_SPAN_BAD;
		if (!v[0]) {
			node = v[1];
			shift += 5;
			continue;
		}
		if (v[0] != o->var)
			return HM_BPF_SPAN_NONE;
		dict = v[1];
	}
	if (!dict)
		return HM_BPF_SPAN_BAD;
	/* The SDK's Context dict: combined, a few entries, one of them the
	 * span key. */
	__u64 d[6];
	if (otel_rd(d, sizeof d, dict) || d[1] != o->dict_type || d[5] || !d[4])
		return HM_BPF_SPAN_BAD;
	/* The same dict as at the thread's last sample, unchanged since (a
	 * dict's version tag is drawn from an interpreter-wide counter when it
	 * is created and at every change: an equal tag is the same contents):
	 * the same span, whose ids never change; its answer is reused while
	 * its _name holds the same str (update_name() puts another there). */
	if (l && l->c_dict == dict && d[3] && l->c_ver == d[3]) {
		__u64 nm = 0;
		if (!l->c_name_at || (!otel_rd(&nm, 8, l->c_name_at) && nm == l->c_span.name)) {
			e->span = l->c_span;
			e->span_name_check = l->c_check;
			e->span_flags = l->c_flags;
			return HM_BPF_SPAN_OK;
		}
	}
	__u64 keys = d[4], entries;
	__s64 nentries;
	__u32 esize = 24, koff = 8;          /* hash, key, value */
	if (otel_rd(v, 32, keys))
		return HM_BPF_SPAN_BAD;
	if (o->dict_old) {                   /* <=3.10: dk_size, dk_nentries at 32 */
		__u64 size = v[1];
		if (size < 8 || size > (1 << 16) || (size & (size - 1)) || otel_rd(&v[3], 8, keys + 32))
			return HM_BPF_SPAN_BAD;
		nentries = (__s64)v[3];
		entries = keys + 40 + size * (size <= 0xff ? 1 : size <= 0xffff ? 2 : 4);
	} else {                             /* 3.11+: index bytes, kind, dk_nentries at 24 */
		__u8 log2_ib = (__u8)(v[1] >> 8), kind = (__u8)(v[1] >> 16);
		if (log2_ib > 16 || kind > 2)
			return HM_BPF_SPAN_BAD;
		nentries = (__s64)v[3];
		entries = keys + 32 + (1ULL << log2_ib);
		if (kind != 0) {             /* key, value */
			esize = 16;
			koff = 0;
		}
	}
	if (nentries < 0 || nentries > OTEL_DICT_ENTRIES)
		return HM_BPF_SPAN_BAD;
	if (!nentries)
		return HM_BPF_SPAN_NONE;
	__u32 len = (__u32)nentries * esize;
	if (len > 192 || bpf_probe_read_user(buf->b, len & 0xff, (const void *)entries))
		return HM_BPF_SPAN_BAD;
	__u64 span = 0;
	for (int i = 0; i < OTEL_DICT_ENTRIES; i++) {
		if (i >= nentries)
			break;
		__u32 off = ((__u32)i * esize + koff) & 0xff;
		__u64 key, val;
		__builtin_memcpy(&key, &buf->b[off & 0xf8], 8);
		__builtin_memcpy(&val, &buf->b[(off + 8) & 0xf8], 8);
		if (key == o->span_key) {
			span = val;
			break;
		}
	}
	if (!span)
		return HM_BPF_SPAN_NONE;
	__u64 at = otel_span_at(o, buf, span, e, 0);
	if (!at)
		return HM_BPF_SPAN_BAD;
	if (l) {
		l->c_dict = dict;
		l->c_ver = d[3];
		l->c_span = e->span;
		l->c_check = e->span_name_check;
		l->c_flags = e->span_flags;
		l->c_name_at = at > 1 ? at : 0;
	}
	return HM_BPF_SPAN_OK;
}

/* Fill e's span fields for the thread state ts (0: none found); l: the
 * thread's rtlast entry (may be 0). */
static __always_inline void hm_otel_sample(__u32 pid, __u64 ts, struct hm_bpf_rt *l,
					   struct hm_bpf_event *e)
{
	e->span.trace_hi = e->span.trace_lo = e->span.span_id = e->span.name = 0;
	e->span.parent_id = 0;
	e->span_name_check = 0;
	e->span_flags = 0;
	e->span_text_len = 0;
	e->span_why = ts ? (__u32)hm_otel_span(pid, ts, l, e)
			 : HM_BPF_SPAN_OFF;
}

#endif
