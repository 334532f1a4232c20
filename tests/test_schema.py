import io

import numpy as np
import pytest
from PIL import Image

from vitonprep import codecs
from vitonprep.schema import FIELDS, FIELDS_BY_MEMBER, Kind, check_key, sample_key, split_member


def test_fields_are_unique_and_dot_free():
    names = [f.name for f in FIELDS]
    assert len(names) == len(set(names))
    assert all("." not in n for n in names)
    assert len(FIELDS_BY_MEMBER) == len(FIELDS)


def test_stableviton_batch_keys_are_fields():
    for name in ("image", "agn", "agn_mask", "cloth", "cloth_mask", "image_densepose", "gt_cloth_warped_mask"):
        assert any(f.name == name for f in FIELDS), name


def test_sample_keys():
    assert sample_key("00891_00", "00891_00", "paired") == "00891_00"
    assert sample_key("00891_00", "01430_00", "unpaired") == "00891_00__01430_00"
    with pytest.raises(ValueError, match="no dots"):
        check_key("a.b")
    with pytest.raises(ValueError):  # a final newline split a pairs-list line in two (re's "$" accepted it)
        check_key("abc\n")
    assert split_member("dir/00001_00.agn_mask.png") == ("00001_00", "agn_mask.png")


def _png(arr, mode):
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="PNG")
    return buf.getvalue()


def test_every_field_round_trips_through_its_codec():
    from vitonprep.assemble import encode_value

    rng = np.random.default_rng(0)
    values = {
        Kind.RGB: rng.integers(0, 255, (8, 6, 3), dtype=np.uint8),
        Kind.MASK: rng.random((8, 6)) > 0.5,
        Kind.LABELS: rng.integers(0, 20, (8, 6), dtype=np.uint8),
        Kind.KEYPOINTS: {"version": 1.3, "people": []},
        Kind.META: {"a": 1},
        Kind.CAPTION: {"version": 1, "source": "garment-tags-file:t.csv", "caption": "model is wearing top",
                       "tags": {"item": "top"}, "approximate": False},
    }
    for f in FIELDS:
        data = encode_value(f, values[f.kind])
        # webdataset passes the member with a leading dot
        out = codecs.decode_member("." + f.member, data)
        if f.kind in (Kind.MASK, Kind.LABELS) or (f.kind is Kind.RGB and f.ext == "png"):
            np.testing.assert_array_equal(out, values[f.kind])
        elif f.kind is Kind.RGB:
            assert out.shape == (8, 6, 3) and out.dtype == np.uint8
        else:
            assert out == values[f.kind]
    assert codecs.decode_member(".unknown.bin", b"x") is None


def test_strict_decoders_refuse_coercion():
    grey = np.array([[0, 255], [128, 0]], np.uint8)
    with pytest.raises(codecs.DecodeError, match="not binary"):
        codecs.decode_mask(_png(grey, "L"))
    with pytest.raises(codecs.DecodeError, match="single-channel"):
        codecs.decode_mask(_png(np.zeros((2, 2, 3), np.uint8), "RGB"))
    with pytest.raises(codecs.DecodeError, match="label map"):
        codecs.decode_labels(_png(np.zeros((2, 2, 3), np.uint8), "RGB"))
    with pytest.raises(codecs.DecodeError, match="expected an RGB"):
        codecs.decode_rgb(_png(grey, "L"))
    with pytest.raises(codecs.DecodeError, match="cannot decode"):
        codecs.decode_rgb(b"not an image")


def test_webdataset_reads_masks_and_labels_as_arrays(vitonhd_shards):
    """The webdataset gotcha: a generic decoder would turn masks and palette PNGs into RGB."""
    from vitontrain.data.shards import check_sample, decoded_samples, shard_urls

    samples = list(decoded_samples(shard_urls(vitonhd_shards)))
    assert len(samples) == 3
    for s in samples:
        check_sample(s)
        assert s["agn_mask"].dtype == bool and s["agn_mask"].ndim == 2
        assert s["parse"].dtype == np.uint8 and s["parse"].ndim == 2 and s["parse"].max() <= 19
        assert s["image"].shape == (1024, 768, 3)


def test_our_pngs_read_back_the_same_in_pil_and_libpng():
    # PNGs are assembled by hand (one filter per map, written with zlib): every decoder must see the same pixels
    import cv2

    from vitonprep.derive.labels import CIHP_PALETTE

    rng = np.random.default_rng(0)
    labels = np.zeros((1024, 768), np.uint8)
    labels[200:900, 150:600] = rng.integers(0, 20, (700, 450), dtype=np.uint8)
    mask = labels > 9
    rgb = np.zeros((1024, 768, 3), np.uint8)
    rgb[300:700, 100:500] = rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)
    for data, want in ((codecs.encode_labels_png(labels), labels),
                       (codecs.encode_mask_png(mask), mask.astype(np.uint8) * 255),
                       (codecs.encode_png_rgb(rgb), rgb)):
        with Image.open(io.BytesIO(data)) as im:
            np.testing.assert_array_equal(np.asarray(im), want)
        if want is labels:  # libpng expands a palette image to colours: compare through the palette
            pal = np.array(CIHP_PALETTE[:60], np.uint8).reshape(-1, 3)
            decoded, want = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1], pal[labels]
        elif want.ndim == 3:
            decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
        else:
            decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(decoded, want)


def _idat(png: bytes) -> bytes:
    """The concatenated IDAT payload of a PNG (our PNGs have one IDAT chunk)."""
    import struct

    pos, out = 8, b""
    while pos < len(png):
        (n,), tag = struct.unpack(">I", png[pos:pos + 4]), png[pos + 4:pos + 8]
        if tag == b"IDAT":
            out += png[pos + 8:pos + 8 + n]
        pos += 12 + n
    return out


def test_png_bytes_are_stdlib_zlib_run_length_bytes_whatever_came_before(vitonhd_shards):
    # Byte-identical shards on resume and across worker counts need a deflate whose output depends on the input
    # alone: zlib-ng's run-length mode must write exactly what the stdlib's zlib writes, before and after other
    # data went through the encoder (ISA-L's level 1 did not: its bytes followed the process's history).
    import zlib

    from vitontrain.data.shards import decoded_samples, shard_urls

    sample = next(iter(decoded_samples(shard_urls(vitonhd_shards))))
    maps = [codecs.encode_labels_png(sample["parse"]), codecs.encode_mask_png(sample["agn_mask"]),
            codecs.encode_mask_png(sample["cloth_mask"]), codecs.encode_png_rgb(sample["image"])]
    for png in maps:
        raw = zlib.decompress(_idat(png))
        z = zlib.compressobj(codecs.PNG_COMPRESS_LEVEL, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
        assert _idat(png) == z.compress(raw) + z.flush()
    noise = np.random.default_rng(0).integers(0, 256, (1024, 768, 3), dtype=np.uint8)
    codecs.encode_png_rgb(noise)
    again = [codecs.encode_labels_png(sample["parse"]), codecs.encode_mask_png(sample["agn_mask"]),
             codecs.encode_mask_png(sample["cloth_mask"]), codecs.encode_png_rgb(sample["image"])]
    assert again == maps


@pytest.mark.parametrize("mode", ["L", "P", "RGB", "RGBA", "I;16"])
def test_pixels_equals_numpy_view_of_pil(mode):
    rng = np.random.default_rng(1)
    for w, h in ((768, 1024), (17, 5), (1, 1), (20000, 3)):  # the last is wider than one 64 KB block per row
        if mode == "RGB":
            img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
        elif mode == "RGBA":
            img = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")
        elif mode == "I;16":
            img = Image.frombytes("I;16", (w, h), rng.integers(0, 65536, (h, w), dtype="<u2").tobytes())
        else:
            img = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L")
            if mode == "P":
                img = img.convert("P")
                assert img.mode == "P"
        got, want = codecs.pixels(img), np.asarray(img)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        assert not got.flags.writeable


def test_fast_png_path_reads_our_pngs_like_pil_and_leaves_the_rest_to_pil(vitonhd_shards):
    from vitontrain.data.shards import decoded_samples, shard_urls

    sample = next(iter(decoded_samples(shard_urls(vitonhd_shards))))
    rng = np.random.default_rng(2)
    noise = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
    ours = [codecs.encode_labels_png(sample["parse"]), codecs.encode_mask_png(sample["agn_mask"]),
            codecs.encode_png_rgb(sample["image"]), codecs.encode_png_rgb(noise),
            codecs.encode_mask_png(rng.random((5, 3)) > 0.5)]
    for png in ours:
        fast = codecs._png_fast(png)
        assert fast is not None  # the fast path is taken for every PNG we write
        with Image.open(io.BytesIO(png)) as im:
            assert fast[0] == im.mode
            np.testing.assert_array_equal(fast[1], np.asarray(im))

    # PNGs laid out otherwise go to PIL, with the same pixels as before
    def pil_png(arr, mode, **kw):
        buf = io.BytesIO()
        Image.fromarray(arr, mode).save(buf, format="PNG", **kw)
        return buf.getvalue()

    grey = rng.integers(0, 256, (40, 30), dtype=np.uint8)
    others = [pil_png(noise, "RGB"),                  # adaptive filters (Sub, Paeth, ...)
              pil_png(noise, "RGB", optimize=True),
              pil_png(grey, "L", transparency=0),       # an ancillary chunk (tRNS)
              pil_png(grey > 128, "1")]                 # 1-bit
    for png in others:
        assert codecs._png_fast(png) is None
    np.testing.assert_array_equal(codecs.decode_rgb(others[0]), noise)

    # damage is PIL's to judge: a flipped byte in the data, or a cut file, is a DecodeError as before
    mask_png = ours[1]
    bad_crc = bytearray(mask_png)
    bad_crc[-20] ^= 0xFF  # inside IDAT: CRC (and Adler-32) no longer match
    for broken in (bytes(bad_crc), mask_png[: len(mask_png) // 2]):
        assert codecs._png_fast(broken) is None
        with pytest.raises(codecs.DecodeError):
            codecs.decode_mask(broken)
    # a mode the field does not allow is refused on the fast path too
    with pytest.raises(codecs.DecodeError, match="expected an RGB image, found mode L"):
        codecs.decode_rgb(ours[1])
    with pytest.raises(codecs.DecodeError, match=r"single-channel \(L\) mask, found mode RGB"):
        codecs.decode_mask(ours[2])


def test_json_members_nested_too_deep_are_decode_errors():
    """json's parser recurses per nesting level: a crafted member deep enough to exhaust it is one DecodeError
    (every reader - validate, inspect, quality, the trainer - handles those), not a RecursionError."""
    with pytest.raises(codecs.DecodeError, match="nested too deep"):
        codecs.decode_json(b"[" * 100_000 + b"]" * 100_000, "meta.json")
    assert codecs.decode_json(b"[[[1]]]") == [[[1]]]
