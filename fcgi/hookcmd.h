/*
 * hookcmd.h - `podio-hook hook ...` and the Podio part of `check`
 * (podio-hook(1)).  Exit status: 0 done, 1 the API failed (its error on
 * standard error), 2 usage or config error.
 */
#ifndef PODIO_HOOKCMD_H
#define PODIO_HOOKCMD_H

#include "app.h"

/* argv[0] is "hook"; the config is loaded here. */
int hookcmd_main(struct app *a, int argc, char **argv);

/* Authenticates with the configured grant; prints the outcome. */
int hookcmd_check_auth(struct app *a);

#endif
