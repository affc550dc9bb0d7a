//! Maps read from serialized input refuse a key given twice: formats such
//! as JSON allow it, and keeping the last value would pass silently.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// Reads a map, failing on the first repeated key with an error that names
/// the key and `place` (the format adds its own position).
pub(crate) fn map<'de, D, K, V>(d: D, place: &'static str) -> Result<BTreeMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord + fmt::Display,
    V: Deserialize<'de>,
{
    struct Unique<K, V> {
        place: &'static str,
        kv: PhantomData<fn() -> (K, V)>,
    }
    impl<'de, K, V> Visitor<'de> for Unique<K, V>
    where
        K: Deserialize<'de> + Ord + fmt::Display,
        V: Deserialize<'de>,
    {
        type Value = BTreeMap<K, V>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a map ({}) with each key at most once", self.place)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = access.next_key::<K>()? {
                if out.contains_key(&key) {
                    // Keys are names, capped in length where they are
                    // checked; cap the echo here too, before that check.
                    let shown: String = key.to_string().chars().take(64).collect();
                    return Err(de::Error::custom(format_args!(
                        "duplicate key `{shown}` in {}",
                        self.place
                    )));
                }
                let value = access.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Unique {
        place,
        kv: PhantomData,
    })
}

/// `labels` of a deployment.
pub(crate) fn labels<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    map(d, "labels")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_long_repeated_key_is_shown_cut() {
        let key = "k".repeat(1000);
        let json = format!(r#"{{"{key}": 1, "{key}": 2}}"#);
        let mut de = serde_json::Deserializer::from_str(&json);
        let e = super::map::<_, String, u32>(&mut de, "labels")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("duplicate key `{}` in labels", "k".repeat(64))),
            "{e}"
        );
        assert!(e.len() < 200, "{e}");
    }
}
