/* agent.c - continuous profiling behind `homura agent` (agent.h).
 *
 * The agent drives the sampling loop (sample/sampler.h) with every target as
 * one of its processes, each sampled into its own hm_profile; what is the
 * agent's own runs in the loop's events. Windows are global:
 * when the window ends every target's profile is finished (labels, start,
 * duration) and submitted to each exporter, which encodes it at once; the
 * profile is then freed and a new one started, so memory does not grow with
 * time. A target that joins mid-window starts its own (shorter) first window.
 *
 * Targets: fixed pids, plus, with --all or --name, a /proc scan every
 * scan_interval_s (in the loop's `round` event) that attaches to new CPython
 * processes. A process that cannot be Python (or that we may not read) is
 * remembered by (pid, start time) so it is not examined again; that list is
 * pruned to live processes on every scan, so it stays bounded by the host's
 * process count. The loop checks liveness once a second; an exited target's
 * last window is exported from its `exit` event.
 *
 * Labels are worked out once per target: service.name (--service, else the
 * program name), then the target's OTEL_RESOURCE_ATTRIBUTES and
 * OTEL_SERVICE_NAME, then what the agent observes (host, pid, executable,
 * Python version), then --label flags; a later source overrides an earlier
 * one. */
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "base/base.h"
#include "base/error.h"
#include "base/log.h"
#include "proc/discover.h"
#include "proc/elf.h"
#include "proc/target.h"
#include "python/python.h"
#include "sample/sampler.h"

#define MAX_LABELS 32
#define MAX_PIDS_SCAN 65536
#define ATTACH_TRIES 10          /* scans a pythonic-looking process may stay "not ready" */
#define YOUNG_S 2                /* a process this young may still exec (young()) */
#define EXEC_RECHECK 5           /* scans between looks for an exec (exec_since()) */

typedef struct agent_target {
	pid_t pid;
	uint64_t starttime;
	int fixed;               /* from -p */
	hm_sproc *sp;            /* in the loop, which owns target and interpreter */
	hm_profile *prof;
	uint64_t win_start_real, win_start_mono;
	int nlabels;
	char *lk[MAX_LABELS], *lv[MAX_LABELS];
	struct agent_target *next;
} agent_target;

typedef struct seen_proc {       /* examined and not profiled */
	pid_t pid;
	uint64_t starttime;
	uint64_t ino;            /* of /proc/PID when last seen (0: unknown) */
	int tries;               /* not-ready attempts so far */
	int rejected;            /* never retry (unless it execs) */
	int attached;            /* rejected because it was profiled */
	uint64_t exe_dev, exe_ino;   /* its program when rejected (0: unknown) */
} seen_proc;

struct hm_agent {
	hm_agent_opts o;
	hm_sampler_opts so;
	hm_sampler *smp;
	int discover;            /* --all or --name */
	uint64_t window, win_end, scan_every, next_scan, stats_every, next_stats;
	unsigned nscans;
	regex_t re;
	int has_re;
	agent_target *targets;
	int ntargets;
	hm_exporter **exp;
	int nexp;
	seen_proc *seen;
	size_t nseen, seen_cap;
	pid_t *scanbuf;
	uint64_t *scanino;          /* /proc/PID inode numbers, by scan order */
	pid_t *scanpid;             /* the scanned pids, sorted */
	char host[256];
	hm_agent_stats st;
	uint64_t t0_mono;
	double cpu0, last_cpu, last_wall;
	int warned_perm;
};

static double cpu_seconds(long *maxrss)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	if (maxrss)
		*maxrss = ru.ru_maxrss;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

void hm_agent_opts_init(hm_agent_opts *o)
{
	memset(o, 0, sizeof *o);
	o->rate_hz = 100;
	o->interval_s = 10;
	o->scan_interval_s = 2;
	o->stats_interval_s = 60;
	o->max_depth = 4096;
}

/* ---- labels ---- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode [s, s+n) into a new string, trimming blanks. */
static char *decode_part(const char *s, size_t n)
{
	while (n && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	char *out = malloc(n + 1);
	if (!out)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		int h, l;
		if (s[i] == '%' && i + 2 < n &&
		    (h = hexval((unsigned char)s[i + 1])) >= 0 &&
		    (l = hexval((unsigned char)s[i + 2])) >= 0) {
			out[k++] = (char)(h * 16 + l);
			i += 2;
		} else {
			out[k++] = s[i];
		}
	}
	out[k] = 0;
	return out;
}

static void target_set_label(agent_target *tg, const char *k, const char *v)
{
	if (!k || !*k || !v)
		return;
	for (int i = 0; i < tg->nlabels; i++)
		if (!strcmp(tg->lk[i], k)) {
			char *nv = strdup(v);
			if (nv) {
				free(tg->lv[i]);
				tg->lv[i] = nv;
			}
			return;
		}
	if (tg->nlabels >= MAX_LABELS)
		return;
	char *nk = strdup(k), *nv = strdup(v);
	if (!nk || !nv) {
		free(nk);
		free(nv);
		return;
	}
	tg->lk[tg->nlabels] = nk;
	tg->lv[tg->nlabels++] = nv;
}

/* OTEL_RESOURCE_ATTRIBUTES: k=v,k=v with percent-encoded parts. */
static void parse_resource_attrs(agent_target *tg, const char *s)
{
	while (*s) {
		const char *end = strchr(s, ',');
		size_t n = end ? (size_t)(end - s) : strlen(s);
		const char *eq = memchr(s, '=', n);
		if (eq) {
			char *k = decode_part(s, (size_t)(eq - s));
			char *v = decode_part(eq + 1, n - (size_t)(eq - s) - 1);
			if (k && v && *k)
				target_set_label(tg, k, v);
			free(k);
			free(v);
		}
		s += n;
		if (*s == ',')
			s++;
	}
}

static const char *env_get(const char *env, size_t len, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < len;) {
		const char *e = env + i;
		size_t el = strnlen(e, len - i);
		if (el > nl && !strncmp(e, name, nl) && e[nl] == '=')
			return e + nl + 1;
		i += el + 1;
	}
	return NULL;
}

static void target_labels(hm_agent *a, agent_target *tg, hm_target *t, hm_python *py)
{
	char buf[256];
	size_t clen = 0, elen = 0;
	char *cmd = hm_target_cmdline(t, &clen);
	if (a->o.service && *a->o.service) {
		target_set_label(tg, "service.name", a->o.service);
	} else {
		hm_proc_program_name(cmd ? cmd : "", cmd ? clen : 0, buf, sizeof buf);
		target_set_label(tg, "service.name", buf);
	}
	char *env = hm_target_environ(t, &elen);
	char *envz = env && elen ? realloc(env, elen + 1) : NULL;
	if (envz) {
		env = envz;
		env[elen] = 0;   /* the last entry may lack its NUL */
		const char *ra = env_get(env, elen, "OTEL_RESOURCE_ATTRIBUTES");
		if (ra)
			parse_resource_attrs(tg, ra);
		const char *sn = env_get(env, elen, "OTEL_SERVICE_NAME");
		if (sn && *sn)
			target_set_label(tg, "service.name", sn);
	}
	free(env);
	/* Facts the agent observes itself come after the target's own claims,
	 * so a process cannot pass for another pid or host. */
	target_set_label(tg, "host.name", a->host);
	snprintf(buf, sizeof buf, "%d", (int)tg->pid);
	target_set_label(tg, "process.pid", buf);
	char exe[4096], link[64];
	snprintf(link, sizeof link, "/proc/%d/exe", (int)tg->pid);
	ssize_t xl = readlink(link, exe, sizeof exe - 1);
	if (xl > 0) {
		exe[xl] = 0;
		const char *base = strrchr(exe, '/');
		target_set_label(tg, "process.executable.name", base ? base + 1 : exe);
	} else if (cmd && clen) {
		const char *base = strrchr(cmd, '/');
		target_set_label(tg, "process.executable.name", base ? base + 1 : cmd);
	}
	target_set_label(tg, "process.runtime.name", "cpython");
	target_set_label(tg, "process.runtime.version", hm_python_version(py));
	free(cmd);
	for (int i = 0; i < a->o.nlabels; i++) {
		const char *l = a->o.labels[i];
		const char *eq = strchr(l, '=');
		if (!eq)
			continue;
		char k[256];
		snprintf(k, sizeof k, "%.*s", (int)(eq - l), l);
		target_set_label(tg, k, eq + 1);
	}
}

static const char *target_label(const agent_target *tg, const char *k)
{
	for (int i = 0; i < tg->nlabels; i++)
		if (!strcmp(tg->lk[i], k))
			return tg->lv[i];
	return "";
}

/* ---- targets ---- */

static int new_window(hm_agent *a, agent_target *tg)
{
	tg->prof = hm_profile_new(0);
	if (tg->sp)
		tg->sp->profile = tg->prof;
	if (!tg->prof)
		return hm_error(HM_ENOMEM, "out of memory");
	tg->win_start_real = hm_real_ns();
	tg->win_start_mono = hm_mono_ns();
	hm_profile_meta *m = hm_profile_meta_get(tg->prof);
	m->start_ns = tg->win_start_real;
	m->period_ns = (uint64_t)(1e9 / a->so.rate_hz);
	m->time_kind = a->so.idle ? HM_TIME_WALL : HM_TIME_CPU;
	return HM_OK;
}

/* Finish the window: label it, hand it to every exporter, free it. */
static void end_window(hm_agent *a, agent_target *tg)
{
	hm_profile *p = tg->prof;
	tg->prof = NULL;
	if (tg->sp)
		tg->sp->profile = NULL;
	if (!p)
		return;
	hm_profile_meta *m = hm_profile_meta_get(p);
	m->start_ns = tg->win_start_real;
	m->duration_ns = hm_mono_ns() - tg->win_start_mono;
	if (!hm_profile_nsamples(p)) {
		a->st.empty_windows++;
		hm_profile_free(p);
		return;
	}
	for (int i = 0; i < tg->nlabels; i++)
		hm_profile_set_label(p, tg->lk[i], tg->lv[i]);
	for (int i = 0; i < a->nexp; i++)
		hm_exporter_submit(a->exp[i], p);
	a->st.windows++;
	hm_profile_free(p);
}

static void target_free(agent_target *tg)
{
	if (!tg)
		return;
	hm_profile_free(tg->prof);
	for (int i = 0; i < tg->nlabels; i++) {
		free(tg->lk[i]);
		free(tg->lv[i]);
	}
	free(tg);
}

/* Attach to pid. HM_OK and *out set; HM_ENOTPY with *out NULL when Python is
 * not (yet) running there; other errors as from hm_target_open. */
static int target_attach(hm_agent *a, pid_t pid, int fixed, agent_target **out)
{
	*out = NULL;
	agent_target *tg = calloc(1, sizeof *tg);
	if (!tg)
		return hm_error(HM_ENOMEM, "out of memory");
	tg->pid = pid;
	tg->fixed = fixed;
	tg->starttime = hm_proc_starttime(pid);
	hm_target *t = NULL;
	hm_python *py = NULL;
	int rc = hm_target_open(pid, &t);
	if (rc == HM_OK)
		rc = hm_python_attach(t, &py);
	if (rc == HM_OK && !hm_python_ready(py))
		rc = hm_error(HM_ENOTPY, "process %d has not started running Python yet", (int)pid);
	if (rc == HM_OK)
		rc = new_window(a, tg);
	if (rc != HM_OK) {
		hm_python_detach(py);
		hm_target_close(t);
		target_free(tg);
		return rc;
	}
	target_labels(a, tg, t, py);
	/* The loop takes t and py (and sets the depth limit). */
	rc = hm_sampler_add(a->smp, t, py, tg->prof, tg, &tg->sp);
	if (rc != HM_OK) {
		target_free(tg);
		return rc;
	}
	*out = tg;
	return HM_OK;
}

static void target_add(hm_agent *a, agent_target *tg)
{
	tg->next = a->targets;
	a->targets = tg;
	a->ntargets++;
	a->st.attached++;
	hm_log(HM_LOG_INFO, "profiling process %d (%s, Python %s)", (int)tg->pid,
	       target_label(tg, "service.name"), hm_python_version(tg->sp->py));
}

static int have_target(const hm_agent *a, pid_t pid)
{
	for (const agent_target *t = a->targets; t; t = t->next)
		if (t->pid == pid)
			return 1;
	return 0;
}

/* ---- discovery ---- */

static seen_proc *seen_find(hm_agent *a, pid_t pid, uint64_t st)
{
	for (size_t i = 0; i < a->nseen; i++)
		if (a->seen[i].pid == pid && a->seen[i].starttime == st)
			return &a->seen[i];
	return NULL;
}

static seen_proc *seen_add(hm_agent *a, pid_t pid, uint64_t st)
{
	if (a->nseen == a->seen_cap) {
		size_t nc = a->seen_cap ? a->seen_cap * 2 : 256;
		seen_proc *ns = realloc(a->seen, nc * sizeof *ns);
		if (!ns)
			return NULL;
		a->seen = ns;
		a->seen_cap = nc;
	}
	seen_proc *s = &a->seen[a->nseen++];
	memset(s, 0, sizeof *s);
	s->pid = pid;
	s->starttime = st;
	return s;
}

static int cmp_pid(const void *x, const void *y)
{
	pid_t a = *(const pid_t *)x, b = *(const pid_t *)y;
	return (a > b) - (a < b);
}

static int matches(hm_agent *a, pid_t pid)
{
	if (!a->has_re)
		return 1;
	char *cmd = hm_proc_cmdline(pid, 8192);
	int m = cmd && regexec(&a->re, cmd, 0, NULL, 0) == 0;
	free(cmd);
	return m;
}

/* Whether a process that started at starttime (clock ticks since boot, as
 * /proc/PID/stat gives it) is less than YOUNG_S old. Between its fork and
 * its exec a process is a copy of its parent, with the pid and start time
 * it keeps after the exec: one found then not to be Python, or not to
 * match --name, is looked at again at the next scans while it is young,
 * not rejected for good (a scan that fell in that gap lost the program,
 * 1 run in about 100 of the agent tests). */
static int young(uint64_t starttime)
{
	struct timespec ts;
	long hz = sysconf(_SC_CLK_TCK);
	if (hz <= 0 || clock_gettime(CLOCK_BOOTTIME, &ts) != 0)
		return 0;
	uint64_t now = (uint64_t)ts.tv_sec * (uint64_t)hz +
		       (uint64_t)ts.tv_nsec / (1000000000ull / (uint64_t)hz);
	return now < starttime + (uint64_t)YOUNG_S * (uint64_t)hz;
}

/* The entry of a process examined in an earlier scan whose /proc/PID
 * directory is still the same (so is the process): no need to read its
 * start time again. */
static seen_proc *seen_same(hm_agent *a, pid_t pid, uint64_t ino)
{
	if (!ino)
		return NULL;
	for (size_t i = 0; i < a->nseen; i++)
		if (a->seen[i].pid == pid && a->seen[i].ino == ino)
			return &a->seen[i];
	return NULL;
}

/* s rejected as not Python (or not matching --name): its program then,
 * to see later whether it exec'd another. */
static void reject(seen_proc *s)
{
	s->rejected = 1;
	if (hm_proc_exe_id(s->pid, &s->exe_dev, &s->exe_ino) != 0)
		s->exe_dev = s->exe_ino = 0;
}

/* A process rejected as not Python that has since exec'd another program
 * (its pid and start time stay): a wrapper that runs Python when it is
 * done (`sh -c "migrate; exec python app.py"`, a container's entry
 * point) long after young() let it go. Looked for every EXEC_RECHECK
 * scans: a stat of /proc/PID/exe a rejected process. */
static int exec_since(const seen_proc *s)
{
	uint64_t dev, ino;
	return !s->attached && s->exe_ino && hm_proc_exe_id(s->pid, &dev, &ino) == 0 &&
	       (dev != s->exe_dev || ino != s->exe_ino);
}

static void scan(hm_agent *a)
{
	int n = hm_discover_pids_ino(a->scanbuf, a->scanino, MAX_PIDS_SCAN);
	if (n < 0)
		return;
	memcpy(a->scanpid, a->scanbuf, (size_t)n * sizeof *a->scanpid);
	qsort(a->scanpid, (size_t)n, sizeof *a->scanpid, cmp_pid);
	/* Forget processes that are gone, so the list stays bounded. */
	size_t k = 0;
	for (size_t i = 0; i < a->nseen; i++)
		if (bsearch(&a->seen[i].pid, a->scanpid, (size_t)n, sizeof(pid_t), cmp_pid))
			a->seen[k++] = a->seen[i];
	a->nseen = k;
	pid_t self = getpid();
	int recheck = a->nscans++ % EXEC_RECHECK == 0;
	for (int i = 0; i < n; i++) {
		pid_t pid = a->scanbuf[i];
		if (pid == self || have_target(a, pid))
			continue;
		seen_proc *s = seen_same(a, pid, a->scanino[i]);
		if (s && s->rejected && recheck && exec_since(s)) {
			s->rejected = 0;
			s->tries = 0;
		}
		if (s && s->rejected)
			continue;   /* the same process as before (no /proc/PID/stat read) */
		uint64_t st = hm_proc_starttime(pid);
		if (!st)
			continue;
		if (!s)
			s = seen_find(a, pid, st);
		if (s && s->rejected) {
			s->ino = a->scanino[i];
			continue;
		}
		if (!s && !(s = seen_add(a, pid, st)))
			continue;
		s->ino = a->scanino[i];
		if (!hm_proc_looks_python(pid) || !matches(a, pid)) {
			if (!young(s->starttime))
				reject(s);
			continue;
		}
		agent_target *tg = NULL;
		int rc = target_attach(a, pid, 0, &tg);
		if (rc == HM_OK) {
			target_add(a, tg);
			s->rejected = 1;    /* if it is dropped later, don't come back */
			s->attached = 1;
			continue;
		}
		if (rc == HM_EPERM && !a->warned_perm) {
			hm_log(HM_LOG_WARN, "%s", hm_errmsg());
			a->warned_perm = 1;
		} else if (rc == HM_EVERSION) {
			hm_log(HM_LOG_WARN, "not profiling process %d: %s", (int)pid, hm_errmsg());
		}
		if (rc != HM_ENOTPY || ++s->tries >= ATTACH_TRIES)
			reject(s);
	}
}

/* ---- the loop's events ---- */

/* A target exited: export its last window and let it go (the loop closes
 * its target and interpreter). */
static int target_exit(void *ctx, hm_sproc *sp)
{
	hm_agent *a = ctx;
	agent_target *tg = sp->user;
	end_window(a, tg);
	hm_log(HM_LOG_INFO, "process %d (%s) exited", (int)tg->pid, target_label(tg, "service.name"));
	for (agent_target **pp = &a->targets; *pp; pp = &(*pp)->next)
		if (*pp == tg) {
			*pp = tg->next;
			break;
		}
	target_free(tg);
	a->ntargets--;
	a->st.detached++;
	return 0;
}

static void log_cpu(hm_agent *a);

/* Before each round: discovery, window ends, the CPU log line. */
static int agent_round(void *ctx, hm_sampler *s, uint64_t now)
{
	hm_agent *a = ctx;
	if (a->discover && now >= a->next_scan) {
		scan(a);
		a->next_scan = now + a->scan_every;
	}
	if (now >= a->win_end) {
		for (agent_target *tg = a->targets; tg; tg = tg->next) {
			end_window(a, tg);
			new_window(a, tg);
		}
		/* parsed ELF files no target has used for a minute go */
		hm_elf_cache_trim();
		a->win_end += a->window;
		if (a->win_end <= now)
			a->win_end = now + a->window;
	}
	if (now >= a->next_stats) {
		log_cpu(a);
		a->next_stats = now + a->stats_every;
	}
	for (agent_target *tg = a->targets; tg; tg = tg->next)
		if (!tg->prof)
			new_window(a, tg);   /* an earlier allocation failed */
	a->st.ticks++;
	return 0;
}

/* The loop's counters in a->st. */
static void sync_stats(hm_agent *a)
{
	const hm_sampler_stats *ss = hm_sampler_stats_of(a->smp);
	a->st.samples = ss->samples;
	a->st.invalid = ss->invalid;
	a->st.span_torn = ss->span_torn;
	a->st.errors = ss->errors;
	a->st.late = ss->late;
}

static void log_cpu(hm_agent *a)
{
	double wall = (double)(hm_mono_ns() - a->t0_mono) / 1e9;
	long rss = 0;
	double cpu = cpu_seconds(&rss);
	double dw = wall - a->last_wall, dc = cpu - a->last_cpu;
	double pct = dw > 0 ? 100.0 * dc / dw : 0;
	sync_stats(a);
	hm_log(HM_LOG_INFO,
	       "cpu %.2f%% of a core over the last %.0f s (%.3f%% per profiled process, %d "
	       "processes); max rss %ld KiB; %llu samples, %llu profiles",
	       pct, dw, a->ntargets ? pct / a->ntargets : pct, a->ntargets, rss,
	       (unsigned long long)a->st.samples, (unsigned long long)a->st.windows);
	a->last_wall = wall;
	a->last_cpu = cpu;
}

/* --ebpf: a target the kernel walker cannot walk is read from user space. */
static void ebpf_skip(void *ctx, hm_sproc *p, const char *why)
{
	hm_log(HM_LOG_INFO, "process %d: %s; sampled from user space", (int)p->pid, why);
}

int hm_agent_new(const hm_agent_opts *o, hm_agent **out)
{
	*out = NULL;
	if (!(o->rate_hz > 0) || o->rate_hz > 10000)
		return hm_error(HM_EINVAL, "invalid rate %g (1-10000 samples per second)", o->rate_hz);
	if (!(o->interval_s >= 0.1))
		return hm_error(HM_EINVAL, "invalid interval %g (at least 0.1 s)", o->interval_s);
	if (!o->npids && !o->all && !o->name_regex)
		return hm_error(HM_EINVAL, "no targets: give -p PID, --name PATTERN or --all");
	hm_agent *a = calloc(1, sizeof *a);
	if (!a)
		return hm_error(HM_ENOMEM, "out of memory");
	a->o = *o;
	if (a->o.scan_interval_s <= 0)
		a->o.scan_interval_s = 2;
	hm_sampler_opts_init(&a->so);
	a->so.rate_hz = o->rate_hz;
	a->so.idle = o->idle;
	a->so.nolineno = o->nolineno;
	a->so.max_depth = o->max_depth > 0 ? o->max_depth : 4096;
	a->so.stop = o->stop;
	a->so.alive_check_s = 1.0;
	a->discover = o->all || o->name_regex;
	a->so.keep_going = a->discover;
	a->so.ebpf = o->ebpf;
	a->so.ebpf_kernel = o->ebpf && o->kernel;
	if (gethostname(a->host, sizeof a->host) != 0)
		snprintf(a->host, sizeof a->host, "unknown");
	a->host[sizeof a->host - 1] = 0;
	hm_sampler_events ev = {.ctx = a, .round = agent_round, .exit = target_exit,
				.ebpf_skip = ebpf_skip};
	int rc = hm_sampler_new(&a->so, &ev, &a->smp);
	if (rc != HM_OK) {
		free(a);
		return rc;
	}
	if (o->ebpf && hm_sampler_ebpf_why(a->smp))
		hm_log(HM_LOG_WARN, "%s; using the user-space sampler", hm_sampler_ebpf_why(a->smp));
	else if (o->ebpf)
		hm_log(HM_LOG_INFO, "sampling in the kernel (one BPF program on a cpu-clock event per CPU)");
	if (o->name_regex) {
		int r = regcomp(&a->re, o->name_regex, REG_EXTENDED | REG_NOSUB);
		if (r != 0) {
			char msg[128];
			regerror(r, &a->re, msg, sizeof msg);
			hm_agent_free(a);
			return hm_error(HM_EINVAL, "invalid --name pattern '%s': %s", o->name_regex, msg);
		}
		a->has_re = 1;
	}
	if ((o->all || o->name_regex) &&
	    (!(a->scanbuf = malloc(MAX_PIDS_SCAN * sizeof(pid_t))) ||
	     !(a->scanpid = malloc(MAX_PIDS_SCAN * sizeof(pid_t))) ||
	     !(a->scanino = malloc(MAX_PIDS_SCAN * sizeof(uint64_t)))))
		rc = hm_error(HM_ENOMEM, "out of memory");
	for (int i = 0; rc == HM_OK && i < o->npids; i++) {
		if (have_target(a, o->pids[i]))
			continue;
		agent_target *tg = NULL;
		rc = target_attach(a, o->pids[i], 1, &tg);
		if (rc == HM_OK)
			target_add(a, tg);
	}
	if (rc != HM_OK) {
		hm_agent_free(a);
		return rc;
	}
	*out = a;
	return HM_OK;
}

int hm_agent_add_exporter(hm_agent *a, hm_exporter *e)
{
	hm_exporter **ne = realloc(a->exp, (size_t)(a->nexp + 1) * sizeof *ne);
	if (!ne)
		return hm_error(HM_ENOMEM, "out of memory");
	a->exp = ne;
	a->exp[a->nexp++] = e;
	return HM_OK;
}

int hm_agent_run(hm_agent *a)
{
	a->window = (uint64_t)(a->o.interval_s * 1e9);
	a->scan_every = (uint64_t)(a->o.scan_interval_s * 1e9);
	a->stats_every = (uint64_t)(a->o.stats_interval_s * 1e9);
	a->t0_mono = hm_mono_ns();
	a->cpu0 = a->last_cpu = cpu_seconds(NULL);
	a->last_wall = 0;
	a->next_scan = a->t0_mono;
	a->win_end = a->t0_mono + a->window;
	a->next_stats = a->stats_every ? a->t0_mono + a->stats_every : UINT64_MAX;
	if (a->discover)
		hm_log(HM_LOG_INFO, "looking for %s every %g s",
		       a->o.all ? "CPython processes" : "matching CPython processes",
		       a->o.scan_interval_s);
	int rc = hm_sampler_run(a->smp);
	if (hm_sampler_stats_of(a->smp)->target_exited)
		hm_log(HM_LOG_INFO, "every profiled process has exited");
	/* The last, partial windows. */
	for (agent_target *tg = a->targets; tg; tg = tg->next)
		end_window(a, tg);
	return rc;
}

void hm_agent_stats_get(hm_agent *a, hm_agent_stats *st)
{
	sync_stats(a);
	*st = a->st;
	st->targets = a->ntargets;
	long rss = 0;
	st->cpu_s = cpu_seconds(&rss) - a->cpu0;
	st->max_rss_kb = rss;
	st->wall_s = a->t0_mono ? (double)(hm_mono_ns() - a->t0_mono) / 1e9 : 0;
}

void hm_agent_free(hm_agent *a)
{
	if (!a)
		return;
	while (a->targets) {
		agent_target *n = a->targets->next;
		target_free(a->targets);
		a->targets = n;
	}
	if (a->has_re)
		regfree(&a->re);
	hm_sampler_free(a->smp);   /* closes the targets and interpreters */
	free(a->exp);
	free(a->seen);
	free(a->scanbuf);
	free(a->scanpid);
	free(a->scanino);
	free(a);
}
