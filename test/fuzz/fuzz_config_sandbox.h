/*
 * fuzz_config_sandbox.h: force-included (-include) into src/config*.c when
 * they are compiled for fuzz_config, and nowhere else.
 *
 * A fuzzed config names files (password_file, status_token_file, *_FILE
 * variables) that config_keys.c and config_ini.c open with fopen(). Their fopen() calls are sent to
 * fuzz_config_fopen() in fuzz_config.c, which aborts on any mode that could
 * write and refuses anything but a regular file or directory outside
 * procfs, sysfs and debugfs, so a fuzzed path can neither change a file nor
 * block on a FIFO, a terminal or /proc/kmsg, nor open a device with side
 * effects. stdio.h is included first so that its own declaration of fopen
 * (redirected to fopen64 under _FILE_OFFSET_BITS=64) is not renamed.
 */
#ifndef HEALTHD_FUZZ_CONFIG_SANDBOX_H
#define HEALTHD_FUZZ_CONFIG_SANDBOX_H

#include <stdio.h>

FILE *fuzz_config_fopen(const char *path, const char *mode);

#define fopen(path, mode) fuzz_config_fopen((path), (mode))

#endif
