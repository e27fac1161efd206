"""Images made in code for tests: every mode, hostile files, the real photos.

Shared by the model, handler, local-stack and hostile-input tests so each case is built one way only.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from PIL import Image

PHOTOS = Path(__file__).parent / "fixtures" / "images"
CAT_LABELS = {"Egyptian cat", "tabby", "tiger cat"}


def photo_bytes(name: str) -> bytes:
    return (PHOTOS / name).read_bytes()


def photo(name: str) -> Image.Image:
    with Image.open(PHOTOS / name) as img:
        return img.convert("RGB")


def preset_pixels(transforms, img: Image.Image):
    """The uint8 pixels (1, H, W, 3) torchvision's published transforms for a weights preset make of an image: its
    whole forward (resize with the preset's interpolation, centre crop, to float, normalise), normalisation undone."""
    import numpy as np

    mean, std = (np.asarray(v, dtype=np.float64)[:, None, None] for v in (transforms.mean, transforms.std))
    chw = transforms(img).double().numpy() * std + mean
    return np.rint(chw * 255).astype(np.uint8).transpose(1, 2, 0)[None]


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid 1-bit PNG of width x height pixels that compresses to a few KB (a decompression bomb)."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def text_bomb_png(inflated: int = 2_000_000, after_idat: bool = False) -> bytes:
    """A small PNG with a zTXt chunk (before IDAT) that inflates to `inflated` bytes: past Pillow's MAX_TEXT_CHUNK
    (1 MB), Image.open itself raises ValueError. After IDAT (before IEND), Image.load raises it instead."""
    png = encode(Image.new("RGB", (8, 8)), "PNG")
    ztxt = _png_chunk(b"zTXt", b"comment\x00\x00" + zlib.compress(b"a" * inflated, 9))
    if after_idat:
        iend = len(png) - 12  # IEND: its length, type and CRC end the file
        return png[:iend] + ztxt + png[iend:]
    return png[:33] + ztxt + png[33:]  # after the signature (8) and IHDR (25)


def png_with_colour_profiles(count: int, inflated: int = 1 << 20, after_iend: int = 0) -> bytes:
    """A 1x1 PNG with `count` iCCP chunks (colour profiles) before its IDAT, each `inflated` zero bytes deflated (about
    1000:1), and `after_iend` more after its IEND, where no reader looks. The PNG format allows one iCCP chunk."""
    png = encode(Image.new("RGB", (1, 1), (200, 120, 40)), "PNG")
    iccp = _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(b"\x00" * inflated, 9))
    return png[:33] + iccp * count + png[33:] + iccp * after_iend  # after the signature (8) and IHDR (25)


def png_with_bad_exif_tags(count: int) -> bytes:
    """A 4x4 PNG whose eXIf block holds an orientation (6) then `count` tags that each claim 60,000 bytes the file
    does not have: Pillow warns once per such tag, as it skips it."""
    ifd = [struct.pack("<HHIHH", 0x0112, 3, 1, 6, 0)]
    ifd += [struct.pack("<HHII", 0x9000 + i, 7, 60_000, 8) for i in range(count)]
    tiff = b"II*\x00" + struct.pack("<IH", 8, len(ifd)) + b"".join(ifd) + b"\x00" * 4
    png = encode(Image.new("RGB", (4, 2), (10, 200, 30)), "PNG")
    return png[:33] + _png_chunk(b"eXIf", tiff) + png[33:]  # after the signature (8) and IHDR (25)


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (32, 32), color) for color in ("red", "green", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def with_exif_orientation(img: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", quality=90, exif=exif.tobytes())


def polyglot() -> bytes:
    """Starts like a JPEG, is really HTML/JS: must never be treated as an image."""
    return b"\xff\xd8\xff\xe0<html><script>alert(1)</script></html>" + b"\x00" * 64


def many_scans_jpeg(scans: int, size: int = 64) -> bytes:
    """A progressive JPEG (Pillow's 10 scans) whose last scan, an AC refinement pass of a flat image (a few dozen
    bytes), is repeated until it has `scans`: libjpeg warns of the bogus progression and decodes every scan over
    the whole image, so a few KB cost as much CPU as hundreds of full passes."""
    data = encode(Image.new("RGB", (size, size), (120, 60, 30)), "JPEG", progressive=True, quality=90)
    assert data.count(b"\xff\xda") == 10 and data.endswith(b"\xff\xd9")
    last = data.rindex(b"\xff\xda")  # a flat image's entropy data holds no 0xFF: the last scan runs to EOI
    return data[:-2] + data[last:-2] * (scans - 10) + b"\xff\xd9"


def baseline_many_scans_jpeg(scans: int, size: int = 64) -> bytes:
    """A baseline JPEG (one scan holding all three components) whose scan is repeated until it has `scans`: libjpeg
    reads such a file in one pass and stops at the second scan with an error."""
    data = encode(Image.new("RGB", (size, size), (120, 60, 30)), "JPEG", quality=90)
    assert data.count(b"\xff\xda") == 1 and data.endswith(b"\xff\xd9")
    scan = data[data.index(b"\xff\xda") : -2]
    return data[:-2] + scan * (scans - 1) + b"\xff\xd9"


def many_scans_mpo(scans: int, size: int = 64) -> bytes:
    """An MPO (a JPEG followed by more pictures, as phones write them; Pillow names the format apart) whose first
    picture has `scans`, its last progressive pass repeated as in many_scans_jpeg."""
    img = Image.new("RGB", (size, size), (120, 60, 30))
    data = encode(img, "MPO", save_all=True, append_images=[img], progressive=True, quality=90)
    eoi = data.index(b"\xff\xd9")  # the first picture's end
    last = data.rindex(b"\xff\xda", 0, eoi)
    assert data[:eoi].count(b"\xff\xda") == 10
    return data[:eoi] + data[last:eoi] * (scans - 10) + data[eoi:]


def palette_png_with_long_trns(alphas: int = 300, colours: int = 16, trns: bytes | None = None) -> bytes:
    """A 4-bit palette PNG whose tRNS chunk has `alphas` entries (or is `trns`): more than its palette, or than any
    palette (256), which the PNG spec forbids and libpng and browsers ignore."""
    palette = bytes(range(3 * colours))
    rows = b"".join(b"\x00" + bytes((x + y) % 256 for x in range(16)) for y in range(32))
    ihdr = struct.pack(">IIBBBBB", 32, 32, 4, 3, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"PLTE", palette)
        + _png_chunk(
            b"tRNS", bytes(range(256)) * (alphas // 256) + bytes(range(alphas % 256)) if trns is None else trns
        )
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def grey_png_with_trns(depth: int, samples: list[int], key: int) -> bytes:
    """A one-row greyscale PNG of `depth` bits (1, 2, 4 or 8) holding `samples`, whose tRNS chunk makes the grey
    level `key` (at that depth) transparent, as optimisers such as oxipng write black-and-transparent graphics."""
    bits = "".join(format(sample, f"0{depth}b") for sample in samples)
    bits += "0" * (-len(bits) % 8)
    row = bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))
    ihdr = struct.pack(">IIBBBBB", len(samples), 1, depth, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"tRNS", struct.pack(">H", key))
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" + row))
        + _png_chunk(b"IEND", b"")
    )


def rgb_png_with_trns(depth: int, pixels: list[tuple[int, int, int]], key: tuple[int, int, int]) -> bytes:
    """A one-row RGB PNG of `depth` bits (8 or 16) per sample holding `pixels`, whose tRNS chunk makes the colour
    `key` (at that depth) transparent."""
    sample = {8: "B", 16: "H"}[depth]
    row = b"".join(struct.pack(f">3{sample}", *pixel) for pixel in pixels)
    ihdr = struct.pack(">IIBBBBB", len(pixels), 1, depth, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"tRNS", struct.pack(">3H", *key))
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" + row))
        + _png_chunk(b"IEND", b"")
    )


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: max(16, int(len(data) * keep))]


def normalize(batch, pre):
    """The model's own input normalisation in numpy ((1, H, W, 3) uint8 -> (1, 3, H, W) float32), to compare
    against torchvision's transforms and to feed eager reference models."""
    import numpy as np

    std = np.asarray(pre.std, dtype=np.float32)[:, None, None]
    mean = np.asarray(pre.mean, dtype=np.float32)[:, None, None]
    return ((batch[0].transpose(2, 0, 1).astype(np.float32) / 255.0 - mean) / std)[None]
