/* version — the build's version string, for --version and metrics. */
#ifndef TALLY_WORKER_VERSION_H
#define TALLY_WORKER_VERSION_H

const char *tally_version(void);

#endif
