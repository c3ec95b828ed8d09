/* The Stratus release, printed by `stratus version`. */
#ifndef STRATUS_VERSION_H
#define STRATUS_VERSION_H

#define STRATUS_VERSION "0.1.0"

#endif
