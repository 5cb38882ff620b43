#include "onednn_convolution.h"

#include <oneapi/dnnl/dnnl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// oneDNN and its OpenMP runtime (libgomp) are loaded on first use, not linked. libgomp reads its
// wait policy once, when it loads, and by default a thread that ends a parallel region spins
// for a while before it sleeps. Between oneDNN's regions a step runs our other thread pools
// (libdispatch's for batch norm, OpenBLAS's for the classifier), and a spinning OpenMP thread
// takes their core: ResNet-18 at 2 threads ran at 11 samples/s with spinning and 44 without, on
// this project's 2-core machine. Loading late lets us ask for a passive policy first (unless
// the user chose one: OMP_WAIT_POLICY is respected), and a machine without libdnnl still runs
// everything but this implementation.
#define ONEDNN_FUNCTIONS(X) \
    X(dnnl_engine_create) X(dnnl_stream_create) X(dnnl_stream_destroy) X(dnnl_stream_wait) \
    X(dnnl_primitive_attr_create) X(dnnl_primitive_attr_destroy) X(dnnl_primitive_attr_set_scratchpad_mode) \
    X(dnnl_primitive_attr_set_post_ops) X(dnnl_post_ops_create) X(dnnl_post_ops_append_sum) X(dnnl_post_ops_destroy) \
    X(dnnl_memory_desc_init_by_strides) X(dnnl_memory_desc_init_by_tag) X(dnnl_memory_desc_get_size) \
    X(dnnl_memory_desc_equal) X(dnnl_memory_create) X(dnnl_memory_destroy) X(dnnl_memory_set_data_handle) \
    X(dnnl_convolution_forward_desc_init) X(dnnl_convolution_backward_data_desc_init) \
    X(dnnl_convolution_backward_weights_desc_init) X(dnnl_reorder_primitive_desc_create) \
    X(dnnl_primitive_desc_create) X(dnnl_primitive_desc_destroy) X(dnnl_primitive_desc_query) \
    X(dnnl_primitive_desc_query_md) X(dnnl_primitive_create) X(dnnl_primitive_destroy) X(dnnl_primitive_execute)

static struct {
#define FIELD(name) __typeof__(&name) name;
    ONEDNN_FUNCTIONS(FIELD)
#undef FIELD
    void (*omp_set_num_threads)(int);
} api;

static dnnl_engine_t shared_engine;
static char load_failure[320];
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void load_onednn(void) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
    void *library = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    void *openmp = library ? dlopen("libgomp.so.1", RTLD_NOW | RTLD_LOCAL) : NULL;
    if (!library || !openmp) {
        snprintf(load_failure, sizeof load_failure, "cannot load oneDNN (%s); install libdnnl2 "
                 "(scripts/bootstrap.sh) or use the im2col implementation", dlerror());
        return;
    }
#define LOAD(name) if (!(api.name = (__typeof__(api.name))dlsym(library, #name))) { \
        snprintf(load_failure, sizeof load_failure, "libdnnl.so.2 has no %s: oneDNN 2.x is needed", #name); return; }
    ONEDNN_FUNCTIONS(LOAD)
#undef LOAD
    // oneDNN sizes its thread partitions from omp_get_max_threads() when a primitive is created,
    // so the count is set before creation as well as before execution.
    api.omp_set_num_threads = (void (*)(int))dlsym(openmp, "omp_set_num_threads");
    if (!api.omp_set_num_threads) { snprintf(load_failure, sizeof load_failure, "libgomp has no omp_set_num_threads"); return; }
    dnnl_status_t status = api.dnnl_engine_create(&shared_engine, dnnl_cpu, 0);
    if (status != dnnl_success)
        snprintf(load_failure, sizeof load_failure, "oneDNN cannot create its CPU engine (status %d)", (int)status);
}

/// Workspace buffers: the input or ∂X; the output or ∂Y; W; ∂W; oneDNN's scratchpad.
enum { slot_source, slot_destination, slot_weights, slot_weight_gradient, slot_scratchpad, slot_count };

struct onednn_workspace {
    void *buffer[slot_count];
    size_t capacity[slot_count];
};

/// A primitive and the scratchpad it needs (user-managed: it comes from the workspace, so
/// concurrent models never share one).
typedef struct {
    dnnl_primitive_t primitive;
    dnnl_memory_desc_t scratchpad;
    size_t scratchpad_bytes;
} step;

/// A reorder between one of our tensors and a blocked buffer of the workspace.
typedef struct {
    step reorder;
    dnnl_memory_t ours, blocked;
    size_t blocked_bytes;
    int ours_is_source;
} conversion;

struct onednn_convolution {
    int threads;
    dnnl_stream_t stream;
    step forward, backward_data, backward_weights;
    // forward
    conversion source_in, weights_in, destination_out;
    // backward weights: x and ∂Y in, ∂W accumulated into ours (a reorder with a sum post-op)
    conversion weights_source_in, weights_output_gradient_in, weight_gradient_out;
    // backward data: ∂Y and W in, ∂X out
    conversion data_output_gradient_in, data_weights_in, input_gradient_out;
    int data_shares_output_gradient; // backward data reads the ∂Y buffer backward weights filled
    char implementation[256];
};

const char *onednn_status_name(int status) {
    switch (status) {
    case dnnl_success: return "success";
    case dnnl_out_of_memory: return "out of memory";
    case dnnl_invalid_arguments: return "invalid arguments";
    case dnnl_unimplemented: return "unimplemented";
    case dnnl_iterator_ends: return "iterator ends";
    case dnnl_runtime_error: return "runtime error";
    case dnnl_not_required: return "not required";
    default: return "unknown status";
    }
}

onednn_workspace *onednn_workspace_create(void) { return calloc(1, sizeof(onednn_workspace)); }

void onednn_workspace_destroy(onednn_workspace *workspace) {
    if (!workspace) return;
    for (int i = 0; i < slot_count; i++) free(workspace->buffer[i]);
    free(workspace);
}

/// The workspace buffer of a slot with room for `bytes` (64-byte aligned, as oneDNN's own
/// allocations), or NULL when out of memory.
static void *slot_buffer(onednn_workspace *workspace, int slot, size_t bytes) {
    if (bytes == 0) bytes = 64;
    if (workspace->capacity[slot] < bytes) {
        free(workspace->buffer[slot]);
        size_t rounded = (bytes + 63) / 64 * 64;
        workspace->buffer[slot] = aligned_alloc(64, rounded);
        workspace->capacity[slot] = workspace->buffer[slot] ? rounded : 0;
    }
    return workspace->buffer[slot];
}

#define TRY(call) do { dnnl_status_t status_ = (call); if (status_ != dnnl_success) { \
    snprintf(failure, sizeof failure, "%s: %s", #call, onednn_status_name(status_)); goto fail; } } while (0)

static dnnl_status_t user_scratchpad(dnnl_primitive_attr_t *attr) {
    dnnl_status_t status = api.dnnl_primitive_attr_create(attr);
    if (status != dnnl_success) return status;
    return api.dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
}

static dnnl_status_t make_step(step *s, dnnl_primitive_desc_t pd) {
    s->scratchpad = *api.dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    s->scratchpad_bytes = api.dnnl_memory_desc_get_size(&s->scratchpad);
    return api.dnnl_primitive_create(&s->primitive, pd);
}

/// A reorder from `from` to `to`; `accumulate` makes it add into its destination (∂W += …).
static dnnl_status_t make_conversion(conversion *c, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                                     int ours_is_source, int accumulate) {
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t post_ops = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t status = user_scratchpad(&attr);
    if (status == dnnl_success && accumulate) {
        status = api.dnnl_post_ops_create(&post_ops);
        if (status == dnnl_success) status = api.dnnl_post_ops_append_sum(post_ops, 1.0f);
        if (status == dnnl_success) status = api.dnnl_primitive_attr_set_post_ops(attr, post_ops);
    }
    if (status == dnnl_success)
        status = api.dnnl_reorder_primitive_desc_create(&pd, from, shared_engine, to, shared_engine, attr);
    if (status == dnnl_success) status = make_step(&c->reorder, pd);
    const dnnl_memory_desc_t *ours = ours_is_source ? from : to, *blocked = ours_is_source ? to : from;
    if (status == dnnl_success) status = api.dnnl_memory_create(&c->ours, ours, shared_engine, DNNL_MEMORY_NONE);
    if (status == dnnl_success) status = api.dnnl_memory_create(&c->blocked, blocked, shared_engine, DNNL_MEMORY_NONE);
    c->blocked_bytes = api.dnnl_memory_desc_get_size(blocked);
    c->ours_is_source = ours_is_source;
    if (pd) api.dnnl_primitive_desc_destroy(pd);
    if (post_ops) api.dnnl_post_ops_destroy(post_ops);
    if (attr) api.dnnl_primitive_attr_destroy(attr);
    return status;
}

onednn_convolution *onednn_convolution_create(int batch, int in_channels, int height, int width,
                                              int out_channels, int kernel, int stride, int padding,
                                              int threads, char *message, size_t message_capacity) {
    char failure[320] = "";
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t forward_pd = NULL, data_pd = NULL, weights_pd = NULL;
    onednn_convolution *c = calloc(1, sizeof *c);
    if (!c) { snprintf(failure, sizeof failure, "out of memory"); goto fail; }
    pthread_once(&load_once, load_onednn);
    if (load_failure[0]) { snprintf(failure, sizeof failure, "%s", load_failure); goto fail; }
    c->threads = threads < 1 ? 1 : threads;
    api.omp_set_num_threads(c->threads);

    const dnnl_dim_t out_height = (height + 2 * padding - kernel) / stride + 1;
    const dnnl_dim_t out_width = (width + 2 * padding - kernel) / stride + 1;
    const dnnl_dim_t plane = (dnnl_dim_t)height * width, out_plane = out_height * out_width;
    // oneDNN's logical order is (N, C, H, W); ours stores C outermost: strides (H·W, B·H·W, W, 1).
    dnnl_dims_t source_dims = {batch, in_channels, height, width};
    dnnl_dims_t source_strides = {plane, (dnnl_dim_t)batch * plane, width, 1};
    dnnl_dims_t destination_dims = {batch, out_channels, out_height, out_width};
    dnnl_dims_t destination_strides = {out_plane, (dnnl_dim_t)batch * out_plane, out_width, 1};
    dnnl_dims_t weight_dims = {out_channels, in_channels, kernel, kernel};
    dnnl_dims_t strides = {stride, stride}, paddings = {padding, padding};

    dnnl_memory_desc_t source, destination, weights, source_any, destination_any, weights_any;
    TRY(api.dnnl_memory_desc_init_by_strides(&source, 4, source_dims, dnnl_f32, source_strides));
    TRY(api.dnnl_memory_desc_init_by_strides(&destination, 4, destination_dims, dnnl_f32, destination_strides));
    TRY(api.dnnl_memory_desc_init_by_tag(&weights, 4, weight_dims, dnnl_f32, dnnl_oihw));
    TRY(api.dnnl_memory_desc_init_by_tag(&source_any, 4, source_dims, dnnl_f32, dnnl_format_tag_any));
    TRY(api.dnnl_memory_desc_init_by_tag(&destination_any, 4, destination_dims, dnnl_f32, dnnl_format_tag_any));
    TRY(api.dnnl_memory_desc_init_by_tag(&weights_any, 4, weight_dims, dnnl_f32, dnnl_format_tag_any));

    // Direct convolution, not Winograd: the same rounding as the definition's sums, and oneDNN
    // 2.6 has no Winograd backward on most shapes.
    dnnl_convolution_desc_t forward_desc, data_desc, weights_desc;
    TRY(api.dnnl_convolution_forward_desc_init(&forward_desc, dnnl_forward_training, dnnl_convolution_direct,
                                           &source_any, &weights_any, NULL, &destination_any,
                                           strides, paddings, paddings));
    TRY(api.dnnl_convolution_backward_data_desc_init(&data_desc, dnnl_convolution_direct, &source_any, &weights_any,
                                                 &destination_any, strides, paddings, paddings));
    TRY(api.dnnl_convolution_backward_weights_desc_init(&weights_desc, dnnl_convolution_direct, &source_any,
                                                    &weights_any, NULL, &destination_any,
                                                    strides, paddings, paddings));
    TRY(user_scratchpad(&attr));
    TRY(api.dnnl_primitive_desc_create(&forward_pd, &forward_desc, attr, shared_engine, NULL));
    TRY(api.dnnl_primitive_desc_create(&data_pd, &data_desc, attr, shared_engine, forward_pd));
    TRY(api.dnnl_primitive_desc_create(&weights_pd, &weights_desc, attr, shared_engine, forward_pd));
    TRY(make_step(&c->forward, forward_pd));
    TRY(make_step(&c->backward_data, data_pd));
    TRY(make_step(&c->backward_weights, weights_pd));

    #define MD(pd, what) api.dnnl_primitive_desc_query_md(pd, what, 0)
    TRY(make_conversion(&c->source_in, &source, MD(forward_pd, dnnl_query_src_md), 1, 0));
    TRY(make_conversion(&c->weights_in, &weights, MD(forward_pd, dnnl_query_weights_md), 1, 0));
    TRY(make_conversion(&c->destination_out, MD(forward_pd, dnnl_query_dst_md), &destination, 0, 0));
    TRY(make_conversion(&c->weights_source_in, &source, MD(weights_pd, dnnl_query_src_md), 1, 0));
    TRY(make_conversion(&c->weights_output_gradient_in, &destination, MD(weights_pd, dnnl_query_diff_dst_md), 1, 0));
    TRY(make_conversion(&c->weight_gradient_out, MD(weights_pd, dnnl_query_diff_weights_md), &weights, 0, 1));
    TRY(make_conversion(&c->data_output_gradient_in, &destination, MD(data_pd, dnnl_query_diff_dst_md), 1, 0));
    TRY(make_conversion(&c->data_weights_in, &weights, MD(data_pd, dnnl_query_weights_md), 1, 0));
    TRY(make_conversion(&c->input_gradient_out, MD(data_pd, dnnl_query_diff_src_md), &source, 0, 0));
#undef MD
    c->data_shares_output_gradient = api.dnnl_memory_desc_equal(
        api.dnnl_primitive_desc_query_md(weights_pd, dnnl_query_diff_dst_md, 0),
        api.dnnl_primitive_desc_query_md(data_pd, dnnl_query_diff_dst_md, 0));
    TRY(api.dnnl_stream_create(&c->stream, shared_engine, dnnl_stream_default_flags));

    const char *names[3];
    api.dnnl_primitive_desc_query(forward_pd, dnnl_query_impl_info_str, 0, &names[0]);
    api.dnnl_primitive_desc_query(data_pd, dnnl_query_impl_info_str, 0, &names[1]);
    api.dnnl_primitive_desc_query(weights_pd, dnnl_query_impl_info_str, 0, &names[2]);
    snprintf(c->implementation, sizeof c->implementation, "%s; %s; %s", names[0], names[1], names[2]);
    api.dnnl_primitive_desc_destroy(forward_pd);
    api.dnnl_primitive_desc_destroy(data_pd);
    api.dnnl_primitive_desc_destroy(weights_pd);
    api.dnnl_primitive_attr_destroy(attr);
    return c;
fail:
    if (message && message_capacity) snprintf(message, message_capacity, "%s", failure);
    if (forward_pd) api.dnnl_primitive_desc_destroy(forward_pd);
    if (data_pd) api.dnnl_primitive_desc_destroy(data_pd);
    if (weights_pd) api.dnnl_primitive_desc_destroy(weights_pd);
    if (attr) api.dnnl_primitive_attr_destroy(attr);
    onednn_convolution_destroy(c);
    return NULL;
}

static void destroy_step(step *s) { if (s->primitive) api.dnnl_primitive_destroy(s->primitive); }

static void destroy_conversion(conversion *c) {
    destroy_step(&c->reorder);
    if (c->ours) api.dnnl_memory_destroy(c->ours);
    if (c->blocked) api.dnnl_memory_destroy(c->blocked);
}

void onednn_convolution_destroy(onednn_convolution *c) {
    if (!c) return;
    destroy_step(&c->forward);
    destroy_step(&c->backward_data);
    destroy_step(&c->backward_weights);
    conversion *all[] = {&c->source_in, &c->weights_in, &c->destination_out, &c->weights_source_in,
                         &c->weights_output_gradient_in, &c->weight_gradient_out, &c->data_output_gradient_in,
                         &c->data_weights_in, &c->input_gradient_out};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) destroy_conversion(all[i]);
    if (c->stream) api.dnnl_stream_destroy(c->stream);
    free(c);
}

const char *onednn_convolution_implementation(const onednn_convolution *c) { return c->implementation; }

/// Runs one primitive with its scratchpad from the workspace.
static dnnl_status_t run(onednn_convolution *c, onednn_workspace *w, step *s, int count, dnnl_exec_arg_t *args) {
    dnnl_memory_t scratchpad = NULL;
    if (s->scratchpad_bytes > 0) {
        void *pad = slot_buffer(w, slot_scratchpad, s->scratchpad_bytes);
        if (!pad) return dnnl_out_of_memory;
        dnnl_status_t status = api.dnnl_memory_create(&scratchpad, &s->scratchpad, shared_engine, pad);
        if (status != dnnl_success) return status;
        args[count++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, scratchpad};
    }
    dnnl_status_t status = api.dnnl_primitive_execute(s->primitive, c->stream, count, args);
    if (status == dnnl_success) status = api.dnnl_stream_wait(c->stream);
    if (scratchpad) api.dnnl_memory_destroy(scratchpad);
    return status;
}

/// Points a conversion at our tensor and at a workspace slot.
static dnnl_status_t bind(onednn_workspace *w, conversion *v, const float *ours, int slot) {
    void *blocked = slot_buffer(w, slot, v->blocked_bytes);
    if (!blocked) return dnnl_out_of_memory;
    dnnl_status_t status = api.dnnl_memory_set_data_handle(v->ours, (void *)ours);
    return status == dnnl_success ? api.dnnl_memory_set_data_handle(v->blocked, blocked) : status;
}

static dnnl_status_t reorder(onednn_convolution *c, onednn_workspace *w, conversion *v) {
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_FROM, v->ours_is_source ? v->ours : v->blocked},
                               {DNNL_ARG_TO, v->ours_is_source ? v->blocked : v->ours}};
    return run(c, w, &v->reorder, 2, args);
}

#define CHECKED(call) do { dnnl_status_t status_ = (call); if (status_ != dnnl_success) return status_; } while (0)

int onednn_convolution_forward(onednn_convolution *c, onednn_workspace *w,
                               const float *input, const float *weight, float *output) {
    api.omp_set_num_threads(c->threads);
    CHECKED(bind(w, &c->source_in, input, slot_source));
    CHECKED(reorder(c, w, &c->source_in));
    CHECKED(bind(w, &c->weights_in, weight, slot_weights));
    CHECKED(reorder(c, w, &c->weights_in));
    CHECKED(bind(w, &c->destination_out, output, slot_destination));
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, c->source_in.blocked}, {DNNL_ARG_WEIGHTS, c->weights_in.blocked},
                               {DNNL_ARG_DST, c->destination_out.blocked}};
    CHECKED(run(c, w, &c->forward, 3, args));
    return reorder(c, w, &c->destination_out);
}

int onednn_convolution_backward(onednn_convolution *c, onednn_workspace *w,
                                const float *input, const float *weight, const float *output_gradient,
                                float *weight_gradient, float *input_gradient) {
    api.omp_set_num_threads(c->threads);
    dnnl_memory_t output_gradient_blocked = NULL;
    if (weight_gradient) {
        CHECKED(bind(w, &c->weights_source_in, input, slot_source));
        CHECKED(reorder(c, w, &c->weights_source_in));
        CHECKED(bind(w, &c->weights_output_gradient_in, output_gradient, slot_destination));
        CHECKED(reorder(c, w, &c->weights_output_gradient_in));
        CHECKED(bind(w, &c->weight_gradient_out, weight_gradient, slot_weight_gradient));
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, c->weights_source_in.blocked},
                                   {DNNL_ARG_DIFF_DST, c->weights_output_gradient_in.blocked},
                                   {DNNL_ARG_DIFF_WEIGHTS, c->weight_gradient_out.blocked}};
        CHECKED(run(c, w, &c->backward_weights, 3, args));
        CHECKED(reorder(c, w, &c->weight_gradient_out)); // adds into weight_gradient
        if (c->data_shares_output_gradient) output_gradient_blocked = c->weights_output_gradient_in.blocked;
    }
    if (input_gradient) {
        if (!output_gradient_blocked) {
            CHECKED(bind(w, &c->data_output_gradient_in, output_gradient, slot_destination));
            CHECKED(reorder(c, w, &c->data_output_gradient_in));
            output_gradient_blocked = c->data_output_gradient_in.blocked;
        }
        CHECKED(bind(w, &c->data_weights_in, weight, slot_weights));
        CHECKED(reorder(c, w, &c->data_weights_in));
        // The input's blocked copy is no longer needed: ∂X takes its slot.
        CHECKED(bind(w, &c->input_gradient_out, input_gradient, slot_source));
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_DIFF_SRC, c->input_gradient_out.blocked},
                                   {DNNL_ARG_WEIGHTS, c->data_weights_in.blocked},
                                   {DNNL_ARG_DIFF_DST, output_gradient_blocked}};
        CHECKED(run(c, w, &c->backward_data, 3, args));
        CHECKED(reorder(c, w, &c->input_gradient_out));
    }
    return dnnl_success;
}
