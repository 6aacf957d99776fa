//! Whisper weights from CTranslate2's format (the only Whisper weights on the package
//! registries) to whisper.cpp's ggml format: the same tensors under whisper.cpp's names, fused
//! query/key/value matrices split apart, matrices in f16 and vectors in f32, preceded by the
//! header, the mel filters and the vocabulary whisper.cpp reads first.

use std::collections::HashMap;
use std::io::Write;

use super::SetupError;

/// One variable of a CTranslate2 model.
struct Var<'a> {
    shape: Vec<usize>,
    kind: u8,
    data: &'a [u8],
}

/// A parsed CTranslate2 `model.bin` (binary version 6): variables by name, aliases resolved.
pub(super) struct Ct2<'a> {
    vars: HashMap<String, Var<'a>>,
}

fn bad(detail: impl Into<String>) -> SetupError {
    SetupError::Convert(detail.into())
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SetupError> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| bad("model.bin ends too early (truncated?)"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    fn u8(&mut self) -> Result<u8, SetupError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, SetupError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, SetupError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A string stored with its length (NUL included) in front.
    fn string(&mut self) -> Result<String, SetupError> {
        let length = usize::from(self.u16()?);
        let raw = self.take(length)?;
        let text = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(text.to_vec()).map_err(|_| bad("model.bin holds a name that is not UTF-8"))
    }
}

/// Bytes per element of CTranslate2's types: f32, i8, i16, i32, f16, bf16.
fn element_size(kind: u8) -> Option<usize> {
    Some(match kind {
        0 | 3 => 4,
        1 => 1,
        2 | 4 | 5 => 2,
        _ => return None,
    })
}

impl<'a> Ct2<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, SetupError> {
        let mut cursor = Cursor { bytes, at: 0 };
        let version = cursor.u32()?;
        if version != 6 {
            return Err(bad(format!(
                "model.bin is CTranslate2 format version {version}; version 6 is supported"
            )));
        }
        let spec = cursor.string()?;
        if spec != "WhisperSpec" {
            return Err(bad(format!("model.bin holds a {spec}, not a Whisper model")));
        }
        let _revision = cursor.u32()?;
        let count = cursor.u32()?;
        let mut vars = HashMap::new();
        for _ in 0..count {
            let name = cursor.string()?;
            let rank = cursor.u8()?;
            let shape = (0..rank)
                .map(|_| cursor.u32().map(|d| d as usize))
                .collect::<Result<Vec<_>, _>>()?;
            let kind = cursor.u8()?;
            let length = cursor.u32()? as usize;
            let size = element_size(kind).ok_or_else(|| bad(format!("{name} has unknown type {kind}")))?;
            if shape.iter().product::<usize>() * size != length {
                return Err(bad(format!("{name}: its size does not match its shape")));
            }
            let data = cursor.take(length)?;
            vars.insert(name, Var { shape, kind, data });
        }
        if cursor.at < bytes.len() {
            let aliases = cursor.u32()?;
            for _ in 0..aliases {
                let (alias, target) = (cursor.string()?, cursor.string()?);
                if let Some(var) = vars.get(&target) {
                    let copy = Var {
                        shape: var.shape.clone(),
                        kind: var.kind,
                        data: var.data,
                    };
                    vars.insert(alias, copy);
                }
            }
        }
        Ok(Self { vars })
    }

    fn var(&self, name: &str) -> Result<&Var<'a>, SetupError> {
        self.vars
            .get(name)
            .ok_or_else(|| bad(format!("model.bin has no {name}")))
    }

    /// A scalar stored as an integer (the head counts).
    fn integer(&self, name: &str) -> Result<i64, SetupError> {
        let var = self.var(name)?;
        Ok(match (var.kind, var.data) {
            (1, [b]) => i64::from(*b as i8),
            (2, [a, b]) => i64::from(i16::from_le_bytes([*a, *b])),
            (3, [a, b, c, d]) => i64::from(i32::from_le_bytes([*a, *b, *c, *d])),
            _ => return Err(bad(format!("{name} is not an integer"))),
        })
    }

    fn layers(&self, stack: &str) -> usize {
        let prefix = format!("{stack}/layer_");
        let mut seen = std::collections::BTreeSet::new();
        for name in self.vars.keys() {
            if let Some(rest) = name.strip_prefix(&prefix)
                && let Some((index, _)) = rest.split_once('/')
                && let Ok(index) = index.parse::<usize>()
            {
                seen.insert(index);
            }
        }
        seen.len()
    }
}

/// The mel filters for `n_mels` bands, from numpy's `mel_filters.npz` (a zip of `.npy` arrays).
pub(super) fn mel_filters(npz: &[u8], n_mels: usize) -> Result<(usize, usize, Vec<f32>), SetupError> {
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(npz)).map_err(|e| bad(format!("mel_filters.npz: {e}")))?;
    let mut entry = archive
        .by_name(&format!("mel_{n_mels}.npy"))
        .map_err(|_| bad(format!("mel_filters.npz has no filters for {n_mels} mel bands")))?;
    let mut npy = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut npy).map_err(|e| bad(format!("mel_filters.npz: {e}")))?;
    npy_matrix(&npy)
}

/// A 2-D little-endian f32 or f64 array from a `.npy` file: (rows, columns, values).
fn npy_matrix(npy: &[u8]) -> Result<(usize, usize, Vec<f32>), SetupError> {
    let header_error = || bad("mel filters: not a .npy array this converter reads");
    if npy.len() < 10 || &npy[..6] != b"\x93NUMPY" {
        return Err(header_error());
    }
    let (length, start) = match npy[6] {
        1 => (usize::from(u16::from_le_bytes([npy[8], npy[9]])), 10),
        _ if npy.len() >= 12 => (u32::from_le_bytes([npy[8], npy[9], npy[10], npy[11]]) as usize, 12),
        _ => return Err(header_error()),
    };
    let header = npy
        .get(start..start + length)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(header_error)?;
    if header.contains("'fortran_order': True") {
        return Err(header_error());
    }
    let size = if header.contains("'<f4'") {
        4
    } else if header.contains("'<f8'") {
        8
    } else {
        return Err(header_error());
    };
    let shape = header
        .split_once("'shape': (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(dims, _)| {
            dims.split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(|d| d.parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
        })
        .and_then(Result::ok)
        .filter(|dims| dims.len() == 2)
        .ok_or_else(header_error)?;
    let data = &npy[start + length..];
    if data.len() != shape[0] * shape[1] * size {
        return Err(header_error());
    }
    let values = data
        .chunks_exact(size)
        .map(|c| match size {
            4 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            _ => f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32,
        })
        .collect();
    Ok((shape[0], shape[1], values))
}

/// The byte-level BPE tokens of a tiktoken file (`base64 rank` per line), in rank order.
pub(super) fn tiktoken(text: &[u8]) -> Result<Vec<Vec<u8>>, SetupError> {
    use base64::Engine as _;
    let mut tokens = Vec::new();
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let encoded = line.split(|&b| b == b' ').next().unwrap_or_default();
        let token = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| bad("gpt2.tiktoken: a token is not base64"))?;
        tokens.push(token);
    }
    Ok(tokens)
}

fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let value = match (exponent, mantissa) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: normalize it.
            let shift = mantissa.leading_zeros() - 21;
            let mantissa = (mantissa << shift) & 0x3ff;
            sign | ((113 - shift) << 23) | (mantissa << 13)
        }
        (0x1f, _) => sign | 0x7f80_0000 | (mantissa << 13),
        _ => sign | ((exponent + 112) << 23) | (mantissa << 13),
    };
    f32::from_bits(value)
}

fn f32_to_f16(value: f32) -> u16 {
    let bits = value.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exponent = ((bits >> 23) & 0xff) as i32;
    let mantissa = bits & 0x7f_ffff;
    if exponent == 0xff {
        return sign | 0x7c00 | if mantissa != 0 { 0x200 } else { 0 };
    }
    let half_exponent = exponent - 112;
    if half_exponent >= 0x1f {
        return sign | 0x7c00;
    }
    if half_exponent <= 0 {
        if half_exponent < -10 {
            return sign;
        }
        let full = mantissa | 0x80_0000;
        let shift = (14 - half_exponent) as u32;
        let rounded = (full + (1 << (shift - 1)) - 1 + ((full >> shift) & 1)) >> shift;
        return sign | rounded as u16;
    }
    let rounded = mantissa + 0xfff + ((mantissa >> 13) & 1);
    let (half_exponent, rounded) = if rounded & 0x80_0000 != 0 {
        (half_exponent + 1, 0)
    } else {
        (half_exponent, rounded)
    };
    if half_exponent >= 0x1f {
        return sign | 0x7c00;
    }
    sign | ((half_exponent as u16) << 10) | (rounded >> 13) as u16
}

/// Elements of `var` (f16 or f32) as f32.
fn as_f32(var: &Var<'_>, data: &[u8]) -> Result<Vec<f32>, SetupError> {
    match var.kind {
        0 => Ok(data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()),
        4 => Ok(data
            .chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect()),
        kind => Err(bad(format!(
            "a weight has type {kind}; f16 or f32 weights are supported"
        ))),
    }
}

/// Writes the ggml file; `tick` is called after each tensor with (done, total).
pub(super) fn write_ggml(
    model: &Ct2<'_>,
    mel: (usize, usize, Vec<f32>),
    vocab: &[Vec<u8>],
    out: &mut impl Write,
    mut tick: impl FnMut(usize, usize),
) -> Result<(), SetupError> {
    let io = |e: std::io::Error| SetupError::Io(format!("writing the model: {e}"));
    let embeddings = model.var("decoder/embeddings/weight")?;
    let [n_vocab, n_state] = embeddings.shape[..] else {
        return Err(bad("decoder/embeddings/weight is not a matrix"));
    };
    let n_audio_ctx = model.var("encoder/position_encodings/encodings")?.shape[0];
    let n_text_ctx = model.var("decoder/position_encodings/encodings")?.shape[0];
    let conv1 = model.var("encoder/conv1/weight")?;
    let n_mels = *conv1
        .shape
        .get(1)
        .ok_or_else(|| bad("encoder/conv1/weight has no mel axis"))?;
    let (n_encoder, n_decoder) = (model.layers("encoder"), model.layers("decoder"));
    let header = [
        n_vocab as i64,
        n_audio_ctx as i64,
        n_state as i64,
        model.integer("encoder/num_heads")?,
        n_encoder as i64,
        n_text_ctx as i64,
        n_state as i64,
        model.integer("decoder/num_heads")?,
        n_decoder as i64,
        n_mels as i64,
        1, // f16
    ];
    let int = |out: &mut dyn Write, value: i64| out.write_all(&(value as i32).to_le_bytes());
    int(out, 0x6767_6d6c).map_err(io)?;
    for value in header {
        int(out, value).map_err(io)?;
    }
    let (rows, columns, filters) = mel;
    if rows != n_mels {
        return Err(bad(format!(
            "the mel filters have {rows} bands; the model needs {n_mels}"
        )));
    }
    int(out, rows as i64).map_err(io)?;
    int(out, columns as i64).map_err(io)?;
    for value in filters {
        out.write_all(&value.to_le_bytes()).map_err(io)?;
    }
    int(out, vocab.len() as i64).map_err(io)?;
    for token in vocab {
        int(out, token.len() as i64).map_err(io)?;
        out.write_all(token).map_err(io)?;
    }
    let plan = plan(model, n_encoder, n_decoder)?;
    let total = plan.len();
    for (done, tensor) in plan.into_iter().enumerate() {
        tensor.write(model, out)?;
        tick(done + 1, total);
    }
    Ok(())
}

/// One ggml tensor: a whisper.cpp name, the CT2 variable, which of its `parts` equal slices
/// along the first axis, an optional shape override, and whether it is stored as f16.
struct Tensor {
    name: String,
    source: String,
    part: usize,
    parts: usize,
    shape: Option<Vec<usize>>,
    half: bool,
}

impl Tensor {
    fn write(&self, model: &Ct2<'_>, out: &mut impl Write) -> Result<(), SetupError> {
        let io = |e: std::io::Error| SetupError::Io(format!("writing the model: {e}"));
        let var = model.var(&self.source)?;
        let size = element_size(var.kind).unwrap_or(1);
        let slice = var.data.len() / self.parts;
        let data = &var.data[self.part * slice..(self.part + 1) * slice];
        let mut shape = self.shape.clone().unwrap_or_else(|| var.shape.clone());
        if self.shape.is_none() && self.parts > 1 {
            shape[0] /= self.parts;
        }
        if shape.iter().product::<usize>() * size != data.len() {
            return Err(bad(format!("{}: its size does not match its shape", self.source)));
        }
        out.write_all(&(shape.len() as i32).to_le_bytes()).map_err(io)?;
        out.write_all(&(self.name.len() as i32).to_le_bytes()).map_err(io)?;
        out.write_all(&i32::from(self.half).to_le_bytes()).map_err(io)?;
        for extent in shape.iter().rev() {
            out.write_all(&(*extent as i32).to_le_bytes()).map_err(io)?;
        }
        out.write_all(self.name.as_bytes()).map_err(io)?;
        match (self.half, var.kind) {
            (true, 4) | (false, 0) => out.write_all(data).map_err(io)?,
            (true, _) => {
                let values = as_f32(var, data)?;
                let bytes: Vec<u8> = values.iter().flat_map(|v| f32_to_f16(*v).to_le_bytes()).collect();
                out.write_all(&bytes).map_err(io)?;
            }
            (false, _) => {
                let values = as_f32(var, data)?;
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                out.write_all(&bytes).map_err(io)?;
            }
        }
        Ok(())
    }
}

/// Every tensor whisper.cpp loads, in its order.
fn plan(model: &Ct2<'_>, encoders: usize, decoders: usize) -> Result<Vec<Tensor>, SetupError> {
    let mut plan = Vec::new();
    let mut add = |name: String, source: String, part: usize, parts: usize, half: bool| {
        plan.push(Tensor {
            name,
            source,
            part,
            parts,
            shape: None,
            half,
        });
    };
    let attention = |add: &mut dyn FnMut(String, String, usize, usize, bool), dst: &str, src: &str, fused: bool| {
        if fused {
            // Self attention: linear_0 holds query, key and value; the key has no bias.
            add(
                format!("{dst}.query.weight"),
                format!("{src}/linear_0/weight"),
                0,
                3,
                true,
            );
            add(format!("{dst}.query.bias"), format!("{src}/linear_0/bias"), 0, 3, false);
            add(
                format!("{dst}.key.weight"),
                format!("{src}/linear_0/weight"),
                1,
                3,
                true,
            );
            add(
                format!("{dst}.value.weight"),
                format!("{src}/linear_0/weight"),
                2,
                3,
                true,
            );
            add(format!("{dst}.value.bias"), format!("{src}/linear_0/bias"), 2, 3, false);
            add(
                format!("{dst}.out.weight"),
                format!("{src}/linear_1/weight"),
                0,
                1,
                true,
            );
            add(format!("{dst}.out.bias"), format!("{src}/linear_1/bias"), 0, 1, false);
        } else {
            // Cross attention: linear_0 the query, linear_1 key and value, linear_2 the output.
            add(
                format!("{dst}.query.weight"),
                format!("{src}/linear_0/weight"),
                0,
                1,
                true,
            );
            add(format!("{dst}.query.bias"), format!("{src}/linear_0/bias"), 0, 1, false);
            add(
                format!("{dst}.key.weight"),
                format!("{src}/linear_1/weight"),
                0,
                2,
                true,
            );
            add(
                format!("{dst}.value.weight"),
                format!("{src}/linear_1/weight"),
                1,
                2,
                true,
            );
            add(format!("{dst}.value.bias"), format!("{src}/linear_1/bias"), 1, 2, false);
            add(
                format!("{dst}.out.weight"),
                format!("{src}/linear_2/weight"),
                0,
                1,
                true,
            );
            add(format!("{dst}.out.bias"), format!("{src}/linear_2/bias"), 0, 1, false);
        }
    };
    let norm = |add: &mut dyn FnMut(String, String, usize, usize, bool), dst: &str, src: &str| {
        add(format!("{dst}.weight"), format!("{src}/gamma"), 0, 1, false);
        add(format!("{dst}.bias"), format!("{src}/beta"), 0, 1, false);
    };
    let mlp = |add: &mut dyn FnMut(String, String, usize, usize, bool), dst: &str, src: &str| {
        norm(add, &format!("{dst}.mlp_ln"), &format!("{src}/ffn/layer_norm"));
        add(
            format!("{dst}.mlp.0.weight"),
            format!("{src}/ffn/linear_0/weight"),
            0,
            1,
            true,
        );
        add(
            format!("{dst}.mlp.0.bias"),
            format!("{src}/ffn/linear_0/bias"),
            0,
            1,
            false,
        );
        add(
            format!("{dst}.mlp.2.weight"),
            format!("{src}/ffn/linear_1/weight"),
            0,
            1,
            true,
        );
        add(
            format!("{dst}.mlp.2.bias"),
            format!("{src}/ffn/linear_1/bias"),
            0,
            1,
            false,
        );
    };
    let add = &mut add;
    add(
        "encoder.positional_embedding".into(),
        "encoder/position_encodings/encodings".into(),
        0,
        1,
        false,
    );
    add("encoder.conv1.weight".into(), "encoder/conv1/weight".into(), 0, 1, true);
    add("encoder.conv1.bias".into(), "encoder/conv1/bias".into(), 0, 1, false);
    add("encoder.conv2.weight".into(), "encoder/conv2/weight".into(), 0, 1, true);
    add("encoder.conv2.bias".into(), "encoder/conv2/bias".into(), 0, 1, false);
    for i in 0..encoders {
        let (src, dst) = (format!("encoder/layer_{i}"), format!("encoder.blocks.{i}"));
        norm(
            add,
            &format!("{dst}.attn_ln"),
            &format!("{src}/self_attention/layer_norm"),
        );
        attention(add, &format!("{dst}.attn"), &format!("{src}/self_attention"), true);
        mlp(add, &dst, &src);
    }
    norm(add, "encoder.ln_post", "encoder/layer_norm");
    add(
        "decoder.positional_embedding".into(),
        "decoder/position_encodings/encodings".into(),
        0,
        1,
        false,
    );
    add(
        "decoder.token_embedding.weight".into(),
        "decoder/embeddings/weight".into(),
        0,
        1,
        true,
    );
    for i in 0..decoders {
        let (src, dst) = (format!("decoder/layer_{i}"), format!("decoder.blocks.{i}"));
        norm(
            add,
            &format!("{dst}.attn_ln"),
            &format!("{src}/self_attention/layer_norm"),
        );
        attention(add, &format!("{dst}.attn"), &format!("{src}/self_attention"), true);
        norm(
            add,
            &format!("{dst}.cross_attn_ln"),
            &format!("{src}/attention/layer_norm"),
        );
        attention(add, &format!("{dst}.cross_attn"), &format!("{src}/attention"), false);
        mlp(add, &dst, &src);
    }
    norm(add, "decoder.ln", "decoder/layer_norm");
    // whisper.cpp wants the convolution biases as (n, 1) columns.
    for tensor in plan.iter_mut() {
        if tensor.name.starts_with("encoder.conv") && tensor.name.ends_with(".bias") {
            let length = model.var(&tensor.source)?.shape.iter().product();
            tensor.shape = Some(vec![length, 1]);
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats_convert_both_ways() {
        for value in [0.0f32, 1.0, -2.5, 0.000_061_035_156, 65504.0, 0.333_251_95, 1e-7] {
            let back = f16_to_f32(f32_to_f16(value));
            assert!((back - value).abs() <= value.abs() * 1e-3 + 1e-7, "{value} -> {back}");
        }
        assert_eq!(f32_to_f16(1.0), 0x3c00);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert!(f16_to_f32(f32_to_f16(1e6)).is_infinite());
    }

    #[test]
    fn npy_matrices_are_read() {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut npy = b"\x93NUMPY\x01\x00".to_vec();
        npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
        npy.extend_from_slice(header.as_bytes());
        for v in [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0] {
            npy.extend_from_slice(&v.to_le_bytes());
        }
        let (rows, columns, values) = npy_matrix(&npy).unwrap();
        assert_eq!((rows, columns), (2, 3));
        assert_eq!(values, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert!(npy_matrix(&npy[..npy.len() - 1]).is_err());
    }
}
