/* error.h - homura's error codes and the last-error message.
 *
 * Library functions that can fail return a negative hm_err (or NULL) and leave
 * a one-line human message in a thread-local buffer, read with hm_errmsg().
 * Front ends print that line and exit non-zero; the library never exits. */
#ifndef HOMURA_ERROR_H
#define HOMURA_ERROR_H

enum hm_err {
	HM_OK = 0,
	HM_ENOPROC = -1,     /* no such process */
	HM_EPERM = -2,       /* ptrace permission missing */
	HM_ENOTPY = -3,      /* not a (recognisable) Python process */
	HM_EVERSION = -4,    /* Python version/build not supported */
	HM_EIO = -5,         /* remote read failed (torn, unmapped, exited) */
	HM_EINVAL = -6,      /* bad argument / corrupt input */
	HM_ENOMEM = -7,
	HM_ESYS = -8,        /* other system error */
};

/* Set the message for the current thread; returns code so callers can
 * `return hm_error(HM_EPERM, "...")`. */
int hm_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *hm_errmsg(void);
int hm_errcode(void);

#endif
