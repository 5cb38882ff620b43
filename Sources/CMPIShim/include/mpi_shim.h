// Plain C entry points over MPI for Swift. This header deliberately does not include <mpi.h>:
// Swift cannot import OpenMPI's MPI_COMM_WORLD / MPI_FLOAT / MPI_SUM (macros over globals), so
// every MPI handle stays inside mpi_shim.c and Swift sees only ints, pointers and doubles.
//
// Every function returns an MPI error code (0 = MPI_SUCCESS): the group communicator has
// MPI_ERRORS_RETURN set, so failures come back here instead of aborting the process.
#ifndef POWERSGD_MPI_SHIM_H
#define POWERSGD_MPI_SHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Reduction operations understood by the shim.
enum psgd_mpi_op { PSGD_MPI_SUM = 0, PSGD_MPI_MAX = 1, PSGD_MPI_MIN = 2 };

/// Returned by psgd_mpi_init when MPI was already finalized in this process (MPI cannot restart).
#define PSGD_MPI_ALREADY_FINALIZED (-1)

/// Initializes MPI if it is not yet (MPI_Init_thread requesting MPI_THREAD_SERIALIZED — one thread
/// at a time may call MPI, from any thread, as --overlap's communication thread needs — or
/// MPI_THREAD_MULTIPLE when `thread_multiple` is non-zero, which the collective watchdog needs; a
/// process started without a launcher becomes a 1-rank job), duplicates MPI_COMM_WORLD into the
/// shim's communicator and sets MPI_ERRORS_RETURN on it. Safe to call more than once.
int psgd_mpi_init(int thread_multiple);
/// The thread level MPI provides (after psgd_mpi_init): 0 single, 1 funneled, 2 serialized, 3 multiple.
int psgd_mpi_thread_level(void);
/// Starts the collective watchdog (or changes its timeout): a thread that aborts the job once this
/// rank has been inside one collective (psgd_mpi_watch_enter .. psgd_mpi_watch_leave) for more
/// than `timeout_seconds`, after asking every peer over a control communicator where it is and
/// printing to stderr which ranks did not arrive. Stopped by psgd_mpi_finalize.
int psgd_mpi_watchdog_start(double timeout_seconds);
/// This rank enters its collective number `sequence` (from 1), described by `what`, in traffic
/// step `step` (0: none); the watchdog's clock for it starts now.
void psgd_mpi_watch_enter(int64_t sequence, int64_t step, const char *what);
/// This rank has left its current collective.
void psgd_mpi_watch_leave(void);
/// 1 if psgd_mpi_init succeeded and MPI is not finalized.
int psgd_mpi_is_ready(void);
/// MPI_Finalize (after freeing the shim's communicator). No-op if not initialized.
int psgd_mpi_finalize(void);
int psgd_mpi_rank(int *rank);
int psgd_mpi_size(int *size);
int psgd_mpi_barrier(void);
/// In-place all-reduce of `count` floats (split into calls of at most 2^30 elements).
int psgd_mpi_allreduce_float(float *buffer, int64_t count, int op);
/// 16-bit floating-point formats of psgd_mpi_allreduce_half.
enum psgd_mpi_half_format { PSGD_MPI_FLOAT16 = 0, PSGD_MPI_BFLOAT16 = 1 };
/// In-place all-reduce of `count` fp16 / bf16 patterns (MPI_UINT16_T, 2 bytes per element on the
/// wire) with `op` = PSGD_MPI_SUM or PSGD_MPI_MAX, through a user-defined MPI_Op created with
/// commute = 0: each application widens both operands to fp32 (exact), combines them
/// (lower rank's operand first) and rounds the result to the format (nearest, ties to even).
int psgd_mpi_allreduce_half(uint16_t *buffer, int64_t count, int format, int op);
/// In-place all-reduce of `count` int64 values (for the validation signatures).
int psgd_mpi_allreduce_int64(int64_t *buffer, int count, int op);
/// Each rank contributes `count` int64 values; `all` receives size × count values in rank order.
int psgd_mpi_allgather_int64(const int64_t *mine, int count, int64_t *all);
/// MPI_Allgatherv of bytes: `counts[r]` and `displacements[r]` in bytes for each rank.
int psgd_mpi_allgatherv_bytes(const void *mine, int count, void *all,
                              const int *counts, const int *displacements);
/// Broadcast from `root` of `count` floats / bytes (split into calls of at most 2^30 elements).
int psgd_mpi_broadcast_float(float *buffer, int64_t count, int root);
int psgd_mpi_broadcast_bytes(void *buffer, int64_t count, int root);
/// MPI_Wtime.
double psgd_mpi_wtime(void);
/// The text of an MPI error code, written into `text` (at most `capacity` bytes, NUL-terminated).
void psgd_mpi_error_string(int code, char *text, int capacity);
/// MPI_Abort on the group with `code`: ends every rank of the job.
int psgd_mpi_abort(int code);

#ifdef __cplusplus
}
#endif

#endif
