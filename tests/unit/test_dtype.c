// Unit tests for dtype conversions: exhaustive round trips and known values.
#include "ctune/dtype.h"
#include "harness.h"

TEST(f16_roundtrip_all_finite) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if (((h >> 10) & 0x1f) == 0x1f)
            continue; // inf/nan
        float f = ct_f16_to_f32((uint16_t)h);
        if (ct_f32_to_f16(f) != h)
            bad++;
    }
    CHECK_EQ(bad, 0);
}

TEST(f16_known_values_and_rounding) {
    CHECK_NEAR(ct_f16_to_f32(0x3c00), 1.0, 0);
    CHECK_NEAR(ct_f16_to_f32(0xc000), -2.0, 0);
    CHECK_NEAR(ct_f16_to_f32(0x7bff), 65504.0, 0);
    CHECK_NEAR(ct_f16_to_f32(0x0001), 5.960464477539063e-08, 0);
    CHECK_EQ(ct_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00);        // tie -> even (down)
    CHECK_EQ(ct_f32_to_f16(1.0f + 3.0f / 2048), 0x3c02);        // tie -> even (up)
    CHECK_EQ(ct_f32_to_f16(65520.0f), 0x7c00);                   // rounds to inf
    CHECK_EQ(ct_f32_to_f16(1e-9f), 0x0000);
    CHECK_EQ(ct_f32_to_f16(-0.0f), 0x8000);
}

TEST(bf16_rounding) {
    CHECK_EQ(ct_f32_to_bf16(1.0f), 0x3f80);
    CHECK_NEAR(ct_bf16_to_f32(0x3f80), 1.0, 0);
    CHECK_EQ(ct_f32_to_bf16(1.00390625f), 0x3f80); // 1 + 2^-8: tie -> even (down)
    CHECK_EQ(ct_f32_to_bf16(1.01171875f), 0x3f82); // 1 + 3*2^-8: tie -> even (up)
    int bad = 0;
    for (uint32_t b = 0; b < 65536; b++) {
        if (((b >> 7) & 0xff) == 0xff)
            continue;
        if (ct_f32_to_bf16(ct_bf16_to_f32((uint16_t)b)) != b)
            bad++;
    }
    CHECK_EQ(bad, 0);
}

TEST(fp8_known_values) {
    CHECK_NEAR(ct_f8e4m3_to_f32(0x7e), 448.0, 0);
    CHECK(isnan(ct_f8e4m3_to_f32(0x7f)));
    CHECK_NEAR(ct_f8e4m3_to_f32(0x38), 1.0, 0);
    CHECK_NEAR(ct_f8e4m3_to_f32(0x01), 0.001953125, 0);
    CHECK_NEAR(ct_f8e5m2_to_f32(0x3c), 1.0, 0);
    CHECK_NEAR(ct_f8e5m2_to_f32(0x7b), 57344.0, 0);
    CHECK(isinf(ct_f8e5m2_to_f32(0x7c)));
}

TEST(dtype_names) {
    ct_dtype t;
    CHECK(ct_dtype_from_name("BF16", &t));
    CHECK_EQ(t, CT_BF16);
    CHECK(ct_dtype_from_name("F8_E5M2", &t));
    CHECK_EQ(ct_dtype_size(t), 1);
    CHECK(!ct_dtype_from_name("F4", &t));
    CHECK_STREQ(ct_dtype_name(CT_U32), "U32");
    float out[3];
    int16_t in[3] = {-5, 0, 300};
    ct_convert_to_f32(out, in, CT_I16, 3);
    CHECK_NEAR(out[0], -5, 0);
    CHECK_NEAR(out[2], 300, 0);
}
