"""Hostile image files: every command says what is wrong (exit 2, one line, no traceback), a
folder source skips the file and carries on, and nothing large is decoded before the header
is checked. Image bytes are fuzzed with hypothesis."""

from __future__ import annotations

import os
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from consentry.camera.sources import FolderSource
from consentry.cli import main
from consentry.errors import ImageError
from consentry.vision.image_io import read_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.fixture
def bad_images(tmp_path, astronaut):
    folder = tmp_path / "bad"
    folder.mkdir()
    cv2.imwrite(str(folder / "one_pixel.png"), np.zeros((1, 1, 3), np.uint8))
    (folder / "bomb.png").write_bytes(png_header(40000, 40000))
    (folder / "wide.png").write_bytes(png_header(20000, 20000))
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_bytes(b"not an image at all")
    ok, jpeg = cv2.imencode(".jpg", astronaut[..., ::-1])
    (folder / "truncated.jpg").write_bytes(jpeg.tobytes()[:2000])
    os.mkfifo(folder / "fifo.png")
    return folder


NAMES = ["one_pixel.png", "bomb.png", "wide.png", "empty.jpg", "text.jpg", "truncated.jpg", "fifo.png"]


@pytest.mark.parametrize("name", NAMES)
def test_every_command_refuses_a_bad_image_with_one_clear_line(bad_images, tmp_path, capsys, name):
    path = str(bad_images / name)
    home = ["--home", str(tmp_path / "home")]
    assert main([*home, "keys", "init"]) == 0
    capsys.readouterr()
    for argv in (["detect", path], ["compare", path, path], [*home, "identify", path]):
        start = time.monotonic()
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("consentry: error: ") and "Traceback" not in err, (argv, err)
        assert time.monotonic() - start < 30, "a bad image must be refused, not decoded"
    code = main([*home, "enroll", "--name", "X", "--consent", "deploy/consent/door.txt", "--yes", path])
    assert code == 2 and "nothing was stored" in capsys.readouterr().err


def test_the_header_is_checked_before_anything_is_decoded(bad_images):
    start = time.perf_counter()
    with pytest.raises(ImageError, match="pixels"):
        read_image(bad_images / "wide.png")
    assert time.perf_counter() - start < 5.0  # decoding would allocate 1.2 GB and take seconds


def test_a_folder_source_skips_bad_files_and_carries_on(bad_images, astronaut):
    cv2.imwrite(str(bad_images / "zz_good.png"), astronaut[..., ::-1])
    frames = list(FolderSource(bad_images).frames())
    assert len(frames) == 1 and frames[0].shape == astronaut.shape


def test_run_over_a_folder_of_bad_images_ends_cleanly(bad_images, tmp_path, capsys):
    code = main(["--home", str(tmp_path / "h"), "run", "--source", f"dir:{bad_images}", "--exit-at-end",
                 "--frames", "20"])
    assert code == 0


def test_eval_on_unreadable_images_says_what_was_wrong(bad_images, tmp_path, capsys):
    (bad_images / "fifo.png").unlink()
    (bad_images / "labels.csv").write_text("file,identity\none_pixel.png,a\ntext.jpg,a\nempty.jpg,b\n")
    assert main(["eval", "--dataset", str(bad_images), "--json"]) == 2
    err = capsys.readouterr().err
    assert "could not be read" in err and "Traceback" not in err


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096), prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM"]))
def test_fuzzed_image_bytes_give_an_image_or_an_image_error(tmp_path, data, prefix):
    path = tmp_path / "fuzz.img"
    path.write_bytes(prefix + data)
    try:
        rgb = read_image(path)
    except ImageError:
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and min(rgb.shape[:2]) >= 16


def test_identify_reports_a_stranger_as_unknown_and_nothing_else(tmp_path, astronaut, capsys):
    import json

    image = tmp_path / "stranger.png"
    cv2.imwrite(str(image), astronaut[..., ::-1])
    home = ["--home", str(tmp_path / "home")]
    assert main([*home, "keys", "init"]) == 0
    capsys.readouterr()
    assert main([*home, "identify", str(image), "--json"]) == 0
    faces = json.loads(capsys.readouterr().out)["faces"]
    assert faces == [{"decision": "unknown", "subject": None, "distance": None}]
    assert main([*home, "identify", str(image), "--json", "--debug"]) == 0
    assert "box" in json.loads(capsys.readouterr().out)["faces"][0]
