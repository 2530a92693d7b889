// config_dump PATH: prints the resolved model configuration of a config.json
// (or a model folder), one "key value" per line, for asset checks.
#include <stdio.h>

#include "ctune/config.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: config_dump MODEL_DIR|config.json\n");
        return 2;
    }
    ct_model_config c;
    ct_error err;
    if (ct_model_config_load(&c, argv[1], &err) != CT_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    printf("arch %s\n", ct_arch_name(c.arch));
    printf("layers %lld hidden %lld heads %lld kv_heads %lld head_dim %lld\n", (long long)c.num_hidden_layers,
           (long long)c.hidden_size, (long long)c.num_attention_heads, (long long)c.num_key_value_heads,
           (long long)c.head_dim);
    printf("vocab %lld intermediate %lld max_pos %lld\n", (long long)c.vocab_size, (long long)c.intermediate_size,
           (long long)c.max_position_embeddings);
    printf("rope %s theta %g\n", ct_rope_type_name(c.rope.type), c.rope.theta);
    printf("tied %d act %s dtype %s\n", c.tie_word_embeddings, ct_activation_name(c.hidden_act), c.dtype);
    printf("quantized %d\n", c.quant.quantized);
    ct_model_config_free(&c);
    return 0;
}
