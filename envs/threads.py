"""The simulator's parallel kernels run on numba's ``workqueue`` threading layer unless ``NUMBA_THREADING_LAYER``
says otherwise (imported by :mod:`envs` before any kernel is compiled).

Numba's OpenMP layer sets OpenMP's thread count on each parallel launch, and its threads spin between launches.
Beside a PyTorch learner in the same process that cost more than it saved: after each env step torch's intra-op
pool followed numba's count whatever ``torch.set_num_threads`` had said, and the spinning threads took the cores
from it (a BERT minibatch step went from 35 ms to 280 ms on the 2-core machine; the vector env alone at 1,024
sessions stepped at 87-328k user-steps/s under OpenMP and 660-690k under workqueue on the loaded machine).
``workqueue`` is numba's own pool: it touches no OpenMP setting and sleeps when idle.
"""

import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"
