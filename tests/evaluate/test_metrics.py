"""The likeness numbers on real faces: same person above strangers, copying shows as Paste."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from faceset.evaluate import metrics
from faceset.select import face_model

pytestmark = pytest.mark.skipif(
    not face_model.available(), reason="faceset[identity] (dlib, yuface) is not installed"
)


@pytest.fixture(scope="module")
def embedded(photos: dict[str, list[Image.Image]]) -> dict[str, np.ndarray]:
    from faceset.evaluate.encoder import largest_face

    out = {}
    for group, images in photos.items():
        faces = [largest_face(image) for image in images]
        assert all(faces), f"no face found in a {group} photo"
        out[group] = np.stack([f.embedding for f in faces if f is not None])
    return out


def test_the_same_person_scores_higher_than_different_people(
    embedded: dict[str, np.ndarray],
) -> None:
    train, holdout = embedded["train"], embedded["holdout"]
    base = metrics.baseline(train, holdout)

    same = metrics.score_output(embedded["new"][0], train, holdout)
    strangers = [metrics.score_output(e, train, holdout) for e in embedded["strangers"]]

    print(f"baseline {base}, same {same}, strangers {strangers}")
    assert all(same.sim_target > s.sim_target + 0.05 for s in strangers)
    assert all(s.sim_target < base.real_vs_real - 0.05 for s in strangers)
    assert same.sim_target > 0.9 * base.real_vs_real


def test_a_copy_of_a_training_photo_shows_the_copying_gap(embedded: dict[str, np.ndarray]) -> None:
    train, holdout = embedded["train"], embedded["holdout"]
    base = metrics.baseline(train, holdout)

    copy = metrics.score_output(embedded["train"][2], train, holdout)  # the photo itself
    new = metrics.score_output(embedded["new"][0], train, holdout)

    assert copy.sim_ref == pytest.approx(1.0)
    assert copy.nearest == 2
    assert copy.paste > new.paste
    assert copy.paste > base.real_paste
    copying = metrics.summarise([copy, copy], base)
    honest = metrics.summarise([new, new], base)
    assert copying.copying is not None
    assert copying.copying > 0.9
    assert honest.copying is not None
    assert honest.copying < 0.5
    choice = metrics.choose(
        ["step 1000", "step 500"], [copying, honest], base, min_faces=0.5, max_copying=0.5
    )
    assert choice.index == 1
    assert "to a copy of a training photo's" in choice.why_not[0]


def test_baseline_on_known_vectors() -> None:
    train = np.array([[1.0, 0.0], [0.0, 1.0]])
    holdout = np.array([[1.0, 0.0], [1.0, 1.0]])

    base = metrics.baseline(train, holdout)

    s = 1 / np.sqrt(2)  # cosine between (1, 0) and (1, 1)
    assert base.real_vs_real == pytest.approx((1 + 0 + s + s) / 4)
    # held-out 0: max to training 1, mean to the other held-out s; held-out 1: s and s.
    assert base.real_paste == pytest.approx(((1 - s) + (s - s)) / 2)
    assert base.copy_paste == pytest.approx(1 - base.real_vs_real)


def test_outputs_without_a_face_are_failures_not_low_scores() -> None:
    base = metrics.Baseline(0.9, 0.0, 0.1, 3, 3)
    good = metrics.OutputScore(sim_target=0.9, sim_ref=0.92, nearest=0)

    mostly_lost = metrics.summarise([good, None, None, None], base)
    fine = metrics.summarise([metrics.OutputScore(0.8, 0.82, 0)] * 4, base)

    assert (mostly_lost.found, mostly_lost.outputs, mostly_lost.sim_target) == (1, 4, 0.9)
    choice = metrics.choose(["a", "b"], [mostly_lost, fine], base, min_faces=0.5, max_copying=0.5)
    assert choice.index == 1
    assert choice.why_not == {0: "a face in only 1 of 4 outputs (needs 50%)"}
    assert "a (0.900)" in choice.reason  # the higher SimTarget passed over, and why


def test_nothing_is_picked_when_no_checkpoint_shows_faces() -> None:
    base = metrics.Baseline(0.9, 0.0, 0.1, 3, 3)

    choice = metrics.choose(
        ["step 5"], [metrics.summarise([None, None], base)], base, min_faces=0.5, max_copying=0.5
    )

    assert choice.index is None
    assert (
        choice.reason == "no checkpoint passed: step 5: a face in only 0 of 2 outputs (needs 50%)"
    )


def test_diversity_is_zero_for_repeats_and_grows_with_difference() -> None:
    assert metrics.diversity([[0b1010, 0b1010, 0b1010]]) == 0
    assert metrics.diversity([[0, (1 << 64) - 1]]) == 1
    assert metrics.diversity([[5]]) is None
