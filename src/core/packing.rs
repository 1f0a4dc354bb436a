//! Packing an email's bytes for storage: each large base64-encoded part is taken out as a blob —
//! its decoded content, named by the SHA-256 of that content — and the rest is kept as a
//! *skeleton* that names the blobs. The referral's attached form is then one blob, whether it
//! arrived in the referral or goes out in every panel member's letter (the sender's mail client
//! and ours encode it differently; the decoded content is the same). [`unpack`] puts back the
//! exact bytes.
//!
//! Lossless by construction, never by assumption: a part is taken out only when re-encoding its
//! content gives back its encoded bytes exactly (same line length, line ending and padding), and
//! [`pack`] unpacks what it made and compares it with the original before returning it; anything
//! else is kept as it came ([`pack`] returns `None` and the caller stores the bytes whole). Which
//! parts are found only decides how much is shared, never what is stored.
//!
//! The skeleton is a sequence of segments: `L` + length + bytes (kept as they were), or `B` + the
//! blob's SHA-256 (32 bytes) + its decoded length + the line length + the line ending (0 CRLF, 1
//! LF); lengths are LEB128. The last line of a blob's encoding may be shorter and carries no line
//! ending (what follows it, usually the line ending before the next MIME boundary, is literal).
//!
//! Owns the skeleton format and the scan for encoded parts. Must not: touch the database, decide
//! anything about the mail, or log its content.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The smallest decoded content taken out as a blob: below it, a blob row and its references
/// would cost about what they save.
pub const MIN_BLOB: usize = 1024;

/// The name of the skeleton format, stored beside a packed row (`packing` column).
pub const FORMAT: &str = "parts-1";

/// The skeleton format compressed whole with DEFLATE (RFC 1951): how letters are stored. Our
/// letters are mostly the same words (templates, quoted-printable text and HTML) and shrink to
/// about a third; incoming mail is kept uncompressed (its bulk is attached files, which are
/// compressed already, and ingest stays as fast as the disk).
pub const FORMAT_DEFLATE: &str = "parts-1+deflate";

/// Lines of base64 decoded or encoded per call (64 KiB or so of text at a time).
const BLOCK_LINES: usize = 1024;

const LITERAL: u8 = b'L';
const BLOB: u8 = b'B';
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A blob taken out of a message: its decoded content and the SHA-256 naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub sha256: [u8; 32],
    pub data: Vec<u8>,
}

impl Blob {
    /// The SHA-256 as lowercase hex (how the database keys blobs).
    pub fn hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// A message packed: the skeleton and the blobs it names (in order of appearance; the same
/// content twice is listed once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    pub skeleton: Vec<u8>,
    pub blobs: Vec<Blob>,
}

impl Packed {
    /// The content of blob `sha`, if this packing took it out.
    pub fn blob(&self, sha: &[u8; 32]) -> Option<&[u8]> {
        self.blobs
            .iter()
            .find(|b| &b.sha256 == sha)
            .map(|b| b.data.as_slice())
    }
}

/// A blob named by a skeleton.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRef {
    pub sha256: [u8; 32],
    /// Its decoded length.
    pub len: usize,
}

/// Why a skeleton could not be unpacked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    #[error("the stored skeleton is cut short or malformed at byte {0}")]
    Malformed(usize),
    #[error("the stored blob {0} is missing")]
    Missing(String),
    #[error("the stored blob {0} does not match its SHA-256 or length")]
    Mismatch(String),
}

/// Line ending of a blob's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eol {
    Crlf,
    Lf,
}

impl Eol {
    fn bytes(self) -> &'static [u8] {
        match self {
            Eol::Crlf => b"\r\n",
            Eol::Lf => b"\n",
        }
    }
}

/// One encoded region found in the message: `start..end` of the original bytes.
struct Region {
    start: usize,
    end: usize,
    line: usize,
    eol: Eol,
    data: Vec<u8>,
}

/// Pack `raw`: `None` when it has no part worth taking out, or when the packed form would not
/// give back exactly `raw` (then it is stored whole); a packing returned always has a blob.
pub fn pack(raw: &[u8]) -> Option<Packed> {
    let regions = find_regions(raw);
    if regions.is_empty() {
        return None;
    }
    let mut skeleton = Vec::new();
    let mut blobs: Vec<Blob> = Vec::new();
    let mut at = 0;
    for r in regions {
        push_literal(&mut skeleton, &raw[at..r.start]);
        let sha256: [u8; 32] = Sha256::digest(&r.data).into();
        skeleton.push(BLOB);
        skeleton.extend_from_slice(&sha256);
        put_len(&mut skeleton, r.data.len());
        put_len(&mut skeleton, r.line);
        skeleton.push(match r.eol {
            Eol::Crlf => 0,
            Eol::Lf => 1,
        });
        if !blobs.iter().any(|b| b.sha256 == sha256) {
            blobs.push(Blob {
                sha256,
                data: r.data,
            });
        }
        at = r.end;
    }
    push_literal(&mut skeleton, &raw[at..]);
    // Every region found gave a blob, or was one already given: callers rely on a packing
    // having one (a packing without would be stored instead of the bytes whole, for nothing).
    debug_assert!(!blobs.is_empty());
    let packed = Packed { skeleton, blobs };
    // The round trip, checked whole: what is stored must give back these bytes exactly.
    round_trips(&packed, raw).then_some(packed)
}

/// Whether `packed` stands for exactly `raw`: each segment compared with the bytes where it
/// falls, a blob's encoding made a line at a time (no copy of the message is made).
fn round_trips(packed: &Packed, raw: &[u8]) -> bool {
    let mut at = 0;
    let mut buf = Vec::new();
    let walked = walk(&packed.skeleton, |seg| {
        let same = match seg {
            Segment::Literal(bytes) => {
                let same = raw.get(at..at + bytes.len()) == Some(bytes);
                at += bytes.len();
                same
            }
            Segment::Blob {
                sha256,
                len,
                line,
                eol,
            } => {
                let Some(data) = packed.blob(&sha256) else {
                    return Err(PackError::Missing(hex::encode(sha256)));
                };
                let eol = eol.bytes();
                data.len() == len
                    && each_line(data, line, &mut buf, |text, more| {
                        let mut same = raw.get(at..at + text.len()) == Some(text);
                        at += text.len();
                        if more {
                            same = same && raw.get(at..at + eol.len()) == Some(eol);
                            at += eol.len();
                        }
                        same
                    })
            }
        };
        if same {
            Ok(())
        } else {
            Err(PackError::Malformed(at))
        }
    });
    walked.is_ok() && at == raw.len()
}

/// A skeleton that is `raw` whole, one literal segment (for a letter with no file to take out,
/// stored compressed).
pub fn whole(raw: &[u8]) -> Vec<u8> {
    let mut skeleton = Vec::with_capacity(raw.len() + 10);
    push_literal(&mut skeleton, raw);
    skeleton
}

/// `skeleton` compressed ([`FORMAT_DEFLATE`]), or `None` if decompressing it would not give it
/// back exactly (never expected; checked, as every packed form is).
pub fn compress(skeleton: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut z = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(skeleton.len() / 2),
        flate2::Compression::fast(),
    );
    z.write_all(skeleton).ok()?;
    let out = z.finish().ok()?;
    (decompress(&out).ok()?.as_slice() == skeleton).then_some(out)
}

/// A skeleton stored compressed ([`FORMAT_DEFLATE`]).
pub fn decompress(stored: &[u8]) -> Result<Vec<u8>, PackError> {
    use std::io::Read;
    let mut out = Vec::with_capacity(stored.len() * 3);
    flate2::read::DeflateDecoder::new(stored)
        .read_to_end(&mut out)
        .map_err(|_| PackError::Malformed(0))?;
    Ok(out)
}

/// The blobs a skeleton names, in order (a blob named twice is listed twice).
pub fn blob_refs(skeleton: &[u8]) -> Result<Vec<BlobRef>, PackError> {
    let mut out = Vec::new();
    walk(skeleton, |seg| {
        if let Segment::Blob { sha256, len, .. } = seg {
            out.push(BlobRef { sha256, len });
        }
        Ok(())
    })?;
    Ok(out)
}

/// The exact bytes a skeleton stands for, with each blob's content from `blob` (by SHA-256). A
/// blob missing, or whose content does not match its SHA-256 and length, is an error: a message
/// is never given back altered.
pub fn unpack<'a>(
    skeleton: &[u8],
    blob: impl Fn(&[u8; 32]) -> Option<&'a [u8]>,
) -> Result<Vec<u8>, PackError> {
    write_out(skeleton, |sha256, len| checked_blob(&blob, sha256, len))
}

/// The bytes `skeleton` stands for, each blob segment's content (by SHA-256 and length) from
/// `content`, in order.
fn write_out<'a>(
    skeleton: &[u8],
    mut content: impl FnMut(&[u8; 32], usize) -> Result<&'a [u8], PackError>,
) -> Result<Vec<u8>, PackError> {
    let mut out = Vec::with_capacity(skeleton.len());
    walk(skeleton, |seg| {
        match seg {
            Segment::Literal(bytes) => out.extend_from_slice(bytes),
            Segment::Blob {
                sha256,
                len,
                line,
                eol,
            } => encode_into(&mut out, content(&sha256, len)?, line, eol),
        }
        Ok(())
    })?;
    Ok(out)
}

/// A packed message written out with each file's base64 replaced by that of a short *stand-in*
/// (see [`stand_in`]): what a parser reads instead of the whole message, when it only needs to
/// know where each file is and can take its content from the blob itself.
#[derive(Debug)]
pub struct StoodIn<'a> {
    /// The message with stand-ins: every literal byte as stored, each blob's encoding replaced
    /// by the base64 (one line) of its stand-in.
    pub bytes: Vec<u8>,
    /// What every stand-in begins with: a fixed word and a nonce drawn from the skeleton.
    prefix: Vec<u8>,
    /// Each blob segment's stand-in and content, in order (the content checked against its
    /// SHA-256 and length).
    files: Vec<(Vec<u8>, &'a [u8])>,
}

impl<'a> StoodIn<'a> {
    /// Which blob segment `decoded` stands for, and that blob's content: `Some` only when
    /// `decoded` is exactly one of this message's stand-ins.
    pub fn resolve(&self, decoded: &[u8]) -> Option<(usize, &'a [u8])> {
        let rest = decoded.strip_prefix(self.prefix.as_slice())?;
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let i: usize = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
        let (text, file) = self.files.get(i)?;
        (text.as_slice() == decoded).then_some((i, *file))
    }

    /// How many blob segments there are (each must be resolved once for the stand-ins to have
    /// told everything).
    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// The exact bytes `skeleton` stands for — the skeleton these stand-ins were made from —
    /// with each file's content as already fetched and checked for them (read, and hashed, once).
    pub fn put_back(&self, skeleton: &[u8]) -> Result<Vec<u8>, PackError> {
        let mut files = self.files.iter();
        write_out(skeleton, |sha256, len| {
            files
                .next()
                .map(|(_, data)| *data)
                .filter(|data| data.len() == len)
                .ok_or_else(|| PackError::Missing(hex::encode(sha256)))
        })
    }

    /// Whether `text` holds a stand-in, or the start of one, anywhere.
    pub fn appears_in(&self, text: &[u8]) -> bool {
        memchr::memmem::find(text, &self.prefix).is_some()
    }
}

/// The message `skeleton` stands for, with each blob's base64 replaced by that of the text
/// `caseclerk stand-in <nonce> <i>` (the `i`-th blob segment, from 0), and one or two dots
/// after it so that it is as long as the blob modulo 3: both encodings then end with the same
/// padding, and whatever a decoder makes of bytes after them, it makes the same of both. The
/// nonce is drawn from the SHA-256 of the skeleton, which holds every literal byte of the
/// message: no text inside the message can contain it, so a decoded stand-in is never mistaken
/// for a file the sender wrote. Every blob is fetched through `blob` and checked against its
/// SHA-256 and length, as [`unpack`] checks them.
pub fn stand_in<'a>(
    skeleton: &[u8],
    blob: impl Fn(&[u8; 32]) -> Option<&'a [u8]>,
) -> Result<StoodIn<'a>, PackError> {
    stand_in_with(skeleton, |sha256, len| checked_blob(&blob, sha256, len))
}

/// [`stand_in`] for a message [`pack`] has just made: each file's content is the very bytes
/// [`pack`] named by their SHA-256, so they are not hashed again (only their length is checked).
/// For a message read back from storage, use [`stand_in`], which checks every file.
pub fn stand_in_packed(packed: &Packed) -> Result<StoodIn<'_>, PackError> {
    stand_in_with(&packed.skeleton, |sha256, len| {
        let data = packed
            .blob(sha256)
            .ok_or_else(|| PackError::Missing(hex::encode(sha256)))?;
        if data.len() != len {
            return Err(PackError::Mismatch(hex::encode(sha256)));
        }
        Ok(data)
    })
}

/// [`stand_in`] with each blob segment's content (by SHA-256 and length) from `content`.
fn stand_in_with<'a>(
    skeleton: &[u8],
    mut content: impl FnMut(&[u8; 32], usize) -> Result<&'a [u8], PackError>,
) -> Result<StoodIn<'a>, PackError> {
    let nonce = hex::encode(&Sha256::digest(skeleton)[..8]);
    let prefix = format!("caseclerk stand-in {nonce} ").into_bytes();
    let mut bytes = Vec::with_capacity(skeleton.len());
    let mut files = Vec::new();
    walk(skeleton, |seg| {
        match seg {
            Segment::Literal(literal) => bytes.extend_from_slice(literal),
            Segment::Blob { sha256, len, .. } => {
                let data = content(&sha256, len)?;
                let mut text = prefix.clone();
                text.extend_from_slice(files.len().to_string().as_bytes());
                while text.len() % 3 != len % 3 {
                    text.push(b'.');
                }
                bytes.extend_from_slice(B64.encode(&text).as_bytes());
                files.push((text, data));
            }
        }
        Ok(())
    })?;
    Ok(StoodIn {
        bytes,
        prefix,
        files,
    })
}

/// A blob's content from `blob`, checked against the SHA-256 naming it and its length.
fn checked_blob<'a>(
    blob: &impl Fn(&[u8; 32]) -> Option<&'a [u8]>,
    sha256: &[u8; 32],
    len: usize,
) -> Result<&'a [u8], PackError> {
    let data = blob(sha256).ok_or_else(|| PackError::Missing(hex::encode(sha256)))?;
    if data.len() != len || <[u8; 32]>::from(Sha256::digest(data)) != *sha256 {
        return Err(PackError::Mismatch(hex::encode(sha256)));
    }
    Ok(data)
}

/// How long the bytes a skeleton stands for are, without the blobs' contents.
pub fn unpacked_len(skeleton: &[u8]) -> Result<usize, PackError> {
    let mut n = 0;
    walk(skeleton, |seg| {
        n += match seg {
            Segment::Literal(bytes) => bytes.len(),
            Segment::Blob { len, line, eol, .. } => encoded_len(len, line, eol),
        };
        Ok(())
    })?;
    Ok(n)
}

enum Segment<'a> {
    Literal(&'a [u8]),
    Blob {
        sha256: [u8; 32],
        len: usize,
        line: usize,
        eol: Eol,
    },
}

fn walk<'a>(
    skeleton: &'a [u8],
    mut each: impl FnMut(Segment<'a>) -> Result<(), PackError>,
) -> Result<(), PackError> {
    let mut at = 0;
    while at < skeleton.len() {
        let start = at;
        let bad = || PackError::Malformed(start);
        let tag = skeleton[at];
        at += 1;
        match tag {
            LITERAL => {
                let n = get_len(skeleton, &mut at).ok_or_else(bad)?;
                let bytes = skeleton.get(at..at + n).ok_or_else(bad)?;
                at += n;
                each(Segment::Literal(bytes))?;
            }
            BLOB => {
                let sha256: [u8; 32] = skeleton
                    .get(at..at + 32)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(bad)?;
                at += 32;
                let len = get_len(skeleton, &mut at).ok_or_else(bad)?;
                let line = get_len(skeleton, &mut at).ok_or_else(bad)?;
                let eol = match skeleton.get(at) {
                    Some(0) => Eol::Crlf,
                    Some(1) => Eol::Lf,
                    _ => return Err(bad()),
                };
                at += 1;
                if line == 0 || !line.is_multiple_of(4) {
                    return Err(bad());
                }
                each(Segment::Blob {
                    sha256,
                    len,
                    line,
                    eol,
                })?;
            }
            _ => return Err(bad()),
        }
    }
    Ok(())
}

fn push_literal(skeleton: &mut Vec<u8>, bytes: &[u8]) {
    if !bytes.is_empty() {
        skeleton.push(LITERAL);
        put_len(skeleton, bytes.len());
        skeleton.extend_from_slice(bytes);
    }
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn get_len(bytes: &[u8], at: &mut usize) -> Option<usize> {
    let mut n: usize = 0;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        n |= usize::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// `data` base64-encoded in lines of `line` characters separated by `eol`, the last line shorter
/// or equal and with no line ending after it.
fn encode_into(out: &mut Vec<u8>, data: &[u8], line: usize, eol: Eol) {
    out.reserve(encoded_len(data.len(), line, eol));
    each_line(data, line, &mut Vec::new(), |text, more| {
        out.extend_from_slice(text);
        if more {
            out.extend_from_slice(eol.bytes());
        }
        true
    });
}

/// `data` in base64, `line` characters a line (a multiple of 4, as `walk` and `region_at`
/// require, so a block's encoding is its lines' encodings end to end): each line in order, with
/// whether another follows it (an end of line between them). Encoded a block of
/// [`BLOCK_LINES`] lines at a time into `buf` (one call per block; no copy of a large file).
/// Stops at the first line `f` answers `false` to; returns whether every line was answered `true`.
fn each_line(
    data: &[u8],
    line: usize,
    buf: &mut Vec<u8>,
    mut f: impl FnMut(&[u8], bool) -> bool,
) -> bool {
    let mut blocks = data.chunks(line / 4 * 3 * BLOCK_LINES).peekable();
    while let Some(block) = blocks.next() {
        buf.clear();
        buf.resize(block.len().div_ceil(3) * 4, 0);
        let n = B64
            .encode_slice(block, buf)
            .expect("a block's worth of base64 fits its buffer");
        let mut lines = buf[..n].chunks(line).peekable();
        while let Some(text) = lines.next() {
            let more = lines.peek().is_some() || blocks.peek().is_some();
            if !f(text, more) {
                return false;
            }
        }
    }
    true
}

fn encoded_len(len: usize, line: usize, eol: Eol) -> usize {
    let chars = len.div_ceil(3) * 4;
    let lines = len.div_ceil(line / 4 * 3);
    chars + lines.saturating_sub(1) * eol.bytes().len()
}

/// Every base64 body worth taking out, in order: the lines after a header block that says
/// `Content-Transfer-Encoding: base64`, as long as they are base64 and end alike, each checked
/// to re-encode to exactly its bytes.
fn find_regions(raw: &[u8]) -> Vec<Region> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(header) = next_base64_header(raw, from) {
        let Some(body) = body_start(raw, header) else {
            break;
        };
        from = body;
        if let Some(r) = region_at(raw, body) {
            from = r.end;
            if r.data.len() >= MIN_BLOB {
                out.push(r);
            }
        }
    }
    out
}

const CTE: &[u8] = b"content-transfer-encoding:";

/// The start of the next line (at or after `from`) that is `Content-Transfer-Encoding: base64`.
fn next_base64_header(raw: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at < raw.len() {
        let end = memchr::memchr(b'\n', &raw[at..]).map_or(raw.len(), |i| at + i + 1);
        let line = &raw[at..end];
        if line.len() > CTE.len()
            && line[..CTE.len()].eq_ignore_ascii_case(CTE)
            && line[CTE.len()..]
                .trim_ascii()
                .eq_ignore_ascii_case(b"base64")
        {
            return Some(at);
        }
        at = end;
    }
    None
}

/// Just after the blank line that ends the header block holding the line at `header`.
fn body_start(raw: &[u8], header: usize) -> Option<usize> {
    let mut at = header;
    loop {
        let end = at + memchr::memchr(b'\n', &raw[at..])? + 1;
        let line = &raw[at..end];
        if line == b"\n" || line == b"\r\n" {
            return Some(end);
        }
        at = end;
    }
}

/// Whether every byte of a line is base64's (a letter, a digit, `+`, `/` or `=`), read without stopping at the first that is not
/// (so the compiler checks many bytes at once: most lines are all base64).
fn all_b64(line: &[u8]) -> bool {
    line.iter().fold(true, |all, &c| {
        let letter = (c | 0x20).wrapping_sub(b'a') < 26;
        let digit = c.wrapping_sub(b'0') < 10;
        all & (letter | digit | (c == b'+') | (c == b'/') | (c == b'='))
    })
}

/// The base64 lines starting at `body`, if they make a canonical encoding.
fn region_at(raw: &[u8], body: usize) -> Option<Region> {
    let first_end = body + memchr::memchr(b'\n', &raw[body..])?;
    let eol = if first_end > body && raw[first_end - 1] == b'\r' {
        Eol::Crlf
    } else {
        Eol::Lf
    };
    let eol_len = eol.bytes().len();
    let line = first_end + 1 - eol_len - body;
    if line == 0 || !line.is_multiple_of(4) {
        return None;
    }
    // Lines of base64, each `line` long but the last, each ended by `eol` (the last may end the
    // message instead).
    let mut lines: Vec<(usize, usize)> = Vec::new();
    let mut at = body;
    loop {
        let (content_end, next) = match memchr::memchr(b'\n', &raw[at..]) {
            Some(i) => {
                let nl = at + i;
                let ce = nl + 1 - eol_len;
                if ce < at || &raw[ce..=nl] != eol.bytes() {
                    break;
                }
                (ce, nl + 1)
            }
            None => (raw.len(), raw.len()),
        };
        let content = &raw[at..content_end];
        if content.is_empty() || content.len() > line || !all_b64(content) {
            break;
        }
        lines.push((at, content_end));
        at = next;
        if content.len() < line || next >= raw.len() {
            break;
        }
    }
    let (_, end) = *lines.last()?;
    let (last_start, last_end) = *lines.last()?;
    if !(last_end - last_start).is_multiple_of(4) {
        return None;
    }
    // Decoded a block of lines at a time (one call per block, not per line): padding anywhere
    // but at the very end makes a canonical decoder refuse the block.
    let mut data = Vec::with_capacity((end - body) / 4 * 3);
    let mut text = Vec::with_capacity(BLOCK_LINES * line);
    for block in lines.chunks(BLOCK_LINES) {
        text.clear();
        for &(s, e) in block {
            text.extend_from_slice(&raw[s..e]);
        }
        let at = data.len();
        data.resize(at + text.len() / 4 * 3, 0);
        let n = B64.decode_slice(&text, &mut data[at..]).ok()?;
        data.truncate(at + n);
        if block.last() != lines.last() && n != text.len() / 4 * 3 {
            return None;
        }
    }
    // Re-encoding is compared with these bytes by `pack`'s round trip.
    Some(Region {
        start: body,
        end,
        line,
        eol,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(data: &[u8], line: usize, eol: &str) -> String {
        let b64 = B64.encode(data);
        b64.as_bytes()
            .chunks(line)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(eol)
    }

    fn form(n: usize, seed: usize) -> Vec<u8> {
        (0..n).map(|k| ((k * 31 + seed) % 251) as u8).collect()
    }

    fn mail(attached: &[u8], line: usize, eol: &str) -> Vec<u8> {
        format!(
            "From: a@x.test{eol}To: b@y.test{eol}Subject: Referral{eol}MIME-Version: 1.0{eol}\
             Content-Type: multipart/mixed; boundary=\"b\"{eol}{eol}--b{eol}\
             Content-Type: text/plain{eol}{eol}Please see the form.{eol}--b{eol}\
             Content-Type: application/pdf{eol}Content-Disposition: attachment; filename=\"f.pdf\"{eol}\
             Content-Transfer-Encoding: base64{eol}{eol}{}{eol}--b--{eol}",
            wrap(attached, line, eol)
        )
        .into_bytes()
    }

    fn store<'p>(p: &'p Packed) -> impl Fn(&[u8; 32]) -> Option<&'p [u8]> + 'p {
        move |sha| p.blob(sha)
    }

    #[test]
    fn an_attached_file_is_taken_out_as_its_decoded_content_and_put_back_byte_for_byte() {
        let data = form(200_000, 3);
        let raw = mail(&data, 76, "\r\n");
        let p = pack(&raw).expect("packed");
        assert_eq!(p.blobs.len(), 1);
        assert_eq!(p.blobs[0].data, data);
        assert_eq!(p.blobs[0].hex(), hex::encode(Sha256::digest(&data)));
        assert!(p.skeleton.len() < 400, "{} bytes", p.skeleton.len());
        assert_eq!(unpack(&p.skeleton, store(&p)).unwrap(), raw);
        assert_eq!(unpacked_len(&p.skeleton).unwrap(), raw.len());
    }

    #[test]
    fn the_same_file_encoded_by_two_mail_programs_is_one_blob() {
        let data = form(5_000, 9);
        let theirs = pack(&mail(&data, 72, "\n")).expect("packed");
        let ours = pack(&mail(&data, 76, "\r\n")).expect("packed");
        assert_eq!(theirs.blobs[0].sha256, ours.blobs[0].sha256);
        assert_ne!(theirs.skeleton, ours.skeleton);
        assert_eq!(
            unpack(&theirs.skeleton, store(&ours)).unwrap(),
            mail(&data, 72, "\n")
        );
    }

    #[test]
    fn a_letter_composed_by_lettre_round_trips_and_shares_the_referrals_file() {
        use lettre::message::{Attachment, MultiPart, SinglePart, header::ContentType};
        let data = form(3_000, 1);
        let letter = lettre::Message::builder()
            .from("bsp@bury.test".parse().unwrap())
            .to("la.rep@bury.test".parse().unwrap())
            .subject("Screening")
            .multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain("Please decide.".to_string()))
                    .singlepart(
                        Attachment::new("form.pdf".into())
                            .body(data.clone(), ContentType::parse("application/pdf").unwrap()),
                    ),
            )
            .unwrap()
            .formatted();
        let p = pack(&letter).expect("packed");
        assert_eq!(unpack(&p.skeleton, store(&p)).unwrap(), letter);
        let referral = pack(&mail(&data, 76, "\r\n")).expect("packed");
        assert_eq!(p.blobs[0].sha256, referral.blobs[0].sha256);
    }

    #[test]
    fn what_is_small_not_base64_or_not_canonical_is_left_whole() {
        assert_eq!(pack(&mail(&form(500, 1), 76, "\r\n")), None, "small");
        assert_eq!(pack(b"Subject: hi\r\n\r\nhello\r\n"), None, "no part");
        // Lines of uneven length, as no encoder writes: not taken out, the message kept whole.
        let mut uneven = mail(&form(4_000, 2), 76, "\r\n");
        let at = uneven.windows(2).position(|w| w == b"\r\n").unwrap();
        let body = uneven
            .windows(4)
            .rposition(|w| w == b"\r\n\r\n")
            .map(|i| i + 4)
            .unwrap();
        assert!(at < body);
        uneven.remove(body + 10);
        assert_eq!(pack(&uneven), None);
        // Padding left off (a lenient decoder reads it; re-encoding would add it back).
        let data = form(2_000, 5);
        let b64 = wrap(&data, 76, "\r\n");
        let unpadded = String::from_utf8(mail(&data, 76, "\r\n"))
            .unwrap()
            .replace(&b64, b64.trim_end_matches('='));
        assert_ne!(b64, b64.trim_end_matches('='));
        assert_eq!(pack(unpadded.as_bytes()), None);
    }

    #[test]
    fn the_round_trip_check_refuses_a_packed_form_that_would_not_give_back_the_bytes() {
        let raw = mail(&form(3_000, 6), 76, "\r\n");
        let good = pack(&raw).expect("packed");
        assert!(round_trips(&good, &raw));
        let mut literal = good.clone();
        let at = literal.skeleton.len() - 2;
        literal.skeleton[at] ^= 0x20;
        assert!(!round_trips(&literal, &raw), "a literal byte changed");
        let mut blob = good.clone();
        blob.blobs[0].data[100] ^= 1;
        assert!(!round_trips(&blob, &raw), "a blob's byte changed");
        let mut short = good.clone();
        short.blobs[0].data.pop();
        assert!(!round_trips(&short, &raw), "a blob cut short");
        assert!(
            !round_trips(&good, &raw[..raw.len() - 1]),
            "bytes left over"
        );
    }

    #[test]
    fn files_of_every_length_and_line_shape_round_trip_across_block_boundaries() {
        let block = BLOCK_LINES * 57;
        for n in [
            1024,
            1025,
            1026,
            block - 1,
            block,
            block + 1,
            3 * block + 57,
        ] {
            for (line, eol) in [(76, "\r\n"), (72, "\n"), (64, "\r\n")] {
                let data = form(n, n + line);
                let raw = mail(&data, line, eol);
                let p = pack(&raw).unwrap_or_else(|| panic!("{n} bytes, {line} {eol:?}"));
                assert_eq!(p.blobs[0].data, data, "{n} bytes, {line}");
                assert_eq!(unpack(&p.skeleton, store(&p)).unwrap(), raw);
                let stood_in = stand_in(&p.skeleton, store(&p)).unwrap();
                assert_eq!(stood_in.put_back(&p.skeleton).unwrap(), raw);
            }
        }
    }

    #[test]
    fn a_compressed_skeleton_gives_back_the_letter_and_is_much_smaller() {
        let text =
            "Dear colleague,\r\nPlease give your screening decision by Friday.\r\n".repeat(40);
        let raw = format!("Subject: Screening\r\n\r\n{text}").into_bytes();
        assert_eq!(pack(&raw), None);
        let stored = compress(&whole(&raw)).expect("compressed");
        assert!(
            stored.len() * 3 < raw.len(),
            "{} of {}",
            stored.len(),
            raw.len()
        );
        let skeleton = decompress(&stored).unwrap();
        assert_eq!(unpack(&skeleton, |_| None).unwrap(), raw);
    }

    #[test]
    fn a_skeleton_is_never_unpacked_with_a_missing_or_altered_blob() {
        let p = pack(&mail(&form(3_000, 4), 76, "\r\n")).expect("packed");
        let name = p.blobs[0].hex();
        assert_eq!(
            unpack(&p.skeleton, |_| None),
            Err(PackError::Missing(name.clone()))
        );
        let mut altered = p.blobs[0].data.clone();
        altered[7] ^= 1;
        assert_eq!(
            unpack(&p.skeleton, |_| Some(altered.as_slice())),
            Err(PackError::Mismatch(name))
        );
        assert!(matches!(
            unpack(&p.skeleton[..p.skeleton.len() - 3], store(&p)),
            Err(PackError::Malformed(_))
        ));
        assert_eq!(blob_refs(&p.skeleton).unwrap().len(), 1);
    }

    #[test]
    fn each_file_stands_in_as_a_text_as_long_as_it_modulo_3_and_only_that_text_resolves() {
        let files: Vec<Vec<u8>> = (3_000..3_003).map(|n| form(n, n)).collect();
        let raw: Vec<u8> = files.iter().flat_map(|f| mail(f, 76, "\r\n")).collect();
        let p = pack(&raw).expect("packed");
        let s = stand_in(&p.skeleton, store(&p)).unwrap();
        assert_eq!(s.files(), 3);
        let texts: Vec<Vec<u8>> = String::from_utf8(s.bytes.clone())
            .unwrap()
            .lines()
            .filter(|l| l.len() > 40 && !l.contains(' ') && !l.contains(':'))
            .map(|l| B64.decode(l.trim()).unwrap())
            .collect();
        assert_eq!(texts.len(), 3, "{}", String::from_utf8_lossy(&s.bytes));
        for (i, (text, file)) in texts.iter().zip(&files).enumerate() {
            assert_eq!(text.len() % 3, file.len() % 3);
            assert_eq!(s.resolve(text), Some((i, file.as_slice())));
            let mut longer = text.clone();
            longer.push(b'.');
            assert_eq!(s.resolve(&longer), None);
            assert_eq!(s.resolve(&text[..text.len() - 1]), None);
            assert!(s.appears_in(text));
        }
        assert!(
            !s.appears_in(&raw),
            "the message itself never holds a stand-in"
        );
        let altered = form(3_001, 1);
        assert!(matches!(
            stand_in(&p.skeleton, |_| Some(altered.as_slice())),
            Err(PackError::Mismatch(_))
        ));
    }

    #[test]
    fn a_line_is_base64_when_every_byte_is_a_letter_a_digit_or_one_of_three_signs() {
        let is_b64 = |c: u8| c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'=';
        for c in 0..=255u8 {
            assert_eq!(all_b64(&[c]), is_b64(c), "byte {c:#04x}");
            let mut line = b"QUJDRA==".repeat(9);
            line[40] = c;
            assert_eq!(all_b64(&line), is_b64(c), "byte {c:#04x} inside a line");
        }
    }

    #[test]
    fn two_files_and_the_same_file_twice_are_named_in_order_and_stored_once_each() {
        let (a, b) = (form(3_000, 1), form(4_000, 2));
        let one = String::from_utf8(mail(&a, 76, "\r\n")).unwrap();
        let raw = format!(
            "{}\r\n{}\r\n{}",
            one,
            String::from_utf8(mail(&b, 76, "\r\n")).unwrap(),
            one
        )
        .into_bytes();
        let p = pack(&raw).expect("packed");
        assert_eq!(p.blobs.len(), 2);
        let refs = blob_refs(&p.skeleton).unwrap();
        assert_eq!(refs.len(), 3);
        assert_eq!(refs[0].sha256, refs[2].sha256);
        assert_eq!(refs[1].len, 4_000);
        assert_eq!(unpack(&p.skeleton, store(&p)).unwrap(), raw);
        // Put back from the stand-ins' files: the one used twice comes back twice.
        let stood_in = stand_in(&p.skeleton, store(&p)).unwrap();
        assert_eq!(stood_in.put_back(&p.skeleton).unwrap(), raw);
    }

    #[test]
    fn a_message_cut_off_inside_its_attachment_round_trips() {
        let raw = mail(&form(6_000, 8), 76, "\r\n");
        for cut in [raw.len() - 9, raw.len() - 120, raw.len() / 2] {
            let part = &raw[..cut];
            if let Some(p) = pack(part) {
                assert_eq!(unpack(&p.skeleton, store(&p)).unwrap(), part);
            }
        }
    }
}
