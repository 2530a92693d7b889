// ctune quant dwq (dwq.h) on the tiny chat model: a few steps lower the
// validation KL; the written folder, loaded again, gives on the validation
// sequences exactly the KL the in-memory student had at the end (so its
// logits are the student's); the student's codes are the RTN ones; errors.
#include <stdlib.h>

#include "ctune/dwq.h"
#include "ctune/fs.h"
#include "ctune/losses.h"
#include "ctune/model.h"
#include "ctune/safetensors.h"
#include "ctune/tokenizer.h"
#include "harness.h"

enum { SEQ = 33, TRAIN = 64, VALID = 32 };

static ct_dwq_opts opts(const char *out, double lr) {
    return (ct_dwq_opts){.model = ct_test_fixture("chat_model"), .mlx_path = out, .bits = 2, .group_size = 32,
                         .calib = {.data = "README.md", .num_samples = TRAIN, .sequence_length = SEQ, .seed = 5},
                         .learning_rate = lr, .batch_size = 4, .temperature = 2.0f, .top_k = 64};
}

typedef struct kl_ctx {
    ct_distill_loss loss;
    float *teacher; // (rows, V)
    float *weight;  // (rows)
    int V;
    bool capture;
} kl_ctx;

static ct_status chunk(void *ctx, int64_t row0, int64_t n, const float *logits, float *dlogits, double *sum,
                       ct_error *err) {
    (void)dlogits;
    kl_ctx *c = ctx;
    if (c->capture) {
        memcpy(c->teacher + row0 * c->V, logits, sizeof(float) * (size_t)(n * c->V));
        return CT_OK;
    }
    // the top-64 support of the teacher, as ct_dwq uses it
    float vals[64 * 128];
    int32_t idx[64 * 128];
    for (int64_t r0 = 0; r0 < n; r0 += 128) {
        int64_t m = n - r0 < 128 ? n - r0 : 128;
        ct_logits_top_k(c->teacher + (row0 + r0) * c->V, m, c->V, 64, vals, idx);
        CT_TRY(ct_distill_loss_apply(&c->loss, logits + r0 * c->V, vals, idx, c->weight + row0 + r0, m, c->V, NULL,
                                     sum, err));
    }
    return CT_OK;
}

// The mean KL at temperature 2 (top 64) of student vs teacher on the validation sequences ct_dwq used.
static ct_status valid_kl(const char *student_path, double *out, ct_error *err) {
    ct_calib_opts c = {.data = "README.md", .num_samples = TRAIN + VALID, .sequence_length = SEQ, .seed = 5};
    ct_tokenizer *tok;
    CT_TRY(ct_tokenizer_load(&tok, ct_test_fixture("chat_model"), err));
    int32_t *seqs = NULL;
    int n = 0;
    ct_status st = ct_calib_load(tok, &c, &seqs, &n, err);
    ct_tokenizer_free(tok);
    ct_backend *be = NULL;
    ct_model t = {0}, s = {0};
    if (st == CT_OK && n != TRAIN + VALID)
        st = ct_fail(err, CT_ERR_INVALID, "%d sequences, expected %d", n, TRAIN + VALID);
    if (st == CT_OK)
        st = ct_backend_cpu_create(&be, err);
    if (st == CT_OK)
        st = ct_model_load(&t, ct_test_fixture("chat_model"), be, err);
    if (st == CT_OK)
        st = ct_model_load(&s, student_path, be, err);
    int T = SEQ - 1, rows = VALID * T;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)rows);
    kl_ctx k = {.V = t.V, .teacher = malloc(sizeof(float) * (size_t)rows * 420), .weight = malloc(sizeof(float) *
                                                                                                   (size_t)rows)};
    if (st == CT_OK)
        st = ct_distill_loss_init(&k.loss, be, 2.0f, false, 64, err);
    for (int b = 0; b < VALID; b++)
        memcpy(ids + b * T, seqs + (TRAIN + b) * SEQ, sizeof(int32_t) * (size_t)T);
    for (int r = 0; r < rows; r++)
        k.weight[r] = 1.0f / (float)rows;
    double unused;
    k.capture = true;
    if (st == CT_OK)
        st = ct_model_train_logits(&t, ids, VALID, T, false, chunk, &k, &unused, err);
    k.capture = false;
    *out = 0;
    if (st == CT_OK)
        st = ct_model_train_logits(&s, ids, VALID, T, false, chunk, &k, out, err);
    ct_distill_loss_free(&k.loss);
    free(k.teacher), free(k.weight), free(ids), free(seqs);
    ct_model_free(&t);
    ct_model_free(&s);
    if (be)
        ct_backend_destroy(be);
    return st;
}

TEST(dwq_lowers_kl_and_writes_the_student) {
    char out[512];
    snprintf(out, sizeof out, "%s/dwq_out", ct_test_tmpdir());
    ct_dwq_opts o = opts(out, 1e-3);
    ct_dwq_stats s;
    ct_error err = {0};
    CHECK_OK(ct_dwq(&o, &s, &err), &err);
    CHECK_EQ(s.n_train, TRAIN);
    CHECK_EQ(s.n_valid, VALID);
    CHECK_EQ(s.steps, TRAIN / 4);
    CHECK(s.initial_valid_loss > 0);
    CHECK_MSG(s.final_valid_loss < 0.95 * s.initial_valid_loss, "KL %g -> %g", s.initial_valid_loss,
              s.final_valid_loss);
    // The folder reproduces the in-memory student: the same validation KL (batches of 4 there, one batch here).
    double kl;
    CHECK_OK(valid_kl(out, &kl, &err), &err);
    CHECK_NEAR(kl, s.final_valid_loss, 1e-4 * s.final_valid_loss);
    // and that tolerance separates it from the RTN student it started from
    CHECK(fabs(kl - s.initial_valid_loss) > 1e-2 * s.initial_valid_loss);
}

TEST(dwq_keeps_the_rtn_codes) {
    char out[512], rtn[512];
    snprintf(out, sizeof out, "%s/dwq_codes", ct_test_tmpdir());
    snprintf(rtn, sizeof rtn, "%s/dwq_rtn", ct_test_tmpdir());
    ct_error err = {0};
    ct_convert_opts co = {.model = ct_test_fixture("chat_model"), .mlx_path = rtn, .quantize = true, .q_bits = 2,
                          .q_group_size = 32};
    CHECK_OK(ct_convert(&co, NULL, &err), &err);
    ct_dwq_opts o = opts(out, 1e-3);
    o.quantized_model = rtn; // the same student, given explicitly
    o.calib.num_samples = 8;
    ct_dwq_stats s;
    CHECK_OK(ct_dwq(&o, &s, &err), &err);
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/model.safetensors", out);
    snprintf(b, sizeof b, "%s/model.safetensors", rtn);
    ct_safetensors fa, fb;
    CHECK_OK(ct_safetensors_open(&fa, a, &err), &err);
    CHECK_OK(ct_safetensors_open(&fb, b, &err), &err);
    CHECK_EQ(fa.n_tensors, fb.n_tensors);
    int same_codes = 0, changed_scales = 0;
    for (int i = 0; i < fb.n_tensors; i++) {
        const ct_tensor_view *vb = &fb.tensors[i], *va = ct_safetensors_find(&fa, vb->name);
        CHECK(va && va->nbytes == vb->nbytes && va->dtype == vb->dtype && va->ndim == vb->ndim);
        bool eq = !memcmp(va->data, vb->data, vb->nbytes);
        if (vb->dtype == CT_U32)
            same_codes += eq;
        if (strstr(vb->name, ".scales"))
            changed_scales += !eq;
        if (vb->dtype == CT_U32)
            CHECK_MSG(eq, "%s: codes changed", vb->name);
    }
    CHECK_EQ(same_codes, 15);
    CHECK_EQ(changed_scales, 15);
    ct_safetensors_close(&fa);
    ct_safetensors_close(&fb);
}

TEST(dwq_errors) {
    char out[512];
    snprintf(out, sizeof out, "%s/dwq_err", ct_test_tmpdir());
    ct_error err = {0};
    ct_dwq_stats s;
    ct_dwq_opts o = opts(out, 1e-3);
    o.quantized_model = ct_test_fixture("chat_model");
    CHECK_FAILS(ct_dwq(&o, &s, &err), &err, "must already be quantized");
    o = opts(out, 1e-3);
    o.calib.data = ct_test_write_tmp("dwq_short.txt", "just a few words", 16);
    CHECK_FAILS(ct_dwq(&o, &s, &err), &err, "dwq_short.txt");
    o = opts(out, 1e-3);
    o.batch_size = 200;
    CHECK_FAILS(ct_dwq(&o, &s, &err), &err, "fewer than one batch of 200");
    o = opts(out, 1e-3);
    o.top_k = 5000;
    CHECK_FAILS(ct_dwq(&o, &s, &err), &err, "--top-k 5000 is larger than the vocabulary (420)");
    o = opts(out, 1e-3);
    o.bits = 7;
    CHECK_FAILS(ct_dwq(&o, &s, &err), &err, "bits");
    CHECK(!ct_path_exists(out));
}
