"""One module per `facetrack-trainer` command, each with `add_parser(subparsers)` and `run(args)`.

A command module imports at its top only what building its parser needs; the heavy work (OpenCV,
scikit-learn, skops) sits in `trainer.training`, `trainer.evaluate` and `trainer.dataset`, imported
by `run`, so `--help` and `publish` never pay for scikit-learn.
"""
