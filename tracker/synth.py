"""The procedural scene behind the built-in sample sequence (``tracker.sample``): seeded, exact ground truth.

A textured elliptical target moves, turns (in-plane rotation), changes scale and passes behind a
foreground pole (partial occlusion); a second ellipse of the same colour and size (a distractor)
passes within a fraction of a target width; the cluttered background moves (camera pan and zoom);
brightness drifts and there is sensor noise. Ground truth is the axis-aligned box of the whole target
(occluded parts included), computed analytically from its centre, scale and angle, not from pixels.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

GENERATOR_VERSION = 1  # bump whenever the generated frames or boxes change: cached copies are rebuilt
WIDTH, HEIGHT = 640, 360
FRAMES = 300
DEFAULT_SEED = 0
AXES = (36.0, 25.0)  # target semi-axes in pixels at scale 1 (a 72 x 50 box)
OCCLUSION_FRAMES = (50, 90)  # the occluding pole crosses the target's centre within this span
DISTRACTOR_FRAMES = (100, 130)  # the distractor's closest approach lies within this span
POLE_SPEED = 4.5  # px/frame
SUPERSAMPLE = 1.5  # textures are drawn this much larger than scale 1, then warped down
WORLD = (1240, 620)  # background texture size: room for the camera's pan and zoom


# ---------------------------------------------------------------- the plan: every moving part, per frame


def _smooth(rng: np.random.Generator, t: np.ndarray,
            terms: tuple[tuple[float, float, float], ...]) -> np.ndarray:
    """A sum of sinusoids with random phases: ``terms`` = (amplitude, shortest period, longest period)."""
    out = np.zeros_like(t)
    for amp, lo, hi in terms:
        period, phase = rng.uniform(lo, hi), rng.uniform(0, 2 * np.pi)
        out += amp * np.sin(2 * np.pi * t / period + phase)
    return out


def half_extent(scale: np.ndarray | float, angle: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Half width and height of the axis-aligned box of the target ellipse, scaled and rotated."""
    a, b = AXES[0] * np.asarray(scale), AXES[1] * np.asarray(scale)
    c, s = np.cos(angle), np.sin(angle)
    return np.sqrt((a * c) ** 2 + (b * s) ** 2), np.sqrt((a * s) ** 2 + (b * c) ** 2)


def ellipse_boxes(params: np.ndarray) -> np.ndarray:
    """[x, y, w, h] boxes (0-based, spanning pixel centres x .. x + w - 1) of (cx, cy, scale, angle) rows."""
    cx, cy, scale, angle = np.asarray(params, dtype=np.float64).reshape(-1, 4).T
    hw, hh = half_extent(scale, angle)
    return np.stack([cx - hw + 0.5, cy - hh + 0.5, 2 * hw, 2 * hh], axis=1)


@dataclass
class Plan:
    """Per-frame parameters of the scene (pixel-index coordinates, radians)."""

    target: np.ndarray  # (n, 4): cx, cy, scale, angle
    distractor: np.ndarray  # (n, 4): cx, cy, scale, angle
    pole_x: np.ndarray  # (n,): left edge of the occluding pole
    pole_width: int
    camera: np.ndarray  # (n, 3): pan x, pan y (world pixels), zoom
    gain: np.ndarray  # (n,): brightness factor

    def __len__(self) -> int:
        return len(self.target)


def _target_path(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """The target's centre, scale and angle: smooth, fast enough to matter, always inside the frame."""
    cx = WIDTH / 2 + _smooth(rng, t, ((170, 230, 300), (45, 80, 110)))
    cy = HEIGHT / 2 + _smooth(rng, t, ((70, 150, 220), (25, 60, 90)))
    scale = np.exp(_smooth(rng, t, ((0.28, 180, 260), (0.06, 50, 70))))
    angle = _smooth(rng, t, ((0.65, 140, 200), (0.25, 55, 80)))
    return np.stack([cx, cy, scale, angle], axis=1)


def _pole(rng: np.random.Generator, target: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, int]:
    """A foreground pole (left edge per frame, width) crossing the target's centre in OCCLUSION_FRAMES.

    It is half the target's width and moves against the target's horizontal motion at POLE_SPEED (a
    foreground object: it moves faster than the background), crossing where the target's own speed is
    moderate, so the target is partly hidden for about 15 frames.
    """
    lo, hi = OCCLUSION_FRAMES
    vx = np.gradient(target[:, 0])
    span = np.arange(lo, hi + 1)
    cross = int(span[np.argmin(np.abs(np.abs(vx[span]) - 1.5) + rng.uniform(0, 0.3, len(span)))])
    direction = -np.sign(vx[cross]) or 1.0
    width = round(AXES[0] * target[cross, 2])
    centre = target[cross, 0] + POLE_SPEED * direction * (t - cross)
    return centre - width / 2, width


def _distractor(rng: np.random.Generator, target: np.ndarray, t: np.ndarray) -> np.ndarray:
    """An ellipse of the target's size passing it horizontally, its box 0.15-0.35 target widths away."""
    closest = int(rng.integers(DISTRACTOR_FRAMES[0], DISTRACTOR_FRAMES[1] + 1))
    _, cy, scale, angle = target[closest]
    hw, hh = half_extent(scale, angle)
    angle_d = _smooth(rng, t, ((0.6, 90, 150),))
    side = -1.0 if cy > HEIGHT / 2 else 1.0  # pass on the side with room
    offset = side * (hh + half_extent(scale, angle_d[closest])[1] + rng.uniform(0.15, 0.35) * 2 * hw)
    rel_x = rng.choice([-1.0, 1.0]) * rng.uniform(3.0, 4.0) * (t - closest)
    return np.stack([target[:, 0] + rel_x, target[:, 1] + offset, target[:, 2], angle_d], axis=1)


def make_plan(seed: int, frames: int = FRAMES) -> Plan:
    """The scene's motion for ``seed``; a shorter plan is a prefix of a longer one (same draws)."""
    if frames < 1:
        raise ValueError(f"a sample needs at least one frame, got {frames}")
    t = np.arange(max(frames, FRAMES), dtype=np.float64)
    rng = np.random.default_rng([seed, GENERATOR_VERSION])
    target = _target_path(rng, t)
    pole_x, pole_width = _pole(rng, target, t)
    distractor = _distractor(rng, target, t)
    camera = np.stack([_smooth(rng, t, ((160, 250, 350), (40, 70, 100))),
                       _smooth(rng, t, ((50, 200, 300), (15, 60, 90))),
                       np.exp(_smooth(rng, t, ((0.07, 150, 250),)))], axis=1)
    gain = 1 + _smooth(rng, t, ((0.12, 120, 200),))
    n = slice(0, frames)
    return Plan(target[n], distractor[n], pole_x[n], pole_width, camera[n], gain[n])


# ---------------------------------------------------------------- textures


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """One BGR colour (float32, 0-255) from OpenCV HSV (h in 0-180)."""
    pixel = np.array([[[h % 180, s, v]]], dtype=np.uint8)
    return cv2.cvtColor(pixel, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _value_noise(rng: np.random.Generator, size: tuple[int, int], cells: tuple[int, ...],
                 channels: int = 3) -> np.ndarray:
    """Multi-octave value noise in [0, 1] of ``size`` (w, h): random grids upsampled and summed."""
    w, h = size
    out = np.zeros((h, w, channels), np.float32)
    for cell in cells:
        grid = rng.random((h // cell + 2, w // cell + 2, channels), dtype=np.float32)
        up = cv2.resize(grid, ((w // cell + 2) * cell, (h // cell + 2) * cell), interpolation=cv2.INTER_CUBIC)
        out += up.reshape(up.shape[0], up.shape[1], channels)[:h, :w] * (cell ** 0.5)
    out -= out.min()
    return out / max(float(out.max()), 1e-6)


def _background(rng: np.random.Generator, target_hue: float) -> np.ndarray:
    """A cluttered world texture (uint8 BGR, WORLD size): muted noise and shapes, none of the target's hue."""
    w, h = WORLD
    base = _hsv(rng.uniform(0, 180), rng.uniform(30, 80), rng.uniform(90, 150))
    noise = _value_noise(rng, WORLD, (4, 16, 48, 128))
    world = base * (0.55 + 0.9 * noise)
    for _ in range(260):
        hue = (target_hue + rng.uniform(25, 155)) % 180
        colour = _hsv(hue, rng.uniform(40, 200), rng.uniform(50, 230)).tolist()
        x, y, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(4, 40))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.circle(world, (x, y), r, colour, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(world, (x, y), (x + int(rng.integers(4, 70)), y + r), colour, -1)
        else:
            end = (x + int(rng.integers(-80, 80)), y + int(rng.integers(-80, 80)))
            cv2.line(world, (x, y), end, colour, int(rng.integers(1, 6)), cv2.LINE_AA)
    world = cv2.GaussianBlur(world, (0, 0), 1.0)
    world *= 0.8 + 0.4 * _value_noise(rng, WORLD, (2, 8), channels=1)
    return np.clip(world, 0, 255).astype(np.uint8)


@dataclass
class Sprite:
    """A textured ellipse drawn SUPERSAMPLE times larger than at scale 1: colour and alpha, float32."""

    colour: np.ndarray
    alpha: np.ndarray

    @property
    def centre(self) -> tuple[float, float]:
        h, w = self.alpha.shape
        return (w - 1) / 2, (h - 1) / 2


def _sprite(rng: np.random.Generator, hue: float, eye: bool) -> Sprite:
    """An ellipse of hue ``hue``: wavy stripes, contrasting spots, a dark rim, maybe an off-centre eye."""
    a, b = AXES[0] * SUPERSAMPLE, AXES[1] * SUPERSAMPLE
    w, h = int(2 * a) + 8, int(2 * b) + 8
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base, dark = _hsv(hue, 215, 225), _hsv(hue + 8, 230, 110)
    theta, period = rng.uniform(0, np.pi), rng.uniform(9, 16) * SUPERSAMPLE
    wobble = 2.5 * period * _value_noise(rng, (w, h), (24,), channels=1)[..., 0]  # wavy, not periodic, bands
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta) + wobble) / period)
    colour = base + (dark - base) * stripes[..., None] ** 3
    colour *= (0.85 + 0.3 * _value_noise(rng, (w, h), (3, 9), channels=1))
    spot = _hsv(hue + 90, 180, 240).tolist()
    for _ in range(5):
        ang, rad = rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.7)
        centre = (int(w / 2 + rad * a * np.cos(ang)), int(h / 2 + rad * b * np.sin(ang)))
        cv2.circle(colour, centre, int(rng.integers(3, 7) * SUPERSAMPLE), spot, -1, cv2.LINE_AA)
    if eye:
        eye_at = (int(w / 2 + 0.55 * a), int(h / 2 - 0.2 * b))  # off-centre: shows which way it has turned
        cv2.circle(colour, eye_at, int(5 * SUPERSAMPLE), (20, 20, 20), -1, cv2.LINE_AA)
    shift = 16  # cv2.ellipse's fixed-point factor (shift=4) for sub-pixel centre and axes
    centre = (round((w - 1) / 2 * shift), round((h - 1) / 2 * shift))
    axes = (round(a * shift), round(b * shift))
    cv2.ellipse(colour, centre, axes, 0, 0, 360, dark.tolist(), int(2 * SUPERSAMPLE), cv2.LINE_AA, 4)
    alpha = np.zeros((h, w), np.uint8)
    inner = (round((a - 0.5) * shift), round((b - 0.5) * shift))  # the anti-aliased fill reaches 0.5 px out
    cv2.ellipse(alpha, centre, inner, 0, 0, 360, 255, -1, cv2.LINE_AA, 4)
    return Sprite(np.clip(colour, 0, 255), alpha.astype(np.float32) / 255)


def _pole_texture(rng: np.random.Generator, width: int) -> np.ndarray:
    """The foreground pole: dark, with vertical grain and a lit edge (float32 BGR, HEIGHT x width)."""
    grain = _value_noise(rng, (width, HEIGHT), (2, 6), channels=1)
    grain = cv2.resize(grain[:8], (width, HEIGHT), interpolation=cv2.INTER_LINEAR)[..., None]
    shade = 0.6 + 0.5 * np.sin(np.linspace(0.2, np.pi - 0.2, width))[None, :, None]
    return _hsv(rng.uniform(0, 180), rng.uniform(20, 90), 95) * (0.7 + 0.6 * grain) * shade


# ---------------------------------------------------------------- rendering


def _paste(frame: np.ndarray, sprite: Sprite, params: np.ndarray) -> np.ndarray | None:
    """Alpha-blend ``sprite`` at (cx, cy, scale, angle) into ``frame`` (float32); its alpha in frame coords.

    Returns the sprite's alpha over the whole frame (None when it lies outside the frame).
    """
    cx, cy, scale, angle = (float(v) for v in params)
    hw, hh = (float(v) for v in half_extent(scale, angle))
    x0, y0 = max(0, int(np.floor(cx - hw - 2))), max(0, int(np.floor(cy - hh - 2)))
    x1, y1 = min(WIDTH, int(np.ceil(cx + hw + 3))), min(HEIGHT, int(np.ceil(cy + hh + 3)))
    if x1 <= x0 or y1 <= y0:
        return None
    k = scale / SUPERSAMPLE
    c, s = np.cos(angle) * k, np.sin(angle) * k
    px, py = sprite.centre
    matrix = np.array([[c, -s, cx - x0 - (c * px - s * py)], [s, c, cy - y0 - (s * px + c * py)]])
    size = (x1 - x0, y1 - y0)
    colour = cv2.warpAffine(sprite.colour, matrix, size, flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(sprite.alpha, matrix, size, flags=cv2.INTER_LINEAR)[..., None]
    roi = frame[y0:y1, x0:x1]
    roi += (colour - roi) * alpha
    full = np.zeros((HEIGHT, WIDTH), np.float32)
    full[y0:y1, x0:x1] = alpha[..., 0]
    return full


@dataclass
class Scene:
    """Everything drawn, fixed for a seed: the world texture, the two sprites, the pole, the noise."""

    world: np.ndarray
    target: Sprite
    distractor: Sprite
    pole: np.ndarray
    noise: np.ndarray
    noise_offsets: np.ndarray


def make_scene(seed: int, plan: Plan) -> Scene:
    """The textures for ``seed``, drawn from their own random stream (the plan's motion is independent)."""
    rng = np.random.default_rng([seed, GENERATOR_VERSION, 1])
    hue = float(rng.uniform(0, 180))
    world = _background(rng, hue)
    target, distractor = _sprite(rng, hue, eye=True), _sprite(rng, hue, eye=False)
    pole = _pole_texture(rng, plan.pole_width)
    noise = rng.normal(0, 4.0, (HEIGHT + 32, WIDTH + 32, 3)).astype(np.float32)
    offsets = rng.integers(0, 33, (max(len(plan), FRAMES), 2))[: len(plan)]
    return Scene(world, target, distractor, pole, noise, offsets)


def _camera_view(world: np.ndarray, pan_x: float, pan_y: float, zoom: float) -> np.ndarray:
    """The frame the camera sees of the world texture (float32 BGR)."""
    ww, wh = WORLD
    x0 = ww / 2 + pan_x - (WIDTH / 2) / zoom
    y0 = wh / 2 + pan_y - (HEIGHT / 2) / zoom
    matrix = np.array([[zoom, 0.0, -x0 * zoom], [0.0, zoom, -y0 * zoom]])
    view = cv2.warpAffine(world, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)
    return view.astype(np.float32)


def render(scene: Scene, plan: Plan) -> Iterator[tuple[np.ndarray, float]]:
    """Each frame (uint8 BGR, HEIGHT x WIDTH) with the fraction of the target hidden by the pole."""
    for i in range(len(plan)):
        frame = _camera_view(scene.world, *plan.camera[i])
        _paste(frame, scene.distractor, plan.distractor[i])
        alpha = _paste(frame, scene.target, plan.target[i])
        x0 = int(np.floor(plan.pole_x[i]))
        lo, hi = max(0, x0), min(WIDTH, x0 + plan.pole_width)
        hidden = 0.0
        if hi > lo:
            frame[:, lo:hi] = scene.pole[:, lo - x0:hi - x0]
            if alpha is not None:
                hidden = float(alpha[:, lo:hi].sum() / max(alpha.sum(), 1e-6))
        ox, oy = scene.noise_offsets[i]
        frame = frame * plan.gain[i] + scene.noise[oy:oy + HEIGHT, ox:ox + WIDTH]
        yield np.clip(frame, 0, 255).astype(np.uint8), hidden


@dataclass
class Sample:
    """A generated sequence: frames (n, HEIGHT, WIDTH, 3) uint8 BGR, ground truth and attributes."""

    frames: np.ndarray
    boxes: np.ndarray  # (n, 4) 0-based x, y, w, h of the target
    occlusion: np.ndarray  # (n,) fraction of the target hidden by the pole
    distractor: np.ndarray  # (n, 4) the distractor's boxes


def generate(seed: int = DEFAULT_SEED, frames: int = FRAMES) -> Sample:
    """The sample sequence for ``seed``, in memory (``frames`` < FRAMES gives a prefix of the full one)."""
    plan = make_plan(seed, frames)
    scene = make_scene(seed, plan)
    images, hidden = zip(*render(scene, plan), strict=True)
    return Sample(np.stack(images), ellipse_boxes(plan.target), np.array(hidden),
                  ellipse_boxes(plan.distractor))
