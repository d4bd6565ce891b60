from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trainers.coco_voc import (
    COCO_TO_VOC,
    VOC_CLASSES,
    CocoImage,
    decode_rle,
    encode_rle,
    instance_mask,
    read_coco,
    semantic_mask,
)


def test_voc_mapping_follows_torchvision_references() -> None:
    assert len(VOC_CLASSES) == 21 and len(COCO_TO_VOC) == 20
    assert COCO_TO_VOC[1] == VOC_CLASSES.index("person")
    assert COCO_TO_VOC[5] == VOC_CLASSES.index("aeroplane")
    assert COCO_TO_VOC[72] == VOC_CLASSES.index("tvmonitor")
    assert 10 not in COCO_TO_VOC  # traffic light is not a VOC class


def test_rle_decodes_column_major_runs_starting_with_zeros() -> None:
    # 2x3 image, column-major: (0,0)=0 (1,0)=1 | (0,1)=1 (1,1)=1 | (0,2)=0 (1,2)=0
    mask = decode_rle({"size": [2, 3], "counts": [1, 3, 2]})
    assert mask.tolist() == [[False, True, False], [True, True, False]]
    assert decode_rle({"size": [2, 2], "counts": "04"}).all()  # runs [0, 4] compressed


def test_compressed_rle_round_trips_random_masks() -> None:
    gen = torch.Generator().manual_seed(0)
    for shape in ((7, 5), (64, 48), (1, 1), (3, 300)):
        for density in (0.0, 0.1, 0.5, 1.0):
            mask = torch.rand(shape, generator=gen) < density
            rle = encode_rle(mask)
            assert isinstance(rle["counts"], str)
            assert torch.equal(decode_rle(rle), mask)


def test_rle_with_wrong_run_total_is_refused() -> None:
    with pytest.raises(ValueError, match="cover 5 pixels but its size is 2x3"):
        decode_rle({"size": [2, 3], "counts": [1, 4]})


def test_polygon_fills_its_inside() -> None:
    mask = instance_mask([[2, 2, 8, 2, 8, 8, 2, 8]], 12, 12)
    assert mask[5, 5] and not mask[0, 0] and not mask[10, 10]
    assert 36 <= int(mask.sum()) <= 49


def test_overlaps_become_ignore_and_categories_are_remapped() -> None:
    person = {"category_id": 1, "segmentation": [[0, 0, 5, 0, 5, 5, 0, 5]]}
    dog_mask = torch.zeros(10, 10, dtype=torch.bool)
    dog_mask[3:8, 3:8] = True
    dog = {"category_id": 18, "segmentation": encode_rle(dog_mask)}
    target = semantic_mask(CocoImage("x.jpg", 10, 10, (person, dog)))
    assert target[1, 1] == VOC_CLASSES.index("person")
    assert target[7, 7] == VOC_CLASSES.index("dog")
    assert target[4, 4] == 255  # covered by both
    assert target[9, 0] == 0


def _coco_file(tmp_path: Path, annotations: list[dict]) -> Path:
    path = tmp_path / "instances_train2017.json"
    path.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "height": 10, "width": 10},
                   {"id": 2, "file_name": "b.jpg", "height": 10, "width": 10}],
        "annotations": annotations, "categories": []}))
    return path


def test_read_coco_keeps_voc_instances_and_drops_small_images(tmp_path: Path) -> None:
    square = [[0, 0, 9, 0, 9, 9, 0, 9]]
    path = _coco_file(tmp_path, [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": square, "area": 81.0},
        {"id": 2, "image_id": 1, "category_id": 10, "segmentation": square, "area": 81.0},
        {"id": 3, "image_id": 2, "category_id": 10, "segmentation": square, "area": 81.0},
    ])
    images = read_coco(path, min_area=50)
    assert [i.file_name for i in images] == ["a.jpg"]  # b.jpg has only a traffic light
    assert [a["id"] for a in images[0].annotations] == [1]
    assert len(read_coco(path, min_area=0)) == 2


def test_coco_without_segmentation_names_the_file(tmp_path: Path) -> None:
    path = _coco_file(tmp_path, [{"id": 7, "image_id": 1, "category_id": 1,
                                  "bbox": [0, 0, 5, 5], "area": 25.0}])
    with pytest.raises(ValueError, match=r"instances_train2017.json: annotation 7 .* no "
                                         r"'segmentation'"):
        read_coco(path, min_area=0)


def test_not_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "instances_train2017.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"instances_train2017\.json: not valid JSON"):
        read_coco(path, min_area=0)


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept:DeprecationWarning")
def test_masks_match_pycocotools_on_the_generated_coco_data(tmp_path: Path) -> None:
    """Every annotation of the synthetic COCO set (polygons, compressed and uncompressed RLE)
    gives, pixel for pixel, the mask of the official COCO API's ``annToMask``."""
    from pycocotools.coco import COCO

    from trainers.synthetic_formats import write_coco

    root = write_coco(tmp_path / "coco", train_images=12, val_images=0, size=64)
    path = root / "annotations" / "instances_train2017.json"
    api = COCO(str(path))
    kinds = set()
    for ann in api.loadAnns(api.getAnnIds()):
        image = api.loadImgs(ann["image_id"])[0]
        seg = ann["segmentation"]
        kinds.add("polygon" if isinstance(seg, list) else type(seg["counts"]).__name__)
        ours = instance_mask(seg, image["height"], image["width"])
        assert torch.equal(ours, torch.from_numpy(api.annToMask(ann)).bool()), ann["id"]
    assert kinds == {"polygon", "str", "list"}  # all three forms were compared
    for image in read_coco(path, min_area=0):
        target = semantic_mask(image)
        anns = list(image.annotations)
        masks = [torch.from_numpy(api.annToMask(a)).bool() for a in anns]
        covered = torch.stack(masks).sum(dim=0)
        for a, m in zip(anns, masks, strict=True):
            alone = m & (covered == 1)
            assert (target[alone] == COCO_TO_VOC[a["category_id"]]).all()
        assert (target[covered > 1] == 255).all() and (target[covered == 0] == 0).all()
