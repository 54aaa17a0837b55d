/* pe_version.h: the one place the petools version is written.
 * The Makefile, the man pages' footer and scripts/pe-dump read it from here. */
#ifndef PE_VERSION_H
#define PE_VERSION_H
#define PE_VERSION "0.1.0"
#endif
