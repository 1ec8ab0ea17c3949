/* export_queue.c - the bounded FIFO behind each network exporter (export.h).
 *
 * Items live in a singly linked list in memory, bounded by their total size.
 * With a spool directory every item is also on disk, one file per item named
 * by its sequence number in hex so that a directory listing sorted by name is
 * the queue order: a kill -9 of the agent loses nothing that was queued, and
 * the next run picks the files up. Items in memory have their file written
 * when they are pushed and removed when they are popped (these copies are
 * not counted against the spool bound); what does not fit in memory lives
 * only on disk, bounded by the spool's own byte bound. To keep order every
 * new item goes to the spool while the spool holds anything, and the
 * consumer refills memory from the spool's head when memory runs empty. An
 * empty memory queue always accepts one item, so a bound smaller than one
 * profile degrades to "one in flight" rather than "never send". A spool file
 * is "HMQ1", the meta length (u32, little endian), the meta, then the data;
 * it is created under a random temporary name with O_CREAT|O_EXCL|O_NOFOLLOW
 * in the spool directory (held open) and renamed into place (fileio.h).
 * An item the destination refused for now can be set aside (deferred) until
 * a given time: it then waits in a small list in memory (its file stays) and
 * is handed out again, before the FIFO's head, once its time has come. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/export.h"
#include "base/base.h"
#include "base/error.h"
#include "base/log.h"
#include "base/fileio.h"

typedef struct spool_ent {
	uint64_t seq;
	size_t bytes;            /* file size */
	unsigned attempts;       /* kept while the process lives */
	struct spool_ent *next;
} spool_ent;

struct hm_queue {
	pthread_mutex_t mu;
	hm_qitem *head, *tail;
	hm_qitem *deferred;      /* set aside until their not_before (unordered) */
	hm_qitem *cur;           /* returned by the last peek */
	int cur_deferred;        /* ... from the deferred list */
	uint64_t nmem;
	size_t mem_bytes, max_bytes;
	char *spool_dir;
	int spool_fd;            /* the spool directory, held open (-1: none) */
	size_t disk_bytes;       /* files of the items in memory */
	uint64_t nwrite_fail;    /* memory items whose file could not be written */
	spool_ent *shead, *stail;
	uint64_t nspool;
	size_t spool_bytes, spool_max;
	uint64_t next_seq;
	uint64_t pushed, dropped, dropped_bytes;
};

#define SPOOL_MAGIC "HMQ1"
#define SPOOL_MAX_ITEM (512u << 20)

static void item_free(hm_qitem *it)
{
	if (!it)
		return;
	free(it->meta);
	free(it->data);
	free(it);
}

static size_t item_bytes(const hm_qitem *it)
{
	return it->len + (it->meta ? strlen(it->meta) : 0);
}

static void spool_name(uint64_t seq, char *buf, size_t cap)
{
	snprintf(buf, cap, "%016llx.hmq", (unsigned long long)seq);
}

static size_t file_bytes(const hm_qitem *it)
{
	return 8 + (it->meta ? strlen(it->meta) : 0) + it->len;
}

static void mem_append(hm_queue *q, hm_qitem *it)
{
	it->next = NULL;
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->nmem++;
	q->mem_bytes += item_bytes(it);
	if (it->on_disk)
		q->disk_bytes += file_bytes(it);
}

static void spool_append(hm_queue *q, spool_ent *e)
{
	e->next = NULL;
	if (q->stail)
		q->stail->next = e;
	else
		q->shead = e;
	q->stail = e;
	q->nspool++;
	q->spool_bytes += e->bytes;
}

/* Unlink the memory head (mu held); its file, if any, stays. */
static hm_qitem *mem_unlink_head(hm_queue *q)
{
	hm_qitem *h = q->head;
	if (!h)
		return NULL;
	q->head = h->next;
	if (!q->head)
		q->tail = NULL;
	h->next = NULL;
	q->nmem--;
	q->mem_bytes -= item_bytes(h);
	if (h->on_disk)
		q->disk_bytes -= file_bytes(h);
	return h;
}

/* Take it out of the deferred list (mu held); its file, if any, stays. */
static hm_qitem *def_unlink(hm_queue *q, hm_qitem *it)
{
	for (hm_qitem **pp = &q->deferred; *pp; pp = &(*pp)->next) {
		if (*pp != it)
			continue;
		*pp = it->next;
		it->next = NULL;
		q->nmem--;
		q->mem_bytes -= item_bytes(it);
		if (it->on_disk)
			q->disk_bytes -= file_bytes(it);
		return it;
	}
	return NULL;
}

/* Write its file (named by its seq) in the spool directory; 0 on success. */
static int file_write(hm_queue *q, const hm_qitem *it)
{
	size_t mlen = it->meta ? strlen(it->meta) : 0;
	char name[64], tmp[64];
	spool_name(it->seq, name, sizeof name);
	int fd = hm_create_tmp(q->spool_fd, "hmq", 0600, tmp, sizeof tmp);
	if (fd < 0)
		return -1;
	FILE *f = fdopen(fd, "wb");
	if (!f) {
		close(fd);
		unlinkat(q->spool_fd, tmp, 0);
		return -1;
	}
	unsigned char hdr[8];
	memcpy(hdr, SPOOL_MAGIC, 4);
	for (int i = 0; i < 4; i++)
		hdr[4 + i] = (unsigned char)(mlen >> (8 * i));
	int ok = fwrite(hdr, 1, 8, f) == 8 && fwrite(it->meta ? it->meta : "", 1, mlen, f) == mlen &&
		 fwrite(it->data, 1, it->len, f) == it->len;
	ok = (fclose(f) == 0) && ok;
	if (!ok || renameat(q->spool_fd, tmp, q->spool_fd, name) != 0) {
		unlinkat(q->spool_fd, tmp, 0);
		return -1;
	}
	return 0;
}

static void file_remove(hm_queue *q, uint64_t seq)
{
	char name[64];
	spool_name(seq, name, sizeof name);
	unlinkat(q->spool_fd, name, 0);
}

/* Put it at the spool's tail, on disk only (its file is written unless it
 * is there already); 0 on success. */
static int spool_write(hm_queue *q, const hm_qitem *it)
{
	size_t total = file_bytes(it);
	if (q->spool_fd < 0 || q->spool_bytes + total > q->spool_max)
		return -1;
	spool_ent *e = calloc(1, sizeof *e);
	if (!e)
		return -1;
	if (!it->on_disk && file_write(q, it) != 0) {
		free(e);
		return -1;
	}
	e->seq = it->seq;
	e->bytes = total;
	e->attempts = it->attempts;
	spool_append(q, e);
	return 0;
}

/* Read the spool's head back into an item; its file stays until the item
 * is popped. NULL if the file is unreadable or corrupt (it is then deleted
 * and counted dropped). */
static hm_qitem *spool_take(hm_queue *q)
{
	spool_ent *e = q->shead;
	q->shead = e->next;
	if (!q->shead)
		q->stail = NULL;
	q->nspool--;
	q->spool_bytes -= e->bytes;
	char name[64];
	spool_name(e->seq, name, sizeof name);
	hm_qitem *it = calloc(1, sizeof *it);
	int fd = openat(q->spool_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
	if (!f && fd >= 0)
		close(fd);
	unsigned char hdr[8];
	int ok = 0;
	struct stat sb;
	if (it && f && fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) &&
	    (size_t)sb.st_size == e->bytes && fread(hdr, 1, 8, f) == 8 &&
	    !memcmp(hdr, SPOOL_MAGIC, 4)) {
		size_t mlen = (size_t)hdr[4] | (size_t)hdr[5] << 8 | (size_t)hdr[6] << 16 |
			      (size_t)hdr[7] << 24;
		if (mlen + 8 <= e->bytes) {
			it->len = e->bytes - 8 - mlen;
			it->meta = malloc(mlen + 1);
			it->data = malloc(it->len ? it->len : 1);
			if (it->meta && it->data && fread(it->meta, 1, mlen, f) == mlen &&
			    fread(it->data, 1, it->len, f) == it->len) {
				it->meta[mlen] = 0;
				if (!mlen) {
					free(it->meta);
					it->meta = NULL;
				}
				it->seq = e->seq;
				it->made = (double)sb.st_mtim.tv_sec + (double)sb.st_mtim.tv_nsec / 1e9;
				it->on_disk = 1;
				it->attempts = e->attempts;
				ok = 1;
			}
		}
	}
	if (f)
		fclose(f);
	if (!ok) {
		unlinkat(q->spool_fd, name, 0);
		q->dropped++;
		q->dropped_bytes += e->bytes;
		hm_log(HM_LOG_WARN, "dropped unreadable spool file %s/%s", q->spool_dir, name);
		item_free(it);
		it = NULL;
	}
	free(e);
	return it;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* mkdir -p, private to us. */
static int make_dirs(const char *path)
{
	char buf[4096];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0700) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(buf, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* Index the spool files an earlier run left behind. */
static int spool_load(hm_queue *q)
{
	if (make_dirs(q->spool_dir) != 0)
		return hm_error(HM_ESYS, "cannot create spool directory %s: %s", q->spool_dir,
				strerror(errno));
	q->spool_fd = open(q->spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int dfd = q->spool_fd >= 0 ? fcntl(q->spool_fd, F_DUPFD_CLOEXEC, 0) : -1;
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		int err = errno;
		if (dfd >= 0)
			close(dfd);
		return hm_error(HM_ESYS, "cannot open spool directory %s: %s", q->spool_dir,
				strerror(err));
	}
	uint64_t *seqs = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		unsigned long long s;
		if (!strncmp(de->d_name, ".hmq.", 5)) {   /* a write cut short (kill -9) */
			unlinkat(q->spool_fd, de->d_name, 0);
			continue;
		}
		char tail[8];
		if (strlen(de->d_name) != 20 || sscanf(de->d_name, "%16llx%7s", &s, tail) != 2 ||
		    strcmp(tail, ".hmq"))
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			uint64_t *ns = realloc(seqs, nc * sizeof *ns);
			if (!ns)
				break;
			seqs = ns;
			cap = nc;
		}
		seqs[n++] = s;
	}
	closedir(d);
	if (n)
		qsort(seqs, n, sizeof *seqs, cmp_u64);
	for (size_t i = 0; i < n; i++) {
		char name[64];
		struct stat sb;
		spool_name(seqs[i], name, sizeof name);
		if (fstatat(q->spool_fd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(sb.st_mode) || sb.st_size < 8 || (size_t)sb.st_size > SPOOL_MAX_ITEM)
			continue;
		spool_ent *e = calloc(1, sizeof *e);
		if (!e)
			break;
		e->seq = seqs[i];
		e->bytes = (size_t)sb.st_size;
		spool_append(q, e);
		if (seqs[i] >= q->next_seq)
			q->next_seq = seqs[i] + 1;
	}
	free(seqs);
	if (q->nspool)
		hm_log(HM_LOG_INFO, "spool %s: %llu profiles (%zu bytes) from an earlier run",
		       q->spool_dir, (unsigned long long)q->nspool, q->spool_bytes);
	return HM_OK;
}

int hm_queue_new(size_t max_bytes, const char *spool_dir, size_t spool_max_bytes, hm_queue **out)
{
	*out = NULL;
	hm_queue *q = calloc(1, sizeof *q);
	if (!q)
		return hm_error(HM_ENOMEM, "out of memory");
	pthread_mutex_init(&q->mu, NULL);
	q->max_bytes = max_bytes;
	q->spool_max = spool_max_bytes;
	q->spool_fd = -1;
	q->next_seq = 1;
	if (spool_dir && *spool_dir) {
		q->spool_dir = strdup(spool_dir);
		int rc = q->spool_dir ? spool_load(q) : hm_error(HM_ENOMEM, "out of memory");
		if (rc != HM_OK) {
			hm_queue_free(q);
			return rc;
		}
	}
	*out = q;
	return HM_OK;
}

void hm_queue_free(hm_queue *q)
{
	if (!q)
		return;
	while (q->head) {    /* files of items in memory stay for the next run */
		hm_qitem *n = q->head->next;
		item_free(q->head);
		q->head = n;
	}
	while (q->deferred) {
		hm_qitem *n = q->deferred->next;
		item_free(q->deferred);
		q->deferred = n;
	}
	while (q->shead) {   /* the files stay for the next run */
		spool_ent *n = q->shead->next;
		free(q->shead);
		q->shead = n;
	}
	free(q->spool_dir);
	if (q->spool_fd >= 0)
		close(q->spool_fd);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

int hm_queue_push(hm_queue *q, unsigned char *data, size_t len, char *meta)
{
	hm_qitem *it = calloc(1, sizeof *it);
	if (!it) {
		free(data);
		free(meta);
		return hm_error(HM_ENOMEM, "out of memory");
	}
	it->data = data;
	it->len = len;
	it->meta = meta;
	pthread_mutex_lock(&q->mu);
	it->seq = q->next_seq++;
	it->made = hm_real_s();
	size_t b = item_bytes(it);
	int rc = HM_OK;
	if (!q->nspool && (!q->head || q->mem_bytes + b <= q->max_bytes)) {
		/* with a spool, on disk too, so that a kill -9 loses nothing */
		if (q->spool_fd >= 0) {
			if (file_write(q, it) == 0)
				it->on_disk = 1;
			else if (!q->nwrite_fail++)
				hm_log(HM_LOG_WARN, "cannot write to spool %s: %s; queueing in memory only",
				       q->spool_dir, strerror(errno));
		}
		mem_append(q, it);
		it = NULL;
	} else if (spool_write(q, it) == 0) {
		item_free(it);
		it = NULL;
	} else {
		q->dropped++;
		q->dropped_bytes += b;
		rc = hm_error(HM_ENOMEM, "queue full");
	}
	if (rc == HM_OK)
		q->pushed++;
	pthread_mutex_unlock(&q->mu);
	item_free(it);
	return rc;
}

hm_qitem *hm_queue_next(hm_queue *q, double now, double *next_due)
{
	pthread_mutex_lock(&q->mu);
	hm_qitem *due = NULL;
	double first = 0;
	for (hm_qitem *d = q->deferred; d; d = d->next) {
		if (d->not_before <= now) {
			if (!due || d->not_before < due->not_before)
				due = d;
		} else if (!first || d->not_before < first) {
			first = d->not_before;
		}
	}
	if (next_due)
		*next_due = first;
	if (due) {
		q->cur = due;
		q->cur_deferred = 1;
		pthread_mutex_unlock(&q->mu);
		return due;
	}
	while (!q->head && q->shead) {
		hm_qitem *it = spool_take(q);
		if (it)
			mem_append(q, it);
	}
	q->cur = q->head;
	q->cur_deferred = 0;
	hm_qitem *h = q->head;
	pthread_mutex_unlock(&q->mu);
	return h;
}

hm_qitem *hm_queue_peek(hm_queue *q)
{
	return hm_queue_next(q, HUGE_VAL, NULL);
}

void hm_queue_pop(hm_queue *q)
{
	pthread_mutex_lock(&q->mu);
	hm_qitem *h = NULL;
	if (q->cur && q->cur_deferred) {
		h = def_unlink(q, q->cur);
	} else if (!q->cur || q->cur == q->head) {   /* no peek: the head */
		h = mem_unlink_head(q);
	}
	q->cur = NULL;
	if (h && h->on_disk)
		file_remove(q, h->seq);
	pthread_mutex_unlock(&q->mu);
	item_free(h);
}

void hm_queue_defer(hm_queue *q, double not_before)
{
	pthread_mutex_lock(&q->mu);
	hm_qitem *h = q->cur;
	if (h && !q->cur_deferred && h == q->head) {
		mem_unlink_head(q);
		h->next = q->deferred;
		q->deferred = h;
		q->nmem++;
		q->mem_bytes += item_bytes(h);
		if (h->on_disk)
			q->disk_bytes += file_bytes(h);
	}
	if (h)
		h->not_before = not_before;
	q->cur = NULL;
	pthread_mutex_unlock(&q->mu);
}

size_t hm_queue_spill(hm_queue *q)
{
	pthread_mutex_lock(&q->mu);
	/* Memory items are older than spooled ones; they keep their sequence
	 * numbers, so the spool's name order stays the queue order. */
	size_t lost = 0;
	spool_ent *old_head = q->shead, *old_tail = q->stail;
	uint64_t old_n = q->nspool;
	size_t old_bytes = q->spool_bytes;
	q->shead = q->stail = NULL;
	q->nspool = 0;
	q->spool_bytes = old_bytes;   /* the bound counts what is there */
	q->cur = NULL;
	while (q->deferred || q->head) {
		hm_qitem *h = q->deferred ? def_unlink(q, q->deferred) : mem_unlink_head(q);
		if (h->on_disk)   /* its file is there: keep it even past the bound */
			q->spool_max += file_bytes(h);
		int kept = spool_write(q, h) == 0;
		if (h->on_disk)
			q->spool_max -= file_bytes(h);
		if (!kept) {
			if (h->on_disk)
				file_remove(q, h->seq);
			lost++;
			q->dropped++;
			q->dropped_bytes += item_bytes(h);
		}
		item_free(h);
	}
	q->tail = NULL;
	/* Newly spooled (older) entries first, then the earlier spool. */
	size_t new_bytes = q->spool_bytes - old_bytes;
	if (q->stail) {
		q->stail->next = old_head;
		if (old_tail)
			q->stail = old_tail;
	} else {
		q->shead = old_head;
		q->stail = old_tail;
	}
	q->nspool += old_n;
	q->spool_bytes = old_bytes + new_bytes;
	pthread_mutex_unlock(&q->mu);
	return lost;
}

void hm_queue_stats_get(hm_queue *q, hm_queue_stats *st)
{
	pthread_mutex_lock(&q->mu);
	st->queued = q->nmem + q->nspool;
	st->queued_bytes = q->mem_bytes + q->spool_bytes;
	st->spooled = q->nspool;
	st->spooled_bytes = q->spool_bytes;
	st->pushed = q->pushed;
	st->dropped = q->dropped;
	st->dropped_bytes = q->dropped_bytes;
	pthread_mutex_unlock(&q->mu);
}
