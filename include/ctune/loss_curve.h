// loss_curve.h: the loss-curve picture of a training run. Reads metrics.jsonl
// (objects with "iteration" and "train_loss" or "val_loss") and draws both
// series as an SVG line chart with axes, ticks and a legend.
#ifndef CTUNE_LOSS_CURVE_H
#define CTUNE_LOSS_CURVE_H

#include "ctune/error.h"

ct_status ct_loss_curve_from_metrics(const char *metrics_path, const char *svg_path, ct_error *err);

#endif
