"""One module per `facetrack-trainer` command: `add_parser(subparsers)` and `run(args) -> int`."""
