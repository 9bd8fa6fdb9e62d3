"""`python -m tuneforge.worker.train_child TASK.json`: the training child the worker starts (training/child.py
has its `main`). It lives here, above both the recipe (training/) and the inference engine (inference/),
because a reinforcement job's model grader is answered by that engine inside this process."""

from __future__ import annotations

import sys

from tuneforge.inference import scorer
from tuneforge.training import child


def main(argv: list[str]) -> int:
    return child.main(argv, scorer_for=scorer.for_job)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
