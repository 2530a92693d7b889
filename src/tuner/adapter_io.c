// adapter_io.c: adapter files (mlx-lm and PEFT layouts).
#include "ctune/adapter.h"
