"""Reading a dataset folder: the export's layout, kohya's dataset.toml, and the wrong folders.

These need no torch: the reader only reads names and text.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from faceset.train.dataset import read_dataset
from faceset.train.errors import DatasetError


def test_export_layout_gives_trigger_class_repeats_and_captions(make_dataset) -> None:
    root = make_dataset(images=3, repeats=5)

    dataset = read_dataset(root)

    assert dataset.root == root
    assert dataset.trigger == "ohwx"
    assert dataset.class_tokens == "ohwx man"
    (concept,) = dataset.train
    assert (concept.name, concept.repeats, len(concept.examples)) == ("5_ohwx man", 5, 3)
    assert concept.examples[0].caption == "ohwx man, photo 0"
    assert dataset.num_train_images == 15
    assert not dataset.has_masks
    assert dataset.tag_frequency() == {
        "5_ohwx man": {"ohwx man": 3, "photo 0": 1, "photo 1": 1, "photo 2": 1}
    }
    assert dataset.dirs() == {"5_ohwx man": {"n_repeats": 5, "img_count": 3}}


@pytest.mark.parametrize("subfolder", [False, True], ids=["masks", "masks-per-concept"])
def test_masks_are_found_beside_img_or_per_concept(make_dataset, subfolder: bool) -> None:
    root = make_dataset(masks=True, mask_subfolder=subfolder)

    dataset = read_dataset(root)

    assert dataset.has_masks
    example = dataset.train[0].examples[0]
    assert example.mask is not None
    assert example.mask.name == example.image.stem + ".png"


def test_no_masked_loss_drops_the_masks(make_dataset) -> None:
    dataset = read_dataset(make_dataset(masks=True), masks=False)

    assert not dataset.has_masks


def test_an_image_without_a_mask_in_a_masked_dataset_is_refused(make_dataset) -> None:
    root = make_dataset(masks=True)
    (root / "masks" / "0001-face.png").unlink()

    with pytest.raises(
        DatasetError, match=r"2 of 3 images have a mask, but 0001-face.png has none"
    ):
        read_dataset(root)


def test_dataset_toml_sets_repeats_class_resolution_and_caption_extension(
    make_dataset,
) -> None:
    root = make_dataset(repeats=2)
    # As kohya: with a TOML file the folder name sets neither repeats nor class.
    (root / "dataset.toml").write_text(
        '[general]\ncaption_extension = ".txt"\n\n'
        "[[datasets]]\nresolution = 768\n\n"
        f'  [[datasets.subsets]]\n  image_dir = "{root / "img" / "2_ohwx man"}"\n'
        '  num_repeats = 7\n  class_tokens = "sks woman"\n'
    )

    dataset = read_dataset(root)

    assert dataset.resolution == 768
    assert dataset.class_tokens == "sks woman"
    assert dataset.train[0].repeats == 7
    assert dataset.train[0].examples[0].caption == "ohwx man, photo 0"


def test_dataset_toml_without_caption_extension_reads_kohyas_caption_default(
    make_dataset,
) -> None:
    root = make_dataset()
    (root / "dataset.toml").write_text(
        '[[datasets]]\n[[datasets.subsets]]\nimage_dir = "img/2_ohwx man"\nclass_tokens = "ohwx man"\n'
    )

    dataset = read_dataset(root)

    # kohya's CLI default is .caption; with none, the class tokens are the caption.
    assert dataset.train[0].examples[0].caption == "ohwx man"


def test_dataset_moved_after_export_still_reads_its_images(make_dataset, tmp_path: Path) -> None:
    root = make_dataset()
    (root / "dataset.toml").write_text(
        '[general]\ncaption_extension = ".txt"\n[[datasets]]\n[[datasets.subsets]]\n'
        f'image_dir = "{tmp_path / "elsewhere" / "img" / "2_ohwx man"}"\nclass_tokens = "ohwx man"\n'
    )

    dataset = read_dataset(root)

    assert dataset.train[0].folder == root / "img" / "2_ohwx man"


def test_reg_folder_of_images_uses_the_class_word(
    make_dataset, write_images, tmp_path: Path
) -> None:
    reg = tmp_path / "reg"
    write_images(reg, 4)

    dataset = read_dataset(make_dataset(), reg=reg)

    (concept,) = dataset.reg
    assert (concept.class_tokens, len(concept.examples), concept.is_reg) == ("man", 4, True)
    assert concept.examples[0].caption == "man"


def test_reg_folder_in_kohya_layout(make_dataset, write_images, tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    write_images(reg / "1_man", 2)

    dataset = read_dataset(make_dataset(), reg=reg)

    assert [(c.name, c.repeats, c.is_reg) for c in dataset.reg] == [("1_man", 1, True)]


def test_empty_caption_is_refused_naming_the_file(make_dataset) -> None:
    root = make_dataset()
    caption = root / "img" / "2_ohwx man" / "0002-face.txt"
    caption.write_text("\n")

    with pytest.raises(DatasetError, match=f"caption {caption} is empty"):
        read_dataset(root)


def test_img_folder_names_its_parent(make_dataset) -> None:
    root = make_dataset()

    with pytest.raises(DatasetError) as e:
        read_dataset(root / "img")

    assert str(e.value) == (
        f"{root / 'img'} is the img/ folder; pass the dataset folder above it: {root}"
    )


def test_concept_folder_names_the_dataset_folder(make_dataset) -> None:
    root = make_dataset()

    with pytest.raises(DatasetError) as e:
        read_dataset(root / "img" / "2_ohwx man")

    assert str(e.value) == (
        f"{root / 'img' / '2_ohwx man'} is one image folder; pass the dataset folder: {root}"
    )


def test_folder_above_the_dataset_names_it(make_dataset, tmp_path: Path) -> None:
    root = make_dataset()

    with pytest.raises(DatasetError) as e:
        read_dataset(tmp_path)

    assert str(e.value) == f"{tmp_path} is not a dataset folder, but {root} is: pass that one"


def test_unrelated_folder_is_not_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()

    with pytest.raises(DatasetError, match="is not a faceset or kohya dataset"):
        read_dataset(tmp_path / "photos")


def test_img_without_concept_folders_says_how_to_name_them(tmp_path: Path) -> None:
    (tmp_path / "img" / "faces").mkdir(parents=True)

    with pytest.raises(DatasetError, match=r"no <repeats>_<trigger> <class> folder"):
        read_dataset(tmp_path)
