# config.json of the real stories260K model (sourced by tests/assets.sh).
CONFIG_DUMP=$(realpath build/tools/config_dump)
expect_out "config: stories260K shape" "layers 5 hidden 64 heads 8 kv_heads 4 head_dim 8" \
    "$CONFIG_DUMP" "$ASSETS/models/stories260K"
expect_out "config: stories260K vocab" "vocab 512 intermediate 172 max_pos 512" \
    "$CONFIG_DUMP" "$ASSETS/models/stories260K/config.json"
expect_out "config: stories260K tied f32" "tied 1 act silu dtype float32" \
    "$CONFIG_DUMP" "$ASSETS/models/stories260K"
