#include "cudalink.h"
