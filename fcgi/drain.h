/*
 * drain.h - `podio-hook drain` and `podio-hook status` (podio-hook(1)).
 */
#ifndef PODIO_DRAIN_H
#define PODIO_DRAIN_H

#include "app.h"

/*
 * argv[0] is "drain".  Exit 0 all handled, 1 some not (left for retry,
 * failed, quarantined, or a file left alone), 2 usage or config error,
 * 3 stopped by a rate limit.
 */
int drain_main(struct app *a, int argc, char **argv);

/* argv[0] is "status".  Exit 0, 1 when anything failed or quarantined. */
int status_main(struct app *a, int argc, char **argv);

#endif
