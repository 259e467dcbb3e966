"""RapidOcr: post-processing with a stand-in detector, then the real PP-OCRv4 models on
generated images (skipped where the ocr extra or the models are not installed)."""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from deid.ocr import OcrEngine, TextBox, get_engine
from deid.ocr.rapid import RapidOcr

COVERED = 0.95  # a line is found when this share of its ink is inside the boxes

needs_models = pytest.mark.skipif(
    not RapidOcr.is_available(),
    reason="RapidOcr needs the ocr extra and the models: pip install 'deid-dicom[ocr]' && "
    "pip install --no-deps rapidocr-onnxruntime==1.4.4",
)


@pytest.fixture(scope="module")
def engine() -> RapidOcr:
    if not RapidOcr.is_available():
        pytest.skip("RapidOcr is not installed (ocr extra and models)")
    return RapidOcr()


@pytest.fixture(scope="module")
def reader() -> RapidOcr:
    if not RapidOcr.is_available():
        pytest.skip("RapidOcr is not installed (ocr extra and models)")
    return RapidOcr(recognize=True)


class _FakeDetector:
    """Stands in for the detection session: returns a fixed probability map."""

    def __init__(self, probability: Any) -> None:
        self.probability = probability
        self.shapes: list[tuple[int, ...]] = []

    def run(self, _outputs: Any, feeds: dict[str, Any]) -> list[Any]:
        (tensor,) = feeds.values()
        self.shapes.append(tensor.shape)
        return [self.probability[np.newaxis, np.newaxis]]


@needs_models
def test_post_processing_unclips_pads_and_drops_tall_boxes() -> None:
    probability = np.zeros((64, 96), np.float32)
    probability[10:14, 20:60] = 0.8  # a text kernel: 4 x 40 (5 x 41 after the 2x2 dilation)
    probability[20:60, 70:76] = 0.6  # 40 rows: taller than 10 % of 64 rows, but <= keep_height
    probability[30:31, 5:9] = 0.9  # mean 0.36 over its 2 x 5 dilated region
    fake = _FakeDetector(probability)
    image = np.zeros((64, 96), np.uint8)
    strict = RapidOcr(pad=0, keep_height=16, box_threshold=0.5, border=0)
    strict._detector = fake
    assert fake.shapes == []
    # unclip: 5 * 41 * 1.6 / (2 * (5 + 41)) = 3.565 on each side; the 51-row box is dropped
    (box,) = strict.detect(image)
    assert fake.shapes == [(1, 3, 64, 96)]
    assert (box.left, box.top, box.width, box.height) == (16, 6, 49, 13)
    assert box.confidence == pytest.approx(0.8 * 160 / 205, abs=1e-6)
    kept = RapidOcr(pad=2, border=0)
    kept._detector = fake
    assert [(b.left, b.top, b.width, b.height) for b in kept.detect(image)] == [
        (14, 4, 53, 17),
        (63, 13, 21, 51),
        (1, 26, 13, 10),
    ]


@needs_models
def test_a_crop_is_framed_only_on_its_outer_sides_and_read_unresampled() -> None:
    # a 40 x 70 crop whose left side is the image's edge: 16 replicated columns there and
    # 10 more to reach 96; 24 rows below it to reach 64 (no side of those is outer)
    probability = np.zeros((64, 96), np.float32)
    probability[10:15, 30:70] = 0.9  # in the framed input: rows 10..14, columns 4..43 of the crop
    framed = RapidOcr(pad=0, border=16)
    framed._detector = fake = _FakeDetector(probability)
    crop = np.zeros((40, 70), np.uint8)
    (box,) = framed.detect_crop(crop, (True, False, False, False))
    assert fake.shapes == [(1, 3, 64, 96)]
    # 6 x 41 after dilation, grown by 6*41*1.6/94 = 4.19, shifted back by 26 columns, clipped
    assert (box.left, box.top, box.right, box.bottom) == (0, 5, 50, 21)
    # an inner crop (no outer side): framed on the right and bottom only, up to 32 x 96
    fake.probability = np.zeros((64, 96), np.float32)
    assert framed.detect_crop(np.zeros((40, 70), np.uint8), (False,) * 4) == []
    assert fake.shapes[-1] == (1, 3, 64, 96)
    assert framed.detect_crop(np.zeros((30, 70), np.uint8), (False,) * 4) == []
    assert fake.shapes[-1] == (1, 3, 32, 96)
    # every side outer: what detect reads (the border all round, resized to the model size)
    assert framed.detect_crop(np.zeros((40, 70), np.uint8), (True,) * 4) == []
    assert fake.shapes[-1] == (1, 3, 64, 96)  # 72 x 102 resized


@needs_models
def test_a_crop_finds_the_line_detect_finds(engine: RapidOcr) -> None:
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.new("L", (400, 160), 0)
    ImageDraw.Draw(canvas).text(
        (120, 60), "DOE^JANE 1234", fill=255, font=ImageFont.load_default(size=20)
    )
    image = np.asarray(canvas)
    rows, columns = np.nonzero(image)
    crop = image[40:104, 96:320]  # an inner place: 24 columns and 20 rows of margin
    (box,) = engine.detect_crop(crop, (False,) * 4)
    assert box.left + 96 <= columns.min() and box.top + 40 <= rows.min()
    assert box.right + 96 > columns.max() and box.bottom + 40 > rows.max()


@needs_models
def test_crops_read_together_find_what_each_finds_alone(
    engine: RapidOcr, textimages: ModuleType
) -> None:
    image = textimages.make("US", 11).image
    crops = [
        (image[0:48, 0:96], (True, True, False, False)),
        (image[0:48, 96:192], (False, True, False, False)),  # the same size: one batch
        (image[40:104, 0:160], (True, False, False, False)),
        (image, (True, True, True, True)),  # every side outer: read as detect reads it
    ]
    together = engine.detect_crops(crops)
    assert together == [engine.detect_crop(crop, outer) for crop, outer in crops]
    assert together[-1] == engine.detect(image)
    assert any(together)
    assert engine.detect_crops([]) == []


@needs_models
def test_boxes_come_back_in_input_pixels() -> None:
    probability = np.zeros((32, 64), np.float32)
    probability[8:12, 8:40] = 0.9
    half = RapidOcr(scale=0.5, pad=0, border=0)
    half._detector = fake = _FakeDetector(probability)
    (box,) = half.detect(np.zeros((64, 128), np.uint8))
    assert fake.shapes == [(1, 3, 32, 64)]
    # model box 8..41 x 8..13 (dilated) grown by 5*33*1.6/76 = 3.47, doubled, rounded outwards
    assert (box.left, box.top, box.right, box.bottom) == (9, 9, 89, 33)


@needs_models
def test_the_border_frames_the_image_and_boxes_are_shifted_back() -> None:
    probability = np.zeros((96, 128), np.float32)
    probability[16:21, 20:60] = 0.9  # in the framed image: rows 0..4 of the input
    framed = RapidOcr(pad=0, border=16)
    framed._detector = fake = _FakeDetector(probability)
    (box,) = framed.detect(np.zeros((64, 96), np.uint8))
    assert fake.shapes == [(1, 3, 96, 128)]
    # 6 x 41 after dilation, grown by 6*41*1.6/94 = 4.19, shifted back by 16 and clipped
    assert (box.left, box.top, box.right, box.bottom) == (0, 0, 50, 11)


@needs_models
def test_engine_attributes(engine: RapidOcr, reader: RapidOcr) -> None:
    assert isinstance(engine, OcrEngine) and isinstance(reader, OcrEngine)
    assert (engine.name, engine.recognizes, reader.recognizes) == ("rapidocr", False, True)
    assert repr(engine) == "RapidOcr(recognize=False, max_side=2048, scale=1.0, pad=3)"
    assert isinstance(get_engine("rapidocr", recognize=True), RapidOcr)


@needs_models
def test_rejects_other_dtypes_and_shapes(engine: RapidOcr) -> None:
    with pytest.raises(TypeError, match="uint8"):
        engine.detect(np.zeros((32, 32), np.uint16))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(rows, columns, 3\)"):
        engine.detect(np.zeros((32, 32, 4), np.uint8))


@needs_models
@pytest.mark.parametrize(
    ("kind", "seed", "scale"),
    [
        ("CT", 0, 1.0),
        ("CT", 5, 1.0),
        ("DX", 1, 0.25),
        ("MONO1", 2, 0.5),
        ("US", 3, 1.0),
    ],
)
def test_every_line_is_covered(
    engine: RapidOcr, textimages: ModuleType, kind: str, seed: int, scale: float
) -> None:
    item = textimages.make(kind, seed, scale=scale)
    assert len(item.lines) >= 8
    boxes = [(b.left, b.top, b.width, b.height) for b in engine.detect(item.image)]
    coverage = {line.text: textimages.ink_coverage(line, boxes) for line in item.lines}
    missed = [text for text, share in coverage.items() if share < COVERED]
    assert missed == []


@needs_models
def test_the_clock_is_found_on_every_cine_frame(engine: RapidOcr, textimages: ModuleType) -> None:
    item = textimages.make_us_cine(7, frames=3)
    clocks = [line for line in item.lines if line.text.count(":") == 2]
    assert len(clocks) == 3 and len({line.text for line in clocks}) == 3
    for frame, image in enumerate(item.frames()):
        boxes = [(b.left, b.top, b.width, b.height) for b in engine.detect(image)]
        (clock,) = [line for line in clocks if line.frame == frame]
        assert textimages.ink_coverage(clock, boxes) >= COVERED


@needs_models
@pytest.mark.parametrize(("kind", "seed"), [("CT", 100), ("CT", 101), ("CT", 102), ("US", 100)])
def test_no_box_on_text_free_images(
    engine: RapidOcr, textimages: ModuleType, kind: str, seed: int
) -> None:
    assert engine.detect(textimages.make(kind, seed, text=False).image) == []


@needs_models
def test_recognition_reads_a_rendered_line(reader: RapidOcr) -> None:
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.new("RGB", (320, 64), (0, 0, 0))
    ImageDraw.Draw(canvas).text(
        (16, 16), "HELLO WORLD 2024", fill=(255, 255, 0), font=ImageFont.load_default(size=24)
    )
    pixels = np.asarray(canvas)
    rows, columns = np.nonzero(pixels.max(axis=2))
    (box,) = reader.detect(pixels)
    assert box.text is not None
    assert box.text.replace(" ", "") == "HELLOWORLD2024"  # the model often drops spaces
    assert 0.9 < box.confidence <= 1.0
    assert "HELLO" not in repr(box)
    assert box.left <= columns.min() and box.top <= rows.min()
    assert box.right > columns.max() and box.bottom > rows.max()


@needs_models
def test_threads_share_one_engine(engine: RapidOcr, textimages: ModuleType) -> None:
    images = [textimages.make("CT", seed).image for seed in (0, 1)]
    expected = [engine.detect(image) for image in images]
    results: dict[int, list[TextBox]] = {}

    def work(index: int) -> None:
        results[index] = engine.detect(images[index % 2])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[i] for i in range(4)] == expected * 2


@needs_models
def test_a_batch_finds_what_one_by_one_finds(engine: RapidOcr, textimages: ModuleType) -> None:
    cine = textimages.make_us_cine(8, frames=3).frames()
    other = textimages.make("CT", 8).image  # another size: its own batch
    images = [cine[0], other, cine[1], cine[2]]
    assert engine.detect_many(images) == [engine.detect(image) for image in images]
    assert engine.detect_many([]) == []


@needs_models
def test_crops_are_sized_to_be_read_without_resampling(engine: RapidOcr) -> None:
    assert engine.reads_crops is True
    # with the 16-pixel border on each side, whole multiples of 32
    assert engine.crop_size(10, 10) == (32, 32)
    assert engine.crop_size(32, 100) == (32, 128)
    assert engine.crop_size(33, 97) == (64, 128)
    assert RapidOcr(scale=0.5).crop_size(10, 10) == (10, 10)  # resampled anyway
    assert RapidOcr(max_side=64).crop_size(40, 40) == (40, 40)  # 96 > 64: shrunk anyway
    # read with detect_crop: the border only on the outer sides (the image's edges)
    assert engine.crop_size(10, 10, (False,) * 4) == (32, 32)
    assert engine.crop_size(10, 10, (True, False, False, False)) == (32, 16)
    assert engine.crop_size(33, 97, (False, True, False, True)) == (64, 128)
    assert engine.crop_size(33, 97, (True,) * 4) == engine.crop_size(33, 97)
