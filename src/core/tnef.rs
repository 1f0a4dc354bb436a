//! The files inside a `winmail.dat` (TNEF, Microsoft's "Transport Neutral Encapsulation
//! Format", MS-OXTNEF): what Outlook sends in place of a message's attachments when it writes in
//! rich text to a server that is not Exchange. An agency's return sent that way arrived as one
//! `winmail.dat` that few panel members can open; [`files`] takes out the files it carries, so a
//! return's chronology reaches the panel as the chronology, and is checked as itself (a program
//! inside it is withheld by its own name, [`crate::core::trust::attachment_risk`]).
//!
//! The stream: a signature, a key, then attributes — a level (message or attachment), an id, a
//! length, the data and a checksum. An attachment starts at its rendering attribute
//! (`attAttachRendData`); its name is the long file name among its MAPI properties
//! (`attAttachment`: `PidTagAttachLongFilename`), else its 8.3 title (`attAttachTitle`); its
//! bytes are `attAttachData`, else the MAPI property `PidTagAttachDataBinary`.
//!
//! Never panics and never guesses: anything that does not read as TNEF gives `None`, and the
//! caller keeps the `winmail.dat` as it came; a stream cut short gives the files read before the
//! cut. Bounded by its input (no decompression) and by [`MAX_FILES`]. The checksums are not
//! checked (Outlook's are sometimes wrong, and the bytes are forwarded, not trusted).
//!
//! Written from the specification, and checked when it was written against the nineteen real
//! `winmail.dat` samples of the Python `tnefparse` project (not copied here): the same files by
//! the same names in every one, and the same sizes but for three whose bytes come from a MAPI
//! object, where this reader gives the whole 512-byte-sector file.
//!
//! Owns the format. Must not: read anything but the bytes given, or log.

/// The TNEF signature, little-endian `0x223E9F78`.
const SIGNATURE: [u8; 4] = [0x78, 0x9F, 0x3E, 0x22];
const LEVEL_ATTACHMENT: u8 = 0x02;
const ATT_ATTACH_REND_DATA: u32 = 0x0006_9002;
const ATT_ATTACH_TITLE: u32 = 0x0001_8010;
const ATT_ATTACH_DATA: u32 = 0x0006_800F;
const ATT_ATTACHMENT: u32 = 0x0006_9005;
const PID_ATTACH_LONG_FILENAME: u16 = 0x3707;
const PID_ATTACH_DATA_BINARY: u16 = 0x3701;
const PT_STRING8: u16 = 0x001E;
const PT_UNICODE: u16 = 0x001F;
const PT_BINARY: u16 = 0x0102;
const PT_OBJECT: u16 = 0x000D;

/// The most files taken out of one `winmail.dat`; more are left in it.
pub const MAX_FILES: usize = 100;

/// A file carried in a `winmail.dat`.
#[derive(Clone, PartialEq, Eq)]
pub struct File {
    pub name: String,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("File")
            .field("size", &self.data.len())
            .finish_non_exhaustive()
    }
}

/// The content type a file taken out of a `winmail.dat` is given, by its name's extension (TNEF
/// carries a MIME type only for some files, and not reliably).
pub fn content_type(name: &str) -> String {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "doc" => "application/msword",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xls" => "application/vnd.ms-excel",
        "pdf" => "application/pdf",
        "rtf" => "application/rtf",
        "odt" => "application/vnd.oasis.opendocument.text",
        "txt" => "text/plain",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        _ => "application/octet-stream",
    }
    .to_string()
}

/// Whether an attachment is a `winmail.dat`: its content type, or its name, and its signature.
pub fn is_tnef(content_type: &str, filename: &str, data: &[u8]) -> bool {
    let named = content_type.eq_ignore_ascii_case("application/ms-tnef")
        || content_type.eq_ignore_ascii_case("application/vnd.ms-tnef")
        || filename.eq_ignore_ascii_case("winmail.dat")
        || filename.eq_ignore_ascii_case("win.dat");
    named && data.starts_with(&SIGNATURE)
}

/// An attachment being read: its names and bytes as the attributes give them.
#[derive(Default)]
struct Reading {
    title: Option<String>,
    long_name: Option<String>,
    data: Option<Vec<u8>>,
    prop_data: Option<Vec<u8>>,
}

impl Reading {
    fn file(self, n: usize) -> Option<File> {
        let data = self.data.or(self.prop_data)?;
        let name = self
            .long_name
            .or(self.title)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("attachment-{n}"));
        Some(File { name, data })
    }
}

/// The files in a TNEF stream, in order; `None` when it is not TNEF or carries no file.
pub fn files(data: &[u8]) -> Option<Vec<File>> {
    if !data.starts_with(&SIGNATURE) {
        return None;
    }
    let mut rest = data.get(6..)?;
    let mut out = Vec::new();
    let mut current: Option<Reading> = None;
    while let Some((level, id, value, after)) = attribute(rest) {
        rest = after;
        if level == LEVEL_ATTACHMENT && id == ATT_ATTACH_REND_DATA {
            if let Some(f) = current.take().and_then(|r| r.file(out.len() + 1)) {
                out.push(f);
            }
            if out.len() >= MAX_FILES {
                break;
            }
            current = Some(Reading::default());
            continue;
        }
        let Some(r) = current.as_mut().filter(|_| level == LEVEL_ATTACHMENT) else {
            continue;
        };
        match id {
            ATT_ATTACH_TITLE => r.title = Some(string8(value)),
            ATT_ATTACH_DATA => r.data = Some(value.to_vec()),
            ATT_ATTACHMENT => {
                let props = properties(value);
                r.long_name = props.long_name;
                r.prop_data = props.data;
            }
            _ => {}
        }
    }
    if out.len() < MAX_FILES
        && let Some(f) = current.and_then(|r| r.file(out.len() + 1))
    {
        out.push(f);
    }
    (!out.is_empty()).then_some(out)
}

/// One attribute: (level, id, data, what follows its checksum); `None` at the end or where the
/// stream is cut short.
fn attribute(b: &[u8]) -> Option<(u8, u32, &[u8], &[u8])> {
    let level = *b.first()?;
    let id = u32_at(b, 1)?;
    let len = usize::try_from(u32_at(b, 5)?).ok()?;
    let value = b.get(9..9usize.checked_add(len)?)?;
    let rest = b.get(9 + len + 2..).unwrap_or_default();
    Some((level, id, value, rest))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// An 8-bit string up to its NUL: UTF-8 when it is, else each byte as Windows-1252 would show
/// most names (Latin-1).
fn string8(b: &[u8]) -> String {
    let b = b.split(|c| *c == 0).next().unwrap_or_default();
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => b.iter().map(|c| char::from(*c)).collect(),
    }
}

/// UTF-16LE up to its NUL.
fn string16(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|u| *u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// What an attachment's MAPI properties give: its long name and its bytes.
#[derive(Default)]
struct Props {
    long_name: Option<String>,
    data: Option<Vec<u8>>,
}

/// The MAPI properties of `attAttachment` (MS-OXTNEF 2.1.3.4): as many as read cleanly; a
/// property that cannot be read ends the reading.
fn properties(b: &[u8]) -> Props {
    let mut out = Props::default();
    let Some(count) = u32_at(b, 0) else {
        return out;
    };
    let mut at = 4usize;
    for _ in 0..count.min(10_000) {
        let Some((ptype, pid, next, values)) = property(b, at) else {
            break;
        };
        at = next;
        let Some(first) = values.first() else {
            continue;
        };
        match (pid, ptype) {
            (PID_ATTACH_LONG_FILENAME, PT_STRING8) => out.long_name = Some(string8(first)),
            (PID_ATTACH_LONG_FILENAME, PT_UNICODE) => out.long_name = Some(string16(first)),
            (PID_ATTACH_DATA_BINARY, PT_BINARY) => out.data = Some(first.to_vec()),
            // An object's bytes start with the interface's 16-byte id; an embedded message
            // (not a file) is left alone.
            (PID_ATTACH_DATA_BINARY, PT_OBJECT)
                if first.len() > 16 && !is_embedded_message(&first[..16]) =>
            {
                out.data = Some(first[16..].to_vec());
            }
            _ => {}
        }
    }
    out
}

/// IID_IMessage: the object is a message, not a file.
fn is_embedded_message(iid: &[u8]) -> bool {
    iid == [
        0x07, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x46,
    ]
}

/// One property at `at`: (type, id, where the next starts, its values' bytes — for a
/// variable-length type each value without its length and padding, for a fixed one empty).
fn property(b: &[u8], at: usize) -> Option<(u16, u16, usize, Vec<&[u8]>)> {
    let ptype = u16_at(b, at)?;
    let pid = u16_at(b, at + 2)?;
    let mut at = at + 4;
    if pid >= 0x8000 {
        // A named property: its GUID, then a number or a name.
        at += 16;
        match u32_at(b, at)? {
            0 => at += 8,
            1 => {
                let len = usize::try_from(u32_at(b, at + 4)?).ok()?;
                at += 8 + padded(len)?;
            }
            _ => return None,
        }
    }
    let multi = ptype & 0x1000 != 0;
    let base = ptype & !0x1000;
    let mut values = Vec::new();
    if matches!(base, PT_STRING8 | PT_UNICODE | PT_BINARY | PT_OBJECT) {
        let n = u32_at(b, at)?;
        at += 4;
        for _ in 0..n.min(10_000) {
            let len = usize::try_from(u32_at(b, at)?).ok()?;
            values.push(b.get(at + 4..(at + 4).checked_add(len)?)?);
            at += 4 + padded(len)?;
        }
    } else {
        let size = fixed_size(base)?;
        let n = if multi {
            let n = u32_at(b, at)?;
            at += 4;
            usize::try_from(n).ok()?
        } else {
            1
        };
        at = at.checked_add(n.checked_mul(padded(size)?)?)?;
        b.get(..at)?;
    }
    Some((ptype, pid, at, values))
}

/// The bytes of a fixed-size MAPI type; `None` for a type this reader does not know.
fn fixed_size(ptype: u16) -> Option<usize> {
    Some(match ptype {
        0x0002 | 0x000B => 2,
        0x0003 | 0x0004 | 0x000A => 4,
        0x0005 | 0x0006 | 0x0007 | 0x0014 | 0x0040 => 8,
        0x0048 => 16,
        _ => return None,
    })
}

/// `len` rounded up to a multiple of four (how TNEF pads a value).
fn padded(len: usize) -> Option<usize> {
    len.checked_add(3).map(|l| l & !3)
}

#[cfg(test)]
pub(crate) mod tests {
    //! A `winmail.dat` built as MS-OXTNEF lays it out gives back its files by their long names;
    //! anything else gives nothing; a stream cut short gives what came before the cut.
    use super::*;

    /// One attribute, as the specification lays it out.
    fn attr(level: u8, id: u32, data: &[u8]) -> Vec<u8> {
        let mut v = vec![level];
        v.extend(id.to_le_bytes());
        v.extend((data.len() as u32).to_le_bytes());
        v.extend(data);
        let sum = data.iter().fold(0u16, |s, b| s.wrapping_add(u16::from(*b)));
        v.extend(sum.to_le_bytes());
        v
    }

    /// The MAPI properties of an attachment: one named property (to be skipped) and the long
    /// file name in UTF-16.
    fn props_with_long_name(name: &str) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        // A named numeric property (PT_LONG, id 0x8005): GUID, kind 0, its number, its value.
        v.extend(0x0003u16.to_le_bytes());
        v.extend(0x8005u16.to_le_bytes());
        v.extend([0xAB; 16]);
        v.extend(0u32.to_le_bytes());
        v.extend(0x8233u32.to_le_bytes());
        v.extend(7u32.to_le_bytes());
        // PidTagAttachLongFilename, PT_UNICODE: one value, its length, UTF-16LE, NUL, padding.
        v.extend(PT_UNICODE.to_le_bytes());
        v.extend(PID_ATTACH_LONG_FILENAME.to_le_bytes());
        v.extend(1u32.to_le_bytes());
        let mut text: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
        text.extend([0, 0]);
        v.extend((text.len() as u32).to_le_bytes());
        let len = text.len();
        v.extend(text);
        v.extend(vec![0; padded(len).unwrap() - len]);
        v
    }

    /// A `winmail.dat` carrying `files` (long name, 8.3 title, bytes).
    pub(crate) fn winmail(files: &[(&str, &str, &[u8])]) -> Vec<u8> {
        let mut v = SIGNATURE.to_vec();
        v.extend(0x1234u16.to_le_bytes());
        v.extend(attr(1, 0x0008_9006, &[1, 0, 0, 0])); // attTnefVersion (message level)
        v.extend(attr(1, 0x0007_8008, b"IPM.Microsoft Mail.Note\0"));
        for (long, title, data) in files {
            v.extend(attr(
                2,
                ATT_ATTACH_REND_DATA,
                &[1, 0, 0xFF, 0xFF, 0xFF, 0xFF],
            ));
            v.extend(attr(
                2,
                ATT_ATTACH_TITLE,
                &[title.as_bytes(), b"\0"].concat(),
            ));
            v.extend(attr(2, ATT_ATTACH_DATA, data));
            v.extend(attr(2, ATT_ATTACHMENT, &props_with_long_name(long)));
        }
        v
    }

    #[test]
    fn the_files_come_out_by_their_long_names_with_their_bytes() {
        let w = winmail(&[
            (
                "Chronology – police.docx",
                "CHRONO~1.DOC",
                b"PK\x03\x04docx",
            ),
            ("summary.pdf", "SUMMARY.PDF", b"%PDF-1.7"),
        ]);
        assert!(is_tnef("application/ms-tnef", "winmail.dat", &w));
        let got = files(&w).expect("read");
        assert_eq!(
            got,
            [
                File {
                    name: "Chronology – police.docx".into(),
                    data: b"PK\x03\x04docx".to_vec()
                },
                File {
                    name: "summary.pdf".into(),
                    data: b"%PDF-1.7".to_vec()
                },
            ]
        );
    }

    #[test]
    fn without_a_long_name_the_title_names_the_file() {
        let mut w = SIGNATURE.to_vec();
        w.extend([0, 0]);
        w.extend(attr(2, ATT_ATTACH_REND_DATA, &[1, 0, 0, 0, 0, 0]));
        w.extend(attr(2, ATT_ATTACH_DATA, b"data first"));
        w.extend(attr(2, ATT_ATTACH_TITLE, b"RETURN.TXT\0"));
        let got = files(&w).unwrap();
        assert_eq!(got[0].name, "RETURN.TXT");
        assert_eq!(got[0].data, b"data first");
    }

    #[test]
    fn a_stream_cut_short_gives_the_files_before_the_cut_and_garbage_gives_nothing() {
        let w = winmail(&[("one.txt", "ONE.TXT", b"1"), ("two.txt", "TWO.TXT", b"2")]);
        let cut = &w[..w.len() - 40];
        let got = files(cut).unwrap();
        assert_eq!(got[0].name, "one.txt");
        assert_eq!(files(b"not tnef at all"), None);
        assert_eq!(files(&SIGNATURE), None, "no file in it");
        assert!(!is_tnef(
            "application/ms-tnef",
            "winmail.dat",
            b"PK\x03\x04"
        ));
        assert!(!is_tnef("application/pdf", "return.pdf", &w));
        for n in 0..w.len() {
            let _ = files(&w[..n]);
        }
    }

    proptest::proptest! {
        /// Whatever follows the signature — a hostile `winmail.dat` — reading it ends, without a
        /// panic, and gives no more bytes than it was given.
        #[test]
        fn any_bytes_after_the_signature_are_read_without_a_panic(
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)
        ) {
            let data = [&SIGNATURE[..], &tail].concat();
            let total: usize = files(&data).unwrap_or_default().iter().map(|f| f.data.len()).sum();
            proptest::prop_assert!(total <= data.len());
        }
    }
}
