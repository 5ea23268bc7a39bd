//! `.dbn` / `.dbn.zst` files as a byte stream for the decoder. Compression is detected by
//! the zstd frame magic, not the file name.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Counts bytes read from the file itself, so progress can be shown for compressed input.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

enum Body {
    Plain(Counting<File>),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<Counting<File>>>),
}

pub struct DbnFileSource {
    body: Body,
    pub size: u64,
    pub compressed: bool,
}

impl DbnFileSource {
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let size = file.metadata()?.len();
        let mut magic = [0u8; 4];
        let n = read_up_to(&mut file, &mut magic)?;
        let compressed = n == 4 && magic == ZSTD_MAGIC;
        let file = File::open(path)?;
        let counting = Counting { inner: file, count: 0 };
        let body = if compressed {
            Body::Zstd(zstd::stream::read::Decoder::new(counting)?)
        } else {
            Body::Plain(counting)
        };
        Ok(Self { body, size, compressed })
    }

    /// File bytes consumed so far (compressed bytes for zstd input).
    pub fn position(&self) -> u64 {
        match &self.body {
            Body::Plain(c) => c.count,
            Body::Zstd(d) => d.get_ref().get_ref().count,
        }
    }
}

impl Read for DbnFileSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.body {
            Body::Plain(r) => r.read(buf),
            Body::Zstd(r) => r.read(buf),
        }
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
