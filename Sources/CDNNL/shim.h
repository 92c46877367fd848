#include <oneapi/dnnl/dnnl.h>
/* Execution-argument ids (macros built from other macros, which Swift does not import). */
static const int MOE_DNNL_ARG_SRC = DNNL_ARG_SRC;
static const int MOE_DNNL_ARG_WEIGHTS = DNNL_ARG_WEIGHTS;
static const int MOE_DNNL_ARG_DST = DNNL_ARG_DST;
static const int MOE_DNNL_ARG_FROM = DNNL_ARG_FROM;
static const int MOE_DNNL_ARG_TO = DNNL_ARG_TO;
static const int MOE_DNNL_ARG_SCRATCHPAD = DNNL_ARG_SCRATCHPAD;
