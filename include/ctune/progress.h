// progress.h: a progress bar with rate and ETA on stderr. On a terminal it
// redraws one line at most 10 times a second; when stderr is not a terminal
// (piped, CI) it stays quiet except for a final summary line.
#ifndef CTUNE_PROGRESS_H
#define CTUNE_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ct_progress {
    char label[64];
    int64_t total, done;
    double t_start, t_last_draw;
    bool tty;      // draw live updates
    bool summary;  // print the final line when not a tty
    FILE *out;
} ct_progress;

void ct_progress_begin(ct_progress *p, const char *label, int64_t total);
void ct_progress_update(ct_progress *p, int64_t done);
void ct_progress_end(ct_progress *p);
// Formats seconds as "1h02m03s", "2m05s" or "4.2s" into buf.
const char *ct_format_duration(double seconds, char *buf, size_t n);
// Renders the bar text (no newline) into buf; used for drawing and by tests.
void ct_progress_render(const ct_progress *p, double now, char *buf, size_t n);

#endif
