/* The `probe` subcommand (SPEC 7, 13): an HTTP or HTTPS GET for container
 * healthchecks.  argv[0] is "probe". */
#ifndef HEALTHD_CMD_PROBE_H
#define HEALTHD_CMD_PROBE_H

/* Returns the exit code: 0 on 2xx/3xx, 1 otherwise, 2 on a usage error. */
int cmd_probe(int argc, char **argv);

#endif
