"""The ``microad`` command line: demos, and checking, explaining and drawing graph files.

Each subcommand hands its parsed arguments to the module that does the
work, and returns its exit code. Only this module, the demos and the
``run_*`` entry points that it calls print.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from . import __version__
from .errors import MicroadError


def _demo(args) -> int:
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise MicroadError(f"--output {args.output} is a file; pass a folder (it is created "
                           "if missing)")
    if args.name == "relu":
        from .demos import relu
        return relu.run(args.output)
    if args.name == "softmax":
        from .demos import softmax
        return softmax.run(args.output)
    from .demos import train
    return train.run(args.output)


def _check(args) -> int:
    from .compare import run_check
    return run_check(args)


def _explain(args) -> int:
    from .explain import run_explain
    return run_explain(args)


def _draw(args) -> int:
    from .draw import run_draw
    status = run_draw(args)
    if status == 0:
        print(f"wrote {args.out}")
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="microad",
        description="Reverse-mode autodiff on NumPy: derive, draw and check backpropagation.")
    parser.add_argument("--version", action="version", version=f"microad {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run a walk-through: relu, softmax or train")
    demo.add_argument("name", choices=["relu", "softmax", "train"], help="which demo to run")
    demo.add_argument("--output", default="out", metavar="DIR",
                      help="folder for the diagrams and plots (default: out)")
    demo.set_defaults(run=_demo)

    check = commands.add_parser("check", help="compare hand-derived gradients with the engine")
    check.add_argument("file", help="graph file: a Python script that builds the graph")
    check.add_argument("--tensor", dest="output_name", default="loss", metavar="NAME",
                       help="name of the variable that contains the output tensor (default: loss)")
    check.add_argument("--manual", action="append", default=[], metavar="FILE",
                       help=".npy or .npz file of manual gradients; may be repeated")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(run=_check)

    explain = commands.add_parser("explain", help="print the backward pass as equations or code")
    explain.add_argument("file", help="graph file: a Python script that builds the graph")
    explain.add_argument("--tensor", dest="output_name", default="loss", metavar="NAME",
                         help="name of the variable that contains the output tensor (default: loss)")
    style = explain.add_mutually_exclusive_group()
    style.add_argument("--latex", dest="format", action="store_const", const="latex",
                       help="print LaTeX equations, ready for MathJax")
    style.add_argument("--markdown", dest="format", action="store_const", const="markdown",
                       help="print a Markdown table of the steps")
    style.add_argument("--numpy", dest="format", action="store_const", const="numpy",
                       help="print a runnable NumPy function of the forward and backward pass")
    explain.set_defaults(run=_explain, format="text")

    draw = commands.add_parser("draw", help="draw the graph with Graphviz")
    draw.add_argument("file", help="graph file: a Python script that builds the graph")
    draw.add_argument("-o", "--out", required=True, metavar="PATH",
                      help="output file: .svg, .png, .pdf or .dot")
    draw.add_argument("--tensor", dest="output_name", default="loss", metavar="NAME",
                      help="name of the variable that contains the output tensor (default: loss)")
    draw.add_argument("--view", choices=["forward", "backward", "both"], default="forward",
                      help="which graph to draw (default: forward)")
    draw.set_defaults(run=_draw)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"microad: warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    if argv is None:
        # On the real command line, warnings from the library read as the
        # command's own messages, without the source line Python would show.
        warnings.showwarning = _show_warning
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except MicroadError as exc:
        print(f"microad: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader (such as `head`) closed the pipe: stop quietly, and keep
        # Python from reporting the same error again when it flushes stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        # A path that cannot be written or read: name it, without a traceback.
        print(f"microad: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 2
