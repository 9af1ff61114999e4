import time
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from faceset.generate.engine import Engine, Request

@pytest.mark.parametrize("family", ["sd15", "flux2-klein", "zimage", "qwen-image", "flux1"])
def test_probe(family, sd15_base, dit_bases):
    base = sd15_base if family == "sd15" else dit_bases(family)
    e = Engine(str(base), family)
    size = 64 if family == "sd15" else 32
    r = Request("photo of ohwx man", "", 3, 4, 3.0, size, size, "model", 1.0)
    t = time.time(); img = e.render(r); t1 = time.time() - t
    t = time.time(); out = e.img2img(r, img, 0.5); t2 = time.time() - t
    again = e.img2img(r, img, 0.5)
    print(family, img.size, out.size, t1, t2, np.abs(np.asarray(out, int) - np.asarray(img)).mean())
    assert np.array_equal(np.asarray(out), np.asarray(again))
