/* pynames.c - names of a target's Python threads (hm_python_thread_names).
 *
 * Python keeps thread names in the threading module: sys.modules['threading']
 * ._active maps each thread's ident (its pthread_t) to a Thread object whose
 * _name attribute is the name ("MainThread", "Thread-1 (worker)", ...). That
 * walk costs a few hundred small reads (sys.modules is searched by key), so
 * the dict's address is kept for 10 s, and the names read from it are cached
 * per pthread id and refreshed at most once a second.
 * Threads the threading module does not know (or a target that never
 * imported it) fall back to the kernel's name, /proc/PID/task/TID/comm. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"
#include "base/util.h"
#include "python/pyinternal.h"
#include "python/pyobj.h"

#define NAMES_MAX 256
#define NAME_LEN 64
#define REFRESH_NS 1000000000ull
#define LOOKUP_NS 10000000000ull     /* re-find threading._active every 10 s */

struct pyname {
	uint64_t key;                /* pthread id (Python) or tid (comm) */
	char name[NAME_LEN];
};

struct pynames {
	hm_pyobj_reader r;
	int reader_ok;               /* 1 ok, -1 failed (don't retry) */
	uint64_t refreshed_ns;
	uint64_t active;             /* threading._active, found by a full lookup */
	uint64_t active_ns;          /* when that lookup ran */
	int npy, ncomm;
	struct pyname py[NAMES_MAX]; /* from threading._active */
	struct pyname comm[NAMES_MAX];
};

void pynames_free(hm_python *py)
{
	free(py->names);
	py->names = NULL;
}

/* One threading._active item: ident -> Thread. */
static int add_active(void *ctx, uint64_t key, uint64_t value)
{
	struct pynames *nm = ctx;
	uint64_t ident, nameobj;
	int neg;
	if (nm->npy >= NAMES_MAX)
		return 1;
	if (hm_pyobj_int(&nm->r, key, &ident, &neg) != 0 || neg)
		return 0;
	if (hm_pyobj_getattr(&nm->r, value, "_name", &nameobj))
		return 0;
	struct pyname *e = &nm->py[nm->npy];
	if (hm_pyobj_str(&nm->r, nameobj, e->name, sizeof e->name) || !e->name[0])
		return 0;
	e->key = ident;
	nm->npy++;
	return 0;
}

/* Find threading._active through the main interpreter's sys.modules. */
static uint64_t find_active(hm_python *py, struct pynames *nm)
{
	const hm_pylayout *L = py->layout;
	uint64_t interp = 0, modules = 0, threading, mdict, active;
	if (L->is_modules < 0 || L->mod_dict < 0)
		return 0;
	uint64_t head = py->runtime ? py->runtime + (uint64_t)L->rt_interpreters_head
				    : py->interp_head_sym;
	/* The main interpreter is the last one in the list. */
	for (int i = 0; head && i < HM_MAX_INTERPS; i++) {
		uint64_t next;
		if (hm_target_read(py->t, head, &next, 8) != HM_OK || !next)
			break;
		interp = next;
		head = next + (uint64_t)L->is_next;
	}
	if (!interp || hm_target_read(py->t, interp + (uint64_t)L->is_modules, &modules, 8) != HM_OK)
		return 0;
	if (hm_pyobj_dict_get(&nm->r, modules, "threading", &threading) ||
	    hm_target_read(py->t, threading + (uint64_t)L->mod_dict, &mdict, 8) != HM_OK ||
	    hm_pyobj_dict_get(&nm->r, mdict, "_active", &active))
		return 0;
	return active;
}

/* Re-read the names in threading._active. */
static void refresh_python(hm_python *py, struct pynames *nm, uint64_t now)
{
	nm->npy = 0;
	/* The lookup through sys.modules reads every module name: it runs
	 * at most every LOOKUP_NS, also when threading is not imported. */
	if (!nm->active_ns || now - nm->active_ns >= LOOKUP_NS ||
	    (nm->active && hm_pyobj_kind(&nm->r, nm->active) != HM_PT_DICT)) {
		nm->active = find_active(py, nm);
		nm->active_ns = now;
	}
	if (nm->active && hm_pyobj_dict_items(&nm->r, nm->active, add_active, nm, NAMES_MAX) < 0)
		nm->active = 0;
}

static const char *lookup(struct pyname *tab, int n, uint64_t key)
{
	for (int i = 0; i < n; i++)
		if (tab[i].key == key)
			return tab[i].name;
	return NULL;
}

/* The kernel's name of a thread, cached until the next refresh. */
static const char *comm_name(hm_python *py, struct pynames *nm, pid_t tid)
{
	const char *hit = lookup(nm->comm, nm->ncomm, (uint64_t)tid);
	if (hit || nm->ncomm >= NAMES_MAX)
		return hit;
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task/%d/comm", (int)hm_target_pid(py->t), (int)tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	struct pyname *e = &nm->comm[nm->ncomm];
	if (!fgets(e->name, sizeof e->name, f)) {
		fclose(f);
		return NULL;
	}
	fclose(f);
	e->name[strcspn(e->name, "\n")] = 0;
	if (!e->name[0])
		return NULL;
	e->key = (uint64_t)tid;
	nm->ncomm++;
	return e->name;
}

int hm_python_thread_names(hm_python *py, hm_pysample *s)
{
	struct pynames *nm = py->names;
	if (!nm) {
		nm = py->names = calloc(1, sizeof *nm);
		if (!nm)
			return hm_error(HM_ENOMEM, "out of memory");
	}
	if (!nm->reader_ok)
		nm->reader_ok = hm_pyobj_reader_init(&nm->r, py) == HM_OK ? 1 : -1;
	uint64_t now = hm_mono_ns();
	if (!nm->refreshed_ns || now - nm->refreshed_ns >= REFRESH_NS) {
		nm->refreshed_ns = now;
		nm->ncomm = 0;
		if (nm->reader_ok > 0)
			refresh_python(py, nm, now);
	}
	for (int i = 0; i < s->nthreads; i++) {
		hm_pythread *th = &s->threads[i];
		th->name = lookup(nm->py, nm->npy, th->pthread_id);
		if (!th->name && th->tid)
			th->name = comm_name(py, nm, th->tid);
	}
	return HM_OK;
}
