"""``python -m faceset.train ARGS`` is ``faceset train ARGS``; it is what accelerate launches:

accelerate launch -m faceset.train jane --base MODEL --for sdxl
"""

import sys

from faceset.cli import app

app(args=["train", *sys.argv[1:]], prog_name="python -m faceset.train")
