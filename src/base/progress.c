#include "ctune/progress.h"

#include <string.h>
#include <unistd.h>

#include "ctune/log.h"

void ct_progress_begin(ct_progress *p, const char *label, int64_t total) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total;
    p->out = stderr;
    p->tty = isatty(fileno(stderr)) && ct_log_get_level() >= CT_LOG_INFO;
    p->summary = ct_log_get_level() >= CT_LOG_INFO;
    p->t_start = ct_now();
}

const char *ct_format_duration(double s, char *buf, size_t n) {
    if (s < 0)
        s = 0;
    if (s < 60)
        snprintf(buf, n, "%.1fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm%02ds", (int)s / 3600, ((int)s % 3600) / 60, (int)s % 60);
    return buf;
}

void ct_progress_render(const ct_progress *p, double now, char *buf, size_t n) {
    enum { WIDTH = 30 };
    double el = now - p->t_start;
    double frac = p->total > 0 ? (double)p->done / (double)p->total : 0;
    if (frac > 1)
        frac = 1;
    char bar[WIDTH + 1];
    int fill = (int)(frac * WIDTH);
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[WIDTH] = 0;
    char e1[32], e2[32];
    double rate = el > 0 ? (double)p->done / el : 0;
    if (p->done > 0 && p->total > 0) {
        double eta = (double)(p->total - p->done) / (rate > 0 ? rate : 1);
        snprintf(buf, n, "%s [%s] %lld/%lld %5.1f%% %.2f/s elapsed %s eta %s", p->label, bar,
                 (long long)p->done, (long long)p->total, 100 * frac, rate,
                 ct_format_duration(el, e1, sizeof e1), ct_format_duration(eta, e2, sizeof e2));
    } else {
        snprintf(buf, n, "%s [%s] %lld/%lld %5.1f%% elapsed %s eta ?", p->label, bar, (long long)p->done,
                 (long long)p->total, 100 * frac, ct_format_duration(el, e1, sizeof e1));
    }
}

void ct_progress_update(ct_progress *p, int64_t done) {
    p->done = done;
    if (!p->tty)
        return;
    double now = ct_now();
    if (now - p->t_last_draw < 0.1 && done < p->total)
        return;
    p->t_last_draw = now;
    char line[256];
    ct_progress_render(p, now, line, sizeof line);
    fprintf(p->out, "\r%s\033[K", line);
    fflush(p->out);
}

void ct_progress_end(ct_progress *p) {
    char line[256];
    ct_progress_render(p, ct_now(), line, sizeof line);
    if (p->tty)
        fprintf(p->out, "\r%s\033[K\n", line);
    else if (p->summary)
        fprintf(p->out, "%s\n", line);
    fflush(p->out);
}
