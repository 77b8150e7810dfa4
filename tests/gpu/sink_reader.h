/* The record sink_reader writes to stdout for every frame (gpu_sink.c
 * reads it): host byte order, the reader runs on the same machine. */
#ifndef CUDALINK_TEST_SINK_READER_H
#define CUDALINK_TEST_SINK_READER_H

#include <stdint.h>

#define SINK_READER_MAGIC 0x52465253u /* "SRFR" */

typedef struct {
  uint32_t magic;
  int32_t status;          /* 0: data_size bytes of frame follow; else failed */
  uint32_t width, height, num_comps, dtype, flags, data_size;
  uint64_t version;        /* segment version the frame came from */
  uint32_t write_idx;
  uint32_t format_changes; /* ERR_FORMAT_CHANGED seen since the read began */
  char message[160];
} SinkReaderRecord;

#endif
