"""``python -m edge_dfd.bench JOB RESULT``: the measuring process of ``worker.measure_isolated``."""

import sys

from edge_dfd.bench.worker import main

sys.exit(main(sys.argv[1:]))
