// losses.h: the distillation losses of mlx_lm/tuner/losses.py on logits, with
// their gradient with respect to the student's logits (the teacher is a
// constant, as in mlx-lm): KL(p || q) and the Jensen-Shannon divergence
// 1/2 KL(p || m) + 1/2 KL(q || m), m = (p + q) / 2, with p = softmax(teacher / tau),
// q = softmax(student / tau) at a temperature tau.
//
// The divergence is taken over the full vocabulary, or over the teacher's
// top-k support (mlx-lm's precomputed DWQ targets): the teacher keeps its k
// largest logits and their indices, the student's logits are gathered at the
// same indices, and both are renormalised over those k entries.
//
// Logits and indices are device buffers (ct_backend); row weights are host
// values (a mask times a normalisation; 0 leaves a row out).
#ifndef CTUNE_LOSSES_H
#define CTUNE_LOSSES_H

#include <stdbool.h>
#include <stdint.h>

#include "ctune/backend.h"
#include "ctune/error.h"

typedef struct ct_distill_loss {
    ct_backend *be;  // borrowed
    float temperature; // tau > 0
    bool js;         // Jensen-Shannon instead of KL
    int top_k;       // 0: teacher logits (n, V); k > 0: teacher top-k values (n, k) and indices (n, k)
    // scratch (device unless noted), grown to the largest call
    int64_t cap_rows;
    float *student_k, *dstudent_k; // (rows, k)
    float *row_loss, *row_weight;  // (rows)
    float *host_loss;              // (rows) host
} ct_distill_loss;

// Fails unless temperature > 0 and top_k >= 0.
ct_status ct_distill_loss_init(ct_distill_loss *l, ct_backend *be, float temperature, bool js, int top_k,
                               ct_error *err);
void ct_distill_loss_free(ct_distill_loss *l);

// student (n, V); teacher (n, V) when top_k is 0, else teacher top-k logits
// (n, k) with their vocabulary indices idx (n, k); weight (n) host.
// *loss_sum += sum over rows r of weight[r] * D_r. When dstudent (n, V) is
// non-NULL, dstudent += weight[r] * dD_r / dstudent (rows of weight 0 untouched).
ct_status ct_distill_loss_apply(ct_distill_loss *l, const float *student, const float *teacher, const int32_t *idx,
                                const float *weight, int64_t n, int V, float *dstudent, double *loss_sum,
                                ct_error *err);

// Host: logits (n, V) -> the k largest of each row, in descending order
// (ties: lower index first): values (n, k) and their indices (n, k). k <= V.
void ct_logits_top_k(const float *logits, int64_t n, int V, int k, float *values, int32_t *idx);

#endif
