"""The local runtime: template.yaml's resources in an AWS emulator, its HTTP API on a local
port and its event sources as pollers, calling the same handlers Lambda calls. Not deployed.

Like Lambda, which puts a layer on the path at /opt/python, the shared layer's code is made
importable here.
"""

import sys
from pathlib import Path

_LAYER = str(Path(__file__).resolve().parent.parent / "layers" / "common")
if _LAYER not in sys.path:
    sys.path.insert(0, _LAYER)
