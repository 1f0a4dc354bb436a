#!/usr/bin/env python3
"""Writes the referral-form fixtures under tests/fixtures/referrals/: genuine Word .docx files
(WordprocessingML in a zip, as Word saves them: tables of label and value cells) and PDF files
(one text object per cell, Flate-compressed page content, as Word's "Save as PDF" writes them),
in the shape of each partnership's form in shared/seeds/. Made-up children only.

Run from the repository root: python3 scripts/make-referral-fixtures.py
"""
import os
import zipfile
import zlib
from xml.sax.saxutils import escape

OUT = "tests/fixtures/referrals"

# (file stem, title, [(label, value)]) — labels as each seed's form writes them.
FORMS = [
    ("tameside-appendix-a", "Appendix A: Case Notification Form - Rapid Review Referral Form", [
        ("PART A - TO BE COMPLETED BY THE PERSON MAKING THE REFERRAL", ""),
        ("1. Details of individual making referral", ""),
        ("Name:", "Dr Ann Other"),
        ("Role:", "Consultant Paediatrician"),
        ("Agency:", "Tameside Hospital"),
        ("Tel. number:", "0161 000 0000"),
        ("Date of incident prompting referral:", "14/11/2026"),
        ("Date referred to TSCP:", "16/11/2026"),
        ("2. Brief description of event leading to referral", "Infant admitted with serious head injury; non-accidental injury suspected."),
        ("4. Details of the child/young person", ""),
        ("Last name/s:", "Testchild"),
        ("Date of birth:", "03/02/2026"),
        ("Forename/s:", "Jayden Lee"),
        ("Age (if D.O.B. not known):", ""),
        ("Gender:", "Male"),
        ("Agencies involved:", "Greater Manchester Police, Health Visiting, St Mary's Primary & Nursery"),
    ]),
    ("nelincs-scsi-1", "SCSI-1 Notification to Safeguarding Partners - Serious Child Safeguarding Incident", [
        ("Referring agency:", "Northern Lincolnshire and Goole NHS Foundation Trust"),
        ("Child's initials:", "A.B."),
        ("D.O.B.:", "21 June 2015"),
        ("Date of serious incident:", "2nd December 2026"),
        ("Death or serious harm:", "Death ☐  Serious harm ☒"),
        ("Agencies known to be involved:", "Humberside Police; Children's Social Care; School Nursing"),
    ]),
    ("bhr-referral-serious-incidents", "BHR Safeguarding Partnership - Referral Form for Serious Incidents", [
        ("Borough:", "London Borough of Havering"),
        ("Child's name:", "Mia Example-Jones"),
        ("Date of birth (dd/mm/yyyy):", "09/09/2012"),
        ("Date of death or serious harm:", "30/11/2026"),
        ("Type of incident:", "Death of a child"),
        ("Referrer's agency:", "Metropolitan Police Service"),
        ("Agencies involved:", "Metropolitan Police, Havering Children's Services and BHRUT"),
    ]),
    ("bury-referral-form", "Bury Safeguarding Partnership - Referral Form", [
        ("Name of child:", "Oliver Sample"),
        ("DOB:", "2019-05-17"),
        ("Date of incident:", "01.12.2026"),
        ("Nature of incident:", "Serious harm - fractures"),
        ("Referring organisation:", "Bury Council Children's Services"),
        ("Agencies involved:", "Greater Manchester Police, Northern Care Alliance"),
    ]),
    ("bucks-referral-rapid-review", "Buckinghamshire - Referral Form to share serious incidents for consideration by the Rapid Review Panel", [
        ("Agency making referral:", "Thames Valley Police"),
        ("Full name of child:", "Ella Placeholder"),
        ("Date of birth:", "12 Mar 2014"),
        ("Date of incident:", "25/11/2026"),
        ("Type of serious incident:", "Serious harm"),
        ("Agencies known to be involved:", "Thames Valley Police, Buckinghamshire Healthcare NHS Trust"),
    ]),
]


def p(text, bold=False):
    run_pr = "<w:rPr><w:b/></w:rPr>" if bold else ""
    return f'<w:p><w:r>{run_pr}<w:t xml:space="preserve">{escape(text)}</w:t></w:r></w:p>'


def cell(text, bold=False):
    return f'<w:tc><w:tcPr><w:tcW w:w="4500" w:type="dxa"/></w:tcPr>{p(text, bold)}</w:tc>'


def docx(path, title, fields):
    rows = "".join(f"<w:tr>{cell(l, True)}{cell(v)}</w:tr>" for l, v in fields)
    body = (
        p("CONFIDENTIAL WHEN COMPLETED", True) + p(title, True)
        + '<w:tbl><w:tblPr><w:tblStyle w:val="TableGrid"/><w:tblW w:w="9000" w:type="dxa"/>'
        + '<w:tblBorders><w:top w:val="single" w:sz="4"/><w:left w:val="single" w:sz="4"/>'
        + '<w:bottom w:val="single" w:sz="4"/><w:right w:val="single" w:sz="4"/>'
        + '<w:insideH w:val="single" w:sz="4"/><w:insideV w:val="single" w:sz="4"/></w:tblBorders></w:tblPr>'
        + '<w:tblGrid><w:gridCol w:w="4500"/><w:gridCol w:w="4500"/></w:tblGrid>'
        + rows + "</w:tbl>" + p("Please return the completed form to the Business Unit.")
        + '<w:sectPr><w:pgSz w:w="11906" w:h="16838"/><w:pgMar w:top="1440" w:right="1440" '
        + 'w:bottom="1440" w:left="1440" w:header="708" w:footer="708" w:gutter="0"/></w:sectPr>'
    )
    document = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        f"<w:body>{body}</w:body></w:document>"
    )
    content_types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
        '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
        "</Types>"
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/>'
        "</Relationships>"
    )
    core = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Referral form (test fixture)</dc:title></cp:coreProperties>'
    )
    doc_rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"></Relationships>'
    )
    fixed = (2026, 11, 26, 9, 0, 0)  # the same bytes on every run
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in [
            ("[Content_Types].xml", content_types),
            ("_rels/.rels", rels),
            ("docProps/core.xml", core),
            ("word/document.xml", document),
            ("word/_rels/document.xml.rels", doc_rels),
        ]:
            info = zipfile.ZipInfo(name, fixed)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data.encode("utf-8"))


def pdf_string(text):
    data = text.replace("☐", "[ ]").replace("☒", "[X]").encode("cp1252")
    return "(" + data.decode("latin-1").replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def pdf(path, title, fields):
    ops = ["BT /F2 12 Tf 72 780 Td " + pdf_string(title[:80]) + " Tj ET"]
    y = 740
    for label, value in fields:
        ops.append(f"BT /F2 10 Tf 72 {y} Td {pdf_string(label)} Tj ET")
        if value:
            ops.append(f"BT /F1 8 Tf 250 {y} Td {pdf_string(value)} Tj ET")
        ops.append(f"0.5 w 70 {y - 6} m 540 {y - 6} l S")
        y -= 24
    content = zlib.compress("\n".join(ops).encode("latin-1"))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R /F2 6 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Title (Referral form \\(test fixture\\)) /Producer (caseclerk fixtures) >>",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 7 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    with open(path, "wb") as f:
        f.write(out)


def main():
    os.makedirs(OUT, exist_ok=True)
    for stem, title, fields in FORMS:
        docx(os.path.join(OUT, stem + ".docx"), title, fields)
        pdf(os.path.join(OUT, stem + ".pdf"), title, fields)


if __name__ == "__main__":
    main()
