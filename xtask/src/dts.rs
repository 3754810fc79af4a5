//! The `.d.ts` gate: the npm package's public surface must not use `any` as a type.

/// Lines (1-based number, original text) of `dts` where `any` is used as a type.
///
/// Comments and string literals are blanked first (JSDoc prose and the literal type
/// `"any"` are fine), and a word `any` followed by `:` / `?:` is a name being declared
/// (a parameter or property called `any`), not a type. `interface InitOutput` is skipped:
/// it lists the raw wasm exports, where wasm-bindgen always writes externrefs as `any`.
pub fn any_type_lines(dts: &str) -> Vec<(usize, String)> {
    let code = blank_block_after(&blank_comments_and_strings(dts), "interface InitOutput");
    let originals: Vec<&str> = dts.lines().collect();
    let mut hits = Vec::new();
    for (idx, line) in code.lines().enumerate() {
        if line_uses_any_type(line) {
            hits.push((idx + 1, originals.get(idx).unwrap_or(&"").to_string()));
        }
    }
    hits
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

fn line_uses_any_type(line: &str) -> bool {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i + 3 <= chars.len() {
        if chars[i..i + 3] == ['a', 'n', 'y'] {
            let before = i.checked_sub(1).map(|j| chars[j]);
            let after = chars.get(i + 3).copied();
            let starts_word = !before.is_some_and(|c| is_ident(c) || c == '.');
            let ends_word = !after.is_some_and(is_ident);
            if starts_word && ends_word {
                let rest: String = chars[i + 3..].iter().collect();
                let rest = rest.trim_start();
                let declares_name = rest.starts_with(':') || rest.starts_with("?:");
                if !declares_name {
                    return true;
                }
            }
        }
        i += 1;
    }
    false
}

/// Blanks (keeping newlines) the `{ … }` block that follows `marker` in `code`.
fn blank_block_after(code: &str, marker: &str) -> String {
    let Some(start) = code.find(marker) else {
        return code.to_string();
    };
    let Some(open) = code[start..].find('{').map(|i| start + i) else {
        return code.to_string();
    };
    let mut out = String::with_capacity(code.len());
    out.push_str(&code[..=open]);
    let mut depth = 1usize;
    for (i, c) in code[open + 1..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            out.push_str(&code[open + 1 + i..]);
            return out;
        }
        out.push(if c == '\n' { '\n' } else { ' ' });
    }
    out
}

/// Replaces the contents of `//` and `/* */` comments and of string / template literals
/// with spaces, keeping newlines so line numbers still match.
fn blank_comments_and_strings(src: &str) -> String {
    #[derive(PartialEq)]
    enum State {
        Code,
        LineComment,
        BlockComment,
        Str(char),
    }
    let mut out = String::with_capacity(src.len());
    let mut state = State::Code;
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        match state {
            State::Code => match c {
                '/' if chars.peek() == Some(&'/') => {
                    chars.next();
                    out.push_str("  ");
                    state = State::LineComment;
                }
                '/' if chars.peek() == Some(&'*') => {
                    chars.next();
                    out.push_str("  ");
                    state = State::BlockComment;
                }
                '"' | '\'' | '`' => {
                    out.push(c);
                    state = State::Str(c);
                }
                c => out.push(c),
            },
            State::LineComment => {
                if c == '\n' {
                    out.push('\n');
                    state = State::Code;
                } else {
                    out.push(' ');
                }
            }
            State::BlockComment => {
                if c == '*' && chars.peek() == Some(&'/') {
                    chars.next();
                    out.push_str("  ");
                    state = State::Code;
                } else {
                    out.push(if c == '\n' { '\n' } else { ' ' });
                }
            }
            State::Str(quote) => {
                if c == '\\' {
                    out.push(' ');
                    if let Some(next) = chars.next() {
                        out.push(if next == '\n' { '\n' } else { ' ' });
                    }
                } else if c == quote {
                    out.push(c);
                    state = State::Code;
                } else {
                    out.push(if c == '\n' { '\n' } else { ' ' });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_any_in_type_positions() {
        let dts = r#"/* tslint:disable */
export function a(x: any): void;
export function b(): Promise<any>;
export function c(xs: any[]): number;
export type D = string | any;
export type E = any | string;
export type F = (x: number) => any;
export function g(cb: (e: Error) => void, o: Record<string, any>): void;
export type H = any;
export function ok(x: string): Promise<void>;
"#;
        let lines: Vec<usize> = any_type_lines(dts).into_iter().map(|(n, _)| n).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn ignores_comments_strings_names_and_lookalikes() {
        let dts = r#"/**
 * Returns any stored payment; accepts any reader.
 */
export function list(filter?: { state?: StoredState }): Promise<StoredPayment[]>; // any
export type Kind = "any" | 'many';
export function f(any: number, company: Company, anyThing?: string): void;
export interface I { readonly any?: string; any: number; x: Many; y: foo.any }
export type T = `any${string}`;
export type U = unknown;
"#;
        assert_eq!(any_type_lines(dts), vec![]);
    }

    #[test]
    fn skips_raw_wasm_exports_in_init_output() {
        let dts = "export interface InitOutput {
    readonly memory: WebAssembly.Memory;
    readonly terminal_create: (a: any) => any;
    readonly nested: { x: any };
}
export function f(x: any): void;
export default function __wbg_init(m?: InitInput): Promise<InitOutput>;
";
        assert_eq!(
            any_type_lines(dts),
            vec![(6, "export function f(x: any): void;".to_string())]
        );
    }

    #[test]
    fn reports_original_text_with_line_numbers() {
        let dts = "/* any\n*/\nexport type X = {\n  y: any;\n};\n";
        assert_eq!(any_type_lines(dts), vec![(4, "  y: any;".to_string())]);
    }
}
