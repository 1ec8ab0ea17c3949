/* log.h - the library's one-line log, used where a long-running part
 * (the agent, its exporters and their queues) has something to say but no
 * caller to return it to. */
#ifndef HOMURA_LOG_H
#define HOMURA_LOG_H

enum hm_log_level { HM_LOG_INFO = 0, HM_LOG_WARN = 1, HM_LOG_ERROR = 2 };
typedef void (*hm_log_fn)(int level, const char *msg);
/* Where library log lines go (default: "homura: <msg>" on stderr). */
void hm_log_set(hm_log_fn fn);
void hm_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
