/*
 * Reference loops for bench/stress.sh, to compare the Rust `stress` against.
 *
 *   stress-ref MODE MIB_PER_THREAD THREADS GB_PER_THREAD
 *
 * MODE
 *   xor    the original guestperf algorithm: each thread xors its buffer, 64-bit word by word,
 *          with a 4 KiB block of random bytes, 4 KiB page after page, pass after pass.
 *   const  the same walk xoring every word with a constant: a streaming read-modify-write
 *          baseline for the memory bandwidth of this access pattern.
 *
 * Each thread touches its whole buffer before the clock starts (as the original did), then
 * prints one line per GB (2^30 bytes) of work: `gb THREAD ELAPSED_MS`. Build with gcc -O2.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define BLOCK 4096
#define GIB (1ULL << 30)

struct job {
    int thread;
    int constant;
    size_t bytes;
    unsigned long long gbs;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void *work(void *arg)
{
    struct job *job = arg;
    uint64_t *buf = aligned_alloc(BLOCK, job->bytes);
    uint64_t block[BLOCK / 8];
    size_t words = job->bytes / 8;
    unsigned long long done = 0, bytes = 0;

    if (!buf) {
        fprintf(stderr, "stress-ref: cannot allocate %zu bytes\n", job->bytes);
        exit(1);
    }
    memset(buf, 0xfe, job->bytes);
    if (job->constant) {
        for (size_t i = 0; i < BLOCK / 8; i++)
            block[i] = 0x5a5a5a5a5a5a5a5aULL;
    } else if (getrandom(block, sizeof(block), GRND_NONBLOCK) != sizeof(block)) {
        fprintf(stderr, "stress-ref: getrandom failed\n");
        exit(1);
    }

    double before = now_ms();
    while (done < job->gbs) {
        for (size_t page = 0; page < words && done < job->gbs; page += BLOCK / 8) {
            uint64_t *p = buf + page;
            if (job->constant) {
                for (size_t k = 0; k < BLOCK / 8; k++)
                    p[k] ^= 0x5a5a5a5a5a5a5a5aULL;
            } else {
                for (size_t k = 0; k < BLOCK / 8; k++)
                    p[k] ^= block[k];
            }
            bytes += BLOCK;
            if (bytes == GIB) {
                double after = now_ms();
                printf("gb %d %.3f\n", job->thread, after - before);
                before = after;
                bytes = 0;
                done++;
            }
        }
    }
    free(buf);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[1], "xor") && strcmp(argv[1], "const"))) {
        fprintf(stderr, "usage: stress-ref xor|const MIB_PER_THREAD THREADS GB_PER_THREAD\n");
        return 2;
    }
    size_t mib = strtoull(argv[2], NULL, 10);
    int threads = atoi(argv[3]);
    unsigned long long gbs = strtoull(argv[4], NULL, 10);
    if (mib == 0 || threads <= 0 || gbs == 0) {
        fprintf(stderr, "stress-ref: sizes and counts must be > 0\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    pthread_t tids[threads];
    struct job jobs[threads];
    for (int t = 0; t < threads; t++) {
        jobs[t] = (struct job){ t, !strcmp(argv[1], "const"), mib << 20, gbs };
        if (pthread_create(&tids[t], NULL, work, &jobs[t])) {
            fprintf(stderr, "stress-ref: pthread_create failed\n");
            return 1;
        }
    }
    for (int t = 0; t < threads; t++)
        pthread_join(tids[t], NULL);
    return 0;
}
