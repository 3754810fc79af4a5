//! Drops the `name` custom section (function names for stack traces, about a third of the
//! file) from the shipped `.wasm`. wasm-bindgen needs the other custom sections of its input,
//! so this runs on its output, not through `strip = true`.

/// Reads an unsigned LEB128 number at `at`; returns it and the position after it.
fn leb128(bytes: &[u8], mut at: usize) -> Option<(usize, usize)> {
    let (mut value, mut shift) = (0usize, 0u32);
    loop {
        let b = *bytes.get(at)?;
        at += 1;
        value |= usize::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some((value, at));
        }
        shift += 7;
        if shift > 35 {
            return None;
        }
    }
}

/// The module without its `name` section; `None` if `wasm` is not a well-formed module.
pub fn without_names(wasm: &[u8]) -> Option<Vec<u8>> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return None;
    }
    let mut out = wasm[..8].to_vec();
    let mut at = 8;
    while at < wasm.len() {
        let id = wasm[at];
        let (size, body) = leb128(wasm, at + 1)?;
        let end = body.checked_add(size).filter(|&e| e <= wasm.len())?;
        let is_names = id == 0 && {
            let (len, name) = leb128(wasm, body)?;
            wasm.get(name..name + len) == Some(b"name".as_slice())
        };
        if !is_names {
            out.extend_from_slice(&wasm[at..end]);
        }
        at = end;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(name: &str, payload: &[u8]) -> Vec<u8> {
        let mut body = vec![name.len() as u8];
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(payload);
        let mut s = vec![0u8, body.len() as u8];
        s.extend(body);
        s
    }

    #[test]
    fn drops_only_the_name_section() {
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        module.extend([1u8, 4, 1, 0x60, 0, 0]); // type section: one `() -> ()`
        module.extend(custom("name", b"\x01\x02ab"));
        module.extend(custom("producers", b"xyz"));
        let stripped = without_names(&module).unwrap();
        let mut expected = b"\0asm\x01\0\0\0".to_vec();
        expected.extend([1u8, 4, 1, 0x60, 0, 0]);
        expected.extend(custom("producers", b"xyz"));
        assert_eq!(stripped, expected);
    }

    #[test]
    fn refuses_what_is_not_a_module() {
        assert_eq!(without_names(b"not wasm"), None);
        let mut truncated = b"\0asm\x01\0\0\0".to_vec();
        truncated.extend([1u8, 40, 1]);
        assert_eq!(without_names(&truncated), None);
    }
}
