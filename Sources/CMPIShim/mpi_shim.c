#include "mpi_shim.h"
#include <mpi.h>
#include <string.h>

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

int psgd_mpi_init(void) {
    int initialized = 0, finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return PSGD_MPI_ALREADY_FINALIZED;
    if (group != MPI_COMM_NULL) return MPI_SUCCESS;
    MPI_Initialized(&initialized);
    if (!initialized) {
        int rc = MPI_Init(NULL, NULL);
        if (rc != MPI_SUCCESS) return rc;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &group);
    if (rc != MPI_SUCCESS) { group = MPI_COMM_NULL; return rc; }
    return MPI_Comm_set_errhandler(group, MPI_ERRORS_RETURN);
}

int psgd_mpi_is_ready(void) { return group != MPI_COMM_NULL; }

int psgd_mpi_finalize(void) {
    if (group == MPI_COMM_NULL) return MPI_SUCCESS;
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
