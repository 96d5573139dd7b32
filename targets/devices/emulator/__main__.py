"""``python -m mobilevit_deploy.targets.devices.emulator``: the daemon without the rest of the CLI."""

import argparse
import sys

from mobilevit_deploy.errors import DeployError

from .process import add_arguments, serve

parser = argparse.ArgumentParser(prog="mvd-emulator", description=__doc__)
add_arguments(parser)
try:
    sys.exit(serve(parser.parse_args()))
except DeployError as err:
    print(f"emulator: error: {err}", file=sys.stderr)
    sys.exit(2)
