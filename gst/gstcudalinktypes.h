/* The words cudalinksink and cudalinksrc share: their common enum property
 * types and the converter's swizzle constants.
 *
 * CUDA-free on purpose: the format planners (sinkformat.c, srcformat.c) and
 * their CPU tests include it without the CUDA headers. The GTypes live in
 * gstcudalinkutils.c.
 */
#ifndef __GST_CUDA_LINK_TYPES_H__
#define __GST_CUDA_LINK_TYPES_H__

#include <glib.h>

G_BEGIN_DECLS

/* channel-order, both elements: the byte order of uint8 x 4 frames.
 * cudalinksrc: how a producer's uint8 x 4 frames are labelled (auto: BGRA
 * when the producer sets the BGRA flag, else RGBA).
 * cudalinksink: what it publishes (auto: BGRA with the flag for BGRA/BGRx
 * input, so the bytes pass untouched; RGBA for everything else). */
typedef enum
{
  GST_CUDA_LINK_CHANNEL_ORDER_AUTO = 0,
  GST_CUDA_LINK_CHANNEL_ORDER_RGBA = 1,
  GST_CUDA_LINK_CHANNEL_ORDER_BGRA = 2,
} GstCudaLinkChannelOrder;

/* gpu-wait, both elements: how a thread waits for the GPU to finish a
 * frame's copy. cudalinksrc always waits (its torn check needs the copy
 * done) and refuses NONE; cudalinksink waits only when asked to. */
typedef enum
{
  GST_CUDA_LINK_GPU_WAIT_NONE = 0,
  GST_CUDA_LINK_GPU_WAIT_NAP = 1,
  GST_CUDA_LINK_GPU_WAIT_SPIN = 2,
  GST_CUDA_LINK_GPU_WAIT_SLEEP = 3,
} GstCudaLinkGpuWait;

/* io-mode, cudalinksrc (the name follows cudaipcsrc's): copy every frame
 * out of the producer's ring, or import it (hold the slot and hand it
 * downstream without a copy: only our own producers offer it, and only
 * for frames that pass unconverted into CUDA memory), or auto: import
 * where possible, copy otherwise. */
typedef enum
{
  GST_CUDA_LINK_IO_MODE_COPY = 0,
  GST_CUDA_LINK_IO_MODE_IMPORT = 1,
  GST_CUDA_LINK_IO_MODE_AUTO = 2,
} GstCudaLinkIoMode;

/* Converter swizzle entries: output channel c <- a source channel index
 * 0..3, or one of these. */
#define GST_CUDA_LINK_SWIZZLE_ZERO (-1)   /* 0 */
#define GST_CUDA_LINK_SWIZZLE_ONE  (-2)   /* 1.0 / the type's max (opaque alpha) */

G_END_DECLS

#endif /* __GST_CUDA_LINK_TYPES_H__ */
