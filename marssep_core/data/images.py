"""Class pictures: Noto Color Emoji glyphs rendered with Pillow."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

# Noto Color Emoji is a bitmap (CBDT) font: Pillow can only load it at its native strike size.
NOTO_STRIKE_SIZE = 109


def render_emoji(font_path: Path, char: str, size: int = 224, font_size: int = NOTO_STRIKE_SIZE) -> Image.Image | None:
    """Render ``char`` centred on a white ``size`` x ``size`` RGB canvas.

    Returns ``None`` when the font has no glyph for ``char`` (it would draw the empty
    "tofu" box), so a class without a real picture is reported rather than given a blank one.
    """
    font = ImageFont.truetype(str(font_path), font_size)
    if not _has_glyph(font, char):
        return None
    left, top, right, bottom = font.getbbox(char)
    glyph = Image.new("RGBA", (right - left, bottom - top), (255, 255, 255, 0))
    ImageDraw.Draw(glyph).text((-left, -top), char, font=font, embedded_color=True)
    scale = 0.8 * size / max(glyph.size)
    glyph = glyph.resize((max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))), Image.LANCZOS)
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(glyph, ((size - glyph.width) // 2, (size - glyph.height) // 2), glyph)
    return canvas


def _draw(font: ImageFont.FreeTypeFont, char: str) -> bytes:
    image = Image.new("RGBA", (2 * NOTO_STRIKE_SIZE, 2 * NOTO_STRIKE_SIZE), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((0, 0), char, font=font, embedded_color=True)
    return image.tobytes()


def _has_glyph(font: ImageFont.FreeTypeFont, char: str) -> bool:
    # A missing codepoint draws glyph 0 (.notdef), the same as an unassigned private-use
    # character, which no emoji font defines.
    return _draw(font, char) != _draw(font, "\ue000")
