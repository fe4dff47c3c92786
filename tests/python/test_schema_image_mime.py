# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""`Schema.add_image(mime=)` accepts image types only (python/README.md "Image fields").

`add_image("img", mime="text/html")` (or "banana/split", or "image/svg+xml") used to be
accepted, so a field declared as images could say it held anything. It now raises
InvalidArgumentError naming the field, the type and the accepted list; add_blob still
takes any well-formed MIME type.
"""

from __future__ import annotations

import pytest

import dreamdb

ACCEPTED = ["image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/tiff",
            "image/avif", "image/heic", "image/heif", "image/jxl", "image/jp2", "image/x-exr",
            "image/x-portable-anymap", "image/x-portable-bitmap", "image/x-portable-graymap",
            "image/x-portable-pixmap"]


@pytest.mark.parametrize("mime", ACCEPTED + ["IMAGE/JPEG", "image/png; q=1"])
def test_add_image_accepts_image_types(mime: str):
    s = dreamdb.Schema().add_image("img", mime=mime)
    assert s.field("img").mime == mime


def test_add_image_default_is_png():
    assert dreamdb.Schema().add_image("img").field("img").mime == "image/png"


@pytest.mark.parametrize("mime", ["text/html", "application/octet-stream", "banana/split",
                                  "image/svg+xml", "image/", "image/pngx", "png", "",
                                  "video/mp4", " image/png"])
def test_add_image_refuses_non_image_mime(mime: str):
    with pytest.raises(dreamdb.InvalidArgumentError) as e:
        dreamdb.Schema().add_image("img", mime=mime)
    message = str(e.value)
    assert "image field 'img'" in message and "is not an image type" in message, message
    assert "image/png, image/jpeg" in message and "use add_blob" in message, message
    assert isinstance(e.value, dreamdb.Error)


def test_add_blob_still_takes_any_mime():
    s = dreamdb.Schema().add_blob("doc", mime="text/html").add_blob("svg", mime="image/svg+xml")
    assert s.field("doc").mime == "text/html" and s.field("svg").mime == "image/svg+xml"


def test_refused_image_field_leaves_the_schema_unchanged():
    s = dreamdb.Schema().add_int("n")
    with pytest.raises(dreamdb.InvalidArgumentError):
        s.add_image("img", mime="text/plain")
    assert [f.name for f in s.fields] == ["n"]
