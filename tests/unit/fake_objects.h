/* fake_objects.h - CPython objects built by hand in a local arena, laid out
 * as a layout table says, and served as a target's memory
 * (hm_target_open_mem with arena_read): what the object-reader tests
 * (test_pyobj.c) and the span-reader tests and fuzzer (otel_world.h) build
 * their worlds from. The includer sets L (the layout) before building, and
 * includes the homura headers this uses. */
#ifndef HOMURA_FAKE_OBJECTS_H
#define HOMURA_FAKE_OBJECTS_H

static _Alignas(16) uint8_t arena[1 << 16];
static size_t used;

static int arena_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	uint64_t lo = (uint64_t)(uintptr_t)arena;
	if (addr < lo || addr + len > lo + sizeof arena || addr + len < addr)
		return -1;
	memcpy(buf, (void *)(uintptr_t)addr, len);
	return 0;
}

static uint64_t alloc(size_t n)
{
	used = (used + 15) & ~(size_t)15;
	uint64_t a = (uint64_t)(uintptr_t)(arena + used);
	used += n;
	assert_true(used <= sizeof arena);
	return a;
}

static void put64(uint64_t addr, int off, uint64_t v)
{
	memcpy((void *)(uintptr_t)(addr + (uint64_t)off), &v, 8);
}

static void put32(uint64_t addr, int off, uint32_t v)
{
	memcpy((void *)(uintptr_t)(addr + (uint64_t)off), &v, 4);
}

static void put8(uint64_t addr, int off, uint8_t v)
{
	*(uint8_t *)(uintptr_t)(addr + (uint64_t)off) = v;
}

static hm_pyobj_reader R;
static const hm_pylayout *L;

/* A type object named `name` (tp_name points at a copy in the arena). */
static uint64_t make_type(const char *name)
{
	uint64_t t = alloc(1024);
	uint64_t s = alloc(strlen(name) + 1);
	memcpy((void *)(uintptr_t)s, name, strlen(name) + 1);
	put64(t, L->tp_name, s);
	return t;
}

static void setup_layout(int minor)
{
	memset(arena, 0, sizeof arena);
	used = 0;
	L = minor == 13 ? &hm_pylayout_py313 : hm_pylayout_builtin(3, minor);
	assert_non_null(L);
	memset(&R, 0, sizeof R);
	R.layout = L;
	R.read = arena_read;
	static const char *const names[HM_PT_COUNT] = {
		"str", "bytes", "int", "float", "bool", "NoneType", "tuple", "list",
		"dict", "cell", "module",
	};
	for (int i = 0; i < HM_PT_COUNT; i++)
		R.types[i] = make_type(names[i]);
	R.types[HM_PT_NONE] = alloc(16);     /* the None object itself */
	put64(R.types[HM_PT_NONE], L->ob_type, make_type("NoneType"));
}

static uint64_t obj(int kind, size_t size)
{
	uint64_t o = alloc(size);
	put64(o, 0, 1);                     /* refcount */
	put64(o, L->ob_type, R.types[kind]);
	return o;
}

/* A compact ASCII str. */
static uint64_t make_str(const char *s)
{
	size_t n = strlen(s);
	uint64_t o = obj(HM_PT_STR, (size_t)L->uni_ascii_size + n + 1);
	put64(o, L->uni_length, n);
	uint32_t state = (1u << L->uni_kind_shift) | (1u << L->uni_compact_bit) |
			 (1u << L->uni_ascii_bit);
	put32(o, L->uni_state, state);
	memcpy((void *)(uintptr_t)(o + (uint64_t)L->uni_ascii_size), s, n + 1);
	return o;
}

/* An int from a magnitude (30-bit digits) and sign, in this layout. */
static uint64_t make_int(int kind, uint64_t mag, int neg)
{
	uint32_t d[4];
	int nd = 0;
	while (mag) {
		d[nd++] = (uint32_t)(mag & ((1u << 30) - 1));
		mag >>= 30;
	}
	uint64_t o = obj(kind, (size_t)L->long_digit + 16);
	if (L->long_tag >= 0)
		put64(o, L->long_tag, ((uint64_t)nd << 3) | (nd == 0 ? 1u : neg ? 2u : 0u));
	else
		put64(o, L->var_size, (uint64_t)(neg ? -nd : nd));
	for (int i = 0; i < nd; i++)
		put32(o, L->long_digit + 4 * i, d[i]);
	return o;
}

#endif
