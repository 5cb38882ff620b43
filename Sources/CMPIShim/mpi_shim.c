#include "mpi_shim.h"
#include <mpi.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// No fused multiply-add: the fp16 rounding construction relies on separately rounded operations.
#pragma STDC FP_CONTRACT OFF

static MPI_Comm group = MPI_COMM_NULL;
/// The user-defined half-width ops, [format][sum, max], created on first use, freed at finalize.
static MPI_Op half_ops[2][2] = {{MPI_OP_NULL, MPI_OP_NULL}, {MPI_OP_NULL, MPI_OP_NULL}};
static const int64_t max_elements_per_call = (int64_t)1 << 30;

static MPI_Op op_of(int op) {
    switch (op) {
    case PSGD_MPI_MAX: return MPI_MAX;
    case PSGD_MPI_MIN: return MPI_MIN;
    default: return MPI_SUM;
    }
}

static int thread_level = MPI_THREAD_SINGLE;
static void watchdog_end(void);

int psgd_mpi_init(int thread_multiple) {
    int initialized = 0, finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return PSGD_MPI_ALREADY_FINALIZED;
    if (group != MPI_COMM_NULL) return MPI_SUCCESS;
    MPI_Initialized(&initialized);
    if (!initialized) {
        int rc = MPI_Init_thread(NULL, NULL, thread_multiple ? MPI_THREAD_MULTIPLE : MPI_THREAD_SERIALIZED, &thread_level);
        if (rc != MPI_SUCCESS) return rc;
    } else {
        MPI_Query_thread(&thread_level);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &group);
    if (rc != MPI_SUCCESS) { group = MPI_COMM_NULL; return rc; }
    return MPI_Comm_set_errhandler(group, MPI_ERRORS_RETURN);
}

int psgd_mpi_is_ready(void) { return group != MPI_COMM_NULL; }

int psgd_mpi_thread_level(void) {
    switch (thread_level) {
    case MPI_THREAD_MULTIPLE: return 3;
    case MPI_THREAD_SERIALIZED: return 2;
    case MPI_THREAD_FUNNELED: return 1;
    default: return 0;
    }
}

int psgd_mpi_finalize(void) {
    if (group == MPI_COMM_NULL) return MPI_SUCCESS;
    watchdog_end();
    for (int f = 0; f < 2; f++)
        for (int o = 0; o < 2; o++)
            if (half_ops[f][o] != MPI_OP_NULL) MPI_Op_free(&half_ops[f][o]);
    MPI_Comm_free(&group);
    group = MPI_COMM_NULL;
    return MPI_Finalize();
}

int psgd_mpi_rank(int *rank) { return MPI_Comm_rank(group, rank); }
int psgd_mpi_size(int *size) { return MPI_Comm_size(group, size); }
int psgd_mpi_barrier(void) { return MPI_Barrier(group); }

int psgd_mpi_allreduce_float(float *buffer, int64_t count, int op) {
    for (int64_t start = 0; start < count; start += max_elements_per_call) {
        int64_t n = count - start < max_elements_per_call ? count - start : max_elements_per_call;
        int rc = MPI_Allreduce(MPI_IN_PLACE, buffer + start, (int)n, MPI_FLOAT, op_of(op), group);
        if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_SUCCESS;
}

// fp16 <-> fp32: the constructions of M. Dukhan's FP16 library, as in Collectives'
// HalfWidthFormat (exact widening; RNE narrowing, overflow to Inf, NaN kept quiet).
static inline uint32_t bits_of(float f) { uint32_t w; memcpy(&w, &f, 4); return w; }
static inline float float_of(uint32_t w) { float f; memcpy(&f, &w, 4); return f; }

static inline float fp16_to_float(uint16_t h) {
    uint32_t w = (uint32_t)h << 16, sign = w & 0x80000000u, twice = w + w;
    float normalized = float_of((twice >> 4) + (0xE0u << 23)) * 0x1p-112f;
    float subnormal = float_of((twice >> 17) | (126u << 23)) - 0.5f;
    return float_of(sign | (twice < (1u << 27) ? bits_of(subnormal) : bits_of(normalized)));
}

static inline uint16_t fp16_from_float(float f) {
    uint32_t w = bits_of(f), shifted = w + w, sign = w & 0x80000000u;
    uint32_t bias = shifted & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    float base = float_of((bias >> 1) + 0x07800000u) + (__builtin_fabsf(f) * 0x1p112f) * 0x1p-110f;
    uint32_t b = bits_of(base);
    uint32_t non_sign = ((b >> 13) & 0x7C00u) + (b & 0x0FFFu);
    return (uint16_t)((sign >> 16) | (shifted > 0xFF000000u ? 0x7E00u : non_sign));
}

static inline float bf16_to_float(uint16_t h) { return float_of((uint32_t)h << 16); }

static inline uint16_t bf16_from_float(float f) {
    uint32_t w = bits_of(f);
    if ((w & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((w >> 16) | 0x40u);
    return (uint16_t)((w + 0x7FFFu + ((w >> 16) & 1u)) >> 16);
}

// MPI applies a non-commutative op as inout = in (lower ranks) op inout (higher ranks).
#define HALF_OP(name, widen, narrow, combine)                                             \
    static void name(void *in, void *inout, int *len, MPI_Datatype *type) {               \
        (void)type;                                                                       \
        const uint16_t *a = in; uint16_t *b = inout;                                      \
        for (int i = 0; i < *len; i++) {                                                  \
            float x = widen(a[i]), y = widen(b[i]);                                       \
            b[i] = narrow(combine(x, y));                                                 \
        }                                                                                 \
    }
#define HALF_SUM(x, y) ((x) + (y))
#define HALF_MAX(x, y) ((y) > (x) ? (y) : (x))
HALF_OP(fp16_sum, fp16_to_float, fp16_from_float, HALF_SUM)
HALF_OP(fp16_max, fp16_to_float, fp16_from_float, HALF_MAX)
HALF_OP(bf16_sum, bf16_to_float, bf16_from_float, HALF_SUM)
HALF_OP(bf16_max, bf16_to_float, bf16_from_float, HALF_MAX)

int psgd_mpi_allreduce_half(uint16_t *buffer, int64_t count, int format, int op) {
    int f = format == PSGD_MPI_BFLOAT16 ? 1 : 0, o = op == PSGD_MPI_MAX ? 1 : 0;
    if (half_ops[f][o] == MPI_OP_NULL) {
        static MPI_User_function *const functions[2][2] = {{fp16_sum, fp16_max}, {bf16_sum, bf16_max}};
        int rc = MPI_Op_create(functions[f][o], 0, &half_ops[f][o]);
        if (rc != MPI_SUCCESS) { half_ops[f][o] = MPI_OP_NULL; return rc; }
    }
    for (int64_t start = 0; start < count; start += max_elements_per_call) {
        int64_t n = count - start < max_elements_per_call ? count - start : max_elements_per_call;
        int rc = MPI_Allreduce(MPI_IN_PLACE, buffer + start, (int)n, MPI_UINT16_T, half_ops[f][o], group);
        if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_SUCCESS;
}

int psgd_mpi_allreduce_int64(int64_t *buffer, int count, int op) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_INT64_T, op_of(op), group);
}

int psgd_mpi_allgather_int64(const int64_t *mine, int count, int64_t *all) {
    return MPI_Allgather(mine, count, MPI_INT64_T, all, count, MPI_INT64_T, group);
}

int psgd_mpi_allgatherv_bytes(const void *mine, int count, void *all,
                              const int *counts, const int *displacements) {
    return MPI_Allgatherv(mine, count, MPI_BYTE, all, counts, displacements, MPI_BYTE, group);
}

static int broadcast(void *buffer, int64_t count, size_t element_size, MPI_Datatype type, int root) {
    char *bytes = buffer;
    for (int64_t start = 0; start < count; start += max_elements_per_call) {
        int64_t n = count - start < max_elements_per_call ? count - start : max_elements_per_call;
        int rc = MPI_Bcast(bytes + start * (int64_t)element_size, (int)n, type, root, group);
        if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_SUCCESS;
}

int psgd_mpi_broadcast_float(float *buffer, int64_t count, int root) {
    return broadcast(buffer, count, sizeof(float), MPI_FLOAT, root);
}

int psgd_mpi_broadcast_bytes(void *buffer, int64_t count, int root) {
    return broadcast(buffer, count, 1, MPI_BYTE, root);
}

double psgd_mpi_wtime(void) { return MPI_Wtime(); }

void psgd_mpi_error_string(int code, char *text, int capacity) {
    char message[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (capacity <= 0) return;
    if (MPI_Error_string(code, message, &length) != MPI_SUCCESS) length = 0;
    if (length >= capacity) length = capacity - 1;
    memcpy(text, message, (size_t)length);
    text[length] = 0;
}

int psgd_mpi_abort(int code) {
    return MPI_Abort(group != MPI_COMM_NULL ? group : MPI_COMM_WORLD, code);
}

// ---------------------------------------------------------------------------------------------
// Collective watchdog (psgd_mpi_watchdog_start). A thread of its own, because the thread that
// waits in a blocking collective cannot act until MPI returns, and MPI never returns while a peer
// is stopped. Every `poll` it answers the other ranks' questions on the control communicator
// (where this rank is) and checks whether this rank has been inside one collective for longer
// than the timeout; then it asks every peer where it is, waits `grace` seconds for the answers,
// prints which ranks did not arrive and MPI_Aborts the job. Needs MPI_THREAD_MULTIPLE (the main
// thread is inside MPI meanwhile); without it the watchdog still aborts, naming no rank.

enum { TAG_QUERY = 1, TAG_REPLY = 2 };
static MPI_Comm control = MPI_COMM_NULL;
static pthread_t watchdog_thread;
static int watchdog_started = 0;
static volatile int watchdog_stop = 0;
static double watchdog_timeout = 0;
static const double watchdog_poll = 0.05, watchdog_grace = 2.0;
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
/// Where this rank is: its latest collective (numbered from 1), inside it or done with it since `since`.
static struct {
    int64_t sequence, step;
    int inside;
    double since;
    char what[192];
} watch;

static double monotonic_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void sleep_seconds(double seconds) {
    struct timespec t = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&t, NULL);
}

void psgd_mpi_watch_enter(int64_t sequence, int64_t step, const char *what) {
    pthread_mutex_lock(&watch_lock);
    watch.sequence = sequence;
    watch.step = step;
    watch.inside = 1;
    watch.since = monotonic_seconds();
    strncpy(watch.what, what, sizeof watch.what - 1);
    watch.what[sizeof watch.what - 1] = 0;
    pthread_mutex_unlock(&watch_lock);
}

void psgd_mpi_watch_leave(void) {
    pthread_mutex_lock(&watch_lock);
    watch.inside = 0;
    watch.since = monotonic_seconds();
    pthread_mutex_unlock(&watch_lock);
}

/// Replies to every pending question with {sequence, inside, milliseconds since entering / leaving}.
static void answer_queries(void) {
    for (;;) {
        int flag = 0;
        MPI_Status status;
        if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_QUERY, control, &flag, &status) != MPI_SUCCESS || !flag) return;
        int64_t question = 0;
        MPI_Recv(&question, 1, MPI_INT64_T, status.MPI_SOURCE, TAG_QUERY, control, MPI_STATUS_IGNORE);
        pthread_mutex_lock(&watch_lock);
        int64_t reply[3] = {watch.sequence, watch.inside, (int64_t)((monotonic_seconds() - watch.since) * 1e3)};
        pthread_mutex_unlock(&watch_lock);
        MPI_Send(reply, 3, MPI_INT64_T, status.MPI_SOURCE, TAG_REPLY, control);
    }
}

static int appendf(char *text, int used, int capacity, const char *format, ...) {
    if (used >= capacity) return used;
    va_list arguments;
    va_start(arguments, format);
    int n = vsnprintf(text + used, (size_t)(capacity - used), format, arguments);
    va_end(arguments);
    return n < 0 ? used : (used + n < capacity ? used + n : capacity);
}

/// Asks every peer where it is, reports the ranks that have not arrived, and ends the job.
static void report_timeout_and_abort(int64_t sequence, int64_t step, double waited, const char *what) {
    int rank = 0, size = 1;
    MPI_Comm_rank(control, &rank);
    MPI_Comm_size(control, &size);
    int64_t (*replies)[3] = calloc((size_t)size, sizeof *replies);
    int *answered = calloc((size_t)size, sizeof *answered);
    MPI_Request *sent = calloc((size_t)size, sizeof *sent);
    int asked = thread_level == MPI_THREAD_MULTIPLE && replies && answered && sent;
    if (asked) {
        int64_t question = sequence;
        for (int peer = 0; peer < size; peer++) {
            sent[peer] = MPI_REQUEST_NULL;
            if (peer != rank) MPI_Isend(&question, 1, MPI_INT64_T, peer, TAG_QUERY, control, &sent[peer]);
        }
        // A stopped peer never receives the question: the sends are not waited for.
        int missing = size - 1;
        double deadline = monotonic_seconds() + watchdog_grace;
        while (missing > 0 && monotonic_seconds() < deadline) {
            answer_queries();
            int flag = 0;
            MPI_Status status;
            if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_REPLY, control, &flag, &status) == MPI_SUCCESS && flag) {
                int64_t reply[3];
                MPI_Recv(reply, 3, MPI_INT64_T, status.MPI_SOURCE, TAG_REPLY, control, MPI_STATUS_IGNORE);
                if (!answered[status.MPI_SOURCE]) missing--;
                answered[status.MPI_SOURCE] = 1;
                memcpy(replies[status.MPI_SOURCE], reply, sizeof reply);
            } else {
                sleep_seconds(0.001);
            }
        }
    }
    char text[4096];
    int used = 0, capacity = (int)sizeof text, behind = 0;
    used = appendf(text, used, capacity, "collective timeout on rank %d: collective #%lld %s", rank, (long long)sequence, what);
    if (step > 0) used = appendf(text, used, capacity, " (step %lld)", (long long)step);
    used = appendf(text, used, capacity, " did not complete within %g s", waited);
    if (!asked) {
        used = appendf(text, used, capacity, "; the other ranks could not be asked where they are "
                       "(MPI provides thread level %d, not MPI_THREAD_MULTIPLE)", thread_level);
    } else {
        for (int peer = 0; peer < size; peer++) {
            if (peer == rank) continue;
            int64_t at = replies[peer][0], inside = replies[peer][1];
            double ago = (double)replies[peer][2] * 1e-3;
            if (!answered[peer]) {
                used = appendf(text, used, capacity, "; rank %d did not answer within %g s "
                               "(stopped, hung or unreachable)", peer, watchdog_grace);
            } else if (at < sequence && inside) {
                used = appendf(text, used, capacity, "; rank %d did not arrive: it is still in its collective #%lld "
                               "(for %.1f s)", peer, (long long)at, ago);
            } else if (at < sequence) {
                used = appendf(text, used, capacity, "; rank %d did not arrive: it is running but has not entered it "
                               "(its collective #%lld ended %.1f s ago)", peer, (long long)at, ago);
            } else {
                continue;
            }
            behind++;
        }
        if (behind == 0)
            used = appendf(text, used, capacity, "; every rank has entered it, but the transport made no progress");
    }
    fprintf(stderr, "%s; aborting the job\n", text);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    _exit(1);
}

static void *watchdog_main(void *unused) {
    (void)unused;
    while (!watchdog_stop) {
        if (thread_level == MPI_THREAD_MULTIPLE) answer_queries();
        pthread_mutex_lock(&watch_lock);
        double waited = monotonic_seconds() - watch.since;
        double timeout = watchdog_timeout;
        int expired = watch.inside && waited > timeout;
        int64_t sequence = watch.sequence, step = watch.step;
        char what[sizeof watch.what];
        memcpy(what, watch.what, sizeof what);
        pthread_mutex_unlock(&watch_lock);
        if (expired) report_timeout_and_abort(sequence, step, timeout, what);
        sleep_seconds(watchdog_poll);
    }
    return NULL;
}

int psgd_mpi_watchdog_start(double timeout_seconds) {
    if (group == MPI_COMM_NULL) return MPI_ERR_COMM;
    pthread_mutex_lock(&watch_lock);
    watchdog_timeout = timeout_seconds;
    pthread_mutex_unlock(&watch_lock);
    if (watchdog_started) return MPI_SUCCESS;
    int rc = MPI_Comm_dup(group, &control);
    if (rc != MPI_SUCCESS) { control = MPI_COMM_NULL; return rc; }
    MPI_Comm_set_errhandler(control, MPI_ERRORS_RETURN);
    watchdog_stop = 0;
    if (pthread_create(&watchdog_thread, NULL, watchdog_main, NULL) != 0) return MPI_ERR_OTHER;
    watchdog_started = 1;
    return MPI_SUCCESS;
}

static void watchdog_end(void) {
    if (!watchdog_started) return;
    watchdog_stop = 1;
    pthread_join(watchdog_thread, NULL);
    watchdog_started = 0;
    MPI_Comm_free(&control);
    control = MPI_COMM_NULL;
}
