/* ui.c - serves the dashboard (docs/dashboard.md): the files of web/ as
 * bundled by esbuild, embedded at build time (server/ui.h), at / and /ui/.
 * Nothing is read from disk at run time. A build made without npm has no
 * files: / then answers a short page saying how to build the UI, and the
 * JSON API works as always. */
#include <string.h>

#include "server/ui.h"

static const char NOT_BUILT[] =
	"<!doctype html><meta charset=utf-8><title>homura</title>"
	"<body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">"
	"<h1>homura server</h1><p>This binary was built without the dashboard "
	"(npm was missing). To build it: <code>bash scripts/install-deps.sh</code> "
	"(installs nodejs and npm) then <code>make</code> (or <code>make web</code> "
	"and <code>make</code>), and restart the server.</p>"
	"<p>The JSON query API works without it: see <code>docs/api.md</code>, e.g. "
	"<a href=\"/api/v1/services\">/api/v1/services</a>.</p></body>\n";

int hm_ui_path(const char *path)
{
	return !strcmp(path, "/") || !strcmp(path, "/index.html") ||
	       !strcmp(path, "/favicon.ico") || !strncmp(path, "/ui/", 4);
}

void hm_ui_handle(const hm_http_req *rq, hm_http_resp *rs)
{
	const char *p = !strcmp(rq->path, "/index.html") ? "/" : rq->path;
	for (size_t i = 0; i < hm_ui_nassets; i++)
		if (!strcmp(hm_ui_assets[i].path, p)) {
			hm_http_reply(rs, 200, hm_ui_assets[i].content_type, hm_ui_assets[i].data,
				      hm_ui_assets[i].len);
			return;
		}
	if (!strcmp(p, "/favicon.ico")) {
		hm_http_reply(rs, 204, "text/plain", "", 0);
		return;
	}
	if (!hm_ui_nassets && !strcmp(p, "/")) {
		hm_http_reply(rs, 200, "text/html; charset=utf-8", NOT_BUILT, sizeof NOT_BUILT - 1);
		return;
	}
	hm_http_error(rs, 404, "no such file: %.200s", rq->path);
}
