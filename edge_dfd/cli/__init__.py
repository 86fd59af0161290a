"""The ``edge-dfd`` command line: a thin click layer over the library.

Each verb lives in its own module (``edge_dfd/cli/<verb>.py``, a click command named ``cmd``) and is
imported only when that verb runs, so ``edge-dfd --help`` and ``edge-dfd VERB --help`` never import
TensorFlow. Library imports happen inside the command bodies.

Exit codes: 0 ok, 1 error, 2 usage error, 3 quality gate failed, 130 interrupted (129 / 143: `live` stopped by
SIGHUP / SIGTERM after finalising its outputs).
Data goes to stdout (``--json`` for machines); progress and logs go to stderr.
"""

from __future__ import annotations

import importlib
import sys

import click

from edge_dfd import __version__

# verb -> (module, one-line help shown by `edge-dfd --help` without importing the module)
COMMANDS = {
    "train": ("edge_dfd.cli.train", "Train a detector (the study's models and edge backbones)."),
    "evaluate": ("edge_dfd.cli.evaluate", "Report accuracy, AUC, confusion matrix for any model file."),
    "convert": ("edge_dfd.cli.convert", "Export a Keras model to verified TFLite and ONNX files."),
    "predict": ("edge_dfd.cli.predict", "Classify image files, folders, globs or a 140k CSV."),
    "bench": ("edge_dfd.cli.bench", "Latency / accuracy / size of every format, side by side."),
    "live": ("edge_dfd.cli.live", "Real-time detection from a webcam, video file or stream."),
    "scan": ("edge_dfd.cli.scan", "P(fake) per face and per video for video files, folders or globs."),
    "data": ("edge_dfd.cli.data", "Validate a dataset folder and print its per-split counts."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        mod = importlib.import_module(COMMANDS[name][0])
        return mod.cmd

    def format_commands(self, ctx, formatter):
        rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="edge-dfd")
def cli():
    """edge-dfd: deepfake face-image detectors, from Keras training to verified edge deployment.

    Every model outputs P(fake), the probability that a face is generated.
    `--model default` (or no --model) means the bundled default detector.
    """


def main(argv=None, group=None, prog_name: str = "edge-dfd") -> int:
    """Entry point: user errors become one line on stderr and an exit code, never a traceback.
    ``group``: another click command run under the same rules (e.g. a tool built on the CLI)."""
    from edge_dfd.core import tfquiet
    from edge_dfd.core.errors import EdgeDFDError

    tfquiet.install()  # before any command imports TensorFlow; EDGE_DFD_DEBUG=1 keeps its log
    debug = tfquiet.debug()
    try:
        rv = (group or cli).main(args=argv, prog_name=prog_name, standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as e:
        code = e.exit_code
    except click.ClickException as e:
        e.show()
        code = e.exit_code
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        code = 130
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        code = 130
    except EdgeDFDError as e:
        if debug:
            raise
        click.echo(f"error: {e}", err=True)
        code = e.exit_code
    except BrokenPipeError:
        code = 0
    except MemoryError:
        click.echo("error: out of memory (try a smaller --batch-size)", err=True)
        code = 1
    except Exception as e:  # last line of defence: one line, no traceback
        if debug:
            raise
        from edge_dfd.core.util import first_line

        msg = first_line(e, 300, empty="")
        click.echo(f"error: unexpected {type(e).__name__}: {msg} (set EDGE_DFD_DEBUG=1 for a traceback)", err=True)
        code = 1
    sys.stdout.flush()
    return code


def run():  # pragma: no cover - console-script shim
    sys.exit(main())
