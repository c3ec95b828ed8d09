/* `stratus lb`: runs the layer-4 load balancer until SIGTERM/SIGINT. */
#ifndef STRATUS_LB_MAIN_H
#define STRATUS_LB_MAIN_H

int lb_main(int argc, char **argv);

#endif
