//! `SortedMap<V>`: the map of the wire and stored formats (metadata, amounts per currency,
//! limits, the ledger), keyed by `String` and kept sorted by key, so it iterates and
//! serializes exactly as a `BTreeMap<String, V>` does (same JSON, byte for byte). Every
//! `BTreeMap` key/value pair compiles its own copy of the B-tree (~49 KB of the SDK's wasm
//! for its five); here the keys are one `Vec<String>` beside the values, whatever `V`, so the
//! search and the key handling are compiled once and each value type adds a few hundred
//! bytes. Lookups are a binary search; inserts and removals shift the vectors.

use std::fmt;
use std::iter::Zip;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `keys` sorted and unique; `values[i]` belongs to `keys[i]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SortedMap<V> {
    keys: Vec<String>,
    values: Vec<V>,
}

pub type Iter<'a, V> = Zip<std::slice::Iter<'a, String>, std::slice::Iter<'a, V>>;
pub type IntoIter<V> = Zip<std::vec::IntoIter<String>, std::vec::IntoIter<V>>;

/// Where `key` is (`Ok`) or would go (`Err`). Not generic: compiled once.
fn find(keys: &[String], key: &str) -> Result<usize, usize> {
    keys.binary_search_by(|k| k.as_str().cmp(key))
}

impl<V> SortedMap<V> {
    pub const fn new() -> Self {
        Self {
            keys: Vec::new(),
            values: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        find(&self.keys, key).ok().map(|i| &self.values[i])
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        find(&self.keys, key).ok().map(|i| &mut self.values[i])
    }

    pub fn contains_key(&self, key: &str) -> bool {
        find(&self.keys, key).is_ok()
    }

    /// Sets `key` to `value`; the value it had, if any.
    pub fn insert(&mut self, key: String, value: V) -> Option<V> {
        match find(&self.keys, &key) {
            Ok(i) => Some(std::mem::replace(&mut self.values[i], value)),
            Err(i) => {
                self.keys.insert(i, key);
                self.values.insert(i, value);
                None
            }
        }
    }

    /// The value of `key`, inserted as `V::default()` first if absent (`BTreeMap`'s
    /// `entry(key).or_default()`).
    pub fn get_or_insert_default(&mut self, key: &str) -> &mut V
    where
        V: Default,
    {
        let i = match find(&self.keys, key) {
            Ok(i) => i,
            Err(i) => {
                self.keys.insert(i, key.to_owned());
                self.values.insert(i, V::default());
                i
            }
        };
        &mut self.values[i]
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        let i = find(&self.keys, key).ok()?;
        self.keys.remove(i);
        Some(self.values.remove(i))
    }

    /// The entries in key order.
    pub fn iter(&self) -> Iter<'_, V> {
        self.keys.iter().zip(self.values.iter())
    }

    pub fn keys(&self) -> std::slice::Iter<'_, String> {
        self.keys.iter()
    }

    pub fn values(&self) -> std::slice::Iter<'_, V> {
        self.values.iter()
    }
}

impl<V> Default for SortedMap<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: fmt::Debug> fmt::Debug for SortedMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A repeated key keeps the last value, as `BTreeMap` does.
impl<V> FromIterator<(String, V)> for SortedMap<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        let mut map = Self::new();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

impl<V, const N: usize> From<[(String, V); N]> for SortedMap<V> {
    fn from(entries: [(String, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl<'a, V> IntoIterator for &'a SortedMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = Iter<'a, V>;

    fn into_iter(self) -> Iter<'a, V> {
        self.iter()
    }
}

impl<V> IntoIterator for SortedMap<V> {
    type Item = (String, V);
    type IntoIter = IntoIter<V>;

    fn into_iter(self) -> IntoIter<V> {
        self.keys.into_iter().zip(self.values)
    }
}

/// A JSON object, keys in order: what serde writes for a `BTreeMap` (`collect_map` too).
impl<V: Serialize> Serialize for SortedMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// From a map, as serde reads a `BTreeMap` (same `expecting` text, so the same errors); a
/// repeated key keeps the last value.
impl<'de, V: Deserialize<'de>> Deserialize<'de> for SortedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = SortedMap<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut map = SortedMap::new();
                while let Some((k, v)) = access.next_entry()? {
                    map.insert(k, v);
                }
                Ok(map)
            }
        }

        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn entries() -> Vec<(String, u64)> {
        // Out of order, with a non-ASCII key and a prefix of another key.
        [
            ("usd", 3),
            ("eur", 1),
            ("é", 9),
            ("", 0),
            ("eu", 2),
            ("Usd", 4),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    #[test]
    fn iterates_in_key_order_whatever_the_insert_order() {
        let btree: BTreeMap<String, u64> = entries().into_iter().collect();
        let want: Vec<_> = btree.iter().collect();
        let forward: SortedMap<u64> = entries().into_iter().collect();
        let backward: SortedMap<u64> = entries().into_iter().rev().collect();
        assert_eq!(forward.iter().collect::<Vec<_>>(), want);
        assert_eq!(forward, backward);
        assert_eq!(
            forward.keys().collect::<Vec<_>>(),
            btree.keys().collect::<Vec<_>>()
        );
        assert_eq!(
            forward.values().collect::<Vec<_>>(),
            btree.values().collect::<Vec<_>>()
        );
        assert_eq!(
            forward.into_iter().collect::<Vec<_>>(),
            btree.into_iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn json_is_byte_for_byte_the_btreemaps() {
        let btree: BTreeMap<String, u64> = entries().into_iter().collect();
        let map: SortedMap<u64> = entries().into_iter().collect();
        let text = serde_json::to_string(&map).unwrap();
        assert_eq!(text, serde_json::to_string(&btree).unwrap());
        assert_eq!(text, r#"{"":0,"Usd":4,"eu":2,"eur":1,"usd":3,"é":9}"#);
        let back: SortedMap<u64> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, map);
        assert_eq!(serde_json::to_string(&back).unwrap(), text);

        let nested: SortedMap<SortedMap<String>> =
            [("b".to_string(), [("y".to_string(), "1".to_string())].into())].into();
        let nested_btree = BTreeMap::from([(
            "b".to_string(),
            BTreeMap::from([("y".to_string(), "1".to_string())]),
        )]);
        assert_eq!(
            serde_json::to_string(&nested).unwrap(),
            serde_json::to_string(&nested_btree).unwrap()
        );
        assert_eq!(
            serde_json::to_string_pretty(&map).unwrap(),
            serde_json::to_string_pretty(&entries().into_iter().collect::<BTreeMap<_, _>>())
                .unwrap()
        );
    }

    #[test]
    fn a_repeated_key_keeps_the_last_value_as_with_btreemap() {
        let text = r#"{"usd":1,"eur":2,"usd":3}"#;
        let btree: BTreeMap<String, u64> = serde_json::from_str(text).unwrap();
        let map: SortedMap<u64> = serde_json::from_str(text).unwrap();
        assert_eq!(map.get("usd"), Some(&3));
        assert_eq!(
            map.iter().collect::<Vec<_>>(),
            btree.iter().collect::<Vec<_>>()
        );
        let collected: SortedMap<u64> = [("a".to_string(), 1), ("a".to_string(), 2)].into();
        assert_eq!(collected.len(), 1);
        assert_eq!(collected.get("a"), Some(&2));
    }

    #[test]
    fn refuses_what_btreemap_refuses_with_the_same_message() {
        for bad in [
            r#"[]"#,
            r#"["usd",1]"#,
            r#"{"usd":-1}"#,
            r#"{"usd":1"#,
            "null",
            "7",
        ] {
            let btree = serde_json::from_str::<BTreeMap<String, u64>>(bad).unwrap_err();
            let map = serde_json::from_str::<SortedMap<u64>>(bad).unwrap_err();
            assert_eq!(map.to_string(), btree.to_string(), "{bad}");
        }
    }

    #[test]
    fn empty() {
        let map = SortedMap::<String>::default();
        assert!(map.is_empty());
        assert_eq!(map.len(), 0);
        assert_eq!(map.get(""), None);
        assert_eq!(serde_json::to_string(&map).unwrap(), "{}");
        let back: SortedMap<String> = serde_json::from_str("{}").unwrap();
        assert_eq!(back, map);
        assert_eq!(format!("{map:?}"), "{}");
    }

    #[test]
    fn insert_replaces_remove_removes() {
        let mut map = SortedMap::new();
        assert_eq!(map.insert("b".to_string(), 1), None);
        assert_eq!(map.insert("a".to_string(), 2), None);
        assert_eq!(map.insert("b".to_string(), 3), Some(1));
        assert_eq!(map.len(), 2);
        assert!(map.contains_key("a"));
        assert!(!map.contains_key("c"));
        *map.get_mut("a").unwrap() += 10;
        assert_eq!(map.get("a"), Some(&12));
        assert_eq!(format!("{map:?}"), r#"{"a": 12, "b": 3}"#);
        assert_eq!(map.remove("c"), None);
        assert_eq!(map.remove("a"), Some(12));
        assert_eq!(map.remove("a"), None);
        assert_eq!(map.iter().collect::<Vec<_>>(), [(&"b".to_string(), &3)]);
        *map.get_or_insert_default("c") += 5;
        *map.get_or_insert_default("b") += 5;
        assert_eq!(
            map,
            SortedMap::from([("b".to_string(), 8), ("c".to_string(), 5)])
        );
        assert_eq!(map.remove("b"), Some(8));
        assert_eq!(map.remove("c"), Some(5));
        assert!(map.is_empty());
    }
}
