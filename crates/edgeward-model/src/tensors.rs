//! A bounded, validated view of a safetensors file, and a writer for new ones.
//!
//! The keyed shuffle and the watermark read untrusted model files. Parsing is the
//! `safetensors` crate's (offsets contiguous and in bounds, sizes matching dtype and shape);
//! this module adds a tighter header bound, keeps the header's exact bytes (so a file can be
//! rebuilt bit for bit) and decodes F32 matrices with a check that every value is finite.

use std::{collections::BTreeMap, ops::Range};

use safetensors::{tensor::Metadata, Dtype, SafeTensors};

/// Largest header accepted, in bytes (the crate's own limit is 100 MB; a header only lists
/// names, shapes and offsets, so 16 MiB is thousands of times more than real models use).
pub const MAX_HEADER_BYTES: usize = 16 << 20;

/// Why a safetensors file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TensorFileError {
    /// The 8-byte header length is missing or larger than [`MAX_HEADER_BYTES`].
    #[error("safetensors header length {0} is missing or larger than {MAX_HEADER_BYTES} bytes")]
    HeaderLength(u64),
    /// The header or the data layout is invalid.
    #[error("invalid safetensors file: {0}")]
    Invalid(String),
    /// A tensor the operation needs is not in the file.
    #[error("tensor {0:?} is not in the model")]
    MissingTensor(String),
    /// A tensor has the wrong dtype or rank for the operation.
    #[error("tensor {name:?} is {found}; {wanted} is needed")]
    WrongKind {
        /// The tensor.
        name: String,
        /// What it is (dtype and shape).
        found: String,
        /// What the operation needs.
        wanted: &'static str,
    },
    /// A tensor holds NaN or an infinity, on which no statistic is meaningful.
    #[error("tensor {0:?} holds a value that is not finite")]
    NotFinite(String),
}

/// One tensor of a file: its name, dtype, shape and where its bytes are in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorEntry {
    /// The tensor's name.
    pub name: String,
    /// Its element type.
    pub dtype: Dtype,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its bytes, as a range of the whole file.
    pub range: Range<usize>,
}

/// A parsed safetensors file borrowing the file's bytes.
#[derive(Debug)]
pub struct TensorFile<'a> {
    bytes: &'a [u8],
    header_end: usize,
    tensors: Vec<TensorEntry>,
    metadata: BTreeMap<String, String>,
}

impl<'a> TensorFile<'a> {
    /// Parses and validates a whole safetensors file.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, TensorFileError> {
        let len = bytes
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
            .ok_or(TensorFileError::HeaderLength(0))?;
        let header_len = usize::try_from(len)
            .ok()
            .filter(|n| *n <= MAX_HEADER_BYTES)
            .ok_or(TensorFileError::HeaderLength(len))?;
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| TensorFileError::Invalid(e.to_string()))?;
        let header_end = 8 + header_len;
        let tensors = entries(&meta, header_end)?;
        let metadata = meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Ok(TensorFile {
            bytes,
            header_end,
            tensors,
            metadata,
        })
    }

    /// The header's JSON bytes, exactly as stored (without the 8-byte length).
    pub fn header(&self) -> &'a [u8] {
        &self.bytes[8..self.header_end]
    }

    /// The tensors in the order of their data in the file.
    pub fn tensors(&self) -> &[TensorEntry] {
        &self.tensors
    }

    /// The `__metadata__` map (empty when absent).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Result<&TensorEntry, TensorFileError> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| TensorFileError::MissingTensor(name.to_string()))
    }

    /// The bytes of a tensor of this file.
    pub fn data(&self, entry: &TensorEntry) -> &'a [u8] {
        &self.bytes[entry.range.clone()]
    }

    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Decodes the 2-D F32 tensor `name`, refusing NaN and infinities.
    pub fn f32_matrix(&self, name: &str) -> Result<Matrix, TensorFileError> {
        let entry = self.get(name)?;
        let [rows, cols] = entry.shape[..] else {
            return Err(wrong_kind(entry, "a 2-D F32 matrix"));
        };
        if entry.dtype != Dtype::F32 {
            return Err(wrong_kind(entry, "a 2-D F32 matrix"));
        }
        let data: Vec<f32> = self
            .data(entry)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if data.iter().any(|v| !v.is_finite()) {
            return Err(TensorFileError::NotFinite(name.to_string()));
        }
        Ok(Matrix { rows, cols, data })
    }
}

fn wrong_kind(entry: &TensorEntry, wanted: &'static str) -> TensorFileError {
    TensorFileError::WrongKind {
        name: entry.name.clone(),
        found: format!("{} {:?}", entry.dtype, entry.shape),
        wanted,
    }
}

fn entries(meta: &Metadata, base: usize) -> Result<Vec<TensorEntry>, TensorFileError> {
    let infos = meta.tensors();
    meta.offset_keys()
        .into_iter()
        .map(|name| {
            let info = infos
                .get(&name)
                .ok_or_else(|| TensorFileError::Invalid(format!("tensor {name:?} vanished")))?;
            let (start, end) = info.data_offsets;
            let range = base
                .checked_add(start)
                .zip(base.checked_add(end))
                .map(|(s, e)| s..e)
                .ok_or_else(|| TensorFileError::Invalid(format!("offsets of {name:?}")))?;
            Ok(TensorEntry {
                dtype: info.dtype,
                shape: info.shape.clone(),
                range,
                name,
            })
        })
        .collect()
}

/// A dense row-major F32 matrix decoded from a tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    /// Number of rows (output units of a linear layer).
    pub rows: usize,
    /// Number of columns (inputs of a linear layer).
    pub cols: usize,
    /// `rows * cols` values, row after row.
    pub data: Vec<f32>,
}

impl Matrix {
    /// Row `r`.
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// The little-endian bytes of the matrix, as a safetensors F32 tensor stores them.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.data.iter().flat_map(|v| v.to_le_bytes()).collect()
    }
}

/// A tensor to write: name, dtype, shape and its bytes.
pub(crate) struct NewTensor<'a> {
    /// The name.
    pub(crate) name: String,
    /// The element type.
    pub(crate) dtype: Dtype,
    /// The shape.
    pub(crate) shape: Vec<usize>,
    /// The bytes (little-endian, row-major).
    pub(crate) data: &'a [u8],
}

/// Writes a safetensors file holding `tensors` in the given order, with `metadata` as its
/// `__metadata__`; the header is padded with spaces to a multiple of 8 bytes, as the
/// reference implementation does.
pub(crate) fn write(metadata: &BTreeMap<String, String>, tensors: &[NewTensor<'_>]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), serde_json::json!(metadata));
    }
    let mut offset = 0usize;
    for t in tensors {
        let end = offset + t.data.len();
        header.insert(
            t.name.clone(),
            serde_json::json!({
                "dtype": t.dtype.to_string(),
                "shape": t.shape,
                "data_offsets": [offset, end],
            }),
        );
        offset = end;
    }
    let mut json = serde_json::Value::Object(header).to_string().into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + offset);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for t in tensors {
        out.extend_from_slice(t.data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_the_crate_reads() {
        let a = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let file = write(
            &BTreeMap::from([("k".to_string(), "v".to_string())]),
            &[
                NewTensor {
                    name: "b".into(),
                    dtype: Dtype::F32,
                    shape: vec![2, 1],
                    data: &a,
                },
                NewTensor {
                    name: "a".into(),
                    dtype: Dtype::U8,
                    shape: vec![3],
                    data: &a[..3],
                },
            ],
        );
        let parsed = TensorFile::parse(&file).unwrap();
        let names: Vec<_> = parsed.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(parsed.data(parsed.get("a").unwrap()), &a[..3]);
        assert_eq!(parsed.metadata()["k"], "v");
        assert_eq!(parsed.header().len() % 8, 0);
    }

    #[test]
    fn refuses_huge_header_length_and_truncation() {
        let mut f = ((MAX_HEADER_BYTES + 1) as u64).to_le_bytes().to_vec();
        f.extend_from_slice(b"{}");
        assert!(matches!(
            TensorFile::parse(&f),
            Err(TensorFileError::HeaderLength(_))
        ));
        assert!(matches!(
            TensorFile::parse(b"\x02\0\0"),
            Err(TensorFileError::HeaderLength(0))
        ));
        let ok = write(&BTreeMap::new(), &[]);
        assert!(TensorFile::parse(&ok).is_ok());
        assert!(matches!(
            TensorFile::parse(&ok[..ok.len() - 1]),
            Err(TensorFileError::Invalid(_))
        ));
    }
}
