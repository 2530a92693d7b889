// trainer.h: the training loop of `ctune lora` (mlx-lm's trainer.train with its
// bugs fixed): iterations over batches, gradient accumulation, optimizer
// updates on a schedule, validation, mlx-lm's report lines, metrics.jsonl and a
// loss-curve SVG, numbered checkpoints, and true resume.
//
// The model side is a ct_train_target: a loss on a batch (with gradients
// accumulated into the trainable parameters' .g buffers when asked) and a way
// to save/load the trainable tensors. The trainer owns the optimizer and the
// schedule; parameters are fp32 arrays the optimizer updates in place.
//
// Checkpoint N (written every save_every iterations and at the end, each file
// atomically): <dir>/adapters.safetensors and <dir>/{N:07d}_adapters.safetensors
// (the trainable tensors, as mlx-lm writes them) and <dir>/{N:07d}_state.safetensors
// (optimizer state, pending accumulated gradients, and metadata: iteration,
// optimizer step, data position, trained tokens). Dropout seeds are a pure
// function of (seed, iteration, micro-batch), so no RNG state needs saving.
//
// Data parallel (options.comm with N > 1 ranks, docs/distributed.md): every
// rank runs this same loop on its rows [rank::N] of each global batch (the
// batch size must be divisible by N). Per micro-batch, the ranks sum their
// target counts (before the backward) and their summed losses (after it);
// each rank's gradient enters its accumulation weighted by its share of the
// targets, so after the optimizer-step all-reduce (in buckets of at most
// CT_TRAIN_BUCKET_BYTES) every rank holds exactly the single-process
// gradient of the global batch (not mlx-lm's mean of per-rank means).
// Validation is sharded the same way. Rank 0 alone prints and writes files
// (checkpoints, metrics.jsonl, the loss curve); at a checkpoint taken in the
// middle of an accumulation, the pending gradients are summed onto rank 0
// first, so its state file resumes any number of ranks. With dropout the
// ranks draw different masks, so such a run is not the single-process one.
#ifndef CTUNE_TRAINER_H
#define CTUNE_TRAINER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ctune/comm.h"
#include "ctune/dataset.h"
#include "ctune/optim.h"

typedef struct ct_train_target {
    void *ctx;
    int n_params;
    ct_optim_param *params; // w/g fp32 arrays (g zeroed by the trainer)
    const char **names;     // tensor names, e.g. "model.layers.3.self_attn.q_proj.lora_a"
    // Mean masked cross-entropy of the batch and its target count; with grad,
    // d(mean loss)/d(params) is ADDED to params[i].g. dropout_seed varies per
    // micro-batch (0 in evaluation, where dropout is off).
    ct_status (*loss)(void *ctx, const ct_batch *b, bool grad, uint64_t dropout_seed, double *loss, int64_t *ntok,
                      ct_error *err);
    // Writes the trainable tensors (mlx-lm layout) to path, atomically.
    ct_status (*save)(void *ctx, const char *path, ct_error *err);
    // Reads them back from path (resume).
    ct_status (*load)(void *ctx, const char *path, ct_error *err);
} ct_train_target;

// Gradient all-reduce bucket: the trainable gradients are flattened into
// buckets of this size (or one bucket holding all of them when smaller).
#define CT_TRAIN_BUCKET_BYTES ((size_t)64 << 20)

typedef struct ct_train_options {
    int64_t iters;
    int64_t batch_size;
    int64_t val_batches;      // -1: the whole validation set
    int64_t steps_per_report;
    int64_t steps_per_eval;
    int64_t save_every;
    int64_t grad_accumulation_steps;
    int64_t max_seq_length;
    double max_grad_norm;     // 0: no clipping
    uint64_t seed;
    ct_optim_config optim;
    ct_schedule schedule;
    const char *adapter_path; // checkpoint folder (exists)
    bool resume;              // continue from the latest checkpoint in adapter_path
    FILE *out;                // report lines (stdout in the CLI; rank 0 only)
    ct_comm *comm;            // data-parallel ranks; NULL: one process
} ct_train_options;

typedef struct ct_train_result {
    int64_t iterations;       // last iteration run
    double last_train_loss;   // at the last report
    double first_val_loss, last_val_loss; // NAN when there is no validation set
    int64_t trained_tokens;
} ct_train_result;

ct_status ct_train(const ct_train_target *t, const ct_examples *train, const ct_examples *valid,
                   const ct_train_options *opt, ct_train_result *res, ct_error *err);

// Mean loss over up to max_batches batches (-1: all), token-weighted, as
// mlx-lm's evaluate; batches in a fixed seeded order so repeated evaluations
// see the same examples. *ntok gets the total target count. With comm (may
// be NULL) each rank evaluates its rows of every batch and all get the sums.
ct_status ct_evaluate(const ct_train_target *t, const ct_examples *ex, int64_t batch_size, int64_t max_batches,
                      int64_t max_seq_length, uint64_t seed, ct_comm *comm, double *loss, int64_t *ntok,
                      ct_error *err);

// The latest checkpoint iteration N in dir with both {N:07d}_adapters and
// {N:07d}_state files, or 0 when there is none.
int64_t ct_train_latest_checkpoint(const char *dir);

#endif
