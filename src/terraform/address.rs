//! Resource instance addresses as Terraform writes them (`module.net["a"].data.oci_x.y[0]`):
//! split into module path, mode, type, name and instance key, and ordered the way Terraform
//! orders them in `terraform show -json` (module path first, shorter first; data sources
//! before managed resources; then type, name, and instance key: none, then numbers by value,
//! then strings).

use std::cmp::Ordering;

/// An instance key: `[0]` or `["a"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    None,
    Int(i64),
    Str(String),
}

impl Key {
    fn rank(&self) -> u8 {
        match self {
            Key::None => 0,
            Key::Int(_) => 1,
            Key::Str(_) => 2,
        }
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Key::Int(a), Key::Int(b)) => a.cmp(b),
            (Key::Str(a), Key::Str(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One resource instance address, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceAddr {
    /// `module.a["x"].module.b` as written, empty for the root module.
    pub module: String,
    /// The module path's steps (name, key), for ordering.
    pub module_steps: Vec<(String, Key)>,
    /// `managed` or `data`.
    pub mode: &'static str,
    pub rtype: String,
    pub name: String,
    pub key: Key,
}

impl InstanceAddr {
    /// Terraform's order (`AbsResourceInstance.Less`).
    pub fn terraform_cmp(&self, other: &Self) -> Ordering {
        let modules = self
            .module_steps
            .len()
            .cmp(&other.module_steps.len())
            .then_with(|| self.module_steps.cmp(&other.module_steps));
        // Data sources sort before managed resources.
        let mode_rank = |m: &str| u8::from(m != "data");
        modules
            .then_with(|| mode_rank(self.mode).cmp(&mode_rank(other.mode)))
            .then_with(|| self.rtype.cmp(&other.rtype))
            .then_with(|| self.name.cmp(&other.name))
            .then_with(|| self.key.cmp(&other.key))
    }
}

/// Split at the dots that are outside instance keys (`["a.b"]` stays one piece).
fn pieces(address: &str) -> anyhow::Result<Vec<&str>> {
    let mut out = Vec::new();
    let (mut start, mut depth, mut in_str, mut escaped) = (0, 0usize, false, false);
    for (i, ch) in address.char_indices() {
        if in_str {
            match ch {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match ch {
            '"' if depth > 0 => in_str = true,
            '[' => depth += 1,
            ']' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| anyhow::anyhow!("unbalanced `]` in address {address:?}"))?
            }
            '.' if depth == 0 => {
                out.push(&address[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 || in_str {
        anyhow::bail!("unterminated instance key in address {address:?}");
    }
    out.push(&address[start..]);
    Ok(out)
}

/// `name[key]` -> (name, key).
fn name_and_key(piece: &str, address: &str) -> anyhow::Result<(String, Key)> {
    let Some(open) = piece.find('[') else {
        return Ok((piece.to_string(), Key::None));
    };
    let inner = piece[open..]
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| anyhow::anyhow!("bad instance key in address {address:?}"))?;
    let key =
        if inner.starts_with('"') {
            Key::Str(unquote(inner).ok_or_else(|| {
                anyhow::anyhow!("bad string instance key {inner} in address {address:?}")
            })?)
        } else {
            Key::Int(inner.parse().map_err(|_| {
                anyhow::anyhow!("bad instance key [{inner}] in address {address:?}")
            })?)
        };
    Ok((piece[..open].to_string(), key))
}

/// A string instance key as Terraform writes it in addresses (`["a"]`): HCL quoting (as
/// [`crate::render::hcl::quote`] writes it; Terraform also escapes printable-looking Unicode
/// spaces such as U+00A0, which no key calops renders holds).
pub fn quote_key(k: &str) -> String {
    format!("[{}]", crate::render::hcl::quote(k))
}

/// An HCL quoted string as Terraform writes instance keys (escapes `\"`, `\\`, `\n`, `\r`,
/// `\t`, `\uNNNN`, `\UNNNNNNNN`; `$${` and `%%{` for literal `${` and `%{`).
fn unquote(q: &str) -> Option<String> {
    let body = q.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'u' => out.push(hex_char(&mut chars, 4)?),
                'U' => out.push(hex_char(&mut chars, 8)?),
                _ => return None,
            },
            '$' | '%' if chars.peek() == Some(&c) => {
                // `$${` is a literal `${`; a lone `$$` elsewhere stays as written.
                let mut ahead = chars.clone();
                ahead.next();
                if ahead.peek() == Some(&'{') {
                    chars.next();
                }
                out.push(c);
            }
            other => out.push(other),
        }
    }
    Some(out)
}

fn hex_char(chars: &mut impl Iterator<Item = char>, n: usize) -> Option<char> {
    let hex: String = chars.take(n).collect();
    if hex.len() != n {
        return None;
    }
    char::from_u32(u32::from_str_radix(&hex, 16).ok()?)
}

/// Parse a resource instance address.
pub fn parse(address: &str) -> anyhow::Result<InstanceAddr> {
    let p = pieces(address)?;
    let mut i = 0;
    let mut module_steps = Vec::new();
    while p.len() - i > 2 && p[i] == "module" {
        module_steps.push(name_and_key(p[i + 1], address)?);
        i += 2;
    }
    let module = p[..i].join(".");
    let rest = &p[i..];
    let (mode, rest) = match rest {
        ["data", t, n] => ("data", [*t, *n]),
        [t, n] => ("managed", [*t, *n]),
        _ => anyhow::bail!("{address:?} is not a resource instance address"),
    };
    let (name, key) = name_and_key(rest[1], address)?;
    if rest[0].is_empty() || name.is_empty() || rest[0].contains('[') {
        anyhow::bail!("{address:?} is not a resource instance address");
    }
    Ok(InstanceAddr {
        module,
        module_steps,
        mode,
        rtype: rest[0].to_string(),
        name,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_taken_apart() {
        let a = parse(r#"module.net["a.b"].module.sub[2].data.oci_core_vcn.v["k\"1"]"#).unwrap();
        assert_eq!(a.module, r#"module.net["a.b"].module.sub[2]"#);
        assert_eq!(
            a.module_steps,
            [
                ("net".to_string(), Key::Str("a.b".into())),
                ("sub".to_string(), Key::Int(2))
            ]
        );
        assert_eq!(a.mode, "data");
        assert_eq!(a.rtype, "oci_core_vcn");
        assert_eq!(a.name, "v");
        assert_eq!(a.key, Key::Str("k\"1".into()));
        let b = parse("terraform_data.db").unwrap();
        assert_eq!(
            (b.module.as_str(), b.mode, b.key),
            ("", "managed", Key::None)
        );
        assert_eq!(
            parse(r#"t.n["$${x}\u00e9"]"#).unwrap().key,
            Key::Str("${x}é".into())
        );
        for k in [
            "a.b",
            "c\"d",
            "${x}",
            "$$x",
            "%{y}",
            "tab\there\n",
            "\u{1}é\u{a0}",
            "back\\",
        ] {
            let addr = format!("t.n{}", quote_key(k));
            assert_eq!(parse(&addr).unwrap().key, Key::Str(k.into()), "{addr}");
        }
        assert_eq!(quote_key("${x}"), r#"["$${x}"]"#);
        for bad in [
            "t",
            "module.m.t",
            "t.n[x]",
            "t.n[\"open]",
            "a.b.c.d",
            "t.n]",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn order_is_terraforms() {
        let mut v = vec![
            "module.b.t.a",
            "t.n[\"b\"]",
            "t.n[10]",
            "t.n[2]",
            "t.n",
            "data.z.z",
            "a.z",
            "module.a[\"x\"].t.a",
            "module.a[1].t.a",
            "module.a.module.b.t.a",
        ];
        v.sort_by(|x, y| parse(x).unwrap().terraform_cmp(&parse(y).unwrap()));
        assert_eq!(
            v,
            [
                "data.z.z",
                "a.z",
                "t.n",
                "t.n[2]",
                "t.n[10]",
                "t.n[\"b\"]",
                "module.a[1].t.a",
                "module.a[\"x\"].t.a",
                "module.b.t.a",
                "module.a.module.b.t.a",
            ]
        );
    }
}
