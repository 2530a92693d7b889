// version.h: the release version of ctune.
#ifndef CTUNE_VERSION_H
#define CTUNE_VERSION_H
#define CTUNE_VERSION "0.1.0-dev"
#endif
