/* python.c - attaching to a CPython interpreter inside a target process.
 *
 * Finds the module that holds the interpreter (libpythonX.Y.so, or the
 * python executable itself for static builds), resolves _PyRuntime (3.7+) or
 * interp_head (2.7/3.6), PyCode_Type and Py_Version through the ELF symbol
 * tables, works out the version, and picks the layout: a compiled-in table
 * for 2.7 and 3.6-3.12, _Py_DebugOffsets read from the target for 3.13+.
 * The stack walking itself lives in walker.c. */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/error.h"
#include "proc/elf.h"
#include "python/otel.h"
#include "python/pyinternal.h"
#include "python/pyobj.h"

/* "libpython3.12.so.1.0", "libpython3.13t.so" */
static int match_libpython(const char *base, void *ctx)
{
	(void)ctx;
	return !strncmp(base, "libpython", 9) && strstr(base, ".so") != NULL;
}

struct exe_ctx {
	const char *exe_base;
};

static int match_exe(const char *base, void *ctx)
{
	struct exe_ctx *c = ctx;
	return !strcmp(base, c->exe_base);
}

/* Parse "X.Y" out of a file name like python3.12 or libpython3.9d.so. */
static int version_from_name(const char *base, int *major, int *minor)
{
	const char *p = strstr(base, "python");
	if (!p)
		return -1;
	p += 6;
	if (!isdigit((unsigned char)p[0]) || p[1] != '.' || !isdigit((unsigned char)p[2]))
		return -1;
	*major = p[0] - '0';
	*minor = atoi(p + 2);
	return 0;
}

static int file_is_free_threaded(const char *base)
{
	/* libpython3.13t.so / python3.13t */
	const char *p = strstr(base, "python");
	if (!p)
		return 0;
	p += 6;
	while (*p && (isdigit((unsigned char)*p) || *p == '.'))
		p++;
	return *p == 't';
}

/* Offset of the kernel tid inside glibc's struct pthread, found in our own
 * process by looking for our tid near pthread_self(). Used on <3.11 where the
 * thread state only records the pthread_t. */
static int find_pthread_tid_offset(void)
{
	pid_t tid = (pid_t)syscall(SYS_gettid);
	const unsigned char *self = (const unsigned char *)pthread_self();
	for (int off = 0; off < 2048; off += 4) {
		pid_t v;
		memcpy(&v, self + off, sizeof v);
		if (v == tid)
			return off;
	}
	return -1;
}

static const char *basename_of(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static int resolve(hm_elf *e, const char *name, uint64_t bias, uint64_t *addr)
{
	uint64_t a, sz;
	if (hm_elf_symbol(e, name, &a, &sz) != HM_OK)
		return -1;
	*addr = a + bias;
	return 0;
}

static int not_python(hm_target *t)
{
	size_t len = 0;
	char *cmd = hm_target_cmdline(t, &len);
	char shown[128] = "?";
	if (cmd && len) {
		snprintf(shown, sizeof shown, "%s", cmd);
	}
	free(cmd);
	return hm_error(HM_ENOTPY, "process %d (%s) is not a Python process: no libpython or python "
			"executable with CPython symbols is mapped", (int)hm_target_pid(t), shown);
}

static int trace_default = 1;    /* hm_python_trace_default */

int hm_python_attach(hm_target *t, hm_python **out)
{
	*out = NULL;
	if (hm_target_refresh_maps(t) != HM_OK)
		return hm_errcode();

	hm_module mod;
	memset(&mod, 0, sizeof mod);
	int found = hm_target_find_module(t, match_libpython, NULL, &mod) == HM_OK;
	hm_elf *e = NULL;
	uint64_t runtime = 0, interp_head = 0;
	if (found) {
		char *p = hm_target_path(t, mod.path);
		e = p ? hm_elf_open(p) : NULL;
		free(p);
		if (e && resolve(e, "_PyRuntime", mod.bias, &runtime) &&
		    resolve(e, "interp_head", mod.bias, &interp_head)) {
			hm_elf_close(e);
			e = NULL;
		}
		if (!e) {
			hm_module_free(&mod);
			found = 0;
		}
	}
	if (!found) {
		/* Static build: the executable itself carries the interpreter. */
		char exe[4096], link[64];
		snprintf(link, sizeof link, "/proc/%d/exe", (int)hm_target_pid(t));
		ssize_t n = readlink(link, exe, sizeof exe - 1);
		if (n <= 0)
			return not_python(t);
		exe[n] = 0;
		char *del = strstr(exe, " (deleted)");
		if (del)
			*del = 0;
		struct exe_ctx c = {basename_of(exe)};
		if (hm_target_find_module(t, match_exe, &c, &mod) != HM_OK)
			return not_python(t);
		char *p = hm_target_path(t, mod.path);
		e = p ? hm_elf_open(p) : NULL;
		free(p);
		if (!e || (resolve(e, "_PyRuntime", mod.bias, &runtime) &&
			   resolve(e, "interp_head", mod.bias, &interp_head))) {
			if (e)
				hm_elf_close(e);
			hm_module_free(&mod);
			return not_python(t);
		}
	}

	int rc;
	hm_python *py = calloc(1, sizeof *py);
	if (!py) {
		hm_elf_close(e);
		hm_module_free(&mod);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	py->t = t;
	py->runtime = runtime;
	py->interp_head_sym = interp_head;
	py->max_depth = 4096;
	py->tid_offset = find_pthread_tid_offset();

	/* Version: Py_Version (3.11+), else the file name. */
	const char *base = basename_of(mod.path);
	int major = 0, minor = 0, micro = -1;
	uint64_t vaddr;
	uint32_t hex = 0;
	if (!resolve(e, "Py_Version", mod.bias, &vaddr) && hm_target_read(t, vaddr, &hex, 4) == HM_OK &&
	    (hex >> 24) >= 2) {
		major = (int)(hex >> 24);
		minor = (int)((hex >> 16) & 0xff);
		micro = (int)((hex >> 8) & 0xff);
	} else if (version_from_name(base, &major, &minor)) {
		major = 0;
	}
	uint64_t code_type = 0;
	resolve(e, "PyCode_Type", mod.bias, &code_type);
	resolve(e, "PyFrame_Type", mod.bias, &py->frame_type);
	resolve(e, "_PyThreadState_Current", mod.bias, &py->tstate_current_sym);
	hm_elf_close(e);

	if (!major && runtime) {
		/* A static build of 3.13+ without a versioned name: the debug
		 * offsets carry the version. */
		char blob[16];
		if (hm_target_read(t, runtime, blob, sizeof blob) == HM_OK && !memcmp(blob, "xdebugpy", 8)) {
			memcpy(&hex, blob + 8, 4);
			major = (int)(hex >> 24);
			minor = (int)((hex >> 16) & 0xff);
		}
	}
	if (!major) {
		rc = hm_error(HM_EVERSION, "cannot tell which Python version process %d runs (%s)",
				(int)hm_target_pid(t), base);
		goto fail;
	}
	if (micro >= 0)
		snprintf(py->version, sizeof py->version, "%d.%d.%d", major, minor, micro);
	else
		snprintf(py->version, sizeof py->version, "%d.%d", major, minor);

	if (file_is_free_threaded(base)) {
		rc = hm_error(HM_EVERSION, "CPython %s is a free-threaded build (%s): not supported yet",
				py->version, base);
		goto fail;
	}
	if (major == 3 && minor >= 13) {
		/* _Py_DebugOffsets sits at the start of _PyRuntime. */
		uint8_t blob[4096];
		if (!runtime || hm_target_read(t, runtime, blob, sizeof blob) != HM_OK) {
			rc = hm_error(HM_EIO, "cannot read _Py_DebugOffsets of process %d",
					(int)hm_target_pid(t));
			goto fail;
		}
		rc = hm_pylayout_from_debug_offsets(blob, sizeof blob, &py->layout_copy);
		if (rc != HM_OK)
			goto fail;
		py->layout = &py->layout_copy;
	} else {
		py->layout = hm_pylayout_builtin(major, minor);
		if (!py->layout) {
			rc = hm_error(HM_EVERSION, "CPython %s is not supported (supported: 2.7, 3.6-3.13 and "
					"later)", py->version);
			goto fail;
		}
	}
	if (!py->runtime && !py->interp_head_sym) {
		rc = not_python(t);
		goto fail;
	}
	py->code_type = code_type;
	py->mod_path = mod.path;     /* kept for hm_pyobj_reader_init */
	py->mod_bias = mod.bias;
	mod.path = NULL;
	hm_module_free(&mod);
	walker_init(py);
	py->trace = trace_default;
	*out = py;
	return HM_OK;
fail:
	hm_module_free(&mod);
	free(py);
	return rc;
}

int hm_python_attach_symbols(hm_target *t, uint64_t runtime, uint32_t version_hex,
			     uint64_t code_type, uint64_t frame_type, hm_python **out)
{
	*out = NULL;
	int major = (int)(version_hex >> 24), minor = (int)((version_hex >> 16) & 0xff);
	int micro = (int)((version_hex >> 8) & 0xff);
	if (major != 3 || !runtime)
		return hm_error(HM_EVERSION, "not a CPython 3 runtime");
	hm_python *py = calloc(1, sizeof *py);
	if (!py)
		return hm_error(HM_ENOMEM, "out of memory");
	py->t = t;
	py->runtime = runtime;
	py->inproc = 1;
	py->max_depth = 4096;
	py->tid_offset = find_pthread_tid_offset();
	snprintf(py->version, sizeof py->version, "%d.%d.%d", major, minor, micro);
	if (minor >= 13) {
		uint8_t blob[4096];
		int rc = hm_target_read(t, runtime, blob, sizeof blob) == HM_OK
			 ? hm_pylayout_from_debug_offsets(blob, sizeof blob, &py->layout_copy)
			 : hm_error(HM_EIO, "cannot read _Py_DebugOffsets");
		if (rc != HM_OK) {
			free(py);
			return rc;
		}
		py->layout = &py->layout_copy;
	} else {
		py->layout = hm_pylayout_builtin(major, minor);
	}
	if (!py->layout) {
		free(py);
		return hm_error(HM_EVERSION, "CPython %d.%d is not supported", major, minor);
	}
	py->code_type = code_type;
	py->frame_type = frame_type;
	walker_init(py);
	*out = py;
	return HM_OK;
}

void hm_python_detach(hm_python *py)
{
	if (!py)
		return;
	walker_fini(py);
	pynames_free(py);
	otel_close(py->otel);
	free(py->mod_path);
	free(py);
}

const hm_pylayout *hm_python_layout(const hm_python *py) { return py->layout; }
const char *hm_python_version(const hm_python *py) { return py->version; }

void hm_python_trace_default(int on)
{
	trace_default = on != 0;
}

void hm_python_set_trace(hm_python *py, int on)
{
	py->trace = on != 0;
}

int hm_python_trace_found(const hm_python *py)
{
	return otel_found(py->otel);
}

/* The reader, opened on first use (NULL: tracing off or unsupported). */
struct hm_otel *python_otel(hm_python *py)
{
	if (!py->trace)
		return NULL;
	if (!py->otel && !py->otel_failed && !(py->otel = otel_open(py)))
		py->otel_failed = 1;
	return py->otel;
}

int hm_python_context_span(hm_python *py, uint64_t context, hm_pyspan *out)
{
	struct hm_otel *o = python_otel(py);
	out->trace_hi = out->trace_lo = out->span_id = 0;
	out->name[0] = out->root[0] = 0;
	out->parent_id = 0;
	out->local_root = 0;
	if (!o || otel_context_span(o, context, out)) {
		out->trace_hi = out->trace_lo = out->span_id = 0;
		return -1;
	}
	return 0;
}

int hm_python_span_layout(hm_python *py, hm_pyspan_layout *out)
{
	struct hm_otel *o = python_otel(py);
	uint64_t ts[64], interp = 0;
	pid_t tids[64];
	if (!o)
		return -1;
	int n = hm_python_thread_states(py, &interp, tids, ts, 64);
	return otel_span_layout(o, ts, n < 0 ? 0 : n, out);
}

int hm_python_span_root_scan(hm_python *py, uint64_t tstate, hm_pyspan *sp,
			     const uint64_t span_types[2], int full)
{
	struct hm_otel *o = python_otel(py);
	if (!o)
		return -1;
	hm_pythread th;
	memset(&th, 0, sizeof th);
	int rc = hm_python_walk_tstate(py, tstate, &th) == HM_OK && th.valid
		 ? otel_root_find(o, &th, sp, span_types, full) : -1;
	free(th.frames);
	return rc;
}

int hm_python_span_root_hints(hm_python *py, uint64_t *codes, int *idx, int max)
{
	struct hm_otel *o = python_otel(py);
	return o ? otel_root_hints(o, codes, idx, max) : 0;
}

int hm_python_locals_offset(hm_python *py)
{
	const uint64_t base = 1ull << 40;
	hm_pyobj_reader r;
	memset(&r, 0, sizeof r);
	r.layout = py->layout;
	hm_pyframe f;
	memset(&f, 0, sizeof f);
	f.addr = base;
	uint64_t slot = hm_pyobj_local_slot(&r, &f, 0);
	return slot && slot - base < 4096 ? (int)(slot - base) : -1;
}

int hm_python_span_root_at(hm_python *py, uint64_t frame, uint64_t code, hm_pyspan *sp,
			   const uint64_t span_types[2])
{
	struct hm_otel *o = python_otel(py);
	return o ? otel_root_at(o, frame, code, sp, span_types) : -1;
}

void hm_python_span_note(hm_python *py, hm_pyspan *sp)
{
	struct hm_otel *o = python_otel(py);
	if (o)
		otel_span_note(o, sp);
}

int hm_python_span_root_from_tasks(hm_python *py, hm_pyspan *sp)
{
	struct hm_otel *o = python_otel(py);
	return o && otel_root_in_tasks(o, sp) ? 0 : -1;
}

int hm_python_str_snapshot(hm_python *py, uint64_t addr, uint8_t head[48],
			   uint8_t raw[HM_PYSTR_RAW], char *buf, size_t cap)
{
	struct hm_otel *o = python_otel(py);
	return o ? otel_str_snapshot(o, addr, head, raw, buf, cap) : -1;
}

int hm_python_context_span_same(hm_python *py, uint64_t context, const hm_pyspan *out)
{
	struct hm_otel *o = python_otel(py);
	return o ? otel_context_same(o, context, out) : -1;
}

void hm_python_set_max_depth(hm_python *py, int depth)
{
	py->max_depth = depth < 1 ? 1 : depth;
}
