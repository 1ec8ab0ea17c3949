/* querier.h - Grafana Pyroscope's querier.v1.QuerierService over the
 * Connect protocol (querier.c), the API Grafana's Pyroscope data source
 * calls: POST /querier.v1.QuerierService/<Method>. */
#ifndef HOMURA_QUERIER_H
#define HOMURA_QUERIER_H

#include "server/server.h"

/* Nonzero for a path under /querier.v1.QuerierService/. */
int hm_querier_path(const char *path);
/* Answer a querier request (any method; errors in the Connect shape). */
void hm_querier_handle(hm_store *st, const hm_http_req *rq, hm_http_resp *rs);

#endif
