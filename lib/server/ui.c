/* ui.c - serves the dashboard (docs/dashboard.md): the files of web/ as
 * bundled by esbuild, embedded at build time (server/ui.h), at / and /ui/.
 * Nothing is read from disk for them at run time. A build made without npm
 * has no files: / then answers a short page saying how to build the UI, and
 * the JSON API works as always.
 *
 * /api/v1/source answers the lines of a Python source file for the source
 * view, only when the file is named by a frame of the request's selection
 * (checked through /api/v1/top with the same arguments), is an absolute
 * *.py path, a regular file (the last component not a symlink) of at most
 * HM_UI_MAX_SOURCE bytes and readable by the server. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/textesc.h"
#include "server/ui.h"

#define HM_UI_MAX_SOURCE (2u << 20)

static const char NOT_BUILT[] =
	"<!doctype html><meta charset=utf-8><title>homura</title>"
	"<body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">"
	"<h1>homura server</h1><p>This binary was built without the dashboard "
	"(npm was missing, or its build failed: see the output of make). "
	"To build it: <code>bash scripts/install-deps.sh</code> "
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

/* Whether file is the file of a function in the selection's top list. */
static int in_selection(hm_store *st, const hm_http_req *rq, const char *file, hm_http_resp *err)
{
	hm_http_req q = *rq;
	q.path = "/api/v1/top";
	q.nargs = 0;
	for (size_t i = 0; i < rq->nargs; i++)
		if (strcmp(rq->arg_k[i], "file") && strcmp(rq->arg_k[i], "limit") &&
		    strcmp(rq->arg_k[i], "sort") && q.nargs < HM_SERVER_MAX_ARGS - 1) {
			q.arg_k[q.nargs] = rq->arg_k[i];
			q.arg_v[q.nargs++] = rq->arg_v[i];
		}
	q.arg_k[q.nargs] = "limit";
	q.arg_v[q.nargs++] = "100000";
	hm_http_resp r = {0};
	hm_api_handle(st, &q, &r);
	int found = 0;
	if (r.status == 200) {
		json_t *j = json_loadb((const char *)r.body, r.len, 0, NULL), *f;
		size_t i;
		json_array_foreach(json_object_get(j, "functions"), i, f) {
			const char *x = json_string_value(json_object_get(f, "file"));
			if (x && !strcmp(x, file)) {
				found = 1;
				break;
			}
		}
		json_decref(j);
	} else {
		*err = r;     /* the selection's own error */
		return -1;
	}
	free(r.body);
	return found;
}

/* Lines of the file (invalid UTF-8 bytes become U+FFFD) as a JSON array. */
static json_t *split_lines(const char *buf, size_t len)
{
	json_t *a = json_array();
	char *line = malloc(len * 3 + 4);
	size_t n = 0;
	for (size_t i = 0; line && i <= len;) {
		if (i == len || buf[i] == '\n') {
			if (i < len || n)
				json_array_append_new(a, json_stringn(line, n));
			n = 0;
			i++;
			continue;
		}
		size_t adv;
		uint32_t c = hm_utf8_decode(buf + i, len - i, &adv);
		if (c == 0xFFFD && adv == 1) {
			memcpy(line + n, "\xef\xbf\xbd", 3);
			n += 3;
		} else if (buf[i] == '\r' && i + 1 < len && buf[i + 1] == '\n') {
			/* CRLF: dropped with its LF */
		} else {
			memcpy(line + n, buf + i, adv);
			n += adv;
		}
		i += adv;
	}
	free(line);
	return a;
}

void hm_ui_source(hm_store *st, const hm_http_req *rq, hm_http_resp *rs)
{
	const char *file = hm_http_arg(rq, "file");
	size_t fl = file ? strlen(file) : 0;
	if (!file || file[0] != '/' || fl < 4 ||
	    (strcmp(file + fl - 3, ".py") && (fl < 5 || strcmp(file + fl - 4, ".pyw")))) {
		hm_http_error(rs, 400, "source needs file=, an absolute path to a .py file");
		return;
	}
	int ok = in_selection(st, rq, file, rs);
	if (ok < 0)
		return;
	if (!ok) {
		hm_http_error(rs, 403, "%.200s is not a file of this selection's frames", file);
		return;
	}
	int fd = open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    (size_t)sb.st_size > HM_UI_MAX_SOURCE) {
		int e = fd < 0 ? errno : 0;
		if (fd >= 0)
			close(fd);
		hm_http_error(rs, 404, "source of %.200s not readable here%s%s", file,
			      e ? ": " : " (not a regular file of at most 2 MiB)",
			      e ? strerror(e) : "");
		return;
	}
	size_t len = (size_t)sb.st_size, got = 0;
	char *buf = malloc(len + 1);
	while (buf && got < len) {
		ssize_t r = read(fd, buf + got, len - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (!buf) {
		hm_http_error(rs, 500, "out of memory");
		return;
	}
	json_t *j = json_pack("{s:s, s:o}", "file", file, "lines", split_lines(buf, got));
	free(buf);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (s)
		hm_http_reply(rs, 200, "application/json", s, strlen(s));
	else
		hm_http_error(rs, 500, "out of memory");
	free(s);
}
