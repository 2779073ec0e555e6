"""The options of the local OpenAI server's command line, shared by `python -m imageflow_dagster.local.openai_server`
and `imageflow local-openai`. Standard library only (with openai_ratelimit, itself standard library only), so that
`imageflow --help` stays fast."""

import argparse

from imageflow_dagster.local.openai_ratelimit import ALGORITHMS

DESCRIPTION = "Run the local OpenAI-compatible server."


def add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (default: 8765; 0: a free one)")
    parser.add_argument("--image-latency", type=float, default=0.0, help="seconds added to every image call")
    parser.add_argument("--response-latency", type=float, default=0.0, help="seconds added to every Responses call")
    parser.add_argument(
        "--image-payload", choices=("small", "noise"), default="small",
        help="small: a plain drawing that compresses well; noise: random pixels, megabytes per image (default: small)",
    )
    parser.add_argument(
        "--images-per-minute", type=_not_negative, default=0.0,
        help="images-per-minute limit shared by all models (0 = none)",
    )
    parser.add_argument(
        "--rate-limit-algorithm", choices=sorted(ALGORITHMS), default="token_bucket",
        help="how the images-per-minute limit refills: continuously, or over a rolling minute",
    )
    parser.add_argument(
        "--refused-calls-count", action="store_true", help="a call answered 429 counts against the limit too"
    )
    parser.add_argument(
        "--rate-limit-per-model", action="store_true", help="each model its own images-per-minute limit"
    )
    parser.add_argument(
        "--shut-down-models", default="", metavar="A,B", help="comma-separated models answered with 404 model_not_found"
    )
    parser.add_argument("--quota-exhausted", action="store_true", help="answer every call with 429 insufficient_quota")


def _not_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value
