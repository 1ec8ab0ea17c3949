/* topview.h - the numbers behind `homura top`, without any terminal code.
 *
 * A topview takes sampled stacks one by one and keeps, per function and per
 * line: own samples (the frame is the leaf) and total samples (the frame is
 * anywhere on the stack, counted once per stack however deep the recursion)
 * for the current refresh window, for the last closed window, and since the
 * start (as time: the weight of each sample). Rows are built from the last
 * closed window (percentages) and the totals (seconds), sorted by a column.
 *
 * Percentages are relative to the window's sampling rounds, like top's %CPU:
 * a function busy on two threads at once shows 200%.
 *
 * A thread sampled inside an OpenTelemetry span also counts, once, towards a
 * "span: NAME" row (total only): which span burns the time.
 * Memory grows with distinct functions and lines, not with samples. */
#ifndef HOMURA_TOPVIEW_H
#define HOMURA_TOPVIEW_H

#include <stddef.h>
#include <stdint.h>

#include "native/native.h"
#include "python/python.h"

typedef struct hm_topview hm_topview;

enum hm_top_mode { HM_TOP_FUNCTIONS = 0, HM_TOP_LINES = 1 };

enum hm_top_sort {
	HM_TOP_SORT_OWN = 0,          /* %Own (last window) */
	HM_TOP_SORT_TOTAL = 1,        /* %Total (last window) */
	HM_TOP_SORT_OWN_TIME = 2,     /* OwnTime (since start) */
	HM_TOP_SORT_TOTAL_TIME = 3,   /* TotalTime (since start) */
};

/* A frame given by its text, for hm_topview_add. */
typedef struct hm_topframe {
	const char *name;
	const char *file;        /* NULL or "" if none */
	int32_t line;            /* 0 if unknown */
	int32_t start_line;      /* first line of the function, 0 if unknown */
} hm_topframe;

typedef struct hm_toprow {
	const char *name;
	const char *file;        /* "" if none */
	int32_t line;            /* line view: the line; function view: the
				  * function's first line (0 if unknown) */
	int64_t own_n, total_n;  /* samples in the last closed window */
	double own_pct, total_pct;
	double own_s, total_s;   /* since start */
} hm_toprow;

hm_topview *hm_topview_new(void);
void hm_topview_free(hm_topview *v);

/* One sampling round happened (the denominator of the percentages). */
void hm_topview_round(hm_topview *v);
/* One thread's stack, leaf first (frames[0] is running), of weight_ns.
 * HM_OK or HM_ENOMEM. */
int hm_topview_add(hm_topview *v, const hm_topframe *frames, int n, int64_t weight_ns);
/* The same for a sampled Python thread. It caches interned ids in the code
 * objects' user fields (as hm_sampler_add_thread does, with its own tag). */
int hm_topview_add_thread(hm_topview *v, const hm_pythread *th, int64_t weight_ns);
/* The same merged with the thread's native stack ns (--native; L gives the
 * frame model); th alone when ns is not HM_NATSTACK_OK or the two stacks do
 * not fit together. */
int hm_topview_add_native(hm_topview *v, const hm_pythread *th, const hm_natstack *ns,
			  const hm_pylayout *L, int64_t weight_ns);
/* Close the current window: rows now show it, and a new one starts. */
void hm_topview_end_window(hm_topview *v);

/* Rounds and stacks in the last closed window; stacks since the start. */
uint64_t hm_topview_window_rounds(const hm_topview *v);
uint64_t hm_topview_window_stacks(const hm_topview *v);
uint64_t hm_topview_total_stacks(const hm_topview *v);

/* Number of rows a view has (everything seen since the start). */
size_t hm_topview_nrows(const hm_topview *v, int mode);
/* The best max rows of a view by the sort column (ties: the other columns,
 * then name, file, line), written to rows. Returns how many were written.
 * Row strings stay valid for the topview's life. */
size_t hm_topview_rows(const hm_topview *v, int mode, int sort, hm_toprow *rows, size_t max);

/* Text for the terminal and for --iterations. `width` is the number of
 * display columns to fill at most (0: no limit); wide (CJK) characters count
 * two, invalid UTF-8 and control characters show as '?', and with ascii set
 * every non-ASCII character shows as '?'. The buffers are NUL-terminated;
 * cap must be at least 4 * width + 1 (or large enough for the row when width
 * is 0, else the text is cut). Both return the display width written. */
int hm_topview_format_columns(int sort, int width, char *buf, size_t cap);
int hm_topview_format_row(const hm_toprow *r, int width, int ascii, char *buf, size_t cap);

/* Copy at most `width` display columns of UTF-8 text s into buf (same rules
 * as above; width < 0: no limit). Returns the display width copied. */
int hm_text_fit(const char *s, int width, int ascii, char *buf, size_t cap);
/* Display width of UTF-8 text under the same rules. */
int hm_text_width(const char *s, int ascii);

#endif
