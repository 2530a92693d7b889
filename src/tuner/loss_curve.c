// An SVG line chart of train and validation loss from metrics.jsonl.
#include "ctune/loss_curve.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/fs.h"
#include "ctune/json.h"

typedef struct series {
    double *x, *y;
    int n, cap;
} series;

static void push(series *s, double x, double y) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        double *nx = realloc(s->x, (size_t)cap * sizeof *nx), *ny = realloc(s->y, (size_t)cap * sizeof *ny);
        if (nx)
            s->x = nx;
        if (ny)
            s->y = ny;
        if (!nx || !ny)
            return;
        s->cap = cap;
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
}

// A "nice" tick step (1, 2 or 5 times a power of ten) for a range.
static double tick_step(double range, int target) {
    double raw = range / target, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

typedef struct buf {
    char *s;
    size_t n, cap;
} buf;

static void out(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(buf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int w = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (w < 0)
            return;
        if (b->s && b->n + (size_t)w < b->cap) {
            b->n += (size_t)w;
            return;
        }
        size_t cap = (b->cap + (size_t)w + 1) * 2;
        char *ns = realloc(b->s, cap);
        if (!ns)
            return;
        b->s = ns;
        b->cap = cap;
    }
}

static void polyline(buf *b, const series *s, const char *color, double x0, double xs, double y0, double ys,
                     double ymin, double xmin) {
    out(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
    for (int i = 0; i < s->n; i++)
        out(b, "%.1f,%.1f ", x0 + (s->x[i] - xmin) * xs, y0 - (s->y[i] - ymin) * ys);
    out(b, "\"/>\n");
    for (int i = 0; i < s->n && s->n <= 60; i++)
        out(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", x0 + (s->x[i] - xmin) * xs,
            y0 - (s->y[i] - ymin) * ys, color);
}

ct_status ct_loss_curve_from_metrics(const char *metrics_path, const char *svg_path, ct_error *err) {
    char *text;
    size_t len;
    CT_TRY(ct_read_file(metrics_path, &text, &len, err));
    series tr = {0}, va = {0};
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *it = cJSON_GetObjectItem(j, "iteration"), *tl = cJSON_GetObjectItem(j, "train_loss"),
                    *vl = cJSON_GetObjectItem(j, "val_loss");
        if (cJSON_IsNumber(it) && cJSON_IsNumber(tl) && isfinite(tl->valuedouble))
            push(&tr, it->valuedouble, tl->valuedouble);
        if (cJSON_IsNumber(it) && cJSON_IsNumber(vl) && isfinite(vl->valuedouble))
            push(&va, it->valuedouble, vl->valuedouble);
        cJSON_Delete(j);
    }
    free(text);
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    const series *all[2] = {&tr, &va};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < all[k]->n; i++) {
            xmin = fmin(xmin, all[k]->x[i]);
            xmax = fmax(xmax, all[k]->x[i]);
            ymin = fmin(ymin, all[k]->y[i]);
            ymax = fmax(ymax, all[k]->y[i]);
        }
    if (!(xmax >= xmin)) { // no points yet
        xmin = 0, xmax = 1, ymin = 0, ymax = 1;
    }
    if (xmax - xmin < 1)
        xmax = xmin + 1;
    if (ymax - ymin < 1e-6)
        ymax = ymin + 1e-6;
    double pad = 0.05 * (ymax - ymin);
    ymin = fmax(0, ymin - pad), ymax += pad;
    const double W = 720, H = 420, L = 70, R = 20, T = 40, B = 50;
    double xs = (W - L - R) / (xmax - xmin), ys = (H - T - B) / (ymax - ymin), y0 = H - B;
    buf b = {0};
    out(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" "
            "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H);
    out(&b, "<text x=\"%.0f\" y=\"24\" font-size=\"15\">ctune training loss</text>\n", L);
    double st = tick_step(ymax - ymin, 6);
    for (double v = ceil(ymin / st) * st; v <= ymax + 1e-12; v += st) {
        double y = y0 - (v - ymin) * ys;
        out(&b, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, y, W - R, y);
        out(&b, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", L - 6, y + 4, v);
    }
    double sx = tick_step(xmax - xmin, 8);
    for (double v = ceil(xmin / sx) * sx; v <= xmax + 1e-9; v += sx) {
        double x = L + (v - xmin) * xs;
        out(&b, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#999\"/>\n", x, y0, x, y0 + 5);
        out(&b, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%g</text>\n", x, y0 + 18, v);
    }
    out(&b, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#333\"/>\n", L, T,
        W - L - R, H - T - B);
    out(&b, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">iteration</text>\n", L + (W - L - R) / 2, H - 12);
    out(&b, "<text x=\"16\" y=\"%.0f\" text-anchor=\"middle\" transform=\"rotate(-90 16 %.0f)\">loss</text>\n",
        T + (H - T - B) / 2, T + (H - T - B) / 2);
    polyline(&b, &tr, "#1f77b4", L, xs, y0, ys, ymin, xmin);
    polyline(&b, &va, "#ff7f0e", L, xs, y0, ys, ymin, xmin);
    out(&b, "<rect x=\"%.0f\" y=\"%.0f\" width=\"12\" height=\"3\" fill=\"#1f77b4\"/><text x=\"%.0f\" y=\"%.0f\">train</text>\n",
        W - R - 150, T + 12, W - R - 134, T + 16);
    out(&b, "<rect x=\"%.0f\" y=\"%.0f\" width=\"12\" height=\"3\" fill=\"#ff7f0e\"/><text x=\"%.0f\" y=\"%.0f\">validation</text>\n",
        W - R - 90, T + 12, W - R - 74, T + 16);
    out(&b, "</svg>\n");
    ct_status rc = b.s ? ct_write_file_atomic(svg_path, b.s, b.n, err)
                       : ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", svg_path);
    free(b.s);
    free(tr.x);
    free(tr.y);
    free(va.x);
    free(va.y);
    return rc;
}
