/* fairlock.h - private: a first-come first-served (ticket) mutex.
 *
 * The stores' write side uses it: a long put lets the lock go between its
 * transactions, and with a plain mutex the same thread would usually take
 * it straight back; here every writer already waiting is served first. */
#ifndef HOMURA_FAIRLOCK_H
#define HOMURA_FAIRLOCK_H

#include <pthread.h>
#include <stdint.h>

typedef struct hm_fairlock {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t next, serving;
} hm_fairlock;

static inline void hm_fairlock_init(hm_fairlock *l)
{
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	l->next = l->serving = 0;
}

static inline void hm_fairlock_destroy(hm_fairlock *l)
{
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
}

static inline void hm_fairlock_lock(hm_fairlock *l)
{
	pthread_mutex_lock(&l->mu);
	uint64_t me = l->next++;
	while (me != l->serving)
		pthread_cond_wait(&l->cv, &l->mu);
	pthread_mutex_unlock(&l->mu);
}

static inline void hm_fairlock_unlock(hm_fairlock *l)
{
	pthread_mutex_lock(&l->mu);
	l->serving++;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

#endif
