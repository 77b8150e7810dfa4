#pragma once
/* placeholder */
