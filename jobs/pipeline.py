"""The main job: prepare the dataset, train both components' stages, search stage assignments, write the release.

Run directly (starts a private local Ray):
    python jobs/pipeline.py --recipe jobs/recipes/stard-mini.yaml
or on a cluster:
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python jobs/pipeline.py --recipe jobs/recipes/stard-mini.yaml
"""

import sys

from backbone.pipeline import job_main

if __name__ == "__main__":
    sys.exit(job_main(sys.argv[1:], train=True, description=__doc__.splitlines()[0]))
