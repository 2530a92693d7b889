// utf8.h: UTF-8 validation (RFC 3629: no overlong forms, no surrogates, at
// most U+10FFFF), for every parser that must reject invalid text with the
// offset of the first bad byte.
#ifndef CTUNE_UTF8_H
#define CTUNE_UTF8_H

#include <stddef.h>
#include <stdint.h>

// Length (1-4) of the valid sequence at s[0..n) with its code point in *cp, or 0 if invalid.
size_t ct_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
// Offset of the first invalid byte of s[0..n), or n when all of it is valid.
size_t ct_utf8_invalid_at(const char *s, size_t n);

#endif
