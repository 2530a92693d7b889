// ctune lora: fine-tune a model with LoRA, DoRA or full fine-tuning, the way
// mlx_lm.lora does (same flags, YAML keys and files), then optionally report
// the test loss. Flags and YAML: include/ctune/lora_args.h; the loop:
// include/ctune/trainer.h; the model side: include/ctune/tuned_model.h.
// Under mpirun every process runs this same command as one rank of a
// data-parallel run (include/ctune/comm.h, docs/distributed.md): rank 0 alone
// prints to stdout and writes files; errors name the rank.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ctune/adapter.h"
#include "ctune/comm.h"
#include "ctune/data_encode.h"
#include "ctune/dataset.h"
#include "ctune/fs.h"
#include "ctune/hub.h"
#include "ctune/log.h"
#include "ctune/lora_args.h"
#include "ctune/model.h"
#include "ctune/tokenizer.h"
#include "ctune/trainer.h"
#include "ctune/tuned_model.h"

typedef struct lora_run {
    ct_lora_args args;
    ct_backend *be;
    ct_model model;
    bool model_loaded;
    ct_tokenizer *tok;
    ct_data_encoder enc;
    bool enc_ready;
    ct_dataset train, valid, test;
    ct_examples ex_train, ex_valid, ex_test;
    ct_tuned_model *tuned;
    ct_comm *comm;
} lora_run;

static void run_free(lora_run *r) {
    ct_tuned_model_free(r->tuned);
    ct_examples_free(&r->ex_train);
    ct_examples_free(&r->ex_valid);
    ct_examples_free(&r->ex_test);
    ct_dataset_free(&r->train);
    ct_dataset_free(&r->valid);
    ct_dataset_free(&r->test);
    if (r->enc_ready)
        ct_data_encoder_free(&r->enc);
    if (r->tok)
        ct_tokenizer_free(r->tok);
    if (r->model_loaded)
        ct_model_free(&r->model);
    if (r->be)
        ct_backend_destroy(r->be);
    ct_lora_args_free(&r->args);
}

static ct_status tokenize_split(lora_run *r, const ct_dataset *ds, const char *name, ct_examples *out,
                                ct_error *err) {
    if (ds->n == 0)
        return CT_OK;
    ct_status st = ct_dataset_tokenize(ds, ct_data_encode, &r->enc, r->args.mask_prompt, r->args.max_seq_length, out,
                                       err);
    if (st != CT_OK)
        return ct_error_context(err, "%s set", name);
    return CT_OK;
}

static ct_status schedule_from_args(const ct_lora_args *a, ct_schedule *s, ct_error *err) {
    if (!a->lr_schedule_set) {
        *s = ct_schedule_constant(a->learning_rate);
        return CT_OK;
    }
    const ct_lr_schedule *l = &a->lr_schedule;
    return ct_schedule_from_config(s, l->name, l->arguments, (int)l->n_arguments, l->warmup, l->warmup_init, err);
}

static ct_status optimizer_from_args(const ct_lora_args *a, ct_optim_config *c, ct_error *err) {
    ct_optim_kind kind;
    CT_TRY(ct_optim_kind_from_name(a->optimizer, &kind, err));
    *c = ct_optim_defaults(kind);
    const cJSON *sub = a->optimizer_config ? cJSON_GetObjectItemCaseSensitive(a->optimizer_config, a->optimizer) : NULL;
    return ct_optim_config_apply_json(c, sub, err);
}

static ct_status train(lora_run *r, ct_error *err) {
    const ct_lora_args *a = &r->args;
    ct_tune_config tc = {
        .fine_tune_type = a->fine_tune_type,
        .num_layers = (int)a->num_layers,
        .rank = (int)a->lora_parameters.rank,
        .scale = a->lora_parameters.scale,
        .dropout = a->lora_parameters.dropout,
        .keys = a->lora_parameters.keys,
        .n_keys = (int)a->lora_parameters.n_keys,
        .grad_checkpoint = a->grad_checkpoint,
        .seed = (uint64_t)a->seed,
    };
    CT_TRY(ct_tuned_model_create(&r->tuned, &r->model, &tc, err));
    if (a->resume_adapter_file)
        CT_TRY(ct_tuned_model_load_weights(r->tuned, a->resume_adapter_file, err));
    int64_t trainable, total;
    ct_tuned_model_counts(r->tuned, &trainable, &total);
    char line[256];
    ct_format_trainable_parameters(line, sizeof line, trainable, total);
    printf("%s\n", line);
    if (ct_comm_rank(r->comm) == 0)
        CT_TRY(ct_lora_args_save_config(a, err));
    ct_train_options o = {
        .iters = a->iters,
        .batch_size = a->batch_size,
        .val_batches = a->val_batches,
        .steps_per_report = a->steps_per_report,
        .steps_per_eval = a->steps_per_eval,
        .save_every = a->save_every,
        .grad_accumulation_steps = a->grad_accumulation_steps,
        .max_seq_length = a->max_seq_length,
        .seed = (uint64_t)a->seed,
        .adapter_path = a->adapter_path,
        .resume = a->resume,
        .out = stdout,
        .comm = r->comm,
    };
    CT_TRY(optimizer_from_args(a, &o.optim, err));
    CT_TRY(schedule_from_args(a, &o.schedule, err));
    ct_train_target target;
    ct_tuned_model_target(r->tuned, &target);
    printf("Starting training..., iters: %lld\n", (long long)a->iters);
    fflush(stdout);
    ct_train_result res;
    CT_TRY(ct_train(&target, &r->ex_train, r->ex_valid.n ? &r->ex_valid : NULL, &o, &res, err));
    printf("Saved final weights to %s/adapters.safetensors.\n", a->adapter_path);
    return CT_OK;
}

static ct_status test(lora_run *r, ct_error *err) {
    const ct_lora_args *a = &r->args;
    if (!r->tuned && a->adapter_path && a->adapter_path[0])
        CT_TRY(ct_model_apply_adapters(&r->model, a->adapter_path, &r->tuned, err));
    ct_train_target target = {0};
    if (r->tuned) {
        ct_tuned_model_target(r->tuned, &target);
    } else {
        CT_TRY(ct_tuned_model_create(&r->tuned, &r->model, &(ct_tune_config){.fine_tune_type = "full", .num_layers = 0},
                                     err));
        ct_tuned_model_target(r->tuned, &target);
    }
    double loss;
    int64_t ntok;
    CT_TRY(ct_evaluate(&target, &r->ex_test, a->batch_size, a->test_batches, a->max_seq_length, (uint64_t)a->seed,
                       r->comm, &loss, &ntok, err));
    printf("Test loss %.3f, Test ppl %.3f.\n", loss, exp(loss));
    return CT_OK;
}

static ct_status run(lora_run *r, ct_error *err) {
    ct_lora_args *a = &r->args;
    char model_path[4096];
    printf("Loading pretrained model\n");
    fflush(stdout);
    CT_TRY(ct_hub_model_path(a->model, model_path, sizeof model_path, err));
    CT_TRY(ct_backend_cpu_create(&r->be, err));
    CT_TRY(ct_model_load(&r->model, model_path, r->be, err));
    r->model_loaded = true;
    CT_TRY(ct_tokenizer_load(&r->tok, model_path, err));
    CT_TRY(ct_data_encoder_init(&r->enc, r->tok, err));
    r->enc_ready = true;
    printf("Loading datasets\n");
    fflush(stdout);
    ct_hub_options hub;
    CT_TRY(ct_hub_options_from_env(&hub, err));
    CT_TRY(ct_dataset_load_for_args(a, &hub, &r->train, &r->valid, &r->test, err));
    CT_TRY(tokenize_split(r, &r->train, "training", &r->ex_train, err));
    CT_TRY(tokenize_split(r, &r->valid, "validation", &r->ex_valid, err));
    CT_TRY(tokenize_split(r, &r->test, "test", &r->ex_test, err));
    if (a->report_to)
        ct_log_warn("report_to: %s is not available in ctune; metrics go to %s/metrics.jsonl and loss_curve.svg",
                    a->report_to, a->adapter_path);
    if (a->train) {
        printf("Training\n");
        CT_TRY(train(r, err));
    }
    if (a->test) {
        printf("Testing\n");
        CT_TRY(test(r, err));
    }
    return CT_OK;
}

int cmd_lora(int argc, char **argv) {
    lora_run r;
    memset(&r, 0, sizeof r);
    ct_error err;
    double timeout;
    argc--;
    argv++;
    if (cli_take_comm_timeout(&argc, argv, &timeout, &err) != CT_OK)
        return cli_usage_error("lora", "%s", err.msg);
    if (ct_lora_args_parse(&r.args, argc, argv, &err) != CT_OK)
        return cli_usage_error("lora", "%s", err.msg);
    if (r.args.help) {
        char *help = ct_lora_args_help();
        fputs(help, stdout);
        printf("\nctune (data-parallel runs under mpirun, docs/distributed.md):\n"
               "  --comm-timeout SECONDS\n"
               "                        fail when a collective waits longer than this for the other ranks\n"
               "                        (default %.0f)\n",
               CT_COMM_DEFAULT_TIMEOUT);
        free(help);
        ct_lora_args_free(&r.args);
        return 0;
    }
    if (ct_lora_args_validate(&r.args, &err) != CT_OK) {
        ct_lora_args_free(&r.args);
        return cli_usage_error("lora", "%s", err.msg);
    }
    ct_comm comm;
    if (cli_comm_start(&comm, timeout, &err) != CT_OK) {
        ct_lora_args_free(&r.args);
        return cli_report(&err);
    }
    r.comm = &comm;
    ct_status st = run(&r, &err);
    run_free(&r);
    return cli_comm_finish(&comm, st, &err);
}
