/* ui.h - the dashboard's static files (docs/dashboard.md), embedded in the
 * binary: web/ is bundled by esbuild and turned into C arrays
 * (build/gen/ui_assets.c, written by web/build.mjs, or a stub without npm),
 * so `homura server` serves the page with no file on disk and no network. */
#ifndef HOMURA_SERVER_UI_H
#define HOMURA_SERVER_UI_H

#include <stddef.h>
#include "server/server.h"

typedef struct hm_ui_asset {
	const char *path;           /* "/", "/ui/app.js", ... */
	const char *content_type;   /* static string */
	const unsigned char *data;
	size_t len;
} hm_ui_asset;

/* Defined by the generated build/gen/ui_assets.c (0 assets: not built). */
extern const hm_ui_asset hm_ui_assets[];
extern const size_t hm_ui_nassets;

/* Nonzero for the dashboard's paths (/, /index.html, /ui/...): no token is
 * needed for them (they hold no data; the page asks for the read token). */
int hm_ui_path(const char *path);
/* Answer a GET of a dashboard path: the embedded file, or 404; when the UI
 * was not built, / answers a page that says how to build it. */
void hm_ui_handle(const hm_http_req *rq, hm_http_resp *rs);
/* GET /api/v1/source?file=F plus a selection: {"file","lines":[...]} when F
 * is an absolute .py path named by the selection's frames and readable
 * here (403 when not in the selection, 404 when not readable). */
void hm_ui_source(hm_store *st, const hm_http_req *rq, hm_http_resp *rs);

#endif
