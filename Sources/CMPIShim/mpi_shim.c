#include "mpi_shim.h"
#include <mpi.h>
#include <string.h>

static MPI_Comm group = MPI_COMM_NULL;
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
