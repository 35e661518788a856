/* version — the build's version string, for --version and metrics. */
#ifndef TALLY_WORKER_VERSION_H
#define TALLY_WORKER_VERSION_H

/* "0.1.0": the version the build was made from.
 * @thread any */
const char *tally_version(void);

#endif
