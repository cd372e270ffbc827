//! The chain description: an ordered list of stages (first-stage bootloader, second-stage
//! bootloader, OS, application, model…), each an image with its signature bundle or an
//! MCUboot image, and its security counter.
//!
//! It is untrusted input like the images: [`Chain::parse`] bounds its size, the number of
//! stages and every path (relative, inside the chain's directory). The hardware class and
//! the security counter it states must equal the signed ones, so editing it gains nothing.

use std::path::{Component, Path, PathBuf};

use edgeward_core::statement::validate_claim_name;
use serde::Deserialize;

use crate::BootError;

/// Largest chain description accepted, in bytes.
pub const MAX_CHAIN_BYTES: usize = 64 * 1024;
/// Most stages a chain may have.
pub const MAX_STAGES: usize = 16;
/// Longest stage name: the element's counter `boot.<name>` must fit 64 characters.
pub const MAX_STAGE_NAME: usize = 32;
/// Longest path in a chain description.
pub const MAX_PATH_BYTES: usize = 1024;

/// How a stage's image is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageFormat {
    /// An OpenSSF model-signing bundle (certificate mode, chaining to the root).
    Bundle {
        /// The bundle file.
        signature: PathBuf,
    },
    /// An MCUboot image signed by `imgtool sign`; the signing key's certificate chain
    /// (PEM, signing certificate first) must chain to the root.
    Mcuboot {
        /// The certificate chain file.
        certificate: PathBuf,
    },
}

/// One stage of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageSpec {
    /// Its position, from 0.
    pub index: usize,
    /// Its name (`[A-Za-z0-9._-]`, at most [`MAX_STAGE_NAME`]).
    pub name: String,
    /// The image file.
    pub image: PathBuf,
    /// How it is signed.
    pub format: StageFormat,
    /// The security counter the chain expects (must equal the signed one).
    pub security_counter: u64,
}

impl StageSpec {
    /// The secure element's counter for this stage.
    pub fn counter_name(&self) -> String {
        counter_name(&self.name)
    }
}

/// The secure element's anti-rollback counter for stage `name`.
pub fn counter_name(name: &str) -> String {
    format!("boot.{name}")
}

/// A parsed chain description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The hardware class every stage must be signed for.
    pub hardware: String,
    /// A root-signed CRL to check signers against, if the chain names one.
    pub crl: Option<PathBuf>,
    /// The stages, in boot order.
    pub stages: Vec<StageSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainToml {
    version: u32,
    hardware: String,
    #[serde(default)]
    crl: Option<String>,
    #[serde(default)]
    stage: Vec<StageToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StageToml {
    name: String,
    image: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    certificate: Option<String>,
    security_counter: u64,
}

impl Chain {
    /// Reads and parses the chain description at `path`; stage paths are relative to its
    /// directory.
    pub fn load(path: &Path) -> Result<Chain, BootError> {
        use std::io::Read;
        let file = std::fs::File::open(path).map_err(|e| BootError::io(path, e))?;
        let mut bytes = Vec::new();
        file.take(MAX_CHAIN_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| BootError::io(path, e))?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Chain::parse(&bytes, base)
    }

    /// Parses a chain description; relative paths are joined to `base`.
    pub fn parse(bytes: &[u8], base: &Path) -> Result<Chain, BootError> {
        let bad = |m: String| BootError::Chain(m);
        if bytes.len() > MAX_CHAIN_BYTES {
            return Err(bad(format!(
                "larger than {MAX_CHAIN_BYTES} bytes; a chain description is a short list"
            )));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| bad(format!("not UTF-8: {e}")))?;
        let raw: ChainToml = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
        if raw.version != 1 {
            return Err(bad(format!(
                "version {} is not supported (expected 1)",
                raw.version
            )));
        }
        validate_claim_name("hardware class", &raw.hardware).map_err(|e| bad(e.to_string()))?;
        if raw.stage.is_empty() || raw.stage.len() > MAX_STAGES {
            return Err(bad(format!(
                "{} stages (a chain has 1 to {MAX_STAGES})",
                raw.stage.len()
            )));
        }
        let crl = raw
            .crl
            .as_deref()
            .map(|p| relative_path("crl", p, base))
            .transpose()?;
        let mut stages: Vec<StageSpec> = Vec::with_capacity(raw.stage.len());
        for (index, s) in raw.stage.into_iter().enumerate() {
            let at = |m: String| bad(format!("stage {index}: {m}"));
            validate_claim_name("stage name", &s.name).map_err(|e| at(e.to_string()))?;
            if s.name.len() > MAX_STAGE_NAME {
                return Err(at(format!(
                    "name {:?} is longer than {MAX_STAGE_NAME} characters",
                    s.name
                )));
            }
            if s.name == crate::policy::POLICY_CLAIM {
                return Err(at(format!(
                    "name {:?} is reserved for the chain description's own signature",
                    s.name
                )));
            }
            if stages.iter().any(|o| o.name == s.name) {
                return Err(at(format!("name {:?} is used twice", s.name)));
            }
            let format = match (s.format.as_deref().unwrap_or("bundle"), s.signature, s.certificate)
            {
                ("bundle", Some(sig), None) => StageFormat::Bundle {
                    signature: relative_path("signature", &sig, base).map_err(|e| at(e.to_string()))?,
                },
                ("mcuboot", None, Some(cert)) => StageFormat::Mcuboot {
                    certificate: relative_path("certificate", &cert, base)
                        .map_err(|e| at(e.to_string()))?,
                },
                ("bundle", _, _) => {
                    return Err(at(
                        "a bundle stage names its `signature` file and no `certificate`".into(),
                    ))
                }
                ("mcuboot", _, _) => {
                    return Err(at(
                        "an mcuboot stage names its signer's `certificate` chain and no `signature` (it is inside the image)".into(),
                    ))
                }
                (other, _, _) => {
                    return Err(at(format!(
                        "format {other:?} is not supported (bundle or mcuboot)"
                    )))
                }
            };
            stages.push(StageSpec {
                index,
                image: relative_path("image", &s.image, base).map_err(|e| at(e.to_string()))?,
                name: s.name,
                format,
                security_counter: s.security_counter,
            });
        }
        Ok(Chain {
            hardware: raw.hardware,
            crl,
            stages,
        })
    }
}

/// A path from the description: relative, at most [`MAX_PATH_BYTES`], no `..`.
fn relative_path(what: &str, p: &str, base: &Path) -> Result<PathBuf, BootError> {
    let path = Path::new(p);
    let ok = !p.is_empty()
        && p.len() <= MAX_PATH_BYTES
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !ok {
        return Err(BootError::Chain(format!(
            "{what} path {p:?} must be relative to the chain's directory, without `..`"
        )));
    }
    Ok(base.join(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version = 1
hardware = "sim-board-v1"

[[stage]]
name = "fsbl"
image = "stages/0-fsbl.bin"
signature = "stages/0-fsbl.bin.sig"
security_counter = 3

[[stage]]
name = "mcu"
format = "mcuboot"
image = "stages/1-mcu.bin"
certificate = "stages/1-mcu.chain.pem"
security_counter = 1
"#;

    #[test]
    fn parses_a_chain() {
        let c = Chain::parse(GOOD.as_bytes(), Path::new("/dev-root")).unwrap();
        assert_eq!(c.hardware, "sim-board-v1");
        assert_eq!(c.stages.len(), 2);
        assert_eq!(c.stages[1].index, 1);
        assert_eq!(c.stages[0].counter_name(), "boot.fsbl");
        assert_eq!(c.stages[0].image, Path::new("/dev-root/stages/0-fsbl.bin"));
        assert!(matches!(c.stages[1].format, StageFormat::Mcuboot { .. }));
    }

    #[test]
    fn refuses_bad_descriptions() {
        let cases = [
            (
                GOOD.replace("stages/0-fsbl.bin\"", "../0-fsbl.bin\""),
                "without `..`",
            ),
            (
                GOOD.replace("stages/0-fsbl.bin\"", "/etc/passwd\""),
                "without `..`",
            ),
            (
                GOOD.replace("name = \"mcu\"", "name = \"fsbl\""),
                "used twice",
            ),
            (GOOD.replace("version = 1", "version = 2"), "version 2"),
            (
                GOOD.replace("security_counter = 3", "security_counter = -1"),
                "expected u64",
            ),
            (
                GOOD.replace("hardware = \"sim-board-v1\"", "hardware = \"a b\""),
                "hardware",
            ),
            (
                GOOD.replace("signature = \"stages/0-fsbl.bin.sig\"", ""),
                "signature",
            ),
            (format!("{GOOD}\nextra = 1\n"), "extra"),
            ("version = 1\nhardware = \"x\"\n".to_string(), "0 stages"),
        ];
        for (text, want) in cases {
            let err = Chain::parse(text.as_bytes(), Path::new(".")).unwrap_err();
            assert!(err.to_string().contains(want), "{want}: {err}");
        }
        let big = vec![b'#'; MAX_CHAIN_BYTES + 1];
        assert!(Chain::parse(&big, Path::new(".")).is_err());
    }
}
