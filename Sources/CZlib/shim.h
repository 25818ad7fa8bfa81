// zlib (Debian: zlib1g-dev) for gzip inflate and the PNG writer's deflate.
#include <zlib.h>
