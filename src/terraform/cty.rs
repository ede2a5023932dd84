//! Terraform's values as a saved plan stores them (cty's msgpack encoding), decoded without
//! the provider schema, and the JSON forms `terraform show -json` derives from them.
//!
//! Why no schema is needed: in cty's msgpack every object and map is a msgpack map with string
//! keys, every list, set and tuple a msgpack array, an unknown value a msgpack extension, and
//! a value of a dynamic type (e.g. `terraform_data.input`) the pair `[type as JSON in msgpack
//! bin, value]`; bin appears nowhere else. JSON makes the same distinctions (objects and maps
//! are both JSON objects; lists, sets and tuples arrays), so the JSON follows from the msgpack
//! alone. One case needs the type: a number that neither int64 nor float64 holds exactly
//! (e.g. `0.1` typed in the configuration) is stored as its decimal text. Inside a dynamic
//! value the type says so and it becomes a JSON number again; in an attribute typed by a
//! provider schema it stays text (SDKv2 providers, like oracle/oci, plan float64 numbers and
//! never produce it; the cost estimate reads numeric text as a number either way).

use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;

/// A decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cty {
    Null,
    /// Known only after apply.
    Unknown,
    Bool(bool),
    Number(Number),
    String(String),
    /// A list, set or tuple.
    Seq(Vec<Cty>),
    /// An object or map.
    Map(BTreeMap<String, Cty>),
}

/// Decode one msgpack-encoded value.
pub fn decode(bytes: &[u8]) -> anyhow::Result<Cty> {
    let mut rd = bytes;
    let v = rmpv::decode::read_value(&mut rd)
        .map_err(|e| anyhow::anyhow!("a value is not valid msgpack ({e})"))?;
    if !rd.is_empty() {
        anyhow::bail!("a value has {} bytes after its msgpack encoding", rd.len());
    }
    from_msgpack(v, None)
}

/// The type of child `key`/`index` of a value of type `ty` (cty's JSON type notation).
fn child_type<'a>(ty: Option<&'a Value>, key: Option<&str>, index: usize) -> Option<&'a Value> {
    let t = ty?.as_array()?;
    match (t.first()?.as_str()?, t.get(1)?) {
        ("list" | "set" | "map", elem) => Some(elem),
        ("tuple", Value::Array(elems)) => elems.get(index),
        ("object", Value::Object(attrs)) => attrs.get(key?),
        _ => None,
    }
}

fn from_msgpack(v: rmpv::Value, ty: Option<&Value>) -> anyhow::Result<Cty> {
    use rmpv::Value as M;
    Ok(match v {
        M::Nil => Cty::Null,
        M::Boolean(b) => Cty::Bool(b),
        M::Integer(i) => Cty::Number(if let Some(n) = i.as_i64() {
            Number::from(n)
        } else if let Some(n) = i.as_u64() {
            Number::from(n)
        } else {
            anyhow::bail!("a msgpack integer out of range")
        }),
        M::F32(f) => Cty::Number(finite(f64::from(f))?),
        M::F64(f) => Cty::Number(finite(f)?),
        M::String(s) => {
            let s = s
                .into_str()
                .ok_or_else(|| anyhow::anyhow!("a string value is not UTF-8"))?;
            if ty.and_then(Value::as_str) == Some("number") {
                match serde_json::from_str::<Value>(&s) {
                    Ok(Value::Number(n)) => Cty::Number(n),
                    _ => anyhow::bail!("a number value is stored as {s:?}"),
                }
            } else {
                Cty::String(s)
            }
        }
        M::Binary(_) => anyhow::bail!("a binary value outside a dynamic value's type"),
        M::Ext(..) => Cty::Unknown,
        M::Array(items) => {
            if let [M::Binary(t), _] = items.as_slice() {
                // A dynamically typed value: [type JSON, value].
                let t: Value = serde_json::from_slice(t)
                    .map_err(|e| anyhow::anyhow!("a dynamic value's type is not JSON ({e})"))?;
                let inner = items.into_iter().nth(1).expect("two items");
                return from_msgpack(inner, Some(&t));
            }
            Cty::Seq(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, x)| from_msgpack(x, child_type(ty, None, i)))
                    .collect::<anyhow::Result<_>>()?,
            )
        }
        M::Map(entries) => {
            let mut m = BTreeMap::new();
            for (k, x) in entries {
                let M::String(k) = k else {
                    anyhow::bail!("a map key is not a string");
                };
                let k = k
                    .into_str()
                    .ok_or_else(|| anyhow::anyhow!("a map key is not UTF-8"))?;
                let x = from_msgpack(x, child_type(ty, Some(&k), 0))?;
                m.insert(k, x);
            }
            Cty::Map(m)
        }
    })
}

fn finite(f: f64) -> anyhow::Result<Number> {
    Number::from_f64(f).ok_or_else(|| anyhow::anyhow!("an infinite number cannot be shown as JSON"))
}

impl Cty {
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Cty::Unknown => false,
            Cty::Seq(v) => v.iter().all(Cty::is_wholly_known),
            Cty::Map(m) => m.values().all(Cty::is_wholly_known),
            _ => true,
        }
    }

    /// The value as plan JSON shows it: unknown attributes left out, unknown sequence elements
    /// null (to keep positions); `None` when the value itself is unknown.
    pub fn known_json(&self) -> Option<Value> {
        Some(match self {
            Cty::Unknown => return None,
            Cty::Null => Value::Null,
            Cty::Bool(b) => Value::Bool(*b),
            Cty::Number(n) => Value::Number(n.clone()),
            Cty::String(s) => Value::String(s.clone()),
            Cty::Seq(v) => Value::Array(
                v.iter()
                    .map(|x| x.known_json().unwrap_or(Value::Null))
                    .collect(),
            ),
            Cty::Map(m) => Value::Object(
                m.iter()
                    .filter_map(|(k, x)| Some((k.clone(), x.known_json()?)))
                    .collect(),
            ),
        })
    }

    /// Plan JSON's `after_unknown` for this value: `true` where unknown; objects keep only
    /// their entries that are not `false`, sequences every element.
    pub fn unknown_as_bool(&self) -> Value {
        match self {
            Cty::Unknown => Value::Bool(true),
            Cty::Seq(v) => Value::Array(v.iter().map(Cty::unknown_as_bool).collect()),
            Cty::Map(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), x.unknown_as_bool()))
                    .filter(|(_, b)| b != &Value::Bool(false))
                    .collect(),
            ),
            _ => Value::Bool(false),
        }
    }
}

/// One step of an attribute path.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Attr(String),
    /// An index: a number into a list or tuple, a string into a map.
    Key(Cty),
}

/// A resolved step, as plan JSON writes paths.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Follow `path` into `v`; `None` when it leads nowhere in this value (Terraform marks only
/// parts that exist).
fn resolve(v: &Cty, path: &[Step]) -> Option<Vec<Seg>> {
    let mut node = v;
    let mut out = Vec::with_capacity(path.len());
    for step in path {
        match (step, node) {
            (Step::Attr(k) | Step::Key(Cty::String(k)), Cty::Map(m)) => {
                node = m.get(k)?;
                out.push(Seg::Key(k.clone()));
            }
            (Step::Key(Cty::Number(n)), Cty::Seq(items)) => {
                let i = usize::try_from(n.as_u64()?).ok()?;
                node = items.get(i)?;
                out.push(Seg::Index(i));
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Plan JSON's `*_sensitive` form for `v` given the sensitive paths Terraform recorded:
/// `true` at every marked part, nested in objects and arrays (array gaps `false`).
pub fn sensitive_tree(v: &Cty, paths: &[Vec<Step>]) -> Value {
    let mut root = Value::Bool(false);
    for segs in paths.iter().filter_map(|p| resolve(v, p)) {
        let mut node = &mut root;
        for seg in &segs {
            if node == &Value::Bool(true) {
                break;
            }
            node = match seg {
                Seg::Key(k) => {
                    if !node.is_object() {
                        *node = Value::Object(Map::new());
                    }
                    node.as_object_mut()
                        .expect("made an object")
                        .entry(k.clone())
                        .or_insert(Value::Bool(false))
                }
                Seg::Index(i) => {
                    if !node.is_array() {
                        *node = Value::Array(Vec::new());
                    }
                    let a = node.as_array_mut().expect("made an array");
                    while a.len() <= *i {
                        a.push(Value::Bool(false));
                    }
                    &mut a[*i]
                }
            };
        }
        *node = Value::Bool(true);
    }
    root
}

/// A path in plan JSON's `replace_paths` form: attribute names and map keys as strings,
/// list indices as numbers.
pub fn path_json(path: &[Step]) -> Value {
    Value::Array(
        path.iter()
            .map(|s| match s {
                Step::Attr(a) => Value::String(a.clone()),
                Step::Key(k) => k.known_json().unwrap_or(Value::Null),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmpv::Value as M;
    use serde_json::json;

    fn enc(v: &M) -> Vec<u8> {
        let mut b = Vec::new();
        rmpv::encode::write_value(&mut b, v).unwrap();
        b
    }

    fn s(x: &str) -> M {
        M::String(x.into())
    }

    fn map(entries: Vec<(&str, M)>) -> M {
        M::Map(entries.into_iter().map(|(k, v)| (s(k), v)).collect())
    }

    fn unknown() -> M {
        M::Ext(0, vec![0])
    }

    #[test]
    fn objects_sequences_unknowns_and_dynamic_values() {
        let v = map(vec![
            ("name", s("lb")),
            ("ocpus", M::F64(1.5)),
            ("count", M::from(3)),
            ("id", unknown()),
            (
                "ips",
                M::Array(vec![s("10.0.0.1"), M::Ext(12, vec![0x81, 1, 0xc2])]),
            ),
            ("gone", M::Nil),
            (
                "input",
                M::Array(vec![
                    M::Binary(br#"["object",{"cpu":"number","tags":["list","string"]}]"#.to_vec()),
                    map(vec![("cpu", s("0.1")), ("tags", M::Array(vec![s("0.1")]))]),
                ]),
            ),
        ]);
        let c = decode(&enc(&v)).unwrap();
        assert!(!c.is_wholly_known());
        assert_eq!(
            c.known_json().unwrap(),
            json!({"name": "lb", "ocpus": 1.5, "count": 3, "ips": ["10.0.0.1", null],
                   "gone": null, "input": {"cpu": 0.1, "tags": ["0.1"]}})
        );
        assert_eq!(
            c.unknown_as_bool(),
            json!({"id": true, "ips": [false, true], "input": {"tags": [false]}})
        );
        assert_eq!(decode(&enc(&unknown())).unwrap().known_json(), None);
        assert_eq!(
            decode(&enc(&M::Array(vec![]))).unwrap().unknown_as_bool(),
            json!([])
        );
    }

    #[test]
    fn bad_encodings_are_refused() {
        assert!(decode(&[0x92, 0xc0]).is_err()); // cut short
        let mut two = enc(&M::Nil);
        two.push(0xc0);
        assert!(decode(&two).is_err());
        assert!(decode(&enc(&M::Binary(vec![1]))).is_err());
        assert!(decode(&enc(&M::Map(vec![(M::from(1), M::Nil)]))).is_err());
        assert!(decode(&enc(&M::F64(f64::INFINITY))).is_err());
        let bad_number = M::Array(vec![M::Binary(br#""number""#.to_vec()), s("many")]);
        assert!(decode(&enc(&bad_number)).is_err());
    }

    #[test]
    fn sensitive_paths_become_plan_json_masks() {
        let c = decode(&enc(&map(vec![
            ("password", s("x")),
            (
                "containers",
                M::Array(vec![
                    map(vec![]),
                    map(vec![("env", map(vec![("DB", s("u"))]))]),
                ]),
            ),
            ("tags", map(vec![("a", s("1"))])),
            ("nothing", M::Nil),
        ])))
        .unwrap();
        let attr = |a: &str| Step::Attr(a.into());
        let tree = sensitive_tree(
            &c,
            &[
                vec![attr("password")],
                vec![
                    attr("containers"),
                    Step::Key(Cty::Number(1.into())),
                    attr("env"),
                    Step::Key(Cty::String("DB".into())),
                ],
                // Leads nowhere in this value: ignored, as Terraform ignores it.
                vec![attr("nothing"), attr("deeper")],
                vec![attr("containers"), Step::Key(Cty::Number(5.into()))],
                // A whole map, then a part of it: the whole stays marked.
                vec![attr("tags")],
                vec![attr("tags"), Step::Key(Cty::String("a".into()))],
            ],
        );
        assert_eq!(
            tree,
            json!({"password": true, "containers": [false, {"env": {"DB": true}}], "tags": true})
        );
        assert_eq!(sensitive_tree(&c, &[vec![]]), json!(true));
        assert_eq!(sensitive_tree(&c, &[]), json!(false));
        assert_eq!(
            path_json(&[
                attr("shape_config"),
                Step::Key(Cty::Number(0.into())),
                attr("ocpus")
            ]),
            json!(["shape_config", 0, "ocpus"])
        );
    }
}
