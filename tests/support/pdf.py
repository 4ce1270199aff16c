"""Small real PDFs, written by hand: one page of text per entry, with a valid cross-reference table
or stream."""

from __future__ import annotations

import zlib


def tiny_pdf(*pages: str) -> bytes:
    """A PDF whose pages show the given lines of text (ASCII, no parentheses or backslashes)."""
    texts = pages or ("Hello",)
    count = len(texts)
    # Objects: 1 catalog, 2 page tree, 3 font, then per page its page object and content stream.
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, text in enumerate(texts):
        stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {5 + 2 * i} 0 R"
            " /Resources << /Font << /F1 3 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def compressed_pdf(*pages: str) -> bytes:
    """A PDF 1.5 whose catalog, page tree and pages sit in a Flate-compressed object stream,
    found through a cross-reference stream, as many writers save them: nothing about its pages
    is readable without inflating. The page tree's keys come in qpdf's order, `/Count` first."""
    texts = pages or ("Hello",)
    count = len(texts)
    # Objects 1 catalog, 2 page tree, 3 font, 4.. pages: compressed. Then the content streams,
    # the object stream and the cross-reference stream, stored plainly.
    first_content = 4 + count
    kids = " ".join(f"{4 + i} 0 R" for i in range(count))
    compressed = [
        b"<< /Pages 2 0 R /Type /Catalog >>",
        f"<< /Count {count} /Kids [{kids}] /Type /Pages >>".encode(),
        b"<< /BaseFont /Helvetica /Subtype /Type1 /Type /Font >>",
    ]
    compressed += [
        f"<< /Contents {first_content + i} 0 R /MediaBox [0 0 612 792] /Parent 2 0 R"
        " /Resources << /Font << /F1 3 0 R >> >> /Type /Page >>".encode()
        for i in range(count)
    ]
    header, body = bytearray(), bytearray()
    for number, obj in enumerate(compressed, start=1):
        header += b"%d %d " % (number, len(body))
        body += obj + b"\n"
    object_stream = first_content + count
    xref_stream = object_stream + 1
    packed = zlib.compress(bytes(header + body))
    plain = [_stream(f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()) for text in texts]
    plain.append(
        _stream(packed, b"/Type /ObjStm /N %d /First %d /Filter /FlateDecode" % (len(compressed), len(header)))
    )
    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number, obj in enumerate(plain, start=first_content):
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, obj)
    offsets[xref_stream] = len(out)
    rows = [b"\x00" + (0).to_bytes(4, "big") + b"\xff\xff"]  # object 0: free
    for number in range(1, xref_stream + 1):
        if number < first_content:  # in the object stream, at its index
            rows.append(b"\x02" + object_stream.to_bytes(4, "big") + (number - 1).to_bytes(2, "big"))
        else:
            rows.append(b"\x01" + offsets[number].to_bytes(4, "big") + b"\x00\x00")
    xref = zlib.compress(b"".join(rows))
    size = xref_stream + 1
    out += b"%d 0 obj\n%s\nendobj\n" % (
        xref_stream,
        _stream(xref, b"/Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Filter /FlateDecode" % size),
    )
    out += b"startxref\n%d\n%%%%EOF\n" % offsets[xref_stream]
    return bytes(out)


def _stream(data: bytes, keys: bytes = b"") -> bytes:
    return b"<< %s /Length %d >>\nstream\n%s\nendstream" % (keys, len(data), data)
