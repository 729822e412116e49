"""A procedural re-ID dataset written in the exact Market-1501 layout: the toolkit's embedded default.

Identities are people drawn from small attribute palettes (clothing colours and patterns, trousers / shorts /
skirt, hair, bags, shoes, body shape), so different people collide on several attributes and only the combination
identifies someone. Every camera has its own colour cast, illumination, background clutter, viewpoint mix, scale
and blur, and images get random occlusions and pose jitter: raw pixels are dominated by the camera, not by the
person, so a raw-pixel ranking does poorly while a trained CNN can learn the identity cues.

Generation is deterministic given the seed (every random draw is seeded by (seed, what it is for)) and atomic: the
dataset is written into a temporary folder that is renamed into place only when complete.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple, Union

import cv2
import numpy as np

from .atomic import building_folder, is_complete

JPEG_QUALITY = 92

# Small palettes (RGB) so that people share attributes.
CLOTH_COLOURS = [(200, 30, 30), (30, 60, 180), (30, 140, 50), (230, 200, 40), (240, 240, 240), (30, 30, 30),
                 (130, 130, 130), (150, 70, 160), (240, 130, 30), (110, 70, 40)]
HAIR_COLOURS = [(20, 15, 10), (90, 55, 25), (200, 170, 90), (150, 150, 150)]
SKIN_TONES = [(235, 200, 170), (200, 150, 110), (140, 95, 60)]
PATTERNS = ("solid", "stripes", "checks", "logo")
LOWER_TYPES = ("trousers", "shorts", "skirt")
BAGS = ("none", "backpack", "handbag", "shoulder")


@dataclass
class Person:
    upper: Tuple[int, int, int]
    upper2: Tuple[int, int, int]
    pattern: str
    lower: Tuple[int, int, int]
    lower_type: str
    hair: Tuple[int, int, int]
    long_hair: bool
    skin: Tuple[int, int, int]
    bag: str
    bag_colour: Tuple[int, int, int]
    shoes: Tuple[int, int, int]
    height: float  # fraction of the image height
    width: float  # shoulder width relative to height
    head: float


@dataclass
class Camera:
    gain: np.ndarray  # per-channel colour cast
    brightness: float
    background: Tuple[int, int, int]
    clutter: int
    views: Tuple[float, float, float]  # probabilities of front / back / side
    scale: float
    blur: int


def make_person(rng: np.random.Generator) -> Person:
    c = lambda palette: palette[int(rng.integers(len(palette)))]  # noqa: E731
    return Person(upper=c(CLOTH_COLOURS), upper2=c(CLOTH_COLOURS), pattern=c(PATTERNS), lower=c(CLOTH_COLOURS[:7]),
                  lower_type=c(LOWER_TYPES), hair=c(HAIR_COLOURS), long_hair=bool(rng.random() < 0.4),
                  skin=c(SKIN_TONES), bag=c(BAGS), bag_colour=c(CLOTH_COLOURS[4:]), shoes=c(CLOTH_COLOURS[4:7]),
                  height=float(rng.choice([0.78, 0.85, 0.92])), width=float(rng.choice([0.22, 0.27, 0.32])),
                  head=float(rng.choice([0.11, 0.13])))


def make_camera(rng: np.random.Generator) -> Camera:
    views = rng.dirichlet([1.0, 1.0, 1.0])
    return Camera(gain=rng.uniform(0.6, 1.35, size=3), brightness=float(rng.uniform(-45, 45)),
                  background=tuple(int(v) for v in rng.integers(40, 220, size=3)), clutter=int(rng.integers(3, 12)),
                  views=tuple(float(v) for v in views), scale=float(rng.uniform(0.8, 1.05)),
                  blur=int(rng.choice([0, 0, 1, 2])))


def _background(rng, cam: Camera, h: int, w: int) -> np.ndarray:
    img = np.empty((h, w, 3), np.float32)
    img[:] = cam.background
    ramp = np.linspace(-30, 30, h, dtype=np.float32)[:, None, None] * rng.uniform(-1, 1)
    img += ramp
    for _ in range(cam.clutter):  # cluttered scene: boxes, poles, signs in random colours
        x0, y0 = int(rng.integers(-w // 4, w)), int(rng.integers(-h // 4, h))
        x1, y1 = x0 + int(rng.integers(4, w // 2)), y0 + int(rng.integers(4, h // 2))
        colour = rng.integers(0, 255, size=3).tolist()
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1)
    return img


def _fill_pattern(img, person: Person, box: Tuple[int, int, int, int], view: str, rng) -> None:
    x0, y0, x1, y1 = box
    cv2.rectangle(img, (x0, y0), (x1, y1), person.upper, -1)
    if person.pattern == "stripes":
        step = max(3, (y1 - y0) // 6)
        for y in range(y0 + step // 2, y1, step):
            cv2.line(img, (x0, y), (x1, y), person.upper2, max(1, step // 3))
    elif person.pattern == "checks":
        step = max(4, (x1 - x0) // 4)
        for yy in range(y0, y1, step):
            for xx in range(x0, x1, step):
                if ((xx - x0) // step + (yy - y0) // step) % 2 == 0:
                    cv2.rectangle(img, (xx, yy), (min(xx + step - 1, x1), min(yy + step - 1, y1)), person.upper2, -1)
    elif person.pattern == "logo" and view == "front":  # a chest print, only seen from the front
        cx, cy, r = (x0 + x1) // 2, y0 + (y1 - y0) // 3, max(2, (x1 - x0) // 5)
        cv2.circle(img, (cx, cy), r, person.upper2, -1)


def draw_person(img: np.ndarray, person: Person, cam: Camera, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    view = ("front", "back", "side")[int(rng.choice(3, p=np.asarray(cam.views)))]
    height = person.height * cam.scale * h * rng.uniform(0.93, 1.05)
    top = (h - height) / 2 + rng.uniform(-0.05, 0.05) * h
    cx = w / 2 + rng.uniform(-0.1, 0.1) * w
    half = person.width * height / 2 * (0.65 if view == "side" else 1.0)
    head_r = person.head * height / 2 * 1.1
    head_c = (int(cx), int(top + head_r))
    neck = top + 2 * head_r
    waist = top + 0.52 * height
    feet = top + height
    hip = half * 0.85
    # legs / lower garment
    swing = rng.uniform(-0.35, 0.35) * hip
    if person.lower_type == "skirt":
        pts = np.array([[cx - hip, waist], [cx + hip, waist], [cx + hip * 1.3, waist + 0.25 * height],
                        [cx - hip * 1.3, waist + 0.25 * height]], np.int32)
        cv2.fillPoly(img, [pts], person.lower)
        knee = waist + 0.25 * height
        for sx in (-1, 1):
            cv2.line(img, (int(cx + sx * hip * 0.5), int(knee)), (int(cx + sx * hip * 0.5 + sx * swing), int(feet)),
                     person.skin, max(2, int(hip * 0.45)))
    else:
        knee = waist + (0.22 if person.lower_type == "shorts" else 0.48) * height
        for sx in (-1, 1):
            leg_x = cx + sx * hip * 0.5
            thick = max(2, int(hip * 0.8))
            end = (int(leg_x + sx * swing), int(feet))
            mid = (int(leg_x + sx * swing * (knee - waist) / (feet - waist)), int(knee))
            cv2.line(img, (int(leg_x), int(waist)), mid, person.lower, thick)
            cv2.line(img, mid, end, person.skin if person.lower_type == "shorts" else person.lower, thick)
    for sx in (-1, 1):  # shoes
        cv2.ellipse(img, (int(cx + sx * (hip * 0.5 + swing)), int(feet)), (max(2, int(hip * 0.5)), 2), 0, 0, 360,
                    person.shoes, -1)
    # backpack behind the torso from the back, visible at the side
    if person.bag == "backpack" and view in ("back", "side"):
        off = 0 if view == "back" else half * 0.9
        cv2.rectangle(img, (int(cx - half * 0.8 + off), int(neck + 0.05 * height)),
                      (int(cx + half * 0.8 + off), int(waist - 0.02 * height)), person.bag_colour, -1)
    # torso with its pattern
    box = (int(cx - half), int(neck), int(cx + half), int(waist))
    if not (person.bag == "backpack" and view == "back"):
        _fill_pattern(img, person, box, view, rng)
    else:
        cv2.rectangle(img, (box[0], box[1]), (box[0] + 2, box[3]), person.upper, -1)
        cv2.rectangle(img, (box[2] - 2, box[1]), (box[2], box[3]), person.upper, -1)
    # arms
    arm = rng.uniform(-0.3, 0.3) * half
    for sx in (-1, 1):
        if view == "side" and sx == -1:
            continue
        sh = (int(cx + sx * half), int(neck + 2))
        hand = (int(cx + sx * (half + 2) + arm * sx), int(waist + 0.08 * height))
        cv2.line(img, sh, hand, person.upper, max(2, int(half * 0.35)))
        cv2.circle(img, hand, max(1, int(half * 0.18)), person.skin, -1)
    if person.bag in ("handbag", "shoulder"):
        side = 1 if person.bag == "handbag" else -1
        bx = int(cx + side * (half + 3))
        by = int(waist + (0.05 if person.bag == "handbag" else -0.1) * height)
        cv2.rectangle(img, (bx - 3, by - 4), (bx + 4, by + 6), person.bag_colour, -1)
    # head and hair
    cv2.circle(img, head_c, max(2, int(head_r)), person.skin, -1)
    if view == "back":
        cv2.circle(img, head_c, max(2, int(head_r)), person.hair, -1)
    else:
        cv2.ellipse(img, head_c, (max(2, int(head_r)), max(2, int(head_r))), 0, 180, 360, person.hair, -1)
    if person.long_hair:
        cv2.rectangle(img, (int(cx - head_r), head_c[1]), (int(cx + head_r), int(neck + 0.08 * height)),
                      person.hair, -1 if view == "back" else 2)


def _finish(img: np.ndarray, cam: Camera, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    if rng.random() < 0.3:  # occlusion: a pole or a passer-by's body part
        x = int(rng.integers(0, w))
        colour = rng.integers(0, 255, size=3).tolist()
        if rng.random() < 0.5:
            cv2.rectangle(img, (x, 0), (x + int(rng.integers(3, 10)), h), colour, -1)
        else:
            y = int(rng.integers(h // 2, h))
            cv2.ellipse(img, (x, y), (int(rng.integers(6, 16)), int(rng.integers(10, 30))), 0, 0, 360, colour, -1)
    img = img * cam.gain[None, None, :] * rng.uniform(0.9, 1.1) + cam.brightness + rng.normal(0, 6, img.shape)
    if cam.blur:
        k = 2 * cam.blur + 1
        img = cv2.GaussianBlur(img, (k, k), 0)
    return np.clip(img, 0, 255).astype(np.uint8)


def render(person: Person, cam: Camera, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    img = _background(rng, cam, height, width)
    draw_person(img, person, cam, rng)
    return _finish(img, cam, rng)


def _save(path: Path, rgb: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])


def dataset_folder(root: Union[str, Path], num_ids: int, num_cams: int, seed: int) -> Path:
    return Path(root) / f"Market-1501-synthetic-{num_ids}ids-{num_cams}cams-seed{seed}"


def generate(root: Union[str, Path] = "datasets", num_ids: int = 300, num_cams: int = 6, seed: int = 0,
             images_per_id_cam: int = 4, height: int = 128, width: int = 64, junk_per_cam: int = 10,
             background_per_cam: int = 10) -> Path:
    """Write the dataset under `root` (no-op when a complete copy exists) and return its folder."""
    if num_ids < 4 or num_cams < 2:
        raise ValueError(f"synthetic dataset needs num_ids >= 4 and num_cams >= 2, got {num_ids} and {num_cams}")
    final = dataset_folder(root, num_ids, num_cams, seed)
    if is_complete(final):
        return final
    params = dict(num_ids=num_ids, num_cams=num_cams, seed=seed, images_per_id_cam=images_per_id_cam,
                  height=height, width=width)
    with building_folder(final, json.dumps(params)) as tmp:
        _write(tmp, num_ids, num_cams, seed, images_per_id_cam, height, width, junk_per_cam, background_per_cam)
    return final


def _write(out: Path, num_ids: int, num_cams: int, seed: int, per: int, height: int, width: int,
           junk_per_cam: int, background_per_cam: int) -> None:
    for split in ("bounding_box_train", "bounding_box_test", "query", "gt_bbox"):
        (out / split).mkdir()
    cams = [make_camera(np.random.default_rng([seed, 1, c])) for c in range(num_cams)]
    frame: Dict[int, int] = {c: 0 for c in range(num_cams)}

    def name(pid: int, cam: int, box: int) -> str:
        frame[cam] += 1
        pid_text = "-1" if pid < 0 else f"{pid:04d}"
        return f"{pid_text}_c{cam + 1}s1_{frame[cam]:06d}_{box:02d}.jpg"

    num_train = num_ids // 2
    for pid in range(1, num_ids + 1):
        rng = np.random.default_rng([seed, 2, pid])
        person = make_person(rng)
        seen = sorted(rng.choice(num_cams, size=int(rng.integers(2, min(num_cams, 4) + 1)), replace=False))
        train = pid <= num_train
        for cam in seen:
            irng = np.random.default_rng([seed, 3, pid, int(cam)])
            images = [render(person, cams[cam], irng, height, width) for _ in range(per)]
            if train:
                for im in images:
                    _save(out / "bounding_box_train" / name(pid, cam, 1), im)
                continue
            query_name = name(pid, cam, 0)
            _save(out / "query" / query_name, images[0])
            _save(out / "gt_bbox" / query_name, images[0])
            for _ in range(2):  # hand-drawn boxes of the same person and camera: multi-query groups
                _save(out / "gt_bbox" / name(pid, cam, 0), render(person, cams[cam], irng, height, width))
            for im in images[1:]:
                _save(out / "bounding_box_test" / name(pid, cam, 1), im)
    for cam in range(num_cams):
        rng = np.random.default_rng([seed, 4, cam])
        for _ in range(background_per_cam):  # false detections: scene only
            _save(out / "bounding_box_test" / name(0, cam, 1), _finish(_background(rng, cams[cam], height, width),
                                                                        cams[cam], rng))
        for _ in range(junk_per_cam):  # junk: a fragment of some test person, badly cropped
            person = make_person(rng)
            im = render(person, cams[cam], rng, height * 2, width)[int(rng.integers(0, height)):][:height]
            _save(out / "bounding_box_test" / name(-1, cam, 1), np.ascontiguousarray(im))
