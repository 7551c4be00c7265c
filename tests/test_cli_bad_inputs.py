"""Every bad input to ``diffguide solve`` / ``sample`` / ``demo`` is refused before any work: exit
code 2, one line on stderr, nothing written; unusual but valid images read in their true range."""
import pickle

import numpy as np
import pytest
import tifffile
from PIL import Image

from diffguide.cli import main
from diffguide.cli.common import write_outputs
from diffguide.cli.images import read_image


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def refused(tmp_path, capsys, argv):
    """Run ``argv``; assert exit 2, exactly one ``diffguide CMD: error:`` line, and no new files."""
    before = tree(tmp_path)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, (argv, err)
    assert len(err) == 1 and err[0].startswith(f"diffguide {argv[0]}: error: "), err
    assert tree(tmp_path) == before
    return err[0]


@pytest.fixture
def digit(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(np.full((16, 16), 128, np.uint8)).save(path)
    return path


def solve(tmp_path, *extra, image=None):
    return ["solve", "--prior", "digits", "--operator", "blur:sigma=1", "--steps", "2",
            "--out", str(tmp_path / "out"), *(["--input", str(image)] if image else []), *extra]


def bad_image(tmp_path, kind):
    path = tmp_path / f"bad_{kind}"
    if kind == "corrupt.png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    elif kind == "text.png":
        path.write_text("not an image\n")
    elif kind == "empty.png":
        path.write_bytes(b"")
    elif kind == "truncated.jpg":
        Image.fromarray(np.full((16, 16), 9, np.uint8)).save(path, format="JPEG")
        path.write_bytes(path.read_bytes()[:60])
    elif kind == "float_above.tif":
        Image.fromarray(np.full((16, 16), 2.5, np.float32)).save(path, format="TIFF")
    elif kind == "float_nan.tif":
        Image.fromarray(np.full((16, 16), np.nan, np.float32)).save(path, format="TIFF")
    elif kind == "negative_int.tif":
        Image.fromarray(np.full((16, 16), -5, np.int32)).save(path, format="TIFF")
    elif kind == "folder":
        path.mkdir()
    elif kind == "corrupt.tif":
        path.write_bytes(b"II*\x00" + b"\xff" * 40)
    elif kind == "stack.tif":
        tifffile.imwrite(path, np.zeros((6, 16, 16), np.uint8))
    return path


IMAGES = ["corrupt.png", "text.png", "empty.png", "truncated.jpg", "float_above.tif", "float_nan.tif",
          "negative_int.tif", "folder", "missing.png", "corrupt.tif", "stack.tif"]


@pytest.mark.parametrize("kind", IMAGES)
def test_bad_images_are_refused(tmp_path, capsys, kind):
    refused(tmp_path, capsys, solve(tmp_path, image=bad_image(tmp_path, kind)))


def bad_measurement(tmp_path, kind):
    path = tmp_path / f"y_{kind}.npy"
    good = np.zeros((1, 16, 16), np.float32)
    arrays = {"int": good.astype(np.int64), "bool": good.astype(bool), "complex": good.astype(np.complex64),
              "string": np.full((1, 16, 16), "a"), "nan": good + np.nan, "inf": good + np.inf,
              "huge": good + 1e7, "shape": np.zeros((1, 8, 8), np.float32), "empty_array": np.zeros((0,), np.float32)}
    if kind in arrays:
        np.save(path, arrays[kind])
    elif kind == "object":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif kind == "npz":
        with open(path, "wb") as f:
            np.savez(f, y=good)
    elif kind == "pickle":
        path.write_bytes(pickle.dumps(good))
    elif kind == "empty_file":
        path.write_bytes(b"")
    return path


MEASUREMENTS = ["int", "bool", "complex", "string", "nan", "inf", "huge", "shape", "empty_array", "object",
                "npz", "pickle", "empty_file"]


@pytest.mark.parametrize("kind", MEASUREMENTS)
def test_bad_measurements_are_refused(tmp_path, capsys, kind):
    refused(tmp_path, capsys, solve(tmp_path, "--measurement", str(bad_measurement(tmp_path, kind))))


def test_an_existing_file_as_out_is_refused_and_kept(tmp_path, capsys, digit):
    (tmp_path / "out").write_text("keep me")
    refused(tmp_path, capsys, solve(tmp_path, image=digit))
    assert (tmp_path / "out").read_text() == "keep me"


@pytest.mark.parametrize("out", ["", "   ", "file/sub", "/proc/diffguide-out", "a\0b", "x" * 300])
def test_bad_out_is_refused(tmp_path, capsys, digit, out):
    (tmp_path / "file").write_text("keep me")
    target = out if out.startswith("/") or not out.strip() or "\0" in out else str(tmp_path / out)
    argv = solve(tmp_path, image=digit)
    argv[argv.index("--out") + 1] = target
    refused(tmp_path, capsys, argv)
    refused(tmp_path, capsys, ["sample", "--prior", "digits", "--n", "1", "--steps", "2", "--out", target])
    refused(tmp_path, capsys, ["demo", "--quick", "--out", target])
    assert (tmp_path / "file").read_text() == "keep me"


@pytest.mark.parametrize("extra", [["--steps", "0"], ["--steps", "1000000000"], ["--seed", "-1"],
                                   ["--seed", str(2**64)], ["--particles", "0"], ["--particles", "-3"],
                                   ["--sigma-y", "nan"], ["--sigma-y", "inf"], ["--sigma-y", "0"]])
def test_bad_solve_counts_are_refused(tmp_path, capsys, digit, extra):
    refused(tmp_path, capsys, solve(tmp_path, *extra, image=digit))


@pytest.mark.parametrize("extra", [["--n", "0"], ["--n", "-1"], ["--steps", "0"], ["--seed", "-1"],
                                   ["--n", "1000000000"]])
def test_bad_sample_counts_are_refused(tmp_path, capsys, extra):
    refused(tmp_path, capsys, ["sample", "--prior", "digits", "--steps", "2", "--out", str(tmp_path / "out"), *extra])


@pytest.mark.parametrize("extra", [["--guidance", "cfg:scale=3"], ["--guidance", "nope", "--class-label", "1"],
                                   ["--guidance", "cfg:scale=x", "--class-label", "1"],
                                   ["--guidance", "cfg:tau=1", "--class-label", "1"],
                                   ["--guidance", "cfg++:scale=2", "--class-label", "1"],
                                   ["--guidance", "cfg++", "--class-label", "1", "--solver", "heun"],
                                   ["--guidance", "cfg", "--class-label", "1", "--guidance-interval", "3"],
                                   ["--guidance", "cfg", "--class-label", "1", "--guidance-interval", "2,1"],
                                   ["--guidance-interval", "0.1,2"], ["--guidance", "pag:mode=skip"],
                                   ["--guidance", "seg:blur_sigma=0"], ["--guidance", "pag:layers=down_blocks.0"]])
def test_bad_guidance_is_refused(tmp_path, capsys, extra):
    refused(tmp_path, capsys, ["sample", "--prior", "digits", "--steps", "2", "--out", str(tmp_path / "out"), *extra])


def test_a_huge_image_is_refused_by_its_memory_estimate(tmp_path, capsys):
    path = tmp_path / "big.png"
    Image.new("L", (4000, 4000), 128).save(path)
    line = refused(tmp_path, capsys, solve(tmp_path, image=path))
    assert "memory" in line and "available" in line


def test_a_16_bit_png_keeps_its_range(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((16, 16), 32768, np.uint16)).save(path)
    assert read_image(path, 1, (0.0, 1.0)).mean().item() == pytest.approx(0.5, abs=1e-4)
    assert read_image(path, 3, (-1.0, 1.0)).shape == (1, 3, 16, 16)


def write_16_bit_rgb_png(path, rgb: np.ndarray):
    """A 16-bit RGB PNG (which Pillow cannot write): IHDR, one IDAT of unfiltered big-endian rows, IEND."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width, _ = rgb.shape
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_a_16_bit_colour_png_reads_at_8_bits_with_a_note(tmp_path, capsys):
    path = tmp_path / "deep.png"
    write_16_bit_rgb_png(path, np.full((16, 16, 3), 32768, np.uint16))
    assert read_image(path, 3, (0.0, 1.0)).mean().item() == pytest.approx(0.5, abs=3e-3)
    assert "16-bit colour PNG is read at 8 bits" in capsys.readouterr().err
    Image.fromarray(np.full((16, 16), 32768, np.uint16)).save(path)
    read_image(path, 3, (0.0, 1.0))
    assert "8 bits" not in capsys.readouterr().err


@pytest.mark.parametrize("dtype, value, expected", [(np.float32, 0.25, 0.25), (np.uint16, 1000, 1000 / 65535),
                                                    (np.int32, 2**30, 2**30 / (2**31 - 1)), (np.uint8, 51, 0.2)])
def test_tiffs_read_in_their_true_range(tmp_path, dtype, value, expected):
    path = tmp_path / "x.tif"
    Image.fromarray(np.full((16, 16), value, dtype)).save(path, format="TIFF")
    assert read_image(path, 1, (0.0, 1.0)).mean().item() == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("dtype, value, expected", [(np.uint32, 3 * 2**30, 0.75), (np.int16, 16384, 16384 / 32767),
                                                    (np.float64, 0.25, 0.25), (np.float16, 0.5, 0.5)])
def test_tiffs_pillow_cannot_read_keep_their_type(tmp_path, dtype, value, expected):
    path = tmp_path / "x.tif"
    tifffile.imwrite(path, np.full((16, 16), value, dtype))
    assert read_image(path, 1, (0.0, 1.0)).mean().item() == pytest.approx(expected, rel=1e-3)


def test_a_float_rgb_tiff_reads_as_colour(tmp_path):
    path = tmp_path / "x.tif"
    tifffile.imwrite(path, np.stack([np.full((16, 16), v, np.float32) for v in (0.0, 0.5, 1.0)], axis=-1),
                     photometric="rgb")
    assert read_image(path, 3, (0.0, 1.0))[0].mean(dim=(1, 2)).tolist() == pytest.approx([0.0, 0.5, 1.0])


@pytest.mark.parametrize("mode", ["LA", "P", "1", "I;16", "RGBA"])
def test_unusual_modes_read(tmp_path, mode):
    path = tmp_path / "x.png"
    Image.new(mode, (16, 16)).save(path)
    assert read_image(path, 1, (0.0, 1.0)).shape == (1, 1, 16, 16)


def test_a_16_bit_png_and_a_float_measurement_solve(tmp_path, capsys):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((16, 16), 40000, np.uint16)).save(path)
    assert main(solve(tmp_path, image=path)) == 0
    np.save(tmp_path / "y.npy", np.zeros((1, 16, 16), np.float64))
    assert main(solve(tmp_path, "--measurement", str(tmp_path / "y.npy"))) == 0


def test_a_failed_write_leaves_no_folder_it_created(tmp_path):
    def fail(path):
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_outputs(tmp_path / "a" / "b" / "out", {"x.json": {"a": 1}, "y.png": fail})
    assert tree(tmp_path) == []
