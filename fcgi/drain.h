/*
 * drain.h - `podio-hook drain` and `podio-hook status` (podio-hook(1)).
 */
#ifndef PODIO_DRAIN_H
#define PODIO_DRAIN_H

#include "app.h"

/* Where dead letters and quarantined lines go, below the spool. */
#define DRAIN_FAILED_DIR "failed"
#define DRAIN_BAD_DIR	 "bad"
/* One drain at a time per spool directory. */
#define DRAIN_LOCK_NAME ".drain.lock"

/* argv[0] is "drain".  Exit 0 all handled, 1 some not, 2 usage/config. */
int drain_main(struct app *a, int argc, char **argv);

/* argv[0] is "status".  Exit 0, 1 when anything failed or quarantined. */
int status_main(struct app *a, int argc, char **argv);

#endif
